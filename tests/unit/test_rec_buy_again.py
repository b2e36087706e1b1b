"""Buy again on a hand-made purchase log: the item that is due comes first, only bought
items are candidates, and the reason reads like a person wrote it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recommendations.algorithms.base import Dataset
from recommendations.algorithms.buy_again import BuyAgain

START = pd.Timestamp("2024-01-01", tz="UTC")


def log(purchases: dict[str, dict[str, list[int]]]) -> Dataset:
    """{user: {item: [days]}} -> Dataset (items a..e known to the catalog)."""
    rows = [
        (user, item, START + pd.Timedelta(days=day, hours=10))
        for user, items in purchases.items()
        for item, days in items.items()
        for day in days
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return Dataset.from_interactions(frame, item_ids=list("abcde"))


# Customer "ann": coffee (a) every 7 days, last 7 days ago — due today. Filters (b) every
# 30 days, bought more often but 3 days ago. A mug (c) once. "d" bought on day 100 sets
# "today". Another customer buys "e" only.
SHOP = {
    "ann": {"a": [79, 86, 93], "b": [7, 37, 67, 97], "c": [50], "d": [100]},
    "bob": {"e": [10, 40, 70]},
}


def test_the_item_that_is_due_comes_first():
    data = log(SHOP)
    model = BuyAgain(reference="as_of").fit(data)
    ann = int(np.flatnonzero(data.user_ids == "ann")[0])
    top = model.recommend([ann], k=5)
    items = [data.item_ids[i] for i in top.items[0] if i >= 0]
    assert items[0] == "a"
    # Only the history is recommended; "e" (bob's) never is.
    assert set(items) == {"a", "b", "c", "d"}
    assert np.isneginf(top.scores[0, 4])


def test_frequency_decides_between_items_equally_due():
    data = log({"ann": {"a": [0, 10, 20, 30], "b": [20, 30], "c": [40]}})
    model = BuyAgain(reference="as_of", repeat_power=0.0).fit(data)
    top = model.recommend([0], k=3).items[0]
    assert data.item_ids[top[0]] == "a"


def test_purchased_items_are_not_excluded_by_default():
    data = log(SHOP)
    model = BuyAgain().fit(data)
    users = np.arange(data.n_users)
    kept = model.recommend(users, k=5)
    assert (kept.items >= 0).sum() == data.matrix.nnz
    excluded = model.recommend(users, k=5, exclude=True)
    assert (excluded.items == -1).all()
    assert model.recommends_seen


def test_reason_and_explain():
    data = log(SHOP)
    model = BuyAgain().fit(data)
    ann = int(np.flatnonzero(data.user_ids == "ann")[0])
    item = {name: i for i, name in enumerate(data.item_ids)}
    assert model.reason(ann, item["a"]) == "You buy this about every 7 days; last time 7 days ago."
    assert model.reason(ann, item["d"]).startswith("You bought this today;")
    assert model.reason(ann, item["e"]) == ""
    assert model.explain(ann, item["b"]) == [(item["b"], 4.0)]
    assert model.explain(ann, item["e"]) == []


def test_needs_the_event_log():
    data = log(SHOP)
    bare = Dataset(sparse.csr_matrix(data.matrix), data.user_ids, data.item_ids)
    with pytest.raises(ValueError, match="events"):
        BuyAgain().fit(bare)
