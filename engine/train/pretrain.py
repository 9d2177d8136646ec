"""Pretraining: next-token prediction over the world's documents.

Every document becomes ``<|bos|> text`` and all of them are packed into one flat token stream;
a batch is ``batch_size`` windows at offsets drawn from a generator seeded by (seed, step), so
the batch of step k is the same in a resumed run and on any number of DDP processes (each keeps
its slice of the rows). A share of the documents is held back for the validation loss.

A user's documents (``extra``: the (train, val) token ids of their token shard, split by
documents there, as numpy memmaps) follow the world's in each stream: one stream, so the offsets
of a step are drawn exactly as before, over more tokens. The stream is a ``TokenStream`` that
never joins its parts: a batch reads its ``batch_size x (seq_len + 1)`` tokens from the shard's
file, and a corpus larger than memory costs each DDP process none of it. The val loss scores
the world's held-back documents (``val_loss``) and, spread over all of theirs, the user's
(``val_loss_user``).
"""

from __future__ import annotations

import random

import numpy as np
import torch

from engine.train.distributed import DistInfo, unwrap
from engine.train.loop import StepResult
from engine.train.presets import StageConfig

Segment = torch.Tensor | np.ndarray  # a part of a TokenStream: a tensor, or a shard's memmap


def step_generator(seed: int, salt: int, step: int) -> torch.Generator:
    """A generator private to (run seed, stage, step): resumable, rank-independent randomness."""
    return torch.Generator().manual_seed((seed * 1_000_003 + salt * 7_919 + step) % (2**63))


def split_documents(docs: list[str], val_frac: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) documents: a seeded shuffle of the distinct texts, the last ``val_frac`` of
    them held back. Copies of one text land on one side, so the val loss never scores text the
    model trained on (the world repeats its encyclopedia entries)."""
    distinct = list(dict.fromkeys(docs))
    random.Random(seed).shuffle(distinct)
    n_val = max(1, int(len(distinct) * val_frac)) if len(distinct) > 1 else 0
    held = set(distinct[len(distinct) - n_val:])
    return [d for d in docs if d not in held], [d for d in distinct if d in held]


def pack_documents(tok, docs: list[str]) -> torch.Tensor:
    """One flat stream of ``<|bos|> doc <|bos|> doc ...`` token ids."""
    from engine.tokens.chat import render_document

    ids: list[int] = []
    for doc in docs:
        ids.extend(render_document(tok, doc))
    return torch.tensor(ids, dtype=torch.long)


class TokenStream:
    """Token ids laid end to end, read as if its segments were one ``torch.cat`` of them but
    never joined: the world's documents (a small tensor) and a user's token shard (a numpy
    memmap, possibly larger than memory). A read copies only the tokens it asks for, as int64:
    the same positions give the same ids as the joined stream, across a segment's end too."""

    def __init__(self, *segments: Segment):
        self.segments = [s for s in segments if len(s)]
        self.starts: list[int] = []  # where each segment begins in the stream
        n = 0
        for segment in self.segments:
            self.starts.append(n)
            n += len(segment)
        self._len = n

    def __len__(self) -> int:
        return self._len

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """The ids at stream positions ``idx`` (a tensor of any shape), int64, that shape."""
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self._len):
            raise IndexError(f"positions {int(idx.min())}..{int(idx.max())} outside a stream "
                             f"of {self._len} tokens")
        if len(self.segments) == 1 and isinstance(self.segments[0], torch.Tensor):
            return self.segments[0][idx].long()  # the world alone: one tensor, indexed as is
        out = torch.empty(idx.shape, dtype=torch.long)
        for start, segment in zip(self.starts, self.segments, strict=True):
            inside = (idx >= start) & (idx < start + len(segment))
            if bool(inside.any()):
                out[inside] = _read(segment, idx[inside] - start)
        return out

    def windows(self, offsets: torch.Tensor, length: int) -> torch.Tensor:
        """(len(offsets), length): the ``length`` ids from each offset on."""
        return self.take(offsets[:, None] + torch.arange(length)[None])


def _read(segment: Segment, positions: torch.Tensor) -> torch.Tensor:
    """segment[positions] as int64; a memmap reads those ids alone (numpy's fancy indexing
    copies just the elements it names) and converts only them."""
    if isinstance(segment, torch.Tensor):
        return segment[positions].long()
    return torch.from_numpy(np.asarray(segment[positions.numpy()], dtype=np.int64))


