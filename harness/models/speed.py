"""How fast a backend sampled: every `complete` call's Timing gathered, summed up as a line for stderr and as
report metrics (`eval.sampling_*` in an eval report that generated its samples).

Per call: decode tokens/s (tokens after each row's first / seconds after the first token), first-token latency
(prefill + first sampled token) and wall seconds; each metric's value is the median over calls and its
stats.ci95 a moving-block bootstrap of that median over the consecutive calls (harness.intervals.median_ci).
Over the whole run: the wall time around all calls (model loading excluded), the tokens generated, and
tokens and samples per wall second. What a backend cannot know (a server without `usage`, a non-streaming
request's first token) is left null with a note, never estimated.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

PREFIX = "eval.sampling"


@dataclass
class Speed:
    tokens_per_s: list[float] = field(default_factory=list)  # decode rate of each call that decoded past a first token
    first_token_s: list[float] = field(default_factory=list)
    call_s: list[float] = field(default_factory=list)
    generated: int = 0
    tokens_unknown: int = 0  # calls whose backend could not count the tokens
    samples: int = 0
    wall_s: float = 0.0  # the sum of the calls' times; a caller that timed the calls together sets it to that

    def add(self, r, samples: int = 0) -> None:
        """One call's Timing (and how many samples it returned)."""
        if r.decode_tokens_per_s is not None and r.decode_tokens_per_s > 0:
            self.tokens_per_s.append(r.decode_tokens_per_s)
        if r.first_token_s is not None:
            self.first_token_s.append(r.first_token_s)
        if r.generated_tokens is None:
            self.tokens_unknown += 1
        else:
            self.generated += r.generated_tokens
        self.call_s.append(r.total_s)
        self.samples += samples
        self.wall_s += r.total_s

    @property
    def tokens(self) -> int | None:
        return None if self.tokens_unknown else self.generated

    @staticmethod
    def call_line(r) -> str:
        note = f", {r.prompt_truncated} prompt tokens dropped from the left" if r.prompt_truncated else ""
        gen = "?" if r.generated_tokens is None else r.generated_tokens
        first = "unknown" if r.first_token_s is None else f"{r.first_token_s * 1e3:.1f} ms"
        decode = "unknown" if r.decode_tokens_per_s is None else f"{r.decode_tokens_per_s:,.1f} tokens/s"
        return (f"prompt {r.prompt_tokens} tokens, generated {gen}; first token {first}; decode {decode}"
                f"{note}")

    def line(self) -> str:
        med = f"{statistics.median(self.tokens_per_s):,.1f} tokens/s" if self.tokens_per_s else "unknown"
        ftt = f"{statistics.median(self.first_token_s) * 1e3:.1f} ms" if self.first_token_s else "unknown"
        if self.tokens is None:
            what = f"{self.samples or len(self.call_s)} {'samples' if self.samples else 'calls'} in {self.wall_s:.2f} s " \
                   f"(token count unknown)"
        else:
            overall = self.generated / self.wall_s if self.wall_s else 0.0
            what = f"{self.generated} tokens in {self.wall_s:.2f} s ({overall:,.1f} tokens/s overall)"
        return f"{what}; median decode {med}; median first token {ftt}"

    def metrics(self, prefix: str = PREFIX, why_unknown: str = "") -> list[dict]:
        """The sampling metrics, named `{prefix}_s`, `{prefix}_tokens`, ...; `why_unknown` explains a null."""
        from ..report import metric

        unknown = f"unknown: {why_unknown}" if why_unknown else "unknown: the backend does not report it"
        wall = self.wall_s
        tokens = self.tokens
        per_s = lambda x: x / wall if x is not None and wall > 0 else None  # noqa: E731
        calls = len(self.call_s)
        return [
            metric(f"{prefix}_s", wall, "s", False,
                   note="wall time of sampling every task (model loading excluded)"),
            metric(f"{prefix}_samples", self.samples, "count", None),
            metric(f"{prefix}_tokens", tokens, "tokens", None,
                   note=None if tokens is not None else f"{unknown} ({self.tokens_unknown} of {calls} calls)"),
            metric(f"{prefix}_tokens_per_s", per_s(tokens), "tokens/s", True,
                   note="generated tokens / sampling wall time" if tokens is not None else unknown),
            metric(f"{prefix}_samples_per_s", per_s(self.samples), "samples/s", True,
                   note="samples / sampling wall time"),
            _per_call(f"{prefix}_decode_tokens_per_s", self.tokens_per_s, "tokens/s", True,
                      "per call: tokens after each row's first / seconds after the first token, summed over the "
                      "rows decoded together", unknown, calls),
            _per_call(f"{prefix}_first_token_s", self.first_token_s, "s", False,
                      "per call: prefill + first sampled token (the first call includes compiling)", unknown, calls),
            _per_call(f"{prefix}_call_s", self.call_s, "s", False,
                      "per call: wall seconds of one call (the samples of one prompt decoded together, or one "
                      "request to a server)", unknown, calls),
        ]


