"""Ranking and beyond-accuracy metrics over top-k lists, vectorised over users.

Inputs: ``items``, an int array (n_users × ≥k) of recommended item indices, best first,
padded with -1 (as in ``TopK``); ``targets``, a CSR matrix whose row i holds the relevant
items of the user in row i of ``items``. Every per-user function returns one value per row;
averaging (overall or per segment) is the caller's choice, so segments come for free.

Definitions (h_j = 1 when the item at rank j is a target, T = the user's targets, k = the
cut-off; padding never hits):

* ndcg@k      = Σ_j h_j / log2(j + 1)  ÷  Σ_{j ≤ min(|T|, k)} 1 / log2(j + 1)  (binary gain)
* recall@k    = Σ_j h_j / |T|  — the denominator is |T|, not min(|T|, k), so a customer
  with 30 targets cannot reach recall@10 = 1 (compare ``map`` and ``ndcg``, which do cap)
* precision@k = Σ_j h_j / k  (padding counts as a miss)
* map@k       = Σ_j h_j · precision@j  ÷  min(|T|, k)
* hr@k        = 1 if any hit else 0
* coverage@k  = distinct recommended items ÷ n_items (one number for a set of lists)
* novelty@k   = mean over the list of −log2(p_i), p_i = share of training users with item i
* diversity@k = 1 − mean pairwise cosine similarity of the list's item vectors (by default
  the items' co-purchase columns: which training users bought them); NaN for lists < 2
* pop_pct@k   = mean over the list of the item's popularity percentile, the share of
  catalog items at most as popular (1.0 = the most popular item)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import rankdata

ACCURACY = ("ndcg", "recall", "precision", "map", "hr")
BEYOND = ("coverage", "novelty", "diversity", "pop_pct")


def hit_matrix(items: np.ndarray, targets: sparse.csr_matrix, k: int | None = None) -> np.ndarray:
    """Boolean (n × k): is items[i, j] one of row i's targets."""
    items = np.asarray(items, dtype=np.int64)
    if k is not None:
        items = items[:, :k]
    n, width = items.shape
    if targets.shape[0] != n:
        raise ValueError(f"{n} lists but {targets.shape[0]} target rows")
    n_items = np.int64(targets.shape[1])
    targets = sparse.csr_matrix(targets, copy=True)
    targets.eliminate_zeros()
    targets.sort_indices()
    if targets.nnz == 0:
        return np.zeros((n, width), dtype=bool)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(targets.indptr))
    keys = rows * n_items + targets.indices.astype(np.int64)  # sorted: rows, then items
    query = np.arange(n, dtype=np.int64)[:, None] * n_items + items
    pos = np.searchsorted(keys, query.ravel()).reshape(n, width)
    found = keys[np.minimum(pos, len(keys) - 1)] == query
    return found & (items >= 0)


