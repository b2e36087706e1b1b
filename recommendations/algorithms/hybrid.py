"""The hybrid: a weighted blend of several recommenders, with per-customer fallbacks.

Components (each fitted with its own defaults; a component of weight 0 is not fitted):

* ``collaborative`` — a registered collaborative model, by name (EASE by default; above
  `linear.AUTO_MAX_ITEMS` items rp3beta stands in for EASE);
* ``prod2vec`` — `embeddings.Prod2Vec`;
* ``content`` — `content.ContentTfidf`, when the items have text;
* ``popular`` — `popular.RecentPopular` (what sells now).

Blending. For each customer, every component's scores are min-max normalised over the
items the customer has not bought (so the ranges are comparable and the customer's own
history does not set the scale), then summed with the weights ``w_*``. ``w_collaborative`` is the scale the others are
measured against, so the random-search space leaves it at 1 and tunes the rest;
``new_item_weight`` is not tuned either (an offline split has no unsold items to tune it on).

Fallbacks, per customer and per item:

* no history → the segment's best sellers (`popular.SegmentPopular`, when user features
  carry a ``segment``), else recent best sellers; nothing else can say anything;
* fewer than ``min_history`` distinct items (h of them) → the personal components
  (collaborative, prod2vec) are scaled by h / min_history and content and popularity by
  1 + cold_boost × (1 − h / min_history): a single purchase is thin evidence for
  co-purchase patterns, but enough for "more like this";
* items never bought in training (new products) → their score is new_item_weight × (sum of
  the customer's weights) × the content score: collaborative models cannot score them,
  content can.

Explanations: ``explain_component`` names the component that contributed most to an item's
score and returns that component's own explanation (history items); ``explain`` is its
list part (the `Recommender` interface). ``reason_for`` turns it into a structured reason
in the vocabulary of `reasons` (so `recommendations.reason_text` renders every kind it
returns: "because you bought X and Y", "popular with Germany customers").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from . import linear
from . import reasons as kinds
from .base import Dataset, Progress, Recommender
from .content import TEXT_COLUMNS, ContentTfidf, tokenize
from .embeddings import Prod2Vec
from .linear import EASE
from .popular import RecentPopular, SegmentPopular

# Used when the configured collaborative model is not registered (first available wins).
COLLABORATIVE_FALLBACKS = ("ease", "rp3beta", "item_knn_cosine")
PERSONAL = ("collaborative", "prod2vec")
BOOSTED = ("content", "popular")
# The kinds `Hybrid.reason_for` returns: a subset of `reasons.KINDS`.
REASON_KINDS = (
    kinds.BOUGHT_TOGETHER,
    kinds.SIMILAR_TO,
    kinds.POPULAR_SEGMENT,
    kinds.NEW_ARRIVAL,
    kinds.POPULAR,
)


def registered(name: str, seed: int, n_items: int | None = None) -> Recommender:
    """An instance of the registered recommender ``name``, else of the first registered
    COLLABORATIVE_FALLBACKS (looked up lazily: the registry imports this module). With
    ``n_items`` above `linear.AUTO_MAX_ITEMS`, EASE is passed over (its dense item matrix)."""
    from .registry import ALGORITHMS

    for candidate in (name, *COLLABORATIVE_FALLBACKS):
        cls = ALGORITHMS.get(candidate)
        if cls is EASE and n_items is not None and not linear.ease_allowed(n_items):
            continue
        if cls is not None and cls is not Hybrid:
            return cls(seed=seed)
    raise ValueError(f"no collaborative model registered (wanted {name!r})")


def minmax_rows(scores: np.ndarray, mask: sparse.csr_matrix | None) -> np.ndarray:
    """Per row, (s − min) / (max − min) with min and max taken over finite entries outside
    ``mask`` (the customer's history); non-finite scores → 0; flat rows → 0."""
    scores = np.array(scores, dtype=np.float32)
    ignore = ~np.isfinite(scores)
    if mask is not None:
        rows = np.repeat(np.arange(mask.shape[0]), np.diff(mask.indptr))
        ignore[rows, mask.indices] = True
    low = np.where(ignore, np.inf, scores).min(axis=1, keepdims=True)
    high = np.where(ignore, -np.inf, scores).max(axis=1, keepdims=True)
    span = high - low
    flat = ~np.isfinite(span) | (span <= 0)
    out = (scores - np.where(flat, 0.0, low)) / np.where(flat, 1.0, span)
    out[~np.isfinite(scores)] = 0.0
    out[np.broadcast_to(flat, out.shape)] = 0.0
    return out


class Hybrid(Recommender):
    """Weighted blend with cold-start fallbacks; see the module docstring."""

    name = "hybrid"
    defaults = {
        "collaborative": "ease",
        "w_collaborative": 1.0,
        "w_prod2vec": 0.3,
        "w_content": 0.3,
        "w_popular": 0.1,
        "min_history": 3,
        "cold_boost": 2.0,
        "new_item_weight": 0.5,
    }
    space = {
        "collaborative": ["ease", "rp3beta", "item_knn_cosine"],
        "w_prod2vec": ("float", 0.0, 1.0),
        "w_content": ("float", 0.0, 1.0),
        "w_popular": ("float", 0.0, 0.5),
        "min_history": ("int", 1, 10),
        "cold_boost": ("float", 0.0, 4.0),
    }
    needs = ("events",)

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        has_text = data.item_features is not None and any(
            c in data.item_features for c in TEXT_COLUMNS
        )
        s = self.seed
        plan: dict[str, tuple[float, Any]] = {
            "collaborative": (
                p["w_collaborative"],
                lambda: registered(p["collaborative"], s, data.n_items),
            ),
            "prod2vec": (p["w_prod2vec"], lambda: Prod2Vec(seed=s)),
            "content": (p["w_content"] if has_text else 0.0, lambda: ContentTfidf(seed=s)),
            "popular": (p["w_popular"], lambda: RecentPopular(seed=s)),
        }
        self.components: dict[str, Recommender] = {}
        self.weights: dict[str, float] = {}
        total = sum(1 for w, _ in plan.values() if w > 0) + 1
        for role, (weight, make) in plan.items():
            if weight > 0:
                self.components[role] = make().fit(data)
                self.weights[role] = float(weight)
                if on_progress is not None:
                    on_progress(len(self.components), total)
        segmented = data.user_features is not None and "segment" in data.user_features
        self.fallback: Recommender = (
            SegmentPopular(seed=s) if segmented else RecentPopular(seed=s)
        ).fit(data)
        self.history = np.diff(data.matrix.indptr).astype(np.int64)
        self.new_items = np.diff(sparse.csc_matrix(data.matrix).indptr) == 0
        self.resolved = {role: m.name for role, m in self.components.items()}
        if on_progress is not None:
            on_progress(total, total)

    # ------------------------------------------------------------------ scoring

    def user_weights(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """Per component, the weight of each given user (the cold-start shift applied)."""
        p = self.params
        h = self.history[users].astype(np.float64)
        min_history = max(int(p["min_history"]), 1)
        trust = np.minimum(h / min_history, 1.0)
        out = {}
        for role, weight in self.weights.items():
            if role in PERSONAL:
                out[role] = weight * trust
            else:
                out[role] = weight * (1.0 + float(p["cold_boost"]) * (1.0 - trust))
        return out

    def component_scores(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """Per component, its normalised (0..1) and weighted score block for ``users``."""
        mask = self.data.matrix[users]
        weights = self.user_weights(users)
        out = {}
        for role, model in self.components.items():
            normed = minmax_rows(model.scores(users), mask)
            out[role] = normed * weights[role][:, None].astype(np.float32)
        if "content" in out and self.new_items.any():
            # New products: only content knows them.
            total = sum(weights.values())[:, None].astype(np.float32)
            content = out["content"] / np.maximum(weights["content"][:, None], 1e-12)
            boost = float(self.params["new_item_weight"]) * total * content[:, self.new_items]
            for role in out:
                out[role][:, self.new_items] = boost if role == "content" else 0.0
        return out

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        parts = self.component_scores(users)
        blended = np.zeros((len(users), self.data.n_items), dtype=np.float32)
        for part in parts.values():
            blended += part
        cold = self.history[users] == 0
        if cold.any():
            blended[cold] = self.fallback.scores(users[cold])
        return blended

    # ------------------------------------------------------------------ explanations

    def contributions(self, user: int, item: int) -> dict[str, float]:
        """Each component's weighted, normalised score for (user, item); for a customer
        without history, {"fallback": the fallback model's score}."""
        self._check_fitted()
        users = np.asarray([user], dtype=np.int64)
        if self.history[user] == 0:
            return {"fallback": float(self.fallback.scores(users)[0, item])}
        return {role: float(part[0, item]) for role, part in self.component_scores(users).items()}

    def explain_component(self, user: int, item: int, n: int = 2) -> tuple[str, list]:
        """(the component contributing most to ``item``'s score, that component's
        explanation: [(history item, weight)]). Popularity components explain with []."""
        parts = self.contributions(user, item)
        role = max(parts, key=lambda r: (parts[r], r))
        if role in ("fallback", "popular"):
            return role, []
        return role, self.components[role].explain(user, item, n)

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        return self.explain_component(user, item, n)[1]

    def reason_for(self, user: int, item: int, n: int = 2) -> dict[str, Any]:
        """A structured reason for recommending ``item`` to ``user`` (kinds of `reasons`).

        kind: "bought_together" (a collaborative component; items = the history items that
        support it), "similar_to" (content: items = history items with similar text),
        "popular_segment" (no history, segment best sellers; segment = its label),
        "new_arrival" (a product without sales, scored by content; category = its category
        or head noun, items = similar history items), "popular" (popularity).
        component: the blend component (or "fallback"). buyers: distinct buyers of the
        item in training (in the customer's segment for "popular_segment"); days: None,
        as the counts cover all of training, not a recent window.
        """
        self._check_fitted()
        column = self.data.matrix[:, [item]]
        out: dict[str, Any] = {
            "kind": kinds.POPULAR,
            "items": [],
            "component": "fallback",
            "buyers": int(column.nnz),
            "days": None,
        }
        if self.history[user] == 0:
            if isinstance(self.fallback, SegmentPopular):
                code = self.fallback.user_segment[user]
                peers = self.fallback.user_segment == code
                out.update(
                    kind=kinds.POPULAR_SEGMENT,
                    segment=str(self.fallback.segments[code]),
                    buyers=int(column[peers].nnz),
                )
            return out
        if self.new_items[item] and "content" in self.components:
            items = self.components["content"].explain(user, item, n)
            out.update(
                kind=kinds.NEW_ARRIVAL,
                component="content",
                items=[h for h, _ in items],
                category=self._category(item),
            )
            return out
        # The strongest component that can say why; popularity always can.
        parts = self.contributions(user, item)
        for role in sorted(parts, key=lambda r: (-parts[r], r)):
            if role == "popular":
                out["component"] = role
                return out
            items = self.components[role].explain(user, item, n)
            if items:
                kind = kinds.SIMILAR_TO if role == "content" else kinds.BOUGHT_TOGETHER
                out.update(kind=kind, component=role, items=[h for h, _ in items])
                return out
        return out

    def _category(self, item: int) -> str | None:
        features = self.data.item_features
        if features is None:
            return None
        if "category" in features and isinstance(features["category"].iloc[item], str):
            return features["category"].iloc[item]
        words = tokenize(str(features["title"].iloc[item])) if "title" in features else []
        return words[-1] if words else None
