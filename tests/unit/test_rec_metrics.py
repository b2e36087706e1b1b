"""Ranking and beyond-accuracy metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recommendations.algorithms.base import Dataset
from recommendations.evaluation import metrics
from recommendations.evaluation.scoring import history_topk, score_buy_again, score_lists
from recommendations.evaluation.splits import make_split

L3, L5 = math.log2(3), math.log2(5)


def _targets(rows: list[list[int]], n_items: int = 10) -> sparse.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.int64)
    return sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(rows), n_items)
    )


# Row 0: list 3,1,7,2 vs targets {1,2,9}: hits at ranks 2 and 4.
# Row 1: list 5 (then padding) vs {5}: hit at rank 1.
# Row 2: list 0,1,2,3 vs {8}: no hit.  Row 3: no targets -> not scored (NaN).
ITEMS = np.array([[3, 1, 7, 2], [5, -1, -1, -1], [0, 1, 2, 3], [0, 1, 2, 3]])
TARGETS = _targets([[1, 2, 9], [5], [8], []])


def test_accuracy_at_4_matches_hand_computation():
    m = metrics.accuracy(ITEMS, TARGETS, 4)
    # DCG = 1/log2(3) + 1/log2(5); IDCG over min(|T|=3, 4) = 3 ranks: 1 + 1/log2(3) + 1/2.
    assert m["ndcg"][0] == pytest.approx((1 / L3 + 1 / L5) / (1 + 1 / L3 + 0.5))
    assert m["ndcg"][0] == pytest.approx(0.498189, abs=1e-6)
    assert m["recall"][0] == pytest.approx(2 / 3)  # denominator |T|
    assert m["precision"][0] == pytest.approx(2 / 4)
    # AP: precision at the hits (1/2 at rank 2, 2/4 at rank 4) over min(|T|, k) = 3.
    assert m["map"][0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert m["hr"][0] == 1.0
    # Padding counts as a miss for precision, nothing else.
    assert [m[n][1] for n in ("ndcg", "recall", "precision", "map", "hr")] == pytest.approx(
        [1.0, 1.0, 0.25, 1.0, 1.0]
    )
    assert [m[n][2] for n in ("ndcg", "recall", "precision", "map", "hr")] == [0, 0, 0, 0, 0]
    assert all(np.isnan(m[n][3]) for n in m)


def test_accuracy_at_2_caps_the_ideal_at_k():
    m = metrics.accuracy(ITEMS, TARGETS, 2)
    # Hit at rank 2 only; IDCG over min(3, 2) = 2 ranks.
    assert m["ndcg"][0] == pytest.approx((1 / L3) / (1 + 1 / L3))
    assert m["recall"][0] == pytest.approx(1 / 3)
    assert m["precision"][0] == pytest.approx(1 / 2)
    assert m["map"][0] == pytest.approx((1 / 2) / 2)


def test_perfect_list_scores_one():
    m = metrics.accuracy(np.array([[4, 2, 0]]), _targets([[0, 2, 4, 6, 8]]), 3)
    assert m["ndcg"][0] == pytest.approx(1.0)
    assert m["map"][0] == pytest.approx(1.0)
    assert m["recall"][0] == pytest.approx(3 / 5)


def test_padding_never_matches_the_previous_rows_last_item():
    # key(row 1, item -1) == key(row 0, item n-1) in the flattened encoding.
    hits = metrics.hit_matrix(np.array([[0], [-1]]), _targets([[9], [3]], n_items=10))
    assert not hits.any()


def test_hit_matrix_without_any_target():
    assert not metrics.hit_matrix(np.array([[1, 2]]), _targets([[]])).any()


def test_coverage_counts_distinct_items_without_padding():
    items = np.array([[0, 1], [1, 2], [-1, -1]])
    assert metrics.coverage(items, 10) == pytest.approx(0.3)
    assert metrics.coverage(items, 10, k=1) == pytest.approx(0.2)  # items 0 and 1 at rank 1


def test_novelty_is_mean_self_information():
    # 8 users; shares 4/8, 2/8, 1/8 and an unbought item counted as 1/8.
    popularity = np.array([4, 2, 1, 0])
    nov = metrics.novelty(np.array([[0, 1], [2, -1], [-1, -1], [3, 0]]), popularity, 8)
    assert nov[:2] == pytest.approx([1.5, 3.0])
    assert np.isnan(nov[2])
    assert nov[3] == pytest.approx(2.0)


def test_popularity_percentile_is_share_of_items_at_most_as_popular():
    popularity = np.array([4, 2, 2, 0])  # percentiles 1, 3/4, 3/4, 1/4
    pct = metrics.popularity_percentile(np.array([[0, 3], [1, 2], [-1, -1]]), popularity)
    assert pct[:2] == pytest.approx([0.625, 0.75])
    assert np.isnan(pct[2])


@pytest.mark.parametrize("as_sparse", [False, True])
def test_intra_list_diversity(as_sparse):
    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    if as_sparse:
        vectors = sparse.csr_matrix(vectors)
    items = np.array([[0, 1, 2], [0, 3, -1], [2, -1, -1], [1, 0, 3]])
    # Tiny blocks and no precomputed similarities: every pair computed on its own.
    div = metrics.intra_list_diversity(items, vectors, max_hot=0, block_size=1)
    # [0,1,2]: cosines 1, 0, 0 -> 1 - 1/3.  [0,3]: 1 - 1/sqrt(2).  [2]: NaN.
    # [1,0,3]: cosines 1, 1/sqrt2, 1/sqrt2 -> 1 - (1 + sqrt2) / 3.
    assert div[0] == pytest.approx(2 / 3)
    assert div[1] == pytest.approx(1 - 1 / math.sqrt(2))
    assert np.isnan(div[2])
    assert div[3] == pytest.approx(1 - (1 + math.sqrt(2)) / 3)
    for max_hot in (2, 4):  # some / all pairs from the precomputed similarities
        np.testing.assert_allclose(
            metrics.intra_list_diversity(items, vectors, max_hot=max_hot), div
        )


def test_co_purchase_vectors_are_item_buyer_columns():
    matrix = sparse.csr_matrix(np.array([[2, 1, 0], [1, 1, 0], [0, 0, 5]]))
    div = metrics.intra_list_diversity(
        np.array([[0, 1], [0, 2]]), metrics.co_purchase_vectors(matrix)
    )
    assert div == pytest.approx([0.0, 1.0])  # same buyers / no common buyer


def test_by_segment_means_counts_and_coverage():
    per_user = {"ndcg@2": np.array([1.0, 0.0, 0.5]), "hr@2": np.array([1.0, 0.0, np.nan])}
    items = np.array([[0, 1], [2, 3], [1, 4]])
    table = metrics.by_segment(
        per_user,
        np.array(["a", "b", "a"]),
        items=items,
        n_items=10,
        coverage_keys={"coverage@2": 2},
    )
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "users"] == 2
    assert table.loc["a", "ndcg@2"] == pytest.approx(0.75)
    assert table.loc["a", "hr@2"] == pytest.approx(1.0)  # NaN skipped
    assert table.loc["a", "coverage@2"] == pytest.approx(0.3)  # items 0, 1, 4
    assert table.loc["b", "coverage@2"] == pytest.approx(0.2)


def _tiny_split():
    ts = pd.Timestamp("2024-01-01", tz="UTC")
    day = pd.Timedelta(days=1)
    train = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u3"],
            "item_id": ["a", "b", "b", "c", "d"],
            "timestamp": [ts] * 5,
        }
    )
    test = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u3"],
            "item_id": ["c", "a", "b", "zzz"],
            "timestamp": [ts + day] * 4,
        }
    )
    users = pd.DataFrame({"segment": ["x", "y", "x"]}, index=["u1", "u2", "u3"])
    return make_split(train, test, user_features=users)


def test_score_lists_on_a_split_overall_and_per_segment():
    split = _tiny_split()  # items a b c d = 0 1 2 3; u1 target {c}, repeat {a}; u2 repeat {b}
    assert list(split.users) == [0]
    items = np.array([[2, 3]])  # c then d
    segments = split.train.user_features["segment"].to_numpy()
    scores = score_lists(items, split, split.users, k_values=(1, 2), segments=segments)
    assert scores.metrics["ndcg@1"] == 1.0
    assert scores.metrics["precision@2"] == 0.5
    assert scores.metrics["coverage@2"] == pytest.approx(2 / 4)
    # Popularity (distinct train buyers) a=1 b=2 c=1 d=1 of 3 users.
    assert scores.metrics["novelty@2"] == pytest.approx(math.log2(3))
    assert scores.metrics["pop_pct@1"] == pytest.approx(3 / 4)
    assert list(scores.metrics)[:4] == ["ndcg@1", "recall@1", "precision@1", "map@1"]
    assert scores.by_segment.loc["x", "users"] == 1


def test_buy_again_scores_repeat_targets_and_history_reference():
    split = _tiny_split()
    assert list(split.repeat_users) == [0, 1]
    top = history_topk(split.train, split.repeat_users, 2)
    # u1 history a, b (equal weight: lower index first); u2 history b, c.
    assert top.items.tolist() == [[0, 1], [1, 2]]
    scores = score_buy_again(top.items, split, split.repeat_users, k_values=(1,))
    assert scores.metrics["hr@1"] == 1.0
    assert "coverage@1" not in scores.metrics


def test_history_topk_pads_short_histories():
    data = Dataset.from_interactions(
        pd.DataFrame({"user_id": [1], "item_id": [7], "timestamp": ["2024-01-01"]})
    )
    assert history_topk(data, np.array([0]), 3).items.tolist() == [[0, -1, -1]]


def test_diversity_of_rarely_listed_items_computes_only_their_pairs():
    import tracemalloc

    rng = np.random.default_rng(5)
    matrix = sparse.random(200, 60, density=0.08, random_state=6, format="csr")
    vectors = metrics.co_purchase_vectors(matrix)
    items = rng.integers(-1, 60, size=(300, 8))
    unit = metrics._unit_rows(vectors).toarray()
    expected = []
    for row in items:
        listed = row[row >= 0]
        pairs = [(a, b) for i, a in enumerate(row) for b in row[i + 1 :] if a >= 0 and b >= 0]
        if len(listed) < 2:
            expected.append(np.nan)
            continue
        mean = sum(unit[a] @ unit[b] for a, b in pairs) / (len(listed) * (len(listed) - 1) / 2)
        expected.append(1 - mean)
    got = metrics.intra_list_diversity(items, vectors, max_hot=5, block_size=64)
    np.testing.assert_allclose(got, expected, rtol=1e-9, equal_nan=True)

    # 50,000 items that one wholesaler bought together with everyone else's purchases: a
    # (listed items × all items) product would hold millions of similarities for 30 lists.
    n_items = 50_000
    buyers = sparse.csr_matrix(
        (
            np.ones(2 * n_items),
            (
                np.r_[np.zeros(n_items), np.arange(1, n_items + 1) % 97 + 1],
                np.r_[np.arange(n_items), np.arange(n_items)],
            ),
        ),
        shape=(100, n_items),
    )
    wide = metrics.co_purchase_vectors(buyers)
    lists = rng.integers(0, n_items, size=(30, 4))
    tracemalloc.start()
    try:
        metrics.intra_list_diversity(lists, wide, max_hot=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12_000_000, peak  # the inputs themselves take about 5 MB
