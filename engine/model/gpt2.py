"""Import OpenAI's GPT-2 weights (a Hugging Face folder) as a deepdive run.

A Hugging Face GPT-2 folder holds ``config.json``, ``model.safetensors``, ``vocab.json`` and
``merges.txt``. The weights map onto ``GPT(arch="gpt2")`` one to one, except that HF stores its
linear layers as ``Conv1D`` with the matrix transposed. The tokenizer becomes a tiktoken Encoding
(``engine.tokens.tokenizer.tokenizer_from_hf_folder``). The result is a run folder like any trained
one: ``tokenizer.json``, ``run.json`` and ``base/``.

Downloading is separate and explicit (``deepdive import gpt2 --download NAME``): plain HTTPS,
resumable through HTTP Range requests into ``<file>.part``, each file's size checked against
what the server announced and its sha256 against the one it states (HF's X-Linked-ETag for
large files) before the file is used; model names are checked so the cache folder cannot be escaped.
Nothing downloads unless the user asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from http.client import HTTPException
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

from engine.model.checkpoint import save_checkpoint, weights_mismatch
from engine.model.gpt import GPT, GPTConfig
from engine.run import PRETRAIN, TOKENIZER_FILE, RunFolder, cache_root

HF_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
# The weights of OpenAI's GPT-2 small as the Hub serves them (revision 607a30d7, 548,105,171
# bytes): a mirror or a proxy that serves other bytes under this name is refused even where it
# states no hash, or states one that matches its own tampered file.
# It is fetched at that revision, not "main", so a later commit on the Hub cannot turn a good
# download into a refused one.
PINNED = dict.fromkeys(
    ("gpt2", "openai-community/gpt2"),
    {"revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
     "model.safetensors": "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707"})
HF_BASE = "https://huggingface.co"
# HF's Conv1D keeps weights as (in, out); nn.Linear wants (out, in).
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")

Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total or None)


class GPT2ImportError(ValueError):
    """A folder or file that cannot be imported; the message names it and says why."""


# ---------------------------------------------------------------- weights


def config_from_hf(path: Path) -> GPTConfig:
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise GPT2ImportError(f"{path}: cannot read GPT-2 config ({e})") from None
    if hf.get("model_type", "gpt2") != "gpt2":
        raise GPT2ImportError(f"{path}: model_type {hf.get('model_type')!r} is not gpt2")
    n_embd = hf.get("n_embd", 768)
    checks = {
        "activation_function": (hf.get("activation_function", "gelu_new") in TANH_GELUS),
        "layer_norm_epsilon": (abs(hf.get("layer_norm_epsilon", 1e-5) - 1e-5) < 1e-12),
        "n_inner": hf.get("n_inner") in (None, 4 * n_embd),
        "tie_word_embeddings": hf.get("tie_word_embeddings", True) is True,
        "scale_attn_by_inverse_layer_idx": not hf.get("scale_attn_by_inverse_layer_idx", False),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise GPT2ImportError(f"{path}: GPT-2 variant not supported (differs in {', '.join(bad)})")
    return GPTConfig(vocab_size=hf.get("vocab_size", 50257),
                     block_size=hf.get("n_positions", hf.get("n_ctx", 1024)),
                     n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12),
                     n_embd=n_embd, arch="gpt2")


def convert_state_dict(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF GPT-2 tensor names/layouts -> ours (``transformer.`` prefix, Linear orientation)."""
    out = {}
    for key, value in hf.items():
        name = key if key.startswith("transformer.") else f"transformer.{key}"
        if name.endswith((".attn.bias", ".attn.masked_bias")) or key == "lm_head.weight":
            continue  # causal-mask buffers, and the head that is tied to wte anyway
        if name.endswith(CONV1D):
            value = value.t()
        out[name] = value.float().contiguous()
    return out


