"""The model client: load a run's models, keep them, sample from them.

Front ends reach it through engine/api.py (``ModelClient``, ``StreamRequest``,
``shared_client``); panes never touch torch or checkpoints themselves. Today it runs the model in
the caller's thread (a pane's worker thread); moving inference to another process later changes
this file only.

- ``shared_client()`` is the app-wide instance (one cache of loaded models for every pane).
  Panes take it by default; tests and benches may hand a pane their own client.
- Every method may block (first use imports torch, which takes seconds: docs/measurements.md;
  loading a model reads its files): call them from worker threads, never from the UI thread.
- Thread-safe: the cache sits behind a lock, and each (run, stage) loads once even when
  several threads ask at the same moment (the Compare pane's columns do).
- Several streams at once: ``stream_many`` decodes columns whose models share a shape (base,
  SFT, RL of one run) as one batch over stacked weights, and interleaves the events; one
  ``stream`` per thread also works (torch releases the GIL inside its kernels) but on a small
  CPU costs about one column's time per column.

Unlike its neighbours in engine/model/, this module imports torch and the engine inside methods
only, so that importing it (and engine.api) is free: the app's first frame must never wait.
"""

from __future__ import annotations

import gc
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.run import MODEL_FILE, TOKENIZER_FILE


@dataclass
class StreamRequest:
    """One column of ``stream_many``: which model, which prompt, how to sample."""

    run: str
    stage: str
    prompt_ids: list[int]
    settings: Any  # engine.model.sampler.SampleSettings
    stop_ids: list[int] = field(default_factory=list)


@dataclass
class _Loaded:
    model: Any
    meta: dict
    stamp: tuple  # (mtime_ns, size) of model.safetensors when loaded: a retrain makes it stale


