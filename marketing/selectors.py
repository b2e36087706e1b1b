"""Reads. Each selector decides its own select_related in one place."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.humanize.templatetags.humanize import intcomma, intword
from django.db import connection, models
from django.db.models import (
    Count,
    Exists,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, TruncMonth
from django.shortcuts import get_object_or_404

from marketing.analytics.sensitive import is_sensitive
from marketing.models import (
    Catalog,
    Customer,
    DerivedCategory,
    Event,
    EventKind,
    Job,
    Product,
    Upload,
)


def totals() -> dict[str, int | ApproxCount]:
    """Home-page counts; events are counted up to a cap, then estimated (a big table)."""
    return {
        "catalogs": Catalog.objects.count(),
        "products": Product.objects.count(),
        "customers": Customer.objects.count(),
        "events": count_bounded(Event.objects.all(), estimate=True),
    }


def job_list(*, limit: int | None = None, catalog: Catalog | None = None) -> QuerySet[Job]:
    qs = Job.objects.select_related("created_by", "catalog")
    if catalog is not None:
        qs = qs.filter(catalog=catalog)
    return qs[:limit] if limit else qs


# ---------------------------------------------------------------------------------------------
# Catalogs, products, customers and events (browse pages).
#
# Events are the big table (millions of rows), so nothing here counts them without a bound:
# counts stop at a cap and, on PostgreSQL, fall back to the planner's estimate; lists fetch one
# row more than a page instead of counting the whole result.
# ---------------------------------------------------------------------------------------------

PAGE_SIZE = 50
COUNT_CAP = 100_000


@dataclass(frozen=True)
class ApproxCount:
    """A row count that is exact up to a cap; above it, an estimate or a lower bound.

    `str()` gives what a page shows: "1,234", "≈ 1.2 million" or "100,000+".
    """

    value: int
    exact: bool = True
    estimated: bool = False

    def __str__(self) -> str:
        if self.exact:
            return intcomma(self.value)
        if self.estimated:
            return f"≈ {intword(self.value) if self.value >= 1_000_000 else intcomma(self.value)}"
        return f"{intcomma(self.value)}+"

    def __int__(self) -> int:
        return self.value

    def __bool__(self) -> bool:
        return self.value > 0


def count_bounded(qs: QuerySet, *, cap: int = COUNT_CAP, estimate: bool = False) -> ApproxCount:
    """Count at most `cap` rows, so a count over a huge table costs no more than reading `cap`.

    With `estimate=True` and PostgreSQL, a result past the cap is the planner's row estimate,
    which is good for equality filters on analysed columns (say, events of one catalog) and
    poor for text search, so callers only ask for it where it is trustworthy.
    """
    n = qs.order_by()[: cap + 1].count()
    if n <= cap:
        return ApproxCount(n)
    if estimate and connection.vendor == "postgresql":
        guess = _planner_rows(qs.order_by())
        if guess and guess > cap:
            return ApproxCount(guess, exact=False, estimated=True)
    return ApproxCount(cap, exact=False)


def _planner_rows(qs: QuerySet) -> int | None:
    """PostgreSQL's estimate of how many rows the query returns (no rows are read)."""
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


