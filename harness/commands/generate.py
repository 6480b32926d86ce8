"""`harness generate`: completions from a checkpoint — one prompt, an interactive prompt loop, or a prompts
file to a samples JSONL in the human-eval format ({"task_id", "completion"}, n lines per task).

Completions go to stdout (or --out); speed (decode tokens/s, time to first token) goes to stderr and, with
--report, into a `generate` report as gen.tokens_per_s and gen.first_token_s."""
from __future__ import annotations

import json
import sys
import time

from ..models.speed import Speed

SEPARATOR = "-----"


def add_arguments(p):
    from ..models import add_arguments as add_model_arguments

    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="DIR",
                       help="a run directory written by `harness train` (its newest checkpoint) or a ckpt-* directory")
    add_model_arguments(p, model)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", metavar="TEXT", help="complete this one prompt")
    src.add_argument("--interactive", action="store_true",
                     help="read prompts from stdin, one per line; a blank line or end of input stops")
    src.add_argument("--prompts", metavar="FILE",
                     help="prompts file: .txt (one prompt per line), JSONL with task_id/prompt, MultiPL-E "
                          "problems (JSON list or JSONL with name/prompt/stop_tokens), or a task directory in the "
                          "project's format (like fixtures/tasks)")
    p.add_argument("--max-tokens", type=_positive, default=256, help="tokens to generate per sample (default 256)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")
    p.add_argument("--temperature", type=float, default=None,
                   help="0 = greedy; default 0 when --n is 1, 0.8 when sampling several per prompt")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop sequence; the completion is cut before it (repeatable; MultiPL-E files add theirs)")
    p.add_argument("--n", type=_positive, default=1, help="samples per prompt (default 1)")
    p.add_argument("--batch-size", type=_positive, default=None,
                   help="sequences decoded together (default --n): the n samples of one prompt share a batch")
    p.add_argument("--out", metavar="FILE", help="with --prompts: samples JSONL to write (default stdout)")
    p.add_argument("--report", metavar="FILE", help="write a `generate` report with gen.tokens_per_s and "
                                                     "gen.first_token_s")
    p.add_argument("--truncate-prompt", action="store_true",
                   help="drop tokens from the left of a prompt too long for the model's context instead of failing")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole sequence each step (no KV cache)")


def _positive(s: str) -> int:
    import argparse

    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def run(args) -> int:
    from ..errors import UsageError
    from ..eval.tasks import load_prompts
    from ..models import Sampling, open_backend

    if args.out and not args.prompts:
        raise UsageError("--out writes a samples file for --prompts; use --prompts FILE with it")
    from ..outputs import check_number, check_output

    check_number(args.temperature, "--temperature", low=0, example="0.8", why="0 is greedy")
    check_number(args.top_p, "--top-p", low=0, high=1, low_open=True, example="0.95")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed {args.seed} must be from 0 to 2**32 - 1, e.g. --seed 0")
    if args.top_k < 0:
        raise UsageError(f"--top-k {args.top_k} must be >= 0 (0 = off), e.g. --top-k 50")
    inputs = [("--prompts", args.prompts), ("--checkpoint", args.checkpoint)]
    if args.out:
        check_output(args.out, inputs=inputs)
    if args.report:
        check_output(args.report, "--report", inputs=[*inputs, ("--out", args.out)], replaces="report")
    tasks = load_prompts(args.prompts) if args.prompts else None
    if args.prompt is not None and not args.prompt.strip():
        raise UsageError("--prompt is empty; give the text to complete")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.n == 1 else 0.8)
    backend = open_backend(args, truncate_prompt=args.truncate_prompt, use_cache=not args.no_cache)
    sampling = Sampling(args.max_tokens, temperature, args.top_k, args.top_p)
    if tasks is not None and not args.truncate_prompt and getattr(backend, "context", None):
        _check_lengths(tasks, backend, args.prompts)
    bs = args.batch_size or args.n
    speed = Speed()
    t0 = time.perf_counter()

    def gen(prompt: str, index: int) -> list[str]:
        """The samples of one prompt (`index` picks its chunk seeds), each chunk's speed on stderr."""
        from ..models import sample_tasks

        def on_chunk(_, c):
            speed.add(c.result, len(c.texts))
            print(f"harness generate: {Speed.call_line(c.result)}", file=sys.stderr)

        return sample_tasks(backend, [prompt], n=args.n, sampling=sampling, stops=[args.stop], seed=args.seed,
                            batch_size=bs, on_chunk=on_chunk, first_index=index)[0]

    if tasks is not None:
        _run_batch(args, tasks, backend, sampling, bs, speed)
    elif args.interactive:
        _run_interactive(gen)
    else:
        texts = gen(args.prompt, 0)
        sys.stdout.write(f"\n{SEPARATOR}\n".join(texts))
        sys.stdout.write("\n" if texts and not texts[-1].endswith("\n") else "")
        sys.stdout.flush()
    wall = time.perf_counter() - t0
    print(f"harness generate: {speed.line()}", file=sys.stderr)
    if args.report:
        _write_report(args, backend, temperature, bs, speed, wall)
    return 0


