"""Events intake: validate a JSON Lines batch, store the new events once, update profiles.

Partial acceptance: good lines are stored, bad ones come back as per-line errors. The lines
go through the importer's own cleaner (`marketing.analytics.importing.Cleaner`, kind
"events", with an explicit event id), so an event has the same rules and the same primary
key (a 63-bit hash of catalog and event id) whether it is posted here or imported from a file
with an event-id column: posting it twice, or posting and importing it, stores it once.
Unknown SKUs and customers are rejected as in an import (customers are created by customer
imports only), and an erased customer's events are refused without naming them.

Writes happen per request in one transaction that takes the catalog's import lock (waiting at
most LOCK_WAIT_S: an import holds it for its whole run, and the answer is then 503 with
Retry-After) and, shared, the erasure lock, exactly like an import. Then the affected
customers' profiles are brought up to date (`api.services.profiles`). Logs carry counts and
ids of catalogs and tokens only, never a customer id or event content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db import OperationalError, connection, transaction

from api.intake import API_NAMES, EventLine, LineError, parse_body
from api.models import ApiToken
from api.services.profiles import profiles_update_incremental
from marketing.analytics.importing import Cleaner, CleanOptions
from marketing.analytics.importing.errors import REJECTED
from marketing.analytics.importing.formats import ROW_COLUMN
from marketing.models import Catalog, Customer, Event, Product
from marketing.services.customers import (
    CUSTOMER_ERASED,
    ERASURE_LOCK_CLASS,
    customer_suppression,
)

logger = logging.getLogger(__name__)

IMPORT_LOCK_CLASS = 7001  # marketing.services.imports.filejob.lock_catalog
LOCK_WAIT_S = 5
MAX_ERRORS = 1000
# The cleaner's input columns (its field names mapped to themselves).
COLUMNS = (
    "event_id",
    "kind",
    "occurred_at",
    "customer",
    "sku",
    "quantity",
    "value",
    "rating",
    "text",
    "source",
)


class IntakeBusy(Exception):
    """An import (or an erasure) holds the catalog; the client should retry later."""


@dataclass
class IntakeResult:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: list[LineError] = field(default_factory=list)
    profiles_updated: int = 0
    profiles_pending: int = 0

    @property
    def rejected(self) -> int:
        return len({e.line for e in self.errors})

    def as_json(self) -> dict:
        errors = sorted(self.errors, key=lambda e: e.line)
        return {
            "lines": self.lines,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [e.as_json() for e in errors[:MAX_ERRORS]],
            "errors_truncated": len(errors) > MAX_ERRORS,
            "profiles": {"updated": self.profiles_updated, "pending": self.profiles_pending},
        }


@dataclass
class _Cleaned:
    """One catalog's lines after the cleaner: events to resolve, duplicates within the body."""

    catalog: Catalog
    events: pd.DataFrame
    duplicates: int


def events_ingest(*, token: ApiToken, body: bytes, max_lines: int) -> IntakeResult:
    """Validate and store a JSON Lines batch for the token (scope events:write, checked by
    the caller). Raises intake.BodyError for an unreadable body, IntakeBusy when the
    catalog's lock is not free within LOCK_WAIT_S."""
    good, errors, lines = parse_body(body, token_catalog=token.catalog_id, max_lines=max_lines)
    result = IntakeResult(lines=lines, errors=list(errors))
    by_catalog: dict[int, list[EventLine]] = {}
    for line in good:
        by_catalog.setdefault(line.catalog, []).append(line)
    catalogs = Catalog.objects.in_bulk(list(by_catalog))
    cleaned: list[_Cleaned] = []
    for catalog_id in sorted(by_catalog):  # one lock order for every request
        catalog = catalogs.get(catalog_id)
        if catalog is None:
            result.errors.extend(
                LineError(line.line, "catalog", "unknown catalog")
                for line in by_catalog[catalog_id]
            )
            continue
        cleaned.append(_clean(catalog, by_catalog[catalog_id], result))
    if not any(len(c.events) for c in cleaned):
        result.duplicates += sum(c.duplicates for c in cleaned)
        return result
    try:
        with transaction.atomic():
            for item in cleaned:
                _store(item, result)
    except OperationalError as exc:
        if _lock_not_available(exc):
            raise IntakeBusy() from None
        raise
    logger.info(
        "api events (token %s): %d lines, %d accepted, %d duplicates, %d rejected",
        token.prefix,
        result.lines,
        result.accepted,
        result.duplicates,
        result.rejected,
    )
    return result


