"""CLV and churn models: holdout design, quality figures, fallbacks, sensitive attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from marketing.analytics.clv import (
    HEURISTIC_FEATURES,
    MIN_BUYERS,
    feature_names,
    fit_value_models,
)
from marketing.analytics.profiles import NS_PER_DAY

AS_OF = pd.Timestamp("2024-02-05", tz="UTC")
START = pd.Timestamp("2023-01-01", tz="UTC")


def make_shop(
    n: int = 1500, *, seed: int = 1, start: pd.Timestamp = START, drop_out: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Customers who order as a Poisson process until they drop out.

    Each customer has an order rate (0.5 .. 30 orders a year), a typical order value and,
    when ``drop_out``, a random day after which they never come back — so recency and
    frequency carry a learnable signal. Gender is *derived from spend* (the bigger half of
    spenders are "F") and age from the order rate, so a model that used either would
    change when they are shuffled. ``loyalty_points`` (not sensitive) tracks the rate too.
    """
    rng = np.random.default_rng(seed)
    days = (AS_OF - start).days
    rate = rng.gamma(1.5, 4.0, n) / 365 + 1.0 / 365  # orders per day
    spend = rng.lognormal(3.5, 0.7, n)
    first = rng.uniform(0, days * 0.5, n)
    last = np.where(drop_out & (rng.random(n) < 0.5), rng.uniform(first, days), days + 1)
    if not drop_out:
        last = np.full(n, days + 1.0)
    counts = rng.poisson(rate * (np.minimum(last, days) - first))
    cust = np.repeat(np.arange(1, n + 1), counts)
    t = rng.uniform(np.repeat(first, counts), np.repeat(np.minimum(last, days), counts))
    value = np.round(np.repeat(spend, counts) * rng.lognormal(0, 0.3, cust.size), 2)
    product = rng.integers(1, 6, cust.size)
    events = pd.DataFrame(
        {
            "customer_id": cust,
            "product_id": pd.array(product, dtype="Int64"),
            "kind": "purchase",
            "quantity": 1,
            "value": value,
            "occurred_at": start + pd.to_timedelta(t, unit="D"),
            "source": [f"O{i}" for i in range(cust.size)],
        }
    )
    # A few returns and views so every feature has something to chew on.
    ret = events.sample(frac=0.03, random_state=seed).assign(kind="return")
    ret["occurred_at"] = ret["occurred_at"] + pd.Timedelta(days=5)
    ret = ret[ret["occurred_at"] <= AS_OF]
    views = events.sample(frac=0.5, random_state=seed + 1).assign(
        kind="view", value=np.nan, source="S"
    )
    views["occurred_at"] = views["occurred_at"] - pd.Timedelta(hours=1)
    # Window shoppers: customers who only browse (first few hundred days).
    browsers = rng.choice(
        np.arange(1, n + 1)[counts == 0], size=min(100, int((counts == 0).sum())), replace=False
    )
    browse = pd.DataFrame(
        {
            "customer_id": browsers,
            "product_id": pd.array(rng.integers(1, 6, browsers.size), dtype="Int64"),
            "kind": "view",
            "quantity": 1,
            "value": np.nan,
            "occurred_at": start
            + pd.to_timedelta(rng.uniform(0, days * 0.5, browsers.size), unit="D"),
            "source": "S",
        }
    )
    events = pd.concat([events, ret, views, browse], ignore_index=True)
    products = pd.DataFrame(
        {
            "product_id": [1, 2, 3, 4, 5],
            "category": ["Home > Kitchen", "Home > Bath", "Garden", "Toys", "Toys > Puzzles"],
            "brand": ["A", "A", "B", "C", "C"],
            "price": [20.0, 30.0, 40.0, 25.0, 15.0],
        }
    )
    gender = np.where(spend > np.median(spend), "F", "M")
    age = np.round(20 + 400 * rate).astype(int)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 11),  # 10 customers without any event
            "country": rng.choice(["UK", "DE", "FR"], n + 10),
            "language": "en",
            "consent_email": rng.random(n + 10) < 0.5,
            "consent_sms": False,
            "consent_push": False,
            "consent_ads": False,
            "gender": np.r_[gender, ["X"] * 10],
            "attributes": [
                {"age": int(a), "loyalty_points": int(r * 36500) + int(k)}
                for a, r, k in zip(
                    np.r_[age, [40] * 10],
                    np.r_[rate, [0] * 10],
                    rng.integers(0, 50, n + 10),
                    strict=True,
                )
            ],
        }
    )
    return events, products, customers


@pytest.fixture(scope="module")
def shop():
    return make_shop()


@pytest.fixture(scope="module")
def fitted(shop):
    events, products, customers = shop
    return fit_value_models(events, products, customers, as_of=AS_OF, seed=3)


def test_horizon_and_cutoff_follow_the_history(shop, fitted):
    events = shop[0]
    history = (AS_OF - events["occurred_at"].min()) / pd.Timedelta(days=1)
    horizon = int(min(365, 0.5 * history))
    assert fitted.horizon_days == horizon
    assert fitted.quality.cutoff == AS_OF - pd.Timedelta(days=horizon)
    assert fitted.scale_to_12m == pytest.approx(365 / horizon)


