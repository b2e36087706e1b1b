"""Reasons cite only the customer's real history and real counts: co-purchases, buyers in the
customer's segment this month, new products in their favourite category, buy-again
intervals, and plain popularity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommendations.algorithms.base import Dataset
from recommendations.algorithms.buy_again import BuyAgain
from recommendations.algorithms.neighbors import ItemKNNCosine, UserKNNCosine
from recommendations.algorithms.popular import MostPopular
from recommendations.algorithms.postprocess import BusinessRules, rank
from recommendations.algorithms.reasons import (
    BOUGHT_TOGETHER,
    BUY_AGAIN,
    NEW_ARRIVAL,
    NEW_IN_CATEGORY,
    POPULAR,
    POPULAR_SEGMENT,
    ReasonContext,
    buy_again_reason,
    reasons_for,
    segment_reasons,
)

END = pd.Timestamp("2024-06-30", tz="UTC")


@pytest.fixture(scope="module")
def shop():
    """60 customers in two segments over 40 products in four categories, random purchases
    over 120 days (seeded), favouring a segment's own categories."""
    rng = np.random.default_rng(3)
    categories = ["Home > Kitchen", "Home > Bath", "Garden", "Toys"]
    item_category = [categories[i % 4] for i in range(40)]
    segments = ["Champions" if u < 30 else "At risk" for u in range(60)]
    rows = []
    for u in range(60):
        liked = [0, 1] if u < 30 else [2, 3]
        for _ in range(rng.integers(2, 9)):
            cat = liked[rng.integers(2)] if rng.random() < 0.8 else rng.integers(4)
            item = int(cat + 4 * rng.integers(10))
            day = int(rng.integers(0, 120))
            rows.append((u, item, END - pd.Timedelta(days=day)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    data = Dataset.from_interactions(
        frame,
        user_ids=np.arange(60),
        item_ids=np.arange(40),
        item_features=pd.DataFrame({"category": item_category}, index=range(40)),
        user_features=pd.DataFrame({"segment": segments}, index=range(60)),
    )
    new = np.zeros(40, dtype=bool)
    new[[36, 37, 38, 39]] = True
    ctx = ReasonContext.build(data, item_new=new, window_days=30)
    return frame, data, ctx, item_category, segments


def distinct_buyers(frame, item, users=None, days=None) -> int:
    rows = frame[frame["item_id"] == item]
    if users is not None:
        rows = rows[rows["user_id"].isin(users)]
    if days is not None:
        rows = rows[rows["timestamp"] > frame["timestamp"].max() - pd.Timedelta(days=days)]
    return rows["user_id"].nunique()


@pytest.mark.parametrize("model_cls", [ItemKNNCosine, UserKNNCosine])
def test_history_reasons_cite_only_items_the_customer_bought_with_real_co_buyers(shop, model_cls):
    frame, data, ctx, _, _ = shop
    model = model_cls().fit(data)
    ranked = rank(model, np.arange(60), BusinessRules(top_n=10, in_stock_only=False))
    cited = 0
    for user in range(60):
        items = [i for i in ranked.items[user] if i >= 0]
        bought = set(frame.loc[frame["user_id"] == user, "item_id"])
        for item, reason in zip(items, reasons_for(ctx, model, user, items), strict=True):
            if reason.kind != BOUGHT_TOGETHER:
                continue
            cited += 1
            assert 1 <= len(reason.items) <= 2
            assert set(reason.items) <= bought
            assert item not in reason.items
            if model_cls is UserKNNCosine:  # co-purchase: someone bought both
                for history_item in reason.items:
                    both = frame.groupby("user_id")["item_id"].agg(set)
                    assert any({history_item, item} <= s for s in both)
    assert cited > 100


def test_segment_and_popularity_reasons_carry_real_counts(shop):
    frame, data, ctx, _, segments = shop
    model = MostPopular().fit(data)  # cites no history: segment or popularity reasons
    ranked = rank(model, np.arange(60), BusinessRules(top_n=10, in_stock_only=False))
    kinds = set()
    for user in range(60):
        items = [i for i in ranked.items[user] if i >= 0]
        for item, reason in zip(items, reasons_for(ctx, model, user, items), strict=True):
            kinds.add(reason.kind)
            if reason.kind == POPULAR_SEGMENT:
                members = [u for u in range(60) if segments[u] == segments[user]]
                assert reason.data["segment"] == segments[user]
                assert reason.data["days"] == 30
                assert reason.data["buyers"] == distinct_buyers(frame, item, members, 30)
                assert reason.data["buyers"] >= 2
            elif reason.kind == POPULAR:
                recent = distinct_buyers(frame, item, days=30)
                expected = recent if recent else distinct_buyers(frame, item)
                assert reason.data["buyers"] == expected
    assert POPULAR_SEGMENT in kinds


def test_new_products_in_the_favourite_category_say_so(shop):
    frame, data, ctx, item_category, _ = shop
    model = MostPopular().fit(data)
    for user in range(60):
        # Item 36 is new in "Home > Kitchen", item 39 new in "Toys".
        reasons = reasons_for(
            ReasonContext.build(data, item_new=ctx.item_new, min_segment_buyers=10**6),
            model,
            user,
            [36, 39],
        )
        bought = frame[frame["user_id"] == user]
        counts = bought["item_id"].map(lambda i: item_category[i]).value_counts()
        favourite = sorted(counts[counts == counts.max()].index)[0]
        for item, reason in zip([36, 39], reasons, strict=True):
            if item_category[item] == favourite:
                assert reason.kind == NEW_IN_CATEGORY
                assert reason.data["category"] == favourite
                assert reason.data["purchases"] == counts.max()
            else:
                assert reason.kind == NEW_ARRIVAL


def test_buy_again_reasons_use_the_customers_own_purchases(shop):
    frame, data, ctx, _, _ = shop
    model = BuyAgain().fit(data)
    ranked = rank(model, np.arange(60), BusinessRules(top_n=5).for_repeat_list())
    checked = 0
    for user in range(60):
        for item in (i for i in ranked.items[user] if i >= 0):
            reason = buy_again_reason(ctx, model, user, int(item))
            assert reason.kind == BUY_AGAIN
            assert reason.items == (item,)
            mine = frame[(frame["user_id"] == user) & (frame["item_id"] == item)]
            assert reason.data["purchases"] == mine["timestamp"].dt.floor("D").nunique()
            last = mine["timestamp"].max().floor("D")
            assert reason.data["days_ago"] == (frame["timestamp"].max().floor("D") - last).days
            checked += 1
    assert checked > 60
    # An item outside the history gets no buy-again claim.
    outside = next(i for i in range(40) if i not in set(frame.loc[frame.user_id == 0, "item_id"]))
    assert buy_again_reason(ctx, model, 0, outside).kind == POPULAR


def test_segment_list_reasons_count_the_members(shop):
    frame, data, ctx, _, segments = shop
    members = [u for u in range(60) if segments[u] == "At risk"]
    window = frame[frame["timestamp"] > frame["timestamp"].max() - pd.Timedelta(days=30)]
    recent = np.zeros(40)
    for item, group in window[window["user_id"].isin(members)].groupby("item_id"):
        recent[item] = group["user_id"].nunique()
    reasons = segment_reasons(ctx, range(40), "At risk", recent)
    for item, reason in enumerate(reasons):
        if recent[item]:
            assert reason.kind == POPULAR_SEGMENT
            assert reason.data == {"segment": "At risk", "buyers": recent[item], "days": 30}
        else:
            assert reason.kind == POPULAR
