"""Seeded, resumable batches of (seq_len + 1)-token windows from one packed split.

Each epoch cuts the split into non-overlapping windows of seq_len + 1 tokens, all shifted by one random
offset (so window boundaries move between epochs), and visits them in a random order. Consecutive windows
share no tokens, so the inputs of an epoch are disjoint. The order of epoch e is a pure function of
(seed, e), so the sampler's whole state is (epoch, cursor): it goes into every checkpoint as JSON and a
resumed run reads exactly the batches the uninterrupted run would have read.

Data-parallel runs draw the same global batch on every rank and each rank keeps its contiguous slice of
rows, so W processes with a global batch B see exactly the rows one process with batch B would see.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError


@dataclass
class SamplerState:
    seed: int
    epoch: int = 0
    cursor: int = 0  # windows of the current epoch already consumed (global, across ranks)

    def to_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "cursor": self.cursor}


class BatchSampler:
    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int, *,
                 rank: int = 0, world: int = 1, name: str = "split"):
        if batch_size % world:
            raise InputError(f"batch size {batch_size} is not divisible by the {world} data-parallel processes; "
                             f"pass a --batch-size that is a multiple of {world}")
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.rank, self.world = rank, world
        self.n_windows = len(tokens) // (seq_len + 1)
        if self.n_windows < 1:
            raise InputError(f"{name} has {len(tokens)} tokens, fewer than one sequence of {seq_len} + 1; "
                             f"use a smaller --seq-len or more data (`harness data` with more input)")
        self.state = SamplerState(seed)
        self._epoch_cache: tuple[int, int, np.ndarray] | None = None

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.world

    def _order(self, epoch: int) -> tuple[int, np.ndarray]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rng = np.random.default_rng([self.state.seed, epoch])
            slack = len(self.tokens) - self.n_windows * (self.seq_len + 1)
            shift = int(rng.integers(0, slack + 1))
            self._epoch_cache = (epoch, shift, rng.permutation(self.n_windows))
        return self._epoch_cache[1], self._epoch_cache[2]

    def next_offsets(self) -> np.ndarray:
        """Start offsets of the next global batch (batch_size windows), advancing the state."""
        out = np.empty(self.batch_size, dtype=np.int64)
        i = 0
        while i < self.batch_size:
            shift, perm = self._order(self.state.epoch)
            take = min(self.batch_size - i, self.n_windows - self.state.cursor)
            idx = perm[self.state.cursor:self.state.cursor + take]
            out[i:i + take] = shift + idx * (self.seq_len + 1)
            i += take
            self.state.cursor += take
            if self.state.cursor == self.n_windows:
                self.state.epoch, self.state.cursor = self.state.epoch + 1, 0
        return out

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), each (local_batch, seq_len) int32: this rank's rows of the next global batch."""
        offs = self.next_offsets()[self.rank * self.local_batch:(self.rank + 1) * self.local_batch]
        win = np.stack([np.asarray(self.tokens[o:o + self.seq_len + 1]) for o in offs]).astype(np.int32)
        return win[:, :-1], win[:, 1:]

    def state_dict(self) -> dict:
        return self.state.to_dict()

    def load_state_dict(self, d: dict) -> None:
        try:
            self.state = SamplerState(int(d["seed"]), int(d["epoch"]), int(d["cursor"]))
        except (KeyError, TypeError, ValueError):
            raise InputError(f"batch sampler state {d!r} in the checkpoint is malformed; the checkpoint is corrupt")
        if not 0 <= self.state.cursor < self.n_windows:
            raise InputError(f"the checkpoint's data position (cursor {self.state.cursor}) does not fit the "
                             f"{self.n_windows} windows of this data; resume with the data directory it was "
                             f"trained on")
        self._epoch_cache = None
