"""Rule segments in SQL: a normalised rule tree as a filter on a catalog's profiles.

`marketing.analytics.rules.evaluate_rule` (pandas) is the reference; this module reproduces
its semantics in the database (PostgreSQL and SQLite), and a parity test holds the two
together. In short (docs/profiles-core-contract.md §7):

- a missing number (NULL) never matches, not even ``ne``/``not_in``: Django's ``~Q`` adds
  ``OR col IS NULL`` for nullable columns, so negations carry an explicit ``IS NOT NULL``;
- text and choices compare ``LOWER(TRIM(col))`` with ``LOWER(value)``; ``contains`` is
  ``icontains``;
- consents are read from the customer;
- a nullable integer column compared with a value outside the column's range: Django drops
  the WHERE term ("every value is below 3e9"), so every comparison on a nullable column
  carries ``IS NOT NULL`` and values are clamped to ``connection.ops.integer_field_range``;
- ``bought_category`` is an EXISTS over the customer's purchases in the catalog at or before
  ``as_of`` of a product whose effective category (the product's own, else its derived one)
  is the value or lies below it; ``ne``/``not_in`` are NOT EXISTS (never bought there). The
  category test runs over the catalog's products (``product_id IN (…)``), not per event;
- ``events_in_last_days`` counts events with ``as_of - days < occurred_at <= as_of``.
  "At least K" is ``EXISTS (… OFFSET K-1 LIMIT 1)``: the (customer, occurred_at) index
  stops after K rows instead of counting them all; "fewer than K" is its negation.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Lower, Trim
from django.db.models.lookups import Exact, IContains, In, StartsWith
from django.utils import timezone

from marketing.analytics.rules import FIELDS, normalise_rule
from marketing.models import (
    Catalog,
    Event,
    EventKind,
    Product,
    Profile,
    ProfileRun,
    effective_category,
)

# Integer profile columns cannot hold 3.5; comparisons with such values are rewritten so
# they mean what the float comparison in pandas means. Values outside the column's range
# (connection.ops.integer_field_range) are decided here, never sent to the database.
_CUSTOMER_FIELDS = {"country", "language", "consent_email", "consent_sms", "consent_push",
                    "consent_ads"}  # fmt: skip
_NOTHING = Q(pk__in=[])
_LOOKUPS = {"eq": "exact", "lt": "lt", "lte": "lte", "gt": "gt", "gte": "gte"}


def catalog_as_of(catalog: Catalog) -> dt.datetime | None:
    """The as_of of the catalog's latest profile run (None before the first refresh)."""
    run = (
        ProfileRun.objects.filter(catalog=catalog)
        .order_by("-created_at", "-pk")
        .values_list("as_of", flat=True)
        .first()
    )
    return run


def rule_profiles(
    tree: Any, *, catalog: Catalog, as_of: dt.datetime | None = None
) -> QuerySet[Profile]:
    """The catalog's profiles that match ``tree`` (validated here; raises RuleError).

    ``as_of`` defaults to the latest profile run's (behaviour fields are relative to it).
    """
    node = normalise_rule(tree)
    if as_of is None:
        as_of = catalog_as_of(catalog) or timezone.now()
    return Profile.objects.filter(catalog=catalog).filter(
        _RuleSql(catalog=catalog, as_of=as_of).group(node, top=True)
    )


def rule_q(tree: Any, *, catalog: Catalog, as_of: dt.datetime) -> Q:
    """The filter on ``Profile`` (of ``catalog``) for a rule tree; raises RuleError."""
    return _RuleSql(catalog=catalog, as_of=as_of).group(normalise_rule(tree), top=True)


