"""Why a product is recommended: one reason per (user, item), grounded in the training data.

A reason is data, not text: a kind, the history items it cites and the numbers behind it
(the Django side renders it with product titles). For a personal "discover" list the first
that holds wins:

1. ``bought_together`` — the user's own history items that most support the item: for an
   item-item model their contribution (profile weight × item-matrix entry, as the model's
   ``explain``), otherwise how often the two were bought by the same customers (cosine of
   their buyer columns). ``similar_to`` instead for content models (their ``explain``:
   history items with similar product text). Only items really in the user's history, with
   a positive weight, are cited. Popularity models cite no history.
2. ``popular_segment`` — at least ``min_segment_buyers`` customers of the user's segment
   bought it within the last ``window_days`` days of the data (distinct buyers, counted).
3. ``new_in_category`` — a new product (the caller decides what is new) in the subtree of
   the category the user bought most items of.
4. ``new_arrival`` — a new product, otherwise.
5. ``popular`` — distinct buyers in the window (or ever, when none in the window).

Buy-again lists get ``buy_again`` (`buy_again_reason`): the user's own purchase count,
their typical interval and the days since the last purchase, from the fitted `BuyAgain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .base import Dataset, Recommender, normalized_columns
from .buy_again import NS_PER_DAY, BuyAgain
from .neighbors import ItemItemModel
from .popular import MostPopular, RecentPopular, SegmentPopular
from .postprocess import category_path, in_subtree

BOUGHT_TOGETHER = "bought_together"
SIMILAR_TO = "similar_to"
BUY_AGAIN = "buy_again"
POPULAR_SEGMENT = "popular_segment"
NEW_IN_CATEGORY = "new_in_category"
NEW_ARRIVAL = "new_arrival"
POPULAR = "popular"
KINDS = (
    BOUGHT_TOGETHER,
    SIMILAR_TO,
    BUY_AGAIN,
    POPULAR_SEGMENT,
    NEW_IN_CATEGORY,
    NEW_ARRIVAL,
    POPULAR,
)


@dataclass(frozen=True)
class Reason:
    """kind: one of KINDS; items: cited item indices (history items, or the item itself for
    buy again); data: JSON-safe facts (buyers, days, segment, category, purchases, …)."""

    kind: str
    items: tuple[int, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReasonContext:
    """Everything reasons are computed from, built once per fitted dataset (`build`)."""

    history: sparse.csr_matrix  # users × items, purchase counts
    recent: sparse.csr_matrix  # users × items, 1 = bought within the window
    columns: sparse.csc_matrix  # the history with unit-norm columns (co-purchase cosine)
    user_segment: np.ndarray  # int code per user, -1 = none
    segment_names: tuple[str, ...]
    segment_buyers: sparse.csr_matrix  # segments × items, distinct buyers in the window
    recent_buyers: np.ndarray  # per item, distinct buyers in the window
    buyers: np.ndarray  # per item, distinct buyers ever
    item_category: np.ndarray  # canonical category path per item ("" = none)
    item_new: np.ndarray  # bool per item
    window_days: int
    min_segment_buyers: int

    @classmethod
    def build(
        cls,
        data: Dataset,
        *,
        user_segments: Sequence[str] | np.ndarray | None = None,
        item_categories: Sequence[str] | np.ndarray | None = None,
        item_new: Sequence[bool] | np.ndarray | None = None,
        window_days: int = 30,
        min_segment_buyers: int = 2,
    ) -> ReasonContext:
        """user_segments: a segment name per user ("" or None = none), default
        data.user_features["segment"]; item_categories: default
        data.item_features["category"]; item_new: which items count as new (default none).
        The window is the last ``window_days`` days before the data's last interaction."""
        n_users, n_items = data.n_users, data.n_items
        history = sparse.csr_matrix(data.matrix, dtype=np.float32)
        binary = history.copy()
        binary.data[:] = 1.0
        buyers = np.asarray(binary.sum(axis=0)).ravel().astype(np.int64)
        recent = binary
        if data.events is not None and len(data.events):
            events = data.events
            stamps = pd.DatetimeIndex(events["timestamp"]).asi8
            start = stamps.max() - int(window_days) * NS_PER_DAY
            mask = stamps > start
            recent = sparse.csr_matrix(
                (
                    np.ones(int(mask.sum()), dtype=np.float32),
                    (events["user"].to_numpy()[mask], events["item"].to_numpy()[mask]),
                ),
                shape=(n_users, n_items),
            )
            recent.sum_duplicates()
            recent.data[:] = 1.0
        recent_buyers = np.asarray(recent.sum(axis=0)).ravel().astype(np.int64)

        features = data.user_features
        if user_segments is None and features is not None and "segment" in features:
            user_segments = data.user_features["segment"].to_numpy()
        names = (
            pd.Series(user_segments if user_segments is not None else [""] * n_users)
            .fillna("")
            .astype(str)
        )
        codes, uniques = pd.factorize(names)
        uniques = list(uniques)
        if "" in uniques:
            blank = uniques.index("")
            codes = np.where(codes == blank, -1, codes - (codes > blank))
            uniques.pop(blank)
        codes = codes.astype(np.int64)
        n_seg = len(uniques)
        members = codes >= 0
        indicator = sparse.csr_matrix(
            (np.ones(int(members.sum())), (codes[members], np.flatnonzero(members))),
            shape=(max(n_seg, 1), n_users),
        )
        segment_buyers = sparse.csr_matrix(indicator @ recent)

        meta = data.item_features
        if item_categories is None and meta is not None and "category" in meta:
            item_categories = meta["category"].to_numpy()
        categories = (
            pd.Series(item_categories if item_categories is not None else [""] * n_items)
            .fillna("")
            .astype(str)
            .map(category_path)
            .to_numpy(dtype=object)
        )
        new = np.asarray(item_new, dtype=bool) if item_new is not None else np.zeros(n_items, bool)
        if len(new) != n_items or len(categories) != n_items or len(codes) != n_users:
            raise ValueError("user_segments / item_categories / item_new do not match the data")
        return cls(
            history=history,
            recent=sparse.csr_matrix(recent, dtype=np.float32),
            columns=normalized_columns(history),
            user_segment=codes,
            segment_names=tuple(str(u) for u in uniques),
            segment_buyers=segment_buyers,
            recent_buyers=recent_buyers,
            buyers=buyers,
            item_category=categories,
            item_new=new,
            window_days=int(window_days),
            min_segment_buyers=int(min_segment_buyers),
        )

    def history_items(self, user: int) -> np.ndarray:
        return self.history.indices[self.history.indptr[user] : self.history.indptr[user + 1]]

    def top_category(self, user: int) -> tuple[str, int] | None:
        """(category, purchases in it) the user bought most often; ties: alphabetical."""
        start, stop = self.history.indptr[user], self.history.indptr[user + 1]
        cats = self.item_category[self.history.indices[start:stop]]
        weights = self.history.data[start:stop]
        totals: dict[str, float] = {}
        for cat, w in zip(cats, weights, strict=True):
            if cat:
                totals[cat] = totals.get(cat, 0.0) + float(w)
        if not totals:
            return None
        best = min(totals, key=lambda c: (-totals[c], c))
        return best, int(round(totals[best]))

    def popular(self, item: int) -> Reason:
        recent = int(self.recent_buyers[item])
        if recent > 0:
            return Reason(POPULAR, (), {"buyers": recent, "days": self.window_days})
        return Reason(POPULAR, (), {"buyers": int(self.buyers[item]), "days": None})


