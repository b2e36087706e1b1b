"""Learned segments: recovering planted groups, descriptions, determinism, sensitive data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing.analytics.clustering import (
    BEHAVIOUR_FEATURES,
    assign_segments,
    learn_segments,
    segment_feature_names,
)
from marketing.analytics.profiles import compute_profiles

# Three planted groups of 80 buyers each (values jittered by a few percent), plus 20
# customers without purchases:
#   A "champions": bought 5 days ago, 12 orders, 2,400 spent, baskets of 200, no returns,
#     pays 1.5 x the category median, 90 % of spend in Home > Kitchen
#   B "lapsed bargain hunters": 300 days ago, 1 order of 30, pays 0.6 x, 80 % Garden
#   C "returners": 60 days ago, 2 orders, 300 spent (150 a basket), returns half the units,
#     80 % Fashion > Shoes
GROUPS = {
    "A": {"rec": 5, "freq": 12, "mon": 2400, "aov": 200, "rr": 0.0, "ratio": 1.5,
          "cat": "Home > Kitchen", "share": 0.9},
    "B": {"rec": 300, "freq": 1, "mon": 30, "aov": 30, "rr": 0.0, "ratio": 0.6,
          "cat": "Garden", "share": 0.8},
    "C": {"rec": 60, "freq": 2, "mon": 300, "aov": 150, "rr": 0.5, "ratio": 1.0,
          "cat": "Fashion > Shoes", "share": 0.8},
}  # fmt: skip
PER_GROUP = 80


def make_profiles(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    cid = 1
    for name, g in GROUPS.items():
        for _ in range(PER_GROUP):
            jitter = rng.uniform(0.9, 1.1, 6)
            rows.append(
                {
                    "customer_id": cid,
                    "recency_days": round(g["rec"] * jitter[0]),
                    "frequency": max(1, round(g["freq"] * jitter[1])),
                    "monetary": g["mon"] * jitter[2],
                    "aov": g["aov"] * jitter[3],
                    "return_rate": min(1.0, g["rr"] * jitter[4]),
                    "price_ratio": g["ratio"] * jitter[5],
                    "top_categories": [
                        {"name": g["cat"], "share": g["share"]},
                        {"name": "Toys", "share": round(1 - g["share"], 4)},
                    ],
                }
            )
            truth.append(name)
            cid += 1
    for _ in range(20):
        rows.append(
            {
                "customer_id": cid,
                "recency_days": pd.NA,
                "frequency": 0,
                "monetary": 0.0,
                "aov": np.nan,
                "return_rate": np.nan,
                "price_ratio": np.nan,
                "top_categories": [],
            }
        )
        truth.append("-")
        cid += 1
    frame = pd.DataFrame(rows).set_index("customer_id")
    frame["recency_days"] = frame["recency_days"].astype("Int64")
    return frame, np.array(truth)


def make_customers(profiles: pd.DataFrame, truth: np.ndarray) -> pd.DataFrame:
    """Gender and age that *follow the planted groups*, plus a neutral loyalty number."""
    gender = np.where(truth == "A", "F", np.where(truth == "B", "M", "X"))
    age = np.where(truth == "A", 30, np.where(truth == "B", 70, 50))
    return pd.DataFrame(
        {
            "customer_id": profiles.index,
            "country": "UK",
            "gender": gender,
            "age": age,
            "attributes": [{"date_of_birth": "1990-01-01", "loyalty": 1} for _ in truth],
        }
    )


@pytest.fixture(scope="module")
def planted():
    return make_profiles()


@pytest.fixture(scope="module")
def result(planted):
    profiles, _ = planted
    return learn_segments(profiles, k_range=(2, 6), seed=1)


def _cluster_of(result, truth, group):
    labels = result.labels.to_numpy()[truth == group]
    values, counts = np.unique(labels, return_counts=True)
    return values[counts.argmax()], counts.max() / labels.size


def test_planted_groups_are_recovered(planted, result):
    _, truth = planted
    assert result.available
    assert result.k == 3
    assert result.scores[3] == max(result.scores.values())
    assert set(result.scores) == {2, 3, 4, 5, 6}
    found = {g: _cluster_of(result, truth, g) for g in GROUPS}
    assert {label for label, _ in found.values()} == {0, 1, 2}
    assert all(purity == 1.0 for _, purity in found.values())


def test_customers_without_purchases_are_not_clustered(planted, result):
    _, truth = planted
    assert (result.labels.to_numpy()[truth == "-"] == -1).all()
    assert sum(c.size for c in result.clusters) == 3 * PER_GROUP


def test_descriptions_name_what_sets_each_cluster_apart(planted, result):
    _, truth = planted
    by_group = {g: result.clusters[_cluster_of(result, truth, g)[0]] for g in GROUPS}
    a, b, c = by_group["A"], by_group["B"], by_group["C"]
    assert "mostly Kitchen" in a.phrases
    assert "frequent buyers (12 orders)" in a.phrases
    assert "mostly Garden" in b.phrases
    assert any(p in b.phrases for p in ("small baskets", "bargain hunters", "low spend"))
    assert "returns 50% of items" in c.phrases
    assert sum(p.startswith(("mostly ", "likes ")) for p in c.phrases) == 1
    for cluster in result.clusters:
        assert 1 <= len(cluster.phrases) <= 5
        assert cluster.description == " · ".join(cluster.phrases)
    assert len({cl.description for cl in result.clusters}) == 3
    assert a.summary["frequency"] == pytest.approx(12, abs=1)
    assert b.summary["recency_days"] == pytest.approx(300, rel=0.1)


def test_recency_is_described_in_days():
    # Two groups that differ only in recency: 400 days vs 3 days.
    n = 60
    profiles = pd.DataFrame(
        {
            "recency_days": pd.array([400] * n + [3] * n, dtype="Int64"),
            "frequency": 2,
            "monetary": 100.0,
            "aov": 50.0,
            "return_rate": 0.0,
            "price_ratio": 1.0,
            "top_categories": [[] for _ in range(2 * n)],
        },
        index=pd.Index(np.arange(1, 2 * n + 1), name="customer_id"),
    )
    profiles["monetary"] += np.linspace(0, 1, 2 * n)  # a little spread so k-means has work
    result = learn_segments(profiles, k_range=(2, 3), seed=0)
    assert result.k == 2
    descriptions = sorted(c.description for c in result.clusters)
    assert descriptions == ["bought in last 7 days", "lapsed 365+ days"]


def test_clusters_are_numbered_by_size_and_shares_add_up(result):
    sizes = [c.size for c in result.clusters]
    assert sizes == sorted(sizes, reverse=True)
    assert sum(c.share for c in result.clusters) == pytest.approx(1.0, abs=1e-3)
    assert [c.label for c in result.clusters] == list(range(result.k))


def test_same_seed_same_labels(planted, result):
    profiles, _ = planted
    again = learn_segments(profiles, k_range=(2, 6), seed=1)
    pd.testing.assert_series_equal(again.labels, result.labels)
    assert [c.description for c in again.clusters] == [c.description for c in result.clusters]


def test_features_used_are_listed(planted, result):
    profiles, _ = planted
    used = result.features.used
    assert used[: len(BEHAVIOUR_FEATURES)] == BEHAVIOUR_FEATURES
    assert "share:Toys" in used and "share:Home > Kitchen" in used
    assert list(used) == segment_feature_names(profiles)


def test_assign_segments_places_profiles_like_the_fit(planted, result):
    profiles, _ = planted
    pd.testing.assert_series_equal(assign_segments(result, profiles), result.labels)


def loose_profiles(n: int = 300, seed: int = 2) -> pd.DataFrame:
    """Buyers without planted groups: k-means boundaries here move with any extra feature,
    so a sensitive attribute that slipped through would show in the labels."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "recency_days": pd.array(rng.integers(0, 365, n), dtype="Int64"),
            "frequency": rng.integers(1, 8, n),
            "monetary": rng.lognormal(4, 1, n),
            "aov": rng.lognormal(3.5, 0.5, n),
            "return_rate": rng.uniform(0, 0.3, n),
            "price_ratio": rng.lognormal(0, 0.3, n),
            "top_categories": [[{"name": "Home", "share": 1.0}] for _ in range(n)],
        },
        index=pd.Index(np.arange(1, n + 1), name="customer_id"),
    )


