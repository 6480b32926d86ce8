"""Samples in the formats other people's generators write, read as the human-eval JSONL that
harness.eval.tasks.read_samples scores:

- `FILE.jsonl` / `FILE.jsonl.gz`: {"task_id", "completion"} per line (gzip as human-eval writes it);
- MultiPL-E's completion files: one `NAME.json.gz` (or `.json`) per problem holding its `name` and a
  `completions` list, as MultiPL-E's generation writes them; a folder of them or one file. The task_id is
  the problem's `name` and each completion is kept as written (the evaluation cuts it at the problem's
  stop_tokens).

Every run records `samples_sha256`: the file's sha256, or for a folder the sha256 of its "name sha256" lines
in name order."""
from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from pathlib import Path

from ..errors import UsageError


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_multipl_e(p: Path) -> bool:
    return p.is_dir() or p.name.endswith((".json.gz", ".json"))


def multipl_e_files(p: Path) -> list[Path]:
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.name.endswith((".json.gz", ".json")) and f.is_file())
        if not files:
            raise UsageError(f"--samples {p} is a directory with no MultiPL-E completion files (*.json.gz); pass a "
                             "JSONL samples file or the folder MultiPL-E's generation wrote")
        return files
    return [p]


def samples_sha256(p: Path) -> str:
    if p.is_dir():
        h = hashlib.sha256()
        for f in multipl_e_files(p):
            h.update(f"{f.name} {_sha256(f)}\n".encode())
        return h.hexdigest()
    return _sha256(p)


def multipl_e_to_jsonl(p: Path) -> tuple[list[str], list[dict]]:
    """JSONL lines from MultiPL-E completion files, and one problem record per file that could not be used."""
    lines, bad = [], []
    for f in multipl_e_files(p):
        try:
            raw = gzip.decompress(f.read_bytes()) if f.name.endswith(".gz") else f.read_bytes()
            d = json.loads(raw)
        except (OSError, EOFError, ValueError) as e:
            bad.append({"file": f.name, "reason": "unreadable", "detail": str(e)[:200]})
            continue
        comps = d.get("completions") if isinstance(d, dict) else None
        name = d.get("name") if isinstance(d, dict) else None
        if not isinstance(name, str) or not isinstance(comps, list):
            bad.append({"file": f.name, "reason": "not_a_completion_file",
                        "detail": "needs a string 'name' and a 'completions' list"})
            continue
        for c in comps:
            # a non-string completion stays a line, so read_samples counts it as a bad sample
            lines.append(json.dumps({"task_id": name, "completion": c}))
    return lines, bad


def read_any_samples(path: str | Path, known_ids: set[str], read_samples):
    """(SampleSet, samples_sha256) for a JSONL, JSONL.gz or MultiPL-E completions path."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"samples file {p} does not exist; pass a JSONL file of {{\"task_id\", \"completion\"}} "
                         f"(.jsonl or .jsonl.gz) or MultiPL-E completion files")
    digest = samples_sha256(p)
    if p.is_file() and not p.name.endswith(".gz") and not (p.name.endswith(".json") and _has_completions(p)):
        return read_samples(p, known_ids), digest
    with tempfile.TemporaryDirectory(prefix="harness-samples-") as tmp:
        t = Path(tmp) / "samples.jsonl"
        bad = []
        if p.name.endswith(".jsonl.gz"):
            try:
                with gzip.open(p, "rb") as src, open(t, "wb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        dst.write(chunk)
            except (OSError, EOFError) as e:
                raise UsageError(f"samples file {p} is not valid gzip ({e}); re-create it") from None
        elif _is_multipl_e(p):
            lines, bad = multipl_e_to_jsonl(p)
            t.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
        else:
            raise UsageError(f"samples file {p}: unknown format; pass .jsonl, .jsonl.gz or MultiPL-E .json.gz files")
        s = read_samples(t, known_ids)
    s.source = str(p)
    for b in bad:
        s.bad[b["reason"]] += 1
        s.bad_examples.append(b)
    return s, digest


def _has_completions(p: Path) -> bool:
    """A .json file that is one MultiPL-E completion record (rather than JSONL named .json)."""
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and "completions" in d