class ModelClient:
    """Loads models lazily, caches them by (run folder, stage), samples from them."""

    def __init__(self, device: str | None = None, max_models: int = 6):
        self.device_name = device  # None: the best device here (engine.model.device.pick_device)
        self.max_models = max_models  # oldest loaded model is dropped past this many
        self._lock = threading.Lock()  # guards the dicts below
        self._models: dict[tuple[str, str], _Loaded] = {}
        self._tokenizers: dict[str, tuple[Any, tuple]] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._stacked: tuple | None = None  # (the _Loaded models, their StackedGPT), the last one

    # ------------------------------------------------------------------ loading

    def load(self, run: str, stage: str) -> dict:
        """Load (or find loaded) the ``stage`` model of ``run`` and return its meta.json.

        Raises engine.model.checkpoint.CheckpointError (a clear message naming the file) when the
        run, the stage or its files are missing or broken.
        """
        return self._get(run, stage).meta

    def model(self, run: str, stage: str):
        """The loaded torch model (in eval mode) of ``run``/``stage``."""
        return self._get(run, stage).model

    def block_size(self, run: str, stage: str) -> int:
        return int(self.load(run, stage)["config"]["block_size"])

    def tokenizer(self, run: str):
        """The run's tokenizer cached until its file changes."""
        from engine.model.checkpoint import CheckpointError

        path = self._run_dir(run) / TOKENIZER_FILE
        stamp = _stamp(path)
        if stamp is None:
            raise CheckpointError(f"{path}: missing (the run's tokenizer)")
        from engine.tokens.tokenizer import Tokenizer  # after the cheap checks: it loads tiktoken
        key = str(path)
        with self._lock:
            hit = self._tokenizers.get(key)
        if hit is not None and hit[1] == stamp:
            return hit[0]
        try:
            tok = Tokenizer.load(path)
        except (ValueError, KeyError, OSError) as e:
            raise CheckpointError(f"{path}: cannot load tokenizer ({e})") from None
        with self._lock:
            self._tokenizers[key] = (tok, stamp)
        return tok

    def forget(self, run: str | None = None) -> None:
        """Drop cached models (of one run, or all), e.g. to free memory."""
        with self._lock:
            self._stacked = None  # it may hold weights of the models dropped here
            if run is None:
                self._models.clear()
                self._tokenizers.clear()
                return
            prefix = str(self._run_dir(run))
            for key in [k for k in self._models if k[0] == prefix]:
                del self._models[key]
            self._tokenizers.pop(str(Path(prefix) / TOKENIZER_FILE), None)

    def loaded(self) -> list[tuple[str, str]]:
        """(run folder, stage) of every model in memory now."""
        with self._lock:
            return list(self._models)

    def _run_dir(self, run: str) -> Path:
        from engine.run import resolve_run

        return resolve_run(run).resolve()

    def _get(self, run: str, stage: str) -> _Loaded:
        key = (str(self._run_dir(run)), stage)
        stamp = _stamp(Path(key[0]) / stage / MODEL_FILE)
        with self._lock:
            hit = self._models.get(key)
            if hit is not None and hit.stamp == stamp:
                return hit
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:  # one loader per model; others wait for it, then find it cached
            with self._lock:
                hit = self._models.get(key)
            if hit is not None and hit.stamp == stamp:
                return hit
            loaded = self._load_from_disk(key[0], stage, stamp)
            with self._lock:
                self._models[key] = loaded
                while len(self._models) > self.max_models:
                    del self._models[next(iter(self._models))]  # dicts keep insertion order
            return loaded

    def _load_from_disk(self, run_dir: str, stage: str, stamp) -> _Loaded:
        from engine.model.checkpoint import load_run_model
        from engine.model.device import pick_device

        model, tok, meta = load_run_model(run_dir, stage, device=pick_device(self.device_name))
        # eval for good: the sampler restores the mode it found, so concurrent streams on one
        # model never see it flip back to training mode.
        model.eval()
        with self._lock:
            self._tokenizers.setdefault(str(Path(run_dir) / TOKENIZER_FILE),
                                        (tok, _stamp(Path(run_dir) / TOKENIZER_FILE)))
        # Everything alive now (torch, the app, this model) lives as long as the app: take it
        # out of the cyclic GC's full scans, which otherwise stall the UI (docs/measurements.md)
        # once torch is imported (measured with bench/sample_ui.py). Refcounting still frees.
        gc.freeze()
        return _Loaded(model, meta, stamp)

    # ------------------------------------------------------------------ sampling

    def stream(self, run: str, stage: str, prompt_ids: Sequence[int], settings,
               stop_ids: Iterable[int] = (),
               cancel: threading.Event | None = None) -> Iterator:
        """engine.model.sampler.stream on the cached model: one TokenEvent per sampled token.

        Iterate it in the thread that created it (torch's inference mode is per thread).
        """
        from engine.model.sampler import stream

        loaded = self._get(run, stage)
        return stream(loaded.model, self.tokenizer(run), list(prompt_ids), settings,
                      stop_ids=tuple(stop_ids), cancel=cancel)

    def generate_batch(self, run: str, stage: str, prompts: list[list[int]], settings,
                       stop_ids: Iterable[int] = ()) -> list[list[int]]:
        """engine.model.sampler.generate_batch on the cached model: new ids per prompt."""
        from engine.model.sampler import generate_batch

        return generate_batch(self.model(run, stage), prompts, settings, stop_ids=tuple(stop_ids))

    def stream_many(self, requests: Sequence[StreamRequest],
                    cancel: threading.Event | None = None) -> Iterator[tuple[int, Any]]:
        """Stream several models at once; yields ``(column, item)`` as they come.

        ``item`` is a TokenEvent, or the Exception that ended that column (the other columns go
        on). The iterator ends when every column has finished. Setting ``cancel`` (or closing
        the iterator) stops every column at its next token.

        Columns whose models share a shape (base, SFT and RL of one run) decode together, one
        forward per step over their stacked weights (engine.model.stacked): at batch 1 a small model
        is bound by per-operation overhead, so three columns then cost about what one does.
        Each column still samples with its own settings, seed and stop ids, and gets the
        events ``stream`` would give it alone. A column whose model has a shape of its own
        streams in a thread of its own. Models load here, in the caller's thread, first.
        """
        from engine.model.sampler import check_prompt
        from engine.model.stacked import stack_key

        cancel = cancel or threading.Event()
        events: queue.Queue = queue.Queue(maxsize=4096)  # bounded: a slow reader slows the models
        done = object()
        reader_gone = threading.Event()

        def put(item) -> None:  # never block forever once the reader is gone
            while not reader_gone.is_set():
                try:
                    events.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        groups: dict[tuple, list[int]] = {}
        loaded: dict[int, tuple[_Loaded, Any]] = {}
        for i, req in enumerate(requests):
            try:
                if not req.prompt_ids:  # before loading anything
                    raise ValueError("empty prompt: give at least one token (e.g. <|bos|>)")
                model_tok = self._get(req.run, req.stage), self.tokenizer(req.run)
                # here, not in the stacked decode: one column's bad ids must not end the others
                check_prompt(req.prompt_ids, model_tok[0].model.config.vocab_size)
                loaded[i] = model_tok
            except Exception as e:  # reported as that column's item; the others go on
                yield i, e
                continue
            groups.setdefault(stack_key(loaded[i][0].model), []).append(i)

        def group(columns: list[int]) -> None:
            try:
                for i, event in self._stream_group(columns, requests, loaded, cancel):
                    put((i, event))
            except Exception as e:  # the group decodes as one: every column of it failed
                for i in columns:
                    put((i, e))
            finally:
                put((columns, done))

        threads = [threading.Thread(target=group, args=(cols,), daemon=True,
                                    name=f"stream-{'-'.join(map(str, cols))}")
                   for cols in groups.values()]
        for t in threads:
            t.start()
        remaining = len(threads)
        try:
            while remaining:
                i, item = events.get()
                if item is done:
                    remaining -= 1
                else:
                    yield i, item
        finally:
            reader_gone.set()
            if remaining:  # the reader left early: stop the columns (a full read leaves cancel be)
                cancel.set()
            for t in threads:
                t.join(timeout=5)

    def _stream_group(self, columns: list[int], requests: Sequence[StreamRequest],
                      loaded: dict, cancel: threading.Event) -> Iterator[tuple[int, Any]]:
        """(column, TokenEvent) of same-shape columns: plain ``stream`` for one, stacked for
        several (the stacked weights are kept for the next prompt on the same models)."""
        from engine.model.sampler import stream
        from engine.model.stacked import StackedGPT, stream_stacked

        reqs = [requests[i] for i in columns]
        if len(columns) == 1:
            (i,), req = columns, reqs[0]
            model, tok = loaded[i][0].model, loaded[i][1]
            for event in stream(model, tok, req.prompt_ids, req.settings,
                                tuple(req.stop_ids), cancel):
                yield i, event
            return
        parts = tuple(loaded[i][0] for i in columns)
        with self._lock:
            hit = self._stacked
        if hit is not None and len(hit[0]) == len(parts) and all(
                a is b for a, b in zip(hit[0], parts, strict=True)):
            stacked = hit[1]
        else:  # stacking copies every weight: keep the last stack (the Compare pane re-runs it)
            stacked = StackedGPT([p.model for p in parts])
            with self._lock:
                self._stacked = (parts, stacked)
        for row, event in stream_stacked([p.model for p in parts],
                                         [loaded[i][1] for i in columns],
                                         [r.prompt_ids for r in reqs], [r.settings for r in reqs],
                                         [r.stop_ids for r in reqs], cancel, stacked=stacked):
            yield columns[row], event


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


_shared: ModelClient | None = None
_shared_lock = threading.Lock()


def shared_client() -> ModelClient:
    """The app-wide client: every pane that passes no client of its own uses this one."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ModelClient()
        return _shared
