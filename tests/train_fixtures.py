"""A small real data directory in reference/packed.py's format, for the trainer's tests.

Text: docstrings of Python standard-library modules (real English prose, present on every machine).
Bash: short scripts built from common idioms. The tokenizer is the project's byte-level BPE
(reference/tokenizer.py) trained on both, with a vocabulary small enough for tiny test models.
"""
from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import numpy as np

from reference.packed import MANIFEST_FORMAT, sha256_file

STDLIB = ("argparse", "collections", "functools", "itertools", "json", "os", "re", "subprocess", "textwrap",
          "pathlib", "shutil", "logging", "string", "tempfile", "random", "statistics", "csv")

_BASH = [
    '#!/bin/bash\nset -euo pipefail\nfor f in "$@"; do\n  wc -l "$f"\ndone\n',
    '#!/bin/bash\nif [ -z "${{1:-}}" ]; then\n  echo "usage: $0 DIR" >&2\n  exit 1\nfi\nls -la "$1"\n',
    '#!/bin/sh\ngrep -rn TODO . | sort | uniq -c | sort -rn | head -n {n}\n',
    '#!/bin/bash\ncount=0\nwhile read -r line; do\n  count=$((count + {n}))\ndone < "$1"\necho "$count"\n',
    '#!/bin/bash\nfind . -name "*.{ext}" -type f -mtime -{n} -print0 | xargs -0 du -h | sort -h\n',
    '#!/bin/bash\nfor i in $(seq 1 {n}); do\n  echo "item $i"\ndone\n',
    '#!/bin/bash\ntar -czf backup-$(date +%F).tar.gz "${{1:-.}}" && echo done\n',
    '#!/bin/bash\ncase "$1" in\n  start) echo starting ;;\n  stop) echo stopping ;;\n  *) exit {n} ;;\nesac\n',
]


def text_documents() -> list[str]:
    docs = []
    for name in STDLIB:
        mod = importlib.import_module(name)
        for obj in [mod, *(v for _, v in sorted(vars(mod).items()) if inspect.isfunction(v) or inspect.isclass(v))]:
            d = inspect.getdoc(obj)
            if d and len(d) > 40:
                docs.append(d)
    return docs


def bash_documents(n: int = 400) -> list[str]:
    exts = ("txt", "log", "sh", "py", "md")
    return [_BASH[i % len(_BASH)].format(n=(i * 7) % 23 + 1, ext=exts[i % len(exts)]) for i in range(n)]


def _pack(tok, docs: list[str], eos: int) -> np.ndarray:
    from reference.tokenizer import encode_batch

    out = []
    for ids in encode_batch(tok, docs):
        out.extend(ids)
        out.append(eos)
    return np.asarray(out, dtype=np.uint16)


def make_data_dir(out: str | Path, vocab_size: int = 384, *, bash_docs: int = 400) -> Path:
    from reference.tokenizer import save_tokenizer, special_ids, train_tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text, bash = text_documents(), bash_documents(bash_docs)
    tok = train_tokenizer(text + bash, vocab_size)
    save_tokenizer(tok, out / "tokenizer.json")
    ids = special_ids(tok)
    corpora = {}
    for name, docs in (("text", text), ("bash", bash)):
        n_val = max(1, len(docs) // 10)
        (out / name).mkdir(exist_ok=True)
        entry = {}
        for split, part in (("train", docs[n_val:]), ("val", docs[:n_val])):
            arr = _pack(tok, part, ids["eos"])
            arr.tofile(out / name / f"{split}.bin")
            entry[split] = {"file": f"{name}/{split}.bin", "tokens": int(arr.size), "documents": len(part),
                            "bytes": sum(len(d.encode()) for d in part)}
        corpora[name] = entry
    manifest = {"format": MANIFEST_FORMAT, "dtype": "uint16", "vocab_size": tok.get_vocab_size(),
                "eos_id": ids["eos"], "bos_id": ids["bos"], "pad_id": ids["pad"],
                "tokenizer": {"file": "tokenizer.json", "sha256": sha256_file(out / "tokenizer.json")},
                "corpora": corpora}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


TINY_MODEL = {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_seq_len": 32}


def tiny_config(**kw):
    """A TrainConfig for a 2-layer, d_model 32 model over 32-token windows."""
    from reference.train import TrainConfig

    base = dict(preset="small", model=dict(TINY_MODEL), steps=8, batch_size=4, seq_len=32, lr=3e-3, warmup=2,
                eval_every=4, eval_batches=2, save_every=4, keep=3, dropout=0.0, log_every=1)
    base.update(kw)
    return TrainConfig(**base)
