"""Neighbourhood models: item-kNN (cosine, Jaccard, BM25-weighted cosine) and user-kNN
(cosine, Pearson).

Item-kNN learns a sparse item×item matrix S (row = an item in the customer's history,
column = a candidate, at most ``neighbors`` history items kept per candidate) and scores
a customer as profile @ S. User-kNN finds each customer's ``neighbors`` most similar
customers at score time, one block of customers at a time (the full user×user matrix is
never built), and scores items by the similarity-weighted purchases of those neighbours.

`ItemItemModel` is the shared base for every model that scores with an item×item matrix
(EASE and RP3β too): scoring, similar items and explanations come from that matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from .base import Dataset, Progress, Recommender, TopK, topk_rows
from .similarity import (
    WEIGHTINGS,
    column_norms,
    feature_weighting,
    interaction_matrix,
    l1_normalize_rows,
    top_n_per_row,
    user_profiles,
)


class ItemItemModel(Recommender):
    """A model whose scores are profiles @ item_matrix.

    Subclasses set, in `_fit`, ``self.profiles`` (CSR users×items, the score-time user
    rows) and ``self.item_matrix`` (items×items, sparse or dense; entry [h, j] = how much
    having h in the history supports recommending j).
    """

    profiles: sparse.csr_matrix
    item_matrix: sparse.spmatrix | np.ndarray

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        rows = self.profiles[users]
        out = rows @ self.item_matrix
        if sparse.issparse(out):
            out = out.toarray()
        return np.asarray(out, dtype=np.float32)

    def _item_rows(self, items: np.ndarray) -> np.ndarray:
        rows = self.item_matrix[items]
        if sparse.issparse(rows):
            rows = rows.toarray()
        return np.array(rows, dtype=np.float32)

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> TopK:
        """Items a customer who bought the given item is most likely to want next."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        sims = self._item_rows(items)
        sims[np.arange(len(items)), items] = -np.inf
        sims[sims <= 0] = -np.inf
        return topk_rows(sims, k)

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        """The user's history items that contribute most to ``item``'s score
        (profile weight × item-matrix entry), strongest first; only positive contributions."""
        self._check_fitted()
        row = self.profiles[user]
        history, weights = row.indices, row.data
        if len(history) == 0:
            return []
        matrix = self.item_matrix
        if sparse.issparse(matrix):
            column = matrix[history][:, [item]].toarray().ravel()
        else:
            column = matrix[history, item]
        contrib = weights * np.asarray(column, dtype=np.float64)
        contrib[history == item] = 0.0
        order = np.argsort(-contrib, kind="stable")[:n]
        return [(int(history[i]), float(contrib[i])) for i in order if contrib[i] > 0]


# ----------------------------------------------------------------------------- item-kNN


