"""Byte-level BPE tokenizer (HF `tokenizers`), lossless for every UTF-8 string.

The seed split on whitespace and so lost newlines and indentation, which are syntax in bash. Here the
pre-tokenizer is ByteLevel (GPT-2's byte-to-unicode map and split regex) with no normalizer, and the decoder
is ByteLevel: every byte of the input survives, so `decode(tok, encode(tok, s)) == s` for any `str` that is
valid Unicode (lone surrogates cannot be UTF-8 encoded and are rejected).

Special tokens take the first ids: <PAD>=0, <UNK>=1, <BOS>=2, <EOS>=3. `load_tokenizer` turns on
`encode_special_tokens`, so a script that literally contains "<EOS>" is encoded as text, never as the EOS id
(that flag is not stored in tokenizer.json: a plain `Tokenizer.from_file` matches them as special tokens).
`decode` keeps special tokens (`skip_special_tokens=False`); dropping them would make decoding lossy.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .errors import InputError

SPECIAL_TOKENS = ("<PAD>", "<UNK>", "<BOS>", "<EOS>")
BYTE_ALPHABET = 256
MIN_VOCAB = len(SPECIAL_TOKENS) + BYTE_ALPHABET  # specials + one token per byte, before any merge
MAX_VOCAB = 1 << 24


def _untrained(tok_model=None) -> Tokenizer:
    tok = Tokenizer(tok_model or models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2,
                    show_progress: bool = False) -> Tokenizer:
    """Train byte-level BPE on `texts` (any iterable: streamed, never held whole).

    Raises InputError when vocab_size is out of range or the texts support fewer merges than asked for
    (every pair seen at least `min_frequency` times already merged)."""
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise InputError(f"vocab size {vocab_size} is out of range: byte-level BPE needs at least {MIN_VOCAB} "
                         f"(4 special tokens + 256 bytes) and at most {MAX_VOCAB}; pass --vocab-size in that range")
    tok = _untrained()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=show_progress,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    got = tok.get_vocab_size()
    if got < vocab_size:
        raise InputError(f"the training text supports only {got} tokens (pairs seen at least {min_frequency} "
                         f"times are all merged) but --vocab-size is {vocab_size}; pass --vocab-size {got} or "
                         f"less, or add more text")
    tok.encode_special_tokens = True
    _check_specials(tok, "the trained tokenizer")
    return tok


def _check_specials(tok: Tokenizer, where: str) -> None:
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            raise InputError(f"{where} does not map {s} to id {i} (it has {tok.token_to_id(s)}); "
                             f"use a tokenizer.json written by `harness data`")


def save_tokenizer(tok: Tokenizer, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer.json written by `harness data` (a data directory is accepted too)."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise InputError(f"tokenizer file {p} does not exist; pass the tokenizer.json (or data directory) "
                         f"that `harness data` wrote")
    try:
        json.loads(p.read_text(encoding="utf-8"))
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # OSError, bad UTF-8/JSON, or the plain Exception tokenizers raises on a bad model
        raise InputError(f"tokenizer file {p} is unreadable or corrupt ({str(e).splitlines()[0][:200]}); "
                         f"re-create it with `harness data --force`") from None
    _check_specials(tok, f"tokenizer file {p}")
    if not isinstance(tok.decoder, decoders.ByteLevel):
        raise InputError(f"tokenizer file {p} has no ByteLevel decoder, so decoding would not be exact; "
                         f"use a tokenizer.json written by `harness data`")
    tok.encode_special_tokens = True
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {name: tok.token_to_id(s) for name, s in zip(("pad", "unk", "bos", "eos"), SPECIAL_TOKENS)}


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")


def encode(tok: Tokenizer, text: str) -> list[int]:
    """Token ids of `text`, no BOS/EOS added; special-token strings in `text` are encoded as plain text."""
    _check_text(text)
    tok.encode_special_tokens = True
    return tok.encode(text, add_special_tokens=False).ids


def encode_batch(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    """`encode` over many texts at once (parallel in Rust; RAYON_NUM_THREADS caps the threads)."""
    for t in texts:
        _check_text(t)
    tok.encode_special_tokens = True
    fast = getattr(tok, "encode_batch_fast", None)  # tokenizers >= 0.21: same ids, no character offsets
    return [e.ids for e in (fast or tok.encode_batch)(texts, add_special_tokens=False)]


def decode(tok: Tokenizer, ids) -> str:
    """Exact inverse of `encode`; special ids decode to their strings ("<EOS>") rather than vanishing."""
    return tok.decode([int(i) for i in ids], skip_special_tokens=False)


def roundtrips(tok: Tokenizer, text: str) -> bool:
    return decode(tok, encode(tok, text)) == text