def _per_call(name: str, xs: list[float], unit: str, hib: bool, what: str, unknown: str, calls: int) -> dict:
    """A metric over calls: value the median, stats.ci95 a block bootstrap over the consecutive calls."""
    from ..intervals import median_ci
    from ..report import metric

    if not xs:
        return metric(name, None, unit, hib, note=unknown if calls else "no call was made")
    m = metric(name, None, unit, hib, samples=xs,
               note=f"{what}; value: median over {len(xs)} calls; stats.ci95: moving-block bootstrap of the median "
                    f"over consecutive calls, seed 0")
    ci = median_ci(xs)
    if ci is not None:
        m["stats"]["ci95"] = ci
    return m


def local_device() -> dict:
    """The MLX device this process samples on: MLX's name for it, its backend and the hardware's name."""
    try:
        import mlx.core as mx

        from reference.runtime import device_info

        d = device_info()
        info = mx.device_info()
        return {"mlx_device": d["device"], "backend": d["backend"], "name": info.get("device_name"),
                **({"memory_bytes": int(info["total_memory"])} if isinstance(info.get("total_memory"), int) else {})}
    except Exception as e:  # an MLX without device_info: the report's environment still names the hardware
        return {"mlx_device": None, "error": f"{type(e).__name__}: {e}"}


def generation_config(backend, *, rows_per_call: int, calls: int) -> dict:
    """What a report records about how the samples were decoded: the backend's decoder settings, the device
    (a server's hardware is not known here), rows per call and the calls made."""
    dec = backend.decoder() if hasattr(backend, "decoder") else {}
    remote = (backend.info or {}).get("backend") == "openai"
    device = {"where": "server", "note": "the server's hardware is not known here"} if remote else local_device()
    return {"decoder": dec, "device": device, "rows_per_call": rows_per_call, "calls": calls,
            "concurrency": getattr(backend, "concurrency", 1)}


def generation_label(config: dict) -> str:
    """A few words on how an eval report's samples were decoded (config.generation): the decoder's settings and
    the device, e.g. "reference shared layout, 8 tokens/call, matmul attention on cuda NVIDIA H200"; "" when the
    report has none (samples made elsewhere, or written before sampling was timed)."""
    g = config.get("generation") if isinstance(config, dict) else None
    if not isinstance(g, dict):
        return ""
    d = g.get("decoder") if isinstance(g.get("decoder"), dict) else {}
    dev = g.get("device") if isinstance(g.get("device"), dict) else {}
    if "batch_layout" in d and d.get("name") == "reference":
        rows = g.get("rows_per_call") or 1
        per_call = d.get("batch_tokens_per_call") if rows > 1 and d.get("batch_layout") == "shared" \
            else d.get("tokens_per_call")
        what = (f"reference {d['batch_layout']} layout, {per_call} tokens/call"
                + (f", {d['batch_attention']} attention" if rows > 1 and d.get("batch_attention") else ""))
    else:
        what = str(d.get("name") or "?")
    where = "a server" if dev.get("where") == "server" else \
        " ".join(str(x) for x in (dev.get("backend"), dev.get("name")) if x) or "?"
    return f"{what} on {where}"
