"""Profiles, RFM scores and segments against a hand-computed fixture. No database.

The fixture (catalog time zone Europe/Berlin = UTC+1 in winter, as_of 2024-03-31 00:00 UTC):

products  1 Home > Kitchen / Acme / 10     Kitchen median list price = (10 + 30) / 2 = 20
          2 Home > Kitchen / Acme / 30
          3 Garden / Green / 50            Garden median = 50
          4 (no category) / - / 8          uncategorised median = 8

customer 1 (Alice) three orders 30 days apart, one return, one view:
  O1 2024-01-10 10:00 UTC (Wed 11:00 Berlin)  p1 ×2 = 20 (unit 10, ratio 0.5), p3 ×1 = 50 (ratio 1.0)
  O2 2024-02-09 10:00 UTC (Fri)               p2 ×1 = 30 (ratio 1.5)
  return of O2 2024-02-15 10:00 UTC (Thu)     p2 ×1 = 30
  O3 2024-03-10 10:00 UTC (Sun)               p1 ×1 = 10 (ratio 0.5)
  view 2024-03-20 10:00 UTC (Wed)
  -> frequency 3; purchase value 110; monetary 110 - 30 = 80; aov 110 / 3 = 36.67
     units 5 bought, 1 returned -> return rate 0.2; by value 30 / 110
     recency: 2024-03-31 00:00 - 2024-03-10 10:00 = 20 d 14 h -> 20
     gaps 30 and 30 days -> median 30 -> next order 2024-04-09 10:00 UTC
     categories by purchase value: Kitchen 60 / 110, Garden 50 / 110 (brands the same)
     price ratio median(0.5, 1.0, 1.5, 0.5) = 0.75 < 0.8 -> budget
     weekday: Wed has 3 of 6 events -> 2 (Wednesday); hour 11 local for all
customer 2 (Bob) one order 2024-03-30 12:00 UTC: p3 ×2 = 100 (ratio 1.0 -> mid);
  a purchase on 2024-04-02 is after as_of and ignored.
  -> recency 0 (12 hours), frequency 1, monetary 100; no own gap -> population median gap
customer 3 (Cleo) only browses: 2 views of p3 (Garden), 1 cart of p1 (Kitchen)
  -> no purchases: recency <NA>, scores 0, "No purchases"; categories from browsing 2/3, 1/3
customer 4 (Dan) purchases p4 without an order id (source ""), grouped by *local* day:
  2024-03-01 08:00 UTC and 20:00 UTC (both 1 March in Berlin) -> one order
  2024-03-01 23:30 UTC = 2 March 00:30 in Berlin -> a second order (in UTC it would be one)
  -> frequency 2, monetary 24, gap 15.5 h; recency 29 days 30 min -> 29
customer 5 (Eve) has no events at all. One anonymous event (customer NA) is ignored.

RFM among the 3 buyers (n = 3, score = 1 + floor(5 (min_rank - 1) / 3) -> ranks 1, 2, 3 give 1, 2, 4):
  R on -recency: Dan (29 d) 1, Alice (20 d) 2, Bob (0 d) 4
  F: Bob (1) 1, Dan (2) 2, Alice (3) 4
  M: Dan (24) 1, Alice (80) 2, Bob (100) 4
  FM = floor((F + M) / 2): Alice 3, Bob 2, Dan 1
  -> Alice R2 FM3 = At risk; Bob R4 FM2 = Potential loyalist; Dan R1 FM1 = Lost
Population median gap = median(Alice 30 d, Dan 15.5 h) = (30 + 15.5 / 24) / 2 days.
"""

from __future__ import annotations

import itertools
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from marketing.analytics.profiles import (
    NO_PURCHASES,
    PROFILE_COLUMNS,
    SEGMENT_RULES,
    SEGMENTS,
    ProfileOptions,
    compute_profiles,
    profile_records,
    rfm_scores,
    rfm_segment,
)

AS_OF = pd.Timestamp("2024-03-31 00:00", tz="UTC")
TZ = "Europe/Berlin"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def make_products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [1, 2, 3, 4],
            "title": ["Oak board", "Steel pan", "Garden hose", "Mystery item"],
            "category": ["Home > Kitchen", "Home > Kitchen", "Garden", ""],
            "brand": ["Acme", "Acme", "Green", ""],
            "price": [10.0, 30.0, 50.0, 8.0],
        }
    )


