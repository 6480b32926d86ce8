"""reference/corpus.py, dedup.py, textcorpus.py: detection, validation, dedup funnel, text discovery."""
import gzip
import json
import shutil
from pathlib import Path

import pytest

from reference import corpus, dedup, textcorpus
from reference.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "fixtures/corpora/scripts"
TEXT = ROOT / "fixtures/corpora/text"


@pytest.mark.parametrize("path,head,expected", [
    ("/x/run", b"#!/bin/sh\necho", "shebang"),
    ("/x/run", b"#! /bin/bash -e\n", "shebang"),
    ("/x/run", b"#!/usr/bin/env bash\n", "shebang"),
    ("/x/run", b"#!/usr/bin/env -S bash -eu\n", "shebang"),
    ("/x/run", b"#!/bin/dash\r\n", "shebang"),
    ("/x/run.sh", b"#!/usr/bin/python3\n", None),      # the shebang wins over the extension
    ("/x/run", b"#!/usr/bin/zsh\n", None),
    ("/x/lib.sh", b"f() { :; }\n", "extension"),
    ("/usr/share/bash-completion/completions/git", b"_git() {", "completion_dir"),
    ("/etc/bash_completion.d/foo", b"_foo() {", "completion_dir"),
    ("/home/u/.bashrc", b"alias l=ls\n", "rc_name"),
    ("/etc/profile", b"PATH=/bin\n", "rc_name"),
    ("/x/helpers", b"# -*- shell-script -*-\nf() { :; }\n", "modeline"),
    ("/x/helpers", b"f() { :; }\n# vim: set ft=sh:\n", "modeline"),
    ("/x/README", b"This is prose.\n", None),
    ("/x/profile", b"PATH=/bin\n", None),
])
def test_detect(path, head, expected):
    assert corpus.detect(path, head) == expected


def test_fixture_funnel():
    h = corpus.harvest_scripts([SCRIPTS])
    f = h.funnel
    assert (f["raw"], f["bash_n_failed"], f["valid"], f["exact_dup"], f["normalized_dup"], f["near_dup"],
            f["kept"]) == (13, 1, 12, 1, 1, 1, 9)
    # every examined candidate ends in exactly one reason
    rejected = sum(f[r] for r in ("unreadable", "too_large", "binary", "not_utf8", "empty", "bash_n_failed",
                                  "bash_n_timeout"))
    assert f["raw"] == rejected + f["valid"]
    assert f["valid"] == f["exact_dup"] + f["normalized_dup"] + f["near_dup"] + f["kept"]
    why = {Path(d["path"]).name: (d["reason"], Path(d["detail"].split()[0]).name if d["reason"].endswith("dup")
                                  else "") for d in h.dropped}
    assert why == {"uncompress": ("exact_dup", "gunzip"), "psmisc.postrm": ("normalized_dup", "bash.postrm"),
                   "fakeroot-tcp": ("near_dup", "fakeroot-sysv"), "ucf-example.postinst": ("bash_n_failed", "")}
    assert "pip" not in {Path(s.path).name for s in h.scripts}  # a Python script is no candidate
    assert h.detected_by == {"shebang": 10, "completion_dir": 2, "rc_name": 1}


def test_bad_files_are_counted_not_raised(tmp_path):
    src = (SCRIPTS / "gunzip").read_bytes()
    elf = Path("/bin/true" if Path("/bin/true").exists() else "/usr/bin/true").read_bytes()
    (tmp_path / "binary.sh").write_bytes(elf[:3000])
    (tmp_path / "latin1.sh").write_bytes(src.replace(b"gzip", "gzíp".encode("latin-1"), 1))
    (tmp_path / "comments.sh").write_text("#!/bin/sh\n# nothing but comments\n\n")
    (tmp_path / "big.sh").write_bytes(b"#!/bin/sh\n" + b"echo padding\n" * 400)
    (tmp_path / "broken.sh").write_text("#!/bin/sh\nif true; then\n")
    (tmp_path / "ok.sh").write_bytes(src)
    h = corpus.harvest_scripts([tmp_path], max_bytes=4000)
    f = h.funnel
    assert (f["raw"], f["binary"], f["not_utf8"], f["empty"], f["too_large"], f["bash_n_failed"], f["kept"]) == \
        (6, 1, 1, 1, 1, 1, 1)
    assert [Path(s.path).name for s in h.scripts] == ["ok.sh"]


