"""Reads for the dashboard and the customer profile section: KPIs, trends and profile grids.

Event queries filter on catalog + an `occurred_at` range first, so they use the
(catalog, occurred_at) index and aggregate in SQL; nothing loads events into Python.
A date range [date_from, date_to] covers whole days in UTC: date_from 00:00 up to, not
including, the day after date_to.

Those scans still read every event in the range (about 0.8 s for 1M events), so the
dashboard keeps what it shows in the cache under `dashboard_version`, which changes
whenever the catalog's events or profiles may have (see `version_cached`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth

from marketing.models import (
    AuditEvent,
    Catalog,
    Customer,
    Event,
    EventKind,
    Job,
    Profile,
    ProfileRun,
    Segment,
)

DEFAULT_RANGE_DAYS = 365
ACTIVE_WINDOWS = (30, 90)
# Backstop for changes the version cannot see (a superuser editing events in the admin).
DASHBOARD_CACHE_S = 600

T = TypeVar("T")

_PURCHASE = Q(kind=EventKind.PURCHASE)
_RETURN = Q(kind=EventKind.RETURN)


def _bounds(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    return start, end


def _events_in_range(*, catalog: Catalog, date_from: dt.date, date_to: dt.date) -> QuerySet:
    start, end = _bounds(date_from, date_to)
    return Event.objects.filter(catalog=catalog, occurred_at__gte=start, occurred_at__lt=end)


def dashboard_version(*, catalog: Catalog) -> str:
    """A token that changes whenever the catalog's dashboard figures may have changed.

    Events are written only by import jobs (a finished import moves `finished_at`) and
    removed by customer erasure (audited in the same transaction) or with their catalog (a
    new catalog has another id and creation time); profiles only by a refresh (a new run).
    Read before the figures, so figures cached under it are never older than it. Three
    small indexed queries.
    """
    run = ProfileRun.objects.filter(catalog=catalog).order_by("-created_at", "-pk").first()
    imported = Job.objects.filter(
        catalog=catalog, kind=Job.Kind.IMPORT, finished_at__isnull=False
    ).aggregate(last=Max("finished_at"))["last"]
    erased = (
        AuditEvent.objects.filter(action=AuditEvent.Action.CUSTOMER_ERASED)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    parts = (
        connection.settings_dict["NAME"],
        catalog.pk,
        catalog.created_at,
        run.pk if run else None,
        imported,
        erased,
    )
    text = "|".join(p.isoformat() if isinstance(p, dt.datetime) else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]  # short, safe in any cache key


def version_cached(version: str | None, key: str, compute: Callable[[], T]) -> T:
    """compute(), kept in the cache under the version (computed live when it is None)."""
    if version is None:
        return compute()
    full_key = f"dashboard:{version}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = compute()
        cache.set(full_key, value, DASHBOARD_CACHE_S)
    return value


def dashboard_default_catalog() -> Catalog | None:
    """The catalog of the latest profile run that profiled anyone, else the first by name."""
    run = (
        ProfileRun.objects.filter(customers__gt=0)
        .select_related("catalog")
        .order_by("-created_at", "-pk")
        .first()
    )
    return run.catalog if run else Catalog.objects.order_by("name").first()


def dashboard_default_range(
    *, catalog: Catalog, today: dt.date | None = None, version: str | None = None
) -> tuple:
    """The 365 days ending at the catalog's last event (or today when it has none)."""

    def last_event() -> tuple[dt.datetime | None]:  # a tuple, so "no events" is cached too
        return (Event.objects.filter(catalog=catalog).aggregate(last=Max("occurred_at"))["last"],)

    (last,) = version_cached(version, "last_event", last_event)
    date_to = last.astimezone(dt.UTC).date() if last else (today or dt.datetime.now(dt.UTC).date())
    return date_to - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1), date_to


@dataclass(frozen=True)
class DashboardKpis:
    customers: int
    active_30: int
    active_90: int
    purchased: float
    returned: float
    orders: int
    buyers: int
    repeat_buyers: int

    @property
    def revenue(self) -> float:
        return self.purchased - self.returned

    @property
    def aov(self) -> float | None:
        """Purchase value per order (before returns)."""
        return self.purchased / self.orders if self.orders else None

    @property
    def repeat_rate(self) -> float | None:
        return self.repeat_buyers / self.buyers if self.buyers else None

    @property
    def return_rate(self) -> float | None:
        return self.returned / self.purchased if self.purchased else None


