"""Autoregressive decoding for the reference GPT: a KV cache, temperature / top-k / top-p sampling, stop
tokens and stop strings, and n sequences of one prompt decoded together as a batch (the pass@k case).

Context limit: the model has learned positions, so prompt + completion never exceeds `max_seq_len`.
A prompt that does not leave room for one new token is an InputError unless `truncate_prompt=True`,
which drops tokens from the left (see `_fit_prompt`); decoding stops when the context is full
(`GenerationResult.hit_context_limit`).
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import mlx.core as mx
import numpy as np

from . import decode_kernels
from .errors import InputError
from .kvcache import SharedPrefixCache, StaticKVCache, decode_attention_form, make_static_cache
from .model import GPT
from .stops import cut_at_stop

# End-of-text specials, in order of preference: the project's tokenizer (reference/tokenizer.py) has <EOS>,
# which reference/data.py appends to every packed document; the others cover tokenizers from elsewhere.
EOS_CANDIDATES = ("<EOS>", "<|endoftext|>", "</s>", "<eos>", "<|eos|>", "[EOS]")


@dataclass
class GenerationResult:
    tokens: list[list[int]]  # n completions, prompt and stop token excluded
    prompt_tokens: int  # tokens of the prompt actually used (after any truncation)
    first_token_s: float  # prefill + first sampled token, seconds
    decode_tokens_per_s: float  # tokens after the first step, summed over sequences, per second of decoding
    total_s: float
    prompt_truncated: int = 0  # tokens dropped from the left of the prompt
    hit_context_limit: bool = False

    @property
    def generated_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


def sample_next(logits: mx.array, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                key: mx.array | None = None) -> mx.array:
    """logits (B, V) -> next token ids (B,). temperature 0 is greedy. top-k keeps the k most likely
    tokens; top-p then keeps the smallest prefix of those whose renormalised probability reaches p
    (the most likely token is always kept), as in Holtzman et al. 2019 and HF's warper order."""
    if temperature == 0:
        return mx.argmax(logits, axis=-1)
    x = logits.astype(mx.float32) / temperature
    if top_k <= 0 and top_p >= 1.0:
        return mx.random.categorical(x, key=key)
    order = mx.argsort(-x, axis=-1)  # (B, V) most likely first
    s = mx.take_along_axis(x, order, axis=-1)
    V = s.shape[-1]
    neg = mx.array(-float("inf"), dtype=s.dtype)
    if 0 < top_k < V:
        s = mx.where(mx.arange(V) >= top_k, neg, s)
    if top_p < 1.0:
        p = mx.softmax(s, axis=-1)
        mass_before = mx.cumsum(p, axis=-1) - p
        s = mx.where(mass_before >= top_p, neg, s)
    j = mx.random.categorical(s, key=key)  # (B,) index in sorted order
    return mx.take_along_axis(order, j[:, None], axis=-1)[:, 0]


def _check_sampling(n, max_tokens, temperature, top_k, top_p):
    if n < 1:
        raise InputError(f"n={n}: the number of samples must be at least 1")
    if max_tokens < 0:
        raise InputError(f"max_tokens={max_tokens} must be >= 0")
    if temperature < 0:
        raise InputError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    if top_k < 0:
        raise InputError(f"top_k={top_k} must be >= 0 (0 = off)")
    if not 0.0 < top_p <= 1.0:
        raise InputError(f"top_p={top_p} must be in (0, 1] (1 = off)")


