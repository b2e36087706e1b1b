"""Business rules on top of any recommender: filters, boost / bury / pin, diversity (MMR).

`rank(model, users, rules, items_meta)` turns a fitted model's scores into the final lists a
marketer sees, and says for each user what the rules took out of the list the model alone
would have given (for the preview page). `rank_scores` does the same for any score matrix
(segment lists rank popularity scores with it).

Per user, in this order:

1. Hard filters remove items: out of stock (``in_stock_only``), outside the included
   category subtrees or inside an excluded one, price outside [price_min, price_max] (an
   unknown price fails a price filter), and with ``exclude_bought`` the user's own history.
2. The best ``candidates`` remaining items form the pool. A user whose scores say nothing
   (no finite score, or all equal: no history for a collaborative model) is ranked by
   ``fallback`` (e.g. popularity) instead, and a pool shorter than ``top_n`` is filled
   from ``fallback`` — so every user gets a full list while enough items pass the filters.
3. Relevance: the pool's scores min-max scaled to [0.1, 1] (filled items below 0.1), times
   the boost factors (``boost`` per item and ``boost_categories`` per category subtree,
   multiplied when several apply). Scaling first makes a factor mean the same for every
   model, whatever its score range (log scores, dot products, counts).
4. Diversity: with ``mmr_lambda`` < 1, maximal marginal relevance picks each next item by
   λ·relevance − (1−λ)·(max similarity to the items already picked); λ = 1 is the plain
   order by relevance.
5. Buried items go after every other item (and so drop out when enough others exist);
   pinned items that pass the hard filters come first, in the given order.

``removed`` lists, per user, the items of the model's own top-``top_n`` (before any rule)
that are not in the final list, each with the rule responsible: ``out_of_stock``,
``category``, ``price``, ``exclude_bought``, ``bury``, ``diversity`` (MMR chose others),
or ``displaced`` (boosts or pins pushed it below the cut); plus pinned items a filter
refused, with that filter's name.

Items are dense indices (as in `Dataset`); `BusinessRules.from_dict` maps the caller's ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .base import Recommender, topk_rows
from .neighbors import item_similarity

MAX_TOP_N = 100

OUT_OF_STOCK = "out_of_stock"
CATEGORY = "category"
PRICE = "price"
BOUGHT = "exclude_bought"
BURY = "bury"
DIVERSITY = "diversity"
DISPLACED = "displaced"
REMOVAL_RULES = (OUT_OF_STOCK, CATEGORY, PRICE, BOUGHT, BURY, DIVERSITY, DISPLACED)

# Relevance of pool items is scaled into [_FLOOR, 1]; items filled from the fallback get less.
_FLOOR = 0.1

Similarity = Callable[[np.ndarray], np.ndarray]


class RulesError(ValueError):
    """An invalid rule; ``field`` names it (a BusinessRules attribute)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def category_path(value: str) -> str:
    """A category path in canonical form: segments stripped, joined by " > "."""
    return " > ".join(part.strip() for part in str(value).split(">") if part.strip())


def in_subtree(category: str, paths: Sequence[str]) -> bool:
    """True when ``category`` is one of ``paths`` or below one (case-insensitive)."""
    cat = category_path(category).casefold()
    if not cat:
        return False
    for path in paths:
        p = path.casefold()
        if cat == p or cat.startswith(p + " > "):
            return True
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


