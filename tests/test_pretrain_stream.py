"""A user's pretraining tokens on the way to a batch (issue 12): read from their token shard's
memmap a window at a time, never copied whole; scored by the val loss; a shard build that fails
on rank 0 stops every DDP rank; a resume over changed files is refused.

The world-only path (no user files) must train bit for bit as before; the equality tests below
hold the joined stream (``torch.cat`` of the parts, which is what pretraining trained on before)
as the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepdive.cli import app as cli
from engine.data import world as W
from engine.data.shards import token_shard
from engine.tokens.tokenizer import Tokenizer
from engine.train.presets import StageConfig
from engine.train.pretrain import PretrainTask, TokenStream, spread_starts, step_generator

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    """The demo run's own BPE (it has <|bos|>; 1,024 ids, so its shards are uint16)."""
    return Tokenizer.load(ROOT / "checkpoints" / "tiny" / "tokenizer.json")


def _memmap(folder: Path, name: str, ids: np.ndarray, dtype: str) -> np.memmap:
    """``ids`` written raw as ``dtype`` and mapped back read-only, as a shard is."""
    path = folder / name
    path.write_bytes(np.asarray(ids, dtype=dtype).tobytes())
    return np.memmap(path, dtype=dtype, mode="r")


def _joined(*parts) -> torch.Tensor:
    """The reference: the parts copied into one int64 tensor, as pretraining once did."""
    return torch.cat([torch.as_tensor(np.asarray(p, dtype=np.int64)) for p in parts])


# -- the stream -------------------------------------------------------------------------------

def test_stream_windows_equal_the_joined_streams_across_every_boundary(tmp_path):
    g = torch.Generator().manual_seed(0)
    world = torch.randint(0, 1000, (50,), generator=g)
    parts = [world,
             _memmap(tmp_path, "a.tokens", torch.randint(0, 65_535, (37,), generator=g), "<u2"),
             torch.tensor([7, 8, 9]),  # shorter than a window: some windows span three parts
             torch.tensor([], dtype=torch.long),  # an empty part (a shard with no val docs)
             _memmap(tmp_path, "b.tokens", torch.randint(0, 2**20, (41,), generator=g), "<u4")]
    stream, joined = TokenStream(*parts), _joined(*parts)
    assert len(stream) == len(joined) == 131
    length = 12
    ends = np.cumsum([len(p) for p in parts])[:-1]
    straddling = [e - k for e in ends for k in range(1, length)]  # every window across an end
    random = torch.randint(0, len(joined) - length + 1, (200,), generator=g).tolist()
    offsets = torch.tensor(straddling + random + [0, len(joined) - length])
    got = stream.windows(offsets, length)
    assert got.dtype == torch.long
    assert torch.equal(got, joined[offsets[:, None] + torch.arange(length)])
    idx = torch.randint(0, len(joined), (5, 3, 4), generator=g)  # any shape of positions
    assert torch.equal(stream.take(idx), joined[idx])
    with pytest.raises(IndexError):
        stream.windows(torch.tensor([len(joined) - length + 1]), length)


def test_spread_starts_cover_the_part_without_overlap():
    starts = spread_starts(10_000, 64, 64)
    assert len(starts) == 64 and int(starts[0]) == 0
    assert int(starts[-1]) + 64 <= 10_000 - 1  # the last window's targets are in the part
    assert bool((starts.diff() >= 64).all()) and int(starts[-1]) + 64 >= 10_000 - 64
    assert spread_starts(64 * 5 + 1, 64, 64).tolist() == [0, 64, 128, 192, 256]  # few: packed
    assert spread_starts(30, 64, 64).tolist() == [0]  # shorter than a window: one, cut short


class CountedTokens:
    """A shard's token array that counts the ids read from it and refuses to be read whole
    (``np.asarray``, ``torch.as_tensor``, ``torch.cat`` of it all go through ``__array__``)."""

    def __init__(self, ids: np.ndarray):
        self.ids, self.read = ids, 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key):
        out = self.ids[key]
        self.read += int(np.size(out))
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the user's tokens were read whole")


def _shard_ids(tok, folder: Path, n_docs: int = 1000) -> tuple[np.memmap, np.memmap]:
    """(train, val) memmaps of a real token shard of ``n_docs`` made-up documents."""
    data = folder / "docs.txt"
    data.write_text("\n---\n".join(f"Zorbling {i} hums under quasar {i * 7 % 31}; the river "
                                   f"stone answers {i % 5} times." for i in range(n_docs)))
    return token_shard(data, tok, cache_dir=folder / "cache").split(0.05)