def load_hf_gpt2(folder: str | Path) -> GPT:
    """A GPT(arch="gpt2") with the weights of a Hugging Face GPT-2 folder."""
    folder = Path(folder)
    config = config_from_hf(folder / "config.json")
    path = folder / "model.safetensors"
    if not path.is_file():
        hint = " (pytorch_model.bin is pickle, which deepdive never loads)" if (
            folder / "pytorch_model.bin").exists() else ""
        raise GPT2ImportError(f"{path}: missing{hint}")
    try:
        hf = st_load(path.read_bytes())
    except (SafetensorError, ValueError) as e:
        raise GPT2ImportError(f"{path}: not a readable safetensors file ({e})") from None
    if "lm_head.weight" in hf and "transformer.wte.weight" in hf and not torch.equal(
            hf["lm_head.weight"], hf["transformer.wte.weight"]):
        raise GPT2ImportError(f"{path}: lm_head differs from wte (only tied heads are supported)")
    state = convert_state_dict(hf)
    model = GPT(config)
    problem = weights_mismatch(model, state)
    if problem:
        raise GPT2ImportError(f"{path}: tensors do not fit config.json ({problem})")
    model.load_state_dict(state, strict=False)
    return model


def import_gpt2(folder: str | Path, run_dir: str | Path, source: str | None = None) -> Path:
    """Write a run folder (tokenizer.json, run.json, base/) from a HF GPT-2 folder."""
    folder, run = Path(folder), RunFolder(run_dir)
    missing = [f for f in HF_FILES if not (folder / f).is_file()]
    if missing:
        raise GPT2ImportError(f"{folder}: not a GPT-2 folder, missing {', '.join(missing)}")
    if run.model_dir(PRETRAIN.folder).exists():
        raise GPT2ImportError(f"{run.path}: already holds a base model; choose another --run")
    model = load_hf_gpt2(folder)
    from engine.tokens.tokenizer import tokenizer_from_hf_folder  # BPE from vocab.json + merges.txt

    tok = tokenizer_from_hf_folder(folder)
    if tok.n_vocab > model.config.vocab_size:
        raise GPT2ImportError(f"{folder / 'vocab.json'}: {tok.n_vocab} tokens, "
                           f"but the model has only {model.config.vocab_size}")
    run.path.mkdir(parents=True, exist_ok=True)
    tok.save(run.tokenizer)
    info = {"kind": "import", "arch": "gpt2", "source": source or str(folder.resolve()),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__}
    run.write_info(info)
    save_checkpoint(run.model_dir(PRETRAIN.folder), model,
                    {"stage": PRETRAIN.folder, "step": 0, "metrics": {},
                     "tokenizer": TOKENIZER_FILE, "source": info["source"]})
    return run.path


# ---------------------------------------------------------------- download


class DownloadError(RuntimeError):
    pass


def hf_url(name: str, file: str, revision: str = "main") -> str:
    base = os.environ.get("DEEPDIVE_HF_BASE", HF_BASE).rstrip("/")
    return f"{base}/{name}/resolve/{revision}/{file}"


# A Hugging Face model id: "name" or "owner/name", each part starting with a letter or digit.
HF_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def check_model_name(name: str) -> str:
    """``name`` if it is a Hugging Face model id; it becomes a URL path and a cache folder, so
    anything else (``..``, a leading ``/``, backslashes, NUL) is refused before any request."""
    if not HF_NAME_RE.fullmatch(name) or ".." in name:
        raise GPT2ImportError(f"{name!r} is not a Hugging Face model name (like gpt2 or "
                              "owner/name: letters, digits, '.', '_', '-')")
    return name


def download_cache(name: str) -> Path:
    root = cache_root()
    folder = root / "hf" / check_model_name(name).replace("/", "--")
    if not folder.resolve().is_relative_to((root / "hf").resolve()):  # belt and braces
        raise GPT2ImportError(f"{name!r} would be stored outside {root / 'hf'}")
    return folder


def download_gpt2(name: str, dest: str | Path | None = None,
                  progress: Progress | None = None) -> Path:
    """Fetch a GPT-2 folder's four files (resuming any .part files); returns the folder."""
    check_model_name(name)
    dest = Path(dest) if dest else download_cache(name)
    dest.mkdir(parents=True, exist_ok=True)
    pinned = PINNED.get(name.lower(), {})
    for file in HF_FILES:
        download_file(hf_url(name, file, pinned.get("revision", "main")), dest / file,
                      progress, sha256=pinned.get(file))
    return dest


