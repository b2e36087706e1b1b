"""Stable 64-bit hashes of rows and keys, and memory of keys seen in earlier chunks.

Hashes come from pandas' SipHash (`hash_array`, fixed default key), so they are the same
in every process and on every run, unlike Python's salted `hash()`. Seen keys are kept as
a sorted uint64 array (8 bytes + 8 bytes payload per key): a million keys cost 16 MB and a
chunk is checked with one `searchsorted`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.util import hash_array

_MASK63 = np.uint64(0x7FFF_FFFF_FFFF_FFFF)


def hash_strings(values: np.ndarray, *, categorize: bool = False) -> np.ndarray:
    """uint64 per value; categorize=True is cheaper when values repeat a lot."""
    return hash_array(np.asarray(values, dtype=object), categorize=categorize)


def hash_ints(values: np.ndarray) -> np.ndarray:
    return hash_array(np.asarray(values, dtype=np.int64))


def hash_scalar(value: object) -> np.uint64:
    if isinstance(value, int | np.integer):
        return hash_ints(np.array([value]))[0]
    return hash_strings(np.array([value], dtype=object))[0]


def combine(parts: list[np.ndarray | np.uint64], n: int) -> np.ndarray:
    """Order-sensitive mix of several uint64 hash columns (scalars broadcast) into one."""
    out = np.full(n, 0x345678, dtype=np.uint64)
    mult = 1_000_003
    for i, part in enumerate(parts):
        out ^= part
        out *= np.uint64(mult)
        mult = (mult + 82_520 + 2 * (len(parts) - i)) & 0xFFFF_FFFF_FFFF_FFFF
    out += np.uint64(97_531)
    # splitmix64 finaliser: spreads every input bit over the whole word
    out ^= out >> np.uint64(30)
    out *= np.uint64(0xBF58476D1CE4E5B9)
    out ^= out >> np.uint64(27)
    out *= np.uint64(0x94D049BB133111EB)
    out ^= out >> np.uint64(31)
    return out


def to_ids(hashes: np.ndarray) -> np.ndarray:
    """Positive int64 ids from uint64 hashes: masked to 63 bits, 0 replaced by 1."""
    ids = (hashes & _MASK63).astype(np.int64)
    ids[ids == 0] = 1
    return ids


class KeyIndex:
    """uint64 keys with an int64 payload each (first row, or a count so far).

    A 4 MB bitmap over the top 25 bits of each key answers "certainly new" for almost
    every key of a chunk; only the few bitmap hits are looked up exactly, in a handful of
    sorted runs (one per chunk, merged when there are many). Adding a chunk therefore
    costs a sort of that chunk, not a rewrite of everything seen so far.
    """

    BITS = 25
    MAX_RUNS = 8

    def __init__(self) -> None:
        self._bitmap: np.ndarray | None = None
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _slots(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bit = (keys >> np.uint64(64 - self.BITS)).astype(np.int64)
        return bit >> 3, np.left_shift(1, bit & 7).astype(np.uint8)

    def _candidates(self, keys: np.ndarray) -> np.ndarray:
        if self._bitmap is None or keys.size == 0:
            return np.empty(0, dtype=np.intp)
        byte, mask = self._slots(keys)
        return np.flatnonzero(self._bitmap[byte] & mask)

    def _locate(self, keys: np.ndarray):
        """Yield (candidate positions in keys, run payloads, positions in run) of hits."""
        cand = self._candidates(keys)
        if cand.size == 0:
            return
        needles = keys[cand]
        for run_keys, run_values in self._runs:
            pos = np.searchsorted(run_keys, needles)
            np.minimum(pos, run_keys.size - 1, out=pos)
            hit = run_keys[pos] == needles
            if hit.any():
                yield cand[hit], run_values, pos[hit]

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, payload where found else -1)."""
        found = np.zeros(keys.size, dtype=bool)
        values = np.full(keys.size, -1, dtype=np.int64)
        for where, run_values, pos in self._locate(keys):
            found[where] = True
            values[where] = run_values[pos]
        return found, values

    def upsert(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Set payloads (keys unique): existing keys are updated, new ones added."""
        if keys.size == 0:
            return
        new = np.ones(keys.size, dtype=bool)
        for where, run_values, pos in self._locate(keys):
            run_values[pos] = values[where]
            new[where] = False
        self.add(keys[new], values[new])

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add keys known to be absent (and unique)."""
        if keys.size == 0:
            return
        if self._bitmap is None:
            self._bitmap = np.zeros(1 << (self.BITS - 3), dtype=np.uint8)
        bit = (keys >> np.uint64(64 - self.BITS)).astype(np.int64)
        byte, which = bit >> 3, bit & 7
        for k in range(8):
            # Repeated bytes within one pass all set the same bit, so plain fancy
            # assignment is exact here (and much faster than ufunc.at).
            sel = byte[which == k]
            self._bitmap[sel] |= np.uint8(1 << k)
        order = np.argsort(keys)
        self._runs.append((keys[order], values[order].astype(np.int64)))
        self._size += keys.size
        if len(self._runs) > self.MAX_RUNS:
            all_keys = np.concatenate([k for k, _ in self._runs])
            all_values = np.concatenate([v for _, v in self._runs])
            order = np.argsort(all_keys)
            self._runs = [(all_keys[order], all_values[order])]


def _groups(keys: np.ndarray):
    """Stable sort of keys: (order, is-first-of-group in sorted order, group number)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.ones(keys.size, dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group = np.cumsum(first) - 1
    return order, first, group


def first_seen(
    index: KeyIndex, keys: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mark repeats of a key (in this chunk or an earlier one) and remember new keys.

    Returns (repeat mask, row of the first occurrence for every element). The first
    occurrence of a new key is not a repeat; its row is stored as the key's payload.
    """
    n = keys.size
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    found, _earlier = index.lookup(keys)
    if not found.any() and not pd.Series(keys).duplicated().any():
        index.add(keys, rows)  # the common case: every key is new
        return np.zeros(n, dtype=bool), rows.astype(np.int64, copy=True)
    order, first, group = _groups(keys)
    uniq = keys[order][first]
    first_rows_in_chunk = rows[order][first]
    found, earlier = index.lookup(uniq)
    group_first_row = np.where(found, earlier, first_rows_in_chunk)
    repeat_sorted = ~first | found[group]
    repeat = np.empty(n, dtype=bool)
    repeat[order] = repeat_sorted
    first_row = np.empty(n, dtype=np.int64)
    first_row[order] = group_first_row[group]
    index.upsert(uniq[~found], first_rows_in_chunk[~found])
    return repeat, first_row


def occurrences(index: KeyIndex, keys: np.ndarray) -> np.ndarray:
    """How many times each key occurred before it (in this chunk and earlier ones)."""
    n = keys.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order, first, group = _groups(keys)
    uniq = keys[order][first]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, n))
    found, before = index.lookup(uniq)
    before = np.where(found, before, 0)
    within = np.arange(n) - starts[group]
    occ = np.empty(n, dtype=np.int64)
    occ[order] = before[group] + within
    index.upsert(uniq, before + counts)
    return occ


def frame_line_hash(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Hash of the raw text of whole rows (exact duplicate line detection)."""
    n = len(frame)
    return combine([hash_strings(frame[c].to_numpy(dtype=object)) for c in columns], n)
