"""The neural ranker and the hybrid: training labels from inside train, determinism,
exclusion, planted communities, and the hybrid's cold-start fallbacks and reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recommendations.algorithms.base import Dataset
from recommendations.algorithms.graph import P3Alpha
from recommendations.algorithms.hybrid import REASON_KINDS, Hybrid, minmax_rows
from recommendations.algorithms.mlp import BinaryMLP
from recommendations.algorithms.popular import MostPopular
from recommendations.algorithms.ranker import (
    FEATURES,
    Context,
    CoPurchase,
    NeuralRanker,
    holdout_last_day,
    item_categories,
)
from recommendations.algorithms.registry import ALGORITHMS

from .rec_planted import BLOCK, N_GROUPS, START, block_title, hit_rate, planted


def two_days() -> Dataset:
    """u0: a, b on day 0; b, c on day 3. u1: a on day 1 only."""
    rows = [
        ("u0", "a", START),
        ("u0", "b", START),
        ("u0", "b", START + pd.Timedelta(days=3)),
        ("u0", "c", START + pd.Timedelta(days=3)),
        ("u1", "a", START + pd.Timedelta(days=1)),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_interactions(frame, user_ids=["u0", "u1"], item_ids=["a", "b", "c"])


# ------------------------------------------------------------------------ ranker


def test_holdout_takes_each_customers_last_day_and_keeps_new_items_as_labels():
    inner, targets = holdout_last_day(two_days())
    np.testing.assert_array_equal(inner.matrix.toarray(), [[1, 1, 0], [1, 0, 0]])
    # b was bought before: not a label; c is new. u1 has one day only: no labels.
    np.testing.assert_array_equal(targets.toarray(), [[0, 0, 1], [0, 0, 0]])
    assert inner.events["timestamp"].max() < START + pd.Timedelta(days=3)


def test_categories_come_from_the_category_column_else_the_titles_last_word():
    with_category = pd.DataFrame({"category": ["Mugs", "mugs", None], "title": ["x", "y", "z"]})
    np.testing.assert_array_equal(item_categories(with_category, 3), [0, 0, -1])
    titles = pd.DataFrame({"title": ["RED MUG", "BLUE MUG", "T-LIGHT HOLDER", None]})
    np.testing.assert_array_equal(item_categories(titles, 4), [0, 0, 1, -1])
    np.testing.assert_array_equal(item_categories(None, 2), [-1, -1])


def test_ranker_beats_most_popular_and_its_own_fallback_generator():
    data, held = planted()
    baseline = hit_rate(MostPopular(), data, held)
    ranker = NeuralRanker(candidates="copurchase")
    assert hit_rate(ranker, data, held) > baseline + 0.2
    assert ranker.mlp is not None and ranker.positives > 100
    assert isinstance(ranker.generator, CoPurchase)


def test_ranker_is_deterministic_and_excludes_bought_items():
    data, _ = planted(n_users=90)
    users = np.arange(90)
    first = NeuralRanker(seed=2).fit(data)
    again = NeuralRanker(seed=2).fit(data)
    np.testing.assert_array_equal(first.scores(users), again.scores(users))
    top = first.recommend(users, k=20).items
    for user, row in zip(users, top, strict=True):
        assert not set(row) & set(data.matrix[user].indices)


def test_ranker_features_are_finite_for_every_candidate():
    data, _ = planted(n_users=60, extra_users=2)
    model = NeuralRanker(n_candidates=20).fit(data)
    users = np.array([0, 1, 60, 61])  # two without history
    scores = model.generator.scores(users)
    items = np.argsort(-scores, axis=1)[:, :20]
    x = model.context.features(users, items, np.take_along_axis(scores, items, axis=1))
    assert x.shape == (80, len(FEATURES)) and np.isfinite(x).all()


def test_ranker_uses_a_registered_generator_by_name():
    data, _ = planted(n_users=60)
    model = NeuralRanker(candidates="rp3beta").fit(data)
    assert type(model.generator) is ALGORITHMS["rp3beta"]
    # Its last-basket feature reads the generator's own item matrix (no second item fit).
    assert model.context.basket_matrix is model.generator.item_matrix
    p3 = NeuralRanker(candidates="p3alpha").fit(data)
    assert type(p3.generator) is P3Alpha and p3.generator.params["half_life_days"] is None


def test_ranker_keeps_every_positive_and_a_share_of_the_negatives():
    data, _ = planted(n_users=90)
    everything = NeuralRanker(negatives=1.0).fit(data)
    sampled = NeuralRanker(negatives=0.25).fit(data)
    assert sampled.positives == everything.positives > 0
    assert sampled.training_rows - sampled.positives < (
        0.4 * (everything.training_rows - everything.positives)
    )


def test_ranker_reuses_the_products_features_and_refits_the_customers_ones():
    data, _ = planted(n_users=60, extra_users=1)
    model = NeuralRanker().fit(data)
    fresh = Context(data, factors=32, recent_days=30.0, seed=0)
    ctx = model.context
    np.testing.assert_array_equal(ctx.category, fresh.category)
    np.testing.assert_array_equal(ctx.log_price, fresh.log_price)
    users = np.arange(data.n_users)
    np.testing.assert_allclose(ctx.content.scores(users), fresh.content.scores(users), atol=1e-6)
    np.testing.assert_array_equal(ctx.log_user_items, fresh.log_user_items)


def test_binary_mlp_learns_a_nonlinear_rule_deterministically():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0) & (x[:, 2] > -0.5)  # not linearly separable
    model = BinaryMLP(hidden=(16, 8), learning_rate=0.01, epochs=40, seed=3).fit(x, y)
    prob = model.predict_proba(x)
    assert prob.dtype == np.float32 and ((prob >= 0) & (prob <= 1)).all()
    assert ((prob > 0.5) == y).mean() > 0.95
    again = BinaryMLP(hidden=(16, 8), learning_rate=0.01, epochs=40, seed=3).fit(x, y)
    np.testing.assert_array_equal(prob, again.predict_proba(x))


# ------------------------------------------------------------------------ hybrid


def test_minmax_ignores_history_and_non_finite_scores():
    scores = np.array([[5.0, 1.0, 3.0, -np.inf], [2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    mask = sparse.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    got = minmax_rows(scores, mask)
    np.testing.assert_allclose(got[0], [2.0, 0.0, 1.0, 0.0])  # history item 0 off the scale
    np.testing.assert_array_equal(got[1], 0.0)  # flat row


def test_hybrid_beats_most_popular_and_is_deterministic():
    data, held = planted()
    baseline = hit_rate(MostPopular(), data, held)
    assert hit_rate(Hybrid(), data, held) > baseline + 0.2
    users = np.arange(20)
    np.testing.assert_array_equal(
        Hybrid(seed=1).fit(data).scores(users), Hybrid(seed=1).fit(data).scores(users)
    )


def test_customer_without_history_gets_the_segments_best_sellers():
    data, _ = planted(extra_users=1)
    cold = data.n_users - 1
    assert data.matrix[cold].nnz == 0
    model = Hybrid().fit(data)
    top = model.recommend([cold], k=5).items[0]
    expected = ALGORITHMS["popular_segment"]().fit(data).recommend([cold], k=5).items[0]
    np.testing.assert_array_equal(top, expected)
    reason = model.reason_for(cold, int(top[0]))
    assert reason["kind"] == "popular_segment" and reason["segment"] == "seg0"
    assert reason["items"] == []
    seg0 = np.flatnonzero(data.user_features["segment"].to_numpy() == "seg0")
    assert reason["buyers"] == data.matrix[seg0][:, int(top[0])].nnz > 0


def test_customer_without_history_and_segments_gets_recent_best_sellers():
    data, _ = planted(n_users=60, extra_users=1)
    data = Dataset(data.matrix, data.user_ids, data.item_ids, data.events, data.item_features)
    model = Hybrid().fit(data)
    cold = data.n_users - 1
    expected = ALGORITHMS["popular_recent"]().fit(data).recommend([cold], k=5).items[0]
    np.testing.assert_array_equal(model.recommend([cold], k=5).items[0], expected)
    reason = model.reason_for(cold, int(expected[0]))
    assert reason["kind"] == "popular" and reason["days"] is None
    assert reason["buyers"] == data.matrix[:, int(expected[0])].nnz > 0


def test_few_purchases_shift_weight_from_collaborative_to_content_and_popular():
    data, _ = planted(n_users=60)
    model = Hybrid(min_history=20, cold_boost=2.0, w_prod2vec=0.0).fit(data)
    weights = model.user_weights(np.array([0]))
    h = data.matrix[0].nnz  # 9 items < 20
    trust = h / 20
    assert weights["collaborative"][0] == pytest.approx(1.0 * trust)
    assert weights["content"][0] == pytest.approx(0.3 * (1 + 2.0 * (1 - trust)))
    full = Hybrid(min_history=3, w_prod2vec=0.0).fit(data).user_weights(np.array([0]))
    assert full["collaborative"][0] == pytest.approx(1.0)
    assert full["content"][0] == pytest.approx(0.3)


def test_new_product_is_scored_by_content_and_explained_by_its_category():
    new = 55
    data, _ = planted(extra_items={new: (block_title(0, 3), "cat0")})
    model = Hybrid(new_item_weight=1.0).fit(data)
    parts = model.component_scores(np.array([0, 1]))
    assert parts["collaborative"][:, new].max() == 0.0
    scores = model.scores([0, 1])
    assert scores[0, new] > 0.2 and scores[0, new] > scores[1, new]
    assert new in model.recommend([0], k=10).items[0]
    reason = model.reason_for(0, new)
    assert reason["kind"] == "new_arrival" and reason["category"] == "cat0"
    assert reason["items"] and all(data.matrix[0, h] > 0 for h in reason["items"])
    assert all(h // BLOCK == 0 for h in reason["items"])


def test_explanations_point_at_real_history_items():
    data, _ = planted()
    model = Hybrid().fit(data)
    for user in (0, 1, 2):
        for item in model.recommend([user], k=5).items[0]:
            role, items = model.explain_component(user, int(item))
            contributions = model.contributions(user, int(item))
            assert role == max(contributions, key=contributions.get)
            assert model.explain(user, int(item)) == items
            reason = model.reason_for(user, int(item))
            assert reason["kind"] in REASON_KINDS
            for h in reason["items"]:
                assert data.matrix[user, h] > 0 and h != item
            if reason["kind"] in ("bought_together", "similar_to"):
                assert reason["items"]
            if reason["items"] and item < N_GROUPS * BLOCK:  # explained by its own block
                assert any(h // BLOCK == item // BLOCK for h in reason["items"])


def test_components_with_zero_weight_are_not_fitted():
    data, _ = planted(n_users=60)
    model = Hybrid(w_prod2vec=0.0, w_content=0.0).fit(data)
    assert set(model.components) == {"collaborative", "popular"}


# ---------------------------------------------------- exclusion, co-purchase, EASE size


def test_ranker_follows_recommend_exclude_false():
    data, _ = planted(n_users=90)
    model = NeuralRanker(seed=1, candidates="copurchase", n_candidates=30).fit(data)
    assert model.mlp is not None
    users = np.arange(10)
    history = [data.matrix[u].indices for u in users]
    # Default: the users' own items never score.
    default = model.scores(users)
    assert all(np.isneginf(default[r, h]).all() for r, h in enumerate(history))
    # Nothing excluded: their own items compete like any other.
    unfiltered = model.scores(users, exclude=False)
    assert all(np.isfinite(unfiltered[r, h]).all() for r, h in enumerate(history))
    top = model.recommend(users, k=data.n_items, exclude=False).items
    for row, h in zip(top, history, strict=True):
        assert set(h) <= set(row.tolist())


def test_copurchase_scores_through_an_item_matrix_not_through_the_customers():
    data, _ = planted(n_users=60)
    model = CoPurchase().fit(data)
    assert model.similarity.shape == (data.n_items, data.n_items)
    assert not hasattr(model, "rows")  # no items × customers matrix is kept
    # Below COPURCHASE_NEIGHBORS items nothing is pruned: the old formula, exactly.
    binary = (data.matrix > 0).astype(np.float32).toarray()
    norms = np.linalg.norm(binary, axis=0)
    cols = binary / np.where(norms > 0, norms, 1.0)
    users = np.arange(20)
    expected = binary[users] @ (cols.T @ cols) + model.prior
    np.testing.assert_allclose(model.scores(users), expected, rtol=1e-5, atol=1e-6)


def test_above_the_automatic_ease_limit_hybrid_and_ranker_use_rp3beta(monkeypatch):
    from recommendations.algorithms import linear

    data, _ = planted(n_users=60)
    assert Hybrid().fit(data).resolved["collaborative"] == "ease"
    monkeypatch.setattr(linear, "AUTO_MAX_ITEMS", data.n_items - 1)
    hybrid = Hybrid().fit(data)
    assert hybrid.resolved["collaborative"] == "rp3beta"
    ranker = NeuralRanker(candidates="ease", max_iter=2).fit(data)
    assert type(ranker.generator) is ALGORITHMS["rp3beta"]
