"""Security: no loader can run code from a file, `deepdive serve` listens on 127.0.0.1 unless
told otherwise, and downloads are checked (size and sha256) and kept inside the cache folder."""

from __future__ import annotations

import ast
import hashlib
import os
import pickle
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("engine", "tui", "deepdive")
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve",
                  "joblib"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_no_shipped_code_can_unpickle_or_eval_file_contents():
    """Parsed, not grepped: comments and docs may say "pickle"; code may not use it."""
    found = []
    for path in sorted(p for d in SHIPPED for p in (ROOT / d).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in UNSAFE_MODULES for n in names):
                    found.append(f"{path}:{node.lineno} imports {names}")
        for call, name in _calls(tree):
            keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if name in ("torch.load", "eval", "exec", "pickle.loads", "pickle.load") or (
                    name.endswith(("np.load", "numpy.load"))
                    and keywords.get("allow_pickle") == "True"):
                found.append(f"{path}:{call.lineno} calls {name}")
    assert found == []


class Hostile:
    """Unpickling this creates ``marker`` (what an attacker's payload would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_renamed_to_safetensors_is_refused_and_never_run(tmp_path):
    from engine.model.checkpoint import (
        CheckpointError,
        load_checkpoint,
        load_optimizer,
        save_checkpoint,
    )
    from engine.model.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=8))
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path / "base", model, {"step": 1}, optimizer=opt)
    marker = tmp_path / "EXECUTED"
    payload = pickle.dumps(Hostile(marker))
    assert pickle.loads(payload) is not None and marker.exists()  # the payload does work ...
    marker.unlink()
    for name in ("model.safetensors", "optimizer.safetensors"):
        (tmp_path / "base" / name).write_bytes(payload)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(tmp_path / "base")
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        load_optimizer(tmp_path / "base", opt)
    assert not marker.exists()  # ... and no loader ran it


def test_serve_listens_on_127_0_0_1_by_default(tmp_path):
    from deepdive.commands import demo

    if not Path("/proc/net/tcp").exists():
        pytest.skip("reads the listening sockets from /proc/net/tcp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "deepdive.cli", "serve", "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        addresses = _wait_listening(port, proc)
    finally:
        proc.kill()
        proc.wait(10)
    assert addresses == {"127.0.0.1"}  # not 0.0.0.0: nobody else on the network
    assert demo.build_server.__defaults__[0] == "127.0.0.1"


def _wait_listening(port: int, proc: subprocess.Popen, seconds: float = 60) -> set[str]:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        found = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            host, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the server never listened")


@pytest.mark.parametrize("name", ["../../x", "/etc", "a/../../b", "..", "a\\b", "a\x00b",
                                  "owner/name/extra", ""])
def test_model_names_that_could_leave_the_cache_are_refused(name, tmp_path, monkeypatch):
    from engine.model.gpt2 import GPT2ImportError, download_cache, download_gpt2

    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DEEPDIVE_HF_BASE", "http://127.0.0.1:9")  # never reached
    with pytest.raises(GPT2ImportError, match="not a Hugging Face model name"):
        download_gpt2(name)
    with pytest.raises(GPT2ImportError):
        download_cache(name)
    assert not (tmp_path / "cache").exists()  # nothing was written anywhere


def test_good_names_stay_inside_the_cache(tmp_path, monkeypatch):
    from engine.model.gpt2 import download_cache

    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path))
    for name in ("gpt2", "openai-community/gpt2", "a.b_c-d"):
        assert download_cache(name).resolve().is_relative_to((tmp_path / "hf").resolve())


class _Files(ThreadingHTTPServer):
    """Serves ``files`` (name -> (bytes, the sha256 it claims in X-Linked-ETag))."""

    def __init__(self, files: dict[str, tuple[bytes, str]]):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.seen.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                data, claim = server.files[name]
                if self.path.startswith("/hub/"):  # the Hub: the hash, and a redirect to a CDN
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{name}")
                    self.send_header("X-Linked-ETag", f'"{claim}"')
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                if not self.path.startswith("/cdn/"):  # a CDN does not repeat the hash
                    self.send_header("X-Linked-ETag", f'"{claim}"')
                self.end_headers()
                self.wfile.write(data)

        self.files, self.seen = files, []
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_port}"


def test_a_download_whose_hash_does_not_match_is_deleted_not_used(tmp_path):
    from engine.model.gpt2 import DownloadError, download_file

    good, bad = b"weights" * 1000, b"tampered" * 1000
    server = _Files({"ok.bin": (good, hashlib.sha256(good).hexdigest()),
                     "bad.bin": (bad, hashlib.sha256(good).hexdigest())})
    try:
        assert download_file(f"{server.url}/ok.bin", tmp_path / "ok.bin").read_bytes() == good
        with pytest.raises(DownloadError, match=r"bad\.bin: hash mismatch"):
            download_file(f"{server.url}/bad.bin", tmp_path / "bad.bin", retries=0)
        with pytest.raises(DownloadError, match=r"bad\.bin: hash mismatch"):  # via a CDN
            download_file(f"{server.url}/hub/bad.bin", tmp_path / "bad.bin", retries=0)
        with pytest.raises(DownloadError, match="hash mismatch"):  # an expected hash, given
            download_file(f"{server.url}/ok.bin", tmp_path / "ok2.bin", retries=0,
                          sha256=hashlib.sha256(b"other").hexdigest())
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.bin"]  # no bad file, no .part


def test_a_plain_etag_of_64_hex_digits_is_not_taken_for_the_files_sha256(tmp_path):
    """GitHub's raw files (gsm8k, alpaca) answer with an ETag that may look like a sha256 and
    need not be one: only Hugging Face's X-Linked-ETag states the content's hash."""
    from engine.model.gpt2 import download_file

    data = b"grade school maths\n" * 500
    opaque = hashlib.sha256(b"some other validator").hexdigest()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'W/"{opaque}"')
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        got = download_file(f"http://127.0.0.1:{server.server_port}/train.jsonl",
                            tmp_path / "train.jsonl", retries=0)
    finally:
        server.shutdown()
        server.server_close()
    assert got.read_bytes() == data


def test_gpt2_weights_that_are_not_openais_are_refused(tmp_path, monkeypatch):
    """Under the name gpt2 only OpenAI's weights are accepted (their sha256 is pinned): a
    mirror serving other bytes, stating no hash or its own, is refused and nothing is kept."""
    from engine.model.gpt2 import DownloadError, download_gpt2

    fake = b"not the weights" * 100
    server = _Files({f: (fake, hashlib.sha256(fake).hexdigest())
                     for f in ("config.json", "model.safetensors", "vocab.json", "merges.txt")})
    monkeypatch.setenv("DEEPDIVE_HF_BASE", server.url)
    try:
        with pytest.raises(DownloadError, match=r"model\.safetensors: hash mismatch"):
            download_gpt2("GPT2", tmp_path / "gpt2")  # the pin holds whatever the casing
        assert not (tmp_path / "gpt2" / "model.safetensors").exists()
        assert not list((tmp_path / "gpt2").glob("*.part"))
        # fetched at the pinned revision, not at whatever "main" is today
        assert all("/resolve/607a30d783dfa663caf39e06633721c8d4cfcd7e/" in p for p in server.seen)
        (tmp_path / "gpt2" / "model.safetensors").write_bytes(fake)  # cached before the pin
        with pytest.raises(DownloadError, match="cached file does not match its pinned"):
            download_gpt2("gpt2", tmp_path / "gpt2")
    finally:
        server.shutdown()
        server.server_close()
