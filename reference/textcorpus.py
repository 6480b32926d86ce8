"""The language corpus: plain text and JSONL ({"text": ...}) files, and an offline default made of the real
documentation on this machine (man pages rendered to text by groff, see manpages.py; GNU info manuals;
README/NEWS/text files under /usr/share/doc; the licence texts in /usr/share/common-licenses).

Documents: one per man page, info file, plain-text file or JSONL line. A plain-text file is split at lines
that read "<|endoftext|>" (the TinyStories separator), and at a blank line once a document passes 1 MiB, so
a file larger than RAM streams. Exact duplicates (sha256 of the text) are dropped; near duplicates are not
looked for in prose. Funnel: files examined and why some gave nothing, then documents and why some were
dropped (every document ends in exactly one of empty, bad_jsonl_line, exact_dup, kept).
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .corpus import new_funnel, ordered_map, walk_files
from .errors import InputError
from .manpages import MAN_BATCH, render_pages

FUNNEL = ("files", "unreadable", "binary", "not_utf8", "render_failed", "man_alias", "documents", "empty",
          "bad_jsonl_line", "exact_dup", "kept", "not_examined")
DOC_TARGET_CHARS = 1 << 20   # split long plain text at the next blank line after this many characters
DOC_MAX_CHARS = 4 << 20      # ... and at any line after this many
IN_WORKER_BYTES = 8 << 20    # files up to this size (on disk) are read whole on a worker thread; larger stream
SEPARATOR = "<|endoftext|>"
MAN_ROOT, INFO_ROOT, DOC_ROOT, LICENSE_ROOT = (Path("/usr/share/man"), Path("/usr/share/info"),
                                               Path("/usr/share/doc"), Path("/usr/share/common-licenses"))
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_MAN_DIR = re.compile(r"^man[0-9n][a-z0-9]*$")
_MAN_NAME = re.compile(r"\.[0-9n][a-z0-9]*(\.(gz|bz2|xz))?$")
_INFO_NAME = re.compile(r"\.info(-\d+)?(\.(gz|bz2|xz))?$")
_JSONL_NAME = re.compile(r"\.jsonl(\.(gz|bz2|xz))?$")
_DOC_NAME = re.compile(r"^(README|NEWS|TODO|FAQ|HACKING|USAGE|BUGS)([._-].*)?$|\.(txt|md|rst|text)(\.gz)?$", re.I)
_INFO_JUNK = ("Tag Table:", "End Tag Table", "Indirect:", "Local Variables:")


@dataclass(frozen=True)
class TextDoc:
    source: str  # path, or path:line for JSONL
    text: str


def kind_of(path: Path) -> str:
    name = path.name
    if _JSONL_NAME.search(name):
        return "jsonl"
    if _INFO_NAME.search(name):
        return "info"
    if _MAN_NAME.search(name) and any(_MAN_DIR.match(p) for p in path.parent.parts[-2:]):
        return "man"
    return "plain"


def default_text_files(seed: int = 0) -> list[Path]:
    """Every default text file on this machine, in a seeded hash order (so a byte cap is a fair sample).
    Man pages only where groff is installed (Debian: groff-base) to render them."""
    files = []
    if MAN_ROOT.is_dir() and shutil.which("groff"):  # English pages only: the top-level man<N> folders
        for d in sorted(MAN_ROOT.iterdir()):
            if _MAN_DIR.match(d.name) and d.is_dir():
                files += [Path(e.path) for e in walk_files(d)]
    if INFO_ROOT.is_dir():
        files += [Path(e.path) for e in walk_files(INFO_ROOT) if _INFO_NAME.search(e.name)]
    if DOC_ROOT.is_dir():
        files += [Path(e.path) for e in walk_files(DOC_ROOT) if _DOC_NAME.search(e.name)]
    if LICENSE_ROOT.is_dir():
        files += [Path(e.path) for e in walk_files(LICENSE_ROOT)]
    return sorted(files, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest())


def text_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, folders walked in sorted order; InputError for a path that does not exist."""
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"text path {p} does not exist; pass existing files or folders to --text")
        out += [p] if p.is_file() else [Path(e.path) for e in walk_files(p)]
    return out


def _open_bytes(path: Path):
    return _COMPRESSED.get(path.suffix, open)(path, "rb")


def _info_text(text: str) -> str:
    parts = [s for s in text.split("\x1f") if not s.lstrip("\n").startswith(_INFO_JUNK)]
    return "".join(parts)


def split_plain(lines: Iterable[str]) -> Iterator[str]:
    """Documents of a plain-text stream (lines keep their endings, so joining them gives the text back)."""
    buf, n = [], 0
    for line in lines:
        if line.strip() == SEPARATOR:
            if buf:
                yield "".join(buf)
            buf, n = [], 0
            continue
        buf.append(line)
        n += len(line)
        if n >= DOC_MAX_CHARS or (n >= DOC_TARGET_CHARS and not line.strip()):
            yield "".join(buf)
            buf, n = [], 0
    if buf:
        yield "".join(buf)


