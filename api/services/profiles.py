"""Bring the profiles of a few customers up to date after new events, without a full refresh.

For the customers given, the fields that depend on their own events only are recomputed
exactly, from all their events in the catalog (one grouped query on the events' customer
index), with the definitions of `marketing.analytics.profiles`: events, first/last seen,
first/last purchase, frequency (orders: distinct non-empty source, else distinct local day in
the catalog's time zone), purchase and return value and units, monetary (net spend), AOV and
the two return rates. ``recency_days`` counts from the profile run's reference date
(``as_of``) as every other profile of the run does; a purchase after that date counts as 0.
Segment memberships keep the member's new net spend (their order on the segment page).

What waits for the next full refresh (after an import, or *Refresh profiles*): RFM scores and
segment (they rank each customer against all buyers), CLV and churn, top categories and
brands, price band, preferred weekday and hour, order gaps and the expected next order, and
a profile for a customer who had none in the catalog (counted as ``pending``).
"""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

import numpy as np
from django.db.models import (
    Case,
    CharField,
    Count,
    DecimalField,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Abs, Cast, Coalesce, Concat, TruncDate

from marketing.models import Catalog, Event, EventKind, Profile, SegmentMembership

FIELDS = (
    "events",
    "first_seen",
    "last_seen",
    "first_purchase",
    "last_purchase",
    "recency_days",
    "frequency",
    "monetary",
    "purchase_value",
    "return_value",
    "purchased_units",
    "returned_units",
    "aov",
    "return_rate",
    "return_rate_value",
)
BATCH = 900
_ZERO = Value(0, output_field=DecimalField(max_digits=20, decimal_places=2))


def _aggregates(catalog: Catalog, customer_ids: list[int]) -> dict[int, dict]:
    tz = ZoneInfo(catalog.timezone or "UTC")
    purchase = Q(kind=EventKind.PURCHASE)
    returned = Q(kind=EventKind.RETURN)
    order = Case(
        When(
            source="",
            then=Concat(
                Value("d:"), Cast(TruncDate("occurred_at", tzinfo=tz), output_field=CharField())
            ),
        ),
        default=Concat(Value("s:"), F("source")),
        output_field=CharField(),
    )
    rows = (
        Event.objects.filter(catalog=catalog, customer_id__in=customer_ids)
        .order_by()
        .values("customer_id")
        .annotate(
            n=Count("id"),
            first_seen=Min("occurred_at"),
            last_seen=Max("occurred_at"),
            first_purchase=Min("occurred_at", filter=purchase),
            last_purchase=Max("occurred_at", filter=purchase),
            frequency=Count(order, filter=purchase, distinct=True),
            purchase_value=Coalesce(Sum("value", filter=purchase), _ZERO),
            return_value=Coalesce(Sum(Abs("value"), filter=returned), _ZERO),
            purchased_units=Coalesce(Sum(Abs("quantity"), filter=purchase), 0),
            returned_units=Coalesce(Sum(Abs("quantity"), filter=returned), 0),
        )
    )
    return {row["customer_id"]: row for row in rows}


def _cents(value: float) -> float:
    return float(np.round(value, 2))


def _apply(profile: Profile, row: dict) -> None:
    pv, rv = float(row["purchase_value"]), float(row["return_value"])
    pu, ru = int(row["purchased_units"]), int(row["returned_units"])
    frequency = int(row["frequency"])
    buyer = frequency > 0
    profile.events = int(row["n"])
    profile.first_seen, profile.last_seen = row["first_seen"], row["last_seen"]
    profile.first_purchase, profile.last_purchase = row["first_purchase"], row["last_purchase"]
    profile.frequency = frequency
    # Rounded as the core rounds them (numpy's round half to even, 2 places).
    profile.purchase_value, profile.return_value = _cents(pv), _cents(rv)
    profile.monetary = _cents(pv - rv)
    profile.purchased_units, profile.returned_units = pu, ru
    profile.aov = _cents(pv / frequency) if buyer else None
    profile.return_rate = min(ru / pu, 1.0) if buyer and pu > 0 else None
    profile.return_rate_value = min(rv / pv, 1.0) if buyer and pv > 0 else None
    if buyer and row["last_purchase"] is not None:
        profile.recency_days = max(0, (profile.run.as_of - row["last_purchase"]).days)
    else:
        profile.recency_days = None


def profiles_update_incremental(
    *, catalog: Catalog, customer_ids: Iterable[int]
) -> tuple[int, int]:
    """Recompute the event-based profile fields of these customers in the catalog.

    Returns (profiles updated, customers without a profile yet). Call inside the transaction
    that stored their new events. Works in slices of BATCH customers (SQLite's limit on
    bound variables).
    """
    ids = sorted(set(customer_ids))
    updated = sum(_update(catalog, ids[i : i + BATCH]) for i in range(0, len(ids), BATCH))
    return updated, len(ids) - updated


def _update(catalog: Catalog, ids: list[int]) -> int:
    profiles = list(
        Profile.objects.filter(catalog=catalog, customer_id__in=ids)
        .select_related("run")
        .only("id", "customer_id", "run__as_of", *FIELDS)
    )
    if not profiles:
        return 0
    rows = _aggregates(catalog, [p.customer_id for p in profiles])
    for profile in profiles:
        if profile.customer_id in rows:
            _apply(profile, rows[profile.customer_id])
    Profile.objects.bulk_update(profiles, FIELDS, batch_size=500)
    spend = Profile.objects.filter(catalog=catalog, customer_id=OuterRef("customer_id"))
    SegmentMembership.objects.filter(
        segment__catalog=catalog, customer_id__in=[p.customer_id for p in profiles]
    ).update(monetary=Subquery(spend.values("monetary")[:1]))
    return len(profiles)