def download_file(url: str, path: Path, progress: Progress | None = None, retries: int = 5,
                  chunk: int = 1 << 20, sha256: str | None = None) -> Path:
    """Download url to path through ``path.part``; an interrupted transfer resumes where it
    stopped (HTTP Range). The file appears under its name only once complete, size-checked and,
    where a sha256 is known (``sha256``, or the X-Linked-ETag Hugging Face sends for large
    files), hash-checked."""
    if path.is_file():
        if sha256 and _sha256_of(path) != sha256:  # a cached copy from before the pin
            raise DownloadError(f"{path}: cached file does not match its pinned sha256; "
                                "delete it to download it again")
        return path
    part = path.with_name(path.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(0.2 * 2**attempt, 5))
        have = part.stat().st_size if part.exists() else 0
        try:
            total, etag = _fetch_into(url, part, have, progress, chunk)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # our .part is bad/stale: start over
                part.unlink()
                last_error = e
                continue
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, HTTPException, OSError) as e:
            last_error = e  # cut connection, timeout: try again from where we are
            continue
        size = part.stat().st_size
        if total is not None and size != total:
            last_error = DownloadError(f"{url}: got {size} of {total} bytes")
            if size > total:
                part.unlink()
            continue
        _check_hash(part, path.name, sha256 or etag)
        os.replace(part, path)
        return path
    raise DownloadError(f"{url}: gave up after {retries + 1} tries ({last_error}); "
                        f"rerun to resume from {part}")


def _check_hash(part: Path, name: str, want: str | None) -> None:
    """A finished download whose sha256 is known must match it, or it is deleted, unused."""
    if not want:
        return
    got = _sha256_of(part)
    if got != want.lower():
        part.unlink()
        raise DownloadError(f"{name}: hash mismatch (sha256 {got[:12]}..., "
                            f"expected {want[:12]}...); the download was deleted, not used")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _etag_sha256(headers) -> str | None:
    """The sha256 a server states for the file: Hugging Face's X-Linked-ETag, if given. A plain
    ETag is an opaque validator (RFC 9110), not a promise about the bytes: 64 hex digits from
    another server (GitHub's raw files, say) need not be the content's sha256, and taking them
    for it would refuse good downloads."""
    value = (headers.get("X-Linked-ETag") or "").strip().removeprefix("W/").strip('"').lower()
    return value if SHA256_RE.fullmatch(value) else None


class _KeepRedirectHeaders(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, keeping the hash the redirect states: the Hub answers a
    large file with a redirect to its CDN carrying X-Linked-ETag (the file's sha256), and the
    CDN's own response does not repeat it."""

    sha256: str | None = None

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.sha256 = self.sha256 or _etag_sha256(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_into(url: str, part: Path, have: int, progress: Progress | None,
                chunk: int) -> tuple[int | None, str | None]:
    """One request: append to part from byte ``have``; returns (the file's full size if known,
    its sha256 if the server states one, on the response or on a redirect before it)."""
    headers = {"User-Agent": "deepdive"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    redirects = _KeepRedirectHeaders()
    with urllib.request.build_opener(redirects).open(req, timeout=30) as resp:
        if resp.status == 206:
            # "Content-Range: bytes START-END/TOTAL"
            unit_range, _, total_s = resp.headers.get("Content-Range", "").partition("/")
            start = int(unit_range.split()[-1].split("-")[0]) if unit_range else -1
            if not 0 <= start <= have:
                raise DownloadError(f"{url}: server resumed at byte {start}, not {have}")
            with open(part, "r+b") as f:
                f.truncate(start)  # keep only the bytes the server continues from
            total = int(total_s) if total_s.isdigit() else None
            have, mode = start, "ab"
        else:  # 200: the server ignored Range (or we asked for none): start from zero
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            have, mode = 0, "wb"
        name = part.name.removesuffix(".part")
        with open(part, mode) as f:
            while True:
                block = resp.read(chunk)
                if not block:
                    break
                f.write(block)
                have += len(block)
                if progress:
                    progress(name, have, total)
            f.flush()
            os.fsync(f.fileno())
        return total, redirects.sha256 or _etag_sha256(resp.headers)
