"""Any local model folder that mlx-lm loads (Llama, Qwen2, StarCoder2, GPT-2 ... as transformers saves them):
mlx-lm's own loader, model and KV cache; the prompt encoded by the model's own tokenizer as mlx-lm's generate
encodes it (special tokens added unless the prompt already starts with the BOS token); the completion is the
decoding of the generated ids.

The n samples of one prompt decode as one batch of n identical rows (no padding needed), each step sampled by
reference.generate.sample_next, so temperature, top-k, top-p and the seed mean what they mean for the
reference model. A row ends at one of the tokenizer's end-of-sequence ids (not kept), at a stop string, after
max_tokens, or when the model's context (config.json's max_position_embeddings, n_positions or n_ctx) is full.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from .backend import Completions, Sampling, Timing, weights_sha256

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")


def check_folder(path: str) -> Path:
    """A local folder with a config.json; anything else is a UsageError (nothing is ever downloaded)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"--model {path}: no such local folder; --model takes a model folder on this machine "
                         f"(config.json, *.safetensors, tokenizer files) and never downloads one: fetch it "
                         f"yourself first (e.g. `hf download NAME --local-dir DIR`)")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise UsageError(f"--model {path}: not a model folder (it has no config.json); pass the folder that "
                         f"transformers' save_pretrained or mlx_lm.convert wrote")
    return p


class MlxLmBackend:
    max_batch = None
    concurrency = 1

    def __init__(self, path: str, *, truncate_prompt: bool = True):
        folder = check_folder(path)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from mlx_lm.utils import load
        except ImportError as e:
            raise UsageError(f"--model needs mlx-lm ({e}); pip install mlx-lm") from None
        try:
            self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            self.model, self.tokenizer = load(str(folder))
        except Exception as e:  # mlx-lm raises ValueError, FileNotFoundError, KeyError ... for a folder it can't read
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise UsageError(f"--model {path}: mlx-lm cannot load this folder ({type(e).__name__}: {first}); "
                             f"it needs config.json with a model_type mlx-lm supports, *.safetensors weights "
                             f"and tokenizer files") from None
        self.truncate_prompt = truncate_prompt
        self.context = next((int(self.config[k]) for k in CONTEXT_KEYS if isinstance(self.config.get(k), int)), None)
        eos = getattr(self.tokenizer, "eos_token_ids", None) or [self.tokenizer.eos_token_id]
        self.eos = {int(i) for i in eos if i is not None}
        self.info = {"backend": "mlx-lm", "path": str(folder.resolve()), "weights_sha256": weights_sha256(folder),
                     "model_type": self.config.get("model_type"), "context": self.context}

    def encode(self, prompt: str) -> list[int]:
        """As mlx_lm.generate.stream_generate encodes a string prompt."""
        bos = self.tokenizer.bos_token
        add = bos is None or not prompt.startswith(bos)
        return list(self.tokenizer.encode(prompt, add_special_tokens=add))

    def prompt_length(self, prompt: str) -> int:
        return len(self.encode(prompt)) if prompt else 0

    def decoder(self) -> dict:
        from importlib.metadata import version

        return {"name": "mlx-lm", "mlx_lm_version": version("mlx-lm"), "batch_layout": "n identical rows",
                "kv_cache": "mlx-lm make_prompt_cache", "tokens_per_call": 1}

    def complete(self, prompt: str, n: int, stop: Sequence[str], seed: int | None, sampling: Sampling) -> Completions:
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache
        from reference.generate import cut_at_stop, sample_next

        ids = self.encode(prompt)
        if not ids:
            raise UsageError("the prompt is empty (0 tokens); give a non-empty prompt")
        dropped, budget = 0, sampling.max_tokens
        if self.context:
            if len(ids) >= self.context or (self.truncate_prompt and len(ids) + budget > self.context):
                if not self.truncate_prompt:
                    raise UsageError(f"the prompt has {len(ids)} tokens but the model's context is {self.context}; "
                                     f"shorten it or pass --truncate-prompt")
                keep = min(max(self.context - budget, self.context // 2), self.context - 1, len(ids))
                ids, dropped = ids[-keep:], len(ids) - keep
            budget = min(budget, self.context - len(ids))
        stop = [s for s in stop if s]
        out: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        key = mx.random.key(seed if seed is not None else secrets.randbits(63))
        t0 = time.perf_counter()
        t_first = None
        cache = make_prompt_cache(self.model)
        logits = self.model(mx.array([ids] * n), cache=cache)[:, -1, :]
        for step in range(budget):
            key, sub = mx.random.split(key)
            tok = sample_next(logits, sampling.temperature, sampling.top_k, sampling.top_p, sub)
            toks = tok.tolist()
            t_first = t_first or time.perf_counter()
            for i, t in enumerate(toks):
                if done[i]:
                    continue
                if t in self.eos:
                    done[i] = True
                    continue
                out[i].append(t)
                if stop and any(s in self.tokenizer.decode(out[i]) for s in stop):
                    done[i] = True
            if all(done) or step == budget - 1:
                break
            logits = self.model(tok.astype(mx.int32)[:, None], cache=cache)[:, -1, :]
        t_end = time.perf_counter()
        t_first = t_first or t_end
        later = sum(len(o) for o in out) - sum(1 for o in out if o)
        rate = later / (t_end - t_first) if t_end > t_first and later else 0.0
        texts = [cut_at_stop(self.tokenizer.decode(o), stop) for o in out]
        return Completions(texts, Timing(len(ids), sum(len(o) for o in out), t_first - t0, rate, t_end - t0, dropped))
