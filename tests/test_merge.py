"""SFT's end: its weights moved back towards the base model's (WiSE-FT, engine/train/merge.py)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from engine.train.merge import interpolate
from engine.train.presets import get_preset


def test_interpolate_is_the_straight_line_and_refuses_what_does_not_fit():
    fine, pre = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    want = {k: 0.25 * v + 0.75 * pre.state_dict()[k] for k, v in fine.state_dict().items()}
    interpolate(fine, pre.state_dict(), 0.25)
    for k, v in fine.state_dict().items():
        torch.testing.assert_close(v, want[k])
    with pytest.raises(ValueError, match="do not fit"):
        interpolate(fine, torch.nn.Linear(4, 2).state_dict(), 0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        interpolate(fine, pre.state_dict(), 0.0)
    with pytest.raises(ValueError, match="sft_merge"):
        dataclasses.replace(get_preset("micro"), sft_merge=1.5)


def test_sft_ends_merged_with_its_base_and_its_last_eval_is_the_merged_model(micro_run,
                                                                              tmp_path):
    """The saved SFT model is the point between the base and the SFT it trained (same seed,
    same steps), meta.json says so, and the last val loss the Train pane plots is the saved
    model's."""
    from engine.model.checkpoint import load_checkpoint
    from engine.progress.events import read_events
    from engine.train.pipeline import train

    def sft_with(keep: float):
        run = tmp_path / f"keep{keep}"
        run.mkdir()
        for name in ("run.json", "tokenizer.json"):
            shutil.copy(micro_run / name, run / name)
        shutil.copytree(micro_run / "base", run / "base")
        preset = dataclasses.replace(get_preset("micro"), sft_merge=keep)
        train(run, preset_obj=preset, stages="sft", device="cpu")
        model, meta = load_checkpoint(run / "sft")
        evals = [e for e in read_events(run / "events.jsonl")
                 if e["type"] == "eval" and e["stage"] == "sft"]
        return model.state_dict(), meta, evals[-1]["val_loss"]

    base = load_checkpoint(micro_run / "base")[0].state_dict()
    trained, plain_meta, plain_val = sft_with(1.0)
    merged, meta, val = sft_with(0.5)
    assert "merged_with_base" not in plain_meta and meta["merged_with_base"] == 0.5
    for k, v in merged.items():
        torch.testing.assert_close(v, (trained[k] + base[k]) / 2)
    assert val != plain_val
