"""An OpenAI-compatible text-completion server (vLLM, llama.cpp's server, mlx_lm.server, a hosted API):
POST {base}/completions, one request per sample (mlx_lm.server takes no `n`, so every server gets n
requests), `concurrency` of them in flight, each with its own seed.

Retries with exponential back-off (honouring Retry-After) on 429, 5xx and dropped connections; any other
failure is one UsageError: the server unreachable at the start, a 4xx with the server's own message, or an
answer that is not a completion (garbage) quoting its first bytes. The API key is read from the environment
variable the user names and never recorded."""
from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from typing import Sequence
from urllib.parse import urlparse

from ..errors import UsageError
from .backend import Completions, Sampling, Timing

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_STOP = 4  # OpenAI's limit on `stop`; every stop string is also cut here


class ApiBackend:
    max_batch = 1
    # what its Timing cannot hold (reports say it beside the null metrics)
    timing_unknown = ("a server's answer is not streamed (no first-token time or decode rate) and its tokens are "
                      "counted only from the usage.completion_tokens it may send")

    def __init__(self, base: str, *, model: str | None = None, key_env: str | None = None, concurrency: int = 4,
                 timeout: float = 120.0, retries: int = 5, backoff_s: float = 0.5):
        u = urlparse(base)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise UsageError(f"--api-base {base!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8080/v1")
        self.base = base.rstrip("/")
        self.concurrency, self.timeout, self.retries, self.backoff_s = concurrency, timeout, retries, backoff_s
        self.key, self._reached = None, False
        if key_env:
            self.key = os.environ.get(key_env)
            if not self.key:
                raise UsageError(f"--api-key-env {key_env}: that environment variable is not set or empty; "
                                 f"export {key_env}=YOUR_KEY")
        self.name = model or self._first_model()
        self.info = {"backend": "openai", "url": self.base, "name": self.name}

    def _headers(self) -> dict:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        return h

    def _request(self, path: str, body: dict | None = None) -> dict:
        """JSON answer of GET (body None) or POST to base + path, retried on 429/5xx and dropped connections."""
        url = self.base + path
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, headers=self._headers(),
                                         method="POST" if data is not None else "GET")
            wait = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    raw = r.read()
                self._reached = True
                break
            except urllib.error.HTTPError as e:
                self._reached = True
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code not in RETRY_STATUS:
                    raise UsageError(f"--api-base {self.base}: {path} answered HTTP {e.code}: {detail.strip()}") from None
                last = f"HTTP {e.code}: {detail.strip()}"
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.strip().isdigit():
                    wait = min(60.0, float(retry_after))
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                reason = getattr(e, "reason", e)
                last = f"{type(reason).__name__}: {reason}"
                if not self._reached:  # never answered: nothing to wait for
                    raise UsageError(f"--api-base {self.base}: cannot reach the server ({last}); check that it is "
                                     f"running and that the URL ends in /v1") from None
            if attempt == self.retries:
                raise UsageError(f"--api-base {self.base}: {path} failed {self.retries + 1} times (last: {last}); "
                                 f"the server is overloaded or failing: retry later or lower --api-concurrency")
            time.sleep(wait if wait is not None else self.backoff_s * 2 ** attempt * (1 + random.random() / 4))
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError(f"--api-base {self.base}: {path} answered something that is not JSON "
                             f"({raw[:120]!r}); is this an OpenAI-compatible /v1 URL?") from None

    def _first_model(self) -> str:
        try:
            d = self._request("/models")
        except UsageError as e:
            if "cannot reach" in str(e):
                raise
            raise UsageError(f"{e}; to skip /models pass --api-model NAME (mlx_lm.server: --api-model "
                             f"default_model)") from None
        ids = [m.get("id") for m in (d.get("data") if isinstance(d, dict) else None) or [] if isinstance(m, dict)]
        ids = [i for i in ids if isinstance(i, str) and i]
        if not ids:
            raise UsageError(f"--api-base {self.base}: /models lists no model ({str(d)[:120]}); pass --api-model NAME")
        return ids[0]

    def complete(self, prompt: str, n: int, stop: Sequence[str], seed: int | None, sampling: Sampling) -> Completions:
        from reference.generate import chunk_seed, cut_at_stop

        stop = [s for s in stop if s]
        texts, prompt_tokens = [], 0
        tokens: int | None = 0
        t0 = time.perf_counter()
        for k in range(n):
            body = {"model": self.name, "prompt": prompt, "max_tokens": sampling.max_tokens,
                    "temperature": sampling.temperature, "top_p": sampling.top_p, "n": 1, "stream": False}
            if sampling.top_k > 0:
                body["top_k"] = sampling.top_k
            if stop:
                body["stop"] = stop[:MAX_STOP]
            if seed is not None:
                body["seed"] = (seed if n == 1 else chunk_seed(seed, 0, k)) % (1 << 31)
            d = self._request("/completions", body)
            choices = d.get("choices") if isinstance(d, dict) else None
            text = choices[0].get("text") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
                else None
            if not isinstance(text, str):
                raise UsageError(f"--api-base {self.base}: /completions answered without choices[0].text "
                                 f"({json.dumps(d)[:160]}); the server is not OpenAI-compatible")
            texts.append(cut_at_stop(text, stop))
            usage = d.get("usage") if isinstance(d.get("usage"), dict) else {}
            counted = usage.get("completion_tokens")
            if tokens is not None and isinstance(counted, int) and not isinstance(counted, bool):
                tokens += counted
            else:  # an answer without usage: the call's token count is unknown, not 0
                tokens = None
            prompt_tokens = int(usage.get("prompt_tokens") or prompt_tokens)
        total = time.perf_counter() - t0
        # Not streamed: a request's first token and its decode rate are not seen here, only its whole latency
        return Completions(texts, Timing(prompt_tokens, tokens, None, None, total))

    def decoder(self) -> dict:
        return {"name": "server", "url": self.base, "requests_in_flight": self.concurrency, "samples_per_request": 1,
                "streaming": False}
