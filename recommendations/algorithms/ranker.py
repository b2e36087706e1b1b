"""A neural re-ranker: a small MLP re-orders the candidates of a base retriever using
embedding and context features.

Two stages. A candidate generator (any registered recommender, by name; RP3β by default,
whose candidates re-rank best on Online Retail; ``"copurchase"`` or a name not registered =
the built-in popular + co-purchase generator) proposes ``n_candidates`` items per customer.
An MLP (`mlp.BinaryMLP`, two ReLU layers, standardised inputs) estimates the
probability that the customer buys each candidate next, and the candidates are sorted by
it. Items outside the candidate list keep the generator's order below every candidate.

Features of a (customer, candidate) pair (`FEATURES`):
  generator score (scaled by the customer's best) and log rank; PureSVD embedding dot
  product (truncated SVD of the row-normalised purchase matrix); TF-IDF content cosine of
  the item with the customer's text profile (0 without item text); the mean affinity of the
  customer's last basket's items to the candidate in the generator's own item × item matrix
  (RP3β's walk, EASE's weights; the pruned co-purchase cosine for other generators); item
  popularity (log buyers, log time-decayed sales,
  share in the customer's segment); item age (log days since first sale, "new" flag);
  customer's share of purchases in the item's category (the ``category`` feature, else the
  last word of the title — the head noun of English product names, "… T-LIGHT HOLDER");
  log price and log(price / the customer's median item price); customer history size, basket
  count and log days since their last purchase.

Training labels never come from test data. Inside the TRAINING data, each customer's last
active day is held out (the same "last basket" rule as the evaluation's split): the
generator and the features are fitted on the rest, a sample of the customers who bought
something new that day (``max_train_users``, seeded) gets candidates, and a candidate is a
positive if it is among those new items. Then the generator and features are refitted on
all the training data for scoring; the MLP is kept. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import StandardScaler

from . import linear
from .base import Dataset, Progress, Recommender, one_blas_thread, topk_rows
from .content import ContentTfidf, tokenize
from .graph import P3Alpha, RP3Beta
from .linear import EASE
from .mlp import BinaryMLP
from .neighbors import ItemItemModel, item_similarity
from .popular import SegmentPopular
from .vectors import NS_PER_DAY, normalize_rows

FEATURES = (
    "base_score",
    "base_log_rank",
    "svd_dot",
    "content_cos",
    "last_basket_cos",
    "log_buyers",
    "log_recent_sales",
    "segment_share",
    "log_item_age_days",
    "is_new",
    "category_share",
    "log_price",
    "log_price_ratio",
    "log_user_items",
    "log_user_baskets",
    "log_days_since_last",
)
NEW_ITEM_DAYS = 30.0
BLOCK_USERS = 512


# Co-purchase neighbours kept per item in the item×item cosine matrix (`copurchase_matrix`).
COPURCHASE_NEIGHBORS = 100


def copurchase_matrix(binary: sparse.csr_matrix, neighbors: int = COPURCHASE_NEIGHBORS):
    """Item×item co-purchase cosine of a binary users×items matrix (CSR float32): for each
    item its ``neighbors`` most similar items, plus 1 on the diagonal of every bought item.
    Computed once at fit in bounded blocks; a block of customers then scores as
    profile @ S, never through a (block × all customers) product."""
    pruned = item_similarity(binary, neighbors=neighbors)
    bought = (np.diff(sparse.csc_matrix(binary).indptr) > 0).astype(np.float32)
    return sparse.csr_matrix(pruned + sparse.diags(bought), dtype=np.float32)


class CoPurchase(Recommender):
    """Fallback candidate generator: Σ over history items of the co-purchase cosine (pruned
    to each item's COPURCHASE_NEIGHBORS nearest), plus a small popularity term (so customers
    without history get best sellers)."""

    name = "copurchase"
    defaults = {}

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        binary = sparse.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        binary.eliminate_zeros()
        binary.data[:] = 1.0
        self.binary = binary
        self.similarity = copurchase_matrix(binary)
        buyers = np.asarray(binary.sum(axis=0), dtype=np.float32).ravel()
        self.prior = 1e-3 * buyers / max(float(buyers.max()), 1.0)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        scores = (self.binary[users] @ self.similarity).toarray()
        return np.asarray(scores, dtype=np.float32) + self.prior


def make_generator(name: str, seed: int, n_items: int | None = None) -> Recommender:
    """The registered recommender ``name`` (looked up lazily) or "p3alpha" (`graph.P3Alpha`,
    not registered on its own), else CoPurchase. EASE above `linear.AUTO_MAX_ITEMS` items
    (``n_items``) becomes rp3beta: its dense item matrix."""
    from .registry import ALGORITHMS  # late: the registry imports this module

    cls = ALGORITHMS.get(name) or {P3Alpha.name: P3Alpha}.get(name)
    if cls is EASE and n_items is not None and not linear.ease_allowed(n_items):
        cls = ALGORITHMS.get(RP3Beta.name, RP3Beta)
    if cls is None or cls is NeuralRanker or name == CoPurchase.name:
        return CoPurchase(seed=seed)
    return cls(seed=seed)


def generator_item_matrix(generator: Recommender) -> sparse.csr_matrix | np.ndarray | None:
    """The item × item matrix an item-based generator scores with (history item → candidate:
    RP3β's walk, EASE's weights, item-kNN's similarities; CoPurchase's cosine), else None."""
    if isinstance(generator, ItemItemModel):
        return generator.item_matrix
    if isinstance(generator, CoPurchase):
        return generator.similarity
    return None


def holdout_last_day(data: Dataset) -> tuple[Dataset, sparse.csr_matrix]:
    """(data without each customer's last active day, CSR binary of the items bought that
    day that were new to the customer). Customers active on one day only stay whole."""
    events = data.events
    users = events["user"].to_numpy(dtype=np.int64)
    day = pd.DatetimeIndex(events["timestamp"]).asi8 // NS_PER_DAY
    last = np.full(data.n_users, np.iinfo(np.int64).min, dtype=np.int64)
    first = np.full(data.n_users, np.iinfo(np.int64).max, dtype=np.int64)
    np.maximum.at(last, users, day)
    np.minimum.at(first, users, day)
    held = (day == last[users]) & (first[users] < last[users])
    kept = events[~held].reset_index(drop=True)
    matrix = sparse.csr_matrix(
        (kept["weight"].to_numpy(dtype=np.float32), (kept["user"], kept["item"])),
        shape=data.matrix.shape,
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    inner = Dataset(
        matrix,
        data.user_ids,
        data.item_ids,
        kept,
        data.item_features,
        data.user_features,
    )
    out = events[held]
    targets = sparse.csr_matrix(
        (np.ones(len(out), dtype=np.float32), (out["user"], out["item"])),
        shape=data.matrix.shape,
    )
    targets.sum_duplicates()
    targets.data[:] = 1.0
    had = sparse.csr_matrix(matrix, copy=True)
    had.data[:] = 1.0
    targets = sparse.csr_matrix(targets - targets.multiply(had))
    targets.eliminate_zeros()
    return inner, targets


def item_categories(features: pd.DataFrame | None, n_items: int) -> np.ndarray:
    """int64 category code per item (-1 = unknown): the ``category`` column, else the last
    word of the title."""
    if features is None:
        return np.full(n_items, -1, dtype=np.int64)
    frame = features.reindex(range(n_items))
    if "category" in frame:
        values = frame["category"].fillna("").astype(str).str.strip().str.lower()
    elif "title" in frame:
        words = frame["title"].fillna("").astype(str).map(tokenize)
        values = words.map(lambda w: w[-1] if w else "")
    else:
        return np.full(n_items, -1, dtype=np.int64)
    codes, _ = pd.factorize(values)
    return np.where(values.to_numpy() == "", -1, codes).astype(np.int64)


class Context:
    """Everything the features need, computed once from one Dataset."""

    def __init__(
        self,
        data: Dataset,
        *,
        factors: int,
        recent_days: float,
        seed: int,
        basket_matrix: sparse.csr_matrix | np.ndarray | None = None,
        items_from: Context | None = None,
    ) -> None:
        """basket_matrix: items × items affinity of a history item to a candidate for the
        last-basket feature — the generator's own item matrix when it has one (no second
        item×item fit); default the pruned co-purchase cosine (`copurchase_matrix`).
        items_from: a Context of the same catalog whose features of the products alone
        (prices, categories, text vectors) are reused instead of computed again."""
        n_users, n_items = data.matrix.shape
        binary = sparse.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        binary.eliminate_zeros()
        binary.data[:] = 1.0
        self.binary = binary
        events = data.events
        users = events["user"].to_numpy(dtype=np.int64)
        items = events["item"].to_numpy(dtype=np.int64)
        stamps = pd.DatetimeIndex(events["timestamp"]).asi8
        as_of = int(stamps.max()) if len(stamps) else 0

        # Items: popularity now and overall, age, price, category.
        buyers = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
        self.log_buyers = np.log1p(buyers)
        age = (as_of - stamps) / NS_PER_DAY
        recent = np.bincount(items, weights=np.power(0.5, age / recent_days), minlength=n_items)
        self.log_recent = np.log1p(recent)
        first_sale = np.full(n_items, as_of, dtype=np.int64)
        np.minimum.at(first_sale, items, stamps)
        item_age = (as_of - first_sale) / NS_PER_DAY
        self.log_item_age = np.log1p(item_age)
        # An item never sold is new too (age 0).
        self.is_new = (item_age < NEW_ITEM_DAYS).astype(np.float64)
        features = data.item_features
        if items_from is not None:
            self.log_price, self.category = items_from.log_price, items_from.category
        else:
            price = (
                pd.to_numeric(features.reindex(range(n_items))["price"], errors="coerce")
                if features is not None and "price" in features
                else pd.Series(np.nan, index=range(n_items))
            ).to_numpy(dtype=np.float64)
            self.log_price = np.log(np.where(price > 0, price, np.nan))
            self.category = item_categories(features, n_items)

        # Users: history size, baskets, recency, median price, category shares.
        self.log_user_items = np.log1p(np.diff(binary.indptr).astype(np.float64))
        baskets = events.drop_duplicates(["user", "basket"])["user"].to_numpy(dtype=np.int64)
        self.log_user_baskets = np.log1p(np.bincount(baskets, minlength=n_users))
        last = np.full(n_users, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last, users, stamps)
        has = last > np.iinfo(np.int64).min
        since = np.where(has, as_of - last, 0) / NS_PER_DAY
        self.log_days_since = np.where(has, np.log1p(since), -1.0)
        owner = np.repeat(np.arange(n_users), np.diff(binary.indptr))
        paid = pd.Series(self.log_price[binary.indices]).groupby(owner).median()
        self.user_log_price = paid.reindex(range(n_users)).to_numpy(dtype=np.float64)
        n_cat = int(self.category.max()) + 1
        if n_cat > 0:
            known = self.category >= 0
            onehot = sparse.csr_matrix(
                (np.ones(int(known.sum())), (np.flatnonzero(known), self.category[known])),
                shape=(n_items, n_cat),
            )
            counts = (binary @ onehot).tocsr()
            self.category_share = normalize_l1(counts)
        else:
            self.category_share = None

        # The last basket of each user (events are sorted by user, time).
        last_rows = events.groupby("user", sort=True).tail(1)
        last_basket = dict(zip(last_rows["user"], last_rows["basket"], strict=True))
        is_last = events["basket"].to_numpy() == events["user"].map(last_basket).to_numpy()
        lb = events[is_last]
        self.last_basket = sparse.csr_matrix(
            (np.ones(len(lb), dtype=np.float32), (lb["user"], lb["item"])),
            shape=(n_users, n_items),
        )
        self.last_basket.sum_duplicates()
        self.last_basket.data[:] = 1.0
        self.last_basket = sparse.csr_matrix(normalize_l1(self.last_basket), dtype=np.float32)
        self.basket_matrix = copurchase_matrix(binary) if basket_matrix is None else basket_matrix

        # Embeddings: PureSVD of the row-normalised purchase matrix.
        rows = normalize_rows(binary)
        k = max(1, min(factors, min(n_users, n_items) - 1))
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=seed)
        with one_blas_thread():  # thin matrices: threads only synchronise
            svd.fit(rows)
        self.item_factors = svd.components_.astype(np.float32)  # k × items
        self.user_factors = np.asarray(rows @ self.item_factors.T, dtype=np.float32)

        # Text profile (TF-IDF) and segment popularity.
        self.content = None
        if items_from is not None and items_from.content is not None:
            self.content = items_from.content.with_history(data)
        elif features is not None and any(c in features for c in ("title", "description")):
            self.content = ContentTfidf(seed=seed).fit(data)
        self.segment = None
        if data.user_features is not None and "segment" in data.user_features:
            self.segment = SegmentPopular(seed=seed).fit(data)
        self.buyer_share = (buyers / max(n_users, 1)).astype(np.float32)

    def features(self, users: np.ndarray, cands: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(len(users) · n_cand, len(FEATURES)) float32 for candidate matrix ``cands``
        (users × n_cand item indices) with generator scores ``base`` (same shape)."""
        n_users, n_cand = cands.shape
        rows = np.repeat(np.arange(n_users), n_cand)
        u = users[rows]
        i = cands.ravel()
        out = np.zeros((len(i), len(FEATURES)), dtype=np.float32)
        base = np.where(np.isfinite(base), base, 0.0)
        top = np.maximum(np.abs(base[:, :1]), 1e-12)
        out[:, 0] = (base / top).ravel()
        out[:, 1] = np.log1p(np.tile(np.arange(n_cand), n_users))
        out[:, 2] = np.einsum("nk,kn->n", self.user_factors[u], self.item_factors[:, i])
        if self.content is not None:
            text = self.content.scores(users)
            out[:, 3] = np.take_along_axis(text, cands, axis=1).ravel()
        basket = self.last_basket[users] @ self.basket_matrix
        basket = basket.toarray() if sparse.issparse(basket) else np.asarray(basket)
        out[:, 4] = np.take_along_axis(basket, cands, axis=1).ravel()
        out[:, 5] = self.log_buyers[i]
        out[:, 6] = self.log_recent[i]
        if self.segment is not None:
            seg = self.segment.scores(users)
            out[:, 7] = np.take_along_axis(seg, cands, axis=1).ravel()
        else:
            out[:, 7] = self.buyer_share[i]
        out[:, 8] = self.log_item_age[i]
        out[:, 9] = self.is_new[i]
        if self.category_share is not None:
            cat = self.category[i]
            share = np.asarray(self.category_share[u, np.maximum(cat, 0)], dtype=np.float32).ravel()
            out[:, 10] = np.where(cat >= 0, share, 0.0)
        out[:, 11] = np.nan_to_num(self.log_price[i], nan=0.0)
        ratio = self.log_price[i] - self.user_log_price[u]
        out[:, 12] = np.nan_to_num(ratio, nan=0.0)
        out[:, 13] = self.log_user_items[u]
        out[:, 14] = self.log_user_baskets[u]
        out[:, 15] = self.log_days_since[u]
        return out


