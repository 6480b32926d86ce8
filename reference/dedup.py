"""Exact, normalized and near-duplicate detection for scripts.

- normalized: comment lines and blank lines dropped, runs of spaces/tabs collapsed, then sha256; catches
  copies that differ only in headers, comments or indentation.
- near: MinHash (Broder 1997) over 5-token shingles of the normalized code, 128 multiply-add hash
  permutations mod 2^64, LSH with 32 bands x 4 rows to find candidates (a pair at Jaccard 0.8 becomes a
  candidate with probability 1-(1-0.8^4)^32 > 0.9999999), then a candidate counts as a near duplicate when
  the estimated Jaccard similarity (the fraction of equal signature slots; std. error ~0.035 at 0.8) is
  >= NEAR_THRESHOLD. Memory: one 1 KiB signature per kept script.
"""
from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np

NEAR_THRESHOLD = 0.8
SHINGLE = 5
NUM_PERM = 128
BANDS = 32
_P = np.uint64(0x100000001B3)  # FNV-64 prime: mixes token hashes into a shingle hash
_TOKEN = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]")
_SPACES = re.compile(r"[ \t]+")

_rng = np.random.default_rng(20240501)  # fixed: signatures must be comparable across runs
_A = _rng.integers(1, 2**63, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)


def normalize(text: str) -> str:
    """The code of a script: no comment-only or blank lines, horizontal whitespace collapsed."""
    out = []
    for line in text.splitlines():
        s = _SPACES.sub(" ", line).strip()
        if s and not s.startswith("#"):
            out.append(s)
    return "\n".join(out)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shingle_hashes(normalized: str, k: int = SHINGLE) -> np.ndarray:
    """Unique uint64 hashes of the k-token shingles (the whole token list when it is shorter than k)."""
    toks = _TOKEN.findall(normalized)
    if not toks:
        return np.zeros((0,), dtype=np.uint64)
    t = np.fromiter((zlib.crc32(x.encode("utf-8")) for x in toks), dtype=np.uint64, count=len(toks))
    k = min(k, len(t))
    n = len(t) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):  # h_i = sum_j t[i+j] * P^j  (mod 2^64)
            h = h * _P + t[j:j + n]
    return np.unique(h)


def signature(shingles: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """MinHash signature (NUM_PERM,) uint64; all-ones for an empty set."""
    sig = np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(0, len(shingles), chunk):
            x = shingles[i:i + chunk, None]                    # (c, 1)
            sig = np.minimum(sig, (x * _A + _B).min(axis=0))   # (c, NUM_PERM) -> (NUM_PERM,)
    return sig


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle sets (sorted unique arrays)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class NearDupIndex:
    """Kept signatures, bucketed by LSH band; `find_or_add` is the whole dedup step."""

    def __init__(self, threshold: float = NEAR_THRESHOLD, bands: int = BANDS):
        if NUM_PERM % bands:
            raise ValueError(f"bands={bands} must divide {NUM_PERM}")
        self.threshold, self.bands, self.rows = threshold, bands, NUM_PERM // bands
        self.sigs: list[np.ndarray] = []
        self.keys: list[object] = []
        self.buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]

    def find(self, sig: np.ndarray) -> tuple[object, float] | None:
        """(key, estimated Jaccard) of the most similar kept item at or above the threshold, if any."""
        seen, best = set(), None
        for b in range(self.bands):
            for i in self.buckets[b].get(sig[b * self.rows:(b + 1) * self.rows].tobytes(), ()):
                if i in seen:
                    continue
                seen.add(i)
                est = float(np.mean(self.sigs[i] == sig))
                if est >= self.threshold and (best is None or est > best[1]):
                    best = (self.keys[i], est)
        return best

    def add(self, key, sig: np.ndarray) -> None:
        i = len(self.sigs)
        self.sigs.append(sig)
        self.keys.append(key)
        for b in range(self.bands):
            self.buckets[b].setdefault(sig[b * self.rows:(b + 1) * self.rows].tobytes(), []).append(i)

    def find_or_add(self, key, sig: np.ndarray) -> tuple[object, float] | None:
        hit = self.find(sig)
        if hit is None:
            self.add(key, sig)
        return hit

    def __len__(self) -> int:
        return len(self.sigs)
