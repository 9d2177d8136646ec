"""Byte-level BPE training, written here (no Rust trainer at run time).

Text is first split into chunks by a GPT-4-style regex; merges never cross chunk boundaries.
Each distinct chunk is counted once, then merges are learned incrementally: a pair -> chunks
index says which chunks a merge touches, pair counts change only there, and a lazy max-heap
finds the next most frequent pair. ``train_merges_reference`` is the slow, obvious version
(recount every pair after every merge); tests check that both learn the same merges.

Tie-breaking (both trainers): the pair with the highest count wins; among equal counts the
smallest ``(left id, right id)`` wins. Ids 0..255 are the raw bytes, merge k creates id 256 + k.
A pair whose bytes already spell a token (possible in odd cases like long runs of one letter)
is skipped: tiktoken needs one id per byte string.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import regex

# cl100k_base's split pattern with one change: ``\p{N}`` instead of ``\p{N}{1,3}+``. cl100k cuts
# digit runs into 1-3 digit chunks from the left, so "12345" becomes "123|45" and the tokens
# of a number do not line up with its place values (units, tens, ...); a small model then has
# to learn column arithmetic anew for every way a number can be cut. One digit per chunk keeps
# every digit its own token, and the columns line up.
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPLIT = regex.compile(SPLIT_PATTERN)
# The same pattern for pure-ASCII text, where \p{L} is [A-Za-z], \p{N} is [0-9] and Unicode
# White_Space is ASCII \s. The stdlib ``re`` runs it faster than ``regex`` runs the Unicode one
# (docs/measurements.md), and chunk counting is a large part of training time.
_SPLIT_ASCII = re.compile(
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]++|[0-9]"""
    r"""| ?[^\sA-Za-z0-9]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    re.ASCII,
)

Progress = Callable[[int, int], None]  # (merges done, merges wanted)


def split_chunks(text: str) -> list[str]:
    """The chunks BPE works within, exactly as the trained encoding splits text."""
    return (_SPLIT_ASCII if text.isascii() else _SPLIT).findall(text)


def count_chunks(texts: Iterable[str]) -> Counter[str]:
    """How often each distinct chunk occurs in all texts."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(split_chunks(text))
    return counts


def merge_word(word: list[int], a: int, b: int, new: int) -> list[int]:
    """Replace every non-overlapping (a, b) in word, left to right, by new."""
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _words(chunk_counts: dict[str, int]) -> tuple[list[list[int]], list[int]]:
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    return words, list(chunk_counts.values())


def train_merges(
    chunk_counts: dict[str, int], n_merges: int, progress: Progress | None = None
) -> list[tuple[int, int]]:
    """Learn up to n_merges merges (fewer if every chunk becomes a single token)."""
    words, counts = _words(chunk_counts)
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks that had it
    for i, w in enumerate(words):
        c = counts[i]
        for p in zip(w, w[1:], strict=False):
            pair_counts[p] += c
            where[p].add(i)
    # Max-heap by count via negation; ties pop the smallest (a, b), as the rule says. Entries
    # go stale when a count drops; a stale entry is re-pushed with its current count on pop.
    heap = [(-c, a, b) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    vocab = [bytes([i]) for i in range(256)]
    seen = set(vocab)
    skipped: set[tuple[int, int]] = set()
    step = max(1, n_merges // 200)
    while len(merges) < n_merges and heap:
        neg, a, b = heapq.heappop(heap)
        current = pair_counts.get((a, b), 0)
        if current != -neg or (a, b) in skipped:
            if current > 0 and (a, b) not in skipped:
                heapq.heappush(heap, (-current, a, b))
            continue
        token = vocab[a] + vocab[b]
        if token in seen:
            skipped.add((a, b))
            continue
        new = 256 + len(merges)
        merges.append((a, b))
        vocab.append(token)
        seen.add(token)
        _apply_merge(words, counts, pair_counts, where, heap, a, b, new)
        if progress and len(merges) % step == 0:
            progress(len(merges), n_merges)
    if progress:
        progress(len(merges), n_merges)
    return merges


def _apply_merge(words, counts, pair_counts, where, heap, a: int, b: int, new: int) -> None:
    """Merge (a, b) -> new in the chunks that have it; update only their pair counts.

    Only the pairs touching a merge site change: (prev, a) -> (prev, new) and (b, next) ->
    (new, next). ``prev`` is read from the already-merged output, so back-to-back sites
    ("abab" -> "NN") and runs of one byte ("aaaa" with a == b) come out exactly as a full
    recount of the word would (checked against ``train_merges_reference`` by the tests).
    """
    delta: dict[tuple[int, int], int] = defaultdict(int)
    for i in where.pop((a, b)):
        w = words[i]
        n = len(w)
        j = w.index(a) if a in w else n
        if j >= n - 1:  # stale index entry: an earlier merge took the pair away
            continue
        c = counts[i]
        out = w[:j]
        changed = False
        while j < n:
            x = w[j]
            if x == a and j + 1 < n and w[j + 1] == b:
                changed = True
                if out:
                    prev = out[-1]
                    delta[(prev, a)] -= c
                    delta[(prev, new)] += c
                    where[(prev, new)].add(i)
                delta[(a, b)] -= c
                if j + 2 < n:
                    nxt = w[j + 2]
                    delta[(b, nxt)] -= c
                    delta[(new, nxt)] += c
                    where[(new, nxt)].add(i)
                out.append(new)
                j += 2
            else:
                out.append(x)
                j += 1
        if changed:
            words[i] = out
    for p, d in delta.items():
        if d:
            c = pair_counts[p] + d
            pair_counts[p] = c
            if d > 0:
                heapq.heappush(heap, (-c, p[0], p[1]))
    pair_counts.pop((a, b), None)


def train_merges_reference(chunk_counts: dict[str, int], n_merges: int) -> list[tuple[int, int]]:
    """The obvious trainer: recount every pair after every merge. Slow; for tests."""
    words, counts = _words(chunk_counts)
    merges: list[tuple[int, int]] = []
    vocab = [bytes([i]) for i in range(256)]
    while len(merges) < n_merges:
        pair_counts: Counter[tuple[int, int]] = Counter()
        for w, c in zip(words, counts, strict=True):
            for p in zip(w, w[1:], strict=False):
                if vocab[p[0]] + vocab[p[1]] not in vocab:
                    pair_counts[p] += c
        if not pair_counts:
            break
        a, b = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        new = 256 + len(merges)
        words = [merge_word(w, a, b, new) for w in words]
        merges.append((a, b))
        vocab.append(vocab[a] + vocab[b])
    return merges


def merges_to_ranks(merges: list[tuple[int, int]]) -> dict[bytes, int]:
    """tiktoken's mergeable_ranks: token bytes -> id (= rank), bytes first, then each merge."""
    vocab = [bytes([i]) for i in range(256)]
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])
    ranks = {tok: i for i, tok in enumerate(vocab)}
    if len(ranks) != len(vocab):
        raise ValueError("BPE merges spell the same token twice; tiktoken needs one id per token")
    return ranks
