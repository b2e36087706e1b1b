"""Business rules on top of a model: each filter, boost / bury / pin, MMR diversity, the
fallback for customers a model cannot rank, what the rules removed, and rule validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommendations.algorithms.base import Dataset, Recommender
from recommendations.algorithms.buy_again import BuyAgain
from recommendations.algorithms.neighbors import ItemKNNCosine
from recommendations.algorithms.postprocess import (
    BOUGHT,
    BURY,
    CATEGORY,
    DISPLACED,
    OUT_OF_STOCK,
    PRICE,
    BusinessRules,
    ItemSimilarity,
    RulesError,
    intra_list_diversity,
    rank,
    rank_scores,
)

START = pd.Timestamp("2024-01-01", tz="UTC")


class Fixed(Recommender):
    """A model whose scores are a given matrix (users × items)."""

    name = "fixed"

    def __init__(self, table: np.ndarray) -> None:
        super().__init__()
        self.table = np.asarray(table, dtype=np.float32)

    def _fit(self, data, on_progress) -> None:
        assert self.table.shape == data.matrix.shape

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return self.table[users].copy()


def dataset(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> Dataset:
    frame = pd.DataFrame(
        {
            "user_id": [u for u, _ in pairs],
            "item_id": [i for _, i in pairs],
            "timestamp": [START + pd.Timedelta(days=d) for d in range(len(pairs))],
        }
    )
    return Dataset.from_interactions(frame, user_ids=range(n_users), item_ids=range(n_items))


def meta(n: int, **columns) -> pd.DataFrame:
    base = {
        "category": ["Home > Kitchen"] * n,
        "price": [10.0] * n,
        "in_stock": [True] * n,
    }
    base.update(columns)
    return pd.DataFrame(base, index=range(n))


# 2 users × 8 items; user 0 bought item 0, user 1 bought item 7. Scores fall with the index.
SCORES = np.tile(np.arange(8, 0, -1, dtype=np.float32), (2, 1))


@pytest.fixture
def fixed() -> Fixed:
    return Fixed(SCORES).fit(dataset([(0, 0), (1, 7)], 2, 8))


def lists(ranked) -> list[list[int]]:
    return [[i for i in row if i >= 0] for row in ranked.items.tolist()]


def test_bought_items_are_excluded_unless_the_rule_is_off(fixed):
    ranked = rank(fixed, [0, 1], BusinessRules(top_n=3), meta(8))
    assert lists(ranked) == [[1, 2, 3], [0, 1, 2]]
    assert (0, BOUGHT) in ranked.removed[0]

    kept = rank(fixed, [0], BusinessRules(top_n=3, exclude_bought=False), meta(8))
    assert lists(kept) == [[0, 1, 2]]
    assert kept.removed == [[]]


def test_out_of_stock_items_never_appear(fixed):
    stock = [True, False, True, False, True, True, True, True]
    ranked = rank(fixed, [0, 1], BusinessRules(top_n=4), meta(8, in_stock=stock))
    assert lists(ranked) == [[2, 4, 5, 6], [0, 2, 4, 5]]
    assert dict(ranked.removed[1]) == {1: OUT_OF_STOCK, 3: OUT_OF_STOCK}
    # Off: stock is ignored.
    anyway = rank(fixed, [1], BusinessRules(top_n=2, in_stock_only=False), meta(8, in_stock=stock))
    assert lists(anyway) == [[0, 1]]


def test_category_subtrees_are_included_and_excluded(fixed):
    cats = [
        "Home > Kitchen",
        "Garden",
        "home > kitchen > Pans",
        "Home",
        "Home > Bath",
        "Garden > Tools",
        "",
        "Home > Kitchen",
    ]
    only_home = rank(
        fixed, [1], BusinessRules(top_n=8, include_categories=["Home"]), meta(8, category=cats)
    )
    assert lists(only_home) == [[0, 2, 3, 4]]  # item 6 has no category: outside "Home"
    assert dict(only_home.removed[0])[1] == CATEGORY

    no_kitchen = rank(
        fixed,
        [1],
        BusinessRules(top_n=8, exclude_categories=["Home>Kitchen"]),
        meta(8, category=cats),
    )
    assert lists(no_kitchen) == [[1, 3, 4, 5, 6]]  # the subtree, case-insensitively


def test_price_range_is_honoured_and_an_unknown_price_fails_it(fixed):
    prices = [5.0, 15.0, np.nan, 20.0, 25.0, 9.99, 10.0, 30.0]
    ranked = rank(
        fixed,
        [1],
        BusinessRules(top_n=8, price_min=10, price_max=25),
        meta(8, price=prices),
    )
    assert lists(ranked) == [[1, 3, 4, 6]]
    assert dict(ranked.removed[0])[0] == PRICE
    assert dict(ranked.removed[0])[2] == PRICE


def test_boost_lifts_items_and_whole_categories(fixed):
    ranked = rank(fixed, [1], BusinessRules(top_n=3, boost={5: 10.0}), meta(8))
    assert lists(ranked) == [[5, 0, 1]]
    assert (2, DISPLACED) in ranked.removed[0]

    cats = ["A", "A", "A", "A", "B > x", "B", "A", "A"]
    by_category = rank(
        fixed, [1], BusinessRules(top_n=3, boost_categories={"B": 5.0}), meta(8, category=cats)
    )
    assert lists(by_category) == [[4, 5, 0]]


def test_pins_come_first_in_order_and_only_when_allowed(fixed):
    stock = [True] * 7 + [False]
    rules = BusinessRules(top_n=4, pin=(6, 7, 0, 5))
    ranked = rank(fixed, [0, 1], rules, meta(8, in_stock=stock))
    # User 0 bought item 0; item 7 is out of stock: neither is pinned for them.
    assert lists(ranked)[0] == [6, 5, 1, 2]
    assert lists(ranked)[1] == [6, 0, 5, 1]
    assert (7, OUT_OF_STOCK) in ranked.removed[0]
    assert (0, BOUGHT) in ranked.removed[0]


def test_buried_items_go_last_and_drop_out_when_others_fill_the_list(fixed):
    rules = BusinessRules(top_n=3, bury=(1, 2))
    ranked = rank(fixed, [1], rules, meta(8))
    assert lists(ranked) == [[0, 3, 4]]
    assert dict(ranked.removed[0]) == {1: BURY, 2: BURY}
    # Too few others: the buried items fill the end, best first.
    stock = [True, True, True, False, False, False, False, True]
    short = rank(fixed, [1], BusinessRules(top_n=3, bury=(1, 2)), meta(8, in_stock=stock))
    assert lists(short) == [[0, 1, 2]]


def two_clusters() -> tuple[Dataset, np.ndarray]:
    """Items 0-4 are always bought together (cluster A), items 5-9 too (cluster B);
    user 10 bought only item 10 and the model likes cluster A best."""
    pairs = []
    for u in range(5):
        pairs += [(u, i) for i in range(5)]
    for u in range(5, 10):
        pairs += [(u, i) for i in range(5, 10)]
    pairs.append((10, 10))
    data = dataset(pairs, 11, 11)
    scores = np.zeros((11, 11), dtype=np.float32)
    scores[10] = [1.0, 0.99, 0.98, 0.97, 0.96, 0.9, 0.89, 0.88, 0.87, 0.86, 0.0]
    return data, scores


def test_mmr_with_lambda_one_is_the_plain_ranking():
    data = dataset([(u, (u * 3 + j) % 12) for u in range(8) for j in range(4)], 8, 12)
    model = ItemKNNCosine().fit(data)
    plain = model.recommend(np.arange(8), 5)
    ranked = rank(model, np.arange(8), BusinessRules(top_n=5, in_stock_only=False, mmr_lambda=1.0))
    assert ranked.items.tolist() == plain.items.tolist()


def test_mmr_below_one_makes_lists_more_diverse():
    data, scores = two_clusters()
    model = Fixed(scores).fit(data)
    similarity = ItemSimilarity(data.matrix)
    plain = rank(model, [10], BusinessRules(top_n=4), similarity=similarity)
    diverse = rank(model, [10], BusinessRules(top_n=4, mmr_lambda=0.3), similarity=similarity)
    assert lists(plain) == [[0, 1, 2, 3]]
    assert lists(diverse)[0][0] == 0  # the most relevant item still leads
    assert set(lists(diverse)[0]) & {5, 6, 7, 8, 9}
    assert intra_list_diversity(lists(diverse)[0], similarity) > intra_list_diversity(
        lists(plain)[0], similarity
    )


def test_category_similarity_diversifies_items_nobody_bought_yet():
    scores = np.array([[5, 4, 3, 2, 1, 0]], dtype=np.float32)
    cats = ["Mugs", "Mugs", "Mugs", "Pans", "Pans", "Pans"]
    similarity = ItemSimilarity(np.zeros((1, 6)), cats, category_weight=1.0)
    ranked = rank_scores(
        scores, BusinessRules(top_n=3, mmr_lambda=0.5), meta(6), similarity=similarity
    )
    assert lists(ranked) == [[0, 3, 1]]


def test_customers_the_model_cannot_rank_get_the_fallback_and_short_lists_are_filled():
    data = dataset([(0, 0), (0, 1), (1, 1), (1, 2)], 3, 6)  # user 2 has no history
    model = ItemKNNCosine(shrink=0.0).fit(data)
    popularity = np.array([1.0, 2.0, 1.0, 9.0, 5.0, 0.0])
    ranked = rank(model, [0, 2], BusinessRules(top_n=4), meta(6), fallback=popularity)
    cold = lists(ranked)[1]
    assert cold == [3, 4, 1, 0]
    warm = lists(ranked)[0]
    assert warm[0] == 2  # what the model knows comes first, then the fallback fills
    assert warm[1:] == [3, 4, 5]
    assert len(lists(rank(model, [2], BusinessRules(top_n=4), meta(6)))[0]) == 4


def test_buy_again_lists_need_the_repeat_rules():
    frame = pd.DataFrame(
        {
            "user_id": [0, 0, 0, 1],
            "item_id": [0, 0, 1, 1],
            "timestamp": [START, START + pd.Timedelta(days=10), START, START],
        }
    )
    data = Dataset.from_interactions(frame)
    model = BuyAgain().fit(data)
    with pytest.raises(ValueError, match="for_repeat_list"):
        rank(model, [0], BusinessRules())
    ranked = rank(model, [0], BusinessRules(pin=(1,)).for_repeat_list(), meta(2))
    assert lists(ranked) == [[0, 1]]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": 1000}, "top_n"),
        ({"top_n": 2.5}, "top_n"),
        ({"mmr_lambda": 1.5}, "mmr_lambda"),
        ({"mmr_lambda": "high"}, "mmr_lambda"),
        ({"price_min": 10, "price_max": 5}, "price_max"),
        ({"price_min": -1}, "price_min"),
        ({"boost": {1: 0}}, "boost"),
        ({"boost_categories": {"": 2}}, "boost_categories"),
        ({"pin": (1, 1)}, "pin"),
        ({"pin": (1,), "bury": (1,)}, "bury"),
        ({"top_n": 1, "pin": (1, 2)}, "pin"),
        ({"include_categories": ["Home"], "exclude_categories": ["home"]}, "exclude_categories"),
        ({"exclude_bought": "yes"}, "exclude_bought"),
    ],
)
def test_invalid_rules_are_refused_with_the_field_named(values, field):
    with pytest.raises(RulesError) as error:
        BusinessRules(**values)
    assert error.value.field == field


def test_rules_from_json_map_ids_and_refuse_unknown_keys_and_items():
    index = {101: 0, 102: 1, 103: 2}
    rules = BusinessRules.from_dict(
        {"top_n": 5, "boost": {"101": 2.0}, "pin": [103], "bury": ["102"]}, item_index=index
    )
    assert (rules.boost, rules.pin, rules.bury) == ({0: 2.0}, (2,), (1,))
    assert rules.to_dict(item_ids=[101, 102, 103])["pin"] == [103]
    assert BusinessRules.from_dict(rules.to_dict(item_ids=[101, 102, 103]), item_index=index) == (
        rules
    )
    with pytest.raises(RulesError, match="unknown rule"):
        BusinessRules.from_dict({"top": 5})
    with pytest.raises(RulesError, match="unknown item 999"):
        BusinessRules.from_dict({"pin": [999]}, item_index=index)


def test_items_beyond_the_catalog_are_refused(fixed):
    with pytest.raises(RulesError, match="does not exist"):
        rank(fixed, [0], BusinessRules(pin=(42,)), meta(8))


def test_one_nan_score_does_not_empty_the_list():
    table = SCORES.copy()
    table[0, 4] = np.nan
    model = Fixed(table).fit(dataset([(0, 0), (1, 7)], 2, 8))
    ranked = rank(model, [0, 1], BusinessRules(top_n=3), meta(8))
    assert lists(ranked) == [[1, 2, 3], [0, 1, 2]]
    assert model.recommend([0], 3).items.tolist() == [[1, 2, 3]]


def test_the_capped_model_file_counts_large_arrays_pickle_hands_over_as_buffers(tmp_path):
    """Protocol 5 writes a large numpy array as a PickleBuffer (no len()): the cap must
    count its bytes, not crash, and still refuse past the limit."""
    import pickle

    import numpy as np

    from recommendations.services.artifacts import ArtifactTooLarge, _CappedFile

    big = np.ones((512, 1024), dtype=np.float32)  # 2 MB
    with (tmp_path / "ok.pkl").open("wb") as fh:
        capped = _CappedFile(fh, 4 * 2**20)
        pickle.dump(big, capped, pickle.HIGHEST_PROTOCOL)
    assert capped.size >= big.nbytes
    assert np.array_equal(pickle.loads((tmp_path / "ok.pkl").read_bytes()), big)
    with (tmp_path / "big.pkl").open("wb") as fh, pytest.raises(ArtifactTooLarge):
        pickle.dump(big, _CappedFile(fh, 2**20), pickle.HIGHEST_PROTOCOL)