def loose_customers(profiles: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(profiles)
    return pd.DataFrame(
        {
            "customer_id": profiles.index,
            "gender": rng.choice(["F", "M", "X"], n),
            "age": rng.integers(18, 90, n),
            "attributes": [
                {"date_of_birth": f"19{x}-01-01", "YearOfBirth": 1900 + x, "loyalty": int(x % 7)}
                for x in rng.integers(30, 99, n)
            ],
        }
    )


def _shuffled(customers: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = customers.assign(
        gender=rng.permutation(customers["gender"].to_numpy()),
        age=rng.permutation(customers["age"].to_numpy()),
    )
    years = rng.permutation([a["YearOfBirth"] for a in out["attributes"]])
    out["attributes"] = [
        {**a, "YearOfBirth": int(y)} for a, y in zip(out["attributes"], years, strict=True)
    ]
    return out


ASKED = ("gender", "age", "date_of_birth", "YearOfBirth", "loyalty")


def test_sensitive_attributes_cannot_change_the_clustering():
    profiles = loose_profiles()
    customers = loose_customers(profiles)
    base = learn_segments(profiles, k_range=(3, 5), seed=1, customers=customers, attributes=ASKED)
    again = learn_segments(
        profiles, k_range=(3, 5), seed=1, customers=_shuffled(customers), attributes=ASKED
    )
    pd.testing.assert_series_equal(again.labels, base.labels)
    assert "attr_loyalty" in base.features.used  # non-sensitive attributes do get through
    assert not any("age" in f or "gender" in f or "birth" in f for f in base.features.used)
    assert {"gender", "age", "date_of_birth", "YearOfBirth"} <= set(base.features.dropped_sensitive)


def test_without_the_guard_the_same_shuffle_would_change_labels():
    """Control for the test above: with nothing marked sensitive the attributes become
    features, and the same shuffle moves customers between clusters."""
    profiles = loose_profiles()
    customers = loose_customers(profiles)
    kwargs = {"k_range": (3, 5), "seed": 1, "attributes": ("age", "YearOfBirth"), "sensitive": ()}
    base = learn_segments(profiles, customers=customers, **kwargs)
    assert "attr_age" in base.features.used
    again = learn_segments(profiles, customers=_shuffled(customers), **kwargs)
    assert not again.labels.equals(base.labels)


def test_small_data_returns_one_group_with_a_reason(planted):
    profiles, _ = planted
    few = profiles.iloc[:10]
    result = learn_segments(few, k_range=(3, 8), seed=0)
    assert not result.available
    assert "only 10 customers" in result.reason
    assert result.k == 1
    assert (result.labels == 0).all()
    assert len(result.clusters) == 1


def test_no_buyers_at_all():
    profiles, _ = make_profiles()
    none = profiles[profiles["frequency"] == 0]
    result = learn_segments(none)
    assert not result.available
    assert (result.labels == -1).all()
    assert result.clusters == ()


def test_bad_k_range_is_refused(planted):
    with pytest.raises(ValueError, match="k_range"):
        learn_segments(planted[0], k_range=(1, 3))


def test_runs_on_computed_profiles():
    """End to end with `compute_profiles` output (columns and dtypes as produced)."""
    rng = np.random.default_rng(0)
    n = 300
    events = pd.DataFrame(
        {
            "customer_id": rng.integers(1, 120, n),
            "product_id": pd.array(rng.integers(1, 4, n), dtype="Int64"),
            "kind": rng.choice(["purchase", "view", "return"], n, p=[0.6, 0.35, 0.05]),
            "quantity": 1,
            "value": rng.uniform(5, 80, n).round(2),
            "occurred_at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.uniform(0, 300, n), unit="D"),
            "source": [f"O{i}" for i in rng.integers(0, 200, n)],
        }
    )
    products = pd.DataFrame(
        {"product_id": [1, 2, 3], "category": ["A", "B", "A > C"], "brand": "", "price": 20.0}
    )
    profiles = compute_profiles(
        events, products, None, as_of=pd.Timestamp("2024-11-01", tz="UTC")
    ).profiles
    result = learn_segments(profiles, k_range=(3, 5), seed=0)
    assert result.available
    assert 3 <= result.k <= 5
    assert (result.labels[profiles["frequency"] == 0] == -1).all()
    assert (result.labels[profiles["frequency"] > 0] >= 0).all()
