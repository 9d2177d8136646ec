"""The run folder is one contract: engine/run.py defines it, checkpoints/README.md shows it to
people, and the committed run checkpoints/tiny/ is an instance of it. The three must agree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine import run as R

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "checkpoints" / "README.md"
TINY = ROOT / "checkpoints" / "tiny"


def _fenced(text: str, info: str) -> list[str]:
    """The lines of the fenced block opened with ```<info>."""
    m = re.search(rf"^```{re.escape(info)}\n(.*?)^```", text, re.M | re.S)
    assert m, f"{README}: no ```{info} block"
    return m.group(1).splitlines()


def readme_layout() -> tuple[set[str], set[str], set[str]]:
    """(top-level files, stage folders, files inside a stage folder) from the run-folder block.

    Each line is ``<names>  <description>``: the names column ends at the first run of two or
    more spaces; a line of folders (``base/ sft/ ...``) opens the stage-folder level.
    """
    lines = _fenced(README.read_text(encoding="utf-8"), "run-folder")
    assert lines[0].strip() == "checkpoints/<run>/"
    top, folders, inside = set(), set(), set()
    for line in lines[1:]:
        names = re.split(r"\s{2,}", line.strip())[0].split()
        depth = (len(line) - len(line.lstrip())) // 2
        for name in names:
            if name.endswith("/"):
                folders.add(name.rstrip("/"))
            elif depth == 1:
                top.add(name)
            else:
                inside.add(name)
    return top, folders, inside


def readme_table(heading: str) -> list[list[str]]:
    """The rows (cells, backticks dropped) of the first table under ``## <heading>``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows]
    return [c for c in cells[2:]]  # below the header and its |---| line


def test_readme_lists_exactly_the_contract_files_and_folders():
    top, folders, inside = readme_layout()
    assert top == set(R.RUN_FILES)
    assert inside == set(R.STAGE_FILES)
    assert folders == set(R.STAGE_FOLDERS)


def test_readme_stage_table_is_the_pipeline():
    rows = readme_table("The stages")
    want = [[s.name, s.file or f"{s.folder}/", s.parent or "-"] for s in R.PIPELINE]
    assert rows == want


def test_every_stage_writes_one_thing_and_starts_from_an_earlier_model():
    seen: list[R.Stage] = []
    for s in R.PIPELINE:
        assert (s.folder is None) != (s.file is None), s
        if s.parent:
            assert R.stage_named(s.parent) in seen and R.stage_named(s.parent).folder, s
        seen.append(s)
    assert R.STAGE_NAMES == ("tokenizer", "pretrain", "sft", "rl", "control", "reward", "rlhf",
                             "eval")
    assert set(R.MODEL_FOLDERS) | set(R.REPORT_STAGES.values()) <= set(R.STAGE_FOLDERS)
    assert [c for c in R.REPORT_COLUMNS if c != "labelers"] == list(R.REPORT_STAGES)


def test_file_names_are_what_a_user_sees():
    # the on-disk names people, scripts and old runs rely on
    assert (R.RUN_FILE, R.TOKENIZER_FILE, R.EVENTS_FILE, R.REPORT_FILE, R.DEV_REPORT_FILE,
            R.LOCK_FILE) == ("run.json", "tokenizer.json", "events.jsonl", "report.json",
                             "report-dev.json", "train.lock")
    assert (R.MODEL_FILE, R.META_FILE, R.OPTIMIZER_FILE) == (
        "model.safetensors", "meta.json", "optimizer.safetensors")
    assert R.STAGE_FOLDERS == ("base", "sft", "rl", "sft_control", "reward", "rlhf_over", "rlhf")
    assert R.report_file("dev") == R.DEV_REPORT_FILE and R.report_file() == R.REPORT_FILE


def test_readme_documents_every_field_of_the_committed_run_json():
    documented = {row[0] for row in readme_table("run.json")}
    recorded = json.loads((TINY / R.RUN_FILE).read_text(encoding="utf-8"))
    assert set(recorded) <= documented
    assert set(recorded["data"]) <= {"world", "world_seed", "labeler_error_rate"}


def test_readme_fields_are_what_a_new_run_writes(micro_run):
    """Both ways, on a run the trainer writes today (the committed one may be older); the
    rows about imported runs (`deepdive import gpt2`) and runs started from one (`--from`) are
    not a trained run's."""
    rows = readme_table("run.json")
    trained = {field for field, what, *_ in rows if "import" not in what and "--from" not in what}
    assert set(R.RunFolder(micro_run).read_info()) == trained