def _cites_history(model: Recommender) -> bool:
    return not isinstance(model, MostPopular | RecentPopular | SegmentPopular)


def _content_based(model: Recommender) -> bool:
    return "item_features" in model.needs


def supporting_items(
    ctx: ReasonContext, model: Recommender, user: int, items: Sequence[int], n: int = 2
) -> list[list[int]]:
    """Per item, up to n of the user's history items that support it, strongest first."""
    items = np.asarray(items, dtype=np.int64)
    history = ctx.history_items(user)
    if len(history) == 0 or len(items) == 0 or not _cites_history(model):
        return [[] for _ in items]
    if _content_based(model):
        own = set(history.tolist())
        return [
            [h for h, w in model.explain(user, int(i), n) if w > 0 and h in own and h != i][:n]
            for i in items
        ]
    if isinstance(model, ItemItemModel):
        # Same contributions as ItemItemModel.explain, for all items at once.
        row = model.profiles[user]
        history, weights = row.indices, row.data.astype(np.float64)
        if len(history) == 0:
            return [[] for _ in items]
        block = model.item_matrix[history]
        block = block[:, items].toarray() if sparse.issparse(block) else block[:, items]
        support = weights[:, None] * np.asarray(block, dtype=np.float64)
    else:
        sub = ctx.columns[:, history]
        support = np.asarray((sub.T @ ctx.columns[:, items]).toarray(), dtype=np.float64)
    support[history[:, None] == items[None, :]] = 0.0
    # Cite only what the training history holds (a model's profile could, in principle,
    # carry more than the purchases).
    support[~np.isin(history, ctx.history_items(user))] = 0.0
    out = []
    for j in range(len(items)):
        column = support[:, j]
        order = np.argsort(-column, kind="stable")[:n]
        out.append([int(history[k]) for k in order if column[k] > 0])
    return out


