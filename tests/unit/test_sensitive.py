"""The sensitive-attribute guard: which names match, and what stripping removes."""

from __future__ import annotations

import pandas as pd
import pytest

from marketing.analytics.sensitive import (
    SensitiveFeatureError,
    assert_no_sensitive,
    feature_report,
    is_sensitive,
    normalise_name,
    strip_sensitive,
)


@pytest.mark.parametrize(
    "name",
    [
        "gender",
        "Gender",
        "sex",
        "customer_gender",
        "age",
        "Age",
        "avg_age",
        "age_band",
        "birth_year",
        "YearOfBirth",
        "year-of birth",
        "date_of_birth",
        "DOB",
        "birthday",
        "ethnicity",
        "race",
        "religion",
        "faith",
        "attr_gender",
    ],
)
def test_sensitive_names_and_synonyms_match(name):
    assert is_sensitive(name)


@pytest.mark.parametrize(
    "name",
    [
        "page_views",
        "language",
        "usage",
        "stage",
        "country",
        "loyalty_points",
        "average",
        "marriage",
    ],
)
def test_ordinary_names_do_not_match(name):
    assert not is_sensitive(name)


def test_the_list_is_configurable():
    assert not is_sensitive("gender", sensitive=())
    assert is_sensitive("shoe_size", sensitive=("shoe_size",))
    assert is_sensitive("sex", sensitive=("gender",))  # synonyms follow their base name
    assert not is_sensitive("age", sensitive=("gender",))


def test_normalise_name():
    assert normalise_name("YearOfBirth") == "year_of_birth"
    assert normalise_name(" Date-of birth ") == "date_of_birth"


def test_strip_removes_columns_and_attribute_keys_without_touching_the_input():
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "Gender": ["F", "M"],
            "country": ["DE", "FR"],
            "attributes": [{"age": 30, "tier": "gold"}, {"Religion": "x", "tier": "silver"}],
        }
    )
    out = strip_sensitive(customers)
    assert list(out.customers.columns) == ["customer_id", "country", "attributes"]
    assert out.customers["attributes"].tolist() == [{"tier": "gold"}, {"tier": "silver"}]
    assert out.dropped == ("Gender", "attributes.Religion", "attributes.age")
    assert "Gender" in customers.columns
    assert customers["attributes"][0] == {"age": 30, "tier": "gold"}


def test_assert_no_sensitive_and_report():
    assert_no_sensitive(["recency_days", "attr_tier"])
    with pytest.raises(SensitiveFeatureError, match="attr_age"):
        assert_no_sensitive(["recency_days", "attr_age"])
    with pytest.raises(SensitiveFeatureError):
        feature_report(["gender"], [])
    report = feature_report(["recency_days"], ["gender"])
    assert report.used == ("recency_days",)
    assert report.dropped_sensitive == ("gender",)
    assert "sex" in report.sensitive_terms
