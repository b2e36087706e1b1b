"""Buy again: which of the things a customer already buys are they about to need again?

Only items in the customer's own history are candidates, so `BuyAgain.recommend` does not
exclude purchased items (``exclude=False`` by default — the opposite of the other models)
and the evaluation measures it on repeat purchases.

Per (customer, item), from purchase days (several orders on one day count once):
- interval: the median gap between the customer's purchases of the item, shrunk in log
  space towards a prior with weight ``prior_weight`` (in gaps). The prior is the geometric
  mean of the customer's typical re-purchase gap (over all their repeated items) and the
  item's typical re-purchase gap (over all its repeat buyers); an item bought once gets
  the prior alone.
- due: elapsed / interval, where elapsed = days from the last purchase of the item to the
  reference day — the data's last day ("as_of"), or ("next_visit") the customer's
  expected next visit (their last visit + their median gap between visits, never before
  their last visit), which is what matters for a customer who has not been back for a while.
- score = share^frequency_power × exp(−(ln due)² / (2 σ²)) × repeat_rate^repeat_power:
  share = the customer's visits that included the item / (their visits + ``visit_shrink``),
  each visit weighted 0.5 ** (days before their last visit / ``half_life_days``) (None =
  unweighted); σ = ``due_width``: an item is most likely when it is due (due ≈ 1), less
  just after a purchase or long after it should have been bought again; repeat_rate =
  (buyers who bought the item on 2+ days + 1) / (buyers + 2), which tells consumables
  from one-off purchases.

On UCI Online Retail most of the lift over "most often bought" comes from the decayed
share and the repeat rate; the due factor adds little there (wholesalers order at
irregular times) but is what the customer-facing reason is built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

from .base import Dataset, Progress, Recommender, TopK

NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True)
class RepeatStats:
    """Per (customer, item) pair of the history, in CSR order of ``BuyAgain.scores_matrix``."""

    purchases: np.ndarray  # distinct purchase days
    interval_days: np.ndarray  # estimated days between purchases (shrunk towards the prior)
    own_interval_days: np.ndarray  # median of the customer's own gaps (NaN if bought once)
    last_day: np.ndarray  # day number (days since epoch) of the last purchase
    personal: np.ndarray  # bool: interval estimated from the customer's own repeats


class BuyAgain(Recommender):
    name = "buy_again"
    needs = ("events",)
    defaults: ClassVar[dict[str, Any]] = {
        "frequency_power": 1.0,
        "due_width": 2.0,
        "prior_weight": 1.0,
        "visit_shrink": 1.0,
        "reference": "next_visit",
        "half_life_days": 180.0,
        "repeat_power": 0.75,
    }
    space: ClassVar[dict[str, Any]] = {
        "frequency_power": ("float", 0.3, 2.0),
        "due_width": ("log", 0.3, 3.0),
        "prior_weight": ("log", 0.2, 5.0),
        "visit_shrink": ("float", 0.0, 5.0),
        "reference": ["as_of", "next_visit"],
        "half_life_days": [None, 30.0, 90.0, 180.0, 365.0],
        "repeat_power": ("float", 0.0, 1.0),
    }
    # Recommends only items the customer already bought: evaluate with exclude=False.
    recommends_seen = True

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        if p["reference"] not in ("as_of", "next_visit"):
            raise ValueError("reference must be 'as_of' or 'next_visit'")
        events = data.events
        day = pd.DatetimeIndex(events["timestamp"]).asi8 // NS_PER_DAY
        visits = pd.DataFrame(
            {"user": events["user"].to_numpy(np.int64), "item": events["item"], "day": day}
        ).drop_duplicates()
        visits = visits.sort_values(["user", "item", "day"], kind="stable")
        self.as_of_day = int(day.max())

        # Gaps between consecutive purchase days of the same (user, item).
        same = (visits["user"].diff() == 0) & (visits["item"].diff() == 0)
        gaps = visits.assign(gap=visits["day"].diff())[same.to_numpy()]
        grouped = visits.groupby(["user", "item"], sort=True)
        pairs = grouped["day"].agg(["size", "max"]).rename(columns={"size": "n", "max": "last"})
        personal = gaps.groupby(["user", "item"])["gap"].median().rename("own_gap")
        pairs = pairs.join(personal)
        user_prior = pairs.groupby(level="user")["own_gap"].median()
        item_prior = pairs.groupby(level="item")["own_gap"].median()
        overall = float(np.nanmedian(pairs["own_gap"])) if pairs["own_gap"].notna().any() else 30.0
        users = pairs.index.get_level_values("user").to_numpy()
        items = pairs.index.get_level_values("item").to_numpy()
        log_user = np.log(user_prior.reindex(users).to_numpy(dtype=np.float64))
        log_item = np.log(item_prior.reindex(items).to_numpy(dtype=np.float64))
        known = (~np.isnan(log_user)).astype(np.float64) + (~np.isnan(log_item))
        total = np.nan_to_num(log_user) + np.nan_to_num(log_item)
        log_prior = np.where(known > 0, total / np.maximum(known, 1.0), np.log(overall))
        n = pairs["n"].to_numpy(dtype=np.float64)
        own = pairs["own_gap"].to_numpy(dtype=np.float64)
        has_own = ~np.isnan(own)
        w = float(p["prior_weight"])
        log_own = np.log(np.maximum(np.where(has_own, own, 1.0), 1.0))
        log_interval = np.where(
            has_own, ((n - 1) * log_own + w * log_prior) / (n - 1 + w), log_prior
        )
        interval = np.maximum(np.exp(log_interval), 1.0)

        # The customer's visits: count and typical gap, for the share and the reference day.
        user_days = visits[["user", "day"]].drop_duplicates().sort_values(["user", "day"])
        n_visits = user_days.groupby("user").size()
        visit_gap = user_days.assign(gap=user_days["day"].diff())[
            (user_days["user"].diff() == 0).to_numpy()
        ]
        visit_gap = visit_gap.groupby("user")["gap"].median()
        last_visit = user_days.groupby("user")["day"].max()
        if p["reference"] == "as_of":
            reference = np.full(len(users), float(self.as_of_day))
        else:
            typical = visit_gap.reindex(users).fillna(float(np.exp(np.nanmedian(log_prior))))
            reference = last_visit.reindex(users).to_numpy(np.float64) + typical.to_numpy()
        last = pairs["last"].to_numpy(dtype=np.float64)
        elapsed = np.maximum(reference - last, 0.5)
        due = elapsed / interval
        # Share of the customer's visits with the item, visits weighted by recency.
        half_life = p["half_life_days"]
        if half_life:
            lag = last_visit.reindex(visits["user"]).to_numpy() - visits["day"].to_numpy()
            weight = np.power(0.5, lag / float(half_life))
            bought = (
                visits.assign(w=weight).groupby(["user", "item"], sort=True)["w"].sum().to_numpy()
            )
            lag_v = last_visit.reindex(user_days["user"]).to_numpy() - user_days["day"].to_numpy()
            visit_weight = (
                user_days.assign(w=np.power(0.5, lag_v / float(half_life)))
                .groupby("user")["w"]
                .sum()
            )
        else:
            bought = n
            visit_weight = n_visits.astype(np.float64)
        share = bought / (
            visit_weight.reindex(users).to_numpy(dtype=np.float64) + float(p["visit_shrink"])
        )
        score = np.power(share, float(p["frequency_power"])) * np.exp(
            -(np.log(due) ** 2) / (2.0 * float(p["due_width"]) ** 2)
        )
        power = float(p["repeat_power"])
        if power:
            # How often the item's buyers come back for it (smoothed): a consumable vs a one-off.
            repeaters = np.bincount(items, weights=(n > 1), minlength=data.n_items)
            buyers = np.bincount(items, minlength=data.n_items)
            rate = (repeaters + 1.0) / (buyers + 2.0)
            score = score * np.power(rate[items], power)
        # Keep every history item a candidate, even when its score underflows.
        score = np.maximum(score, 1e-30)
        self.scores_matrix = sparse.csr_matrix(
            (score.astype(np.float64), (users, items)), shape=(data.n_users, data.n_items)
        )
        # Pairs are sorted by (user, item), which is CSR order.
        self.stats = RepeatStats(
            purchases=n.astype(np.int64),
            interval_days=interval,
            own_interval_days=own,
            last_day=last.astype(np.int64),
            personal=has_own,
        )
        if on_progress is not None:
            on_progress(1, 1)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        rows = self.scores_matrix[users]
        out = np.full(rows.shape, -np.inf, dtype=np.float32)
        row_of = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
        # float32 keeps the order of all but near-equal scores; log avoids underflow.
        out[row_of, rows.indices] = np.log(rows.data).astype(np.float32)
        return out

    def recommend(
        self,
        users: np.ndarray | Sequence[int],
        k: int = 10,
        *,
        exclude: sparse.csr_matrix | None | bool = False,
        allowed: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> TopK:
        """Top-k items to buy again. Unlike other models, purchased items are NOT excluded
        by default (they are the only candidates)."""
        return super().recommend(users, k, exclude=exclude, allowed=allowed, block_size=block_size)

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        """The item itself, weighted by how many days the customer bought it on."""
        self._check_fitted()
        pos = self._pair(user, item)
        return [] if pos is None else [(int(item), float(self.stats.purchases[pos]))]

    def reason(self, user: int, item: int) -> str:
        """Human-readable why: "You buy this about every 30 days; last time 41 days ago."."""
        self._check_fitted()
        pos = self._pair(user, item)
        if pos is None:
            return ""
        ago = int(self.as_of_day - self.stats.last_day[pos])
        last = "today" if ago == 0 else "yesterday" if ago == 1 else f"{ago} days ago"
        if self.stats.personal[pos]:
            every = _every(self.stats.own_interval_days[pos])
            return f"You buy this about {every}; last time {last}."
        every = _every(self.stats.interval_days[pos])
        return f"You bought this {last}; customers like you re-buy it about {every}."

    def _pair(self, user: int, item: int) -> int | None:
        matrix = self.scores_matrix
        start, stop = matrix.indptr[user], matrix.indptr[user + 1]
        pos = start + int(np.searchsorted(matrix.indices[start:stop], item))
        if pos < stop and matrix.indices[pos] == item:
            return int(pos)
        return None


def _every(days: float) -> str:
    whole = int(round(float(days)))
    return "every day" if whole <= 1 else f"every {whole} days"
