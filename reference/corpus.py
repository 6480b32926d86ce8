"""The bash corpus: find shell scripts under some folders, validate them with `bash -n`, drop duplicates.

Funnel (counts per reason, in this order; every examined candidate ends in exactly one of them):
    raw -> unreadable | too_large | binary | not_utf8 | empty | bash_n_failed | bash_n_timeout
        -> valid -> exact_dup | normalized_dup | near_dup -> kept
(the seed's "2,641 raw -> 1,924 valid -> 1,767 unique" maps onto raw, valid and kept). With a cap
(`max_scripts`) candidates are examined in a seeded hash order and those never reached are `not_examined`.

A candidate is a file that is named explicitly, or whose shebang names sh/bash/dash/ash (another interpreter
in the shebang rules it out), or that ends in .sh/.bash, lives in a bash-completion folder, is a shell rc
file (.bashrc, .profile, /etc/profile ...), or carries an Emacs/vim shell modeline. `bash -n` alone would not
do: most English prose parses as bash.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from . import dedup
from .bash import bash_n
from .errors import InputError

DEFAULT_SCRIPT_ROOTS = ("/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/share", "/etc",
                        "/var/lib/dpkg/info")  # the last: Debian package maintainer scripts
MAX_SCRIPT_BYTES = 1 << 20
BASH_N_TIMEOUT_S = 10.0
FUNNEL = ("raw", "unreadable", "too_large", "binary", "not_utf8", "empty", "bash_n_failed", "bash_n_timeout",
          "valid", "exact_dup", "normalized_dup", "near_dup", "kept", "not_examined")
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules"}
SHELL_EXTS = {".sh", ".bash"}
# Files with these extensions are never opened while looking for scripts (saves reading ~85% of /usr).
NOT_SHELL_EXTS = set(
    ".py .pyc .pyi .pl .pm .pod .so .a .o .la .gz .xz .bz2 .zst .lz4 .zip .jar .whl .png .jpg .jpeg .gif .svg "
    ".ico .xpm .bmp .mo .po .pot .html .htm .css .js .mjs .ts .json .xml .xsl .h .hpp .c .cc .cpp .rb .lua "
    ".tcl .txt .md .rst .ttf .otf .woff .woff2 .pf2 .pfb .afm .pem .crt .der .dat .bin .db .cache .ko .tmac "
    ".map .enc .ps .pdf .typelib .gir .hwdb .dtd .ent .info .cmake .qm .dll .exe .elc .el .m4 .tfm .vf .yaml "
    ".yml .toml .ini .desktop .service .socket .target .timer .rules .policy .vim .jsonl .csv .tsv .sql "
    ".proto .md5sums .list .symbols .shlibs .triggers .conffiles .debug .bc .pom .jmod .ph .cuh .inl".split())
RC_NAMES = {".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", "bash.bashrc", "bashrc"}
_SHEBANG = re.compile(rb"^#!\s*(\S+)(?:\s+(?:-\S+\s+)*(\S+))?")
_SHELLS = {b"sh", b"bash", b"dash", b"ash"}
_MODELINE = re.compile(rb"-\*-.*\b(?:mode:\s*)?(?:shell-script|sh|bash)\b.*-\*-"
                       rb"|\bvim?:.*\b(?:ft|filetype|syntax)=(?:sh|bash)\b")


@dataclass(frozen=True)
class Script:
    path: str
    sha256: str  # of the file's bytes
    bytes: int


@dataclass
class Harvest:
    scripts: list[Script]
    funnel: dict[str, int]
    detected_by: dict[str, int]
    roots: list[str]
    dropped: list[dict] = field(default_factory=list)  # {"path", "reason", "detail"} for every non-kept one


def new_funnel(reasons: Iterable[str] = FUNNEL) -> dict[str, int]:
    return {r: 0 for r in reasons}


def walk_files(root: Path, exclude: frozenset[str] = frozenset()) -> Iterator[os.DirEntry | Path]:
    """Regular files under `root` in sorted order; symlinks are not followed (their targets are walked
    where they live), unreadable folders are skipped."""
    if root.is_file():
        yield root
        return
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            try:
                if e.is_symlink():
                    continue
                if e.is_dir():
                    if e.name not in SKIP_DIRS and os.path.realpath(e.path) not in exclude:
                        subdirs.append(e.path)
                elif e.is_file():
                    yield e
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def detect(path: str, head: bytes | None) -> str | None:
    """How a file was recognised as a shell script, or None. `head`: its first bytes (None: unread)."""
    p = Path(path)
    if head and head.startswith(b"#!"):
        m = _SHEBANG.match(head.split(b"\n", 1)[0])
        if m:
            prog = os.path.basename(m.group(1))
            if prog == b"env" and m.group(2):
                prog = os.path.basename(m.group(2))
            return "shebang" if prog in _SHELLS else None
    if p.suffix.lower() in SHELL_EXTS:
        return "extension"
    if p.parent.name in ("completions", "bash_completion.d") and (
            p.parent.name == "bash_completion.d" or p.parent.parent.name == "bash-completion"):
        return "completion_dir"
    if p.name in RC_NAMES or (p.name == "profile" and p.parent.name == "etc"):
        return "rc_name"
    if head and _MODELINE.search(head):
        return "modeline"
    return None


def find_candidates(roots: Iterable[Path], exclude: Iterable[str] = (), progress: bool = False
                    ) -> tuple[list[tuple[str, str]], int]:
    """[(path, detected_by)] for every candidate script under `roots`, and the number of files looked at."""
    excl = frozenset(os.path.realpath(x) for x in exclude)
    out, seen, n = [], set(), 0
    bar = tqdm(desc="scanning for scripts", unit=" files", disable=not progress, mininterval=0.5, leave=False)
    for root in roots:
        named_file = root.is_file()
        for e in walk_files(root, excl):
            n += 1
            bar.update()
            path = str(e.path if isinstance(e, os.DirEntry) else e)
            if path in seen:
                continue
            seen.add(path)
            if named_file:
                out.append((path, "named"))
                continue
            head = None
            if os.path.splitext(path)[1].lower() not in NOT_SHELL_EXTS:
                try:
                    with open(path, "rb") as f:
                        head = f.read(512)
                except OSError:
                    head = None
            how = detect(path, head)
            if how:
                out.append((path, how))
    bar.close()
    return out, n


@dataclass(frozen=True)
class _Checked:
    reason: str | None  # None: valid
    detail: str = ""
    sha256: str = ""
    size: int = 0
    normalized: str = ""  # sha256 of dedup.normalize(text)
    sig: object = None    # MinHash signature


def check_script(path: str, max_bytes: int = MAX_SCRIPT_BYTES, timeout: float = BASH_N_TIMEOUT_S,
                 bash: str = "bash") -> _Checked:
    """Read one candidate and run every per-file check of the funnel (thread-safe; bash -n is a child)."""
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            return _Checked("too_large", f"{size} bytes > {max_bytes}")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        return _Checked("unreadable", e.strerror or str(e))
    if len(data) > max_bytes:
        return _Checked("too_large", f"> {max_bytes} bytes")
    if b"\x00" in data:
        return _Checked("binary", "contains NUL bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return _Checked("not_utf8", str(e)[:200])
    norm = dedup.normalize(text)
    if not norm:
        return _Checked("empty", "no code outside comments")
    ok, err = bash_n(data, timeout, bash)
    if not ok:
        return _Checked("bash_n_timeout" if ok is None else "bash_n_failed", err)
    return _Checked(None, "", hashlib.sha256(data).hexdigest(), len(data), dedup.digest(norm),
                    dedup.signature(dedup.shingle_hashes(norm)))


def ordered_map(fn: Callable, items: Iterable, workers: int, window: int | None = None) -> Iterator:
    """fn over items on `workers` threads, results in input order, at most `window` in flight (bounded
    memory); the generator can be abandoned early."""
    window = window or 4 * max(1, workers)
    pool = ThreadPoolExecutor(max(1, workers))
    pending: deque = deque()
    try:
        for x in items:
            pending.append(pool.submit(fn, x))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _hash_order(paths: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    key = lambda pw: hashlib.sha256(f"{seed}:{pw[0]}".encode()).digest()  # noqa: E731
    return sorted(paths, key=key)


def harvest_scripts(roots: Iterable[str | Path] | None = None, *, max_scripts: int | None = None,
                    max_bytes: int = MAX_SCRIPT_BYTES, timeout: float = BASH_N_TIMEOUT_S, workers: int = 2,
                    near_threshold: float = dedup.NEAR_THRESHOLD, seed: int = 0, exclude: Iterable[str] = (),
                    progress: bool = False) -> Harvest:
    """Find, validate and deduplicate shell scripts. Kept scripts are returned in the examined order
    (sorted by path; seeded hash order when capped); of a duplicate group the first examined is kept."""
    bash = shutil.which("bash")
    if bash is None:
        raise InputError("`bash` is not on PATH; install bash (it validates every script with `bash -n`)")
    explicit = roots is not None
    roots = [Path(r) for r in (DEFAULT_SCRIPT_ROOTS if roots is None else roots)]
    missing = [str(r) for r in roots if not r.exists()]
    if explicit and missing:
        raise InputError(f"script folder {missing[0]} does not exist; pass existing folders or files to --scripts")
    roots = [r for r in roots if r.exists()]
    cands, _ = find_candidates(roots, exclude, progress)
    cands = _hash_order(cands, seed) if max_scripts else sorted(cands)
    funnel = new_funnel()
    detected_by = Counter()
    kept, dropped = [], []
    exact, normalized, near = {}, {}, dedup.NearDupIndex(near_threshold)
    check = lambda pw: (pw, check_script(pw[0], max_bytes, timeout, bash))  # noqa: E731
    bar = tqdm(total=len(cands), desc="validating scripts (bash -n)", unit=" scripts", disable=not progress,
               mininterval=0.5, leave=False)
    examined = 0
    for (path, how), c in ordered_map(check, cands, workers):
        examined += 1
        bar.update()
        funnel["raw"] += 1
        detected_by[how] += 1
        reason, detail = c.reason, c.detail
        if reason is None:
            funnel["valid"] += 1
            if c.sha256 in exact:
                reason, detail = "exact_dup", exact[c.sha256]
            elif c.normalized in normalized:
                reason, detail = "normalized_dup", normalized[c.normalized]
            else:
                exact[c.sha256] = normalized[c.normalized] = path
                hit = near.find_or_add(path, c.sig)
                if hit is not None:
                    reason, detail = "near_dup", f"{hit[0]} (estimated Jaccard {hit[1]:.2f})"
        if reason is None:
            funnel["kept"] += 1
            kept.append(Script(path, c.sha256, c.size))
            if max_scripts and len(kept) >= max_scripts:
                break
        else:
            funnel[reason] += 1
            dropped.append({"path": path, "reason": reason, "detail": detail})
    bar.close()
    funnel["not_examined"] = len(cands) - examined
    return Harvest(kept, funnel, dict(detected_by), [str(r) for r in roots], dropped)


def read_script(s: Script) -> str:
    """The text of a kept script; InputError if it changed since it was harvested."""
    data = Path(s.path).read_bytes()
    if hashlib.sha256(data).hexdigest() != s.sha256:
        raise InputError(f"script {s.path} changed while `harness data` ran; run it again")
    return data.decode("utf-8")
