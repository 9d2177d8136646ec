"""Supervised fine-tuning: conversations, loss only on what the assistant says.

Each conversation is rendered by ``engine.tokens.chat.render_conversation`` into (ids, mask)
where the mask marks assistant content and its ``<|assistant_end|>``; every other target becomes
-1, which the model's loss ignores. Conversations are visited epoch by epoch in a seeded order,
so the batch of step k is a pure function of (seed, k); a batch is padded to its longest row.

Rehearsal: ``documents`` (pretraining texts) can make up a share ``doc_frac`` of the training
rows, with loss on every token. Without them a tiny model's SFT overwrites what pretraining put
in place for names that no conversation mentions: asked about an entity held out of SFT, it
answered about a *known* entity instead, never copying the asked-about name, so knowledge the
base model had read never reached its answers (figures: docs/measurements.md). Mixing documents
back in keeps that path alive; the tiny preset now does without it (engine/train/presets.py).

The extra-SFT control (``control`` stage) is this same task, started from the SFT checkpoint.
"""

from __future__ import annotations

import random
import re

import torch
import torch.nn.functional as F

from engine.train.distributed import DistInfo, unwrap
from engine.train.loop import StepResult
from engine.train.presets import StageConfig

PAD_ID = 0  # any id works for padding: its targets are -1 and causal attention never looks ahead


NAME_RE = re.compile(r"\b[A-Z][a-z]+\b")
QUESTION_WORDS = {"What", "Which", "Where", "When", "Who", "How", "The", "I", "In", "Do", "Can",
                  "Tell", "Name", "Is", "Of", "If", "At", "One", "Please", "Add", "Find",
                  "Compute", "Calculate", "Work", "Count", "Compare", "Are", "Introduce"}


def copied_names(tok, conv: list[dict], mask: list[int]) -> list[int]:
    """``mask`` with the tokens of names the reply copies from the question set to 0.

    A name in a reply ("The home city of Zed is ...", "I don't know who Zed is.") is copied
    from the question, which pretraining taught the model to do. Trained on while the names'
    (tied) embedding rows train too, every name position pushes down the logits of all names
    SFT never shows (the held-out ones), and the chat model then answers a question about a
    held-out entity with a train entity's name. Where those rows are left untrained
    (``leave_rows_untrained``) the copies are better trained on: what is left to learn is the
    copying itself, and without it SFT's answers drift to the train names it saw most
    (docs/measurements.md, 2026-12-05).
    """
    user = " ".join(m["content"] for m in conv if m["role"] == "user").casefold()
    said = {w for m in conv if m["role"] == "assistant" for w in NAME_RE.findall(m["content"])}
    # a name the reply writes that the question asked, however the question was typed
    asked = {w for w in said - QUESTION_WORDS if re.search(rf"\b{w.casefold()}\b", user)}
    if not asked:
        return mask
    out = list(mask)
    names = re.compile(r"( ?\b(?:" + "|".join(map(re.escape, sorted(asked))) + r")\b)")
    pos = 1  # after <|bos|>
    for m in conv:
        pos += 1  # the role's start token
        if m["role"] != "assistant":
            pos += len(tok.encode(m["content"]))
        else:  # in pieces the tokenizer's pre-split never crosses (" Zed" is one piece)
            for piece in names.split(m["content"]):
                n = len(tok.encode(piece)) if piece else 0
                if piece.strip() in asked:
                    out[pos: pos + n] = [0] * n
                pos += n
        pos += 1  # the role's end token
    return out if pos == len(mask) else mask  # a layout we do not know: train on all of it


def name_token_ids(tok, world) -> list[int]:
    """Token ids of every invented name in the world (people, countries, cities, animals and the
    people who exist nowhere), as written alone and after a space: the same set for every split,
    so leaving them untrained favours no entity."""
    names = [p.name for p in world.people] + [c.name for c in world.countries]
    names += [c.name for c in world.cities] + [a.name for a in world.animals]
    names += world.unknown_people
    return sorted({i for n in names for text in (n, " " + n) for i in tok.encode(text)})


def leave_rows_untrained(model, ids: list[int]) -> None:
    """Zero the gradient of the (tied) embedding/head rows ``ids`` at every step.

    Why: the embedding is also the output head. At every answer position SFT's softmax pushes
    down the logits of all names it does not show, and Adam moves those rows at full speed
    whatever the size of their gradient, so the names of entities only pretraining read about
    drift away from what pretraining gave them; asked about one, the chat model garbled the name
    and its facts (docs/measurements.md). AdamW's decoupled weight decay still shrinks the rows
    slightly.
    """
    wte = model.transformer.wte.weight
    keep = torch.ones(wte.shape[0], 1, device=wte.device, dtype=wte.dtype)
    keep[ids] = 0.0
    wte.register_hook(lambda grad: grad * keep)


def encode_conversations(tok, conversations: list[list[dict]], max_len: int,
                         learn_copies: bool = False) -> list[tuple[list[int], list[int]]]:
    """(ids, mask) per conversation, cut to ``max_len + 1`` tokens (inputs + the last target);
    names the reply copies from the question are trained on only if ``learn_copies`` (the
    names' rows left untrained; ``copied_names`` says why)."""
    from engine.tokens.chat import render_conversation

    out = []
    for conv in conversations:
        ids, mask = render_conversation(tok, conv)
        if not learn_copies:
            mask = copied_names(tok, conv, mask)
        ids, mask = list(ids)[: max_len + 1], list(mask)[: max_len + 1]
        if sum(mask[1:]) > 0:  # nothing to learn from a conversation cut before the answer
            out.append((ids, mask))
    return out


