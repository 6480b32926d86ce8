"""`harness data`: harvest the bash and language corpora, train the tokenizer, write packed token files.

Everything is built in a sibling folder `.<out>.partial-<pid>` and renamed into place at the end, so a
failure never leaves a half-written --out and never touches an earlier one; --force replaces only a
folder that `harness data` wrote (or an empty one).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from ..errors import CheckFailed, UsageError

DEFAULT_VOCAB = 4096  # the `small` preset's; the seed used 32,000
DEFAULT_SAMPLE_BYTES = 32 << 20


def _size(s: str) -> int:
    """A byte count: 1000, 64K, 8M, 2G (binary units)."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        n = float(s[:-1]) * mult[s[-1].upper()] if s and s[-1].upper() in mult else float(s)
    except ValueError:
        raise ValueError(f"not a size: {s!r}") from None
    if n <= 0:
        raise ValueError(f"size must be positive: {s!r}")
    return int(n)


_size.__name__ = "size"


def add_arguments(p):
    p.add_argument("--scripts", nargs="+", metavar="DIR", help="folders (or files) to harvest shell scripts "
                   "from (default: /usr/bin /usr/sbin /usr/lib /usr/libexec /usr/share /etc /var/lib/dpkg/info)")
    p.add_argument("--text", nargs="+", metavar="PATH", help="plain-text / JSONL ({\"text\": ...}) files or "
                   "folders for the language corpus (default: this machine's man pages, info manuals and docs)")
    p.add_argument("--no-text", action="store_true", help="build the bash corpus only")
    p.add_argument("--out", required=True, metavar="DIR", help="output data directory")
    p.add_argument("--vocab-size", type=int, default=None, metavar="N",
                   help=f"BPE vocabulary size including 4 special tokens (default {DEFAULT_VOCAB})")
    p.add_argument("--tokenizer", metavar="FILE", help="reuse this tokenizer.json (or data directory) "
                   "instead of training one, e.g. to fine-tune on data tokenized like the pretraining data")
    p.add_argument("--tokenizer-sample", type=_size, default=DEFAULT_SAMPLE_BYTES, metavar="BYTES",
                   help="train the tokenizer on at most this much text, an equal share per corpus "
                   "(a smaller corpus leaves the rest to the other; default 32M)")
    p.add_argument("--val-fraction", type=float, default=0.05, metavar="F",
                   help="share of documents in val (default 0.05)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the split and of sampling (default 0)")
    p.add_argument("--max-scripts", type=int, default=None, metavar="N", help="keep at most N scripts "
                   "(examined in a seeded random order) for quick runs")
    p.add_argument("--max-text-bytes", type=_size, default=None, metavar="BYTES",
                   help="stop reading text after this much (e.g. 8M) for quick runs")
    p.add_argument("--max-script-bytes", type=_size, default=1 << 20, metavar="BYTES",
                   help="skip scripts larger than this (default 1M)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="threads for bash -n, man page rendering and tokenization (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace --out if it holds an earlier `harness data`")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines on stderr")


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise UsageError(f"--out {out} already exists and is not empty; pass --force to replace it or choose "
                         f"another --out")
    try:
        fmt = json.loads((out / "manifest.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    from reference.packed import MANIFEST_FORMAT

    if fmt != MANIFEST_FORMAT:
        raise UsageError(f"--out {out} is not a data directory written by `harness data` (no valid manifest.json); "
                         f"refusing to replace it even with --force: choose another --out")


def _check_args(a) -> None:
    if a.tokenizer and a.vocab_size is not None:
        raise UsageError("pass either --tokenizer (reuse its vocabulary) or --vocab-size (train one), not both")
    if not 0.0 <= a.val_fraction < 1.0:
        raise UsageError(f"--val-fraction {a.val_fraction} is out of range; pass a number in [0, 1), e.g. 0.05")
    if a.max_scripts is not None and a.max_scripts < 1:
        raise UsageError(f"--max-scripts must be at least 1, got {a.max_scripts}")
    from ..outputs import check_output, check_workers

    check_workers(a.workers)
    for p in a.scripts or ():
        if not Path(p).exists():
            raise UsageError(f"--scripts {p} does not exist; pass existing folders or files")
    for p in a.text or ():
        if not Path(p).exists():
            raise UsageError(f"--text {p} does not exist; pass existing files or folders")
    if a.no_text and a.text:
        raise UsageError("--no-text and --text contradict each other; pass one")
    check_output(a.out, inputs=[*(("--scripts", p) for p in a.scripts or ()), *(("--text", p) for p in a.text or ()),
                                ("--tokenizer", a.tokenizer)], kind="dir")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _funnel_line(f: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in f.items() if v)


def run(args) -> int:
    _check_args(args)
    out = Path(args.out).resolve()
    _check_out(out, args.force)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.workers))  # before tokenizers starts its thread pool
    from reference.tokenizer import MIN_VOCAB, load_tokenizer

    reuse = load_tokenizer(args.tokenizer) if args.tokenizer else None
    vocab = args.vocab_size if args.vocab_size is not None else DEFAULT_VOCAB
    if reuse is None and vocab < MIN_VOCAB:
        raise UsageError(f"--vocab-size {vocab} is too small: byte-level BPE needs at least {MIN_VOCAB} "
                         f"(4 special tokens + 256 bytes)")
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    old_term = _exit_on_sigterm()  # before the partial folder exists, so a SIGTERM always cleans it up
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(out)
            stage.mkdir()
        except OSError as e:
            raise UsageError(f"cannot create {stage} next to --out ({e.strerror}); choose an --out in a "
                             f"writable folder") from None
        summary = _build(args, stage, out, reuse, vocab, (lambda m: None) if args.quiet else _log)
        _replace(stage, out)
    except OSError as e:  # disk full, permissions: the inputs were already checked or are counted skips
        shutil.rmtree(stage, ignore_errors=True)
        raise UsageError(f"writing {out} failed: {e.strerror or e} ({e.filename or stage}); free some space "
                         f"or choose another --out") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    print(json.dumps(summary))
    fails = {c: s["roundtrip_failed"] for c, s in summary["corpora"].items() if s["roundtrip_failed"]}
    if fails:
        raise CheckFailed(f"some documents did not survive encode/decode: {fails}; see `roundtrip` in "
                          f"{out}/manifest.json")
    return 0


def _exit_on_sigterm():
    """SIGTERM unwinds like Ctrl-C, so the partial folder is removed; returns the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise SystemExit(128 + signum)
    return signal.signal(signal.SIGTERM, handler)


def _remove_stale(out: Path) -> None:
    """Partial folders of earlier runs that were killed outright (their process is gone)."""
    for p in out.parent.glob(f".{out.name}.partial-*"):
        try:
            os.kill(int(p.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _replace(stage: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(args, stage: Path, out: Path, reuse, vocab: int, log) -> dict:
    from harness import __version__
    from reference.data import pack_corpus, write_manifest

    progress, t = not args.quiet, {}
    t0 = time.perf_counter()
    spools, funnels, sources, bash_extra, dropped = _bash_corpus(args, stage, out, progress, log, t)
    if not args.no_text:
        spools["text"], funnels["text"], sources["text"] = _text_corpus(args, stage, progress, log, t)
    tok, tok_info = _tokenizer(args, spools, reuse, vocab, progress, log, t)
    tok.save(str(stage / "tokenizer.json"))

    entries = {}
    for name, spool in spools.items():
        t1 = time.perf_counter()
        e = pack_corpus(tok, spool, stage, name, val_fraction=args.val_fraction, seed=args.seed,
                        total_bytes=spool.bytes, progress=progress)
        t[f"pack_{name}"] = time.perf_counter() - t1
        entries[name] = {**e, "sources": sources[name], "funnel": funnels[name]}
        log(f"{name}: {e['train']['tokens']:,} train + {e['val']['tokens']:,} val tokens, "
            f"{e['train']['documents']:,} + {e['val']['documents']:,} documents ({t[f'pack_{name}']:.1f}s)")
    entries["bash"].update(bash_extra)
    with open(stage / "bash" / "dropped.jsonl", "w", encoding="utf-8") as f:
        for d in dropped:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    shutil.rmtree(stage / ".spool")
    t["total"] = time.perf_counter() - t0
    write_manifest(stage, tok, entries, extra={
        "created_by": f"harness data {__version__}", "tokenizer_info": tok_info,
        "split": {"method": "sha256(seed:document) < val_fraction", "val_fraction": args.val_fraction,
                  "seed": args.seed},
        "options": {"max_scripts": args.max_scripts, "max_text_bytes": args.max_text_bytes,
                    "max_script_bytes": args.max_script_bytes, "workers": args.workers},
        "timings_s": {k: round(v, 3) for k, v in t.items()}})
    log(f"wrote {out} in {t['total']:.1f}s")
    return {"out": str(out), "vocab_size": tok.get_vocab_size(), "seconds": round(t["total"], 2),
            "corpora": {c: {"funnel": e["funnel"], "train_tokens": e["train"]["tokens"],
                            "val_tokens": e["val"]["tokens"], "roundtrip_failed": e["roundtrip"]["failed"]}
                        for c, e in entries.items()}}


def _bash_corpus(args, stage: Path, out: Path, progress: bool, log, t: dict):
    from reference import corpus, dedup
    from reference.data import Spool
    from reference.errors import InputError
    from reference.textcorpus import TextDoc

    t0 = time.perf_counter()
    h = corpus.harvest_scripts(args.scripts, max_scripts=args.max_scripts, max_bytes=args.max_script_bytes,
                               workers=args.workers, seed=args.seed, exclude=[str(out), str(stage)],
                               progress=progress)
    t["harvest_scripts"] = time.perf_counter() - t0
    log(f"bash corpus: {_funnel_line(h.funnel)} ({t['harvest_scripts']:.1f}s)")
    if not h.scripts:
        raise InputError(f"no usable shell scripts under {' '.join(h.roots) or '(nothing)'} "
                         f"({_funnel_line(h.funnel) or 'no candidates'}); pass folders holding .sh files or "
                         f"scripts with a sh/bash shebang to --scripts")
    spool = Spool(stage / ".spool" / "bash.jsonl").write(TextDoc(s.path, corpus.read_script(s)) for s in h.scripts)
    extra = {"near_dup": {"method": "minhash-lsh", "shingle_tokens": dedup.SHINGLE, "permutations": dedup.NUM_PERM,
                          "bands": dedup.BANDS, "jaccard_threshold": dedup.NEAR_THRESHOLD},
             "dropped_file": "bash/dropped.jsonl"}
    return ({"bash": spool}, {"bash": h.funnel}, {"bash": {"roots": h.roots, "detected_by": h.detected_by}},
            extra, h.dropped)


def _text_corpus(args, stage: Path, progress: bool, log, t: dict):
    from reference import textcorpus
    from reference.data import Spool
    from reference.errors import InputError

    t0 = time.perf_counter()
    files = textcorpus.text_files(args.text) if args.text else textcorpus.default_text_files(args.seed)
    funnel = textcorpus.new_text_funnel()
    docs = textcorpus.iter_text_documents(files, funnel, workers=args.workers, max_bytes=args.max_text_bytes,
                                          progress=progress)
    spool = Spool(stage / ".spool" / "text.jsonl").write(docs)
    t["read_text"] = time.perf_counter() - t0
    log(f"text corpus: {_funnel_line(funnel)}, {spool.bytes / 1e6:.1f} MB ({t['read_text']:.1f}s)")
    if not funnel["kept"]:
        where = " ".join(args.text) if args.text else "this machine's man pages, info manuals and /usr/share/doc"
        raise InputError(f"no usable text in {where} ({_funnel_line(funnel) or 'no files'}); pass plain-text or "
                         f"JSONL files to --text, or --no-text to build the bash corpus only")
    by_kind: dict[str, int] = {}
    for f in files[:len(files) - funnel["not_examined"]]:
        by_kind[textcorpus.kind_of(f)] = by_kind.get(textcorpus.kind_of(f), 0) + 1
    roots = list(args.text) if args.text else [str(p) for p in (
        textcorpus.MAN_ROOT, textcorpus.INFO_ROOT, textcorpus.DOC_ROOT, textcorpus.LICENSE_ROOT)]
    return spool, funnel, {"roots": roots, "files_by_kind": by_kind}


def _tokenizer(args, spools: dict, reuse, vocab: int, progress: bool, log, t: dict):
    from reference.data import tokenizer_sample
    from reference.tokenizer import train_tokenizer

    t0 = time.perf_counter()
    if reuse is not None:
        return reuse, {"reused_from": str(Path(args.tokenizer).resolve())}
    seen = {"documents": 0, "bytes": 0}

    def sample():
        for text in tokenizer_sample({c: (s, s.bytes) for c, s in spools.items()}, args.tokenizer_sample,
                                     args.seed):
            seen["documents"] += 1
            seen["bytes"] += len(text.encode("utf-8"))
            yield text

    log(f"training byte-level BPE, vocab {vocab:,}, on up to {args.tokenizer_sample / 2**20:.0f} MiB ...")
    tok = train_tokenizer(sample(), vocab, show_progress=progress and sys.stderr.isatty())
    t["tokenizer"] = time.perf_counter() - t0
    return tok, {"trained": {"vocab_size": vocab, "min_frequency": 2, "sample_budget_bytes": args.tokenizer_sample,
                             "sampled_documents": seen["documents"], "sampled_bytes": seen["bytes"],
                             "pre_tokenizer": "ByteLevel(add_prefix_space=False)", "decoder": "ByteLevel"}}
