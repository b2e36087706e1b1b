"""EASE against a direct numpy solve, its size guard; RP3β/P3α against the walk by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from recommendations.algorithms.graph import P3Alpha, RP3Beta, random_walk_matrix
from recommendations.algorithms.linear import EASE, ease_weights

from .test_rec_neighbors import X4, dataset, planted


def random_binary(n_users: int = 40, n_items: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n_users, n_items)) < 0.3).astype(np.float64)


def test_ease_equals_the_closed_form_and_the_constrained_regression():
    x = random_binary()
    lam = 3.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    expected = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    got = ease_weights(sparse.csr_matrix(x), l2=lam, dtype="float64")
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # Column j is the ridge regression of item j on the other items.
    j = 4
    others = np.delete(np.arange(x.shape[1]), j)
    a = x[:, others]
    ridge = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ x[:, j])
    np.testing.assert_allclose(got[others, j], ridge, atol=1e-10)
    assert np.all(np.diag(got) == 0)
    single = ease_weights(sparse.csr_matrix(x), l2=lam, dtype="float32")
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, expected, atol=1e-4)


def test_ease_dropout_is_a_per_item_penalty():
    x = random_binary(seed=1)
    lam, drop = 2.0, 0.25
    gram = x.T @ x
    p = np.linalg.inv(gram + np.diag(lam + drop / (1 - drop) * np.diag(gram)))
    expected = np.eye(len(p)) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    got = ease_weights(sparse.csr_matrix(x), l2=lam, dropout=drop, dtype="float64")
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_ease_scores_and_refuses_large_catalogs():
    data = dataset(X4)
    model = EASE(l2=1.0).fit(data)
    binary = (X4 > 0).astype(np.float32)
    np.testing.assert_allclose(
        model.scores(np.arange(4)), binary @ model.item_matrix, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="max_items"):
        EASE(max_items=3).fit(data)
    with pytest.raises(ValueError):
        ease_weights(sparse.csr_matrix(X4), l2=1.0, dtype="float16")


def test_ease_explain_uses_the_learned_weights():
    data, _ = planted()
    model = EASE().fit(data)
    user = 1
    item = int(model.recommend([user], k=1).items[0, 0])
    reasons = model.explain(user, item, n=3)
    history = set(data.matrix[user].indices.tolist())
    assert reasons and all(h in history for h, _ in reasons)
    weights = [w for _, w in reasons]
    assert weights == sorted(weights, reverse=True)


def walk_by_hand(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    user_to_item = (x / x.sum(axis=1, keepdims=True)) ** alpha
    item_to_user = (x.T / x.T.sum(axis=1, keepdims=True)) ** alpha
    w = item_to_user @ user_to_item / (x > 0).sum(axis=0)[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    return w


def test_random_walk_matrix_by_hand():
    x = (X4 > 0).astype(np.float64)
    got = random_walk_matrix(sparse.csr_matrix(x), alpha=0.8, beta=0.4, neighbors=4).toarray()
    np.testing.assert_allclose(got, walk_by_hand(x, 0.8, 0.4), rtol=1e-5)
    # Item 0 -> user 0 (1/3) -> item 1 (1/2), and -> user 1 (1/3) -> item 1 (1/3): 5/18.
    plain = random_walk_matrix(sparse.csr_matrix(x), alpha=1.0, beta=0.0, neighbors=4)
    assert plain.toarray()[0, 1] == pytest.approx(5 / 18, rel=1e-6)
    pruned = random_walk_matrix(sparse.csr_matrix(x), neighbors=1).toarray()
    assert (np.count_nonzero(pruned, axis=1) <= 1).all()


def test_rp3beta_with_beta_zero_is_p3alpha():
    data, _ = planted()
    params = {"alpha": 0.9, "neighbors": 25, "half_life_days": None}
    rp3 = RP3Beta(beta=0.0, **params).fit(data)
    p3 = P3Alpha(**params).fit(data)
    np.testing.assert_allclose(rp3.item_matrix.toarray(), p3.item_matrix.toarray())
    users = np.arange(30)
    np.testing.assert_array_equal(rp3.recommend(users).items, p3.recommend(users).items)


def test_rp3beta_penalises_popular_destinations():
    data, _ = planted()
    buyers = np.diff(data.matrix.tocsc().indptr)
    popular = np.argsort(-buyers)[:5]
    share = {}
    for beta in (0.0, 0.6):
        w = RP3Beta(beta=beta, normalize=True, half_life_days=None).fit(data).item_matrix
        share[beta] = w[:, popular].sum() / w.sum()
    assert share[0.6] < share[0.0]


def test_ease_weights_come_back_in_c_order_without_a_copy():
    x = sparse.csr_matrix(random_binary(n_users=50, n_items=30, seed=3))
    weights = ease_weights(x, l2=5.0)
    assert weights.flags.c_contiguous and weights.base is not None  # a view, not a copy
    gram = (x.T @ x).toarray() + 5.0 * np.eye(30)
    p = np.linalg.inv(gram)
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-3, atol=1e-5)
