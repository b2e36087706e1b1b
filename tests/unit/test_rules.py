"""Rule trees: validation with paths, normal form, and the pandas reference evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing.analytics.rules import (
    FIELDS,
    MAX_DEPTH,
    MAX_MIN_COUNT,
    OPERATORS,
    RuleError,
    describe_rule,
    evaluate_rule,
    normalise_rule,
    rule_fields,
    rule_rename_categories,
)

AS_OF = pd.Timestamp("2024-06-01", tz="UTC")

#    id  recency freq  monetary aov  return clv   churn segment          band     country          lang
#    1   5       10    1000     100  0.0    1500  0.1   Champions        premium  Germany          de
#    2   40      3     150      50   0.2    200   0.4   Need attention   mid      France           fr
#    3   200     1     20       20   0.5    10    0.9   Lost             budget   Germany          de
#    4   <NA>    0     0        NaN  NaN    NaN   NaN   No purchases     ""       ""               en
#    5   90      2     80       40   0.0    60    0.7   Hibernating      mid      United Kingdom   en
PROFILES = pd.DataFrame(
    {
        "recency_days": pd.array([5, 40, 200, None, 90], dtype="Int64"),
        "frequency": [10, 3, 1, 0, 2],
        "monetary": [1000.0, 150.0, 20.0, 0.0, 80.0],
        "aov": [100.0, 50.0, 20.0, np.nan, 40.0],
        "return_rate": [0.0, 0.2, 0.5, np.nan, 0.0],
        "r_score": [5, 3, 1, 0, 2],
        "f_score": [5, 4, 1, 0, 2],
        "m_score": [5, 3, 1, 0, 2],
        "clv_12m": [1500.0, 200.0, 10.0, np.nan, 60.0],
        "churn_probability": [0.1, 0.4, 0.9, np.nan, 0.7],
        "rfm_segment": ["Champions", "Need attention", "Lost", "No purchases", "Hibernating"],
        "price_band": ["premium", "mid", "budget", "", "mid"],
        "country": ["Germany", "France", "Germany", "", "United Kingdom"],
        "language": ["de", "fr", "de", "en", "en"],
        "consent_email": [True, True, False, False, False],
        "consent_sms": [False, True, False, False, False],
        "consent_push": [False, False, False, True, False],
        "consent_ads": [False, False, False, False, True],
    },
    index=pd.Index([1, 2, 3, 4, 5], name="customer_id"),
)

PRODUCTS = pd.DataFrame(
    {
        "product_id": [1, 2, 3, 4],
        "category": ["Home > Kitchen", "Home > Bath", "Garden", "Homeware"],
        "brand": "",
        "price": 10.0,
    }
)


def _events() -> pd.DataFrame:
    rows = [
        (1, 1, "purchase", "2024-05-01"),
        (1, 2, "cart", "2024-05-30"),
        (2, 2, "purchase", "2024-04-20"),
        (2, 1, "view", "2024-05-12"),
        (3, 3, "purchase", "2023-11-14"),
        (4, 1, "view", "2024-05-27"),
        (4, 2, "view", "2024-05-28"),
        (4, 3, "view", "2024-05-31"),
        (5, 4, "purchase", "2024-03-03"),
        (5, 3, "purchase", "2024-06-05"),  # after as_of: not "bought" yet
        (None, 3, "view", "2024-05-31"),  # anonymous
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "kind", "occurred_at"])
    frame["customer_id"] = frame["customer_id"].astype("Int64")
    frame["product_id"] = frame["product_id"].astype("Int64")
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"]).dt.tz_localize("UTC")
    frame["quantity"] = 1
    frame["value"] = 10.0
    frame["source"] = ""
    return frame


EVENTS = _events()


def match(tree) -> set[int]:
    mask = evaluate_rule(tree, PROFILES, events=EVENTS, products=PRODUCTS, as_of=AS_OF)
    return set(PROFILES.index[mask.to_numpy()])


def cond(field, operator, value=None):
    node = {"field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


# --------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("lt", 50, {1, 2}),
        ("lte", 40, {1, 2}),
        ("gt", 40, {3, 5}),
        ("gte", 90, {3, 5}),
        ("eq", 5, {1}),
        ("ne", 5, {2, 3, 5}),  # 4 has no purchases: a missing number never matches
        ("in", [5, 200], {1, 3}),
        ("not_in", [5], {2, 3, 5}),
    ],
)
def test_number_operators(operator, value, expected):
    assert match(cond("recency_days", operator, value)) == expected


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("frequency", "gte", 2, {1, 2, 5}),
        ("frequency", "eq", 0, {4}),
        ("monetary", "gt", 100, {1, 2}),
        ("aov", "lte", 40, {3, 5}),
        ("return_rate", "gte", 0.2, {2, 3}),
        ("r_score", "in", [1, 2], {3, 5}),
        ("f_score", "eq", 5, {1}),
        ("m_score", "ne", 5, {2, 3, 4, 5}),  # scores are never missing (0 = no purchases)
        ("clv_12m", "gt", 100, {1, 2}),
        ("churn_probability", "gte", 0.7, {3, 5}),
        ("churn_probability", "lt", 0.5, {1, 2}),
    ],
)
def test_every_number_field(field, operator, value, expected):
    assert match(cond(field, operator, value)) == expected


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("rfm_segment", "eq", "champions", {1}),
        ("rfm_segment", "ne", "Champions", {2, 3, 4, 5}),
        ("rfm_segment", "in", ["Lost", "Hibernating"], {3, 5}),
        ("rfm_segment", "not_in", ["Lost", "No purchases"], {1, 2, 5}),
        ("price_band", "eq", "", {4}),
        ("price_band", "not_in", ["premium"], {2, 3, 4, 5}),
        ("country", "eq", "germany", {1, 3}),
        ("country", "ne", "Germany", {2, 4, 5}),  # unknown country "" is not Germany
        ("country", "in", ["France", " United Kingdom "], {2, 5}),
        ("country", "not_in", ["France", "Germany"], {4, 5}),
        ("country", "contains", "KING", {5}),
        ("language", "eq", "DE", {1, 3}),
    ],
)
def test_choice_and_text_operators(field, operator, value, expected):
    assert match(cond(field, operator, value)) == expected


@pytest.mark.parametrize(
    ("field", "operator", "expected"),
    [
        ("consent_email", "is_true", {1, 2}),
        ("consent_email", "is_false", {3, 4, 5}),
        ("consent_sms", "is_true", {2}),
        ("consent_push", "is_true", {4}),
        ("consent_ads", "is_false", {1, 2, 3, 4}),
    ],
)
def test_bool_operators(field, operator, expected):
    assert match(cond(field, operator)) == expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("eq", "Home", {1, 2}),  # below Home, but "Homeware" (5) is not
        ("eq", "home > kitchen", {1}),
        ("ne", "Home", {3, 4, 5}),
        ("in", ["Garden", "Home > Bath"], {2, 3}),
        ("not_in", ["Garden"], {1, 2, 4, 5}),  # 5's Garden purchase is after as_of
        ("contains", "kitch", {1}),
        ("eq", "Homeware", {5}),
    ],
)
def test_bought_category(operator, value, expected):
    assert match(cond("bought_category", operator, value)) == expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("gte", {"kind": "view", "days": 7, "min_count": 3}, {4}),
        ("lt", {"kind": "view", "days": 7, "min_count": 3}, {1, 2, 3, 5}),
        ("gte", {"kind": "view", "days": 30}, {2, 4}),  # min_count defaults to 1
        ("gte", {"kind": "any", "days": 7}, {1, 4}),
        ("gte", {"days": 60}, {1, 2, 4}),  # kind defaults to any
        ("gte", {"kind": "purchase", "days": 365, "min_count": 1}, {1, 2, 3, 5}),
        ("lt", {"kind": "purchase", "days": 60}, {3, 4, 5}),
    ],
)
def test_events_in_last_days(operator, value, expected):
    assert match(cond("events_in_last_days", operator, value)) == expected


def test_every_operator_of_every_type_is_exercised():
    """The parametrised cases above must cover the whole operator table."""
    covered = {
        "number": {"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"},
        "choice": {"eq", "ne", "in", "not_in"},
        "text": {"eq", "ne", "in", "not_in", "contains"},
        "bool": {"is_true", "is_false"},
        "category": {"eq", "ne", "in", "not_in", "contains"},
        "activity": {"gte", "lt"},
    }
    assert {t: set(ops) for t, ops in OPERATORS.items()} == covered
    assert {f.type for f in FIELDS.values()} == set(OPERATORS)


# --------------------------------------------------------------------------- groups


def test_and_or_nesting():
    tree = {
        "op": "or",
        "rules": [
            {
                "op": "and",
                "rules": [cond("country", "eq", "Germany"), cond("recency_days", "lt", 100)],
            },
            cond("consent_sms", "is_true"),
        ],
    }
    assert match(tree) == {1, 2}
    tree["op"] = "and"
    assert match(tree) == set()
    deeper = {"op": "and", "rules": [cond("frequency", "gt", 0), {"op": "or", "rules": [tree]}]}
    assert match(deeper) == set()


def test_or_of_ands_against_set_algebra():
    a = cond("monetary", "gte", 80)
    b = cond("churn_probability", "gte", 0.5)
    c = cond("country", "eq", "Germany")
    tree = {"op": "or", "rules": [{"op": "and", "rules": [a, b]}, {"op": "and", "rules": [c]}]}
    assert match(tree) == (match(a) & match(b)) | match(c)


@pytest.mark.parametrize(
    "empty",
    [None, {}, {"op": "and", "rules": []}, {"op": "or", "rules": []}, {"rules": []}],
)
def test_empty_rule_matches_everyone(empty):
    assert match(empty) == {1, 2, 3, 4, 5}
    assert describe_rule(empty) == "everyone"


def test_empty_nested_groups_are_no_condition():
    tree = {"op": "or", "rules": [{"op": "and", "rules": []}, cond("country", "eq", "France")]}
    assert normalise_rule(tree) == {
        "op": "or",
        "rules": [{"field": "country", "operator": "eq", "value": "France"}],
    }
    assert match(tree) == {2}


def test_bare_condition_is_wrapped():
    assert normalise_rule(cond("frequency", "gt", 1)) == {
        "op": "and",
        "rules": [{"field": "frequency", "operator": "gt", "value": 1}],
    }


# --------------------------------------------------------------------------- normal form


def test_normal_form():
    tree = {
        "op": " OR ",
        "rules": [
            {"field": "recency_days", "operator": "<=", "value": "30"},
            {"field": "monetary", "operator": "GTE", "value": 99.5},
            {"field": "rfm_segment", "operator": "in", "value": ["lost", "Lost", "at risk"]},
            {"field": "country", "operator": "eq", "value": "  Germany "},
            {"field": "consent_email", "operator": "is_true", "value": "ignored"},
            {"field": "events_in_last_days", "operator": "gte", "value": {"days": "14"}},
        ],
    }
    assert normalise_rule(tree) == {
        "op": "or",
        "rules": [
            {"field": "recency_days", "operator": "lte", "value": 30},
            {"field": "monetary", "operator": "gte", "value": 99.5},
            {"field": "rfm_segment", "operator": "in", "value": ["Lost", "At risk"]},
            {"field": "country", "operator": "eq", "value": "Germany"},
            {"field": "consent_email", "operator": "is_true", "value": None},
            {
                "field": "events_in_last_days",
                "operator": "gte",
                "value": {"kind": "any", "days": 14, "min_count": 1},
            },
        ],
    }


def test_normal_form_is_stable():
    tree = {"op": "and", "rules": [cond("country", "in", ["DE", "FR"]), cond("aov", "gt", 10)]}
    once = normalise_rule(tree)
    assert normalise_rule(once) == once


# --------------------------------------------------------------------------- errors


def _error(tree) -> RuleError:
    with pytest.raises(RuleError) as info:
        normalise_rule(tree)
    return info.value


def test_error_names_the_path_of_the_offending_condition():
    tree = {
        "op": "and",
        "rules": [
            cond("frequency", "gt", 1),
            {"op": "or", "rules": [{"field": "monetary", "operator": "bigger", "value": 3}]},
        ],
    }
    err = _error(tree)
    assert str(err).startswith("rules[1].rules[0]: unknown operator 'bigger'")
    assert err.path == "rules[1].rules[0]"


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"op": "xor", "rules": []}, "rule: unknown op 'xor'"),
        (
            {"op": "and", "rules": [cond("shoe_size", "eq", 4)]},
            "rules[0]: unknown field 'shoe_size'",
        ),
        (
            {"op": "and", "rules": [cond("recency_days", "is_true")]},
            "does not apply to recency_days",
        ),
        ({"op": "and", "rules": [cond("country", "lt", "B")]}, "does not apply to country"),
        ({"op": "and", "rules": [cond("recency_days", "lt", "soon")]}, "must be a number"),
        ({"op": "and", "rules": [cond("recency_days", "lt", True)]}, "must be a number"),
        ({"op": "and", "rules": [cond("recency_days", "lt")]}, "missing 'value'"),
        ({"op": "and", "rules": [cond("country", "in", "Germany")]}, "must be a list"),
        ({"op": "and", "rules": [cond("country", "in", [])]}, "must not be an empty list"),
        ({"op": "and", "rules": [cond("country", "in", ["DE", 3])]}, "rules[0].value[1]"),
        ({"op": "and", "rules": [cond("churn_probability", "gt", 70)]}, "between 0 and 1"),
        ({"op": "and", "rules": [cond("r_score", "eq", 2.5)]}, "whole number"),
        ({"op": "and", "rules": [cond("rfm_segment", "eq", "VIP")]}, "not a rfm segment"),
        ({"op": "and", "rules": [cond("country", "contains", " ")]}, "must not be empty"),
        ({"op": "and", "rules": [cond("bought_category", "eq", "")]}, "category must not be empty"),
        (
            {
                "op": "and",
                "rules": [cond("events_in_last_days", "gte", {"kind": "dance", "days": 3})],
            },
            "unknown event kind 'dance'",
        ),
        ({"op": "and", "rules": [cond("events_in_last_days", "gte", {"days": 0})]}, "days must"),
        (
            {
                "op": "and",
                "rules": [cond("events_in_last_days", "gte", {"days": 3, "min_count": 0})],
            },
            "min_count must",
        ),
        ({"op": "and", "rules": [cond("events_in_last_days", "gte", 5)]}, "must be {"),
        (
            {"op": "and", "rules": [cond("events_in_last_days", "eq", {"days": 3})]},
            "does not apply",
        ),
        ({"op": "and", "rules": "frequency > 1"}, "'rules' must be a list"),
        ({"op": "and", "rules": [42]}, "rules[0]: expected a group or a condition"),
        ({"op": "and", "rules": [{"what": 1}]}, "rules[0]: expected 'op'/'rules'"),
        ({"op": "and", "rules": [], "extra": 1}, "unknown key 'extra'"),
        ({"op": "and", "rules": [{**cond("aov", "gt", 1), "note": "x"}]}, "unknown key 'note'"),
        ("frequency > 1", "rule: expected a group object"),
    ],
)
def test_invalid_trees_are_refused_with_a_reason(tree, message):
    assert message in str(_error(tree))


def test_depth_is_limited():
    tree: dict = cond("frequency", "gt", 1)
    for _ in range(MAX_DEPTH):
        tree = {"op": "and", "rules": [tree]}
    normalise_rule(tree)  # MAX_DEPTH groups are fine
    err = _error({"op": "and", "rules": [tree]})
    assert "levels deep" in str(err)


def test_all_problems_are_listed():
    tree = {
        "op": "and",
        "rules": [cond("nope", "eq", 1), cond("aov", "gt", "x"), cond("country", "eq", "DE")],
    }
    err = _error(tree)
    assert [p for p, _ in err.errors] == ["rules[0]", "rules[1]"]
    assert "(and 1 more problem)" in str(err)


def test_behaviour_fields_need_events():
    with pytest.raises(ValueError, match="events"):
        evaluate_rule(cond("bought_category", "eq", "Home"), PROFILES)
    with pytest.raises(ValueError, match="as_of"):
        evaluate_rule(cond("events_in_last_days", "gte", {"days": 3}), PROFILES, events=EVENTS)


def test_missing_profile_column_is_named():
    with pytest.raises(ValueError, match="clv_12m"):
        evaluate_rule(cond("clv_12m", "gt", 1), PROFILES.drop(columns=["clv_12m"]))


# --------------------------------------------------------------------------- helpers


def test_rule_fields_and_description():
    tree = {
        "op": "or",
        "rules": [
            {"op": "and", "rules": [cond("country", "eq", "DE"), cond("recency_days", "lt", 30)]},
            cond("consent_email", "is_true"),
            cond("events_in_last_days", "gte", {"kind": "view", "days": 7, "min_count": 2}),
        ],
    }
    assert rule_fields(tree) == {"country", "recency_days", "consent_email", "events_in_last_days"}
    assert describe_rule(tree) == (
        "(country = 'DE' AND recency_days < 30) OR consent_email is true"
        " OR at least 2 view event(s) in the last 7 days"
    )


def test_event_kinds_match_the_importer():
    from marketing.analytics.importing import EVENT_KINDS as IMPORTED
    from marketing.analytics.rules import EVENT_KINDS

    assert EVENT_KINDS == IMPORTED


def test_result_is_aligned_to_the_profiles_index():
    result = evaluate_rule(cond("frequency", "gt", 2), PROFILES)
    assert result.dtype == bool
    assert list(result.index) == [1, 2, 3, 4, 5]
    assert result.tolist() == [True, True, False, False, False]


def test_works_on_computed_profiles():
    from marketing.analytics.profiles import compute_profiles
    from tests.unit.test_profiles import AS_OF as P_AS_OF
    from tests.unit.test_profiles import make_customers, make_events, make_products

    profiles = compute_profiles(
        make_events(), make_products(), make_customers(), as_of=P_AS_OF, timezone="Europe/Berlin"
    ).profiles
    tree = {
        "op": "and",
        "rules": [cond("rfm_segment", "in", ["At risk", "Lost"]), cond("return_rate", "gt", 0.1)],
    }
    mask = evaluate_rule(tree, profiles)
    assert list(profiles.index[mask]) == [1]
    bought = evaluate_rule(
        cond("bought_category", "eq", "Home"),
        profiles,
        events=make_events(),
        products=make_products(),
        as_of=P_AS_OF,
    )
    assert list(profiles.index[bought]) == [1]


@pytest.mark.parametrize("min_count", [1e30, "1e30", MAX_MIN_COUNT + 1, 2**63])
def test_min_count_has_an_upper_bound(min_count):
    """K becomes an OFFSET in SQL: 1e30 must be a validation error, never a database one."""
    tree = cond("events_in_last_days", "gte", {"days": 3, "min_count": min_count})
    err = _error(tree)
    assert f"min_count must be a whole number from 1 to {MAX_MIN_COUNT:,}" in str(err)
    ok = cond("events_in_last_days", "gte", {"days": 3, "min_count": MAX_MIN_COUNT})
    assert normalise_rule(ok)["rules"][0]["value"]["min_count"] == MAX_MIN_COUNT


def test_renamed_categories_are_followed_in_rule_values():
    tree = {
        "op": "or",
        "rules": [
            cond("bought_category", "in", ["mugs", "Mugs > Big", "Cups", "Candles"]),
            cond("bought_category", "contains", "mugs"),  # a substring test: left as typed
            {"op": "and", "rules": [cond("bought_category", "ne", "CUPS")]},
            cond("country", "eq", "Mugs"),
        ],
    }
    renamed, changed = rule_rename_categories(tree, {"Mugs": "Cups", "Cups": "Mugs"})  # a swap
    assert changed
    assert renamed["rules"][0]["value"] == ["Cups", "Cups > Big", "Mugs", "Candles"]
    assert renamed["rules"][1]["value"] == "mugs"
    assert renamed["rules"][2]["rules"][0]["value"] == "Mugs"
    assert renamed["rules"][3]["value"] == "Mugs"
    assert rule_rename_categories(tree, {"Bowls": "Dishes"}) == (normalise_rule(tree), False)
    # "Mugsy" is another category, not one below "Mugs".
    assert not rule_rename_categories(cond("bought_category", "eq", "Mugsy"), {"Mugs": "X"})[1]