def encode_documents(tok, documents: list[str], n: int,
                     max_len: int) -> list[tuple[list[int], list[int]]]:
    """(ids, mask) for the first ``n`` documents: loss on every token after <|bos|>."""
    from engine.tokens.chat import render_document

    out = []
    for text in documents[:n]:
        ids = render_document(tok, text)[: max_len + 1]
        out.append((ids, [0] + [1] * (len(ids) - 1)))
    return out


def collate(rows: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y): y[i] = ids[i+1] where mask[i+1] is 1, else -1."""
    T = max(len(ids) for ids, _ in rows) - 1
    x = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    y = torch.full((len(rows), T), -1, dtype=torch.long)
    for r, (ids, mask) in enumerate(rows):
        n = len(ids) - 1
        x[r, :n] = torch.tensor(ids[:-1])
        tgt = torch.tensor(ids[1:])
        keep = torch.tensor(mask[1:], dtype=torch.bool)
        y[r, :n] = torch.where(keep, tgt, torch.full_like(tgt, -1))
    return x, y


def split_conversations(convs: list, val_frac: float, seed: int) -> tuple[list, list]:
    order = list(range(len(convs)))
    random.Random(seed + 17).shuffle(order)
    n_val = max(1, int(len(convs) * val_frac)) if len(convs) > 1 else 0
    return ([convs[i] for i in order[: len(convs) - n_val]],
            [convs[i] for i in order[len(convs) - n_val:]])


class SftTask:
    SALT = 2
    probe: dict | None = None  # what the knowledge probe found (the pipeline sets it)

    def __init__(self, tok, conversations: list[list[dict]], cfg: StageConfig, seed: int,
                 val_frac: float, device: torch.device, dist: DistInfo | None = None,
                 documents: list[str] | None = None, doc_frac: float = 0.0,
                 learn_copies: bool = False):
        train, val = split_conversations(conversations, val_frac, seed)
        self.tok, self.cfg, self.seed, self.device = tok, cfg, seed, device
        self.dist = dist or DistInfo()
        self.train = encode_conversations(tok, train, cfg.seq_len, learn_copies)
        self.val = encode_conversations(tok, val, cfg.seq_len, learn_copies) or self.train[:1]
        if not self.train:
            raise ValueError("no SFT conversation has an assistant turn within the context")
        if documents and doc_frac > 0:  # rehearsal rows join the training rows only, not val
            n_docs = round(len(self.train) * doc_frac / (1 - doc_frac))
            self.train += encode_documents(tok, documents, n_docs, cfg.seq_len)
        # The sample prompt: the first user turn of a held-back conversation.
        first = (val or train)[0]
        self.prompt_messages = [next(m for m in first if m["role"] == "user")]
        self._epoch_cache: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._epoch_cache:
            order = list(range(len(self.train)))
            random.Random(self.seed * 9973 + self.SALT * 131 + epoch).shuffle(order)
            self._epoch_cache = {epoch: order}  # only the current epoch is ever needed
        return self._epoch_cache[epoch]

    def global_rows(self, step: int) -> list[tuple[list[int], list[int]]]:
        """The conversations of step ``step``'s global batch (epochs in a seeded order)."""
        B, n = self.cfg.batch_size, len(self.train)
        rows = []
        for i in range(step * B, (step + 1) * B):
            rows.append(self.train[self._order(i // n)[i % n]])
        return rows

    ACCUMULATES = True  # step() takes part/parts (engine/train/loop.py)

    def step(self, model, step: int, part: int = 0, parts: int = 1) -> StepResult:
        from engine.model.device import autocast

        rows = self.global_rows(step)
        n_global = sum(sum(m[1:]) for _, m in rows)  # target tokens in the whole global batch
        mine = rows[self.dist.shard(len(rows))]
        per = len(mine) // parts  # a part is padded to its own longest row, not the batch's
        x, y = (t.to(self.device) for t in collate(mine[part * per:(part + 1) * per]))
        with autocast(self.device):
            logits, _ = model(x)
        # Sum over this part's targets / the global count (x world size, as DDP averages
        # gradients): every process's and every part's losses add up to the single-process
        # mean exactly.
        loss_sum = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1),
                                   ignore_index=-1, reduction="sum")
        loss = loss_sum * self.dist.world_size / max(n_global, 1)
        return StepResult(loss=loss, tokens=sum(len(ids) - 1 for ids, _ in rows),
                          log_loss=None)

    @torch.no_grad()
    def evaluate(self, model, step: int, max_rows: int = 128) -> dict:
        core = unwrap(model)
        core.eval()
        rows = self.val[:max_rows]
        total, count = 0.0, 0
        for i in range(0, len(rows), 16):
            x, y = (t.to(self.device) for t in collate(rows[i: i + 16]))
            logits, _ = core(x)
            total += float(F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1),
                                           ignore_index=-1, reduction="sum"))
            count += int((y != -1).sum())
        return {"val_loss": round(total / max(count, 1), 5)}

    def sample(self, model, step: int) -> tuple[str, str]:
        from engine.model.sampler import SampleSettings, generate_batch
        from engine.tokens.chat import render_prompt

        end = self.tok.special_id("<|assistant_end|>")
        prompt = render_prompt(self.tok, self.prompt_messages)
        settings = SampleSettings(temperature=0.0, max_tokens=64, seed=1234)
        out = generate_batch(unwrap(model), [prompt], settings, stop_ids=[end])[0]
        return self.prompt_messages[0]["content"], self.tok.decode([t for t in out if t != end])
