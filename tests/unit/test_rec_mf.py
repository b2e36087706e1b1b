"""Matrix factorization (ALS with conjugate gradient, BPR) and the shared exact top-k."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from recommendations.algorithms import registry
from recommendations.algorithms.base import Dataset, Recommender, sample_params, topk_rows
from recommendations.algorithms.mf import (
    ALS,
    BPR,
    als_loss,
    least_squares_cg,
    least_squares_exact,
)
from recommendations.algorithms.popular import MostPopular


def dataset(matrix: sparse.spmatrix | np.ndarray) -> Dataset:
    csr = sparse.csr_matrix(matrix, dtype=np.float32)
    return Dataset(csr, np.arange(csr.shape[0]), np.arange(csr.shape[1]))


def random_counts(n_users: int = 30, n_items: int = 40, density: float = 0.2, seed: int = 1):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.integers(1, 4, (n_users, n_items))
    dense[3] = 0  # a user without interactions
    return sparse.csr_matrix(dense.astype(np.float32))


def planted(n_groups: int = 3, per_group: int = 100, block: int = 20, seed: int = 7):
    """Users of community g buy from item block g (skewed within the block) plus three of ten
    globally popular items. Per user, two of their block items are held out as targets."""
    rng = np.random.default_rng(seed)
    n_items = n_groups * block + 10
    popular = np.arange(n_groups * block, n_items)
    pop_p = 1.0 / np.arange(1, 11)
    in_block_p = 1.0 / np.arange(1, block + 1) ** 0.5
    rows, cols, held = [], [], []
    for user in range(n_groups * per_group):
        group = user % n_groups
        chosen = rng.choice(block, size=8, replace=False, p=in_block_p / in_block_p.sum())
        chosen = group * block + chosen
        noise = rng.choice(popular, size=3, replace=False, p=pop_p / pop_p.sum())
        held.append(chosen[:2])
        items = np.concatenate([chosen[2:], noise])
        rows += [user] * len(items)
        cols += items.tolist()
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_groups * per_group, n_items)
    )
    return dataset(matrix), np.array(held)


def ndcg_at(items: np.ndarray, held: np.ndarray, k: int = 5) -> float:
    hits = np.array([[item in h for item in row[:k]] for row, h in zip(items, held, strict=True)])
    dcg = (hits / np.log2(np.arange(2, k + 2))).sum(axis=1)
    ideal = (1.0 / np.log2(np.arange(2, held.shape[1] + 2))).sum()
    return float(np.mean(dcg / ideal))


# ------------------------------------------------------------------------------ ALS core


def test_cg_half_sweep_matches_the_direct_solve_of_the_normal_equations():
    counts = random_counts()
    conf = ALS(alpha=5.0).confidence_matrix(counts)
    rng = np.random.default_rng(0)
    items = rng.standard_normal((40, 6)).astype(np.float32)
    start = rng.standard_normal((30, 6)).astype(np.float32)
    exact = least_squares_exact(conf, items, 0.1)
    # By hand for one user: (YᵀY + λI + Yᵀ(C−I)Y) x = YᵀCp.
    u = 0
    cols = counts[u].indices
    c = 1.0 + 5.0 * counts[u].data
    y = items.astype(np.float64)
    a = y.T @ y + 0.1 * np.eye(6) + (y[cols].T * (c - 1)) @ y[cols]
    np.testing.assert_allclose(exact[u], np.linalg.solve(a, y[cols].T @ c), rtol=1e-4, atol=1e-5)
    # CG is exact after f steps (up to float32 rounding); three steps already get close.
    full = least_squares_cg(conf, items, start, 0.1, steps=10)
    np.testing.assert_allclose(full, exact, atol=2e-4)
    assert np.all(full[3] == 0)  # no interactions: zero vector
    three = least_squares_cg(conf, items, start, 0.1, steps=3)
    assert np.abs(three - exact).max() < np.abs(start - exact).max()
    # Chunking and threads change nothing but float32 rounding (an OpenBLAS may pick other
    # kernels for other block shapes, so bit equality depends on its version).
    split = least_squares_cg(conf, items, start, 0.1, steps=3, workers=2, chunk_nnz=17)
    np.testing.assert_allclose(split, three, rtol=1e-5, atol=1e-6)


def test_loss_matches_the_dense_objective_and_decreases_every_iteration():
    counts = random_counts(seed=2)
    model = ALS(factors=5, regularization=0.3, alpha=4.0, seed=3)
    conf = model.confidence_matrix(counts)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 5)).astype(np.float32)
    y = rng.standard_normal((40, 5)).astype(np.float32)
    c = np.ones((30, 40))
    c[counts.nonzero()] = conf.data
    p = (counts.toarray() > 0).astype(float)
    dense = (c * (p - x.astype(float) @ y.T.astype(float)) ** 2).sum() + 0.3 * (
        (x.astype(float) ** 2).sum() + (y.astype(float) ** 2).sum()
    )
    assert als_loss(conf, x, y, 0.3) == pytest.approx(dense, rel=1e-9)
    data = dataset(counts)
    losses = [
        ALS(factors=5, regularization=0.3, alpha=4.0, iterations=it, seed=3)
        .fit(data)
        .training_loss()
        for it in range(1, 7)
    ]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_fits_are_deterministic_for_a_seed(cls):
    data, _ = planted(per_group=30)
    params = {"iterations": 3} if cls is ALS else {"epochs": 3}
    a = cls(seed=5, factors=8, **params).fit(data)
    b = cls(seed=5, factors=8, **params).fit(data)
    c = cls(seed=6, factors=8, **params).fit(data)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    assert not np.array_equal(a.item_factors, c.item_factors)


# ------------------------------------------------------------------------------ lists


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_recommend_excludes_bought_items_and_agrees_with_the_base_implementation(cls):
    data, _ = planted(per_group=40)
    model = cls(seed=1, factors=8).fit(data)
    users = np.array([5, 0, 119, 3, 3, 64])
    top = model.recommend(users, k=7)
    base = Recommender.recommend(model, users, k=7)
    np.testing.assert_array_equal(top.items, base.items)
    np.testing.assert_allclose(top.scores, base.scores, rtol=1e-5, atol=1e-6)
    for user, row in zip(users, top.items, strict=True):
        assert not set(row) & set(data.matrix[user].indices)
    np.testing.assert_allclose(top.scores, np.take_along_axis(model.scores(users), top.items, 1))
    # Nothing excluded, a custom exclusion matrix, and an allowed mask.
    allowed = np.ones(data.n_items, dtype=bool)
    allowed[::2] = False
    for kwargs in ({"exclude": False}, {"exclude": data.matrix[::-1]}, {"allowed": allowed}):
        ours = model.recommend(users, k=7, **kwargs)
        np.testing.assert_array_equal(
            ours.items, Recommender.recommend(model, users, 7, **kwargs).items
        )
    assert np.all(model.recommend(users, k=7, allowed=allowed).items % 2 == 1)


def test_users_without_history_still_get_full_lists():
    counts = random_counts()
    model = ALS(factors=4, iterations=2).fit(dataset(counts))
    assert np.all(model.user_factors[3] == 0)
    top = model.recommend([3], k=5)
    np.testing.assert_array_equal(top.items[0], np.arange(5))  # all tied: lowest indices
    bpr = BPR(factors=4, epochs=5).fit(dataset(counts))
    assert np.all(bpr.user_factors[3] == 0)  # ranked by the learned item bias alone
    np.testing.assert_array_equal(
        bpr.recommend([3], k=5).items[0], np.argsort(-bpr.item_bias, kind="stable")[:5]
    )
    empty = dataset(sparse.csr_matrix((4, 6), dtype=np.float32))
    for cls in (ALS, BPR):
        fitted = cls(factors=3).fit(empty)
        assert fitted.recommend([0], k=2).items.shape == (1, 2)
        assert fitted.explain(0, 1) == []


@pytest.mark.parametrize(
    "model", [ALS(factors=16, regularization=1.0, iterations=10), BPR(factors=16, epochs=40)]
)
def test_mf_beats_most_popular_on_planted_communities(model):
    data, held = planted()
    users = np.arange(data.n_users)
    baseline = ndcg_at(MostPopular().fit(data).recommend(users, 5).items, held)
    ours = ndcg_at(model.fit(data).recommend(users, 5).items, held)
    assert ours > baseline + 0.15, (ours, baseline)


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_similar_items_stay_in_their_block(cls):
    data, _ = planted()
    model = cls(seed=0, factors=16).fit(data)
    top = model.similar_items([0, 25, 45], k=5).items
    for item, row in zip([0, 25, 45], top, strict=True):
        assert item not in row
        assert np.all(row // 20 == item // 20), row


def test_als_explanations_split_the_score_over_the_history():
    data, _ = planted(per_group=30)
    model = ALS(factors=6, cg_steps=12, iterations=8, regularization=1.0).fit(data)
    user = 4
    item = int(model.recommend([user], k=1).items[0, 0])
    history = data.matrix[user].indices
    parts = model.explain(user, item, n=len(history))
    assert parts and {h for h, _ in parts} <= set(history)
    assert [w for _, w in parts] == sorted((w for _, w in parts), reverse=True)
    # Hu et al.: the weights sum to the score of the user's exact solve for the final item
    # factors (the fitted user vector comes from the sweep before, so it is close).
    weights = model._history_weights(user, history, item)
    solved = least_squares_exact(model._confidence[[user]], model.item_factors, 1.0)[0]
    assert weights.sum() == pytest.approx(float(solved @ model.item_factors[item]), rel=1e-4)
    assert weights.sum() == pytest.approx(float(model.scores([user])[0, item]), rel=0.05)


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_the_strongest_reason_comes_from_the_users_own_block(cls):
    data, _ = planted(per_group=30)
    model = cls(factors=8, regularization=1.0 if cls is ALS else 0.01).fit(data)
    in_block = 0
    for user in range(12):  # users 0, 3, 6, … belong to block 0, and so on
        top = model.recommend([user], k=20).items[0]
        item = int(top[top // 20 == user % 3][0])
        reasons = model.explain(user, item, n=2)
        in_block += reasons[0][0] // 20 == user % 3
    assert in_block >= 9


def test_registered_with_sampleable_spaces():
    assert registry.get("als") is ALS and registry.get("bpr") is BPR
    data, _ = planted(per_group=10)
    rng = np.random.default_rng(0)
    for cls in (ALS, BPR):
        params = sample_params(cls.space, rng)
        assert set(params) <= set(cls.defaults)
        quick = {"iterations": 2} if cls is ALS else {"epochs": 2}
        cls(**{**params, **quick}).fit(data).recommend([0, 1], 3)
    with pytest.raises(ValueError, match="confidence"):
        ALS(confidence="square").fit(data)


# ------------------------------------------------------------------------------ top-k


def reference_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, m = scores.shape
    items = np.full((n, k), -1)
    values = np.full((n, k), -np.inf, dtype=np.float32)
    for r in range(n):
        order = np.lexsort((np.arange(m), -scores[r]))[:k]
        order = order[np.isfinite(scores[r, order])]
        items[r, : len(order)] = order
        values[r, : len(order)] = scores[r, order]
    return items, values


def test_topk_rows_is_exact_with_ties_infinities_and_wide_rows():
    rng = np.random.default_rng(4)
    cases = 0
    for n, m, k in [(5, 7, 3), (6, 9, 12), (8, 3000, 10), (4, 5000, 25), (3, 700, 20), (0, 50, 5)]:
        for kind in range(5):
            if kind == 0:
                scores = rng.standard_normal((n, m)).astype(np.float32)
            elif kind == 1:  # heavy ties
                scores = rng.integers(0, 3, (n, m)).astype(np.float32)
            elif kind == 2:  # all equal, with a -0.0
                scores = np.zeros((n, m), dtype=np.float32)
                scores[:, m // 2] = -0.0
            elif kind == 3:  # mostly excluded
                scores = rng.standard_normal((n, m)).astype(np.float32)
                scores[rng.random((n, m)) < 0.97] = -np.inf
            else:  # sorted rows (the group bound is far from the k-th value)
                scores = np.sort(rng.standard_normal((n, m)), axis=1)[:, ::-1].astype(np.float32)
            top = topk_rows(scores, k)
            items, values = reference_topk(scores, k)
            np.testing.assert_array_equal(top.items, items)
            np.testing.assert_array_equal(top.scores, values)
            cases += 1
    assert cases == 30


def test_topk_rows_treats_nan_as_minus_infinity():
    top = topk_rows(np.array([[1, 2, np.nan, 3, 0.5]]), 2)
    assert top.items.tolist() == [[3, 1]]
    assert top.scores.tolist() == [[3.0, 2.0]]
    # Wide rows (the grouped path) and a row of NaN only.
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((3, 4000)).astype(np.float32)
    scores[0, ::7] = np.nan
    scores[1] = np.nan
    top = topk_rows(scores, 5)
    items, values = reference_topk(np.where(np.isnan(scores), -np.inf, scores), 5)
    np.testing.assert_array_equal(top.items, items)
    np.testing.assert_array_equal(top.scores, values)
    assert top.items[1].tolist() == [-1] * 5
    assert np.isnan(scores).sum() > 0  # the caller's array is left as it was