@dataclass(frozen=True)
class BusinessRules:
    """What a marketer may impose on every list (see the module docstring).

    top_n: list length (1..MAX_TOP_N). boost: {item: factor > 0}; boost_categories:
    {category path: factor > 0} (the whole subtree). bury: items pushed to the end. pin:
    items forced to the top, in order, when the filters allow them (at most top_n).
    mmr_lambda: 1 = pure relevance, 0 = as diverse as possible.
    Invalid values raise RulesError on construction.
    """

    top_n: int = 20
    exclude_bought: bool = True
    in_stock_only: bool = True
    include_categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    boost: Mapping[int, float] = field(default_factory=dict)
    boost_categories: Mapping[str, float] = field(default_factory=dict)
    bury: tuple[int, ...] = ()
    pin: tuple[int, ...] = ()
    mmr_lambda: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.top_n, int | np.integer) or isinstance(self.top_n, bool):
            raise RulesError("top_n", "must be a whole number")
        if not 1 <= int(self.top_n) <= MAX_TOP_N:
            raise RulesError("top_n", f"must be between 1 and {MAX_TOP_N}")
        set_(self, "top_n", int(self.top_n))
        for name in ("exclude_bought", "in_stock_only"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise RulesError(name, "must be true or false")
            set_(self, name, bool(getattr(self, name)))
        for name in ("include_categories", "exclude_categories"):
            set_(self, name, self._categories(name, getattr(self, name)))
        both = {c.casefold() for c in self.include_categories} & {
            c.casefold() for c in self.exclude_categories
        }
        if both:
            raise RulesError(
                "exclude_categories", f"{sorted(both)[0]!r} is both included and excluded"
            )
        for name in ("price_min", "price_max"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 0:
                raise RulesError(name, "must be a price of 0 or more")
            set_(self, name, float(value))
        if (
            self.price_min is not None
            and self.price_max is not None
            and self.price_min > self.price_max
        ):
            raise RulesError("price_max", "must not be below the minimum price")
        set_(self, "boost", self._factors("boost", self.boost, item_keys=True))
        set_(
            self,
            "boost_categories",
            self._factors("boost_categories", self.boost_categories, item_keys=False),
        )
        for name in ("bury", "pin"):
            set_(self, name, self._items(name, getattr(self, name)))
        if len(self.pin) > self.top_n:
            raise RulesError("pin", f"at most {self.top_n} pinned items (the list length)")
        if overlap := set(self.pin) & set(self.bury):
            raise RulesError("bury", f"item {min(overlap)} is both pinned and buried")
        lam = self.mmr_lambda
        if not _is_number(lam) or not 0.0 <= float(lam) <= 1.0:
            raise RulesError("mmr_lambda", "must be between 0 and 1 (1 = no diversity re-ranking)")
        set_(self, "mmr_lambda", float(lam))

    @staticmethod
    def _categories(name: str, values: Any) -> tuple[str, ...]:
        if isinstance(values, str) or not isinstance(values, Sequence | set | frozenset):
            raise RulesError(name, "must be a list of category paths")
        out: list[str] = []
        for value in values:
            path = category_path(value) if isinstance(value, str) else ""
            if not path:
                raise RulesError(name, "category paths must not be empty")
            if path.casefold() not in {p.casefold() for p in out}:
                out.append(path)
        return tuple(out)

    @staticmethod
    def _factors(name: str, values: Any, *, item_keys: bool) -> dict:
        if not isinstance(values, Mapping):
            raise RulesError(name, "must map each item or category to a factor")
        out: dict = {}
        for key, factor in values.items():
            if item_keys:
                if not isinstance(key, int | np.integer) or isinstance(key, bool) or key < 0:
                    raise RulesError(name, f"{key!r} is not an item")
                key = int(key)
            else:
                key = category_path(key) if isinstance(key, str) else ""
                if not key:
                    raise RulesError(name, "category paths must not be empty")
            if not _is_number(factor) or not math.isfinite(float(factor)) or float(factor) <= 0:
                raise RulesError(name, f"the factor for {key!r} must be a number above 0")
            out[key] = float(factor)
        return out

    @staticmethod
    def _items(name: str, values: Any) -> tuple[int, ...]:
        if isinstance(values, str) or not isinstance(values, Sequence | set | frozenset):
            raise RulesError(name, "must be a list of items")
        out: list[int] = []
        for value in values:
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
                raise RulesError(name, f"{value!r} is not an item")
            if int(value) in out:
                raise RulesError(name, f"item {int(value)} is listed twice")
            out.append(int(value))
        return tuple(out)

    # ------------------------------------------------------------------ conversions

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, item_index: Mapping[Any, int] | None = None
    ) -> BusinessRules:
        """Rules from JSON-like data. With ``item_index`` (caller's item id → dense index),
        the items of boost / bury / pin are the caller's ids; an id it lacks is an error.
        Unknown keys are errors (a typo must not silently drop a rule)."""
        if not isinstance(data, Mapping):
            raise RulesError("rules", "must be an object")
        known = set(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                raise RulesError(str(key), "unknown rule")
        values = dict(data)

        def index(name: str, key: Any) -> Any:
            if item_index is None:
                return key
            for candidate in (key, _as_int(key), str(key)):
                if candidate is not None and candidate in item_index:
                    return int(item_index[candidate])
            raise RulesError(name, f"unknown item {key!r}")

        if "boost" in values:
            if not isinstance(values["boost"], Mapping):
                raise RulesError("boost", "must map each item to a factor")
            values["boost"] = {index("boost", k): v for k, v in values["boost"].items()}
        for name in ("bury", "pin"):
            if name in values:
                items = values[name]
                if isinstance(items, str) or not isinstance(items, Sequence):
                    raise RulesError(name, "must be a list of items")
                values[name] = tuple(index(name, k) for k in items)
        for name in ("include_categories", "exclude_categories"):
            if name in values and isinstance(values[name], list):
                values[name] = tuple(values[name])
        return cls(**values)

    def to_dict(self, item_ids: Sequence | np.ndarray | None = None) -> dict[str, Any]:
        """JSON-safe form; with ``item_ids`` (dense index → caller's id) items are ids."""

        def out(item: int) -> Any:
            if item_ids is None:
                return item
            value = item_ids[item]
            return value.item() if isinstance(value, np.generic) else value

        return {
            "top_n": self.top_n,
            "exclude_bought": self.exclude_bought,
            "in_stock_only": self.in_stock_only,
            "include_categories": list(self.include_categories),
            "exclude_categories": list(self.exclude_categories),
            "price_min": self.price_min,
            "price_max": self.price_max,
            "boost": {str(out(k)): v for k, v in self.boost.items()},
            "boost_categories": dict(self.boost_categories),
            "bury": [out(i) for i in self.bury],
            "pin": [out(i) for i in self.pin],
            "mmr_lambda": self.mmr_lambda,
        }

    def for_repeat_list(self) -> BusinessRules:
        """The rules of a buy-again list: the user's own purchases are the point, so nothing
        bought is excluded, nothing is pinned and the order is plain relevance."""
        return replace(self, exclude_bought=False, pin=(), mmr_lambda=1.0)

    def check_items(self, n_items: int) -> None:
        """RulesError when an item of boost / bury / pin is not below ``n_items``."""
        for name, items in (("boost", self.boost), ("bury", self.bury), ("pin", self.pin)):
            for item in items:
                if item >= n_items:
                    raise RulesError(name, f"item {item} does not exist ({n_items} items)")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------ similarity


class ItemSimilarity:
    """Item-item similarity for diversity: cosine of the items' buyer columns (bought by the
    same customers), kept for each item's ``neighbors`` most similar items (the rest count
    as 0, which MMR does not miss), raised to ``category_weight`` for items in the same
    category — so products nobody bought yet still count as alike when they share one.

    Built once (a few seconds for tens of thousands of items), then each call is a small
    sparse slice: cheap enough for a candidate pool per customer.
    """

    def __init__(
        self,
        matrix: sparse.spmatrix,
        categories: Sequence[str] | np.ndarray | None = None,
        *,
        category_weight: float = 0.5,
        neighbors: int = 100,
    ) -> None:
        pruned = item_similarity(sparse.csr_matrix(matrix), neighbors=neighbors)
        self.matrix = sparse.csr_matrix(pruned.maximum(pruned.T), dtype=np.float32)
        self.category_codes = None
        self.category_weight = float(category_weight)
        if categories is not None and category_weight > 0:
            cats = pd.Series(categories).fillna("").astype(str).map(category_path)
            codes, _ = pd.factorize(cats.str.casefold())
            codes[cats.to_numpy() == ""] = -1
            self.category_codes = codes.astype(np.int64)

    def __call__(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        sims = self.matrix[items][:, items].toarray().astype(np.float64)
        if self.category_codes is not None:
            codes = self.category_codes[items]
            same = (codes[:, None] == codes[None, :]) & (codes[:, None] >= 0)
            sims = np.maximum(sims, self.category_weight * same)
        np.fill_diagonal(sims, 1.0)
        return np.clip(sims, 0.0, 1.0)


def intra_list_diversity(items: Sequence[int] | np.ndarray, similarity: Similarity) -> float:
    """1 − the mean pairwise similarity of a list (NaN for fewer than two items)."""
    items = np.asarray([i for i in items if i >= 0], dtype=np.int64)
    if len(items) < 2:
        return float("nan")
    sims = similarity(items)
    upper = sims[np.triu_indices(len(items), k=1)]
    return float(1.0 - upper.mean())


def mmr_order(
    items: np.ndarray, relevance: np.ndarray, k: int, lam: float, similarity: Similarity
) -> np.ndarray:
    """Maximal marginal relevance: k of ``items`` (given best first), each next one
    maximising lam·relevance − (1−lam)·max similarity to those already chosen. Relevance is
    scaled to [0, 1] first so it trades against similarity on one scale; ties go to the
    earlier item, so lam = 1 keeps the given order."""
    n = len(items)
    k = min(k, n)
    if lam >= 1.0 or n <= 1 or k <= 1:
        return items[:k]
    rel = np.asarray(relevance, dtype=np.float64)
    top = rel.max()
    rel = rel / top if top > 0 else np.zeros_like(rel)
    sims = similarity(items)
    chosen = [0]
    available = np.ones(n, dtype=bool)
    available[0] = False
    closest = sims[0].astype(np.float64).copy()
    while len(chosen) < k:
        value = lam * rel - (1.0 - lam) * closest
        value[~available] = -np.inf
        j = int(np.argmax(value))
        chosen.append(j)
        available[j] = False
        np.maximum(closest, sims[j], out=closest)
    return items[np.asarray(chosen)]


# ------------------------------------------------------------------------------ rank


@dataclass(frozen=True)
class Ranked:
    """Final lists: row r belongs to users[r] (or list r of `rank_scores`).

    items: int64 (n, top_n), -1 = empty slot; scores: float32, the relevance after boosts
    (pins keep their own, 0 when the model did not rank them), NaN in empty slots.
    removed: per row, [(item, rule)] (see the module docstring).
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    removed: list[list[tuple[int, str]]]

    def row(self, r: int) -> list[tuple[int, float]]:
        """[(item, score)] of row r, best first, without empty slots."""
        keep = self.items[r] >= 0
        return [
            (int(i), float(s))
            for i, s in zip(self.items[r][keep], self.scores[r][keep], strict=True)
        ]


@dataclass(frozen=True)
class _Prepared:
    rules: BusinessRules
    allowed: np.ndarray  # bool per item: passes stock / category / price
    refusal: np.ndarray  # object per item: the first filter that fails, or ""
    boost: np.ndarray  # float64 per item
    buried: np.ndarray  # bool per item
    fallback_order: np.ndarray | None  # allowed items by fallback score, best first
    fallback: np.ndarray | None


def _prepare(
    rules: BusinessRules, items_meta: pd.DataFrame | None, n_items: int, fallback
) -> _Prepared:
    rules.check_items(n_items)
    meta = items_meta if items_meta is not None else pd.DataFrame(index=range(n_items))
    if len(meta) != n_items:
        raise ValueError(f"items_meta has {len(meta)} rows for {n_items} items")
    refusal = np.full(n_items, "", dtype=object)
    if rules.in_stock_only and "in_stock" in meta:
        stock = meta["in_stock"].fillna(True).astype(bool).to_numpy()
        refusal[~stock] = OUT_OF_STOCK
    categories = (
        meta["category"].fillna("").astype(str).to_numpy()
        if "category" in meta
        else np.full(n_items, "", dtype=object)
    )
    if rules.include_categories or rules.exclude_categories:
        outside = np.zeros(n_items, dtype=bool)
        for i, category in enumerate(categories):
            included = not rules.include_categories or in_subtree(
                category, rules.include_categories
            )
            excluded = bool(rules.exclude_categories) and in_subtree(
                category, rules.exclude_categories
            )
            outside[i] = not included or excluded
        refusal[outside & (refusal == "")] = CATEGORY
    if rules.price_min is not None or rules.price_max is not None:
        price = (
            pd.to_numeric(meta["price"], errors="coerce").to_numpy(dtype=np.float64)
            if "price" in meta
            else np.full(n_items, np.nan)
        )
        bad = np.isnan(price)
        if rules.price_min is not None:
            bad |= price < rules.price_min
        if rules.price_max is not None:
            bad |= price > rules.price_max
        refusal[bad & (refusal == "")] = PRICE
    allowed = refusal == ""
    boost = np.ones(n_items, dtype=np.float64)
    for item, factor in rules.boost.items():
        boost[item] *= factor
    for path, factor in rules.boost_categories.items():
        for i, category in enumerate(categories):
            if in_subtree(category, [path]):
                boost[i] *= factor
    buried = np.zeros(n_items, dtype=bool)
    buried[list(rules.bury)] = True
    order = None
    if fallback is not None:
        fallback = np.asarray(fallback, dtype=np.float64)
        if fallback.shape != (n_items,):
            raise ValueError(f"fallback must have one score per item ({n_items})")
        candidates = np.flatnonzero(allowed)
        order = candidates[np.lexsort((candidates, -fallback[candidates]))]
    return _Prepared(rules, allowed, refusal, boost, buried, order, fallback)


def rank(
    model: Recommender,
    users: Sequence[int] | np.ndarray,
    rules: BusinessRules,
    items_meta: pd.DataFrame | None = None,
    *,
    candidates: int | None = None,
    fallback: np.ndarray | None = None,
    similarity: Similarity | None = None,
    block_size: int = 256,
) -> Ranked:
    """Final lists for ``users`` of a fitted ``model`` under ``rules``.

    items_meta: frame indexed 0..n_items-1 with any of category (path), price, in_stock.
    candidates: pool size per user after the filters (default 3·top_n + pins + buried).
    fallback: a score per item (e.g. popularity) for users the model cannot rank and to
        fill short pools; None = lists may be shorter.
    similarity: item-item similarity for MMR (default `ItemSimilarity` of the training
        matrix and items_meta's categories); only used when mmr_lambda < 1.
    With ``rules.exclude_bought`` the training matrix's items are excluded per user; a model
    that recommends seen items (buy again) must be given ``rules.for_repeat_list()``.
    """
    if model.data is None:
        raise RuntimeError(f"{model.name} is not fitted")
    if model.recommends_seen and rules.exclude_bought:
        raise ValueError(
            f"{model.name} recommends the user's own items: use rules.for_repeat_list()"
        )
    users = np.asarray(users, dtype=np.int64)
    data = model.data
    if similarity is None and rules.mmr_lambda < 1.0:
        cats = (
            items_meta["category"] if items_meta is not None and "category" in items_meta else None
        )
        similarity = ItemSimilarity(data.matrix, cats)
    prepared = _prepare(rules, items_meta, data.n_items, fallback)
    exclude = data.matrix if rules.exclude_bought else None
    items_out, scores_out, removed = [], [], []
    for start in range(0, len(users), block_size):
        block = users[start : start + block_size]
        part = _rank_block(
            model.scores(block, exclude=exclude if exclude is not None else False),
            prepared,
            exclude=exclude[block] if exclude is not None else None,
            candidates=candidates,
            similarity=similarity,
        )
        items_out.append(part[0])
        scores_out.append(part[1])
        removed.extend(part[2])
    top_n = rules.top_n
    return Ranked(
        users,
        np.concatenate(items_out) if items_out else np.zeros((0, top_n), dtype=np.int64),
        np.concatenate(scores_out) if scores_out else np.zeros((0, top_n), dtype=np.float32),
        removed,
    )


def rank_scores(
    scores: np.ndarray,
    rules: BusinessRules,
    items_meta: pd.DataFrame | None = None,
    *,
    exclude: sparse.spmatrix | None = None,
    candidates: int | None = None,
    fallback: np.ndarray | None = None,
    similarity: Similarity | None = None,
) -> Ranked:
    """`rank` for a dense score matrix (rows = lists, e.g. segments; columns = items).

    exclude: optional CSR of the same shape, items excluded per row (``rules.exclude_bought``
    is ignored here: pass what to exclude). ``users`` of the result are 0..n-1.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError("scores must be a 2-d array (lists × items)")
    if rules.mmr_lambda < 1.0 and similarity is None:
        raise ValueError("mmr_lambda < 1 needs an item similarity")
    prepared = _prepare(rules, items_meta, scores.shape[1], fallback)
    rows = sparse.csr_matrix(exclude) if exclude is not None else None
    items, values, removed = _rank_block(
        scores, prepared, exclude=rows, candidates=candidates, similarity=similarity
    )
    return Ranked(np.arange(len(scores), dtype=np.int64), items, values, removed)


def _rank_block(
    raw: np.ndarray,
    prep: _Prepared,
    *,
    exclude: sparse.csr_matrix | None,
    candidates: int | None,
    similarity: Similarity | None,
) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, str]]]]:
    rules = prep.rules
    top_n = rules.top_n
    raw = np.array(raw, dtype=np.float32)  # a copy: the model's arrays stay untouched
    n, m = raw.shape
    filtered = raw.copy()
    filtered[:, ~prep.allowed] = -np.inf
    excluded_rows: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
    if exclude is not None:
        exclude = sparse.csr_matrix(exclude)
        row_of = np.repeat(np.arange(n), np.diff(exclude.indptr))
        filtered[row_of, exclude.indices] = -np.inf
        excluded_rows = [
            exclude.indices[exclude.indptr[r] : exclude.indptr[r + 1]] for r in range(n)
        ]
    # Rows the model cannot rank (nothing finite, or several items all equal) are ranked by
    # the fallback. In other rows, ties at the row's lowest score (a neighbourhood model's
    # zeros: no evidence) give way to the fallback too.
    finite = np.isfinite(filtered)
    n_finite = finite.sum(axis=1)
    highest = np.where(finite, filtered, -np.inf).max(axis=1, initial=-np.inf)
    lowest = np.where(finite, filtered, np.inf).min(axis=1, initial=np.inf)
    cold = (n_finite == 0) | ((highest == lowest) & (n_finite > 1))
    floor_ties = ~cold & ((filtered == lowest[:, None]).sum(axis=1) > 1)
    if prep.fallback is not None and cold.any():
        base = np.where(prep.allowed, prep.fallback, -np.inf).astype(np.float32)
        filtered[cold] = base
        raw[cold] = prep.fallback.astype(np.float32)
        for r in np.flatnonzero(cold):
            if len(excluded_rows[r]):
                filtered[r, excluded_rows[r]] = -np.inf
    before = topk_rows(raw, top_n).items
    size = candidates or 3 * top_n + len(rules.pin) + len(rules.bury)
    pool = topk_rows(filtered, min(max(size, top_n), m))

    items_out = np.full((n, top_n), -1, dtype=np.int64)
    scores_out = np.full((n, top_n), np.nan, dtype=np.float32)
    removed: list[list[tuple[int, str]]] = []
    for r in range(n):
        keep = np.isfinite(pool.scores[r]) & (pool.items[r] >= 0)
        if floor_ties[r] and prep.fallback_order is not None:
            keep &= pool.scores[r] > lowest[r]
        cand = pool.items[r][keep]
        rel = _scaled(pool.scores[r][keep].astype(np.float64))
        excluded = excluded_rows[r]
        if len(cand) < top_n and prep.fallback_order is not None:
            extra = _fill(prep, cand, excluded, top_n - len(cand))
            cand = np.concatenate([cand, extra])
            rel = np.concatenate([rel, _FLOOR * 0.5 ** np.arange(1, len(extra) + 1)])
        relevance = rel * prep.boost[cand] if len(cand) else rel
        order = np.lexsort((cand, -relevance))
        cand, relevance = cand[order], relevance[order]
        score_of = dict(zip(cand.tolist(), relevance.tolist(), strict=True))

        excluded_set = set(excluded.tolist())
        pins = [
            p
            for p in rules.pin
            if prep.allowed[p] and not (exclude is not None and p in excluded_set)
        ]
        pinned = set(pins)
        rest = ~np.isin(cand, list(pinned)) if pinned else np.ones(len(cand), dtype=bool)
        buried = prep.buried[cand]
        free, free_rel = cand[rest & ~buried], relevance[rest & ~buried]
        slots = top_n - len(pins)
        head = free[:slots]
        if rules.mmr_lambda < 1.0 and slots > 0:
            chosen = mmr_order(free, free_rel, slots, rules.mmr_lambda, similarity)
        else:
            chosen = head
        final = [*pins, *chosen.tolist(), *cand[rest & buried].tolist()][:top_n]
        items_out[r, : len(final)] = final
        scores_out[r, : len(final)] = [score_of.get(i, 0.0) for i in final]

        in_final = set(final)
        head_set = set(head.tolist())
        gone: list[tuple[int, str]] = []
        for item in before[r]:
            item = int(item)
            if item < 0 or item in in_final:
                continue
            if prep.refusal[item]:
                rule = prep.refusal[item]
            elif item in excluded_set:
                rule = BOUGHT
            elif prep.buried[item]:
                rule = BURY
            elif item in head_set:
                rule = DIVERSITY
            else:
                rule = DISPLACED
            gone.append((item, rule))
        listed = {i for i, _ in gone}
        for p in rules.pin:
            if p not in pinned and p not in listed:
                gone.append((p, prep.refusal[p] or BOUGHT))
        removed.append(gone)
    return items_out, scores_out, removed


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Scores scaled to [_FLOOR, 1] (all 1 when they are equal)."""
    if len(scores) == 0:
        return scores
    high, low = scores.max(), scores.min()
    if high <= low:
        return np.ones_like(scores)
    return _FLOOR + (1.0 - _FLOOR) * (scores - low) / (high - low)


def _fill(prep: _Prepared, have: np.ndarray, excluded: np.ndarray, need: int) -> np.ndarray:
    """Up to ``need`` allowed items by fallback score that are neither in ``have`` nor
    excluded."""
    skip = set(have.tolist()) | set(excluded.tolist())
    out: list[int] = []
    for item in prep.fallback_order:
        if len(out) >= need:
            break
        if int(item) not in skip:
            out.append(int(item))
    return np.asarray(out, dtype=np.int64)
