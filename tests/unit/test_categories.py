"""Derived categories from product titles: grouping, naming, determinism, small inputs."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from marketing.analytics.categories import UNCATEGORISED, default_k, derive_categories

COLOURS = ["RED", "PINK", "BLUE", "WHITE", "GREEN"]
STYLES = ["VINTAGE", "RETRO", "FLORAL", "POLKADOT", "SPOTTY", "CLASSIC"]
# Three product families in the Online Retail style: the defining words repeat within a
# family, colours and styles repeat across all of them.
FAMILIES = {
    "holder": "HANGING HEART T-LIGHT HOLDER",
    "bag": "JUMBO LUNCH BAG WITH HANDLES",
    "tin": "ROUND CAKE TIN BAKING",
}


def make_products() -> tuple[pd.DataFrame, dict[int, str]]:
    rows, family_of = [], {}
    pid = 1
    for family, base in FAMILIES.items():
        for colour, style in itertools.product(COLOURS, STYLES[:4]):
            rows.append({"product_id": pid, "title": f"{colour} {style} {base}", "description": ""})
            family_of[pid] = family
            pid += 1
    rows.append({"product_id": pid, "title": "", "description": ""})  # nothing to go on
    family_of[pid] = "-"
    return pd.DataFrame(rows), family_of


@pytest.fixture(scope="module")
def derived():
    products, family_of = make_products()
    return derive_categories(products, k=3, seed=4), family_of


def test_each_family_gets_one_category(derived):
    result, family_of = derived
    assert result.available
    assert result.k == 3
    names = result.categories
    for family in FAMILIES:
        ids = [pid for pid, f in family_of.items() if f == family]
        assert names.loc[ids].nunique() == 1
    assert names.loc[[p for p, f in family_of.items() if f != "-"]].nunique() == 3


def test_names_come_from_the_defining_words_not_colours(derived):
    result, family_of = derived
    names = result.categories
    holder = names.loc[next(p for p, f in family_of.items() if f == "holder")]
    bag = names.loc[next(p for p, f in family_of.items() if f == "bag")]
    tin = names.loc[next(p for p, f in family_of.items() if f == "tin")]
    assert any(w in holder for w in ("Heart", "Holder", "T-light", "Hanging"))
    assert any(w in bag for w in ("Lunch", "Bag", "Handles"))
    assert any(w in tin for w in ("Cake", "Tin", "Baking", "Round"))
    for name in (holder, bag, tin):
        assert " · " in name
        assert not any(colour.lower() in name.lower().split() for colour in COLOURS)
        assert 1 <= len(name.split(" · ")) <= 3


def test_products_without_text_are_uncategorised(derived):
    result, family_of = derived
    empty = next(p for p, f in family_of.items() if f == "-")
    assert result.categories.loc[empty] == UNCATEGORISED


def test_clusters_report_sizes_and_terms(derived):
    result, _ = derived
    assert [c.size for c in result.clusters] == [20, 20, 20]
    assert len({c.name for c in result.clusters}) == 3
    for cluster in result.clusters:
        assert 1 <= len(cluster.terms) <= 6
        assert cluster.name.split(" · ")[0].lower() == cluster.terms[0]


def test_same_seed_same_categories(derived):
    products, _ = make_products()
    again = derive_categories(products, k=3, seed=4)
    pd.testing.assert_series_equal(again.categories, derived[0].categories)


def test_k_range_picks_by_silhouette():
    products, _ = make_products()
    result = derive_categories(products, k_range=(2, 6), seed=0)
    assert set(result.scores) == {2, 3, 4, 5, 6}
    assert result.k == max(result.scores, key=result.scores.get)
    # Families never share a category, whichever k won (styles may split a family).
    names = result.categories
    _, family_of = make_products()
    for a, b in itertools.combinations(FAMILIES, 2):
        in_a = {names[p] for p, f in family_of.items() if f == a}
        in_b = {names[p] for p, f in family_of.items() if f == b}
        assert not in_a & in_b


def test_default_k_is_square_root_of_half_capped():
    assert default_k(60) == 5  # sqrt(30) = 5.48
    assert default_k(4070) == 40  # sqrt(2035) = 45 -> capped
    assert default_k(3) == 2
    products, _ = make_products()
    assert derive_categories(products, seed=0).k == default_k(60)


def test_descriptions_count_when_titles_are_thin():
    products = pd.DataFrame(
        {
            "product_id": range(1, 9),
            "title": [
                "Item A",
                "Item B",
                "Item C",
                "Item D",
                "Item E",
                "Item F",
                "Item G",
                "Item H",
            ],
            "description": ["garden hose reel"] * 4 + ["kitchen knife block"] * 4,
        }
    )
    result = derive_categories(products, k=2, seed=0)
    assert result.categories.iloc[:4].nunique() == 1
    assert result.categories.iloc[4:].nunique() == 1
    assert result.categories.iloc[0] != result.categories.iloc[4]


def test_too_few_products_give_one_category_and_a_reason():
    products = pd.DataFrame({"product_id": [1, 2], "title": ["RED MUG", "RED MUG"]})
    result = derive_categories(products, seed=0)
    assert not result.available
    assert "at least 4" in result.reason
    assert (result.categories == UNCATEGORISED).all()


def test_no_shared_words_gives_a_reason():
    products = pd.DataFrame({"product_id": [1, 2, 3], "title": ["alpha", "beta", "gamma"]})
    result = derive_categories(products)
    assert not result.available
    assert result.reason


def test_missing_title_column_is_named():
    with pytest.raises(ValueError, match="title"):
        derive_categories(pd.DataFrame({"product_id": [1]}))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_duplicate_titles_fewer_than_k_give_no_empty_category():
    titles = ["RED COFFEE MUG", "BLUE PILLAR CANDLE", "GREEN TOTE BAG"] * 12
    products = pd.DataFrame({"product_id": range(36), "title": titles})
    result = derive_categories(products, k=5, seed=0)  # only three distinct texts
    assert [c.size for c in result.clusters] == [12, 12, 12]
    assert result.categories.nunique() == 3