def test_missing_root_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        corpus.harvest_scripts([tmp_path / "nope"])


def test_cap_is_deterministic_and_counted():
    a = corpus.harvest_scripts([SCRIPTS], max_scripts=3, seed=1)
    b = corpus.harvest_scripts([SCRIPTS], max_scripts=3, seed=1)
    assert [s.path for s in a.scripts] == [s.path for s in b.scripts] and len(a.scripts) == 3
    assert a.funnel["raw"] + a.funnel["not_examined"] == 13


def test_output_folder_is_excluded(tmp_path):
    (tmp_path / "a.sh").write_text("#!/bin/sh\necho a\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.sh").write_text("#!/bin/sh\necho b b b\n")
    h = corpus.harvest_scripts([tmp_path], exclude=[str(tmp_path / "out")])
    assert [Path(s.path).name for s in h.scripts] == ["a.sh"]


def test_minhash_estimates_jaccard_on_real_scripts():
    def sh(name):
        return dedup.shingle_hashes(dedup.normalize((SCRIPTS / name).read_text()))
    pairs = [("fakeroot-sysv", "fakeroot-tcp"), ("zgrep", "ldd"), ("gunzip", "zgrep")]
    for a, b in pairs:
        exact = dedup.jaccard(sh(a), sh(b))
        est = float((dedup.signature(sh(a)) == dedup.signature(sh(b))).mean())
        assert abs(est - exact) < 0.15, (a, b, exact, est)
    assert dedup.jaccard(sh("fakeroot-sysv"), sh("fakeroot-tcp")) > dedup.NEAR_THRESHOLD
    assert dedup.jaccard(sh("zgrep"), sh("ldd")) < 0.3


def test_near_dup_index():
    idx = dedup.NearDupIndex()
    text = (SCRIPTS / "zgrep").read_text()
    sig = dedup.signature(dedup.shingle_hashes(dedup.normalize(text)))
    assert idx.find_or_add("zgrep", sig) is None
    edited = text.replace("grep", "egrep", 3)
    hit = idx.find_or_add("edited", dedup.signature(dedup.shingle_hashes(dedup.normalize(edited))))
    assert hit is not None and hit[0] == "zgrep"
    other = dedup.signature(dedup.shingle_hashes(dedup.normalize((SCRIPTS / "ldd").read_text())))
    assert idx.find_or_add("ldd", other) is None and len(idx) == 2


def test_normalize_drops_comments_blank_lines_and_indentation():
    assert dedup.normalize("#!/bin/sh\n# c\n\n  if  true;\tthen\n\t\techo  x # keep\n  fi\n") == \
        "if true; then\necho x # keep\nfi"


# ---- language text -------------------------------------------------------------------------------------------

def _docs(files, **kw):
    f = textcorpus.new_text_funnel()
    return list(textcorpus.iter_text_documents([Path(p) for p in files], f, **kw)), f


def test_kind_of():
    assert textcorpus.kind_of(Path("/usr/share/man/man1/ls.1.gz")) == "man"
    assert textcorpus.kind_of(Path("/usr/share/man/man3/printf.3posix.gz")) == "man"
    assert textcorpus.kind_of(Path("/usr/share/info/find.info-2.gz")) == "info"
    assert textcorpus.kind_of(Path("/data/owt.jsonl.gz")) == "jsonl"
    assert textcorpus.kind_of(Path("/doc/README.1.gz")) == "plain"  # a man-like name outside man<N>/


def test_fixture_text_documents(tmp_path):
    shutil.copy(TEXT / "man/man1/true.1.gz", tmp_path)  # outside a man<N> folder: plain roff source
    files = textcorpus.text_files([TEXT, tmp_path])
    docs, f = _docs(files)
    by = {Path(d.source.split(":")[0]).name: d for d in docs}
    assert set(by) == {"base-passwd.README", "gzip.README", "libnettle8.README", "readmes.jsonl", "true.1.gz"}
    assert (f["files"], f["documents"], f["kept"]) == (6, 7, 7)
    assert by["gzip.README"].text == (TEXT / "gzip.README").read_text()
    roff = next(d.text for d in docs if d.source == str(tmp_path / "true.1.gz"))
    assert roff.startswith(".\\\" DO NOT MODIFY")
    if shutil.which("groff"):
        page = next(d.text for d in docs if d.source == str(TEXT / "man/man1/true.1.gz"))
        assert "true - do nothing, successfully" in page and "\b" not in page and ".TH" not in page
    again, f2 = _docs(files + files)
    assert len(again) == 7 and f2["exact_dup"] == 7
    jsonl = [d for d in docs if ".jsonl:" in d.source]
    assert len(jsonl) == 2 and jsonl[0].text.startswith(
        json.loads((TEXT / "readmes.jsonl").read_text().splitlines()[0])["text"][:40])


