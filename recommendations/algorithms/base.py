"""The one interface every recommender implements, and the data it is fitted on.

A recommender is fitted on a `Dataset`: a sparse customer×product matrix (rows = users,
columns = items, values = interaction weights, e.g. purchase counts) plus, optionally, the
interaction log (for time- and order-aware models), item features (product text, category,
price) and user features (segment, country). Users and items are dense indices 0..n-1; the
id arrays map them back to the caller's ids.

Subclasses implement `_fit` and `_score_block` (dense scores for a block of users); `recommend`
turns scores into top-k lists in memory-bounded blocks with already-seen items excluded, and
`similar_items` does the same for items. Everything is deterministic for a seed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import ThreadpoolController

Progress = Callable[[int, int], None]

# Interaction log columns (`Dataset.events`): user and item are dense indices.
EVENT_COLUMNS = ("user", "item", "timestamp", "weight", "basket")


@dataclass(frozen=True)
class Dataset:
    """Training data for one fit.

    matrix: CSR float32 (n_users × n_items), summed weights of each (user, item).
    events: optional interaction log with EVENT_COLUMNS — user/item dense indices,
        timestamp datetime64[ns, UTC], weight float, basket (order id, int64; -1 unknown);
        sorted by (user, timestamp).
    item_features: optional frame indexed 0..n_items-1 (title, description, category,
        brand, price, …; any subset).
    user_features: optional frame indexed 0..n_users-1 (segment, country, …).
    """

    matrix: sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    events: pd.DataFrame | None = None
    item_features: pd.DataFrame | None = None
    user_features: pd.DataFrame | None = None

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def as_of(self) -> pd.Timestamp | None:
        """The time of the last interaction (what "now" means for time-aware models)."""
        if self.events is None or self.events.empty:
            return None
        return pd.Timestamp(self.events["timestamp"].max())

    @classmethod
    def from_interactions(
        cls,
        frame: pd.DataFrame,
        *,
        user_ids: Sequence | np.ndarray | None = None,
        item_ids: Sequence | np.ndarray | None = None,
        item_features: pd.DataFrame | None = None,
        user_features: pd.DataFrame | None = None,
    ) -> Dataset:
        """Build a dataset from an interaction frame with columns user_id, item_id,
        timestamp and optionally weight (default 1) and basket (default: one basket per
        user and day).

        ``user_ids``/``item_ids`` fix the index order (e.g. all customers, or the training
        items only — rows whose item is not listed are dropped). ``item_features`` and
        ``user_features`` are indexed by the caller's ids and reindexed to the dense order.
        """
        if user_ids is None:
            user_ids = np.unique(frame["user_id"].to_numpy())
        if item_ids is None:
            item_ids = np.unique(frame["item_id"].to_numpy())
        user_ids = np.asarray(user_ids)
        item_ids = np.asarray(item_ids)
        users = pd.Index(user_ids).get_indexer(frame["user_id"].to_numpy())
        items = pd.Index(item_ids).get_indexer(frame["item_id"].to_numpy())
        keep = (users >= 0) & (items >= 0)
        users, items = users[keep], items[keep]
        weight = (
            frame["weight"].to_numpy(dtype=np.float32)[keep]
            if "weight" in frame
            else np.ones(int(keep.sum()), dtype=np.float32)
        )
        timestamp = pd.to_datetime(frame["timestamp"].to_numpy()[keep], utc=True)
        if "basket" in frame:
            basket = frame["basket"].to_numpy()[keep]
            basket = pd.factorize(pd.Series(basket).astype(str))[0].astype(np.int64)
        else:
            day = timestamp.floor("D").asi8
            basket = pd.factorize(
                pd.Series(users.astype(np.int64) * 1_000_003 + day // 86_400_000_000_000)
            )[0]
            basket = basket.astype(np.int64)
        events = pd.DataFrame(
            {
                "user": users.astype(np.int64),
                "item": items.astype(np.int64),
                "timestamp": timestamp,
                "weight": weight,
                "basket": basket,
            }
        )
        events = events.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
        matrix = sparse.csr_matrix(
            (events["weight"].to_numpy(dtype=np.float32), (events["user"], events["item"])),
            shape=(len(user_ids), len(item_ids)),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        if item_features is not None:
            item_features = item_features.reindex(item_ids).reset_index(drop=True)
        if user_features is not None:
            user_features = user_features.reindex(user_ids).reset_index(drop=True)
        return cls(matrix, user_ids, item_ids, events, item_features, user_features)


@dataclass(frozen=True)
class TopK:
    """Top-k lists for a block of users (or items): indices and scores, best first.

    Rows with fewer than k candidates are padded with item -1 and score -inf.
    """

    items: np.ndarray  # int64 (n, k)
    scores: np.ndarray  # float32 (n, k)


# A parameter space for random search: name -> list of choices, or a tuple
# ("int" | "float" | "log", low, high) sampled uniformly (log: uniform in log space).
ParamSpace = dict[str, Sequence[Any] | tuple[str, float, float]]


def sample_params(space: ParamSpace, rng: np.random.Generator) -> dict[str, Any]:
    """One random point of ``space`` (lists: uniform choice; ranges: see ParamSpace)."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, tuple) and len(spec) == 3 and spec[0] in ("int", "float", "log"):
            kind, low, high = spec
            if kind == "int":
                out[name] = int(rng.integers(int(low), int(high) + 1))
            elif kind == "float":
                out[name] = float(rng.uniform(low, high))
            else:
                out[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            choices = list(spec)
            out[name] = choices[int(rng.integers(len(choices)))]
    return out


class Recommender:
    """Base class. Subclasses set `name`, `defaults`, `space`, and implement `_fit` and
    `_score_block`; they may override `similar_items` and `explain`.

    params: hyper-parameters (defaults overridden by the constructor's keyword arguments).
    """

    name: ClassVar[str] = "base"
    # Default hyper-parameters and the random-search space (see ParamSpace).
    defaults: ClassVar[dict[str, Any]] = {}
    space: ClassVar[ParamSpace] = {}
    # What the model needs from the Dataset beyond the matrix ("events", "item_features",
    # "user_features"); the evaluation skips a model whose needs are not met.
    needs: ClassVar[tuple[str, ...]] = ()
    # True for models that recommend items the user already has (buy again): they are
    # evaluated and tuned on repeat purchases, with nothing excluded.
    recommends_seen: ClassVar[bool] = False

    def __init__(self, seed: int = 0, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {sorted(unknown)}")
        self.params = {**self.defaults, **params}
        self.seed = seed
        self.data: Dataset | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the interaction log: it is only read while fitting, and a
        stored model should hold no more of the customers' history than scoring needs."""
        state = dict(self.__dict__)
        data = state.get("data")
        if isinstance(data, Dataset) and data.events is not None:
            state["data"] = replace(data, events=None)
        return state

    # ----------------------------------------------------------------- to implement

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        """Learn from ``data``; every subclass implements it (the base has no model)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _fit")

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores (len(users), n_items); higher = better. -inf = never.
        Every subclass implements it (or overrides `recommend` and `scores`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _score_block")

    def _scores_for(self, users: np.ndarray, excluded: sparse.csr_matrix | None) -> np.ndarray:
        """Scores of a block when ``excluded`` (all users × items, or None) will be left
        out; models whose scores depend on it override this (default: `_score_block`)."""
        return self._score_block(users)

    # ----------------------------------------------------------------- public API

    def fit(self, data: Dataset, on_progress: Progress | None = None) -> Recommender:
        missing = [n for n in self.needs if getattr(data, n) is None]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(missing)} in the dataset")
        self.data = data
        self._fit(data, on_progress)
        return self

    def scores(
        self, users: np.ndarray, *, exclude: sparse.spmatrix | None | bool = True
    ) -> np.ndarray:
        """Dense scores for the given users (one block; callers keep blocks small).

        exclude: what the caller leaves out of the lists, as in `recommend` (default: the
        users' own items). Most models score regardless; a model whose scores depend on it
        (the ranker re-ranks candidates chosen among the items not excluded) follows it.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self._scores_for(users, self._excluded(exclude))

    def recommend(
        self,
        users: np.ndarray | Sequence[int],
        k: int = 10,
        *,
        exclude: sparse.csr_matrix | None | bool = True,
        allowed: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> TopK:
        """Top-k items per user, best first.

        exclude: True = the training matrix (items the user already has); a CSR matrix of
            the same shape = those items; False/None = nothing excluded.
        allowed: optional boolean mask over items (False = never recommend, e.g. out of stock).
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        mask = self._excluded(exclude)
        out_items = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        for start, block in _blocks(users, block_size):
            scores = np.asarray(self._scores_for(block, mask), dtype=np.float32)
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            if mask is not None:
                sub = mask[block]
                rows = np.repeat(np.arange(len(block)), np.diff(sub.indptr))
                scores[rows, sub.indices] = -np.inf
            top = topk_rows(scores, k)
            out_items[start : start + len(block)] = top.items
            out_scores[start : start + len(block)] = top.scores
        return TopK(out_items, out_scores)

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> TopK:
        """Items most similar to each given item (itself excluded). Default: cosine
        similarity of the items' columns in the training matrix (co-purchase)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        cols = normalized_columns(self.data.matrix)
        sims = (cols[:, items].T @ cols).toarray().astype(np.float32)
        sims[np.arange(len(items)), items] = -np.inf
        sims[sims <= 0] = -np.inf
        return topk_rows(sims, k)

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        """The user's own history items that most support recommending ``item``:
        [(history item index, weight)], strongest first; [] when nothing in the history
        relates to it. Default: co-purchase cosine between the item and each history item.
        """
        self._check_fitted()
        history = self.data.matrix[user].indices
        if len(history) == 0:
            return []
        cols = normalized_columns(self.data.matrix)
        sims = (cols[:, history].T @ cols[:, [item]]).toarray().ravel()
        order = np.argsort(-sims, kind="stable")[:n]
        return [(int(history[i]), float(sims[i])) for i in order if sims[i] > 0]

    def _excluded(self, exclude: sparse.spmatrix | None | bool) -> sparse.csr_matrix | None:
        """The CSR of items to leave out per user, for `recommend`'s ``exclude``."""
        if exclude is True:
            return self.data.matrix
        if exclude is None or exclude is False:
            return None
        return sparse.csr_matrix(exclude)

    def _check_fitted(self) -> None:
        if self.data is None:
            raise RuntimeError(f"{self.name} is not fitted")


# ------------------------------------------------------------------------- helpers


def _blocks(values: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(values), size):
        yield start, values[start : start + size]


def topk_rows(scores: np.ndarray, k: int) -> TopK:
    """Per row, the k highest finite scores (ties broken by lower index), best first.

    Scores are compared as float32; NaN counts as -inf (never listed), so one bad score
    cannot empty its row. Exact, and fast on wide rows: the k-th largest of the
    row's group maxima (every 16k-th column forms a group) bounds the k-th score from below,
    so only the few groups that reach that bound are looked at; rows of massive ties (e.g.
    all zeros) take the strictly better items plus the lowest-indexed ties.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    kk = min(k, m)
    items = np.full((n, k), -1, dtype=np.int64)
    values = np.full((n, k), -np.inf, dtype=np.float32)
    if kk == 0 or n == 0:
        return TopK(items, values)
    if np.isnan(scores.max()):  # max propagates NaN: one pass, no mask unless needed
        scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
    groups = 16 * kk
    width = m // groups
    if width < 2:
        # Narrow rows: the exact k-th largest score, then everything strictly above it.
        bound = np.partition(scores, m - kk, axis=1)[:, m - kk]
        flat = np.flatnonzero(scores > bound[:, None])
        rows = flat // m
        found = [(rows, flat - rows * m)]
        tied = np.arange(n)
    else:
        # Group g holds columns g, g + groups, g + 2·groups, …
        maxima = scores[:, : groups * width].reshape(n, width, groups).max(axis=1)
        tail = m - groups * width
        if tail:
            np.maximum(maxima[:, :tail], scores[:, groups * width :], out=maxima[:, :tail])
        bound = np.partition(maxima, groups - kk, axis=1)[:, groups - kk]
        reach = maxima >= bound[:, None]
        crowded = (np.count_nonzero(reach, axis=1) > 4 * kk) | ~np.isfinite(bound)
        # Crowded rows keep only their strictly better groups (fewer than kk) and get ties
        # below; the others keep every score >= bound in the groups that reach it.
        reach[crowded] = maxima[crowded] > bound[crowded, None]
        rows, group = np.nonzero(reach)
        cols = group[:, None] + groups * np.arange(width + 1)
        inside = cols < m
        cols = np.where(inside, cols, 0)
        vals = np.where(inside, scores[rows[:, None], cols], -np.inf)
        limit = bound[rows, None]
        keep = np.where(crowded[rows, None], vals > limit, vals >= limit)
        found = [(np.broadcast_to(rows[:, None], cols.shape)[keep], cols[keep])]
        tied = np.flatnonzero(crowded)
    # Rows whose candidates so far are the scores strictly above a bound that equals their
    # k-th score (or -inf) are completed with their lowest-indexed ties at the bound.
    if len(tied):
        strict = np.bincount(found[0][0], minlength=n)[tied]
        need = np.where(np.isfinite(bound[tied]), kk - strict, 0)
        short = need > 0
        if short.any():
            found.append(_first_ties(scores, tied[short], bound[tied[short]], need[short]))
    rows = np.concatenate([r for r, _ in found])
    cols = np.concatenate([c for _, c in found])
    if len(rows) == 0:
        return TopK(items, values)
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    counts = np.bincount(rows, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts[:-1])))
    keys = np.full((n, max(int(counts.max()), kk)), _NO_KEY, dtype=np.uint64)
    keys[rows, np.arange(len(rows)) - starts[rows]] = _descending_keys(scores[rows, cols], cols)
    if keys.shape[1] > kk:
        keys = np.partition(keys, kk - 1, axis=1)[:, :kk]
    keys.sort(axis=1)
    valid = keys != _NO_KEY
    best = np.where(valid, keys & np.uint64(0xFFFFFFFF), 0).astype(np.int64)
    items[:, :kk] = np.where(valid, best, -1)
    values[:, :kk] = np.where(valid, np.take_along_axis(scores, best, axis=1), -np.inf)
    return TopK(items, values)


_NO_KEY = np.uint64(np.iinfo(np.uint64).max)


def _descending_keys(values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """uint64 keys that sort ascending as (value descending, column ascending)."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 -> +0.0
    negative = (bits >> np.uint32(31)).astype(bool)
    # IEEE order: positive floats rank by their bits, negative ones by inverted bits.
    rank = np.where(negative, bits, ~bits & np.uint32(0x7FFFFFFF))
    return (rank.astype(np.uint64) << np.uint64(32)) | cols.astype(np.uint64)


def _first_ties(
    scores: np.ndarray, rows: np.ndarray, bound: np.ndarray, need: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the first need[i] columns of rows[i] whose score equals bound[i];
    looks at a prefix of the row first (enough when ties are dense), then whole rows."""
    m = scores.shape[1]
    out_rows, out_cols = [], []
    pending = np.arange(len(rows))
    for width in (min(m, max(256, 8 * int(need.max()))), m):
        equal = scores[rows[pending], :width] == bound[pending, None]
        rank = np.cumsum(equal, axis=1, dtype=np.int32)
        done = rank[:, -1] >= need[pending]
        r, c = np.nonzero(equal & (rank <= need[pending, None]) & done[:, None])
        out_rows.append(rows[pending[r]])
        out_cols.append(c)
        pending = pending[~done]
        if len(pending) == 0:
            break
    return np.concatenate(out_rows), np.concatenate(out_cols)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """Limit BLAS to one thread inside the ``with`` block: for many small products, where
    threads only synchronise (several times slower on a busy machine). The loaded libraries
    are scanned once per process — ``threadpool_limits`` rescans them on every call, which
    takes 0.1 s in a process that has loaded many."""
    return _blas_controller().limit(limits=1, user_api="blas")


def normalized_columns(matrix: sparse.csr_matrix) -> sparse.csc_matrix:
    """The matrix with each column scaled to unit L2 norm (zero columns stay zero)."""
    csc = sparse.csc_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(csc.multiply(csc).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csc_matrix(csc @ sparse.diags(1.0 / norms).astype(np.float32))
