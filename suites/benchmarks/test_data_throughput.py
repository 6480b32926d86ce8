"""Tokenizer and packing throughput (MB/s of UTF-8 input, wall clock) on the bash corpus harvested from this
machine's own system folders, with a 4,096-token byte-level BPE trained on it (the `small` preset's vocab).

    pytest suites/benchmarks/test_data_throughput.py --benchmark-json out.json

MB/s per round lands in extra_info (and so in the JSON). Threads: RAYON_NUM_THREADS (default: all cores)."""
import shutil
import tempfile

import pytest

from reference.corpus import harvest_scripts, read_script
from reference.data import pack_corpus
from reference.textcorpus import TextDoc
from reference.tokenizer import decode, encode_batch, train_tokenizer


@pytest.fixture(scope="module")
def quick(request):
    try:
        return bool(request.config.getoption("--quick"))
    except ValueError:
        return False


@pytest.fixture(scope="module")
def corpus(quick):
    h = harvest_scripts(None, max_scripts=200 if quick else None, workers=2)
    if len(h.scripts) < 20:
        pytest.skip(f"only {len(h.scripts)} shell scripts in this machine's system folders")
    docs = [TextDoc(s.path, read_script(s)) for s in h.scripts]
    return docs, sum(len(d.text.encode()) for d in docs) / 1e6


@pytest.fixture(scope="module")
def tok(corpus):
    return train_tokenizer([d.text for d in corpus[0]], 4096)


def _mb_per_s(benchmark, mb):
    # pedantic keeps every round's duration; MB/s per round from them
    samples = [mb / t for t in benchmark.stats.stats.data]
    benchmark.extra_info.update(mb=round(mb, 3), mb_per_s_samples=samples,
                                mb_per_s_median=sorted(samples)[len(samples) // 2])


def test_tokenizer_encode_throughput(benchmark, corpus, tok, quick):
    docs, mb = corpus
    texts = [d.text for d in docs]
    ids = benchmark.pedantic(encode_batch, args=(tok, texts), rounds=2 if quick else 5, warmup_rounds=1)
    _mb_per_s(benchmark, mb)
    benchmark.extra_info.update(documents=len(texts), tokens=sum(map(len, ids)), vocab_size=tok.get_vocab_size(),
                                bytes_per_token=mb * 1e6 / sum(map(len, ids)))
    bad = [d.source for d, i in zip(docs, ids) if decode(tok, i) != d.text]
    assert not bad, f"{len(bad)} scripts do not round-trip, e.g. {bad[:3]}"


def test_tokenizer_decode_throughput(benchmark, corpus, tok, quick):
    docs, mb = corpus
    ids = encode_batch(tok, [d.text for d in docs])
    out = benchmark.pedantic(tok.decode_batch, args=(ids,), kwargs={"skip_special_tokens": False},
                             rounds=2 if quick else 5, warmup_rounds=1)
    _mb_per_s(benchmark, mb)
    assert out == [d.text for d in docs]


def test_packing_throughput(benchmark, corpus, tok, quick):
    """Split scoring, encoding, round-trip check and writing train/val.bin + documents.jsonl."""
    docs, mb = corpus
    dirs = []

    def setup():
        dirs.append(tempfile.mkdtemp(prefix="pack-bench-"))
        return (tok, lambda: docs, dirs[-1], "bash"), {}

    try:
        entry = benchmark.pedantic(pack_corpus, setup=setup, rounds=2 if quick else 3, warmup_rounds=0)
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    _mb_per_s(benchmark, mb)
    benchmark.extra_info.update(tokens=entry["train"]["tokens"] + entry["val"]["tokens"])
    assert entry["roundtrip"]["failed"] == 0
    assert entry["train"]["documents"] + entry["val"]["documents"] == len(docs)