def _read_unit(paths: list[Path], groff: str | None) -> list[tuple[Iterable[TextDoc], dict]]:
    """[(documents, file-level counts)] for a run of man pages (rendered together) or for one other file.
    Documents is a list, or a generator for large plain and JSONL files (which then updates its counts
    itself as it streams)."""
    if kind_of(paths[0]) != "man":
        return [_read_file(paths[0])]
    results: list = [None] * len(paths)
    todo = []
    for i, path in enumerate(paths):
        try:
            with _open_bytes(path) as f:
                data = f.read()
        except (OSError, EOFError, lzma.LZMAError):
            results[i] = ([], {"files": 1, "unreadable": 1})
            continue
        if data.lstrip().startswith(b".so ") and data.count(b"\n") <= 2:
            results[i] = ([], {"files": 1, "man_alias": 1})
        else:
            todo.append((i, data))
    for (i, _), text in zip(todo, render_pages([d for _, d in todo], groff)):
        results[i] = ([], {"files": 1, "render_failed": 1}) if text is None else \
            ([TextDoc(str(paths[i]), text)], {"files": 1})
    return results


def _read_file(path: Path):
    counts = {"files": 1}
    kind = kind_of(path)
    try:
        big = path.stat().st_size > IN_WORKER_BYTES
        if big and kind in ("plain", "jsonl"):
            with _open_bytes(path) as f:
                head = f.read(8192)
            if kind == "plain" and b"\x00" in head:
                return [], {**counts, "binary": 1}
            return (_stream_plain if kind == "plain" else _stream_jsonl)(path, counts), counts
        with _open_bytes(path) as f:
            data = f.read()
    except (OSError, EOFError, lzma.LZMAError):
        return [], {**counts, "unreadable": 1}
    if kind == "jsonl":
        return list(_stream_jsonl(path, counts, io.BytesIO(data))), counts
    if b"\x00" in data[:8192]:
        return [], {**counts, "binary": 1}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], {**counts, "not_utf8": 1}
    if kind == "info":
        return [TextDoc(str(path), _info_text(text))], counts
    return [TextDoc(str(path), d) for d in split_plain(io.StringIO(text, newline=""))], counts


def _units(files: list[Path]) -> Iterator[list[Path]]:
    """Consecutive man pages in runs of up to MAN_BATCH; any other file alone."""
    run: list[Path] = []
    for f in files:
        if kind_of(f) == "man":
            run.append(f)
            if len(run) == MAN_BATCH:
                yield run
                run = []
            continue
        if run:
            yield run
            run = []
        yield [f]
    if run:
        yield run


def _stream_plain(path: Path, counts: dict) -> Iterator[TextDoc]:
    try:
        with _open_bytes(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as f:
            for d in split_plain(f):
                yield TextDoc(str(path), d)
    except UnicodeDecodeError:
        counts["not_utf8"] = 1  # documents before the bad byte were already yielded and stay
    except (OSError, EOFError, lzma.LZMAError):
        counts["unreadable"] = 1


def _stream_jsonl(path: Path, counts: dict, f=None) -> Iterator[TextDoc]:
    def lines():
        with (f or _open_bytes(path)) as fh:
            yield from enumerate(fh, 1)
    try:
        for i, raw in lines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
                text = obj["text"]
                if not isinstance(text, str):
                    raise TypeError
                text.encode("utf-8")  # JSON can hold lone surrogates (\ud800), which are not text
            except (UnicodeDecodeError, ValueError, KeyError, TypeError):
                counts["bad_jsonl_line"] = counts.get("bad_jsonl_line", 0) + 1
                continue
            yield TextDoc(f"{path}:{i}", text)
    except (OSError, EOFError, lzma.LZMAError):
        counts["unreadable"] = 1


def iter_text_documents(files: list[Path], funnel: dict[str, int], *, workers: int = 2,
                        max_bytes: int | None = None, progress: bool = False) -> Iterator[TextDoc]:
    """Kept documents of `files` in file order; `funnel` (see new_text_funnel) is updated as they stream.
    Stops once the kept UTF-8 bytes reach `max_bytes`."""
    groff = shutil.which("groff")
    seen: set[int] = set()  # 8-byte sha256 prefixes of kept texts (collisions: ~n^2/2^65)
    kept_bytes, done = 0, 0
    bar = tqdm(total=len(files), desc="reading text", unit=" files", disable=not progress, mininterval=0.5,
               leave=False)
    units = ordered_map(lambda u: _read_unit(u, groff), _units(files), workers)
    results = (r for unit in units for r in unit)
    try:
        for docs, counts in results:
            done += 1
            bar.update()
            for doc in docs:
                funnel["documents"] += 1
                data = doc.text.encode("utf-8")
                if not doc.text.strip():
                    funnel["empty"] += 1
                    continue
                h = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
                if h in seen:
                    funnel["exact_dup"] += 1
                    continue
                seen.add(h)
                funnel["kept"] += 1
                kept_bytes += len(data)
                yield doc
                if max_bytes is not None and kept_bytes >= max_bytes:
                    break
            for k, v in counts.items():
                funnel[k] += v
            if max_bytes is not None and kept_bytes >= max_bytes:
                break
    finally:
        units.close()
        bar.close()
        funnel["not_examined"] = len(files) - done


def new_text_funnel() -> dict[str, int]:
    return new_funnel(FUNNEL)
