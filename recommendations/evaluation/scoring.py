"""Score top-k lists of an EvalSplit: accuracy and beyond-accuracy metrics, overall and per
segment, for the "new items" targets or the buy-again ("repeat") targets.

Metric keys are ``"<metric>@<k>"`` (e.g. ``ndcg@10``, ``coverage@20``); see ``metrics`` for
the definitions. Overall values are means over the scored users (coverage: over their lists).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from recommendations.algorithms.base import Dataset, TopK, topk_rows

from . import metrics
from .splits import EvalSplit


@dataclass(frozen=True)
class ListScores:
    """metrics: key -> mean over users; per_user: key -> one value per entry of ``users``
    (coverage has no per-user value); by_segment: per-segment means, or None."""

    users: np.ndarray
    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    by_segment: pd.DataFrame | None = None


def metric_k(name: str) -> int:
    """The cut-off of a metric key: "ndcg@10" -> 10."""
    try:
        return int(name.rsplit("@", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"metric {name!r} is not of the form name@k") from None


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def score_lists(
    items: np.ndarray,
    split: EvalSplit,
    users: np.ndarray,
    *,
    k_values: tuple[int, ...] = (10, 20),
    targets: str = "new",
    segments: np.ndarray | None = None,
    beyond: bool = True,
    item_vectors: np.ndarray | sparse.spmatrix | None = None,
) -> ListScores:
    """Score the lists ``items`` (row i = the list of training user ``users[i]``).

    targets: "new" (split.targets) or "repeat" (split.repeat, for buy-again lists).
    segments: optional label per training user (length split.train.n_users) for a
        per-segment breakdown. beyond: also coverage, novelty, diversity, pop_pct.
    item_vectors: rows = item vectors for diversity (default: co-purchase columns).
    """
    users = np.asarray(users, dtype=np.int64)
    matrix = {"new": split.targets, "repeat": split.repeat}[targets]
    rows = matrix[users]
    data: Dataset = split.train
    per_user: dict[str, np.ndarray] = {}
    overall: dict[str, float] = {}
    coverage_keys: dict[str, int] = {}
    popularity = metrics.item_popularity(data.matrix) if beyond else None
    vectors = None
    if beyond:
        vectors = (
            item_vectors if item_vectors is not None else metrics.co_purchase_vectors(data.matrix)
        )
    for k in k_values:
        for name, values in metrics.accuracy(items, rows, k).items():
            per_user[f"{name}@{k}"] = values
        if beyond:
            overall[f"coverage@{k}"] = metrics.coverage(items, data.n_items, k)
            coverage_keys[f"coverage@{k}"] = k
            per_user[f"novelty@{k}"] = metrics.novelty(items, popularity, data.n_users, k)
            per_user[f"diversity@{k}"] = metrics.intra_list_diversity(items, vectors, k)
            per_user[f"pop_pct@{k}"] = metrics.popularity_percentile(items, popularity, k)
    overall.update({name: _mean(values) for name, values in per_user.items()})
    ordered = {name: overall[name] for name in sorted(overall, key=_order)}
    table = None
    if segments is not None:
        table = metrics.by_segment(
            per_user,
            np.asarray(segments)[users],
            items=items,
            n_items=data.n_items,
            coverage_keys=coverage_keys,
        )
    return ListScores(users, ordered, per_user, table)


def _order(name: str) -> tuple[int, int]:
    base, k = name.rsplit("@", 1)
    kinds = metrics.ACCURACY + metrics.BEYOND
    return (int(k), kinds.index(base) if base in kinds else len(kinds))


def history_topk(data: Dataset, users: np.ndarray, k: int, block_size: int = 2048) -> TopK:
    """A buy-again reference: each user's own training items, most frequent first (summed
    weight; ties by lower item index). Rows with fewer than k items are padded with -1."""
    users = np.asarray(users, dtype=np.int64)
    out_items = np.full((len(users), k), -1, dtype=np.int64)
    out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    for start in range(0, len(users), block_size):
        block = users[start : start + block_size]
        scores = data.matrix[block].toarray().astype(np.float32)
        scores[scores <= 0] = -np.inf
        top = topk_rows(scores, k)
        out_items[start : start + len(block)] = top.items
        out_scores[start : start + len(block)] = top.scores
    return TopK(out_items, out_scores)


def score_buy_again(
    items: np.ndarray,
    split: EvalSplit,
    users: np.ndarray,
    *,
    k_values: tuple[int, ...] = (10, 20),
    segments: np.ndarray | None = None,
) -> ListScores:
    """Accuracy of buy-again lists against the repeat targets (test items the user already
    had in train). The lists must be made without excluding seen items
    (``recommend(..., exclude=False)``); score only ``split.repeat_users``."""
    return score_lists(
        items, split, users, k_values=k_values, targets="repeat", segments=segments, beyond=False
    )
