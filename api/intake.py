"""Reading a JSON Lines body of events: the per-line checks that need no database.

Pure Python (no Django), so the rules are unit-tested alone. Each line is one JSON object;
lines that pass become `EventLine`s whose values are the strings the importer's cleaner
expects (``marketing.analytics.importing``), which then applies the same rules as a file
import (event kinds and their aliases, SKU required except for searches, negative purchase
quantities become returns, ratings 1–5, …) and computes the same event ids.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

# Field -> what it takes, for messages and the OpenAPI schema.
FIELDS: dict[str, str] = {
    "event_id": "your unique id of the event (string, up to 200 characters); required",
    "kind": "view, click, cart, purchase, return, rating, review, search or wishlist; required",
    "occurred_at": "ISO 8601 time with a zone, e.g. 2024-05-01T12:30:00Z; required",
    "customer_id": "the customer's external id; null or absent for an anonymous event",
    "sku": "the product's SKU in the catalog; may be absent only for searches",
    "quantity": "whole number, default 1 (a negative purchase quantity is a return)",
    "value": "line value in the catalog's currency (number)",
    "rating": "1 to 5, for rating events",
    "text": "review text or search query",
    "source": "order, invoice or session reference (orders are counted by it)",
    "catalog": "catalog id; required unless the token is limited to one catalog",
}
EVENT_ID_MAX = 200
# The cleaner's field names that the API spells differently.
API_NAMES = {"customer": "customer_id"}
TEXT_FIELDS = ("text", "source")


class BodyError(Exception):
    """The body as a whole cannot be read (413 for too many lines, 400 otherwise)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LineError:
    line: int
    field: str | None
    error: str

    def as_json(self) -> dict:
        return {"line": self.line, "field": self.field, "error": self.error}


@dataclass
class EventLine:
    """One structurally valid line: strings for the cleaner, and the catalog it names."""

    line: int
    catalog: int | None
    values: dict[str, str] = field(default_factory=dict)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


Problems = list[tuple[str | None, str]]  # (field, reason)


def _ident(value, name: str, problems: Problems, *, required: bool) -> str:
    """An id-like value: a non-empty string, or a whole number (taken as its digits)."""
    if value is None:
        if required:
            problems.append((name, "missing required value"))
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append((name, "must be a string"))
        return ""
    text = str(value).strip()
    if not text and required:
        problems.append((name, "missing required value"))
    return text


def _number(value, name: str, problems: Problems, *, integer: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        problems.append((name, f"must be a {'whole number' if integer else 'number'}"))
        return ""
    if integer and isinstance(value, Decimal):
        if value != value.to_integral_value():
            problems.append((name, "must be a whole number"))
            return ""
        value = int(value)
    return str(value)


def _occurred_at(value, problems: Problems) -> str:
    if value is None:
        problems.append(("occurred_at", "missing required value"))
        return ""
    if not isinstance(value, str):
        problems.append(("occurred_at", "must be an ISO 8601 string"))
        return ""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append(("occurred_at", "not an ISO 8601 time (e.g. 2024-05-01T12:30:00Z)"))
        return ""
    if when.tzinfo is None or when.utcoffset() is None:
        problems.append(("occurred_at", "needs a time zone (Z or an offset such as +02:00)"))
        return ""
    return when.astimezone(dt.UTC).isoformat()


def _catalog(value, token_catalog: int | None, problems: Problems) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        problems.append(("catalog", "must be a catalog id (a whole number)"))
        return token_catalog
    if token_catalog is not None:
        if value is not None and value != token_catalog:
            problems.append(("catalog", f"this token is limited to catalog {token_catalog}"))
        return token_catalog
    if value is None:
        problems.append(("catalog", "missing required value (the token is not limited to one)"))
    return value


def parse_line(number: int, text: str, *, token_catalog: int | None) -> EventLine | list[LineError]:
    """The line as an `EventLine`, or its errors (every problem found, one per field)."""
    try:
        record = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return [LineError(number, None, f"not valid JSON: {reason}")]
    if not isinstance(record, dict):
        return [LineError(number, None, "each line must be a JSON object")]
    problems: Problems = [(key, "unknown field") for key in record if key not in FIELDS]
    values = {
        "event_id": _ident(record.get("event_id"), "event_id", problems, required=True),
        "kind": _ident(record.get("kind"), "kind", problems, required=True),
        "occurred_at": _occurred_at(record.get("occurred_at"), problems),
        "customer": _ident(record.get("customer_id"), "customer_id", problems, required=False),
        "sku": _ident(record.get("sku"), "sku", problems, required=False),
        "quantity": _number(record.get("quantity"), "quantity", problems, integer=True),
        "value": _number(record.get("value"), "value", problems),
        "rating": _number(record.get("rating"), "rating", problems),
    }
    if len(values["event_id"]) > EVENT_ID_MAX:
        problems.append(("event_id", f"longer than {EVENT_ID_MAX} characters"))
    for name in TEXT_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            problems.append((name, "must be a string"))
            value = None
        values[name] = (value or "").strip()
    catalog = _catalog(record.get("catalog"), token_catalog, problems)
    for name, value in values.items():
        if "\x00" in value:  # no database text column can hold NUL
            problems.append((API_NAMES.get(name, name), "contains a NUL character"))
    if problems:
        return [LineError(number, name, reason) for name, reason in problems]
    return EventLine(number, catalog, values)


def parse_body(
    body: bytes, *, token_catalog: int | None, max_lines: int
) -> tuple[list[EventLine], list[LineError], int]:
    """(valid lines, errors, number of non-blank lines) of a JSON Lines body.

    Lines are numbered from 1 as they appear (blank lines count but are skipped). Raises
    BodyError when the body is not UTF-8 or has more than ``max_lines`` lines.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (byte {exc.start})") from None
    # JSON Lines separates records by "\n" only ("\r\n" tolerated); JSON strings may hold
    # U+2028 and other characters str.splitlines() would split at.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    good: list[EventLine] = []
    errors: list[LineError] = []
    seen = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        seen += 1
        if seen > max_lines:
            raise BodyError(
                f"too many lines: at most {max_lines:,} events per request; split the batch",
                status=413,
            )
        parsed = parse_line(number, line, token_catalog=token_catalog)
        if isinstance(parsed, EventLine):
            good.append(parsed)
        else:
            errors.extend(parsed)
    if not seen:
        raise BodyError("the body holds no events (one JSON object per line)")
    return good, errors, seen
