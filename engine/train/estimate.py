"""How long a whole run of a preset takes here, before it starts (the Train pane's confirm)."""

from __future__ import annotations

from pathlib import Path

from engine.run import META_FILE, PIPELINE, RunFolder, checkpoints_root, list_runs, read_json
from engine.train.presets import get_preset

ASSUMED_FLOPS = 10e9  # rough sustained fp32 FLOP/s of a small model on a laptop CPU


def estimate_run_s(preset_name: str, root: Path | None = None) -> tuple[float, str]:
    """(seconds, how) for training a whole run of a preset: from the seconds per step of a run
    of that preset finished here when there is one, else from FLOPs at an assumed CPU speed.
    Either way an estimate: the note says which."""
    p = get_preset(preset_name)
    steps = {"pretrain": p.pretrain.steps, "sft": p.sft.steps, "rl": p.rl.steps}
    for run in list_runs(root or checkpoints_root()):
        try:
            folder = RunFolder(run.path)
            if folder.read_info().get("preset") != preset_name:
                continue
            metas = {st.name: read_json(folder.model_dir(st.folder) / META_FILE)
                     for st in PIPELINE
                     if st.folder and (folder.model_dir(st.folder) / META_FILE).is_file()}
            if not all(metas.get(s, {}).get("done") for s in steps):
                continue
            total = sum(steps[s] * float(metas[s]["elapsed_s"]) / max(int(metas[s]["step"]), 1)
                        for s in steps)
            # stages whose length follows from the others (the control's from RL's compute) or
            # that a preset may lack: as long as they took there
            total += sum(float(metas.get(s, {}).get("elapsed_s", 0))
                         for s in ("control", "reward", "rlhf"))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # a run whose files do not read as a finished run teaches us nothing
        return total, f"an estimate from run {run.name}'s seconds per step here"
    m = p.model
    params = 12 * m["n_layer"] * m["n_embd"] ** 2 + p.vocab_size * m["n_embd"]
    tokens = (p.pretrain.steps * p.pretrain.batch_size * p.pretrain.seq_len
              + p.sft.steps * p.sft.batch_size * p.sft.seq_len // 2
              + 2 * p.rl.steps * p.rl.batch_size * p.rl.group * p.rl.max_tokens)  # 2: control
    if p.rlhf is not None:  # sampling, the reward model, SFT's log-probs: about twice RL's
        tokens += 2 * p.rlhf.steps * p.rlhf.batch_size * p.rlhf.group * p.rlhf.max_tokens
    return (6 * params * tokens / ASSUMED_FLOPS,
            f"a rough estimate: 6 × {params / 1e6:.1f}M parameters × tokens at "
            f"~{ASSUMED_FLOPS / 1e9:.0f} GFLOP/s (a laptop CPU)")
