"""Campaign feedback: how well lists made *before* a campaign foresaw what its recipients
clicked and bought.

A campaign's click and purchase events are a test set nobody tuned on. To compare two
models honestly on them, both are fitted on the purchases strictly before the campaign's
first event (`campaign_check` refuses a training frame that reaches the cutoff), with the
machinery of the offline comparison (`splits.make_split`'s rules): the training customers
and products only, and per customer the campaign products they had NOT bought before — the
"discover something new" targets; products already bought (buy-again) and customers or
products unknown before the cutoff are counted and left out. Lists are top-k with bought
products excluded, as in `tuning.evaluate`. Stored lists (what was actually sent) are
measured the same way on the same customers and targets.

Per kind of event ("click", "purchase"), the figures are means over the customers with at
least one target of that kind: hit rate (hr: share with one of their targets in the top
k), recall and NDCG at k (definitions in `metrics`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recommendations.algorithms.base import Dataset, Recommender

from . import metrics

KINDS = ("click", "purchase")
MEASURES = ("hr", "recall", "ndcg")
BUDGET_SPENT = "time budget spent"

UserFeatures = Callable[[pd.DataFrame], pd.DataFrame | None]


@dataclass(frozen=True)
class Candidate:
    """A model to fit blind to the campaign. expected_s: how long its fit took before (on
    about as much data), to skip it up front when that would overrun the budget."""

    key: str
    cls: type[Recommender]
    params: dict[str, Any]
    expected_s: float | None = None


@dataclass(frozen=True)
class Targets:
    """One kind's targets: a binary CSR over the training Dataset's users × items.

    events: the kind's campaign events; dropped: events left out by reason —
    ``no_history`` (customer without purchases before the cutoff), ``unknown_product``
    (product nobody bought before it), ``already_bought`` (the customer had bought it)."""

    matrix: sparse.csr_matrix
    events: int
    dropped: dict[str, int]

    @property
    def users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.matrix.indptr) > 0)


def campaign_targets(data: Dataset, frame: pd.DataFrame) -> Targets:
    """The targets of campaign events ``frame`` (user_id, item_id) for ``data``: products
    new to the customer that exist in training, as `splits.make_split` builds them."""
    users = pd.Index(data.user_ids).get_indexer(frame["user_id"].to_numpy())
    items = pd.Index(data.item_ids).get_indexer(frame["item_id"].to_numpy())
    known = (users >= 0) & (items >= 0)
    had = np.zeros(len(frame), dtype=bool)
    if known.any():
        had[known] = np.asarray(data.matrix[users[known], items[known]]).ravel() > 0
    keep = known & ~had
    shape = (data.n_users, data.n_items)
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (users[keep], items[keep])), shape=shape
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    dropped = {
        "no_history": int((users < 0).sum()),
        "unknown_product": int(((users >= 0) & (items < 0)).sum()),
        "already_bought": int(had.sum()),
    }
    return Targets(matrix, len(frame), dropped)


def list_scores(
    items: np.ndarray, targets: sparse.csr_matrix, rows: np.ndarray, k: int
) -> dict[str, Any]:
    """Mean hr, recall and NDCG at k of the lists ``items`` (row i = the list of Dataset
    user ``rows[i]``, item indices best first, -1 = nothing) over the rows that have
    targets; ``customers`` = how many. Measures are None when no row has a target."""
    rows = np.asarray(rows, dtype=np.int64)
    wanted = targets[rows]
    has = np.diff(wanted.indptr) > 0
    out: dict[str, Any] = {"customers": int(has.sum())}
    if not has.any():
        return out | dict.fromkeys(MEASURES)
    per_user = metrics.accuracy(np.asarray(items)[has], wanted[np.flatnonzero(has)], k)
    return out | {name: float(np.mean(per_user[name])) for name in MEASURES}


def stored_items(lists: pd.DataFrame, data: Dataset, rows: np.ndarray, k: int) -> np.ndarray:
    """Stored lists ``lists`` (user_id, item_id, rank from 1) as an items array aligned
    with Dataset users ``rows``: column r-1 holds rank r's item; products unknown to the
    Dataset (they cannot be targets) and missing ranks hold -1, a miss at that rank."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    if lists.empty or len(rows) == 0:
        return out
    position = pd.Series(np.arange(len(rows)), index=data.user_ids[rows])
    at = position.reindex(lists["user_id"].to_numpy()).to_numpy()
    rank = lists["rank"].to_numpy(dtype=np.int64)
    keep = ~np.isnan(at) & (rank >= 1) & (rank <= k)
    items = pd.Index(data.item_ids).get_indexer(lists["item_id"].to_numpy()[keep])
    out[at[keep].astype(np.int64), rank[keep] - 1] = items
    return out


@dataclass
class Row:
    """One line of the comparison: a model fitted blind to the campaign, or stored lists."""

    key: str
    algorithm: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    fit_s: float | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str | None = None  # why there are no figures
    same_as: str | None = None  # the row whose model this one is (same algorithm, params)
    without_list: int | None = None  # stored lists: scored customers who had none

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "algorithm": self.algorithm,
            "params": {str(k): _plain(v) for k, v in self.params.items()},
            "fit_s": None if self.fit_s is None else round(self.fit_s, 3),
            "scores": {
                kind: {name: _plain(value) for name, value in values.items()}
                for kind, values in self.scores.items()
            },
            "reason": self.reason,
            "same_as": self.same_as,
            "without_list": self.without_list,
        }