def _clean(catalog: Catalog, lines: list[EventLine], result: IntakeResult) -> _Cleaned:
    """Run the importer's cleaner over one catalog's lines; its issues become line errors."""
    frame = pd.DataFrame({c: [line.values[c] for line in lines] for c in COLUMNS}, dtype=object)
    frame[ROW_COLUMN] = np.array([line.line for line in lines], dtype=np.int64)
    cleaner = Cleaner(
        "events",
        {c: c for c in COLUMNS},
        CleanOptions(catalog_id=catalog.pk, timezone=catalog.timezone or "UTC"),
    )
    chunk = cleaner.clean(frame)
    rejected: set[int] = set()
    for issue in chunk.issues:
        if issue.action != REJECTED:
            continue  # "kept as text" (a formula-looking value) is a note, not an error
        if issue.column == "event_id" and issue.reason.startswith("duplicate event id"):
            continue  # the same event twice in one body: a duplicate, counted below
        rejected.add(issue.row)
        result.errors.append(
            LineError(issue.row, API_NAMES.get(issue.column, issue.column) or None, issue.reason)
        )
    events = chunk.events
    kept = set(events[ROW_COLUMN].tolist())
    duplicates = sum(1 for line in lines if line.line not in kept and line.line not in rejected)
    return _Cleaned(catalog=catalog, events=events, duplicates=duplicates)


def _lock(catalog: Catalog) -> None:
    """The import lock of the catalog and the erasure lock (shared), waiting LOCK_WAIT_S."""
    if connection.vendor != "postgresql":
        return  # SQLite: the IMMEDIATE transaction holds the database's only write lock
    with connection.cursor() as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'")
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [IMPORT_LOCK_CLASS, catalog.pk])
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", [ERASURE_LOCK_CLASS])
        cur.execute("SET LOCAL lock_timeout = 0")


def _lock_not_available(exc: OperationalError) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "55P03" or "database is locked" in str(exc)


def _store(item: _Cleaned, result: IntakeResult) -> None:
    catalog, events = item.catalog, item.events
    result.duplicates += item.duplicates
    if events.empty:
        return
    _lock(catalog)
    rows = events.to_dict("records")
    skus = {r["sku"] for r in rows if r["sku"] is not None}
    products = dict(Product.objects.filter(catalog=catalog, sku__in=skus).values_list("sku", "pk"))
    external = {r["customer"] for r in rows if r["customer"] is not None}
    customers = dict(
        Customer.objects.filter(external_id__in=external, erased_at__isnull=True).values_list(
            "external_id", "pk"
        )
    )
    unknown = [ext for ext in external if ext not in customers]
    erased = set()
    if unknown:
        hits = customer_suppression().matches(unknown)
        erased = {ext for ext, hit in zip(unknown, hits, strict=True) if hit}
    valid = []
    for r in rows:
        line = int(r[ROW_COLUMN])
        bad = False
        if r["sku"] is not None and r["sku"] not in products:
            result.errors.append(LineError(line, "sku", f"unknown SKU in catalog '{catalog.name}'"))
            bad = True
        if r["customer"] is not None and r["customer"] not in customers:
            reason = CUSTOMER_ERASED if r["customer"] in erased else "unknown customer"
            result.errors.append(LineError(line, "customer_id", reason))
            bad = True
        if not bad:
            valid.append(r)
    ids = [int(r["id"]) for r in valid]
    stored = {
        pk
        for part in _chunks(ids)
        for pk in Event.objects.filter(pk__in=part).values_list("pk", flat=True)
    }
    new = [r for r in valid if int(r["id"]) not in stored]
    result.duplicates += len(valid) - len(new)
    if not new:
        return
    Event.objects.bulk_create(
        [_event(catalog, r, products, customers) for r in new],
        batch_size=1000,
        ignore_conflicts=True,
    )
    result.accepted += len(new)
    affected = {customers[r["customer"]] for r in new if r["customer"] is not None}
    if affected:
        updated, pending = profiles_update_incremental(catalog=catalog, customer_ids=affected)
        result.profiles_updated += updated
        result.profiles_pending += pending


def _chunks(values: list, size: int = 900):
    """Slices small enough for SQLite's bound-variable limit (as the importer does)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _event(catalog: Catalog, r: dict, products: dict, customers: dict) -> Event:
    value = r["value"]
    rating = r["rating"]
    return Event(
        id=int(r["id"]),
        catalog_id=catalog.pk,
        customer_id=customers[r["customer"]] if r["customer"] is not None else None,
        product_id=products[r["sku"]] if r["sku"] is not None else None,
        kind=r["kind"],
        quantity=int(r["quantity"]),
        value=None if pd.isna(value) else Decimal(f"{value:.2f}"),
        rating=None if pd.isna(rating) else int(rating),
        text=r["text"] or "",
        occurred_at=pd.Timestamp(r["occurred_at"]).to_pydatetime(),
        source=r["source"] or "",
    )
