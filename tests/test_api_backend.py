"""`--api-base`: an OpenAI-compatible /v1/completions server. A real mlx_lm.server started by the test on
127.0.0.1 serving a tiny random Qwen2 folder, and an in-process fake server for retries and garbage answers."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import model_fixtures as mf
from harness.models import Sampling
from harness.models.api import ApiBackend
from harness.cli import main
from harness.errors import UsageError
from harness.report import load_report, validate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlx_server(tmp_path_factory):
    pytest.importorskip("transformers")
    folder = mf.qwen2_folder(tmp_path_factory.mktemp("served") / "qwen2")
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    # its /v1/models scans the Hugging Face cache and answers nothing when there is none: give it an empty one
    cache = tmp_path_factory.mktemp("hf-cache")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "mlx_lm.server", "--model", str(folder), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=f, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlx_lm.server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield base, folder
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_generate_against_mlx_lm_server_matches_the_model_folder(mlx_server, capsys, tmp_path):
    base, folder = mlx_server
    prompt = "#!/bin/bash\necho"
    assert main(["generate", "--model", str(folder), "--prompt", prompt, "--max-tokens", "8"]) == 0
    local = capsys.readouterr().out
    rep = tmp_path / "g.json"
    assert main(["generate", "--api-base", base, "--prompt", prompt, "--max-tokens", "8", "--report", str(rep)]) == 0
    assert capsys.readouterr().out == local  # greedy: the server's mlx-lm and ours agree
    m = load_report(rep)["config"]["model"]
    assert m == {"backend": "openai", "url": base, "name": m["name"]} and m["name"]


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_eval_against_mlx_lm_server_writes_a_full_report(mlx_server, tmp_path, capsys):
    from test_eval_cli import make_suite

    base, _ = mlx_server
    suite = make_suite(tmp_path / "tasks")
    out = tmp_path / "r.json"
    assert main(["eval", "--api-base", base, "--tasks", str(suite), "--n", "3", "--k", "1,3", "--max-tokens", "8",
                 "--temperature", "0.8", "--out", str(out)]) == 0, capsys.readouterr().err
    r = load_report(out)
    validate(r)
    m = {x["name"]: x["value"] for x in r["metrics"]}
    assert m["eval.samples"] == 9 and m["eval.pass@3"] is not None
    assert r["config"]["model"]["backend"] == "openai" and r["config"]["sampling"]["temperature"] == 0.8


class Fake(http.server.BaseHTTPRequestHandler):
    """Answers by `self.server.script`: a list of (status, body) popped per POST; the last one repeats."""

    def log_message(self, *a):
        pass

    def _send(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"data": [{"id": "fake-model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        script = self.server.script
        status, answer = script.pop(0) if len(script) > 1 else script[0]
        self._send(status, answer, [("Retry-After", "0")] if status == 429 else ())


@pytest.fixture
def fake():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    srv.requests, srv.script = [], [(200, {"choices": [{"text": " hi\nthere"}]})]
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def base(srv):
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def test_retries_429_and_5xx_then_succeeds(fake):
    fake.script = [(429, {"error": "slow down"}), (503, b"busy"), (200, {"choices": [{"text": "echo ok"}]})]
    b = ApiBackend(base(fake), backoff_s=0.01)
    c = b.complete("#!/bin/bash\n", 1, ["\n"], 7, Sampling(8, 0.0, 40, 0.9))
    assert c.texts == ["echo ok"] and len(fake.requests) == 3
    r = fake.requests[-1]
    assert r["model"] == "fake-model" and r["top_k"] == 40 and r["seed"] == 7 and r["stop"] == ["\n"]


def test_n_samples_are_n_requests_and_cut_at_stops(fake):
    b = ApiBackend(base(fake), model="m", concurrency=3)
    from harness.models import sample_tasks

    texts = sample_tasks(b, ["a", "b"], n=3, sampling=Sampling(4, 0.8), stops=[["\n"], []], seed=1)
    assert texts == [[" hi"] * 3, [" hi\nthere"] * 3] and len(fake.requests) == 6
    assert len({r["seed"] for r in fake.requests}) == 6 and all(r["n"] == 1 for r in fake.requests)


@pytest.mark.parametrize("script,msg", [
    ([(503, b"down")], "failed 3 times"),
    ([(200, b"<html>not json</html>")], "not JSON"),
    ([(200, {"result": "no choices"})], "choices[0].text"),
    ([(400, {"error": "bad model"})], "HTTP 400"),
])
def test_server_errors_are_one_clear_message(fake, capsys, script, msg):
    fake.script = script
    b = ApiBackend(base(fake), retries=2, backoff_s=0.01)
    with pytest.raises(UsageError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        b.complete("x", 1, [], 0, Sampling(4))


def test_unreachable_server_and_bad_url_exit_2(capsys, monkeypatch):
    port = free_port()
    assert main(["generate", "--api-base", f"http://127.0.0.1:{port}/v1", "--prompt", "x", "--api-timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and err.count("\n") == 1
    assert main(["generate", "--api-base", "localhost:8080", "--prompt", "x"]) == 2
    assert "not an http(s) URL" in capsys.readouterr().err
    assert main(["generate", "--api-base", "http://127.0.0.1:1/v1", "--api-key-env", "HARNESS_NO_SUCH_KEY_VAR",
                 "--prompt", "x"]) == 2
    assert "HARNESS_NO_SUCH_KEY_VAR" in capsys.readouterr().err


def test_generate_only_against_a_server_says_what_it_cannot_know(fake, tmp_path, capsys):
    """A server's answers are not streamed: no first token or decode rate; tokens only from its usage."""
    from test_eval_cli import make_suite

    suite = make_suite(tmp_path / "tasks")

    def run(name):
        out = tmp_path / name
        assert main(["eval", "--api-base", base(fake), "--api-model", "m", "--tasks", str(suite), "--n", "2",
                     "--max-tokens", "4", "--generate-only", "--out", str(out)]) == 0, capsys.readouterr().err
        return {m["name"]: m for m in load_report(out)["metrics"]}

    m = run("no-usage.json")
    assert m["eval.sampling_samples"]["value"] == 6 and m["eval.sampling_s"]["value"] > 0
    assert m["eval.sampling_tokens"]["value"] is None and "unknown" in m["eval.sampling_tokens"]["note"]
    assert m["eval.sampling_tokens_per_s"]["value"] is None
    for name in ("eval.sampling_decode_tokens_per_s", "eval.sampling_first_token_s"):
        assert m[name]["value"] is None and "not streamed" in m[name]["note"]
    assert len(m["eval.sampling_call_s"]["samples"]) == 6  # one request per sample
    fake.script = [(200, {"choices": [{"text": "echo"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})]
    m = run("usage.json")
    assert m["eval.sampling_tokens"]["value"] == 18 and m["eval.sampling_tokens_per_s"]["value"] > 0