def _fit_prompt(prompt_ids: Sequence[int], ctx: int, max_tokens: int, truncate: bool) -> tuple[list[int], int]:
    """Prompt that fits the context. With `truncate`, a prompt that would leave fewer than `max_tokens`
    positions keeps its last max(ctx - max_tokens, ctx // 2) tokens (at least one position free):
    room for the completion, but never less than half the context for the prompt."""
    ids = [int(t) for t in prompt_ids]
    if not ids:
        raise InputError("the prompt is empty (0 tokens); give a non-empty prompt")
    if len(ids) < ctx and (not truncate or len(ids) + max_tokens <= ctx):
        return ids, 0
    if not truncate:
        raise InputError(f"the prompt has {len(ids)} tokens but the model's context is {ctx} "
                         f"(max_seq_len); shorten the prompt or allow left truncation")
    keep = min(max(ctx - max_tokens, ctx // 2), ctx - 1, len(ids))
    return ids[-keep:], len(ids) - keep


def generate_tokens(model: GPT, prompt_ids: Sequence[int], *, n: int = 1, max_tokens: int = 256,
                    temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                    stop_ids: Sequence[int] = (), use_cache: bool = True,
                    stop_fn: Callable[[list[int]], bool] | None = None,
                    truncate_prompt: bool = False, tokens_per_call: int | None = None) -> GenerationResult:
    """Decode n continuations of one prompt as a batch of n rows.

    A row finishes on a token in `stop_ids` (not included), when `stop_fn(row_tokens)` is true (row
    kept as is; cut stop strings afterwards), after `max_tokens`, or when the context is full.

    With a cache (the default) the prompt is prefilled once into a fixed-size cache (`StaticKVCache`,
    capacity = prompt + budget rounded up to 256), its keys/values are copied to the n rows, and every
    later token comes from one compiled decode step (model, cache update and sampling) of a fixed shape;
    step t+1 is queued before token t is read back, so the host's stop checks overlap the device's work.
    Finished rows stay in the batch (their tokens are ignored) so the shape never changes.
    `tokens_per_call` decode steps run per compiled call (default TOKENS_PER_CALL; see decode_step). Without
    a cache every step re-runs the whole sequence (same keys, same draws: both paths give the same tokens).
    """
    _check_sampling(n, max_tokens, temperature, top_k, top_p)
    ctx = model.config.max_seq_len
    prompt, dropped = _fit_prompt(prompt_ids, ctx, max_tokens, truncate_prompt)
    budget = min(max_tokens, ctx - len(prompt))
    out: list[list[int]] = [[] for _ in range(n)]
    if budget == 0:
        return GenerationResult(out, len(prompt), 0.0, 0.0, 0.0, dropped, len(prompt) >= ctx)
    stop_set = {int(s) for s in stop_ids}
    key = mx.random.key(seed if seed is not None else secrets.randbits(63))
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        if use_cache:
            t_first = _decode_static(model, prompt, budget, temperature, top_k, top_p, key, stop_set, stop_fn, out,
                                     tokens_per_call)
        else:
            t_first = _decode_uncached(model, prompt, budget, temperature, top_k, top_p, key, stop_set, stop_fn, out)
    finally:
        model.train(was_training)
    return timed_result(out, len(prompt), dropped, ctx, t0, t_first)


def timed_result(out: list[list[int]], prompt_len: int, dropped: int, ctx: int, t0: float,
                 t_first: float | None) -> GenerationResult:
    """The GenerationResult of a decoding that started at t0 and read its first token back at t_first
    (perf_counter seconds) and ends now: decode speed counts the tokens after each row's first."""
    t_end = time.perf_counter()
    t_first = t_first or t_end
    later = sum(len(o) for o in out) - sum(1 for o in out if o)
    decode_s = t_end - t_first
    return GenerationResult(out, prompt_len, t_first - t0, later / decode_s if decode_s > 0 and later else 0.0,
                            t_end - t0, dropped, any(prompt_len + len(o) >= ctx for o in out))


def _decode_uncached(model, prompt, budget, temperature, top_k, top_p, key, stop_set, stop_fn, out) -> float:
    """Every step re-runs the whole sequence. Fills `out`; returns when the first token was read back."""
    n = len(out)
    done = [False] * n
    t_first = None
    seq = mx.repeat(mx.array([prompt], dtype=mx.int32), n, axis=0)
    logits = model(seq)[:, -1, :]
    for step in range(budget):
        key, sub = mx.random.split(key)
        tok = sample_next(logits, temperature, top_k, top_p, sub).astype(mx.int32)
        toks = tok.tolist()  # evaluates the step
        if t_first is None:
            t_first = time.perf_counter()
        _take(toks, out, done, stop_set, stop_fn)
        if step == budget - 1 or all(done):
            break
        seq = mx.concatenate([seq, tok[:, None]], axis=1)
        logits = model(seq)[:, -1, :]
    return t_first


def _take_columns(cols: np.ndarray, out: list[list[int]], done: np.ndarray, stops: np.ndarray, stop_fn) -> None:
    """`_take` for several steps at once: cols (n, steps) of token ids, one column per step; `done` a boolean
    array updated in place. The stop ids of all rows are found per column with numpy, so the host's work per
    step is one append per unfinished row (plus `stop_fn` where given)."""
    for j in range(cols.shape[1]):
        col = cols[:, j]
        hit = ~done & np.isin(col, stops) if stops.size else np.zeros_like(done)
        done |= hit
        for i in np.flatnonzero(~done).tolist():
            out[i].append(int(col[i]))
            if stop_fn is not None and stop_fn(out[i]):
                done[i] = True


def _take(toks: list[int], out: list[list[int]], done: list[bool], stop_set: set, stop_fn) -> None:
    """Append each unfinished row's new token; a stop id (not kept) or a true stop_fn finishes the row."""
    for i, t in enumerate(toks):
        if done[i]:
            continue
        if t in stop_set:
            done[i] = True
            continue
        out[i].append(t)
        if stop_fn is not None and stop_fn(out[i]):
            done[i] = True


CACHE_STEP = 256  # static cache capacities are multiples of this (one compiled shape per multiple)
GEN_STEP = 64  # capacities of the rows' own positions in a SharedPrefixCache are multiples of this


# Decode steps per compiled call (see decode_step). On an H100 with the gemv decoder (bf16, medians of 3,
# results/gpu/h100/decode-ab.jsonl): tiny 605 tok/s at 4 per call vs 389 at 1, medium 252 vs 235 (before it, 1, 4
# and 16 decoded equally fast: h100/gen-diag.jsonl). On 2 CPU cores 1, 4 and 8 decode the small preset equally
# fast (~410-430 tok/s, 180 tokens, medians of 6 alternating runs).
TOKENS_PER_CALL = 4
# Decode steps per compiled call for n > 1 rows: each call writes the rows' new keys/values into the large cache
# buffers once (SharedPrefixCache.flush), and MLX copies a buffer a queued kernel still reads, so more steps per
# call mean fewer whole-cache copies (results/gpu/NOTES.md).
BATCH_TOKENS_PER_CALL = int(os.environ.get("HARNESS_BATCH_TOKENS_PER_CALL", "8"))


def decode_step(model: GPT, temperature: float, top_k: int, top_p: float, steps: int = 1, shared: bool = False):
    """The compiled decode function for `model`, these sampling settings and `steps` tokens per call, built
    once per model: (tok (B,), keys, values, offset, key[, prefix]) -> (next `steps` tokens (B, steps), keys,
    values, offset, key). Several steps per call amortise the per-evaluation host work (graph building and
    kernel launches), which dominates batch-1 decoding on a GPU; the steps split the key exactly as single
    steps do, so the tokens are the same. With `shared`, the caches are SharedPrefixCaches and `prefix` is
    (prompt keys per layer, prompt values per layer, prompt length). The model's parameters are inputs of
    the compiled function (not constants), so it follows weight updates."""
    fns = model.__dict__.setdefault("_decode_steps", {})
    sig = (float(temperature), int(top_k), float(top_p), int(steps), bool(shared))
    if sig not in fns:
        def step(tok, keys, values, offset, key, prefix=None):
            if prefix is None:
                cache = [StaticKVCache(k, v, offset) for k, v in zip(keys, values)]
            else:
                pks, pvs, plen = prefix
                cache = [SharedPrefixCache(k, v, offset, pk, pv, plen, recent=steps)
                         for k, v, pk, pv in zip(keys, values, pks, pvs)]
            toks = []
            for _ in range(steps):
                logits = model(tok[:, None], cache)[:, -1, :]
                key, sub = mx.random.split(key)
                tok = sample_next(logits, temperature, top_k, top_p, sub).astype(mx.int32)
                toks.append(tok)
            if prefix is not None:
                for c in cache:
                    c.flush()
            return mx.stack(toks, axis=1), [c.keys for c in cache], [c.values for c in cache], cache[0].offset, key

        fns[sig] = mx.compile(step, inputs=model.state)
    return fns[sig]


# n > 1 rows: "shared" (SharedPrefixCache) or "repeat" (the prompt's cache copied per row, TOKENS_PER_CALL steps per
# call: the layout before issue 16's work, kept for A/B runs); HARNESS_BATCH_LAYOUT overrides it.
BATCH_LAYOUT = os.environ.get("HARNESS_BATCH_LAYOUT", "shared")
if BATCH_LAYOUT not in ("shared", "repeat"):
    raise ValueError(f"HARNESS_BATCH_LAYOUT={BATCH_LAYOUT!r}: choose 'shared' or 'repeat'")


def decoder_settings() -> dict:
    """The decoder's settings that change its speed (not its tokens), for reports: the batch layout, steps per
    compiled call and the attention form (reference.kvcache.decode_attention_form)."""
    return {"batch_layout": BATCH_LAYOUT, "tokens_per_call": TOKENS_PER_CALL,
            "batch_tokens_per_call": BATCH_TOKENS_PER_CALL, "batch_attention": decode_attention_form()}


def _decode_static(model, prompt, budget, temperature, top_k, top_p, key, stop_set, stop_fn, out,
                   per_call: int | None = None) -> float:
    """Prefill a static cache, then compiled decode calls of `per_call` steps, each queued before the
    previous call's tokens are read. Fills `out`; returns when the first token was read back."""
    n, ctx = len(out), model.config.max_seq_len
    if n > 1 and BATCH_LAYOUT == "shared":
        per_call = max(1, int(per_call or BATCH_TOKENS_PER_CALL))
        return _decode_shared(model, prompt, budget, temperature, top_k, top_p, key, stop_set, stop_fn, out,
                              per_call)
    per_call = max(1, int(per_call or TOKENS_PER_CALL))
    t_first = None
    # room for the last call's extra steps (their tokens are dropped)
    cap = min(ctx, -(-(len(prompt) + budget + per_call) // CACHE_STEP) * CACHE_STEP)
    cache = make_static_cache(model, 1, cap)
    logits = model(mx.array([prompt], dtype=mx.int32), cache)[:, -1, :]
    keys, values = [c.keys for c in cache], [c.values for c in cache]
    if n > 1:  # prefill once, then (1, nh, cap, hs) -> (n, nh, cap, hs)
        keys = [mx.repeat(k, n, axis=0) for k in keys]
        values = [mx.repeat(v, n, axis=0) for v in values]
        logits = mx.repeat(logits, n, axis=0)
    offset = cache[0].offset
    key, sub = mx.random.split(key)
    chunk = sample_next(logits, temperature, top_k, top_p, sub).astype(mx.int32)[:, None]  # (n, 1), unread
    pos, queued, taken = len(prompt), 1, 0  # positions in the cache; tokens generated so far; tokens read
    done = [False] * n
    while True:
        nxt = None
        if queued < budget:  # queue the next call before reading this chunk back
            steps = per_call if pos + per_call <= cap else 1
            fn = decode_step(model, temperature, top_k, top_p, steps)
            nxt, keys, values, offset, key = fn(chunk[:, -1], keys, values, offset, key)
            mx.async_eval(nxt)
            pos, queued = pos + steps, queued + steps
        rows = chunk.tolist()
        if t_first is None:
            t_first = time.perf_counter()
        for j in range(len(rows[0])):
            if taken == budget or all(done):
                break
            _take([r[j] for r in rows], out, done, stop_set, stop_fn)
            taken += 1
        if nxt is None or taken == budget or all(done):
            return t_first
        chunk = nxt


def _decode_shared(model, prompt, budget, temperature, top_k, top_p, key, stop_set, stop_fn, out,
                   per_call: int) -> float:
    """n > 1 rows of one prompt: prefill the prompt once (batch 1), then compiled decode calls over
    SharedPrefixCaches (the prompt's keys/values shared, each row's generated ones in a buffer of
    budget + per_call positions rounded up to GEN_STEP), each call queued before the previous one's tokens are
    read; the tokens come back as one (n, steps) array and are taken column by column (`_take_columns`).
    The same keys are split in the same order as in the other layouts, so the draws are the same."""
    n, ctx, cfg = len(out), model.config.max_seq_len, model.config
    t_first = None
    plen = len(prompt)
    # The written-out attention reads the prompt buffer whole (masked), so its capacity is rounded up to GEN_STEP
    # (a 64-token prompt in 64 positions, not 256: +17-25% at n = 20 on 2 CPU cores, results/gpu/NOTES.md); the
    # CUDA kernels read only the prompt's positions and take CACHE_STEP (fewer shapes to compile).
    step = CACHE_STEP if decode_kernels.enabled() else GEN_STEP
    pcap = min(ctx, -(-plen // step) * step)
    pcache = make_static_cache(model, 1, pcap)
    logits = model(mx.array([prompt], dtype=mx.int32), pcache)[:, -1, :]
    prefix = ([c.keys for c in pcache], [c.values for c in pcache], mx.array(plen, mx.int32))
    limit = ctx - plen  # generated positions available before the context is full
    gcap = -(-(budget + per_call) // GEN_STEP) * GEN_STEP
    dtype = model.wte.weight.dtype
    keys = [mx.zeros((n, cfg.n_heads, gcap, cfg.head_dim), dtype) for _ in model.blocks]
    values = [mx.zeros((n, cfg.n_heads, cfg.head_dim, gcap), dtype) for _ in model.blocks]
    offset = mx.array(0, mx.int32)
    logits = mx.repeat(logits, n, axis=0)
    key, sub = mx.random.split(key)
    chunk = sample_next(logits, temperature, top_k, top_p, sub).astype(mx.int32)[:, None]  # (n, 1), unread
    # the first generated token is written at position 0 by the first call
    gpos, queued, taken = 0, 1, 0
    done = np.zeros(n, dtype=bool)
    stops = np.array(sorted(stop_set), dtype=np.int64)
    while True:
        nxt = None
        if queued < budget:
            steps = per_call if gpos + per_call <= min(gcap, limit) else 1
            fn = decode_step(model, temperature, top_k, top_p, steps, shared=True)
            nxt, keys, values, offset, key = fn(chunk[:, -1], keys, values, offset, key, prefix)
            mx.async_eval(nxt)
            gpos, queued = gpos + steps, queued + steps
        cols = np.array(chunk)
        if t_first is None:
            t_first = time.perf_counter()
        cols = cols[:, :budget - taken]
        _take_columns(cols, out, done, stops, stop_fn)
        taken += cols.shape[1]
        if nxt is None or taken == budget or done.all():
            return t_first
        chunk = nxt


# --- text level -------------------------------------------------------------------------------------

def eos_ids(tokenizer) -> list[int]:
    """Ids of the tokenizer's end-of-text specials (the document separator the model learned to emit),
    most preferred first."""
    ids = [tokenizer.token_to_id(t) for t in EOS_CANDIDATES]
    return list(dict.fromkeys(i for i in ids if i is not None))


def _decoder(tokenizer, prompt_ids: list[int]) -> Callable[[list[int]], str]:
    """Completion text of generated ids. Decoding the completion alone can lose a leading space with
    some decoders, so decode prompt + completion and strip the decoded prompt when it is a prefix."""
    head = tokenizer.decode(prompt_ids, skip_special_tokens=True)

    def decode(ids: list[int]) -> str:
        full = tokenizer.decode(prompt_ids + ids, skip_special_tokens=True)
        return full[len(head):] if full.startswith(head) else tokenizer.decode(ids, skip_special_tokens=True)
    return decode


@dataclass
class Completions:
    texts: list[str]
    result: GenerationResult


def encode_prompt(tokenizer, prompt: str, start_of_text: bool = True) -> list[int]:
    """Prompt ids as the model saw documents in training: special-token strings in the text encoded as
    text, and, with `start_of_text`, the end-of-text id first (in the packed token files every document
    but the first follows one, so a prompt is the start of a new document)."""
    from .tokenizer import encode

    ids = encode(tokenizer, prompt)
    if not ids:
        raise InputError("the prompt is empty (0 tokens after tokenization); give a non-empty prompt")
    eos = eos_ids(tokenizer)
    return [eos[0], *ids] if start_of_text and eos else ids


def _stop_checker(tokenizer, decode: Callable[[list[int]], str], stop: Sequence[str]) -> Callable[[list[int]], bool]:
    """stop_fn for generate_tokens: whether decode(toks) holds a stop string. Called after every new token of
    every row, so it first decodes only the last tokens (a stop string that appeared with the newest token
    ends within its last len(stop) characters, and a token decodes to at least one byte) and confirms a hit
    on the whole completion; decoding every row whole at every step grows with the square of its length."""
    window = max(len(s) for s in stop) + 8

    def stop_fn(toks: list[int]) -> bool:
        tail = tokenizer.decode(toks[-window:], skip_special_tokens=True)
        return any(s in tail for s in stop) and any(s in decode(toks) for s in stop)
    return stop_fn


def complete_detailed(model: GPT, tokenizer, prompt: str, *, n: int = 1, max_tokens: int = 256,
                      temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, stop: Sequence[str] = (),
                      seed: int | None = None, use_cache: bool = True, truncate_prompt: bool = False,
                      start_of_text: bool = True) -> Completions:
    full = encode_prompt(tokenizer, prompt, start_of_text)
    ids, dropped = _fit_prompt(full, model.config.max_seq_len, max_tokens, truncate_prompt)
    decode = _decoder(tokenizer, ids)
    stop = [s for s in stop if s]
    stop_fn = _stop_checker(tokenizer, decode, stop) if stop else None
    r = generate_tokens(model, ids, n=n, max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        seed=seed, stop_ids=eos_ids(tokenizer), use_cache=use_cache, stop_fn=stop_fn)
    r.prompt_truncated = dropped
    return Completions([cut_at_stop(decode(t), stop) for t in r.tokens], r)


def complete(model: GPT, tokenizer, prompt: str, *, n: int = 1, max_tokens: int = 256, temperature: float = 0.0,
             top_k: int = 0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int | None = None,
             truncate_prompt: bool = False, start_of_text: bool = True) -> list[str]:
    """n completions of `prompt`, each cut before its first stop string; generation also ends at the
    tokenizer's end-of-text token (see `encode_prompt` for how the prompt is encoded)."""
    return complete_detailed(model, tokenizer, prompt, n=n, max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k, top_p=top_p, stop=stop, seed=seed, truncate_prompt=truncate_prompt,
                             start_of_text=start_of_text).texts


def chunk_seed(seed: int | None, prompt_index: int, chunk_index: int) -> int | None:
    """An independent, reproducible seed per (prompt, chunk of samples)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, prompt_index, chunk_index]).generate_state(1)[0])
