"""The interface every model backend implements: sampling settings in, texts and their timing out."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, Sequence


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timing:
    """One `complete` call. Tokens are the backend's own count (a server's `usage`, when it sends one). None is
    "this backend cannot know": a server answering without `usage` has no token count, and a non-streaming
    request has no first-token time or decode rate (its whole latency is `total_s`)."""
    prompt_tokens: int = 0
    generated_tokens: int | None = 0
    first_token_s: float | None = 0.0  # prefill + first sampled token
    decode_tokens_per_s: float | None = 0.0  # tokens after each row's first / seconds after the first token
    total_s: float = 0.0
    prompt_truncated: int = 0


@dataclass
class Completions:
    texts: list[str]
    result: Timing


class Backend(Protocol):
    info: dict
    max_batch: int | None
    concurrency: int

    def decoder(self) -> dict: ...  # the settings that change the speed of sampling, not its tokens

    def complete(self, prompt: str, n: int, stop: Sequence[str], seed: int | None,
                 sampling: Sampling) -> Completions: ...


def weights_sha256(folder: str | Path) -> str:
    """One hash over a model folder's weight files (*.safetensors, else *.bin/*.npz): sha256 of the lines
    "name sha256" in name order."""
    from reference.packed import sha256_file

    d = Path(folder)
    files = sorted(d.glob("*.safetensors")) or sorted([*d.glob("*.bin"), *d.glob("*.npz")])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name} {sha256_file(f)}\n".encode())
    return h.hexdigest()