def test_batches_read_only_their_windows_and_equal_the_joined_streams(tok, tmp_path):
    train_ids, val_ids = _shard_ids(tok, tmp_path)
    assert isinstance(train_ids, np.memmap) and train_ids.dtype == np.uint16
    cfg = StageConfig(steps=10, batch_size=8, seq_len=32, lr=1e-3)
    docs = W.pretrain_documents(W.build_world(0))[:40]  # a small world: most windows are theirs
    counted = CountedTokens(train_ids)
    task = PretrainTask(tok, docs, cfg, 0, 0.05, torch.device("cpu"), extra=(counted, val_ids))
    assert task.train.segments[1] is counted  # held as given: no copy of it was made
    world = PretrainTask(tok, docs, cfg, 0, 0.05, torch.device("cpu")).train.segments[0]
    joined = _joined(world, train_ids)
    assert len(task.train) == len(joined)
    T, B = cfg.seq_len, cfg.batch_size
    total = 0
    for step in range(12):
        counted.read = 0
        x, y = task.batch(step)
        # the reference: the batch as it was drawn from the joined int64 stream
        g = step_generator(0, PretrainTask.SALT, step)
        offsets = torch.randint(0, len(joined) - T - 1, (B,), generator=g)
        rows = joined[offsets[:, None] + torch.arange(T + 1)]
        assert torch.equal(x, rows[:, :-1]) and torch.equal(y, rows[:, 1:]), step
        assert counted.read <= B * (T + 1), step  # this batch's ids, and no more
        total += counted.read
    assert total > 0 and len(counted) > 12 * B * (T + 1)  # windows of theirs, not all of it


# -- the val loss -----------------------------------------------------------------------------

class RecordingModel(torch.nn.Module):
    """Stands in for a GPT in ``evaluate``: keeps every input row it is shown."""

    def __init__(self, block_size: int):
        super().__init__()
        self.config = type("Config", (), {"block_size": block_size})()
        self.rows: list[torch.Tensor] = []

    def forward(self, x, y):
        self.rows.append(x.clone())
        return None, x.float().mean() / 1000