def spread_starts(n_tokens: int, window: int, most: int) -> torch.Tensor:
    """Starts of up to ``most`` windows of ``window + 1`` ids (inputs and the next-token
    targets) spread evenly over ``n_tokens``: non-overlapping but for a shared boundary id, as
    consecutive windows are; one window at 0 when there are too few tokens for two."""
    n = min(most, max(1, (n_tokens - 1) // window))
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    return torch.arange(n) * ((n_tokens - 1 - window) // (n - 1))  # stride >= window


class PretrainTask:
    SALT = 1

    def __init__(self, tok, docs: list[str], cfg: StageConfig, seed: int, val_frac: float,
                 device: torch.device, dist: DistInfo | None = None,
                 extra: tuple[Segment, Segment] | None = None):
        train_docs, val_docs = split_documents(docs, val_frac, seed)
        self.tok, self.cfg, self.seed, self.device = tok, cfg, seed, device
        self.dist = dist or DistInfo()
        world_train = pack_documents(tok, train_docs)
        world_val = pack_documents(tok, val_docs or train_docs[:1])
        # none: empty parts, which a stream drops. Each part starts with <|bos|>, so documents
        # stay apart where the parts meet.
        user_train, user_val = extra or (world_train[:0], world_val[:0])
        self.train = TokenStream(world_train, user_train)
        self.val = TokenStream(world_val, user_val)
        # where the user's held-back documents begin in the val stream (None: they have none)
        self.user_val_at = len(world_val) if len(user_val) else None
        self.bos = tok.special_id("<|bos|>")
        if len(self.train) <= cfg.seq_len + 1:
            raise ValueError(f"only {len(self.train)} training tokens: fewer than one window "
                             f"of {cfg.seq_len}")
        # The sample prompt: the opening words of a held-back document (fixed for the run).
        words = (val_docs or train_docs)[0].split()
        self.prompt_text = " ".join(words[:6])

    def batch(self, step: int, part: int = 0, parts: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the global batch of ``step`` (part ``part`` of ``parts`` equal
        parts of them): (x, y), each (rows, seq_len)."""
        T, B = self.cfg.seq_len, self.cfg.batch_size
        g = step_generator(self.seed, self.SALT, step)
        offsets = torch.randint(0, len(self.train) - T - 1, (B,), generator=g)[self.dist.shard(B)]
        if parts > 1:
            offsets = offsets.chunk(parts)[part]
        rows = self.train.windows(offsets, T + 1)  # these rows alone are read
        return rows[:, :-1].to(self.device), rows[:, 1:].to(self.device)

    ACCUMULATES = True  # step() takes part/parts (engine/train/loop.py)

    def step(self, model, step: int, part: int = 0, parts: int = 1) -> StepResult:
        from engine.model.device import autocast

        x, y = self.batch(step, part, parts)
        with autocast(self.device):
            _, loss = model(x, y)
        if parts > 1:  # equal parts of equal windows: the parts' mean losses average exactly
            loss = loss / parts
        return StepResult(loss=loss, tokens=self.cfg.batch_size * self.cfg.seq_len)

    @torch.no_grad()
    def evaluate(self, model, step: int, max_windows: int = 64) -> dict:
        """Mean loss over fixed windows of the held-back documents: ``val_loss`` over the first
        ``max_windows`` consecutive ones (the world's documents lead the stream), and with a
        user's documents ``val_loss_user`` over as many spread evenly over theirs, which come
        after the world's and so would hardly be scored by the first."""
        core = unwrap(model)
        core.eval()
        T = min(self.cfg.seq_len, core.config.block_size)
        n = min(max_windows, max(1, (len(self.val) - 1) // T))
        figures = {"val_loss": self._val_loss(core, torch.arange(n) * T, T)}
        if self.user_val_at is not None:
            spread = spread_starts(len(self.val) - self.user_val_at, T, max_windows)
            figures["val_loss_user"] = self._val_loss(core, self.user_val_at + spread, T,
                                                      past_end_ignored=True)
        return figures

    def _val_loss(self, core, starts: torch.Tensor, T: int,
                  past_end_ignored: bool = False) -> float:
        """Mean loss of the val windows at ``starts``; a window longer than what is left of
        the stream repeats its last id, and with ``past_end_ignored`` those repeats are not
        scored (a user's held-back text may be shorter than one window; the world's val_loss
        keeps its old reading)."""
        positions = starts[:, None] + torch.arange(T + 1)[None]
        rows = self.val.take(positions.clamp(max=len(self.val) - 1)).to(self.device)
        targets = rows[:, 1:].clone()
        if past_end_ignored:
            targets[(positions[:, 1:] >= len(self.val)).to(self.device)] = -1
        total, count = 0.0, 0
        for x, y in zip(rows[:, :-1].split(16), targets.split(16), strict=True):
            _, loss = core(x, y)
            n = int((y != -1).sum()) if past_end_ignored else len(x)
            total, count = total + float(loss) * n, count + n
        return round(total / max(count, 1), 5)

    def sample(self, model, step: int) -> tuple[str, str]:
        from engine.model.sampler import SampleSettings, generate_batch

        prompt = [self.bos] + self.tok.encode(self.prompt_text)
        settings = SampleSettings(temperature=0.8, top_k=50, max_tokens=48, seed=1234)
        out = generate_batch(unwrap(model), [prompt], settings, stop_ids=[self.bos])[0]
        return self.prompt_text, self.tok.decode([t for t in out if t != self.bos])
