"""Writing packed token files (the format and the reader are in reference/packed.py).

Each corpus is a re-iterable stream of documents (a callable returning an iterable of TextDoc). Two passes:
1. split: every document gets score = sha256(f"{seed}:" + its UTF-8 bytes)[:8] / 2^64 and goes to val when
   score < val_fraction, so the split depends on the document alone (not on order or on the other documents).
   Two fix-ups keep both files usable: with val_fraction > 0 and at least 2 documents but none in val, the
   lowest-scored document moves to val; with none in train, the highest-scored one moves to train.
2. pack: documents are encoded in batches (parallel in Rust) and appended to <corpus>/{train,val}.bin as
   little-endian uint16/uint32 ids, each followed by one EOS id, no padding; <corpus>/documents.jsonl records
   source, sha256, split, offset (in tokens, within its split file) and tokens of every document. Every
   document is decoded again and compared with its text (`roundtrip_failures` in the manifest).
Memory: one batch of documents and 8 bytes per document for the scores.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .files import atomic_write_text
from .packed import MANIFEST_FORMAT, sha256_file
from .textcorpus import TextDoc
from .tokenizer import encode_batch, special_ids

SPLITS = ("train", "val")
BATCH_DOCS = 256
BATCH_CHARS = 4 << 20
DocStream = Callable[[], Iterable[TextDoc]]


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def split_score(text: str, seed: int = 0) -> float:
    h = hashlib.sha256(f"{seed}:".encode() + text.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def assign_splits(scores: np.ndarray, val_fraction: float) -> np.ndarray:
    """Boolean mask, True = val, for documents with these split scores (see the module docstring)."""
    val = scores < val_fraction
    n = len(scores)
    if val_fraction > 0 and n >= 2 and not val.any():
        val[int(np.argmin(scores))] = True
    if n >= 1 and val.all():
        val[int(np.argmax(scores))] = False
    return val


def _batches(docs: Iterable[TextDoc]) -> Iterator[list[TextDoc]]:
    batch, chars = [], 0
    for d in docs:
        batch.append(d)
        chars += len(d.text)
        if len(batch) >= BATCH_DOCS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def pack_corpus(tok, docs: DocStream, out_dir: str | Path, corpus: str, *, val_fraction: float = 0.05,
                seed: int = 0, verify: bool = True, total_bytes: int | None = None, progress: bool = False) -> dict:
    """Tokenize and pack one corpus into out_dir/<corpus>/; returns its manifest entry (train, val, ...)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out_dir)
    (out / corpus).mkdir(parents=True, exist_ok=True)
    scores = np.fromiter((split_score(d.text, seed) for d in docs()), dtype=np.float64)
    is_val = assign_splits(scores, val_fraction)
    dtype = token_dtype(tok.get_vocab_size())
    eos = special_ids(tok)["eos"]
    info = {s: {"file": f"{corpus}/{s}.bin", "tokens": 0, "documents": 0, "bytes": 0} for s in SPLITS}
    failures: list[str] = []
    n_fail = 0
    bar = tqdm(total=total_bytes, desc=f"packing {corpus}", unit="B", unit_scale=True, disable=not progress,
               mininterval=0.5, leave=False)
    i = 0
    with open(out / corpus / "train.bin", "wb") as ftrain, open(out / corpus / "val.bin", "wb") as fval, \
            open(out / corpus / "documents.jsonl", "w", encoding="utf-8") as fdocs:
        files = {"train": ftrain, "val": fval}
        for batch in _batches(docs()):
            texts = [d.text for d in batch]
            ids_list = encode_batch(tok, texts)
            decoded = tok.decode_batch(ids_list, skip_special_tokens=False) if verify else texts
            for d, ids, back in zip(batch, ids_list, decoded):
                if i >= len(is_val):
                    raise RuntimeError(f"the {corpus} documents changed between passes (more than {len(is_val)})")
                split = "val" if is_val[i] else "train"
                i += 1
                if back != d.text:
                    n_fail += 1
                    if len(failures) < 10:
                        failures.append(d.source)
                arr = np.empty(len(ids) + 1, dtype=dtype)
                arr[:-1] = ids
                arr[-1] = eos
                nbytes = len(d.text.encode("utf-8"))
                s = info[split]
                fdocs.write(json.dumps({"source": d.source, "sha256": hashlib.sha256(d.text.encode()).hexdigest(),
                                        "split": split, "offset": s["tokens"], "tokens": len(ids),
                                        "bytes": nbytes}, ensure_ascii=False) + "\n")
                files[split].write(arr.tobytes())
                s["tokens"] += len(arr)
                s["documents"] += 1
                s["bytes"] += nbytes
                bar.update(nbytes)
    bar.close()
    if i != len(is_val):
        raise RuntimeError(f"the {corpus} documents changed between passes ({i} != {len(is_val)})")
    return {**info, "documents_file": f"{corpus}/documents.jsonl",
            "roundtrip": {"checked": i if verify else 0, "failed": n_fail, "examples": failures}}


def tokenizer_sample(streams: dict[str, tuple[DocStream, int]], budget_bytes: int, seed: int = 0
                     ) -> Iterator[str]:
    """Texts for training the tokenizer: each corpus gets an equal share of `budget_bytes` (a corpus smaller
    than its share gives the rest to the others) and is sampled uniformly by document hash within it.
    streams: name -> (documents, total UTF-8 bytes)."""
    left, shares = budget_bytes, {}
    for name, (_, total) in sorted(streams.items(), key=lambda kv: kv[1][1]):
        shares[name] = min(total, left // max(1, len(streams) - len(shares)))
        left -= shares[name]
    for name, (docs, total) in streams.items():
        p = shares[name] / total if total else 0.0
        for d in docs():
            if p >= 1.0 or split_score(d.text, seed + 1) < p:
                yield d.text


def write_manifest(out_dir: str | Path, tok, corpora: dict[str, dict], *, tokenizer_file: str = "tokenizer.json",
                   extra: dict | None = None) -> Path:
    """manifest.json in the harness-packed-v1 format (reference/packed.py), written via temp + rename."""
    out = Path(out_dir)
    ids = special_ids(tok)
    vocab = tok.get_vocab_size()
    m = {"format": MANIFEST_FORMAT, "dtype": token_dtype(vocab).name, "vocab_size": vocab,
         "eos_id": ids["eos"], "bos_id": ids["bos"], "pad_id": ids["pad"], "unk_id": ids["unk"],
         "tokenizer": {"file": tokenizer_file, "sha256": sha256_file(out / tokenizer_file)},
         "corpora": corpora, **(extra or {})}
    path = out / "manifest.json"
    return atomic_write_text(path, json.dumps(m, indent=2, ensure_ascii=False) + "\n")


class Spool:
    """Documents written once to a JSONL file and read back as often as needed (man pages are rendered
    once; a corpus larger than RAM stays on disk)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.documents = 0
        self.bytes = 0

    def write(self, docs: Iterable[TextDoc]) -> "Spool":
        with open(self.path, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"source": d.source, "text": d.text}, ensure_ascii=False) + "\n")
                self.documents += 1
                self.bytes += len(d.text.encode("utf-8"))
        return self

    def __call__(self) -> Iterator[TextDoc]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                yield TextDoc(o["source"], o["text"])
