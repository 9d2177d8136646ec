"""GPT-2 import: same logits as transformers, a run folder that loads, resumable downloads."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from engine.model.gpt2 import (
    HF_FILES,
    DownloadError,
    GPT2ImportError,
    download_file,
    download_gpt2,
    import_gpt2,
    load_hf_gpt2,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, write_hf_gpt2):
    folder = tmp_path_factory.mktemp("hf-gpt2")
    return folder, write_hf_gpt2(folder)


def test_logits_match_transformers(hf_folder):
    folder, hf = hf_folder
    ours = load_hf_gpt2(folder).eval()
    idx = torch.randint(0, ours.config.vocab_size, (2, 40))
    with torch.no_grad():
        want = hf(idx).logits
        got, _ = ours(idx)
    assert (got - want).abs().max().item() <= 1e-4
    assert ours.lm_head.weight is ours.transformer.wte.weight


def test_greedy_decode_matches_transformers_generate(hf_folder):
    from engine.model.sampler import SampleSettings, generate_batch

    folder, hf = hf_folder
    ours = load_hf_gpt2(folder)
    prompt = [5, 70, 100, 33]
    with torch.no_grad():
        want = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                           pad_token_id=hf.config.eos_token_id, eos_token_id=None)
    got = generate_batch(ours, [prompt], SampleSettings(temperature=0, max_tokens=20))
    assert got[0] == want[0, len(prompt):].tolist()


def test_import_writes_a_run_that_loads(hf_folder, tmp_path):
    from engine.model.checkpoint import load_run_model

    folder, hf = hf_folder
    run = import_gpt2(folder, tmp_path / "gpt2-tiny")
    assert sorted(p.name for p in run.iterdir()) == ["base", "run.json", "tokenizer.json"]
    model, tok, meta = load_run_model(run, "base")
    assert meta["config"]["arch"] == "gpt2" and meta["step"] == 0
    ids = tok.encode(" the cat")
    assert tok.decode(ids) == " the cat"
    with torch.no_grad():
        assert torch.allclose(model(torch.tensor([ids]))[0], hf(torch.tensor([ids])).logits,
                              atol=1e-4)
    with pytest.raises(GPT2ImportError, match="already"):
        import_gpt2(folder, run)


def test_bad_folders_give_clear_errors(hf_folder, tmp_path):
    folder, _ = hf_folder
    with pytest.raises(GPT2ImportError, match="missing"):
        import_gpt2(tmp_path, tmp_path / "run")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(GPT2ImportError, match="llama"):
        load_hf_gpt2(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(GPT2ImportError, match="model.safetensors"):
        load_hf_gpt2(tmp_path)


# ---------------------------------------------------------------- download


class FixtureServer:
    """Serves files at /<name>/resolve/main/<file> on 127.0.0.1, honouring Range; can cut the
    first response of a file midway, the way a dropped connection does."""

    def __init__(self, root, cut_first: set[str] = frozenset(), cut_always: set[str] = frozenset(),
                 redirect: bool = False):
        self.root, self.requests = root, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                file = self.path.rsplit("/", 1)[-1]
                if redirect and "/resolve/" in self.path:  # the Hub sends big files to a CDN
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{file}")
                    self.end_headers()
                    return
                path = server.root / file
                server.requests.append((file, self.headers.get("Range")))
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                first = sum(1 for f, _ in server.requests if f == file) == 1
                if file in cut_always or (file in cut_first and first):
                    body = body[: len(body) // 2]  # then the connection closes early
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_resumes_an_interrupted_transfer(hf_folder, tmp_path, monkeypatch):
    folder, _ = hf_folder
    server = FixtureServer(folder, cut_first={"model.safetensors"}, redirect=True)
    monkeypatch.setenv("DEEPDIVE_HF_BASE", server.url)
    seen = []
    try:
        dest = download_gpt2("tiny/gpt2", tmp_path / "dl",
                             progress=lambda f, n, t: seen.append((f, n, t)))
    finally:
        server.close()
    for f in HF_FILES:
        assert (dest / f).read_bytes() == (folder / f).read_bytes()
    assert not list(dest.glob("*.part"))
    model_requests = [r for f, r in server.requests if f == "model.safetensors"]
    size = (folder / "model.safetensors").stat().st_size
    assert model_requests[0] is None and model_requests[1] == f"bytes={size // 2}-"
    assert ("model.safetensors", size, size) in seen
    # The downloaded folder imports like the original.
    assert torch.equal(load_hf_gpt2(dest)(torch.tensor([[1, 2]]))[0],
                       load_hf_gpt2(folder)(torch.tensor([[1, 2]]))[0])


def test_download_gives_up_with_the_part_file_kept(hf_folder, tmp_path):
    folder, _ = hf_folder
    server = FixtureServer(folder, cut_always={"vocab.json"})
    try:
        with pytest.raises(DownloadError, match=r"vocab\.json\.part"):
            download_file(f"{server.url}/x/resolve/main/vocab.json", tmp_path / "vocab.json",
                          retries=1)
        assert not (tmp_path / "vocab.json").exists()
        assert 0 < (tmp_path / "vocab.json.part").stat().st_size
        with pytest.raises(DownloadError, match="404"):
            download_file(f"{server.url}/x/resolve/main/nope.bin", tmp_path / "nope.bin")
    finally:
        server.close()
