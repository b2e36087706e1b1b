"""The per-line checks of the events intake that need no database (api.intake)."""

from __future__ import annotations

import json

import pytest

from api.intake import BodyError, EventLine, parse_body, parse_line

GOOD = {
    "event_id": "e-1",
    "customer_id": "C1",
    "sku": "MUG-1",
    "kind": "purchase",
    "occurred_at": "2024-05-01T12:30:00+02:00",
    "quantity": 2,
    "value": 25.5,
}


def _line(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def _errors(text: str, *, token_catalog: int | None = 7) -> list[tuple[str | None, str]]:
    parsed = parse_line(3, text, token_catalog=token_catalog)
    assert not isinstance(parsed, EventLine), parsed
    assert all(e.line == 3 for e in parsed)
    return [(e.field, e.error) for e in parsed]


def test_it_turns_a_good_line_into_the_cleaners_strings():
    parsed = parse_line(1, _line(), token_catalog=7)
    assert isinstance(parsed, EventLine)
    assert parsed.catalog == 7
    assert parsed.values == {
        "event_id": "e-1",
        "kind": "purchase",
        "occurred_at": "2024-05-01T10:30:00+00:00",  # in UTC
        "customer": "C1",
        "sku": "MUG-1",
        "quantity": "2",
        "value": "25.5",  # exactly as sent (parsed as Decimal, never as float)
        "rating": "",
        "text": "",
        "source": "",
    }


def test_it_accepts_numbers_as_ids_and_a_missing_customer():
    parsed = parse_line(1, _line(event_id=12, customer_id=None, sku=345), token_catalog=7)
    assert isinstance(parsed, EventLine)
    assert parsed.values["event_id"] == "12"
    assert parsed.values["customer"] == ""  # anonymous, as in a file import
    assert parsed.values["sku"] == "345"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{not json",
            [(None, "not valid JSON: Expecting property name enclosed in double quotes")],
        ),
        ("[1, 2]", [(None, "each line must be a JSON object")]),
        ('{"value": NaN}', None),  # NaN is no JSON number
        (_line(event_id=...), [("event_id", "missing required value")]),
        (_line(event_id="  "), [("event_id", "missing required value")]),
        (_line(event_id="x" * 201), [("event_id", "longer than 200 characters")]),
        (_line(kind=...), [("kind", "missing required value")]),
        (_line(occurred_at=...), [("occurred_at", "missing required value")]),
        (
            _line(occurred_at="2024-05-01 12:30"),
            [("occurred_at", "needs a time zone (Z or an offset such as +02:00)")],
        ),
        (
            _line(occurred_at="yesterday"),
            [("occurred_at", "not an ISO 8601 time (e.g. 2024-05-01T12:30:00Z)")],
        ),
        (_line(quantity=1.5), [("quantity", "must be a whole number")]),
        (_line(quantity="2"), [("quantity", "must be a whole number")]),
        (_line(value="12.50"), [("value", "must be a number")]),
        (_line(value=True), [("value", "must be a number")]),
        (_line(customer_id={"id": 1}), [("customer_id", "must be a string")]),
        (_line(text=5), [("text", "must be a string")]),
        (_line(sku="A\u0000B"), [("sku", "contains a NUL character")]),
        (_line(quantiy=2), [("quantiy", "unknown field")]),
        (_line(catalog=8), [("catalog", "this token is limited to catalog 7")]),
        (_line(catalog="7"), [("catalog", "must be a catalog id (a whole number)")]),
    ],
)
def test_it_names_each_bad_field(text, expected):
    errors = _errors(text)
    if expected is None:
        assert errors and errors[0][0] is None
    else:
        assert errors == expected


def test_it_reports_every_problem_of_a_line():
    errors = _errors(_line(event_id=..., kind=..., quantity="x", colour="red"))
    assert {field for field, _ in errors} == {"event_id", "kind", "quantity", "colour"}


def test_it_needs_a_catalog_when_the_token_has_none():
    assert _errors(_line(), token_catalog=None) == [
        ("catalog", "missing required value (the token is not limited to one)")
    ]
    parsed = parse_line(1, _line(catalog=9), token_catalog=None)
    assert isinstance(parsed, EventLine) and parsed.catalog == 9


def test_the_body_numbers_lines_as_sent_and_skips_blank_ones():
    body = "\n".join([_line(event_id="a"), "", "{oops", _line(event_id="b")]) + "\r\n"
    good, errors, lines = parse_body(body.encode(), token_catalog=7, max_lines=10)
    assert [g.line for g in good] == [1, 4]
    assert [(e.line, e.field) for e in errors] == [(3, None)]
    assert lines == 3


def test_a_line_separator_inside_a_string_does_not_split_the_line():
    body = _line(text="one\u2028two").encode()
    good, errors, _ = parse_body(body, token_catalog=7, max_lines=10)
    assert not errors and good[0].values["text"] == "one\u2028two"


def test_the_body_must_be_utf8_and_not_empty_and_within_the_line_limit():
    with pytest.raises(BodyError, match="not UTF-8"):
        parse_body(b"\xff\xfe{}", token_catalog=7, max_lines=10)
    with pytest.raises(BodyError, match="no events"):
        parse_body(b"\n\n", token_catalog=7, max_lines=10)
    with pytest.raises(BodyError, match="too many lines") as info:
        parse_body(("\n".join([_line()] * 3)).encode(), token_catalog=7, max_lines=2)
    assert info.value.status == 413
