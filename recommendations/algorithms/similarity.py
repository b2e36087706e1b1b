"""Building blocks shared by the neighbourhood, linear and graph models.

- `interaction_values`: the user×item matrix as binary, raw counts or log1p(counts).
- `interaction_matrix`: the same from the event log, each purchase weighted by its age
  (exponential decay from the data's last day) — on UCI Online Retail a 60-day half-life
  lifts the collaborative models by 15–45 % NDCG@10 on the last-day split.
- `feature_weighting`: TF-IDF / BM25 re-weighting before a similarity is computed.
- `user_profiles`: the rows a model multiplies with its item-item matrix at score time,
  optionally with a customer's older purchases weighing less.
- `top_n_per_row`: a similarity computed in dense row blocks and pruned to the n
  strongest positive entries per row, so memory stays bounded by the block size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .base import Dataset, Progress

VALUE_MODES = ("binary", "log1p", "count")
WEIGHTINGS = ("none", "tfidf", "bm25")
# Dense scratch budget for one block of a pruned similarity (float32 cells).
BLOCK_CELLS = 8_000_000
NS_PER_DAY = 86_400 * 10**9


def interaction_values(matrix: sparse.spmatrix, mode: str) -> sparse.csr_matrix:
    """CSR float32 copy of ``matrix`` with values binary (1), count (as is) or log1p(count)."""
    if mode not in VALUE_MODES:
        raise ValueError(f"values must be one of {VALUE_MODES}, not {mode!r}")
    out = sparse.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.eliminate_zeros()
    if mode == "binary":
        out.data[:] = 1.0
    elif mode == "log1p":
        out.data = np.log1p(np.maximum(out.data, 0.0)).astype(np.float32)
    return out


def feature_weighting(
    matrix: sparse.csr_matrix,
    scheme: str,
    *,
    k1: float = 1.2,
    b: float = 0.75,
    documents: str = "items",
) -> sparse.csr_matrix:
    """Re-weight a user×item matrix as a term-document matrix.

    documents="items": every item (column) is a document whose terms are its buyers, so a
    buyer of many items (a wholesaler) counts less (idf over users) and BM25's length
    normalisation is over item popularity — the weighting for item-item similarity.
    documents="users": every user (row) is a document of items; popular items count less —
    the weighting for user-user similarity.

    tfidf: x × idf. bm25: x (k1 + 1) / (x + k1 (1 − b + b len/avg len)) × idf, with
    idf = log(N / (1 + df)) floored at 0 and N the number of documents.
    """
    if scheme not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {scheme!r}")
    if scheme == "none":
        return matrix
    coo = sparse.coo_matrix(matrix, dtype=np.float64)
    if documents == "items":
        n_docs = matrix.shape[1]
        term, doc = coo.row, coo.col
        n_terms = matrix.shape[0]
    elif documents == "users":
        n_docs = matrix.shape[0]
        term, doc = coo.col, coo.row
        n_terms = matrix.shape[1]
    else:
        raise ValueError("documents must be 'items' or 'users'")
    df = np.bincount(term, minlength=n_terms).astype(np.float64)
    idf = np.maximum(np.log(n_docs / (1.0 + df)), 0.0) + 1e-6
    values = coo.data
    if scheme == "tfidf":
        weighted = values * idf[term]
    else:
        length = np.bincount(doc, weights=values, minlength=n_docs)
        norm = (1.0 - b) + b * length / max(length.mean(), 1e-12)
        weighted = values * (k1 + 1.0) / (values + k1 * norm[doc]) * idf[term]
    out = sparse.csr_matrix(
        (weighted.astype(np.float32), (coo.row, coo.col)), shape=matrix.shape, dtype=np.float32
    )
    return out


def interaction_matrix(
    data: Dataset, values: str, half_life_days: float | None = None
) -> sparse.csr_matrix:
    """The training matrix a model learns from, optionally with recent purchases weighing
    more: each event counts 0.5 ** (age / half_life_days), age measured from the last
    event of the data set (`Dataset.as_of`). What sells together now says more about the
    next purchases than what sold together a year ago.

    values: binary = the decay of the latest purchase of the pair (1 without decay);
    count = the sum of decayed event weights; log1p = log1p of that sum. Without
    ``half_life_days`` or without an event log this is `interaction_values(data.matrix)`.
    """
    if not half_life_days or data.events is None or data.events.empty:
        return interaction_values(data.matrix, values)
    if values not in VALUE_MODES:
        raise ValueError(f"values must be one of {VALUE_MODES}, not {values!r}")
    pairs = _pairs(data)
    age_days = (pairs.as_of - pairs.last) / NS_PER_DAY
    decay = np.power(0.5, age_days / float(half_life_days))
    if values == "binary":
        cell = decay
    else:
        events = data.events
        stamps = pd.DatetimeIndex(events["timestamp"]).asi8
        event_decay = np.power(0.5, (pairs.as_of - stamps) / NS_PER_DAY / float(half_life_days))
        weights = events["weight"].to_numpy(dtype=np.float64) * event_decay
        cell = np.bincount(pairs.inverse, weights=weights, minlength=len(pairs.user))
        cell = np.maximum(cell, 0.0)
        if values == "log1p":
            cell = np.log1p(cell)
    out = sparse.csr_matrix(
        (cell.astype(np.float32), (pairs.user, pairs.item)),
        shape=(data.n_users, data.n_items),
        dtype=np.float32,
    )
    out.eliminate_zeros()
    return out


def user_profiles(
    data: Dataset, matrix: sparse.csr_matrix, half_life_days: float | None
) -> sparse.csr_matrix:
    """The user rows multiplied with an item-item matrix at score time: ``matrix`` (the
    training values), each (user, item) entry scaled by 0.5 ** (days between the user's
    last purchase of the item and their last purchase of anything / half_life_days), so a
    customer's latest visits say more about their next one. None (or no event log) =
    ``matrix`` unchanged.
    """
    matrix = sparse.csr_matrix(matrix, dtype=np.float32)
    if not half_life_days or data.events is None or data.events.empty:
        return matrix
    pairs = _pairs(data)
    last_user = np.full(data.n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_user, pairs.user, pairs.last)
    age_days = (last_user[pairs.user] - pairs.last) / NS_PER_DAY
    decay = np.power(0.5, age_days / float(half_life_days))
    scale = sparse.csr_matrix(
        (decay.astype(np.float32), (pairs.user, pairs.item)), shape=matrix.shape
    )
    out = sparse.csr_matrix(matrix.multiply(scale), dtype=np.float32)
    out.eliminate_zeros()
    return out


@dataclass(frozen=True)
class _Pairs:
    """Distinct (user, item) pairs of an event log with the time of their latest event."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    last: np.ndarray  # int64 ns since epoch
    inverse: np.ndarray  # event -> pair index
    as_of: int  # ns, the latest event


