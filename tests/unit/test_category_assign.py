"""New products join the existing derived category their text is closest to."""

from __future__ import annotations

import pandas as pd
import pytest

from marketing.analytics.category_assign import assign_categories


def frame(titles: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"product_id": list(titles), "title": list(titles.values()), "description": ""}
    )


KNOWN = {
    1: "RED CERAMIC COFFEE MUG",
    2: "BLUE CERAMIC COFFEE MUG",
    3: "GREEN CERAMIC COFFEE MUG",
    4: "RED SCENTED PILLAR CANDLE",
    5: "BLUE SCENTED PILLAR CANDLE",
    6: "GREEN SCENTED PILLAR CANDLE",
}
LABELS = pd.Series({1: 10, 2: 10, 3: 10, 4: 20, 5: 20, 6: 20})


def test_new_products_get_the_nearest_category():
    products = frame({**KNOWN, 7: "PINK COFFEE MUG", 8: "IVORY PILLAR CANDLE", 9: "ZEPPELIN"})
    result = assign_categories(products, LABELS)
    assert result.to_dict() == {7: 10, 8: 20, 9: None}
    assert list(result.index) == [7, 8, 9]


def test_descriptions_help_when_titles_say_nothing():
    products = frame({**KNOWN, 7: "ITEM SEVEN"})
    products["description"] = ["ceramic mug"] * 3 + ["pillar candle"] * 3 + ["a ceramic mug"]
    assert assign_categories(products, LABELS).to_dict() == {7: 10}


def test_nothing_to_assign_or_nothing_known():
    assert assign_categories(frame(KNOWN), LABELS).empty
    result = assign_categories(frame({7: "COFFEE MUG", 8: "COFFEE MUG"}), pd.Series(dtype=int))
    assert result.to_dict() == {7: None, 8: None}


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="title"):
        assign_categories(pd.DataFrame({"product_id": [1]}), LABELS)
