"""Random walks on the customer–item graph: P3α and RP3β.

P3α (Cooper et al. 2014): the probability of a 3-step walk item → customer → item, each
step's transition probabilities raised to ``alpha`` (alpha < 1 flattens them, > 1
sharpens). RP3β (Paudel et al. 2016, tuned by Dacrema et al. 2019) divides the arrival
probability of item j by popularity(j) ** beta, so the walk does not always end on the
best sellers. Each item keeps its ``neighbors`` strongest transitions; a customer's
score is profile @ W — a walk started from every item in their history.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from .base import Dataset, Progress
from .neighbors import ItemItemModel
from .similarity import (
    interaction_matrix,
    l1_normalize_rows,
    top_n_per_row,
    user_profiles,
)


class RP3Beta(ItemItemModel):
    """W[i, j] = Σ_u P(i→u)^α P(u→j)^α / buyers(j)^β, pruned to the ``neighbors``
    largest per row i and (``normalize``) rescaled so each row sums to 1.

    values: binary / log1p / count interactions define the transition probabilities and
    the profile. half_life_days: each purchase counts 0.5 ** (age / half_life_days) in the
    transitions, age from the data's last day (needs events; None = off) — with β this
    favours items that sell together now but had few buyers over the whole history.
    profile_half_life_days: at score time, older purchases of a customer count less.
    """

    name = "rp3beta"
    defaults: ClassVar[dict[str, Any]] = {
        "alpha": 0.75,
        "beta": 0.5,
        "neighbors": 30,
        "normalize": True,
        "values": "binary",
        "half_life_days": 60.0,
        "profile_half_life_days": None,
    }
    space: ClassVar[dict[str, Any]] = {
        "alpha": ("float", 0.4, 1.2),
        "beta": ("float", 0.0, 0.7),
        "neighbors": ("int", 10, 200),
        "normalize": [True, False],
        "values": ["binary", "log1p"],
        "half_life_days": [None, 30.0, 60.0, 90.0, 180.0],
        "profile_half_life_days": [None, 30.0, 90.0],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        values = interaction_matrix(data, p["values"], p["half_life_days"])
        self.item_matrix = random_walk_matrix(
            values,
            alpha=float(p["alpha"]),
            beta=float(p["beta"]),
            neighbors=int(p["neighbors"]),
            on_progress=on_progress,
        )
        if p["normalize"]:
            self.item_matrix = l1_normalize_rows(self.item_matrix)
        self.profiles = user_profiles(data, values, p["profile_half_life_days"])


class P3Alpha(RP3Beta):
    """RP3β without the popularity penalty (β = 0) and, as Cooper et al.'s walk, without
    time decay by default (not registered on its own: rp3beta's space includes β = 0; the
    ranker may generate candidates with it)."""

    name = "p3alpha"
    defaults: ClassVar[dict[str, Any]] = {
        **RP3Beta.defaults,
        "alpha": 1.0,
        "beta": 0.0,
        "neighbors": 20,
        "half_life_days": None,
    }
    space: ClassVar[dict[str, Any]] = {k: v for k, v in RP3Beta.space.items() if k != "beta"}


def random_walk_matrix(
    matrix: sparse.csr_matrix,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    neighbors: int = 100,
    on_progress: Progress | None = None,
) -> sparse.csr_matrix:
    """Pruned item→item 3-step transition matrix (diagonal zero) of a users×items matrix."""
    user_to_item = l1_normalize_rows(sparse.csr_matrix(matrix, dtype=np.float32))
    item_to_user = l1_normalize_rows(sparse.csr_matrix(matrix.T, dtype=np.float32))
    if alpha != 1.0:
        user_to_item.data = np.power(user_to_item.data, alpha, dtype=np.float32)
        item_to_user.data = np.power(item_to_user.data, alpha, dtype=np.float32)
    popularity = np.diff(sparse.csc_matrix(matrix).indptr).astype(np.float64)  # buyers
    penalty = np.zeros_like(popularity)
    np.power(popularity, -beta, out=penalty, where=popularity > 0)
    penalty = penalty.astype(np.float32)

    def rows(start: int, stop: int) -> np.ndarray:
        block = (item_to_user[start:stop] @ user_to_item).toarray()
        block *= penalty[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return block

    n_items = matrix.shape[1]
    return top_n_per_row(rows, n_items, n_items, neighbors, on_progress=on_progress)