def reasons_for(
    ctx: ReasonContext, model: Recommender, user: int, items: Sequence[int], n: int = 2
) -> list[Reason]:
    """A reason for each item of the user's discover list (see the module docstring)."""
    cited = supporting_items(ctx, model, user, items, n)
    segment = int(ctx.user_segment[user])
    favourite: tuple[str, int] | None | bool = False  # computed on first need
    kind = SIMILAR_TO if _content_based(model) else BOUGHT_TOGETHER
    out: list[Reason] = []
    for item, support in zip(items, cited, strict=True):
        item = int(item)
        if support:
            out.append(Reason(kind, tuple(support)))
            continue
        if segment >= 0:
            count = int(ctx.segment_buyers[segment, item])
            if count >= ctx.min_segment_buyers:
                out.append(
                    Reason(
                        POPULAR_SEGMENT,
                        (),
                        {
                            "segment": ctx.segment_names[segment],
                            "buyers": count,
                            "days": ctx.window_days,
                        },
                    )
                )
                continue
        if ctx.item_new[item]:
            if favourite is False:
                favourite = ctx.top_category(user)
            if favourite and in_subtree(ctx.item_category[item], [favourite[0]]):
                out.append(
                    Reason(
                        NEW_IN_CATEGORY,
                        (),
                        {"category": favourite[0], "purchases": favourite[1]},
                    )
                )
            else:
                out.append(Reason(NEW_ARRIVAL, (), {"category": ctx.item_category[item]}))
            continue
        out.append(ctx.popular(item))
    return out


def buy_again_reason(ctx: ReasonContext, model: BuyAgain, user: int, item: int) -> Reason:
    """The user's own repeat pattern for an item of their history (else `popular`)."""
    matrix = model.scores_matrix
    start, stop = matrix.indptr[user], matrix.indptr[user + 1]
    pos = start + int(np.searchsorted(matrix.indices[start:stop], item))
    if pos >= stop or matrix.indices[pos] != item:
        return ctx.popular(item)
    stats = model.stats
    personal = bool(stats.personal[pos])
    every = stats.own_interval_days[pos] if personal else stats.interval_days[pos]
    return Reason(
        BUY_AGAIN,
        (int(item),),
        {
            "purchases": int(stats.purchases[pos]),
            "every_days": max(1, int(round(float(every)))),
            "days_ago": int(model.as_of_day - stats.last_day[pos]),
            "personal": personal,
        },
    )


def segment_reasons(
    ctx: ReasonContext,
    items: Sequence[int],
    segment: str,
    recent_buyers: np.ndarray,
) -> list[Reason]:
    """Reasons for a segment's list: ``popular_segment`` with the members' distinct buyers
    in the window when there are any, else the catalog-wide `popular` reason."""
    out = []
    for item in items:
        count = int(recent_buyers[int(item)])
        if count > 0:
            out.append(
                Reason(
                    POPULAR_SEGMENT,
                    (),
                    {"segment": segment, "buyers": count, "days": ctx.window_days},
                )
            )
        else:
            out.append(ctx.popular(int(item)))
    return out