def make_customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "country": ["Germany", "France", "Germany", "Spain", ""],
            "language": ["de", "fr", "de", "es", ""],
            "consent_email": [True, False, True, False, False],
            "consent_sms": [False, False, True, False, False],
            "consent_push": [False, True, False, False, False],
            "consent_ads": [True, True, False, False, False],
            "gender": ["F", "M", "F", "M", "X"],
            "attributes": [
                {"age": 34, "tier": "gold"},
                {"age": 51},
                {},
                {"year_of_birth": 1980},
                {},
            ],
        }
    )


def make_events() -> pd.DataFrame:
    rows = [
        # customer, product, kind, qty, value, when (UTC), source
        (1, 1, "purchase", 2, 20.0, "2024-01-10 10:00", "O1"),
        (1, 3, "purchase", 1, 50.0, "2024-01-10 10:00", "O1"),
        (1, 2, "purchase", 1, 30.0, "2024-02-09 10:00", "O2"),
        (1, 2, "return", 1, 30.0, "2024-02-15 10:00", "O2"),
        (1, 1, "purchase", 1, 10.0, "2024-03-10 10:00", "O3"),
        (1, 1, "view", 1, np.nan, "2024-03-20 10:00", "S1"),
        (2, 3, "purchase", 2, 100.0, "2024-03-30 12:00", "O4"),
        (2, 3, "purchase", 1, 50.0, "2024-04-02 12:00", "O5"),  # after as_of
        (3, 3, "view", 1, np.nan, "2024-02-01 09:00", "S2"),
        (3, 3, "view", 1, np.nan, "2024-02-01 09:05", "S2"),
        (3, 1, "cart", 1, np.nan, "2024-02-01 09:10", "S2"),
        (4, 4, "purchase", 1, 8.0, "2024-03-01 08:00", ""),
        (4, 4, "purchase", 1, 8.0, "2024-03-01 20:00", ""),
        (4, 4, "purchase", 1, 8.0, "2024-03-01 23:30", ""),
        (None, 1, "purchase", 1, 10.0, "2024-03-05 10:00", "O9"),  # anonymous
    ]
    frame = pd.DataFrame(
        rows,
        columns=["customer_id", "product_id", "kind", "quantity", "value", "occurred_at", "source"],
    )
    frame["customer_id"] = frame["customer_id"].astype("Int64")
    frame["product_id"] = frame["product_id"].astype("Int64")
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"]).dt.tz_localize("UTC")
    return frame


@pytest.fixture(scope="module")
def result():
    return compute_profiles(
        make_events(), make_products(), make_customers(), as_of=AS_OF, timezone=TZ
    )


@pytest.fixture(scope="module")
def profiles(result):
    return result.profiles


def test_one_row_per_known_customer_with_all_columns(profiles):
    assert list(profiles.index) == [1, 2, 3, 4, 5]
    assert profiles.index.name == "customer_id"
    assert tuple(profiles.columns) == PROFILE_COLUMNS


def test_alice_rfm_values(profiles):
    alice = profiles.loc[1]
    assert alice["frequency"] == 3
    assert alice["recency_days"] == 20
    assert alice["purchase_value"] == pytest.approx(110.0)
    assert alice["return_value"] == pytest.approx(30.0)
    assert alice["monetary"] == pytest.approx(80.0)
    assert alice["aov"] == pytest.approx(36.67)
    assert alice["purchased_units"] == 5
    assert alice["returned_units"] == 1
    assert alice["return_rate"] == pytest.approx(0.2)
    assert alice["return_rate_value"] == pytest.approx(30 / 110)
    assert alice["events"] == 6
    assert alice["first_seen"] == ts("2024-01-10 10:00")
    assert alice["last_seen"] == ts("2024-03-20 10:00")
    assert alice["first_purchase"] == ts("2024-01-10 10:00")
    assert alice["last_purchase"] == ts("2024-03-10 10:00")


def test_alice_habits_and_next_order(profiles):
    alice = profiles.loc[1]
    assert alice["top_categories"] == [
        {"name": "Home > Kitchen", "share": round(60 / 110, 4)},
        {"name": "Garden", "share": round(50 / 110, 4)},
    ]
    assert alice["top_category"] == "Home > Kitchen"
    assert alice["categories_basis"] == "purchases"
    assert alice["favourite_brands"] == [
        {"name": "Acme", "share": round(60 / 110, 4)},
        {"name": "Green", "share": round(50 / 110, 4)},
    ]
    assert alice["price_ratio"] == pytest.approx(0.75)
    assert alice["price_band"] == "budget"
    assert alice["preferred_weekday"] == 2  # Wednesday
    assert alice["preferred_hour"] == 11  # 10:00 UTC is 11:00 in Berlin
    assert alice["median_gap_days"] == pytest.approx(30.0)
    assert alice["expected_next_order"] == ts("2024-04-09 10:00")