class ItemKNN(ItemItemModel):
    """Item-based collaborative filtering with a pruned similarity matrix.

    similarity:
      cosine — dot(h, j) / (|h|^(2·alpha) |j|^(2·(1−alpha)) + shrink), |·| the L2 norm of an
        item's column (alpha = 0.5 is plain cosine; larger alpha discounts popular history
        items);
      jaccard — dot / (|h|² + |j|² − dot + shrink) (Tanimoto; Jaccard on binary data).
    weighting: none / tfidf / bm25 (k1, b) applied to the matrix before the similarity,
      customers as documents and items as terms (idf: a best seller bought with everything
      says less about what goes together; BM25 length norm over basket size).
    values: binary, count or log1p(count), for both the similarity and the profile.
    half_life_days: each purchase counts 0.5 ** (age / half_life_days) in the training
      matrix, age from the data's last day (what sells together *now*; needs events,
      ignored without them). None = off.
    profile_half_life_days: at score time, a customer's older purchases count less,
      relative to their own last purchase. None = off.
    neighbors: per candidate item, keep its most similar history items.
    normalize: scale each history item's row of S to sum 1 (each purchase votes equally).
    """

    name = "item_knn"
    defaults: ClassVar[dict[str, Any]] = {
        "similarity": "cosine",
        "neighbors": 50,
        "shrink": 50.0,
        "alpha": 0.5,
        "weighting": "none",
        "k1": 1.2,
        "b": 0.75,
        "values": "binary",
        "normalize": False,
        "half_life_days": 60.0,
        "profile_half_life_days": None,
    }
    space: ClassVar[dict[str, Any]] = {
        "neighbors": ("int", 10, 300),
        "shrink": ("float", 0.0, 200.0),
        "alpha": ("float", 0.3, 0.7),
        "weighting": list(WEIGHTINGS),
        "values": ["binary", "log1p"],
        "half_life_days": [None, 30.0, 60.0, 90.0, 180.0],
        "profile_half_life_days": [None, 30.0, 90.0],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        if p["similarity"] not in ("cosine", "jaccard"):
            raise ValueError("similarity must be 'cosine' or 'jaccard'")
        values = interaction_matrix(data, p["values"], p["half_life_days"])
        weighted = feature_weighting(
            values, p["weighting"], k1=float(p["k1"]), b=float(p["b"]), documents="users"
        )
        self.item_matrix = item_similarity(
            weighted,
            similarity=p["similarity"],
            neighbors=int(p["neighbors"]),
            shrink=float(p["shrink"]),
            alpha=float(p["alpha"]),
            on_progress=on_progress,
        )
        if p["normalize"]:
            self.item_matrix = l1_normalize_rows(self.item_matrix)
        self.profiles = user_profiles(data, values, p["profile_half_life_days"])


class ItemKNNCosine(ItemKNN):
    name = "item_knn_cosine"


class ItemKNNJaccard(ItemKNN):
    name = "item_knn_jaccard"
    defaults: ClassVar[dict[str, Any]] = {**ItemKNN.defaults, "similarity": "jaccard"}
    space: ClassVar[dict[str, Any]] = {
        k: v for k, v in ItemKNN.space.items() if k not in ("alpha", "weighting", "values")
    }


class ItemKNNBM25(ItemKNN):
    name = "item_knn_bm25"
    defaults: ClassVar[dict[str, Any]] = {
        **ItemKNN.defaults,
        "weighting": "bm25",
        "k1": 2.0,
        "b": 0.4,
    }
    space: ClassVar[dict[str, Any]] = {
        **{k: v for k, v in ItemKNN.space.items() if k != "weighting"},
        "k1": ("log", 0.5, 20.0),
        "b": ("float", 0.0, 1.0),
    }


def item_similarity(
    matrix: sparse.csr_matrix,
    *,
    similarity: str = "cosine",
    neighbors: int = 200,
    shrink: float = 0.0,
    alpha: float = 0.5,
    on_progress: Progress | None = None,
) -> sparse.csr_matrix:
    """Pruned item×item similarity S of a users×items matrix: S[h, j] is the similarity of
    history item h to candidate j, kept only for the ``neighbors`` most similar h of each
    candidate j; the diagonal is zero.
    """
    by_item = sparse.csr_matrix(matrix.T, dtype=np.float32)  # items × users
    by_user = sparse.csc_matrix(matrix, dtype=np.float32)
    norms = column_norms(matrix)
    history_part = np.power(norms, 2.0 * alpha).astype(np.float32)
    candidate_part = np.power(norms, 2.0 * (1.0 - alpha)).astype(np.float32)
    squared = (norms**2).astype(np.float32)
    offset = np.float32(shrink + 1e-12)

    def candidate_rows(start: int, stop: int) -> np.ndarray:
        # Rows = candidates j in start..stop, columns = history items h (float32, in place).
        sims = (by_item[start:stop] @ by_user).toarray()
        if similarity == "cosine":
            denom = np.outer(candidate_part[start:stop], history_part)
        else:
            denom = squared[start:stop, None] + squared[None, :]
            denom -= sims
        denom += offset
        sims /= denom
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return sims

    n_items = matrix.shape[1]
    pruned = top_n_per_row(candidate_rows, n_items, n_items, neighbors, on_progress=on_progress)
    return sparse.csr_matrix(pruned.T)


# ----------------------------------------------------------------------------- user-kNN


class UserKNN(Recommender):
    """User-based collaborative filtering, neighbours found per block at score time.

    similarity: cosine, or pearson (correlation of the full item vectors, zeros included,
      computed from sparse dot products without densifying), both divided by
      (|u||v| + shrink).
    weighting: none / tfidf / bm25 with customers as documents (popular items count less).
    neighbors: how many most similar customers vote; votes are similarity**exponent
      times their purchases (values: binary / log1p / count).
    half_life_days: each purchase counts 0.5 ** (age / half_life_days), age from the
      data's last day, in both the similarity and the votes (needs events). None = off.
    """

    name = "user_knn"
    defaults: ClassVar[dict[str, Any]] = {
        "similarity": "cosine",
        "neighbors": 100,
        "shrink": 2.0,
        "weighting": "bm25",
        "k1": 1.2,
        "b": 0.75,
        "values": "binary",
        "exponent": 2.0,
        "half_life_days": 60.0,
    }
    space: ClassVar[dict[str, Any]] = {
        "neighbors": ("int", 20, 300),
        "shrink": ("float", 0.0, 50.0),
        "weighting": list(WEIGHTINGS),
        "values": ["binary", "log1p"],
        "exponent": ("float", 1.0, 3.0),
        "half_life_days": [None, 30.0, 60.0, 90.0, 180.0],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        if p["similarity"] not in ("cosine", "pearson"):
            raise ValueError("similarity must be 'cosine' or 'pearson'")
        self.values = interaction_matrix(data, p["values"], p["half_life_days"])
        weighted = feature_weighting(
            self.values, p["weighting"], k1=float(p["k1"]), b=float(p["b"]), documents="users"
        )
        self.weighted = sparse.csr_matrix(weighted, dtype=np.float32)
        self.weighted_t = sparse.csr_matrix(weighted.T, dtype=np.float32)
        n_items = data.n_items
        sums = np.asarray(weighted.sum(axis=1), dtype=np.float64).ravel()
        sq = np.asarray(weighted.multiply(weighted).sum(axis=1), dtype=np.float64).ravel()
        if p["similarity"] == "pearson":
            self.means = (sums / max(n_items, 1)).astype(np.float32)
            sq = np.maximum(sq - n_items * self.means**2, 0.0)
        else:
            self.means = None
        self.norms = np.sqrt(sq).astype(np.float32)
        if on_progress is not None:
            on_progress(1, 1)

    def neighbours(self, users: np.ndarray) -> sparse.csr_matrix:
        """(len(users) × n_users) sparse similarities to each user's top neighbours."""
        p = self.params
        users = np.asarray(users, dtype=np.int64)
        n_users = self.weighted.shape[0]
        n_items = self.weighted.shape[1]
        shrink = float(p["shrink"])

        def rows(start: int, stop: int) -> np.ndarray:
            # float32 and in place: a block is (block users × all users).
            block = users[start:stop]
            sims = (self.weighted[block] @ self.weighted_t).toarray()
            if self.means is not None:
                sims -= np.outer(n_items * self.means[block], self.means)
            denom = np.outer(self.norms[block], self.norms)
            denom += np.float32(shrink + 1e-12)
            sims /= denom
            sims[np.arange(stop - start), block] = 0.0
            return sims

        sims = top_n_per_row(rows, len(users), n_users, int(p["neighbors"]))
        if float(p["exponent"]) != 1.0:
            sims.data = np.power(sims.data, float(p["exponent"])).astype(np.float32)
        return sims

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.neighbours(users) @ self.values).toarray(), dtype=np.float32)

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        """History items shared with the neighbours who bought ``item``, weighted by those
        neighbours' similarity (what the customer has in common with people who bought it)."""
        self._check_fitted()
        history = self.values[user].indices
        if len(history) == 0:
            return []
        sims = self.neighbours(np.array([user]))
        buyers = self.values[:, [item]].toarray().ravel() > 0
        weights = sims.toarray().ravel() * buyers
        if not weights.any():
            return super().explain(user, item, n)
        support = np.asarray(weights @ self.values[:, history].toarray(), dtype=np.float64)
        order = np.argsort(-support, kind="stable")[:n]
        return [(int(history[i]), float(support[i])) for i in order if support[i] > 0]


class UserKNNCosine(UserKNN):
    name = "user_knn_cosine"


class UserKNNPearson(UserKNN):
    name = "user_knn_pearson"
    defaults: ClassVar[dict[str, Any]] = {
        **UserKNN.defaults,
        "similarity": "pearson",
        "weighting": "none",
    }
