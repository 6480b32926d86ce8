"""Where samples come from: the reference checkpoint, any model folder mlx-lm loads, or an OpenAI-compatible
server, behind one small interface that `harness generate` and `harness eval` both use.

A backend has `info` (what the report's `config.model` records: backend, folder and weights hash, or URL and
model name), `max_batch` (sequences one `complete` call decodes together; 1 for a server: one request per
sample), `concurrency` (calls that may run at once) and

    complete(prompt, n, stop, seed, sampling) -> Completions   # n texts, each cut before its first stop string

`sample_tasks` is the one loop over prompts and chunks of samples: chunk seeds from `chunk_seed`, so a seed
gives the same samples whatever the batch size's split, and the stop strings of each task added to the global ones.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UsageError
from .backend import Backend, Completions, Sampling, Timing, weights_sha256  # noqa: F401


def add_arguments(p, group=None) -> None:
    """--model and --api-base (into `group`, the command's mutually exclusive sources) and the API options."""
    g = group or p
    g.add_argument("--model", metavar="DIR", help="a local model folder that mlx-lm loads (config.json, safetensors, "
                                                  "tokenizer files, as transformers saves them); never downloaded")
    g.add_argument("--api-base", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 "
                                                     "(its /completions endpoint)")
    a = p.add_argument_group("OpenAI-compatible server (--api-base)")
    a.add_argument("--api-model", metavar="NAME", help="model name sent to the server (default: the first one its "
                                                       "/models lists)")
    a.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key (sent as a "
                                                        "Bearer token; the key itself is never recorded)")
    a.add_argument("--api-concurrency", type=int, default=4, metavar="N", help="requests in flight (default 4)")
    a.add_argument("--api-timeout", type=float, default=120.0, metavar="S", help="seconds per request (default 120)")


def open_backend(args, *, truncate_prompt: bool = True, use_cache: bool = True) -> Backend:
    """The backend the command line names: --checkpoint, --model or --api-base."""
    if getattr(args, "api_base", None):
        from .api import ApiBackend

        if args.api_concurrency < 1 or not args.api_timeout > 0:
            raise UsageError("--api-concurrency must be at least 1 and --api-timeout positive seconds")
        return ApiBackend(args.api_base, model=args.api_model, key_env=args.api_key_env,
                          concurrency=args.api_concurrency, timeout=args.api_timeout)
    if getattr(args, "model", None):
        from .mlxlm import MlxLmBackend

        return MlxLmBackend(args.model, truncate_prompt=truncate_prompt)
    from .reference import ReferenceBackend

    return ReferenceBackend(args.checkpoint, truncate_prompt=truncate_prompt, use_cache=use_cache)


def sample_tasks(backend: Backend, prompts: Sequence[str], *, n: int, sampling: Sampling,
                 stops: Sequence[Sequence[str]] = (), seed: int | None = None, batch_size: int | None = None,
                 on_chunk: Callable[[int, Completions], None] | None = None,
                 first_index: int = 0) -> list[list[str]]:
    """n completions per prompt, `batch_size` (default n, at most the backend's max_batch) per `complete` call;
    `stops[i]` are prompt i's stop strings. `on_chunk(i, completions)` sees each call's result as it ends. Prompt i's
    chunk seeds are those of prompt `first_index + i` (an interactive session numbers its prompts as they come)."""
    from reference.generate import chunk_seed

    bs = max(1, batch_size or n)
    if backend.max_batch:
        bs = min(bs, backend.max_batch)
    jobs = [(i, j, start) for i in range(len(prompts)) for j, start in enumerate(range(0, n, bs))]
    out: list[list[list[str]]] = [[[] for _ in range(0, n, bs)] for _ in prompts]

    def run(job):
        i, j, start = job
        stop = list(stops[i]) if i < len(stops) else []
        return job, backend.complete(prompts[i], min(bs, n - start), stop, chunk_seed(seed, first_index + i, j), sampling)

    def take(res):
        (i, j, _), c = res
        out[i][j] = c.texts
        if on_chunk is not None:
            on_chunk(i, c)

    if backend.concurrency > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(backend.concurrency) as pool:
            for res in pool.map(run, jobs):
                take(res)
    else:
        for job in jobs:
            take(run(job))
    return [[t for part in per for t in part] for per in out]


def model_label(config: dict) -> str | None:
    """A few words naming the model of an eval or generate report's config (None when it names none)."""
    m = config.get("model") if isinstance(config, dict) else None
    if not isinstance(m, dict):
        ck = config.get("checkpoint") if isinstance(config, dict) else None
        return f"checkpoint step {ck.get('step')} ({ck.get('stage')})" if isinstance(ck, dict) else None
    b = m.get("backend")
    if b == "openai":
        return f"{m.get('name', '?')} @ {m.get('url', '?')}"
    name = Path(str(m.get("path", "?"))).name
    sha = str(m.get("weights_sha256") or "")[:8]
    if b == "reference":
        return f"reference {name} step {m.get('step')}" + (f" [{sha}]" if sha else "")
    return f"{b} {m.get('model_type') or ''} {name}".replace("  ", " ") + (f" [{sha}]" if sha else "")


def progress(total: int, desc: str = "samples"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", file=sys.stderr)