def test_bad_text_is_counted(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x7fELF\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (tmp_path / "blank.txt").write_text("\n\n  \n")
    good = (TEXT / "gzip.README").read_text()
    lines = [json.dumps({"text": good}), "{not json", json.dumps({"txt": "x"}), json.dumps({"text": 3}),
             '{"text": "\\ud800 lone surrogate"}', "", json.dumps({"text": good})]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    gz = tmp_path / "broken.txt.gz"
    gz.write_bytes(gzip.compress(b"hello")[:-6])
    docs, f = _docs(sorted(tmp_path.iterdir()))
    assert [d.text for d in docs] == [good]
    assert (f["binary"], f["not_utf8"], f["unreadable"], f["empty"], f["bad_jsonl_line"], f["exact_dup"]) == \
        (1, 1, 1, 1, 4, 1)


def test_plain_text_split_and_streaming(tmp_path, monkeypatch):
    body = "Once upon a time.\r\nThe end.\n"
    text = f"{body}<|endoftext|>\n{body}second\n<|endoftext|>\n\n"
    p = tmp_path / "stories.txt"
    p.write_text(text, newline="")
    whole, _ = _docs([p])
    monkeypatch.setattr(textcorpus, "IN_WORKER_BYTES", 1)  # force the streaming path
    streamed, _ = _docs([p])
    assert [d.text for d in whole] == [d.text for d in streamed] == [body, body + "second\n"]
    monkeypatch.setattr(textcorpus, "DOC_TARGET_CHARS", 10)
    parts = list(textcorpus.split_plain(["a" * 8 + "\n", "b\n", "\n", "c\n"]))
    assert parts == ["a" * 8 + "\nb\n\n", "c\n"] and "".join(parts) == "a" * 8 + "\nb\n\nc\n"


def test_byte_cap_stops_early():
    files = textcorpus.text_files([TEXT])
    docs, f = _docs(files, max_bytes=100)
    assert len(docs) == 1 and f["not_examined"] == len(files) - 1


def test_missing_text_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        textcorpus.text_files([tmp_path / "nope"])


def test_default_text_is_real_documentation():
    files = textcorpus.default_text_files()
    if not files:
        pytest.skip("no man pages or /usr/share/doc text on this machine")
    assert all(f.is_file() for f in files[:50])
    assert textcorpus.default_text_files() == files  # deterministic order
    docs, f = _docs(files[:20])
    assert f["kept"] >= 1 and all(d.text.strip() for d in docs)


def test_info_cleanup():
    raw = ("Intro text.\n\x1f\nFile: x.info, Node: Top\n\nBody.\n"
           "\x1f\nTag Table:\nNode: Top\x7f42\n\x1f\nEnd Tag Table\n")
    assert textcorpus._info_text(raw) == "Intro text.\n\nFile: x.info, Node: Top\n\nBody.\n"


# ---- man pages ------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
def test_man_pages_render_in_batches_like_alone():
    from reference.manpages import render_pages

    groff = shutil.which("groff")
    true_1 = gzip.decompress((TEXT / "man/man1/true.1.gz").read_bytes())
    stops = b'.TH STOP 1\n.SH NAME\nstop \\- ends troff early\n.ex\n'  # troff exits: the batch must fall back
    alone = [render_pages([p], groff)[0] for p in (true_1, stops, true_1)]
    together = render_pages([true_1, stops, true_1], groff)
    assert together == alone and alone[1] is None
    assert alone[0].startswith("TRUE(1)") and "Written by Jim Meyering." in alone[0]
    assert "HARNESS-PAGE-BREAK" not in alone[0] and not alone[0].rstrip().endswith("TRUE(1)")  # no footer
    assert render_pages([true_1], None) == [None]