def test_quality_figures_are_measured_on_held_out_customers(fitted):
    q = fitted.quality
    assert q.available, q.reason
    assert q.reason == ""
    assert q.train_customers + q.test_customers >= 900
    assert q.test_customers == pytest.approx(0.25 * (q.train_customers + q.test_customers), abs=1)
    # Churn: recency and frequency carry real signal in this shop; the model uses it as
    # well as recency alone does (the shop is memoryless, so it cannot do much better).
    assert q.churn_auc > 0.62
    assert q.churn_auc > q.churn_auc_recency - 0.05
    assert q.churn_brier < 0.25
    assert 0.1 < q.churn_rate < 0.5
    # Value: clearly better than predicting everyone's mean, close to or better than
    # last period's value, and an expected value (totals in the right range).
    assert q.clv_mae < 0.9 * q.mean_baseline_mae
    assert q.clv_mae < 1.1 * q.baseline_mae
    assert q.clv_mae_improvement == pytest.approx(1 - q.clv_mae / q.baseline_mae)
    assert 0.6 < q.predicted_total / q.actual_total < 1.5


def test_holdout_predictions_rank_customers(shop):
    """Refit on the same cutoff by hand and check the ranking the UI relies on."""
    events, products, customers = shop
    cutoff_result = fit_value_models(
        events, products, None, as_of=AS_OF - pd.Timedelta(days=199), seed=3, horizon_days=150
    )
    future = events[
        (events["kind"] == "purchase")
        & (events["occurred_at"] > AS_OF - pd.Timedelta(days=199))
        & (events["occurred_at"] <= AS_OF - pd.Timedelta(days=199) + pd.Timedelta(days=150))
    ]
    actual = future.groupby("customer_id")["value"].sum()
    preds = cutoff_result.predictions
    preds = preds[preds["basis"] == "model"]
    joined = preds.join(actual.rename("actual")).fillna({"actual": 0.0})
    assert joined["clv_12m"].corr(joined["actual"], method="spearman") > 0.4
    churned = joined["actual"] == 0
    # Random would be 0.5 and an inverted model below it; the memoryless shop caps it near 0.7.
    assert roc_auc_score(churned, joined["churn_probability"]) > 0.58


def test_predictions_cover_every_customer(shop, fitted):
    customers = shop[2]
    preds = fitted.predictions
    assert list(preds.index) == sorted(customers["customer_id"])
    assert (preds["clv_12m"] >= 0).all()
    assert preds["churn_probability"].between(0, 1).all()
    assert set(preds["basis"]) == {"model", "base rate"}
    # The 10 customers without events get the base rate of non-buyers at the cutoff.
    no_events = preds.loc[customers["customer_id"].iloc[-10:]]
    assert (no_events["basis"] == "base rate").all()
    assert no_events["clv_12m"].nunique() == 1


def test_predictions_rank_active_big_spenders_above_lapsed_ones(shop, fitted):
    events = shop[0]
    purchases = events[events["kind"] == "purchase"]
    last = purchases.groupby("customer_id")["occurred_at"].max()
    spent = purchases.groupby("customer_id")["value"].sum()
    preds = fitted.predictions.loc[last.index]
    recent = last > AS_OF - pd.Timedelta(days=30)
    assert (
        preds.loc[recent, "churn_probability"].mean()
        < preds.loc[~recent, "churn_probability"].mean()
    )
    top = spent >= spent.quantile(0.8)
    assert preds.loc[top & recent, "clv_12m"].median() > preds.loc[~top, "clv_12m"].median()


def test_same_seed_same_results(shop, fitted):
    again = fit_value_models(*shop, as_of=AS_OF, seed=3)
    pd.testing.assert_frame_equal(again.predictions, fitted.predictions)
    assert again.quality == fitted.quality


def test_sensitive_attributes_are_never_features(shop, fitted):
    used = fitted.features.used
    assert "attr_loyalty_points" in used  # non-sensitive attributes do reach the model
    assert "country" in used
    assert not any("gender" in f or "age" in f.split("_") for f in used)
    assert set(fitted.features.dropped_sensitive) == {"gender", "attributes.age"}
    assert "gender" not in feature_names(shop[2])
    assert "attr_loyalty_points" in feature_names(shop[2])


