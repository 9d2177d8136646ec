"""Time from process start to the app's first frame, in fresh processes.

Each repeat spawns `python -c CHILD`; the child imports the app (so imports count), runs it
headless at 80x24 on the chosen pane, and on the app's Ready event (posted once the first frame
has been composed and drawn) prints how long it has been since the parent spawned it and
whether torch was imported by then, and exits. The figure is the median over the repeats.

Also reported: `import_s` (median time spent importing tui.app, inside first_frame_s) and the
bare-Textual first frame on the same machine, for scale (a Header, a Static and a Footer).

Usage: python bench/tui_start.py [--repeats 5] [--tab tokens]
The last line is one JSON object: {"first_frame_s", "torch_imported", "repeats", ...}.
Goal: first_frame_s < 0.5 with torch not imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
t_spawn = float(sys.argv[1])
t0 = time.time()
import tui.app as ta
t_import = time.time() - t0

class Timed(ta.DeepdiveApp):
    def on_ready(self) -> None:
        print(json.dumps({"first_frame_s": time.time() - t_spawn, "import_s": t_import,
                          "torch_imported": "torch" in sys.modules}), flush=True)
        self.exit()

Timed(start_tab=sys.argv[2]).run(headless=True, size=(80, 24))
"""

BARE = r"""
import json, sys, time
t_spawn = float(sys.argv[1])
from textual.app import App
from textual.widgets import Footer, Header, Static

class Bare(App):
    def compose(self):
        yield Header()
        yield Static("hello")
        yield Footer()

    def on_ready(self) -> None:
        print(json.dumps({"first_frame_s": time.time() - t_spawn}), flush=True)
        self.exit()

Bare().run(headless=True, size=(80, 24))
"""


def spawn(code: str, *args: str) -> dict:
    t = time.time()
    out = subprocess.run([sys.executable, "-c", code, str(t), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"bench/tui_start.py: the app did not start:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tab", default="tokens",
                        choices=["tokens", "sample", "train", "compare", "report"])
    args = parser.parse_args()

    runs, bare = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both alike
        runs.append(spawn(CHILD, args.tab))
        bare.append(spawn(BARE)["first_frame_s"])
    for r in runs:
        print(f"first frame {r['first_frame_s']:.3f} s (imports {r['import_s']:.3f} s), "
              f"torch {'imported' if r['torch_imported'] else 'not imported'}", file=sys.stderr)
    print(json.dumps({
        "first_frame_s": round(statistics.median(r["first_frame_s"] for r in runs), 3),
        "torch_imported": any(r["torch_imported"] for r in runs),
        "repeats": args.repeats,
        "tab": args.tab,
        "import_s": round(statistics.median(r["import_s"] for r in runs), 3),
        "bare_textual_first_frame_s": round(statistics.median(bare), 3),
        "vs_bare": round(statistics.median(r["first_frame_s"] for r in runs)
                         / statistics.median(bare), 2),
    }))


if __name__ == "__main__":
    main()
