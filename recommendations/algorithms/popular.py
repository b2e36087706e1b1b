"""Most popular: the baseline every model must beat, and the cold-start fallback.

Three variants: global (distinct buyers per item), time-decayed (each interaction weighs
0.5 ** (age / half_life_days)), and per segment (popularity among the user's segment from
``user_features[segment_column]``, blended with global popularity for small segments).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from .base import Dataset, Progress, Recommender


class MostPopular(Recommender):
    name = "popular"
    defaults = {}
    space = {}

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        binary = data.matrix.copy()
        binary.data[:] = 1.0
        self.popularity = np.asarray(binary.sum(axis=0), dtype=np.float32).ravel()

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(users), len(self.popularity))).copy()


class RecentPopular(Recommender):
    """Popularity with exponential time decay: what sells now, not what sold a year ago."""

    name = "popular_recent"
    defaults = {"half_life_days": 30.0}
    space = {"half_life_days": ("log", 3.0, 365.0)}
    needs = ("events",)

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        events = data.events
        age_days = (data.as_of - events["timestamp"]).dt.total_seconds().to_numpy() / 86_400
        decay = np.power(0.5, age_days / float(self.params["half_life_days"]))
        self.popularity = np.bincount(
            events["item"].to_numpy(), weights=decay, minlength=data.n_items
        ).astype(np.float32)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(users), len(self.popularity))).copy()


class SegmentPopular(Recommender):
    """Popular within the user's segment (e.g. RFM segment or country).

    The share of a segment's members who bought an item is shrunk towards the share of all
    users: score = (segment buyers + shrink × global share) / (segment size + shrink), so a
    segment of three people does not dictate its members' lists.
    """

    name = "popular_segment"
    defaults = {"segment_column": "segment", "shrink": 20.0}
    space = {"shrink": ("log", 1.0, 500.0)}
    needs = ("user_features",)

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        column = self.params["segment_column"]
        features = data.user_features
        values = (
            features[column].fillna("").astype(str)
            if column in features
            else pd.Series([""] * data.n_users)
        )
        codes, self.segments = pd.factorize(values)
        self.user_segment = codes.astype(np.int64)
        binary = data.matrix.copy()
        binary.data[:] = 1.0
        total = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
        share = total / max(data.n_users, 1)
        n_seg = max(len(self.segments), 1)
        # (segments × users) indicator @ (users × items) = buyers per segment and item.
        indicator = sparse.csr_matrix(
            (np.ones(data.n_users), (self.user_segment, np.arange(data.n_users))),
            shape=(n_seg, data.n_users),
        )
        counts = np.asarray((indicator @ binary).todense(), dtype=np.float64)
        sizes = np.bincount(self.user_segment, minlength=n_seg).astype(np.float64)
        shrink = float(self.params["shrink"])
        self.table = ((counts + shrink * share[None, :]) / (sizes[:, None] + shrink)).astype(
            np.float32
        )

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return self.table[self.user_segment[users]].copy()