def test_committed_tiny_run_matches_the_contract():
    run = R.RunFolder(TINY)
    for path in (run.run_json, run.tokenizer, run.events, run.report()):
        assert path.is_file(), path
    made_with = run.read_info()["preset_config"]
    # a stage the run's preset has (runs made before the reward and rlhf stages have neither)
    stages = [s for s in R.PIPELINE if s.folder and made_with.get(s.name) not in (None, False)]
    for s in stages:
        if s.folder:
            d = run.model_dir(s.folder)
            assert d == TINY / s.folder
            assert (d / R.MODEL_FILE).is_file() and (d / R.META_FILE).is_file(), d
            assert not (d / R.OPTIMIZER_FILE).exists(), "finished stages keep weights only"
            assert json.loads((d / R.META_FILE).read_text())["files"].keys() == {R.MODEL_FILE}
    # nothing in it that the contract does not name (a report-dev.json would be named)
    names = {p.name for p in TINY.iterdir()}
    assert names <= set(R.RUN_FILES) | set(R.STAGE_FOLDERS)
    assert run.models() == list(R.MODEL_FOLDERS)
    assert run.model_dir("rlhf") == TINY / R.RLHF_PEAK  # the folder, not the stage's
    assert run.read_info()["preset"] == "tiny"


def test_run_folder_paths(tmp_path):
    run = R.RunFolder(str(tmp_path / "r"))
    assert run.path == tmp_path / "r" and run.name == "r"
    assert run.lock == tmp_path / "r" / R.LOCK_FILE
    assert run.report("dev") == tmp_path / "r" / R.DEV_REPORT_FILE
    assert run.model_dir("pretrain") == run.model_dir("base") == tmp_path / "r" / "base"
    assert run.model_dir("control") == tmp_path / "r" / "sft_control"
    assert run.model_dir("sft_extra") == tmp_path / "r" / "sft_extra"  # any folder a run holds
    with pytest.raises(ValueError, match="eval"):
        run.model_dir("eval")
    assert run.read_info() == {} and run.models() == []


def test_write_info_is_atomic_and_round_trips(tmp_path):
    run = R.RunFolder(tmp_path / "r")
    run.write_info({"preset": "tiny", "seed": 3})
    assert run.read_info() == {"preset": "tiny", "seed": 3}
    assert sorted(p.name for p in run.path.iterdir()) == [R.RUN_FILE]  # no .tmp left behind


def test_copy_to_forks_the_named_parts_and_never_overwrites_a_run(tmp_path):
    run = R.RunFolder(tmp_path / "r")
    (run.model_dir("sft")).mkdir(parents=True)
    (run.model_dir("sft") / R.MODEL_FILE).write_bytes(b"weights")
    run.tokenizer.write_text("{}")
    run.write_info({"seed": 1})
    fork = run.copy_to(tmp_path / "f", (R.TOKENIZER_FILE, "sft"))
    assert fork.has_model("sft") and fork.tokenizer.read_text() == "{}"
    assert not fork.run_json.exists()  # run.json is the caller's to write
    (fork.model_dir("sft") / R.MODEL_FILE).write_bytes(b"retrained")
    assert (run.model_dir("sft") / R.MODEL_FILE).read_bytes() == b"weights"
    with pytest.raises(FileExistsError):
        run.copy_to(fork.path, ("sft",))
    assert (fork.model_dir("sft") / R.MODEL_FILE).read_bytes() == b"retrained"
    with pytest.raises(FileNotFoundError, match="base"):
        run.copy_to(tmp_path / "g", ("sft", "base"))
    assert not (tmp_path / "g").exists()  # nothing half-made for a retry to trip on


def test_engine_run_imports_nothing_heavy():
    import ast

    tree = ast.parse((ROOT / "engine" / "run.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "fcntl", "json", "os", "shutil", "dataclasses",
                        "pathlib"}