def _shuffle_sensitive(customers: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = customers.copy()
    out["gender"] = rng.permutation(out["gender"].to_numpy())
    ages = rng.permutation([a["age"] for a in out["attributes"]])
    out["attributes"] = [{**a, "age": int(x)} for a, x in zip(out["attributes"], ages, strict=True)]
    return out


def test_shuffling_sensitive_attributes_changes_nothing(shop, fitted):
    events, products, customers = shop
    shuffled = fit_value_models(
        events, products, _shuffle_sensitive(customers, 9), as_of=AS_OF, seed=3
    )
    pd.testing.assert_frame_equal(shuffled.predictions, fitted.predictions)
    assert shuffled.quality == fitted.quality


def test_without_the_guard_shuffling_would_show(shop, fitted):
    """Control for the test above: with an empty sensitive list gender becomes a feature
    (it is derived from spend here), and shuffling it moves the predictions."""
    events, products, customers = shop
    plain = fit_value_models(events, products, customers, as_of=AS_OF, seed=3, sensitive=())
    assert "attr_age" in plain.features.used
    shuffled = fit_value_models(
        events, products, _shuffle_sensitive(customers, 9), as_of=AS_OF, seed=3, sensitive=()
    )
    assert not plain.predictions["clv_12m"].equals(shuffled.predictions["clv_12m"])


def test_short_history_falls_back_with_a_reason():
    events, products, customers = make_shop(200, start=AS_OF - pd.Timedelta(days=40))
    result = fit_value_models(events, products, customers, as_of=AS_OF, seed=0)
    q = result.quality
    assert not q.available
    assert "days of history" in q.reason
    assert q.clv_mae is None and q.churn_auc is None
    assert tuple(result.features.used) == HEURISTIC_FEATURES
    preds = result.predictions
    assert len(preds) == 210
    buyers = preds["basis"] == "heuristic"
    assert buyers.sum() > 0
    assert preds.loc[~buyers, "clv_12m"].eq(0).all()
    assert preds.loc[~buyers, "churn_probability"].isna().all()


def test_heuristic_values_are_the_documented_formulas():
    # One customer, 100 spent in two orders 10 days apart, last 20 days before as_of:
    # history 30 days -> clv = 100 * 365 / max(30, 90); tau = 2 * 10 days;
    # churn = 1 - exp(-20 / 20).
    events = pd.DataFrame(
        {
            "customer_id": [1, 1],
            "product_id": pd.array([1, 1], dtype="Int64"),
            "kind": "purchase",
            "quantity": 1,
            "value": [40.0, 60.0],
            "occurred_at": [AS_OF - pd.Timedelta(days=30), AS_OF - pd.Timedelta(days=20)],
            "source": ["A", "B"],
        }
    )
    products = pd.DataFrame({"product_id": [1], "category": [""], "brand": [""], "price": [1.0]})
    result = fit_value_models(events, products, None, as_of=AS_OF)
    row = result.predictions.loc[1]
    assert row["clv_12m"] == pytest.approx(100 * 365 / 90, abs=0.01)
    assert row["churn_probability"] == pytest.approx(1 - np.exp(-1), abs=1e-4)


def test_few_buyers_fall_back_with_a_reason():
    events, products, customers = make_shop(30, seed=4)
    result = fit_value_models(events, products, customers, as_of=AS_OF)
    assert not result.quality.available
    assert "customers had bought before the cutoff" in result.quality.reason
    assert str(MIN_BUYERS) in result.quality.reason
    assert result.predictions["clv_12m"].notna().all()


def regular_shop(n: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Everyone orders every 10 days for a year: nobody churns in any holdout."""
    days = np.arange(0, 360, 10)
    cust = np.repeat(np.arange(1, n + 1), days.size)
    t = np.tile(days, n)
    value = np.repeat(np.linspace(10, 100, n), days.size)
    events = pd.DataFrame(
        {
            "customer_id": cust,
            "product_id": pd.array(np.ones(cust.size, dtype=int), dtype="Int64"),
            "kind": "purchase",
            "quantity": 1,
            "value": value,
            "occurred_at": AS_OF - pd.Timedelta(days=365) + pd.to_timedelta(t, unit="D"),
            "source": [f"O{i}" for i in range(cust.size)],
        }
    )
    products = pd.DataFrame({"product_id": [1], "category": ["A"], "brand": [""], "price": [1.0]})
    return events, products


def test_no_churners_means_no_churn_figures_but_values_still_come():
    events, products = regular_shop()
    result = fit_value_models(events, products, None, as_of=AS_OF, seed=0)
    q = result.quality
    assert q.churn_auc is None
    assert not q.available
    assert "churn" in q.reason
    assert q.clv_mae is not None
    preds = result.predictions
    assert (preds["basis"] == "model").all()
    assert (preds["churn_probability"] == 0).all()  # the observed churn rate
    # Bigger regular spenders are worth more.
    assert (
        preds["clv_12m"].is_monotonic_increasing
        or preds["clv_12m"].corr(
            pd.Series(np.arange(len(preds)), index=preds.index), method="spearman"
        )
        > 0.95
    )


def test_progress_reaches_the_end(shop):
    events, products, customers = shop
    calls: list[tuple[int, int]] = []
    fit_value_models(
        events.iloc[:50], products, None, as_of=AS_OF, on_progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1][0] == calls[-1][1]


def test_explicit_horizon_is_used(shop):
    events, products, _ = shop
    result = fit_value_models(events, products, None, as_of=AS_OF, horizon_days=90, seed=1)
    assert result.horizon_days == 90
    assert result.quality.cutoff.value == AS_OF.value - 90 * NS_PER_DAY
    assert result.scale_to_12m == pytest.approx(365 / 90)