def accuracy(items: np.ndarray, targets: sparse.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """Per-user ndcg, recall, precision, map and hr at k (see the module docstring).
    Rows without targets get NaN (they should not be scored)."""
    hits = hit_matrix(items, targets, k).astype(np.float64)
    n, width = hits.shape
    if width < k:
        hits = np.hstack([hits, np.zeros((n, k - width))])
    n_targets = np.diff(sparse.csr_matrix(targets).indptr).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_prefix = np.concatenate([[0.0], np.cumsum(discount)])
    capped = np.minimum(n_targets, k).astype(np.int64)
    n_hits = hits.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dcg = hits @ discount
        ndcg = dcg / ideal_prefix[capped]
        recall = n_hits / n_targets
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
        ap = (hits * precision_at).sum(axis=1) / capped
    empty = n_targets == 0
    out = {
        "ndcg": ndcg,
        "recall": recall,
        "precision": n_hits / k,
        "map": ap,
        "hr": (n_hits > 0).astype(np.float64),
    }
    for values in out.values():
        values[empty] = np.nan
    return out


def coverage(items: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Distinct recommended items (padding ignored) ÷ n_items."""
    items = np.asarray(items)[:, :k] if k is not None else np.asarray(items)
    if n_items <= 0:
        return 0.0
    return float(len(np.unique(items[items >= 0])) / n_items)


def item_popularity(matrix: sparse.spmatrix) -> np.ndarray:
    """Number of distinct users per item (column) of an interaction matrix."""
    csc = sparse.csc_matrix(matrix)
    csc.eliminate_zeros()
    return np.diff(csc.indptr).astype(np.float64)


def _list_mean(values_per_item: np.ndarray, items: np.ndarray) -> np.ndarray:
    valid = items >= 0
    values = np.where(valid, values_per_item[np.where(valid, items, 0)], 0.0)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, values.sum(axis=1) / count, np.nan)


def novelty(items: np.ndarray, popularity: np.ndarray, n_users: int, k: int | None = None):
    """Per-user mean self-information −log2(p_i) of the listed items, p_i = popularity[i]
    / n_users (an item nobody bought counts as bought by one user). NaN for empty lists."""
    items = np.asarray(items)[:, :k] if k is not None else np.asarray(items)
    share = np.maximum(np.asarray(popularity, dtype=np.float64), 1.0) / max(n_users, 1)
    return _list_mean(-np.log2(share), items)


def popularity_percentile(items: np.ndarray, popularity: np.ndarray, k: int | None = None):
    """Per-user mean popularity percentile of the listed items: for item i, the share of
    catalog items whose popularity is ≤ popularity[i]. NaN for empty lists."""
    items = np.asarray(items)[:, :k] if k is not None else np.asarray(items)
    popularity = np.asarray(popularity, dtype=np.float64)
    if len(popularity) == 0:
        return np.full(len(items), np.nan)
    pct = rankdata(popularity, method="max") / len(popularity)
    return _list_mean(pct, items)


def _unit_rows(vectors: np.ndarray | sparse.spmatrix):
    if sparse.issparse(vectors):
        rows = sparse.csr_matrix(vectors, dtype=np.float64)
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        unit = sparse.csr_matrix(sparse.diags(1.0 / norms) @ rows)
        unit.sum_duplicates()  # canonical: sorted indices, one entry per cell
        return unit
    rows = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1)
    norms[norms == 0] = 1.0
    return rows / norms[:, None]


def co_purchase_vectors(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """Item vectors for diversity: row i = the binary column of item i (its buyers)."""
    binary = sparse.csr_matrix(matrix, dtype=np.float64, copy=True)
    binary.eliminate_zeros()
    binary.data[:] = 1.0
    return sparse.csr_matrix(binary.T)


def intra_list_diversity(
    items: np.ndarray,
    item_vectors: np.ndarray | sparse.spmatrix,
    k: int | None = None,
    max_hot: int = 2048,
    block_size: int = 1024,
) -> np.ndarray:
    """Per-user 1 − mean pairwise cosine similarity of the listed items' vectors (rows of
    ``item_vectors``: dense, or sparse such as ``co_purchase_vectors``). Items with a zero
    vector count as dissimilar to everything. NaN for lists of fewer than two items.

    The similarities among the ``max_hot`` most often recommended items are computed once as
    a dense matrix (lists lean on popular items, whose vectors are the costly ones). In
    each block of ``block_size`` users, every other pair is computed on its own (see `_lookup_similarities`).
    """
    items = np.asarray(items, dtype=np.int64)
    if k is not None:
        items = items[:, :k]
    n, width = items.shape
    out = np.full(n, np.nan)
    if n == 0 or width < 2:
        return out
    unit = _unit_rows(item_vectors)
    n_vec = unit.shape[0]
    valid = items >= 0
    counts = np.bincount(items[valid], minlength=n_vec)
    n_hot = int(min(max_hot, np.count_nonzero(counts)))
    hot = np.argsort(-counts, kind="stable")[:n_hot]
    hot_pos = np.full(n_vec + 1, -1, dtype=np.int64)  # last slot: padding (-1)
    hot_pos[hot] = np.arange(n_hot)
    gram = unit[hot] @ unit[hot].T
    gram = gram.toarray() if sparse.issparse(gram) else np.asarray(gram)
    keys = _row_keys(unit) if sparse.issparse(unit) else None
    first, second = np.triu_indices(width, 1)
    for start in range(0, n, block_size):
        chunk = items[start : start + block_size]
        a, b = chunk[:, first], chunk[:, second]
        pair = (a >= 0) & (b >= 0)
        ha, hb = hot_pos[a], hot_pos[b]
        both = pair & (ha >= 0) & (hb >= 0)
        sims = np.zeros(a.shape)
        sims[both] = gram[ha[both], hb[both]]
        rest = pair & ~both
        if rest.any():
            # Orient each remaining pair as (cold item, other item).
            cold = np.where(ha[rest] < 0, a[rest], b[rest])
            other = np.where(ha[rest] < 0, b[rest], a[rest])
            sims[rest] = _lookup_similarities(unit, cold, other, keys)
        m = (chunk >= 0).sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + len(chunk)] = np.where(
                m >= 2, 1.0 - sims.sum(axis=1) / (m * (m - 1) / 2), np.nan
            )
    return out


def _row_keys(unit: sparse.csr_matrix) -> np.ndarray:
    """Sorted int64 keys row · n_cols + col of every stored entry (canonical CSR)."""
    lengths = np.diff(unit.indptr)
    rows = np.repeat(np.arange(unit.shape[0], dtype=np.int64), lengths)
    return rows * np.int64(unit.shape[1]) + unit.indices.astype(np.int64)


def _lookup_similarities(
    unit, rows: np.ndarray, cols: np.ndarray, keys: np.ndarray | None = None
) -> np.ndarray:
    """Cosine of item pairs (rows[i], cols[i]) of unit vectors, only for those pairs.

    Sparse vectors (canonical CSR, ``keys`` = its `_row_keys`): each distinct pair walks the
    shorter of its two rows and looks each entry up in the other by sorted key, so the cost
    is the pairs' shorter rows — never a (cold items × all items) product."""
    if not sparse.issparse(unit):
        return np.einsum("ij,ij->i", unit[rows], unit[cols])
    if len(rows) == 0:
        return np.zeros(0)
    if keys is None:
        keys = _row_keys(unit)
    lengths = np.diff(unit.indptr)
    longer_first = lengths[rows] > lengths[cols]
    short = np.where(longer_first, cols, rows)
    other = np.where(longer_first, rows, cols)
    pairs, inverse = np.unique(np.stack([short, other]), axis=1, return_inverse=True)
    short, other = pairs[0], pairs[1]
    counts = lengths[short]
    total = int(counts.sum())
    if total == 0 or len(keys) == 0:
        return np.zeros(len(rows))
    pair_of = np.repeat(np.arange(len(short)), counts)
    first = np.cumsum(counts) - counts
    entry = np.repeat(unit.indptr[short], counts) + (np.arange(total) - np.repeat(first, counts))
    width = np.int64(unit.shape[1])
    query = other[pair_of].astype(np.int64) * width + unit.indices[entry].astype(np.int64)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    found = keys[pos] == query
    products = np.where(found, unit.data[entry] * unit.data[pos], 0.0)
    dots = np.bincount(pair_of, weights=products, minlength=len(short))
    return dots[np.asarray(inverse).ravel()]


def by_segment(
    per_user: dict[str, np.ndarray],
    segments: np.ndarray,
    *,
    items: np.ndarray | None = None,
    n_items: int | None = None,
    coverage_keys: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Mean of each per-user metric per segment label (NaNs skipped), plus ``users`` (count)
    and, when ``items``/``n_items``/``coverage_keys`` ({"coverage@10": 10}) are given, each
    segment's catalog coverage. Indexed by segment, sorted by size (largest first)."""
    labels = pd.Series(np.asarray(segments)).fillna("").astype(str).to_numpy()
    frame = pd.DataFrame({name: np.asarray(v, dtype=np.float64) for name, v in per_user.items()})
    frame["segment"] = labels
    grouped = frame.groupby("segment", sort=False)
    table = grouped.mean()
    table.insert(0, "users", grouped.size())
    if items is not None and n_items is not None and coverage_keys:
        for name, k in coverage_keys.items():
            table[name] = [
                coverage(items[labels == segment], n_items, k) for segment in table.index
            ]
    return table.sort_values("users", ascending=False, kind="stable")
