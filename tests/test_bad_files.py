"""Damaged run files: each is refused with an error that names it, none loads silently, none
crashes a loader with anything else, and the CLI says which file (exit 2, no traceback).

The sweep of corruptions is bench/badfiles.py's (the reliability soak reports its figures)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def _badfiles():
    spec = importlib.util.spec_from_file_location("badfiles", ROOT / "bench/badfiles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["badfiles"] = module
    spec.loader.exec_module(module)
    return module


def test_every_corruption_of_a_run_is_refused_by_name():
    got = _badfiles().run_corrupt_files(0)
    assert got["corrupt_files_tried"] >= 30
    assert got["crash_examples"] == [] and got["crashes"] == 0
    assert got["corrupt_files_loaded_silently"] == []
    assert got["corrupt_files_rejected"] == got["corrupt_files_tried"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    return _badfiles().make_run(tmp_path_factory.mktemp("bad-files"), 0)


def _damaged(good: Path, tmp_path: Path, damage) -> Path:
    run = tmp_path / "damaged"
    shutil.copytree(good, run)
    damage(run)
    return run


@pytest.mark.parametrize("change, says", [
    ("orphan", "is no merge of two earlier tokens"),
    ("no_byte", "single bytes have no token"),
    ("duplicate", "appears twice"),
])
def test_impossible_merges_are_refused_before_tiktoken_sees_them(good_run, tmp_path, change,
                                                                 says):
    """tiktoken panics (past ``except Exception``) on some impossible tables: we check first."""
    from engine.api import Tokenizer, TokenizerFileError

    bf = _badfiles()
    damage = {"orphan": bf._orphan_merge, "no_byte": bf._drop_single_byte,
              "duplicate": bf._duplicate_rank}[change]
    run = _damaged(good_run, tmp_path, bf.edit_json("tokenizer.json", damage))
    with pytest.raises(TokenizerFileError, match=f"tokenizer.json.*{says}"):
        Tokenizer.load(run / "tokenizer.json")


def test_the_cli_names_the_damaged_file(good_run, tmp_path):
    from deepdive.cli import app

    bf = _badfiles()
    run = _damaged(good_run, tmp_path, bf.edit_json("base/meta.json",
                                                    bf._set(("files",), 3)))
    got = CliRunner().invoke(app, ["sample", "--run", str(run), "--stage", "base", "hello"])
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "meta.json" in " ".join(got.output.split()) and "'files'" in got.output


@pytest.mark.parametrize("record", ['{"seed": "x"}', '{"seed": 0}',
                                    '{"preset": "tiny", "seed": 0, "preset_config": {"sft": 5}}'])
def test_a_broken_run_json_stops_a_resume_with_its_name(good_run, tmp_path, record):
    from deepdive.cli import app

    run = _damaged(good_run, tmp_path, lambda r: (r / "run.json").write_text(record))
    got = CliRunner().invoke(app, ["train", "--run", str(run), "--resume", "--device", "cpu",
                                   "--quiet"])
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "run.json" in " ".join(got.output.split())


def test_garbage_lines_in_events_are_counted_and_skipped(tmp_path):
    from engine.progress.events import EventFollower

    lines = ['{"t": 1, "type": "run_start"}', "not json", "[1, 2]", '{"no": "type"}',
             '\udcff'.encode("utf-8", "surrogatepass").decode("latin-1"),
             '{"t": 2, "type": "run_end", "status": "done"}']
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="latin-1")
    follower = EventFollower(tmp_path / "events.jsonl")
    assert [e["type"] for e in follower.poll()] == ["run_start", "run_end"]
    assert follower.bad_lines == 4


def test_meta_with_wrong_types_names_the_field(good_run, tmp_path):
    from engine.api import CheckpointError, load_run_model

    bf = _badfiles()
    for path, value, field in [(("step",), "ten", "'step'"), (("metrics",), [1], "'metrics'"),
                               (("config", "n_head"), 0, "n_head")]:
        run = _damaged(good_run, tmp_path / field.strip("'"),
                       bf.edit_json("base/meta.json", bf._set(path, value)))
        with pytest.raises(CheckpointError, match=f"meta.json.*{field}"):
            load_run_model(run, "base")
    assert json.loads((good_run / "base" / "meta.json").read_text())["step"] == 1


@pytest.mark.parametrize("meta", ['{"step": "x", "metrics": "y", "n_params": [1]}', "[1, 2]",
                                  "{truncated"])
def test_runs_and_the_estimate_list_a_run_with_a_damaged_meta(good_run, tmp_path, monkeypatch,
                                                               meta):
    """`deepdive runs` shows the stage as damaged and the other runs as usual; the Train pane's
    time estimate skips the run instead of crashing on it."""
    from deepdive.cli import app
    from engine.train.estimate import estimate_run_s

    root = tmp_path / "root"
    shutil.copytree(good_run, root / "fine")
    _damaged(good_run, root, lambda r: (r / "base" / "meta.json").write_text(meta))
    (root / "damaged" / "run.json").write_text('{"preset": "tiny"}')
    monkeypatch.setenv("DEEPDIVE_CHECKPOINTS", str(root))
    got = CliRunner().invoke(app, ["runs"])
    assert got.exit_code == 0 and "Traceback" not in got.output, got.output
    assert "damaged" in got.output and "fine" in got.output
    rows = json.loads(CliRunner().invoke(app, ["runs", "--json"]).stdout)
    assert {r["run"]: r["stages"]["base"]["damaged"] for r in rows} == {"damaged": True,
                                                                        "fine": False}
    assert estimate_run_s("tiny", root)[1].startswith("a rough estimate")


def test_the_estimate_skips_a_finished_run_whose_seconds_are_not_numbers(micro_run, tmp_path):
    from engine.train.estimate import estimate_run_s

    root = tmp_path / "root"
    shutil.copytree(micro_run, root / "odd", ignore=shutil.ignore_patterns("train.lock"))
    assert estimate_run_s("micro", root)[1].startswith("an estimate from run odd")
    meta = json.loads((root / "odd" / "sft" / "meta.json").read_text())
    meta["elapsed_s"] = "x"
    (root / "odd" / "sft" / "meta.json").write_text(json.dumps(meta))
    assert estimate_run_s("micro", root)[1].startswith("a rough estimate")


@pytest.mark.parametrize("field, value", [("n_layer", 1_000_000), ("block_size", 4096)])
def test_a_meta_config_edited_away_from_the_weights_is_refused_before_building(
        good_run, tmp_path, field, value):
    """meta.json is not hashed, model.safetensors is, and carries the config it was saved with:
    an edited config is refused by comparing the two, before any memory is allocated for it."""
    from engine.api import CheckpointError, load_run_model

    bf = _badfiles()
    run = _damaged(good_run, tmp_path, bf.edit_json("base/meta.json",
                                                    bf._set(("config", field), value)))
    with pytest.raises(CheckpointError, match=f"meta.json: its config differs.*{field}"):
        load_run_model(run, "base")