def _pairs(data: Dataset) -> _Pairs:
    events = data.events
    users = events["user"].to_numpy(dtype=np.int64)
    items = events["item"].to_numpy(dtype=np.int64)
    stamps = pd.DatetimeIndex(events["timestamp"]).asi8
    keys, inverse = np.unique(users * data.n_items + items, return_inverse=True)
    last = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, inverse, stamps)
    return _Pairs(keys // data.n_items, keys % data.n_items, last, inverse, int(stamps.max()))


def top_n_per_row(
    block_rows: Callable[[int, int], np.ndarray],
    n_rows: int,
    n_cols: int,
    n: int,
    *,
    on_progress: Progress | None = None,
    block_size: int | None = None,
) -> sparse.csr_matrix:
    """Sparse n_rows×n_cols matrix keeping each row's ``n`` largest positive entries.

    ``block_rows(start, stop)`` returns the dense float32 rows start..stop-1; it is called
    on consecutive blocks sized so a block holds about BLOCK_CELLS cells.
    """
    if block_size is None:
        block_size = max(1, min(n_rows, BLOCK_CELLS // max(n_cols, 1)))
    n = max(0, min(int(n), n_cols))
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for start in range(0, n_rows, block_size):
        stop = min(n_rows, start + block_size)
        block = np.asarray(block_rows(start, stop), dtype=np.float32)
        if n == 0:
            idx = np.zeros((stop - start, 0), dtype=np.int64)
        elif n < n_cols:
            idx = np.argpartition(-block, n - 1, axis=1)[:, :n]
        else:
            idx = np.broadcast_to(np.arange(n_cols), (stop - start, n_cols))
        vals = np.take_along_axis(block, idx, axis=1)
        keep = vals > 0
        counts = keep.sum(axis=1)
        indices.append(idx[keep].astype(np.int32))
        data.append(vals[keep])
        indptr.extend((indptr[-1] + np.cumsum(counts)).tolist())
        if on_progress is not None:
            on_progress(stop, n_rows)
    out = sparse.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.asarray(indptr, dtype=np.int64),
        ),
        shape=(n_rows, n_cols),
    )
    out.sort_indices()
    return out


def l1_normalize_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Each row scaled to sum 1 (empty rows stay empty)."""
    sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    sums[sums == 0] = 1.0
    return sparse.csr_matrix(sparse.diags((1.0 / sums).astype(np.float32)) @ matrix)


def column_norms(matrix: sparse.spmatrix) -> np.ndarray:
    """L2 norm of each column (float64)."""
    squared = sparse.csr_matrix(matrix, copy=True)
    squared.data = squared.data.astype(np.float64) ** 2
    return np.sqrt(np.asarray(squared.sum(axis=0)).ravel())
