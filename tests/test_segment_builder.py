"""The rule builder's form encoding (marketing.segment_builder): no database needed."""

from __future__ import annotations

from django.http import QueryDict

from marketing.analytics.rules import MAX_DEPTH, RuleError, normalise_rule
from marketing.segment_builder import Builder, humanise


def post(pairs: list[tuple[str, str]]) -> QueryDict:
    data = QueryDict(mutable=True)
    for key, value in pairs:
        data.appendlist(key, value)
    return data


def condition(node_id: str, field: str, operator: str, value: str = "", **extra) -> list:
    pairs = [
        ("node", node_id),
        (f"{node_id}.prev", extra.pop("prev", field)),
        (f"{node_id}.field", field),
        (f"{node_id}.operator", operator),
    ]
    if value:
        pairs.append((f"{node_id}.value", value))
    return pairs + [(f"{node_id}.{k}", v) for k, v in extra.items()]


def group(node_id: str, op: str) -> list:
    return [("node", node_id), (f"{node_id}.type", "group"), (f"{node_id}.op", op)]


NESTED = post(
    [("name", " VIPs "), ("description", "big spenders"), *group("0", "or")]
    + condition("0.0", "country", "in", "DE, fr ,")
    + group("0.1", "and")
    + condition("0.1.0", "rfm_segment", "in", "Champions")
    + [("0.1.0.value", "Loyal"), ("0.1.0.value", "not a segment")]
    + condition("0.1.1", "events_in_last_days", "gte", kind="view", days="30", min_count="2")
    + condition("0.1.2", "consent_email", "is_true")
    + condition("0.2", "bought_category", "eq", "Home > Kitchen")
)


def test_post_becomes_a_rule_tree():
    builder = Builder.from_post(NESTED)
    assert builder.name == " VIPs " and builder.description == "big spenders"
    assert builder.rule() == {
        "op": "or",
        "rules": [
            {"field": "country", "operator": "in", "value": ["DE", "fr"]},
            {
                "op": "and",
                "rules": [
                    {"field": "rfm_segment", "operator": "in", "value": ["Champions", "Loyal"]},
                    {
                        "field": "events_in_last_days",
                        "operator": "gte",
                        "value": {"kind": "view", "days": "30", "min_count": "2"},
                    },
                    {"field": "consent_email", "operator": "is_true"},
                ],
            },
            {"field": "bought_category", "operator": "eq", "value": "Home > Kitchen"},
        ],
    }
    normalise_rule(builder.rule())  # valid


def test_stored_rule_round_trips_through_the_form():
    rule = normalise_rule(Builder.from_post(NESTED).rule())
    builder = Builder.from_rule(name="VIPs", description="", rule=rule)
    view = builder.view()
    assert view["children"][0]["value"] == "DE, fr"
    assert view["children"][1]["children"][1]["activity"] == {
        "kind": "view",
        "days": "30",
        "min_count": "2",
    }
    # Rendered fields posted back give the same rule.
    pairs = [("name", "VIPs")]
    for node_id, node in builder.walk():
        if node.is_group:
            pairs += group(node_id, node.op)
        else:
            pairs += condition(node_id, node.field, node.operator, node.value)
            pairs += [(f"{node_id}.value", v) for v in node.values]
            pairs += [(f"{node_id}.{k}", v) for k, v in node.activity.items()]
    assert normalise_rule(Builder.from_post(post(pairs)).rule()) == rule


def test_numbers_and_shares_keep_their_spelling():
    rule = {"op": "and", "rules": [{"field": "churn_probability", "operator": "gte", "value": 0.7}]}
    builder = Builder.from_rule(name="", description="", rule=rule)
    assert builder.view()["children"][0]["value"] == "0.7"