def dashboard_kpis(*, catalog: Catalog, date_from: dt.date, date_to: dt.date) -> DashboardKpis:
    """Customers, activity, revenue, orders and rates for a catalog over a date range.

    Orders are distinct non-empty `source` references of purchases; active customers had any
    event in the last 30 / 90 days before the range end.
    """
    events = _events_in_range(catalog=catalog, date_from=date_from, date_to=date_to)
    _, end = _bounds(date_from, date_to)
    active = {
        f"active_{days}": Count(
            "customer", distinct=True, filter=Q(occurred_at__gte=end - dt.timedelta(days=days))
        )
        for days in ACTIVE_WINDOWS
    }
    totals = events.aggregate(
        customers=Count("customer", distinct=True),
        purchased=Sum("value", filter=_PURCHASE),
        returned=Sum("value", filter=_RETURN),
        orders=Count("source", distinct=True, filter=_PURCHASE & ~Q(source="")),
        **active,
    )
    buyers = (
        events.filter(_PURCHASE, customer__isnull=False)
        .exclude(source="")
        .values("customer")
        .annotate(orders=Count("source", distinct=True))
        .aggregate(buyers=Count("customer"), repeat=Count("customer", filter=Q(orders__gte=2)))
    )
    return DashboardKpis(
        customers=totals["customers"],
        active_30=totals["active_30"],
        active_90=totals["active_90"],
        purchased=float(totals["purchased"] or 0),
        returned=float(totals["returned"] or 0),
        orders=totals["orders"],
        buyers=buyers["buyers"] or 0,
        repeat_buyers=buyers["repeat"] or 0,
    )


@dataclass(frozen=True)
class MonthlyValue:
    month: dt.date
    purchased: float
    returned: float

    @property
    def net(self) -> float:
        return self.purchased - self.returned


def _monthly(events: QuerySet) -> list[MonthlyValue]:
    rows = (
        events.filter(_PURCHASE | _RETURN)
        .annotate(month=TruncMonth("occurred_at", tzinfo=dt.UTC))
        .values("month")
        .annotate(purchased=Sum("value", filter=_PURCHASE), returned=Sum("value", filter=_RETURN))
        .order_by("month")
    )
    return [
        MonthlyValue(
            month=row["month"].date() if isinstance(row["month"], dt.datetime) else row["month"],
            purchased=float(row["purchased"] or 0),
            returned=float(row["returned"] or 0),
        )
        for row in rows
    ]


def dashboard_revenue_by_month(
    *, catalog: Catalog, date_from: dt.date, date_to: dt.date
) -> list[MonthlyValue]:
    return _monthly(_events_in_range(catalog=catalog, date_from=date_from, date_to=date_to))


def profile_run_latest(*, catalog: Catalog) -> ProfileRun | None:
    return ProfileRun.objects.filter(catalog=catalog).order_by("-created_at", "-pk").first()


@dataclass(frozen=True)
class RfCell:
    r_score: int
    f_score: int
    customers: int
    revenue: float


def profile_rf_grid(*, catalog: Catalog) -> list[RfCell]:
    """Buyers and their net value per (R, F) score cell; non-buyers (score 0) are left out.

    A refresh replaces a catalog's profiles as a whole, so these are the latest run's.
    """
    rows = (
        Profile.objects.filter(catalog=catalog, r_score__gt=0, f_score__gt=0)
        .values("r_score", "f_score")
        .annotate(customers=Count("id"), revenue=Sum("monetary"))
        .order_by("r_score", "f_score")
    )
    return [
        RfCell(r["r_score"], r["f_score"], r["customers"], float(r["revenue"] or 0)) for r in rows
    ]


def profile_segment_sizes(*, catalog: Catalog) -> dict[str, int]:
    rows = (
        Profile.objects.filter(catalog=catalog)
        .values("rfm_segment")
        .annotate(n=Count("id"))
        .order_by("-n", "rfm_segment")
    )
    return {r["rfm_segment"]: r["n"] for r in rows}


def customer_profiles(*, customer: Customer) -> list[Profile]:
    return list(
        Profile.objects.filter(customer=customer)
        .select_related("catalog", "run")
        .order_by("catalog__name")
    )


def customer_spend_by_month(*, customer: Customer, catalog: Catalog) -> list[MonthlyValue]:
    """The customer's monthly purchase and return value in one catalog ((customer, time) index)."""
    return _monthly(Event.objects.filter(customer=customer, catalog=catalog))


def profile_run_history(*, catalog: Catalog, limit: int = 10) -> list[ProfileRun]:
    """The catalog's latest refreshes, newest first, to show how model quality moved."""
    return list(ProfileRun.objects.filter(catalog=catalog).order_by("-created_at", "-pk")[:limit])


def customer_segments(*, customer: Customer, catalog_id: int) -> list[Segment]:
    """The segments of one catalog the customer belongs to, by kind and name."""
    return list(
        Segment.objects.filter(catalog_id=catalog_id, memberships__customer=customer).order_by(
            "kind", "name"
        )
    )