def test_the_val_loss_scores_windows_spread_over_the_users_held_back_text(tok, tmp_path):
    train_ids, val_ids = _shard_ids(tok, tmp_path, n_docs=3000)
    cfg = StageConfig(steps=10, batch_size=8, seq_len=16, lr=1e-3)
    docs = W.pretrain_documents(W.build_world(0))
    task = PretrainTask(tok, docs, cfg, 0, 0.05, torch.device("cpu"),
                        extra=(train_ids, val_ids))
    model = RecordingModel(block_size=64)
    figures = task.evaluate(model, 0)
    assert set(figures) == {"val_loss", "val_loss_user"}
    T, at = cfg.seq_len, task.user_val_at
    assert len(task.val) == at + len(val_ids) and len(val_ids) > 64 * 4 * T  # plenty to spread
    rows = torch.cat(model.rows)
    n_first = min(64, (len(task.val) - 1) // T)  # val_loss: the first windows, as before
    mine = rows[n_first:]  # val_loss_user's windows, every one inside the user's val ids
    assert len(mine) == 64
    user = torch.from_numpy(val_ids.astype(np.int64))
    starts = [int(s) for s in spread_starts(len(val_ids), T, 64)]
    for row, start in zip(mine, starts, strict=True):
        assert torch.equal(row, user[start: start + T])
    assert starts[0] == 0 and starts[-1] + T >= len(val_ids) - 64  # from its start to its end
    # the first windows barely reach the user's text: why val_loss_user is there
    assert n_first * T < at + len(val_ids) // 10

    world_only = PretrainTask(tok, docs, cfg, 0, 0.05, torch.device("cpu"))
    assert set(world_only.evaluate(RecordingModel(64), 0)) == {"val_loss"}


def test_a_users_held_back_text_shorter_than_a_window_is_scored_on_its_own_ids(tok):
    """val_loss_user scores the ids there are: the repeats that fill a window past the
    stream's end are not targets (they would be easy guesses that flatter the figure)."""

    class Targets(RecordingModel):
        def forward(self, x, y):
            self.rows.append(y.clone())
            return None, torch.tensor(1.0)

    cfg = StageConfig(steps=10, batch_size=8, seq_len=16, lr=1e-3)
    docs = W.pretrain_documents(W.build_world(0))
    short = np.arange(5, 15, dtype=np.uint16)  # 10 ids: less than one window of 16 + 1
    task = PretrainTask(tok, docs, cfg, 0, 0.05, torch.device("cpu"),
                        extra=(np.arange(5, 4000, dtype=np.uint16), short))
    model = Targets(block_size=64)
    figures = task.evaluate(model, 0)
    user_targets = model.rows[-1]
    assert user_targets.shape == (1, 16)
    assert torch.equal(user_targets[0, :9], torch.arange(6, 15))  # the ids after the first
    assert (user_targets[0, 9:] == -1).all()  # past the end: not scored
    assert figures["val_loss_user"] == 1.0


# -- a shard build that fails on rank 0 under DDP ----------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_trains(rank: int, run: str, port: int, out: str, stage: str) -> None:
    """Rank ``rank`` of 2 runs ``deepdive train --stages STAGE`` (gloo, CPU); it writes what
    the CLI said and leaves with the CLI's exit code."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    got = CliRunner().invoke(cli, ["train", "--run", run, "--stages", stage,
                                   "--device", "cpu", "--quiet"])
    Path(out, f"rank{rank}.txt").write_text(f"{got.exit_code}\n{got.output}")
    sys.stdout.flush()
    os._exit(got.exit_code)


def _docs_file(path: Path, n: int = 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"Zorbling {i} hums under the quasar."}) + "\n"
                            for i in range(n)))
    return path


@pytest.mark.parametrize(("stage", "what"), [("pretrain", "build the token shard of"),
                                             ("tokenizer", "train the tokenizer")])
def test_work_refused_on_rank_0_stops_both_ranks_with_its_reason(stage, what, tmp_path,
                                                                 monkeypatch):
    """Rank 0 alone trains the tokenizer (on a sample of the user's documents) and builds the
    token shard while the other ranks wait: a bad row refused there must end every rank."""
    import multiprocessing as mp

    from engine.train.pipeline import train

    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    data = _docs_file(tmp_path / "data" / "docs.jsonl")
    run = tmp_path / "run"
    train(run, preset="micro", stages="tokenizer", device="cpu", pretrain_data=data,
          on_bad="refuse")
    with open(data, "a") as f:  # a bad row rank 0's work is the first to read
        f.write('{"text": 3}\n')
    if stage == "tokenizer":  # trained again: the sample it reads now holds the bad row
        (run / "tokenizer.json").unlink()
    ctx, port = mp.get_context("spawn"), _free_port()
    ranks = [ctx.Process(target=_rank_trains, args=(r, str(run), port, str(tmp_path), stage))
             for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(timeout=120)
    hung = [p.pid for p in ranks if p.is_alive()]
    for p in ranks:
        if p.is_alive():
            p.kill()
    assert not hung, "a rank was still waiting for the shard after 120 s"
    said = {r: " ".join((tmp_path / f"rank{r}.txt").read_text().split()) for r in (0, 1)}
    assert [p.exitcode for p in ranks] == [2, 2], said
    assert f"{data.resolve()}:61: 'text' must be a string" in said[0], said[0]
    assert f"rank 0 could not {what}" in said[1] and "see its message" in said[1], said[1]
    assert not (run / "base").exists()


# -- a resume over changed pretraining files --------------------------------------------------

def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_resuming_pretraining_over_changed_files_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    data = _docs_file(tmp_path / "data" / "docs.jsonl")
    run = tmp_path / "run"
    args = ["train", "--run", str(run), "--device", "cpu", "--quiet",
            "--stages", "tokenizer,pretrain"]
    # stopped mid-way: the test hook poisons step 15, after the checkpoint at step 10
    monkeypatch.setenv("DEEPDIVE_TEST_NAN", "pretrain:14")
    got = runner.invoke(cli, [*args, "--preset", "micro", "--pretrain-data", str(data)])
    assert got.exit_code == 2 and "loss became nan at step 15" in " ".join(got.output.split())
    monkeypatch.delenv("DEEPDIVE_TEST_NAN")
    meta = json.loads((run / "base" / "meta.json").read_text())
    assert meta["step"] == 10 and not meta["done"]
    saved, recorded = _digests(run / "base"), (run / "run.json").read_text()

    original = data.read_bytes()
    data.write_bytes(original + b'{"text": "A new document, never tokenized before."}\n')
    got = runner.invoke(cli, [*args, "--resume"])
    said = " ".join(got.output.split())
    assert got.exit_code == 2 and "Traceback" not in got.output, got.output
    assert "the pretraining data (or the tokenizer) changed since the pretrain stage began" \
        in said, said
    assert _digests(run / "base") == saved  # the checkpoint it would have resumed: untouched
    assert (run / "run.json").read_text() == recorded  # still names the shard it began with

    data.write_bytes(original)  # the same files again: the resume goes on and finishes
    got = runner.invoke(cli, [*args, "--resume"])
    assert got.exit_code == 0, got.output
    assert json.loads((run / "base" / "meta.json").read_text())["done"]