def normalize_l1(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """Rows scaled to sum 1 (empty rows stay empty)."""
    csr = sparse.csr_matrix(matrix, dtype=np.float64)
    sums = np.asarray(csr.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / sums) @ csr)


def candidates(
    generator: Recommender, users: np.ndarray, exclude: sparse.csr_matrix | None, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all scores with excluded items at -inf, top-n items, their scores) for ``users``;
    ``exclude`` (all users × items, or None = nothing) is what the lists leave out."""
    scores = np.array(generator.scores(users, exclude=exclude), dtype=np.float32)
    if exclude is not None:
        sub = exclude[users]
        rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
        scores[rows, sub.indices] = -np.inf
    top = topk_rows(scores, n)
    return scores, top.items, top.scores


class NeuralRanker(Recommender):
    """MLP re-ranking of a generator's candidates; see the module docstring.

    candidates: the generator's registered name (or "p3alpha"). n_candidates: list length
    re-ranked. hidden: width of the first hidden layer (the second is half). alpha: L2
    penalty. learning_rate, batch_size, max_iter (epochs): the MLP's training.
    max_train_users: customers sampled for training. negatives: the share of their
    non-bought candidates kept as training rows (all positives are kept): about 3 % of the
    candidates are bought, and a quarter of the rest teaches the MLP as much at a quarter of
    the cost — subsampling negatives shifts a logistic model's scores by a constant, which
    leaves each customer's order alone. factors: SVD embedding size. recent_days: half-life
    of the "recent sales" popularity.
    """

    name = "ranker"
    defaults = {
        "candidates": "rp3beta",
        "n_candidates": 100,
        "hidden": 32,
        "alpha": 1e-4,
        "learning_rate": 3e-3,
        "max_iter": 10,
        "batch_size": 512,
        "max_train_users": 2000,
        "negatives": 0.25,
        "factors": 32,
        "recent_days": 30.0,
    }
    space = {
        # Sparse item-item generators only: the ranker fits its generator twice, and EASE's
        # dense O(n_items³) fit, doubled, made it the slowest model to fit (~3× cornac's
        # EASE on Online Retail) — EASE remains a model of its own and the hybrid's part.
        "candidates": ["item_knn_cosine", "rp3beta", "p3alpha"],
        # At most the default's cost: 200 candidates or a 64-wide MLP would double the
        # scoring and training work of the model that is already the costliest.
        "n_candidates": [50, 100],
        "hidden": [16, 32],
        "alpha": ("log", 1e-5, 1e-2),
        "learning_rate": ("log", 1e-3, 1e-2),
        "factors": [16, 32, 64],
        "recent_days": ("log", 7.0, 180.0),
    }
    needs = ("events",)

    def _context(
        self, data: Dataset, generator: Recommender, items_from: Context | None = None
    ) -> Context:
        return Context(
            data,
            factors=int(self.params["factors"]),
            recent_days=float(self.params["recent_days"]),
            seed=self.seed,
            basket_matrix=generator_item_matrix(generator),
            items_from=items_from,
        )

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        n_cand = int(p["n_candidates"])
        inner, targets = holdout_last_day(data)
        users = np.flatnonzero(np.diff(targets.indptr) > 0)
        rng = np.random.default_rng(self.seed)
        if len(users) > int(p["max_train_users"]):
            users = np.sort(rng.choice(users, size=int(p["max_train_users"]), replace=False))
        self.training_users = len(users)
        x_parts, y_parts = [], []
        context = None
        if len(users):
            generator = make_generator(p["candidates"], self.seed, data.n_items).fit(inner)
            context = self._context(inner, generator)
            for start in range(0, len(users), BLOCK_USERS):
                block = users[start : start + BLOCK_USERS]
                _, items, scores = candidates(generator, block, inner.matrix, n_cand)
                items, scores = _fill(items, scores)
                valid = np.isfinite(scores).ravel()
                x_parts.append(context.features(block, items, scores)[valid])
                hit = np.asarray(targets[block[:, None], items].todense()).ravel() > 0
                y_parts.append(hit[valid])
            del generator
        if on_progress is not None:
            on_progress(1, 3)
        x = np.concatenate(x_parts) if x_parts else np.zeros((0, len(FEATURES)), np.float32)
        y = np.concatenate(y_parts) if y_parts else np.zeros(0, bool)
        if float(p["negatives"]) < 1.0:
            keep = y | (rng.random(len(y)) < float(p["negatives"]))
            x, y = x[keep], y[keep]
        self.positives, self.training_rows = int(y.sum()), len(y)
        self.scaler = StandardScaler().fit(x) if len(x) else None
        if self.positives >= 5 and self.positives < len(y):
            # Early stopping would watch a held-out loss that on ~3 % positives stops at
            # once; the fixed budget of epochs and the L2 penalty regularise instead.
            self.mlp = BinaryMLP(
                hidden=(int(p["hidden"]), max(2, int(p["hidden"]) // 2)),
                alpha=float(p["alpha"]),
                learning_rate=float(p["learning_rate"]),
                batch_size=int(p["batch_size"]),
                epochs=int(p["max_iter"]),
                seed=self.seed,
            ).fit(self.scaler.transform(x), y)
        else:
            self.mlp = None  # too little signal: keep the generator's order
        if on_progress is not None:
            on_progress(2, 3)
        self.generator = make_generator(p["candidates"], self.seed, data.n_items).fit(data)
        # The products' own features (prices, categories, text) are the same as inside.
        self.context = self._context(data, self.generator, items_from=context)
        del context
        if on_progress is not None:
            on_progress(3, 3)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return self._scores_for(users, self.data.matrix)

    def _scores_for(self, users: np.ndarray, excluded: sparse.csr_matrix | None) -> np.ndarray:
        """Candidates are drawn from the items not ``excluded`` (``recommend(exclude=…)``,
        the rules' exclude_bought): with nothing excluded, bought items compete too."""
        n_cand = int(self.params["n_candidates"])
        scores, items, top = candidates(self.generator, users, excluded, n_cand)
        if self.mlp is None:
            return scores
        # Below every candidate (whose scores are probabilities in [0, 1]): the generator's
        # order, squashed into [-2, -1], in place; excluded items stay -inf.
        finite = np.isfinite(scores)
        low = np.min(scores, axis=1, where=finite, initial=np.inf, keepdims=True)
        high = np.max(scores, axis=1, where=finite, initial=-np.inf, keepdims=True)
        out = scores
        out -= np.where(np.isfinite(low), low, 0.0).astype(np.float32)
        out /= np.where(high > low, high - low, 1.0).astype(np.float32)
        out -= 2.0
        items, top = _fill(items, top)
        x = self.context.features(users, items, top)
        prob = self.mlp.predict_proba(self.scaler.transform(x))
        prob = prob.reshape(items.shape)
        valid = np.isfinite(top)
        rows = np.repeat(np.arange(len(users)), items.shape[1]).reshape(items.shape)
        out[rows[valid], items[valid]] = prob[valid]
        return out

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        """The generator's explanation (the MLP only re-orders its candidates)."""
        self._check_fitted()
        return self.generator.explain(user, item, n)

    def similar_items(self, items, k: int = 10):
        self._check_fitted()
        return self.generator.similar_items(items, k)


def _fill(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Padding (-1 / -inf, when fewer candidates exist) → item 0 with score -inf, so the
    feature lookups stay in range; callers drop those entries by their -inf score."""
    return np.where(items < 0, 0, items), scores