def _check_lengths(tasks, backend, source: str) -> None:
    """Fail before generating anything when a task's prompt leaves no room in the context."""
    from ..errors import UsageError

    ctx = backend.context
    for t in tasks:
        n = backend.prompt_length(t.prompt)
        if n == 0 or n >= ctx:
            what = "is empty" if n == 0 else f"has {n} tokens but the model's context is {ctx}"
            raise UsageError(f"{source}: the prompt of task {t.task_id} {what}; fix the prompt or pass "
                             f"--truncate-prompt to drop tokens from the left")


def _run_interactive(gen) -> None:
    tty = sys.stdin.isatty()
    i = 0
    while True:
        if tty:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or not line.strip():
            break
        texts = gen(line.rstrip("\n"), i)
        print(f"\n{SEPARATOR}\n".join(texts), flush=True)
        i += 1


def _run_batch(args, tasks, backend, sampling, bs, speed) -> None:
    from ..models import progress, sample_tasks
    from ..outputs import emit_lines

    with progress(len(tasks) * args.n) as bar:
        def on_chunk(i, c):
            speed.add(c.result, len(c.texts))
            bar.update(len(c.texts))

        texts = sample_tasks(backend, [t.prompt for t in tasks], n=args.n, sampling=sampling,
                             stops=[[*args.stop, *t.stop_tokens] for t in tasks], seed=args.seed, batch_size=bs,
                             on_chunk=on_chunk)
    lines = [json.dumps({"task_id": t.task_id, "completion": s}) for t, ts in zip(tasks, texts) for s in ts]
    emit_lines(lines, args.out, "generate", f"samples for {len(tasks)} tasks")


def _write_report(args, backend, temperature, bs, speed, wall) -> None:
    from ..report import make_report, metric, write_report

    mode = "prompts" if args.prompts else "interactive" if args.interactive else "prompt"
    info = getattr(backend, "checkpoint", None) or {}
    config = {"model": backend.info, "checkpoint": info.get("path"), "step": info.get("step"),
              "stage": info.get("stage"), "model_config": info.get("model_config"), "mode": mode,
              "prompts": args.prompts, "n": args.n,
              "batch_size": bs, "max_tokens": args.max_tokens, "temperature": temperature, "top_k": args.top_k,
              "top_p": args.top_p, "stop": args.stop, "seed": args.seed, "kv_cache": not args.no_cache}
    why = getattr(backend, "timing_unknown", None)
    unknown = f"unknown: {why}" if why else None
    metrics = [
        metric("gen.tokens_per_s", None if speed.tokens_per_s or unknown else 0.0, "tokens/s", True,
               samples=speed.tokens_per_s or None, note=None if speed.tokens_per_s else unknown),
        metric("gen.first_token_s", None, "s", False,
               samples=speed.first_token_s or None, note=None if speed.first_token_s else unknown),
        metric("gen.tokens", speed.tokens, "tokens", None,
               note=None if speed.tokens is not None else "unknown: the server sent no usage.completion_tokens"),
        metric("gen.wall_s", wall, "s", False),
    ]
    report = make_report("generate", config, metrics, measurement={
        "method": "decode tokens/s per generate call (tokens after the first step / time after the first token, "
                  "summed over the batch); first token = prefill + first sampled token; value = median over calls",
        "repeats": max(1, len(speed.first_token_s))})
    write_report(report, args.report)
