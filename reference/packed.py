"""Reading packed token files (the writer is reference/data.py).

Layout of a data directory written by `harness data`:

    DIR/tokenizer.json          HF tokenizers file (byte-level BPE)
    DIR/manifest.json           see MANIFEST_FORMAT below
    DIR/<corpus>/train.bin      raw little-endian uint16 (vocab <= 65536) or uint32 token ids,
    DIR/<corpus>/val.bin        documents concatenated, each followed by one EOS id; no padding

`corpus` is "text" (language pretraining, stage 1) or "bash" (scripts, stage 2). The manifest:

    {"format": "harness-packed-v1", "dtype": "uint16", "vocab_size": V, "eos_id": E, "bos_id": B,
     "pad_id": P, "tokenizer": {"file": "tokenizer.json", "sha256": "..."},
     "corpora": {"text": {"train": {"file": "text/train.bin", "tokens": N, "documents": D, "bytes": X},
                          "val": {...}, "sources": [...], "funnel": {...}},
                 "bash": {...}}}
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .errors import InputError

MANIFEST_FORMAT = "harness-packed-v1"
CORPORA = ("text", "bash")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(data_dir: str | Path) -> dict:
    d = Path(data_dir)
    mf = d / "manifest.json"
    if not mf.is_file():
        raise InputError(f"{d} is not a data directory (no manifest.json); create one with `harness data --out {d}`")
    try:
        m = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{mf} is not valid JSON ({e}); re-create it with `harness data --force`") from None
    if m.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{mf} has format {m.get('format')!r}, expected {MANIFEST_FORMAT!r}; re-run `harness data`")
    return m


def open_split(data_dir: str | Path, corpus: str, split: str, manifest: dict | None = None) -> np.ndarray:
    """The token ids of one split as a read-only memory map (never loaded into RAM whole)."""
    d = Path(data_dir)
    m = manifest or load_manifest(d)
    if corpus not in m.get("corpora", {}):
        have = ", ".join(m.get("corpora", {})) or "none"
        raise InputError(f"{d} holds no {corpus!r} corpus (it has: {have}); pass the data directory that "
                         f"`harness data` wrote with {'--text' if corpus == 'text' else '--scripts'} inputs")
    info = m["corpora"][corpus][split]
    path = d / info["file"]
    dtype = np.dtype(m["dtype"])
    if not path.is_file():
        raise InputError(f"token file {path} is missing; re-create the data directory with `harness data --force`")
    size = path.stat().st_size
    if size % dtype.itemsize or size // dtype.itemsize != info["tokens"]:
        raise InputError(f"token file {path} has {size} bytes but the manifest says {info['tokens']} {dtype} tokens; "
                         f"it is truncated or stale: re-create it with `harness data --force`")
    if size == 0:
        return np.zeros((0,), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")
