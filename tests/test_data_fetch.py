"""`deepdive data fetch`: public datasets come down only when asked, through the resumable,
size- and hash-checked downloader, and land in the layout `deepdive data check` and
`deepdive train --*-data` read. A server on 127.0.0.1 serves fixtures the tests make, at the
registry's own paths (DEEPDIVE_FETCH_MIRROR)."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from deepdive.cli import app
from engine.data.check import check_data
from engine.data.fetch import DATASETS


class Mirror(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes); can cut a file's first response halfway and state
    a sha256 (X-Linked-ETag) of its choosing."""

    def __init__(self, files: dict[str, bytes], cut_first: bool = False,
                 claims: dict[str, str] | None = None):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) \
                    if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                if self.path in server.claims:
                    self.send_header("X-Linked-ETag", f'"{server.claims[self.path]}"')
                self.end_headers()
                body = data[start:]
                if cut_first and server.requests.count(self.path) == 1:
                    body = body[: len(body) // 2]  # the connection drops
                self.wfile.write(body)

        self.files, self.requests, self.claims = files, [], claims or {}
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_port}"

    def close(self):
        self.shutdown()
        self.server_close()


def _path(name: str, i: int = 0) -> str:
    return urlsplit(DATASETS[name].sources[i].url).path


def _gsm8k_rows(n: int, start: int = 0) -> bytes:
    rows = [{"question": f"Tom has {k} apples and buys 2 more. How many now?",
             "answer": f"He has {k} + 2 = {k + 2} apples.\n#### {k + 2:,}"}
            for k in range(start, start + n)]
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DEEPDIVE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _serve(monkeypatch, mirror: Mirror) -> Mirror:
    monkeypatch.setenv("DEEPDIVE_FETCH_MIRROR", mirror.url)
    return mirror


def test_gsm8k_comes_down_resumed_and_trains_as_rl_data(cache, monkeypatch):
    files = {_path("gsm8k", 0): _gsm8k_rows(40), _path("gsm8k", 1): _gsm8k_rows(5, 1000)}
    mirror = _serve(monkeypatch, Mirror(files, cut_first=True))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", "gsm8k"])
        assert got.exit_code == 0, got.output
        folder = cache / "data" / "gsm8k"
        assert (folder / "train" / "train.jsonl").read_bytes() == files[_path("gsm8k", 0)]
        assert not list(folder.rglob("*.part"))
        # each file's first response was cut halfway: the second request resumed it
        assert mirror.requests.count(_path("gsm8k", 0)) == 2
        # the folder the command says to train on holds the train split only
        assert f"--rl-data{folder / 'train'}" in "".join(got.output.split())
        report = check_data(folder / "train", "rl", "refuse", None)
        assert report.n_items == 40 and not report.problems
        test = check_data(folder / "test", "rl", "refuse", None)
        assert test.n_items == 5  # '#### 1,002' parsed as 1002
        before = len(mirror.requests)
        assert CliRunner().invoke(app, ["data", "fetch", "gsm8k"]).exit_code == 0
        assert len(mirror.requests) == before  # already here: nothing fetched again
    finally:
        mirror.close()


def test_tinystories_is_rewritten_into_documents_and_its_text_stays_text(cache, monkeypatch):
    raw = (b"Once upon a time a cat sat.\nIt was happy.\n<|endoftext|>\n"
           b"A dog wrote <|bos|> on a wall.\n<|endoftext|>\nThe end came.\n")
    mirror = _serve(monkeypatch, Mirror({_path("tinystories-valid"): raw}))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", "tinystories-valid"])
    finally:
        mirror.close()
    assert got.exit_code == 0, got.output
    folder = cache / "data" / "tinystories-valid"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == \
        ["TinyStories-valid.txt"]
    assert not list((folder / ".download").iterdir())  # the raw copy is gone once rewritten
    from engine.api import get_encoding

    report = check_data(folder, "pretrain", "refuse", get_encoding("cl100k_base"))
    assert report.n_items == 3  # three stories, the separators gone, "<|bos|>" kept as text
    assert "<|bos|> on a wall" in (folder / "TinyStories-valid.txt").read_text()


