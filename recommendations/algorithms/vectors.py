"""Item vectors → customer profiles → cosine scores: the scoring shared by prod2vec and
the content-based models (and a feature of the ranker).

A model that represents every item as a vector (dense, e.g. Word2Vec, or sparse, e.g.
TF-IDF) scores a customer by the cosine between each item and the customer's profile: the
weighted mean of the vectors of the items in their history. A purchase weighs
0.5 ** (days between it and the customer's last purchase / half-life), so the latest
visits steer the profile; repeat purchases of one item do not add up (a wholesaler's
hundred reorders of one box would swamp the rest). Customers without history get a
neutral all-zero row: these models cannot personalise for them (the hybrid falls back).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from .base import Dataset, Recommender, TopK, topk_rows

NS_PER_DAY = 86_400 * 10**9


def history_weights(data: Dataset, half_life_days: float | None) -> sparse.csr_matrix:
    """CSR float32 users×items: 1 per (user, item) the user has, times
    0.5 ** ((user's last purchase − their last purchase of the item) / half_life_days)
    when a half-life is given and the dataset has an event log."""
    binary = sparse.csr_matrix(data.matrix, dtype=np.float32, copy=True)
    binary.eliminate_zeros()
    binary.data[:] = 1.0
    if not half_life_days or data.events is None or data.events.empty:
        return binary
    events = data.events
    users = events["user"].to_numpy(dtype=np.int64)
    items = events["item"].to_numpy(dtype=np.int64)
    stamps = pd.DatetimeIndex(events["timestamp"]).asi8
    keys, inverse = np.unique(users * data.n_items + items, return_inverse=True)
    last_pair = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_pair, inverse, stamps)
    last_user = np.full(data.n_users, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_user, users, stamps)
    pair_user, pair_item = keys // data.n_items, keys % data.n_items
    age_days = (last_user[pair_user] - last_pair) / NS_PER_DAY
    decay = np.power(0.5, age_days / float(half_life_days)).astype(np.float32)
    out = sparse.csr_matrix(
        (decay, (pair_user, pair_item)), shape=(data.n_users, data.n_items), dtype=np.float32
    )
    out.eliminate_zeros()
    return out


def normalize_rows(vectors: np.ndarray | sparse.spmatrix) -> np.ndarray | sparse.csr_matrix:
    """Each row scaled to unit L2 norm (zero rows stay zero); float32."""
    if sparse.issparse(vectors):
        csr = sparse.csr_matrix(vectors, dtype=np.float32, copy=True)
        norms = np.sqrt(np.asarray(csr.multiply(csr).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags((1.0 / norms).astype(np.float32)) @ csr)
    dense = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return dense / norms


def _dense(values: np.ndarray | sparse.spmatrix) -> np.ndarray:
    if sparse.issparse(values):
        values = values.toarray()
    return np.asarray(values, dtype=np.float32)


class VectorModel(Recommender):
    """A recommender scoring cosine(profile, item vector).

    Subclasses set, in `_fit`: ``self.item_vectors`` (n_items × d, dense or CSR, rows
    unit-norm; a zero row = an item the model knows nothing about) and call
    ``self._set_profiles(data, half_life_days)``. ``self.target_vectors`` (default: the item
    vectors) are what profiles are compared with when scoring, e.g. Word2Vec's output
    vectors.
    """

    item_vectors: np.ndarray | sparse.csr_matrix
    target_vectors: np.ndarray | sparse.csr_matrix | None = None
    weights: sparse.csr_matrix

    def _set_profiles(self, data: Dataset, half_life_days: float | None) -> None:
        self.weights = history_weights(data, half_life_days)

    def user_vectors(self, users: np.ndarray) -> np.ndarray | sparse.csr_matrix:
        """Unit-norm profile vectors of the given users (zero rows without history)."""
        return normalize_rows(self.weights[users] @ self.item_vectors)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        targets = self.item_vectors if self.target_vectors is None else self.target_vectors
        return _dense(self.user_vectors(users) @ targets.T)

    def item_similarity(self, items: np.ndarray) -> np.ndarray:
        """Dense cosine of the given items with every item (len(items) × n_items)."""
        return _dense(self.item_vectors[items] @ self.item_vectors.T)

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> TopK:
        """Nearest items by vector cosine (itself and non-positive similarities excluded)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        sims = self.item_similarity(items)
        sims[np.arange(len(items)), items] = -np.inf
        sims[sims <= 0] = -np.inf
        return topk_rows(sims, k)

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        """History items whose vectors are closest to ``item``'s (history weight × cosine),
        strongest first; only positive ones, never the item itself."""
        self._check_fitted()
        row = self.weights[user]
        history, weights = row.indices, row.data
        if len(history) == 0:
            return []
        sims = self.item_similarity(np.asarray([item]))[0, history]
        contrib = weights.astype(np.float64) * sims
        contrib[history == item] = 0.0
        order = np.argsort(-contrib, kind="stable")[:n]
        return [(int(history[i]), float(contrib[i])) for i in order if contrib[i] > 0]
