"""The reference GPT from a `harness train` checkpoint, decoded by reference/generate.py (KV cache, the n
samples of one prompt as one batch)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .backend import Completions, Sampling, Timing, weights_sha256


class ReferenceBackend:
    max_batch = None
    concurrency = 1

    def __init__(self, checkpoint: str, *, truncate_prompt: bool = True, use_cache: bool = True):
        from reference.checkpoint import load_for_inference

        self.model, self.tokenizer, self.checkpoint = load_for_inference(checkpoint)
        self.truncate_prompt, self.use_cache = truncate_prompt, use_cache
        self.info = {"backend": "reference", "path": self.checkpoint["path"],
                     "weights_sha256": weights_sha256(Path(self.checkpoint["path"])),
                     "step": self.checkpoint.get("step"), "stage": self.checkpoint.get("stage"),
                     "tokenizer_sha256": self.checkpoint.get("tokenizer_sha256")}

    @classmethod
    def in_memory(cls, model, tokenizer, *, truncate_prompt: bool = True, use_cache: bool = True) -> "ReferenceBackend":
        """A backend over a model and tokenizer already loaded (tests, notebooks): no checkpoint behind it."""
        b = cls.__new__(cls)
        b.model, b.tokenizer, b.checkpoint = model, tokenizer, {}
        b.truncate_prompt, b.use_cache = truncate_prompt, use_cache
        b.info = {"backend": "reference", "path": None}
        return b

    @property
    def context(self) -> int:
        return self.model.config.max_seq_len

    def prompt_length(self, prompt: str) -> int:
        from reference.generate import encode_prompt

        return len(encode_prompt(self.tokenizer, prompt)) if prompt else 0

    def decoder(self) -> dict:
        from reference.generate import decoder_settings

        return {"name": "reference", "kv_cache": getattr(self, "use_cache", True), **decoder_settings()}

    def complete(self, prompt: str, n: int, stop: Sequence[str], seed: int | None, sampling: Sampling) -> Completions:
        from reference.generate import complete_detailed

        c = complete_detailed(self.model, self.tokenizer, prompt, n=n, max_tokens=sampling.max_tokens,
                              temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                              stop=stop, seed=seed, use_cache=self.use_cache, truncate_prompt=self.truncate_prompt)
        r = c.result
        return Completions(c.texts, Timing(r.prompt_tokens, r.generated_tokens, r.first_token_s,
                                           r.decode_tokens_per_s, r.total_s, r.prompt_truncated))