@dataclass
class PageSlice:
    """One page of a list, found without counting the whole result.

    `total` is filled in when the caller asked for a (bounded) count; otherwise the page only
    knows whether there is a next one (it fetched one row more than it shows).
    """

    object_list: list
    number: int
    per_page: int
    has_next: bool
    total: ApproxCount | None = None

    def __iter__(self) -> Iterator:
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.object_list)

    @property
    def num_pages(self) -> int | None:
        """Known only when the total is exact."""
        if self.total is None or not self.total.exact:
            return None
        return max(1, -(-self.total.value // self.per_page))


MAX_PAGE = 100_000


def page_number(raw: str | None) -> int:
    """A page number from the query string; anything odd means the first page.

    Clamped, so a hand-edited ?page=10**30 cannot overflow the database's OFFSET.
    """
    try:
        number = int(raw or 1)
    except (TypeError, ValueError):
        return 1
    return min(number, MAX_PAGE) if number >= 1 else 1


def paginate(
    qs: QuerySet,
    *,
    page: int,
    per_page: int = PAGE_SIZE,
    count: bool = True,
    count_qs: QuerySet | None = None,
    cap: int = COUNT_CAP,
    estimate: bool = False,
) -> PageSlice:
    """Slice one page out of an ordered queryset; optionally add a bounded total.

    `count_qs` counts the same rows without costly annotations (say, a sort by sales).
    """
    offset = (page - 1) * per_page
    rows = list(qs[offset : offset + per_page + 1])
    total = None
    if count:
        total = count_bounded(qs if count_qs is None else count_qs, cap=cap, estimate=estimate)
    return PageSlice(
        object_list=rows[:per_page],
        number=page,
        per_page=per_page,
        has_next=len(rows) > per_page,
        total=total,
    )


# Catalogs ------------------------------------------------------------------------------------


def catalog_list() -> QuerySet[Catalog]:
    """Catalogs with their product count and the time of their last import.

    Subqueries rather than joins, so one catalog's products do not multiply its jobs.
    """
    products = (
        Product.objects.filter(catalog=OuterRef("pk"))
        .order_by()
        .values("catalog")
        .annotate(n=Count("pk"))
        .values("n")
    )
    last_import = (
        Job.objects.filter(catalog=OuterRef("pk"), kind=Job.Kind.IMPORT)
        .order_by("-created_at")
        .values("created_at")[:1]
    )
    return Catalog.objects.annotate(
        product_count=Coalesce(Subquery(products), 0),
        last_import_at=Subquery(last_import),
    ).order_by("name")


def catalog_get(*, pk: int) -> Catalog:
    """The catalog or Http404."""
    return get_object_or_404(Catalog, pk=pk)


def catalog_name_taken(*, name: str, exclude_pk: int | None = None) -> bool:
    """Names are unique regardless of case, so "Shop" and "shop" cannot both exist."""
    qs = Catalog.objects.filter(name__iexact=name.strip())
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


@dataclass(frozen=True)
class CatalogStats:
    products: ApproxCount
    products_in_stock: ApproxCount
    categories: int
    customers: ApproxCount
    events: ApproxCount
    first_event_at: datetime | None
    last_event_at: datetime | None
    uploads: int
    jobs: int


def catalog_event_count(*, catalog: Catalog) -> ApproxCount:
    """Events of the catalog: exact up to the cap, then estimated (index on catalog, time)."""
    return count_bounded(Event.objects.filter(catalog=catalog), estimate=True)


def catalog_customer_count(
    *, catalog: Catalog, events: ApproxCount | None = None, scan: int = COUNT_CAP
) -> ApproxCount:
    """Distinct customers with events in the catalog, reading at most `scan` events.

    Exact while the catalog has at most `scan` events. Past that, an exact COUNT(DISTINCT)
    would read every event (1.5 s per 600k on SQLite), so PostgreSQL answers with the
    planner's distinct estimate and SQLite with the customers among `scan` of the events,
    shown as a lower bound ("1,234+").
    """
    if events is None:
        events = count_bounded(Event.objects.filter(catalog=catalog), cap=scan, estimate=True)
    with_customer = Event.objects.filter(catalog=catalog, customer__isnull=False).order_by()
    if events.exact and events.value <= scan:
        return ApproxCount(with_customer.values("customer_id").distinct().count())
    if connection.vendor == "postgresql":
        guess = _planner_rows(with_customer.values("customer_id").distinct())
        if guess:
            return ApproxCount(guess, exact=False, estimated=True)
    sample = with_customer.values("customer_id")[:scan]
    return ApproxCount(Customer.objects.filter(pk__in=sample).count(), exact=False)


@dataclass(frozen=True)
class CatalogRow:
    catalog: Catalog
    customers: ApproxCount
    events: ApproxCount


# The catalog list counts each catalog's customers from at most this many of its events:
# about 50 ms on SQLite, where an exact count over 600k events took 1.5 s per catalog.
OVERVIEW_SCAN = 50_000


def catalog_overview(*, scan: int = OVERVIEW_SCAN) -> list[CatalogRow]:
    """Every catalog with its bounded event and customer counts, for the catalog list.

    Catalogs are few, so two bounded queries per catalog beat one GROUP BY over all events.
    The customer count reads at most `scan` events and is exact below that (see
    catalog_customer_count), so a list of big catalogs costs milliseconds, not seconds each.
    """
    rows = []
    for catalog in catalog_list():
        events = catalog_event_count(catalog=catalog)
        customers = catalog_customer_count(catalog=catalog, events=events, scan=scan)
        rows.append(CatalogRow(catalog=catalog, customers=customers, events=events))
    return rows


def catalog_active_imports(*, catalog: Catalog) -> list[Job]:
    """Import jobs into the catalog that are queued or running (they block its deletion)."""
    jobs = Job.objects.filter(catalog=catalog, kind=Job.Kind.IMPORT, status__in=Job.ACTIVE)
    return list(jobs.order_by("created_at"))


def catalog_stats(*, catalog: Catalog) -> CatalogStats:
    """Counts and the covered time span for the catalog's detail and delete pages."""
    products = Product.objects.filter(catalog=catalog)
    events = catalog_event_count(catalog=catalog)
    by_time = Event.objects.filter(catalog=catalog).values_list("occurred_at", flat=True)
    return CatalogStats(
        products=count_bounded(products),
        products_in_stock=count_bounded(products.filter(in_stock=True)),
        categories=len(catalog_categories(catalog=catalog)),
        customers=catalog_customer_count(catalog=catalog, events=events),
        events=events,
        first_event_at=by_time.order_by("occurred_at").first(),
        last_event_at=by_time.order_by("-occurred_at").first(),
        uploads=Upload.objects.filter(catalog=catalog).count(),
        jobs=Job.objects.filter(catalog=catalog).count(),
    )


def catalog_categories(*, catalog: Catalog) -> list[str]:
    """Distinct non-empty categories of the catalog (index on catalog, category), with the
    names of its derived categories (catalogs without categories, see services.categories)."""
    own = (
        Product.objects.filter(catalog=catalog)
        .exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )
    derived = DerivedCategory.objects.filter(catalog=catalog).values_list("name", flat=True)
    return sorted({*own, *derived})


# Products ------------------------------------------------------------------------------------


class ProductSort(models.TextChoices):
    TITLE = "title", "Title (A–Z)"
    PRICE = "price", "Price: low to high"
    PRICE_DESC = "-price", "Price: high to low"
    SKU = "sku", "SKU"
    NEWEST = "newest", "Newest"
    BEST_SELLING = "best", "Best-selling"


def product_search(
    *,
    catalog: Catalog,
    q: str = "",
    category: str = "",
    price_min: Decimal | None = None,
    price_max: Decimal | None = None,
    in_stock: bool | None = None,
    sort: str = ProductSort.TITLE,
) -> QuerySet[Product]:
    """The catalog's products matching the filters, in the chosen order.

    Only the best-selling order joins events: it annotates `purchase_count` (purchase
    events per product), which costs a pass over the catalog's purchases, so every other
    order stays an index scan on (catalog, column).
    """
    qs = Product.objects.filter(catalog=catalog).select_related("derived_category")
    q = q.strip()
    if q:
        qs = qs.filter(Q(sku__icontains=q) | Q(title__icontains=q) | Q(description__icontains=q))
    if category:  # own category, or a derived one for products without their own
        qs = qs.filter(Q(category=category) | Q(category="", derived_category__name=category))
    if price_min is not None:
        qs = qs.filter(price__gte=price_min)
    if price_max is not None:
        qs = qs.filter(price__lte=price_max)
    if in_stock is not None:
        qs = qs.filter(in_stock=in_stock)

    if sort == ProductSort.BEST_SELLING:
        # The kind goes into the JOIN condition (not an aggregate FILTER), so only purchase
        # rows are joined and grouped: about half the work of Count(..., filter=...).
        qs = (
            qs.annotate(
                purchases=FilteredRelation("events", condition=Q(events__kind=EventKind.PURCHASE))
            )
            .annotate(purchase_count=Count("purchases"))
            .order_by("-purchase_count", "title", "pk")
        )
    elif sort == ProductSort.PRICE:
        qs = qs.order_by(F("price").asc(nulls_last=True), "title", "pk")
    elif sort == ProductSort.PRICE_DESC:
        qs = qs.order_by(F("price").desc(nulls_last=True), "title", "pk")
    elif sort == ProductSort.SKU:
        qs = qs.order_by("sku")
    elif sort == ProductSort.NEWEST:
        qs = qs.order_by("-created_at", "-pk")
    else:
        qs = qs.order_by("title", "pk")
    return qs


def product_get(*, pk: int) -> Product:
    """The product with its catalog, or Http404."""
    return get_object_or_404(Product.objects.select_related("catalog", "derived_category"), pk=pk)


@dataclass(frozen=True)
class MonthlySales:
    month: date
    units_purchased: int = 0
    revenue: Decimal = Decimal("0")
    units_returned: int = 0
    refunds: Decimal = Decimal("0")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def product_sales_by_month(*, product: Product) -> list[MonthlySales]:
    """Purchases and returns of the product per calendar month, in the catalog's time zone.

    One grouped query over the (product, occurred_at) index; months without sales between
    the first and last month are filled with zeros so a chart's gaps mean "nothing sold".
    """
    zone = _zone(product.catalog.timezone)
    rows = (
        Event.objects.filter(product=product, kind__in=[EventKind.PURCHASE, EventKind.RETURN])
        .annotate(month=TruncMonth("occurred_at", tzinfo=zone))
        .values("month", "kind")
        .annotate(units=Sum("quantity"), value=Sum("value"))
        .order_by("month")
    )
    by_month: dict[date, dict] = {}
    for row in rows:
        month = row["month"]
        month = (month.date() if isinstance(month, datetime) else month).replace(day=1)
        slot = by_month.setdefault(month, {})
        units = abs(row["units"] or 0)
        value = abs(row["value"] or Decimal("0"))
        if row["kind"] == EventKind.PURCHASE:
            slot["units_purchased"] = units
            slot["revenue"] = value
        else:
            slot["units_returned"] = units
            slot["refunds"] = value
    if not by_month:
        return []
    months: list[MonthlySales] = []
    current, last = min(by_month), max(by_month)
    while current <= last:
        months.append(MonthlySales(month=current, **by_month.get(current, {})))
        current = (current + timedelta(days=32)).replace(day=1)
    return months


def product_recent_events(*, product: Product, limit: int = 20) -> list[Event]:
    """Latest events of the product (index on product, occurred_at)."""
    return list(
        Event.objects.filter(product=product)
        .select_related("customer")
        .order_by("-occurred_at")[:limit]
    )


# Customers -----------------------------------------------------------------------------------


# Counting customers with events in a catalog probes the events index once per customer
# (0.1 s for 100k customers), and the planner misjudges that semi-join (35k for 63k), so
# the customer list counts it up to this bound and then shows "10,000+".
CATALOG_FILTER_COUNT_CAP = 10_000


def customer_search(
    *, q: str = "", country: str = "", catalog: Catalog | None = None
) -> QuerySet[Customer]:
    """Customers matching a free-text search and a country, ordered by external id.

    With a catalog, only customers with at least one event in it: a semi-join that stops at
    each customer's first matching event (index on customer, time), never a DISTINCT.
    """
    qs = Customer.objects.all()
    if catalog is not None:
        qs = qs.filter(Exists(Event.objects.filter(catalog=catalog, customer=OuterRef("pk"))))
    q = q.strip()
    if q:
        qs = qs.filter(
            Q(external_id__icontains=q)
            | Q(name__icontains=q)
            | Q(email__icontains=q)
            | Q(country__icontains=q)
        )
    if country:
        qs = qs.filter(country=country)
    return qs.order_by("external_id")


def customer_countries() -> list[str]:
    """Distinct non-empty countries (index on country)."""
    return list(
        Customer.objects.exclude(country="")
        .order_by("country")
        .values_list("country", flat=True)
        .distinct()
    )


def customer_get(*, pk: int) -> Customer:
    """The customer or Http404."""
    return get_object_or_404(Customer, pk=pk)


def customer_events(*, customer: Customer) -> QuerySet[Event]:
    """The customer's timeline, newest first (index on customer, occurred_at)."""
    return (
        Event.objects.filter(customer=customer)
        .select_related("product", "catalog")
        .order_by("-occurred_at", "-pk")
    )


@dataclass(frozen=True)
class CustomerSummary:
    events: ApproxCount
    purchases: int
    first_seen: datetime | None
    last_seen: datetime | None


def customer_summary(*, customer: Customer) -> CustomerSummary:
    """How much the customer did, read from their slice of the (customer, time) index."""
    events = Event.objects.filter(customer=customer)
    times = events.values_list("occurred_at", flat=True)
    return CustomerSummary(
        events=count_bounded(events, cap=10_000),
        purchases=count_bounded(events.filter(kind=EventKind.PURCHASE), cap=10_000).value,
        first_seen=times.order_by("occurred_at").first(),
        last_seen=times.order_by("-occurred_at").first(),
    )


# Badged on the customer page besides the configured list: other special categories of data.
_ALSO_BADGED = ("health", "sexual_orientation")


def customer_attributes(*, customer: Customer) -> tuple[list[tuple[str, object]], list]:
    """The customer's attributes split into ordinary and sensitive (age, gender, birth date…)."""
    plain, sensitive = [], []
    badged = (*settings.SENSITIVE_ATTRIBUTES, *_ALSO_BADGED)
    for key, value in sorted((customer.attributes or {}).items()):
        (sensitive if is_sensitive(str(key), badged) else plain).append((key, value))
    return plain, sensitive