def test_bob_ignores_events_after_as_of_and_uses_population_gap(profiles, result):
    bob = profiles.loc[2]
    assert bob["frequency"] == 1
    assert bob["recency_days"] == 0
    assert bob["monetary"] == pytest.approx(100.0)
    assert bob["aov"] == pytest.approx(100.0)
    assert bob["price_band"] == "mid"
    assert np.isnan(bob["median_gap_days"])
    population_gap = (30 + 15.5 / 24) / 2
    assert result.population.median_gap_days == pytest.approx(population_gap)
    expected = ts("2024-03-30 12:00") + pd.Timedelta(days=population_gap)
    assert abs(bob["expected_next_order"] - expected) < pd.Timedelta(seconds=1)


def test_orders_without_source_are_grouped_by_local_day(profiles):
    dan = profiles.loc[4]
    assert dan["frequency"] == 2  # would be 1 if days were taken in UTC
    assert dan["monetary"] == pytest.approx(24.0)
    assert dan["aov"] == pytest.approx(12.0)
    assert dan["recency_days"] == 29
    assert dan["median_gap_days"] == pytest.approx(15.5 / 24)
    assert dan["top_categories"] == []  # only uncategorised products
    assert dan["categories_basis"] == ""
    # Uncategorised products are compared with the uncategorised median (8): ratio 1.
    assert dan["price_band"] == "mid"


def test_customer_without_purchases_gets_documented_defaults(profiles):
    cleo = profiles.loc[3]
    assert pd.isna(cleo["recency_days"])
    assert cleo["frequency"] == 0
    assert cleo["monetary"] == 0
    assert np.isnan(cleo["aov"])
    assert np.isnan(cleo["return_rate"])
    assert (cleo["r_score"], cleo["f_score"], cleo["m_score"]) == (0, 0, 0)
    assert cleo["rfm_segment"] == NO_PURCHASES
    assert cleo["price_band"] == ""
    assert pd.isna(cleo["expected_next_order"])
    assert cleo["categories_basis"] == "browsing"
    assert cleo["top_categories"] == [
        {"name": "Garden", "share": round(2 / 3, 4)},
        {"name": "Home > Kitchen", "share": round(1 / 3, 4)},
    ]


def test_customer_without_events(profiles):
    eve = profiles.loc[5]
    assert eve["events"] == 0
    assert pd.isna(eve["first_seen"])
    assert pd.isna(eve["preferred_weekday"])
    assert pd.isna(eve["preferred_hour"])
    assert eve["rfm_segment"] == NO_PURCHASES


def test_rfm_scores_and_segments(profiles):
    got = profiles.loc[[1, 2, 4], ["r_score", "f_score", "m_score", "fm_score", "rfm_segment"]]
    assert got.loc[1].tolist() == [2, 4, 2, 3, "At risk"]
    assert got.loc[2].tolist() == [4, 1, 4, 2, "Potential loyalist"]
    assert got.loc[4].tolist() == [1, 2, 1, 1, "Lost"]


def test_population_stats(result):
    pop = result.population
    assert pop.customers == 5
    assert pop.buyers == 3
    assert pop.events == 13  # 15 rows - 1 anonymous - 1 after as_of
    assert pop.segment_counts["At risk"] == 1
    assert pop.segment_counts[NO_PURCHASES] == 2
    assert sum(pop.segment_counts.values()) == 5
    assert pop.category_median_price == {"": 8.0, "Garden": 50.0, "Home > Kitchen": 20.0}


def test_customer_columns_are_copied_and_sensitive_data_dropped(profiles, result):
    assert profiles.loc[1, "country"] == "Germany"
    assert profiles.loc[2, "language"] == "fr"
    assert bool(profiles.loc[2, "consent_push"]) is True
    assert bool(profiles.loc[1, "consent_sms"]) is False
    assert "gender" not in profiles.columns
    assert result.dropped_sensitive == (
        "attributes.age",
        "attributes.year_of_birth",
        "gender",
    )


def test_category_depth_option_rolls_up_paths():
    result = compute_profiles(
        make_events(),
        make_products(),
        make_customers(),
        as_of=AS_OF,
        timezone=TZ,
        options=ProfileOptions(category_depth=1),
    )
    assert result.profiles.loc[1, "top_category"] == "Home"