class _RuleSql:
    def __init__(self, *, catalog: Catalog, as_of: dt.datetime) -> None:
        self.catalog = catalog
        self.as_of = as_of

    def group(self, node: dict, *, top: bool = False) -> Q:
        parts = [self.node(child) for child in node["rules"]]
        if not parts:
            # Only the root can be empty (normalise_rule drops empty nested groups). An
            # empty Q would vanish when combined, so nested code never returns one.
            return Q() if top else Q(pk__isnull=False)
        result = parts[0]
        for part in parts[1:]:
            result = (result & part) if node["op"] == "and" else (result | part)
        return result

    def node(self, node: dict) -> Q:
        if "rules" in node:
            return self.group(node)
        spec = FIELDS[node["field"]]
        op, value = node["operator"], node["value"]
        if spec.type == "number":
            return _number(spec.name, op, value)
        if spec.type == "bool":
            return Q(**{f"customer__{spec.name}": op == "is_true"})
        if spec.type in ("text", "choice"):
            column = f"customer__{spec.name}" if spec.name in _CUSTOMER_FIELDS else spec.name
            return _text(Trim(F(column)), op, value)
        if spec.type == "category":
            return self.category(op, value)
        if spec.type == "activity":
            return self.activity(op, value)
        raise ValueError(f"no SQL for field type {spec.type!r}")  # pragma: no cover

    def category(self, op: str, value: Any) -> Q:
        # The category test runs once per product of the catalog (thousands), not once per
        # purchase event (millions); the events are then found by product id.
        products = Product.objects.filter(catalog_id=self.catalog.pk).annotate(
            rule_category=Trim(effective_category())
        )
        category = F("rule_category")
        if op == "contains":
            products = products.filter(IContains(category, value))
        else:
            under = Q()
            for v in value if isinstance(value, list) else [value]:
                # Django escapes % and _ (and \\) of an expression's value in a LIKE pattern.
                below = StartsWith(Lower(category), Lower(Value(f"{v} > ")))
                under |= Q(_lower_eq(category, v)) | Q(below)
            products = products.filter(under)
        purchases = Event.objects.filter(
            catalog_id=self.catalog.pk,
            customer_id=OuterRef("customer_id"),
            kind=EventKind.PURCHASE,
            occurred_at__lte=self.as_of,
            product_id__in=products.values("pk"),
        )
        bought = Q(Exists(purchases))
        return bought if op in ("contains", "eq", "in") else ~bought

    def activity(self, op: str, value: dict) -> Q:
        events = Event.objects.filter(
            catalog_id=self.catalog.pk,
            customer_id=OuterRef("customer_id"),
            occurred_at__gt=self.as_of - dt.timedelta(days=value["days"]),
            occurred_at__lte=self.as_of,
        )
        if value["kind"] != "any":
            events = events.filter(kind=value["kind"])
        k = value["min_count"]
        at_least = Q(Exists(events.values("pk")[k - 1 : k]))
        return at_least if op == "gte" else ~at_least


def _lower_eq(expression, value: str) -> Exact:
    return Exact(Lower(expression), Lower(Value(value)))


def _text(expression, op: str, value: Any) -> Q:
    if op == "contains":
        return Q(IContains(expression, value))
    if op in ("eq", "ne"):
        hit = Q(_lower_eq(expression, value))
    else:
        hit = Q(In(Lower(expression), [Lower(Value(v)) for v in value]))
    # Text columns are never NULL ("" for unknown), so a plain NOT is right here.
    return hit if op in ("eq", "in") else ~hit


def _number(field: str, op: str, value: Any) -> Q:
    present = Q(**{f"{field}__isnull": False})
    # Django leaves out a comparison it knows to be always true (an integer column "< 3e9"),
    # and with it the NULL test SQL would have made: missing numbers need it spelled out.
    guard = present if Profile._meta.get_field(field).null else Q()
    if not _is_integer_column(field):
        if op in ("in", "not_in"):
            hit = Q(**{f"{field}__in": [float(v) for v in value]})
            return hit if op == "in" else ~hit & present
        if op == "ne":
            return ~Q(**{field: float(value)}) & present
        return Q(**{f"{field}__{_LOOKUPS[op]}": float(value)}) & guard
    # An integer column never equals 3.5, and x < 3.5 ⇔ x < 4, x <= 3.5 ⇔ x <= 3, …
    low, high = _integer_range(field)
    if op in ("in", "not_in"):
        whole = [int(v) for v in value if _is_whole(v) and low <= v <= high]
        if not whole:
            return _NOTHING if op == "in" else present
        hit = Q(**{f"{field}__in": whole})
        return hit if op == "in" else ~hit & present
    if op in ("eq", "ne"):
        if not _is_whole(value) or not low <= value <= high:
            return _NOTHING if op == "eq" else present
        hit = Q(**{field: int(value)})
        return hit if op == "eq" else ~hit & present
    bound = {"lt": math.ceil, "lte": math.floor, "gt": math.floor, "gte": math.ceil}[op](value)
    if bound > high:  # beyond every value the column can hold
        return present if op in ("lt", "lte") else _NOTHING
    if bound < low:
        return present if op in ("gt", "gte") else _NOTHING
    return Q(**{f"{field}__{op}": int(bound)}) & guard


def _integer_range(field: str) -> tuple[float, float]:
    """The lowest and highest value the column holds on this database (Django's ranges)."""
    internal_type = Profile._meta.get_field(field).get_internal_type()
    low, high = connection.ops.integer_field_range(internal_type)
    return (-math.inf if low is None else low, math.inf if high is None else high)


def _is_integer_column(field: str) -> bool:
    return Profile._meta.get_field(field).get_internal_type() in (
        "IntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "BigIntegerField",
    )


def _is_whole(value: float | int) -> bool:
    return float(value).is_integer()