@dataclass
class CampaignCheck:
    """The outcome: ``reason`` is set when nothing could be measured."""

    k: int
    train_purchases: int
    train_last: pd.Timestamp | None
    customers: int  # distinct campaign customers
    events: dict[str, int]
    scored: dict[str, dict[str, int]]  # per kind: customers, targets
    dropped: dict[str, dict[str, int]]  # per kind: Targets.dropped
    rows: list[Row]
    reason: str | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "train_purchases": self.train_purchases,
            "train_last": None if self.train_last is None else self.train_last.isoformat(),
            "customers": self.customers,
            "events": dict(self.events),
            "scored": {kind: dict(v) for kind, v in self.scored.items()},
            "dropped": {kind: dict(v) for kind, v in self.dropped.items()},
            "rows": [row.to_dict() for row in self.rows],
            "reason": self.reason,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def campaign_check(
    train: pd.DataFrame,
    campaign: pd.DataFrame,
    candidates: Sequence[Candidate],
    *,
    stored: pd.DataFrame | None = None,
    k: int = 10,
    budget_s: float = 30.0,
    seed: int = 0,
    item_features: pd.DataFrame | None = None,
    user_features: pd.DataFrame | UserFeatures | None = None,
    reraise: tuple[type[BaseException], ...] = (),
) -> CampaignCheck:
    """Fit each candidate on ``train`` and measure it, and the ``stored`` lists, on the
    campaign's events.

    train: purchases (user_id, item_id, timestamp; optional weight, basket), every one
        strictly before the campaign's first event — ValueError otherwise (leakage).
    campaign: events (user_id, item_id, timestamp, kind in KINDS).
    candidates: models to fit, in row order; one with the algorithm and parameters of an
        earlier one reuses its lists (``same_as``).
    stored: lists already made (user_id, item_id, rank from 1), one row "stored" (None:
        no such row). budget_s: fits start only while the time spent plus their
        ``expected_s`` stays within it; the others get BUDGET_SPENT.
    user_features: indexed by user id, or a function of the training frame (features
        computed from purchases must not see the campaign either).
    reraise: exceptions a failing fit must not swallow (a caller's time limit).
    """
    started = time.perf_counter()
    campaign = campaign[campaign["kind"].isin(KINDS)]
    if campaign.empty:
        raise ValueError("no campaign events of the kinds " + ", ".join(KINDS))
    cutoff = pd.Timestamp(campaign["timestamp"].min())
    if len(train) and pd.Timestamp(train["timestamp"].max()) >= cutoff:
        raise ValueError("training purchases reach the campaign's first event (leakage)")
    events = {kind: int((campaign["kind"] == kind).sum()) for kind in KINDS}
    customers = int(campaign["user_id"].nunique())
    result = CampaignCheck(
        k=k,
        train_purchases=len(train),
        train_last=pd.Timestamp(train["timestamp"].max()) if len(train) else None,
        customers=customers,
        events=events,
        scored={},
        dropped={},
        rows=[],
    )
    if train.empty:
        result.reason = "no purchases before the campaign to fit the models on"
        return result
    data = Dataset.from_interactions(
        train,
        user_ids=np.unique(train["user_id"].to_numpy()),
        item_ids=np.unique(train["item_id"].to_numpy()),
        item_features=item_features,
        user_features=user_features(train) if callable(user_features) else user_features,
    )
    targets = {kind: campaign_targets(data, campaign[campaign["kind"] == kind]) for kind in KINDS}
    result.scored = {
        kind: {"customers": len(t.users), "targets": int(t.matrix.nnz)}
        for kind, t in targets.items()
    }
    result.dropped = {kind: t.dropped for kind, t in targets.items()}
    rows = np.union1d(targets["click"].users, targets["purchase"].users)
    if len(rows) == 0:
        result.reason = (
            "no campaign customer clicked or bought a product new to them that was "
            "already sold before the campaign"
        )
        result.elapsed_s = time.perf_counter() - started
        return result

    def measured(items: np.ndarray) -> dict[str, dict[str, Any]]:
        return {kind: list_scores(items, t.matrix, rows, k) for kind, t in targets.items()}

    made: dict[str, tuple[str, np.ndarray]] = {}  # identity -> (row key, lists)
    for candidate in candidates:
        row = Row(candidate.key, candidate.cls.name, dict(candidate.params))
        result.rows.append(row)
        identity = repr((candidate.cls.name, sorted(candidate.params.items())))
        if identity in made:
            row.same_as, items = made[identity]
            row.scores = measured(items)
            continue
        missing = [n for n in candidate.cls.needs if getattr(data, n, None) is None]
        spent = time.perf_counter() - started
        if missing:
            row.reason = f"needs {', '.join(missing)}"
            continue
        if spent >= budget_s or spent + (candidate.expected_s or 0.0) > budget_s:
            row.reason = BUDGET_SPENT
            continue
        try:
            fit_started = time.perf_counter()
            model = candidate.cls(seed=seed, **candidate.params).fit(data)
            row.fit_s = time.perf_counter() - fit_started
            items = model.recommend(rows, k).items
        except Exception as error:
            if reraise and isinstance(error, reraise):
                raise
            row.reason = f"could not be fitted ({type(error).__name__})"
            continue
        made[identity] = (candidate.key, items)
        row.scores = measured(items)
    if stored is not None:
        items = stored_items(stored, data, rows, k)
        has_list = np.isin(data.user_ids[rows], stored["user_id"].to_numpy())
        row = Row("stored", without_list=int((~has_list).sum()))
        row.scores = measured(items)
        result.rows.append(row)
    result.elapsed_s = time.perf_counter() - started
    return result


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, floats rounded."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