def test_changed_field_resets_operator_and_value():
    data = post(
        group("0", "and")
        + condition("0.0", "consent_sms", "lte", "30", prev="recency_days")
        + condition("0.1", "price_band", "gte", "30", prev="recency_days")
        + condition("0.2", "churn_probability", "lte", "30", prev="recency_days")
    )
    rules = Builder.from_post(data, reset_changed=True).rule()["rules"]
    assert rules[0] == {"field": "consent_sms", "operator": "is_true"}
    assert rules[1] == {"field": "price_band", "operator": "eq", "value": ""}
    assert rules[2] == {"field": "churn_probability", "operator": "lte", "value": ""}
    # Saved without JavaScript (no re-render after the change): what was typed stays.
    kept = Builder.from_post(data).rule()["rules"]
    assert kept[2] == {"field": "churn_probability", "operator": "lte", "value": "30"}
    assert kept[1] == {"field": "price_band", "operator": "eq", "value": ""}  # not a band


def test_choice_values_outside_the_choices_fall_back():
    data = post(group("0", "and") + condition("0.0", "rfm_segment", "eq", "<script>"))
    assert Builder.from_post(data).rule()["rules"][0]["value"] == "Champions"


def test_orphans_and_odd_ids_are_dropped():
    data = post(
        group("0", "and")
        + condition("0.0", "frequency", "gte", "1")
        + condition("0.5.1", "frequency", "gte", "2")  # its group was not posted
        + condition("x", "frequency", "gte", "3")
        + condition("0.0", "frequency", "gte", "4")  # a duplicate id
    )
    rules = Builder.from_post(data).rule()["rules"]
    assert len(rules) == 1 and rules[0]["field"] == "frequency"


def test_actions_add_nest_and_remove():
    builder = Builder.new()
    assert builder.condition_count() == 1
    builder.apply("add:0")
    builder.apply("group:0")
    assert [n.id for _, n in builder.walk()] == ["0", "0.0", "0.1", "0.2", "0.2.0"]
    assert builder.root.children[2].op == "or"  # a nested group starts with the other op
    builder.apply("remove:0.1")
    assert [n.id for _, n in builder.walk()] == ["0", "0.0", "0.1", "0.1.0"]
    builder.apply("remove:0")  # the root stays
    builder.apply("add:0.0")  # a condition has no children
    builder.apply("bogus")
    assert [n.id for _, n in builder.walk()] == ["0", "0.0", "0.1", "0.1.0"]


def test_groups_nest_no_deeper_than_allowed():
    builder = Builder.new()
    for _ in range(MAX_DEPTH + 2):
        deepest = max((n for _, n in builder.walk() if n.is_group), key=lambda n: len(n.id))
        builder.apply(f"group:{deepest.id}")
    depth = max(n.id.count(".") + 1 for _, n in builder.walk() if n.is_group)
    assert depth == MAX_DEPTH
    assert builder.view()["children"][1]["can_nest"] is True
    normalise_rule(builder.rule())


def test_problems_name_the_condition_in_words():
    data = post(
        group("0", "and")
        + condition("0.0", "country", "eq", "DE")
        + group("0.1", "or")
        + condition("0.1.0", "churn_probability", "gte", "70")
        + condition("0.1.1", "recency_days", "lt", "")
        + condition("0.2", "country", "in", "")
    )
    builder = Builder.from_post(data)
    try:
        normalise_rule(builder.rule())
    except RuleError as exc:
        problems = builder.problems(exc.errors)
    texts = [p.text for p in problems]
    assert texts == [
        "Condition 2: churn probability is a share between 0 and 1 (0.7 = 70 %), got '70'",
        "Condition 3: days since last purchase: enter a number",
        "Condition 4: country: give at least one value",
    ]
    assert [p.node_id for p in problems] == ["0.1.0", "0.1.1", "0.2"]
    view = builder.view(problems)
    assert view["children"][1]["children"][0]["errors"] == [texts[0]]
    assert view["children"][1]["label"] == "Group 1"


def test_humanise_keeps_acronyms():
    assert humanise("rfm_segment is odd") == "RFM segment is odd"
    assert (
        humanise("value for consent_sms must be text, got 1") == "SMS consent must be text, got 1"
    )