def test_a_file_that_is_not_what_the_server_says_is_refused_and_not_kept(cache, monkeypatch):
    good, bad = _gsm8k_rows(3), _gsm8k_rows(3, 50)
    files = {_path("gsm8k", 0): bad, _path("gsm8k", 1): good}
    claims = {_path("gsm8k", 0): hashlib.sha256(good).hexdigest()}
    mirror = _serve(monkeypatch, Mirror(files, claims=claims))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", "gsm8k"])
    finally:
        mirror.close()
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "hash mismatch" in got.output
    assert not (cache / "data" / "gsm8k" / "train.jsonl").exists()


def test_fetch_without_a_server_or_a_name_says_so(cache, monkeypatch):
    monkeypatch.setenv("DEEPDIVE_FETCH_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr("engine.model.gpt2.time.sleep", lambda s: None)  # its retry pauses
    got = CliRunner().invoke(app, ["data", "fetch", "gsm8k"])
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "rerun resumes" in " ".join(got.output.split())
    listed = CliRunner().invoke(app, ["data", "fetch", "--list"])
    assert listed.exit_code == 0 and "gsm8k" in listed.output
    assert "fineweb-edu-sample" in listed.output and "alpaca" in listed.output
    assert CliRunner().invoke(app, ["data", "fetch"]).exit_code == 2


# -- a FineWeb-Edu sample: one parquet shard, kept as it is -------------------------------------

FINEWEB = "fineweb-edu-sample"
DOCS = ["Photosynthesis turns light into sugar.", "A <|endoftext|> stays text here.",
        "Rivers carry silt to the sea."]


def _parquet(tmp_path: Path, texts: list[str], column: str = "text") -> bytes:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / f"fixture-{column}.parquet"
    pq.write_table(pa.table({column: texts}), path)
    return path.read_bytes()


def test_fineweb_edu_comes_down_resumed_and_reads_as_pretraining_data(cache, tmp_path,
                                                                      monkeypatch):
    data = _parquet(tmp_path, DOCS)
    mirror = _serve(monkeypatch, Mirror({_path(FINEWEB): data}, cut_first=True))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", FINEWEB])
        assert got.exit_code == 0, got.output
        folder = cache / "data" / FINEWEB
        assert (folder / "shard_00000.parquet").read_bytes() == data
        assert mirror.requests.count(_path(FINEWEB)) == 2  # cut halfway, then resumed
        assert "3 rows in its 'text' column" in got.output
        assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == \
            ["shard_00000.parquet"]
        assert not list(folder.rglob("*.part")) and not list((folder / ".download").iterdir())
        before = len(mirror.requests)
        assert CliRunner().invoke(app, ["data", "fetch", FINEWEB]).exit_code == 0
        assert len(mirror.requests) == before  # already here: nothing fetched again
    finally:
        mirror.close()
    checked = CliRunner().invoke(app, ["data", "check", str(folder), "--kind", "pretrain",
                                       "--on-bad", "refuse"])
    assert checked.exit_code == 0, checked.output
    from engine.api import get_encoding

    report = check_data(folder, "pretrain", "refuse", get_encoding("cl100k_base"))
    assert report.n_items == 3 and not report.problems


def test_fineweb_edu_that_is_not_what_the_server_states_is_refused(cache, tmp_path,
                                                                   monkeypatch):
    good, bad = _parquet(tmp_path, DOCS), _parquet(tmp_path, DOCS[:1])
    claims = {_path(FINEWEB): hashlib.sha256(good).hexdigest()}
    mirror = _serve(monkeypatch, Mirror({_path(FINEWEB): bad}, claims=claims))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", FINEWEB])
    finally:
        mirror.close()
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "hash mismatch" in got.output
    assert not list((cache / "data" / FINEWEB).rglob("*.parquet*"))


def test_a_parquet_without_a_text_column_is_refused_and_not_kept(cache, tmp_path, monkeypatch):
    mirror = _serve(monkeypatch, Mirror({_path(FINEWEB): _parquet(tmp_path, DOCS, "content")}))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", FINEWEB])
    finally:
        mirror.close()
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "no 'text' column" in got.output
    assert not list((cache / "data" / FINEWEB).rglob("*.parquet*"))  # a rerun fetches anew


def test_fineweb_edu_without_pyarrow_says_how_to_get_it_before_downloading(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as if missing
    mirror = _serve(monkeypatch, Mirror({_path(FINEWEB): b"PAR1"}))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", FINEWEB])
    finally:
        mirror.close()
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "pip install -e '.[parquet]'" in got.output
    assert mirror.requests == []  # nothing downloaded that could not be read


# -- Stanford Alpaca: a JSON list rewritten into SFT conversations ------------------------------

ALPACA_ROWS = [
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say something odd.", "input": "", "output": "I wrote <|endoftext|> once."},
    {"instruction": "Answer nothing.", "input": "", "output": ""},  # cannot be a conversation
    {"instruction": "", "input": "lonely input", "output": "No question was asked."},
    {"instruction": "Null input is no input.", "input": None, "output": "Fine."},
    "not an object",
    {"instruction": "Half a character.", "input": "", "output": "\ud800"},  # not text
]


def _alpaca() -> bytes:
    return json.dumps(ALPACA_ROWS, indent=2).encode()


def test_alpaca_comes_down_resumed_as_conversations_its_bad_rows_counted(cache, monkeypatch):
    mirror = _serve(monkeypatch, Mirror({_path("alpaca"): _alpaca()}, cut_first=True))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", "alpaca"])
        assert got.exit_code == 0, got.output
        assert mirror.requests.count(_path("alpaca")) == 2  # cut halfway, then resumed
        assert "4 conversations, 4 rows skipped" in got.output
        before = len(mirror.requests)
        assert CliRunner().invoke(app, ["data", "fetch", "alpaca"]).exit_code == 0
        assert len(mirror.requests) == before  # already here: nothing fetched again
    finally:
        mirror.close()
    folder = cache / "data" / "alpaca"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == \
        ["alpaca_data.jsonl"]
    assert not list(folder.rglob("*.part")) and not list((folder / ".download").iterdir())
    checked = CliRunner().invoke(app, ["data", "check", str(folder), "--kind", "sft",
                                       "--on-bad", "refuse"])
    assert checked.exit_code == 0, checked.output
    from engine.data.readers import read_conversations

    chats = read_conversations(folder, "refuse").items
    assert [c[0]["content"] for c in chats[:2]] == \
        ["Name a primary colour.", "Add the numbers.\n\n2 and 3"]
    assert chats[2][1] == {"role": "assistant", "content": "I wrote <|endoftext|> once."}
    assert chats[3][0]["content"] == "Null input is no input."


def test_alpaca_that_is_not_what_the_server_states_is_refused(cache, monkeypatch):
    claims = {_path("alpaca"): hashlib.sha256(b"something else").hexdigest()}
    mirror = _serve(monkeypatch, Mirror({_path("alpaca"): _alpaca()}, claims=claims))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", "alpaca"])
    finally:
        mirror.close()
    assert got.exit_code == 2 and "hash mismatch" in got.output
    assert not list((cache / "data" / "alpaca").rglob("alpaca_data*"))


def test_alpaca_that_is_not_json_is_refused_and_fetched_anew(cache, monkeypatch):
    mirror = _serve(monkeypatch, Mirror({_path("alpaca"): b"<html>rate limited</html>"}))
    try:
        got = CliRunner().invoke(app, ["data", "fetch", "alpaca"])
    finally:
        mirror.close()
    assert got.exit_code == 2 and "Traceback" not in got.output
    assert "not a JSON file" in got.output
    assert not list((cache / "data" / "alpaca").rglob("alpaca_data*"))


def test_a_rewrite_cut_short_leaves_no_readable_half_file(cache, monkeypatch):
    from engine.data import fetch

    calls = []

    def dies_on_the_third_row(messages):
        calls.append(messages)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return ""

    folder = cache / "data" / "alpaca"
    mirror = _serve(monkeypatch, Mirror({_path("alpaca"): _alpaca()}))
    try:
        with monkeypatch.context() as patched:
            patched.setattr(fetch, "conversation_problem", dies_on_the_third_row)
            with pytest.raises(RuntimeError, match="power cut"):
                fetch.fetch_dataset("alpaca")
        assert not [p for p in folder.iterdir() if p.is_file()]  # no half file, hidden or not
        assert (folder / ".download" / "alpaca_data.json").read_bytes() == _alpaca()
        before = len(mirror.requests)
        assert fetch.fetch_dataset("alpaca") == folder
        assert len(mirror.requests) == before  # the whole raw file was reused, not fetched
    finally:
        mirror.close()
    assert check_data(folder, "sft", "refuse", None).n_items == 4
