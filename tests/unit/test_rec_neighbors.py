"""Item-kNN, user-kNN and the shared building blocks: hand-checked similarities, weighting
and decay, exclusion and explanations; and every collaborative model against most-popular
on a planted-community data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recommendations.algorithms.base import Dataset
from recommendations.algorithms.graph import RP3Beta
from recommendations.algorithms.linear import EASE
from recommendations.algorithms.neighbors import (
    ItemKNNBM25,
    ItemKNNCosine,
    ItemKNNJaccard,
    UserKNNCosine,
    UserKNNPearson,
    item_similarity,
)
from recommendations.algorithms.popular import MostPopular
from recommendations.algorithms.similarity import (
    feature_weighting,
    interaction_matrix,
    top_n_per_row,
    user_profiles,
)

START = pd.Timestamp("2024-01-01", tz="UTC")

# 4 users × 4 items, counts.
X4 = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [0, 1, 1, 1],
        [2, 0, 0, 1],
    ],
    dtype=np.float32,
)


def dataset(matrix: np.ndarray) -> Dataset:
    """A Dataset from a dense count matrix, one event per unit on day 0 (no decay effects)."""
    rows = [
        (f"u{u}", f"i{i}", START)
        for u, i in zip(*np.nonzero(matrix), strict=True)
        for _ in range(int(matrix[u, i]))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_interactions(
        frame,
        user_ids=[f"u{u}" for u in range(matrix.shape[0])],
        item_ids=[f"i{i}" for i in range(matrix.shape[1])],
    )


def manual_cosine(x: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    norms = np.linalg.norm(x, axis=0)
    sims = (x.T @ x) / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(sims, 0.0)
    return sims


# ------------------------------------------------------------------ building blocks


def test_cosine_similarity_by_hand():
    binary = (X4 > 0).astype(np.float32)
    got = item_similarity(sparse.csr_matrix(binary), neighbors=4).toarray()
    # Items 0 and 1 share users 0 and 1; |0| = sqrt(3), |1| = sqrt(3): 2/3.
    assert got[0, 1] == pytest.approx(2 / 3, rel=1e-6)
    np.testing.assert_allclose(got, manual_cosine(binary), rtol=1e-6)
    shrunk = item_similarity(sparse.csr_matrix(binary), neighbors=4, shrink=5.0).toarray()
    np.testing.assert_allclose(shrunk, manual_cosine(binary, 5.0), rtol=1e-6)


def test_jaccard_similarity_by_hand():
    binary = (X4 > 0).astype(np.float32)
    got = item_similarity(sparse.csr_matrix(binary), similarity="jaccard", neighbors=4)
    got = got.toarray()
    # Items 1 {u0,u1,u2} and 2 {u1,u2}: 2 / 3. Items 0 {u0,u1,u3} and 3 {u2,u3}: 1 / 4.
    assert got[1, 2] == pytest.approx(2 / 3, rel=1e-6)
    assert got[0, 3] == pytest.approx(1 / 4, rel=1e-6)
    assert np.all(np.diag(got) == 0)


def test_pruning_keeps_each_candidates_strongest_history_items():
    binary = (X4 > 0).astype(np.float32)
    full = manual_cosine(binary)
    pruned = item_similarity(sparse.csr_matrix(binary), neighbors=1).toarray()
    for candidate in range(4):
        column = pruned[:, candidate]
        assert np.count_nonzero(column) == 1
        assert column.max() == pytest.approx(full[:, candidate].max(), rel=1e-6)


def test_top_n_per_row_in_blocks_equals_one_block():
    rng = np.random.default_rng(3)
    dense = rng.random((37, 23)).astype(np.float32) - 0.3
    whole = top_n_per_row(lambda a, b: dense[a:b], 37, 23, 5, block_size=37).toarray()
    blocked = top_n_per_row(lambda a, b: dense[a:b], 37, 23, 5, block_size=4).toarray()
    np.testing.assert_array_equal(whole, blocked)
    assert (np.count_nonzero(whole, axis=1) <= 5).all() and (whole >= 0).all()


def test_bm25_and_tfidf_weighting_formulas():
    x = sparse.csr_matrix(X4)
    k1, b = 1.5, 0.5
    got = feature_weighting(x, "bm25", k1=k1, b=b, documents="users").toarray()
    # Documents = users (rows), terms = items: df = buyers per item, length = row sum.
    df = (X4 > 0).sum(axis=0)
    idf = np.maximum(np.log(4 / (1 + df)), 0) + 1e-6
    length = X4.sum(axis=1)
    norm = 1 - b + b * length / length.mean()
    expected = X4 * (k1 + 1) / (X4 + k1 * norm[:, None]) * idf[None, :]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    tfidf = feature_weighting(x, "tfidf", documents="users").toarray()
    np.testing.assert_allclose(tfidf, X4 * idf[None, :], rtol=1e-5)
    assert feature_weighting(x, "none") is x
    with pytest.raises(ValueError):
        feature_weighting(x, "okapi")


def decay_log() -> Dataset:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "item_id": ["x", "x", "y", "y"],
            "timestamp": [
                START,
                START + pd.Timedelta(days=10),
                START + pd.Timedelta(days=20),
                START + pd.Timedelta(days=30),
            ],
        }
    )
    return Dataset.from_interactions(frame)


def test_training_decay_counts_recent_purchases_more():
    data = decay_log()  # as_of = day 30
    binary = interaction_matrix(data, "binary", 10.0).toarray()
    # a-x last bought day 10 (two half-lives ago), a-y day 20 (one), b-y day 30.
    np.testing.assert_allclose(binary, [[0.25, 0.5], [0.0, 1.0]], rtol=1e-6)
    counts = interaction_matrix(data, "count", 10.0).toarray()
    assert counts[0, 0] == pytest.approx(0.125 + 0.25)
    assert interaction_matrix(data, "count", None).toarray()[0, 0] == 2


def test_profile_decay_is_relative_to_the_customers_last_purchase():
    data = decay_log()
    plain = interaction_matrix(data, "binary")
    profile = user_profiles(data, plain, 10.0).toarray()
    # a's last purchase is day 20: x (day 10) counts 0.5, y 1; b's only item counts 1.
    np.testing.assert_allclose(profile, [[0.5, 1.0], [0.0, 1.0]], rtol=1e-6)


# ------------------------------------------------------------------ item-kNN


def test_item_knn_scores_profile_times_similarity_and_excludes_bought():
    data = dataset(X4)
    model = ItemKNNCosine(neighbors=4, shrink=0.0).fit(data)
    binary = (X4 > 0).astype(np.float32)
    np.testing.assert_allclose(
        model.scores(np.arange(4)), binary @ manual_cosine(binary), rtol=1e-5
    )
    top = model.recommend(np.arange(4), k=4)
    for user in range(4):
        recommended = set(top.items[user][top.items[user] >= 0].tolist())
        assert recommended.isdisjoint(np.flatnonzero(X4[user]).tolist())
    # User 0 has items 0, 1; item 2 (bought with 1 by u1, u2) beats item 3.
    assert top.items[0, 0] == 2


def test_item_knn_explain_and_similar_items():
    data = dataset(X4)
    model = ItemKNNCosine(neighbors=4, shrink=0.0).fit(data)
    reasons = model.explain(0, 2)
    cos = manual_cosine((X4 > 0).astype(float))
    # User 0 has items 0 and 1; item 1 goes with item 2 more often (2 of 3 buyers) than 0.
    assert [item for item, _ in reasons] == [1, 0]
    assert [w for _, w in reasons] == pytest.approx([cos[1, 2], cos[0, 2]], rel=1e-5)
    assert model.explain(0, 2, n=1) == reasons[:1]
    similar = model.similar_items([1], k=3)
    assert similar.items[0, 0] in (0, 2) and 1 not in similar.items[0]


def test_item_knn_variants_fit_with_counts_and_weightings():
    data = dataset(X4)
    for model in (
        ItemKNNJaccard(neighbors=2),
        ItemKNNBM25(neighbors=2, values="log1p"),
        ItemKNNCosine(weighting="tfidf", values="count", normalize=True, alpha=0.7),
    ):
        scores = model.fit(data).scores(np.arange(4))
        assert scores.shape == (4, 4) and np.isfinite(scores).all()
    with pytest.raises(ValueError):
        ItemKNNCosine(similarity="dice").fit(data)


# ------------------------------------------------------------------ user-kNN


def test_user_knn_cosine_and_pearson_by_hand():
    data = dataset(X4)
    binary = (X4 > 0).astype(np.float64)
    cos = UserKNNCosine(neighbors=3, shrink=0.0, weighting="none", exponent=1.0)
    sims = cos.fit(data).neighbours(np.arange(4)).toarray()
    expected = manual_cosine(binary.T)
    expected[expected < 0] = 0
    np.testing.assert_allclose(sims, expected, rtol=1e-5)
    pearson = UserKNNPearson(neighbors=3, shrink=0.0, exponent=1.0).fit(data)
    corr = np.corrcoef(binary)
    np.fill_diagonal(corr, 0)
    np.testing.assert_allclose(
        pearson.neighbours(np.arange(4)).toarray(), np.maximum(corr, 0), rtol=1e-5, atol=1e-6
    )
    # Scores are similarity-weighted purchases of the neighbours.
    np.testing.assert_allclose(
        pearson.scores(np.arange(4)), np.maximum(corr, 0) @ binary, rtol=1e-5, atol=1e-6
    )


def test_user_knn_blocks_give_the_same_lists():
    data, _ = planted()
    model = UserKNNPearson().fit(data)
    users = np.arange(60)
    whole = model.recommend(users, k=5, block_size=1000)
    small = model.recommend(users, k=5, block_size=7)
    np.testing.assert_array_equal(whole.items, small.items)


def test_user_knn_explain_returns_history_items():
    data, _ = planted()
    model = UserKNNCosine().fit(data)
    user = 0
    item = int(model.recommend([user], k=1).items[0, 0])
    reasons = model.explain(user, item)
    assert reasons and all(data.matrix[user, h] > 0 for h, _ in reasons)


# ------------------------------------------------------------------ planted structure


def planted(n_users: int = 240, n_groups: int = 3, block: int = 15, seed: int = 7):
    """Users in community g buy from item block g, plus a few globally popular items.

    Returns the training Dataset and, per user, 2 held-out items from their block that
    they did not buy in training (the targets).
    """
    rng = np.random.default_rng(seed)
    n_items = n_groups * block + 10  # the last 10 items: popular with everyone
    popular = np.arange(n_groups * block, n_items)
    popular_p = 1.0 / np.arange(1, 11)
    popular_p /= popular_p.sum()
    rows, held = [], []
    for user in range(n_users):
        group = user % n_groups
        # Within the block, item popularity is skewed too, so counts alone do not rank well.
        block_items = np.arange(group * block, (group + 1) * block)
        p = 1.0 / np.arange(1, block + 1) ** 0.5
        chosen = rng.choice(block_items, size=8, replace=False, p=p / p.sum())
        noise = rng.choice(popular, size=3, replace=False, p=popular_p)
        held.append(chosen[:2])
        for item in np.concatenate([chosen[2:], noise]):
            day = int(rng.integers(0, 90))
            rows.append((user, item, START + pd.Timedelta(days=day)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    data = Dataset.from_interactions(
        frame, user_ids=np.arange(n_users), item_ids=np.arange(n_items)
    )
    return data, held


def hit_rate(model, data, held, k: int = 5) -> float:
    top = model.fit(data).recommend(np.arange(data.n_users), k=k).items
    return float(np.mean([np.isin(row, h).any() for row, h in zip(top, held, strict=True)]))


@pytest.mark.parametrize(
    "model",
    [
        ItemKNNCosine(),
        ItemKNNJaccard(),
        ItemKNNBM25(),
        UserKNNCosine(),
        UserKNNPearson(),
        EASE(),
        RP3Beta(),
    ],
    ids=lambda m: m.name,
)
def test_each_model_beats_most_popular_on_planted_communities(model):
    data, held = planted()
    baseline = hit_rate(MostPopular(), data, held)
    assert hit_rate(model, data, held) > baseline + 0.2