def test_naive_as_of_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_profiles(
            make_events(), make_products(), None, as_of=datetime(2024, 3, 31), timezone=TZ
        )


def test_missing_event_column_is_named():
    with pytest.raises(ValueError, match="source"):
        compute_profiles(make_events().drop(columns=["source"]), make_products(), None, as_of=AS_OF)


def test_empty_events_give_no_purchase_profiles():
    events = make_events().iloc[0:0]
    result = compute_profiles(events, make_products(), make_customers(), as_of=AS_OF)
    assert len(result.profiles) == 5
    assert set(result.profiles["rfm_segment"]) == {NO_PURCHASES}
    assert result.population.median_gap_days is None


def test_progress_is_reported():
    calls: list[tuple[int, int]] = []
    compute_profiles(
        make_events(),
        make_products(),
        None,
        as_of=AS_OF,
        on_progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[0] == (0, 6)
    assert calls[-1] == (6, 6)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_profile_records_are_plain_python(profiles):
    records = {r["customer_id"]: r for r in profile_records(profiles)}
    assert records[3]["recency_days"] is None
    assert records[3]["aov"] is None
    assert records[5]["first_seen"] is None
    assert records[1]["recency_days"] == 20
    assert type(records[1]["frequency"]) is int
    assert isinstance(records[1]["last_purchase"], datetime)
    assert records[1]["last_purchase"].tzinfo is not None


# --------------------------------------------------------------------------- RFM rules


def test_quintiles_share_the_lowest_score_on_ties_and_ignore_row_order():
    # 10 buyers; six have one order. Min ranks: 1 -> score 1, 7 -> 1 + 5*6//10 = 4,
    # 9 -> 1 + 40//10 = 5, 10 -> 1 + 45//10 = 5.
    freq = np.array([1, 1, 1, 1, 1, 1, 2, 2, 3, 5])
    rec = np.arange(10)  # distinct, so R is a plain quintile: 0 days best
    mon = np.arange(10) * 10.0
    scores = rfm_scores(rec, freq, mon)
    assert scores["f_score"].tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert scores["r_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert scores["m_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    perm = np.random.default_rng(3).permutation(10)
    shuffled = rfm_scores(rec[perm], freq[perm], mon[perm])
    assert shuffled["f_score"].tolist() == scores["f_score"].to_numpy()[perm].tolist()


def test_non_buyers_score_zero():
    scores = rfm_scores(np.array([np.nan, 3.0]), np.array([0, 2]), np.array([0.0, 10.0]))
    assert scores.loc[0].tolist() == [0, 0, 0, 0]
    assert scores.loc[1, "r_score"] == 1  # the only buyer has the lowest (and only) rank


def test_segment_rules_partition_the_grid():
    hits = np.zeros((5, 5), dtype=int)
    for _, (r_lo, r_hi), (fm_lo, fm_hi) in SEGMENT_RULES:
        hits[r_lo - 1 : r_hi, fm_lo - 1 : fm_hi] += 1
    assert (hits == 1).all()
    assert len(SEGMENT_RULES) == 11
    assert SEGMENTS[-1] == NO_PURCHASES


@pytest.mark.parametrize(
    ("r", "fm", "segment"),
    [
        (5, 5, "Champions"),
        (5, 4, "Champions"),
        (4, 5, "Loyal"),
        (3, 4, "Loyal"),
        (5, 3, "Potential loyalist"),
        (4, 2, "Potential loyalist"),
        (5, 1, "New"),
        (4, 1, "Promising"),
        (3, 3, "Need attention"),
        (3, 2, "About to sleep"),
        (3, 1, "About to sleep"),
        (2, 4, "At risk"),
        (1, 3, "At risk"),
        (1, 5, "Can't lose them"),
        (2, 5, "Can't lose them"),
        (2, 2, "Hibernating"),
        (2, 1, "Hibernating"),
        (1, 2, "Lost"),
        (1, 1, "Lost"),
        (0, 0, NO_PURCHASES),
    ],
)
def test_segment_table(r, fm, segment):
    assert rfm_segment(np.array([r]), np.array([fm]))[0] == segment


def test_every_score_combination_lands_in_exactly_one_named_segment():
    combos = np.array(list(itertools.product(range(1, 6), repeat=3)))
    r, f, m = combos.T
    segments = rfm_segment(r, (f + m) // 2)
    assert set(segments) <= set(SEGMENTS[:-1])
    assert len(segments) == 125


def test_segment_rejects_out_of_range_scores():
    with pytest.raises(ValueError):
        rfm_segment(np.array([6]), np.array([1]))
