"""Imports: store an upload, then (in a job) parse, clean, validate and write it in one transaction.

The pure work (formats, mapping, cleaning, event keys) lives in marketing.analytics.importing;
this module translates its frames into rows. Everything a job writes happens inside one
transaction, so a failed, cancelled or killed import leaves the database as it was, and the
natural keys (SKU per catalog, customer external id, event hash) make a re-import change nothing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import tempfile
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from marketing.analytics.importing import (
    Cleaner,
    CleanOptions,
    ImportFileError,
    Issue,
    SourceInfo,
    iter_frames,
    missing_required,
    sniff,
)
from marketing.csvsafe import safe_cell
from marketing.models import Catalog, Customer, Event, Job, Product, Upload
from marketing.permissions import require_perm
from marketing.services.jobs import (
    JobCancelled,
    ProgressReporter,
    job_claim,
    job_create,
    job_enqueue,
    job_fail,
    job_heartbeat,
    job_mark_cancelled,
    job_release,
    job_succeed,
)

logger = logging.getLogger(__name__)

PRODUCT_FIELDS = (
    "title",
    "description",
    "category",
    "brand",
    "price",
    "url",
    "image_url",
    "in_stock",
)
CUSTOMER_FIELDS = (
    "email",
    "name",
    "country",
    "language",
    "consent_email",
    "consent_sms",
    "consent_push",
    "consent_ads",
)
EVENT_COLUMNS = (
    "id",
    "catalog_id",
    "customer_id",
    "product_id",
    "kind",
    "quantity",
    "value",
    "rating",
    "text",
    "occurred_at",
    "source",
)
REPORT_HEADER = ["row", "column", "value", "reason", "action"]
_NO_EVENTS = (Upload.Kind.PRODUCTS, Upload.Kind.CUSTOMERS)


# ---------------------------------------------------------------------------------------
# Upload and start


def upload_create(*, catalog: Catalog, kind: str, file: UploadedFile, user) -> Upload:
    """Store an uploaded file and sniff it; file-level problems raise ImportFileError."""
    require_perm(user, "marketing.import_data")
    return _store_upload(
        catalog=catalog, kind=kind, name=file.name, size=file.size, fileobj=file, user=user
    )


def upload_from_path(*, catalog: Catalog, kind: str, path: Path, user, name: str = "") -> Upload:
    """Register a file already on this machine as an upload (demo loader, benchmarks)."""
    with Path(path).open("rb") as fh:
        return _store_upload(
            catalog=catalog,
            kind=kind,
            name=name or Path(path).name,
            size=Path(path).stat().st_size,
            fileobj=File(fh),
            user=user,
        )


def _store_upload(
    *, catalog: Catalog, kind: str, name: str | None, size: int | None, fileobj, user
) -> Upload:
    if kind not in Upload.Kind.values:
        raise ValidationError(f"Unknown import kind {kind!r}")
    name = Path(name or "upload").name
    limit = settings.IMPORT_MAX_BYTES
    if size is not None and size > limit:
        # MB as the import core counts them (2**20 bytes), so the default 200 MB limit reads 200.0.
        raise ImportFileError(
            f"file is {size / 2**20:.1f} MB, over the {limit / 2**20:.1f} MB limit", file=name
        )
    if not size:
        raise ImportFileError("file is empty", file=name)
    upload = Upload(catalog=catalog, kind=kind, original_name=name, size=size, created_by=user)
    upload.file.save(name, fileobj, save=False)
    try:
        info = sniff(upload.file.path, name=name, max_bytes=limit)
    except ImportFileError:
        upload.file.delete(save=False)
        raise
    upload.detected = _info_to_json(info)
    upload.save()
    return upload


def _info_to_json(info: SourceInfo) -> dict:
    return {
        "format": info.format,
        "encoding": info.encoding,
        "delimiter": info.delimiter,
        "columns": list(info.columns),
        "sample": [dict(r) for r in info.sample],
    }


def import_start(*, upload: Upload, mapping: dict[str, str | None], user) -> Job:
    """Create the import job and enqueue it once the transaction commits."""
    require_perm(user, "marketing.import_data")
    columns = upload.detected.get("columns", [])
    mapping = {k: (v or None) for k, v in mapping.items()}
    unknown = [v for v in mapping.values() if v and v not in columns]
    if unknown:
        raise ValidationError(f"Mapped columns not in the file: {', '.join(unknown)}")
    missing = missing_required(mapping, upload.kind, columns)
    if missing:
        raise ValidationError(f"Required fields not mapped: {', '.join(missing)}")
    with transaction.atomic():
        job = job_create(
            kind=Job.Kind.IMPORT,
            user=user,
            catalog=upload.catalog,
            params={"upload_id": upload.pk, "mapping": mapping, "file": upload.original_name},
            message=f"Queued: {upload.get_kind_display()} from {upload.original_name}",
        )
        job_enqueue(job)
    return job


# ---------------------------------------------------------------------------------------
# The job


@dataclass
class _KeyStatus:
    """First classification of each key touched by this job (inserted / updated / unchanged)."""

    status: dict[str, str] = field(default_factory=dict)

    def mark(self, key: str, what: str) -> None:
        before = self.status.get(key)
        if before is None or (before == "unchanged" and what == "updated"):
            self.status[key] = what

    def counts(self) -> dict[str, int]:
        out = {"inserted": 0, "updated": 0, "unchanged": 0}
        for what in self.status.values():
            out[what] += 1
        return out


def import_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """Run one import job end to end; safe to call again for the same job (idempotent)."""
    job = job_claim(job_id=job_id, worker=worker, celery_id=celery_id)
    if job is None:
        return
    issues_path = Path(tempfile.mkstemp(prefix=f"job-{job.pk}-", suffix=".csv")[1])
    summary: dict = {}
    try:
        with job_heartbeat(job.pk):
            summary = _import(job, issues_path)
    except JobCancelled:
        job_mark_cancelled(job_id=job.pk)
    except ImportFileError as exc:
        if not exc.file:  # the cleaner's errors (a missing column) do not know the file's name
            exc.file = job.params.get("file", "")
        job_fail(job_id=job.pk, error=str(exc))
    except OperationalError:
        # Transient database trouble: let the task retry; make the job claimable again.
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        logger.exception("import job %s failed", job.pk)
        job_fail(
            job_id=job.pk, error=f"Unexpected error ({type(exc).__name__}); nothing was changed."
        )
    else:
        _attach_report(job, issues_path)
        rejected = summary["rejected"]
        job_succeed(
            job_id=job.pk,
            result=summary,
            done=summary["rows_read"],
            message=(
                f"Imported {summary['rows_read']:,} rows"
                + (f"; {rejected:,} rejected (see report)" if rejected else "")
            ),
        )
    finally:
        issues_path.unlink(missing_ok=True)


def _attach_report(job: Job, path: Path) -> None:
    with path.open("rb") as fh:
        job.report_file.save(f"job-{job.pk}-rejected-rows.csv", File(fh), save=False)
    Job.objects.filter(pk=job.pk).update(report_file=job.report_file.name)


class _IssueWriter:
    """Streams row-level issues to a CSV file (formula-safe) and counts them."""

    def __init__(self, path: Path, file_name: str) -> None:
        self._fh = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(["file", *REPORT_HEADER])
        self.file_name = file_name
        self.rejected_rows: set[int] = set()
        self.kept = 0

    def write(self, issues: Iterable[Issue]) -> None:
        for issue in issues:
            if issue.action == "rejected":
                self.rejected_rows.add(issue.row)
            else:
                self.kept += 1
            self._csv.writerow(
                [
                    safe_cell(self.file_name),
                    issue.row,
                    safe_cell(issue.column),
                    safe_cell(issue.value),
                    safe_cell(issue.reason),
                    issue.action,
                ]
            )

    def close(self) -> None:
        self._fh.close()


def _import(job: Job, issues_path: Path) -> dict:
    upload = Upload.objects.select_related("catalog").get(pk=job.params["upload_id"])
    catalog = upload.catalog
    mapping = job.params.get("mapping", {})
    path = upload.file.path
    info = sniff(path, name=upload.original_name, max_bytes=settings.IMPORT_MAX_BYTES)
    total = _estimate_rows(path, info)
    report = ProgressReporter(job.pk)
    report(0, total, "Reading file", force=True)
    cleaner = Cleaner(
        upload.kind,
        mapping,
        CleanOptions(
            catalog_id=catalog.pk,
            timezone=catalog.timezone,
            non_product_patterns=list(catalog.non_product_patterns or []),
            default_time=upload.created_at,
        ),
    )
    issues = _IssueWriter(issues_path, upload.original_name)
    products = _KeyStatus()
    customers = _KeyStatus()
    try:
        with transaction.atomic():
            _lock_catalog(catalog)
            product_index = _ProductIndex(catalog, kind=upload.kind, mapping=mapping)
            customer_index = _CustomerIndex(kind=upload.kind, mapping=mapping)
            # An events file writes no products or customers, so its events can stream
            # through one COPY once every id it may need is in memory.
            events = _event_writer(
                catalog,
                # Product and customer files hold no events: never bulk-load for them.
                expected_rows=0 if upload.kind in _NO_EVENTS else total,
                stream=upload.kind == Upload.Kind.EVENTS,
            )
            if events.streaming:
                customer_index.preload_all()
            done = 0
            with events:
                for frame in iter_frames(
                    path, info, name=upload.original_name, chunk_rows=settings.IMPORT_CHUNK_ROWS
                ):
                    chunk = cleaner.clean(frame)
                    issues.write(chunk.issues)
                    product_index.upsert(chunk.products, products)
                    customer_index.upsert(chunk.customers, customers)
                    resolved, event_issues = _resolve_events(
                        chunk.events, product_index, customer_index, catalog
                    )
                    issues.write(event_issues)
                    events.add(resolved)
                    done += len(frame)
                    report(done, max(total, done), f"Read {done:,} rows")
                report(done, max(total, done), "Saving events", force=True)
                event_counts = events.finish()
            report(done, done, "Committing", force=True)
    finally:
        issues.close()
    counts = dict(cleaner.counts)
    rejected = len(issues.rejected_rows)
    return {
        "rows_read": counts.pop("rows_read", done),
        "rejected": rejected,
        "kept_as_text": issues.kept,
        "products": products.counts(),
        "customers": customers.counts(),
        "events": event_counts,
        "cleaning": {k: v for k, v in counts.items() if k != "rejected_rows"},
    }


def _lock_catalog(catalog: Catalog) -> None:
    """Serialize imports into one catalog (a second waits for the first to commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, catalog.pk])
    # SQLite: the IMMEDIATE transaction already holds the database's single write lock.


def _estimate_rows(path: str, info: SourceInfo) -> int:
    """A cheap row count for the progress bar (newlines for text formats)."""
    if info.format in ("csv", "jsonl"):
        count = 0
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                count += block.count(b"\n")
        return max(count - (1 if info.format == "csv" else 0), 0)
    return 0


# ---------------------------------------------------------------------------------------
# Products and customers: upsert by natural key, counting inserted / updated / unchanged


def _mapped(mapping: dict, names: Iterable[str], kind: str) -> list[str]:
    if kind == Upload.Kind.ONLINE_RETAIL:
        return [n for n in names if n in ("title", "price", "country")]
    if kind == Upload.Kind.REVIEWS:
        return []  # reviews only create missing products; they never overwrite catalog data
    return [n for n in names if mapping.get(n) or (n == "name" and mapping.get("first_name"))]


def _clean_value(name: str, value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if name == "price":
        return Decimal(str(round(float(value), 2)))
    return value


class _IdMap(dict):
    """Natural key → row id, with a cached pandas Index for vectorised lookups.

    `Series.map(dict)` rebuilds a Series from the whole dict on every call; a chunk of 100k
    events against 100k customers then costs more than parsing it.
    """

    _index: pd.Index | None = None
    _ids: np.ndarray | None = None
    _size = -1

    def lookup(self, keys: pd.Series) -> pd.Series:
        """Row ids for keys (Int64, <NA> for unknown or missing keys)."""
        if self._size != len(self):  # entries are only ever added
            self._index = pd.Index(list(self.keys()), dtype=object)
            self._ids = np.fromiter(self.values(), dtype=np.int64, count=len(self))
            self._size = len(self)
        pos = self._index.get_indexer(keys.to_numpy(dtype=object))
        found = pos >= 0
        ids = np.where(found, self._ids[np.where(found, pos, 0)] if len(self) else 0, 0)
        return pd.Series(pd.arrays.IntegerArray(ids, ~found), index=keys.index)


class _ProductIndex:
    """SKU → product id for one catalog, kept in step with the rows this job writes."""

    def __init__(self, catalog: Catalog, *, kind: str, mapping: dict) -> None:
        self.catalog = catalog
        self.fields = _mapped(mapping, PRODUCT_FIELDS, kind)
        self.ids = _IdMap(Product.objects.filter(catalog=catalog).values_list("sku", "pk"))

    def upsert(self, frame: pd.DataFrame, status: _KeyStatus) -> None:
        if frame.empty:
            return
        records = frame.to_dict("records")
        known = [r for r in records if r["sku"] in self.ids]
        new = [r for r in records if r["sku"] not in self.ids]
        if new:
            objs = [self._build(r) for r in new]
            Product.objects.bulk_create(objs, batch_size=2000)
            for obj in objs:
                self.ids[obj.sku] = obj.pk
                status.mark(obj.sku, "inserted")
        if known:
            self._update(known, status)

    def _build(self, r: dict) -> Product:
        price = _clean_value("price", r.get("price"))
        in_stock = r.get("in_stock")
        return Product(
            catalog=self.catalog,
            sku=r["sku"],
            title=(r.get("title") or r["sku"])[:500],
            description=r.get("description") or "",
            category=(r.get("category") or "")[:300],
            brand=(r.get("brand") or "")[:200],
            price=price,
            url=r.get("url") or "",
            image_url=r.get("image_url") or "",
            in_stock=True if in_stock is None else bool(in_stock),
            attributes=r.get("attributes") or {},
        )

    def _update(self, records: list[dict], status: _KeyStatus) -> None:
        by_sku = {r["sku"]: r for r in records}
        changed: list[Product] = []
        existing = Product.objects.filter(catalog=self.catalog, sku__in=list(by_sku))
        for product in existing:
            r = by_sku[product.sku]
            dirty = False
            for name in self.fields:
                value = _clean_value(name, r.get(name))
                if value is None or value == "":
                    continue  # an empty cell never blanks stored data
                if name == "title":
                    value = str(value)[:500]
                if getattr(product, name) != value:
                    setattr(product, name, value)
                    dirty = True
            attrs = r.get("attributes") or {}
            if attrs and any(product.attributes.get(k) != v for k, v in attrs.items()):
                product.attributes = {**product.attributes, **attrs}
                dirty = True
            if dirty:
                product.updated_at = timezone.now()
                changed.append(product)
                status.mark(product.sku, "updated")
            else:
                status.mark(product.sku, "unchanged")
        if changed:
            Product.objects.bulk_update(
                changed, [*self.fields, "attributes", "updated_at"], batch_size=1000
            )


class _CustomerIndex:
    """External id → customer id, loaded lazily per chunk so big customer tables stay out of RAM."""

    def __init__(self, *, kind: str, mapping: dict) -> None:
        self.fields = _mapped(mapping, CUSTOMER_FIELDS, kind)
        self.ids = _IdMap()
        self.complete = False

    def preload_all(self) -> None:
        """Load every customer's id at once, so a streaming COPY needs no lookups later."""
        self.ids = _IdMap(
            Customer.objects.values_list("external_id", "pk").iterator(chunk_size=50_000)
        )
        self.complete = True

    def lookup(self, external_ids: Iterable[str]) -> None:
        if self.complete:
            return
        missing = [e for e in set(external_ids) if e not in self.ids]
        if not missing:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                # One array parameter: far cheaper to bind than an IN list of 50k strings.
                cur.execute(
                    f"SELECT external_id, id FROM {Customer._meta.db_table} "
                    "WHERE external_id = ANY(%s)",
                    [missing],
                )
                self.ids.update(cur.fetchall())
            return
        for start in range(0, len(missing), 900):  # SQLite's bound-variable limit
            part = missing[start : start + 900]
            self.ids.update(
                Customer.objects.filter(external_id__in=part).values_list("external_id", "pk")
            )

    def upsert(self, frame: pd.DataFrame, status: _KeyStatus) -> None:
        if frame.empty:
            return
        records = frame.to_dict("records")
        self.lookup(r["external_id"] for r in records)
        new = [r for r in records if r["external_id"] not in self.ids]
        known = {r["external_id"]: r for r in records if r["external_id"] in self.ids}
        if new:
            objs = [self._build(r) for r in new]
            Customer.objects.bulk_create(objs, batch_size=2000)
            for obj in objs:
                self.ids[obj.external_id] = obj.pk
                status.mark(obj.external_id, "inserted")
        if known:
            changed: list[Customer] = []
            for customer in Customer.objects.filter(external_id__in=list(known)):
                r = known[customer.external_id]
                dirty = False
                for name in self.fields:
                    value = _clean_value(name, r.get(name))
                    if value is None or value == "":
                        continue
                    if getattr(customer, name) != value:
                        setattr(customer, name, value)
                        dirty = True
                attrs = r.get("attributes") or {}
                if attrs and any(customer.attributes.get(k) != v for k, v in attrs.items()):
                    customer.attributes = {**customer.attributes, **attrs}
                    dirty = True
                if dirty:
                    customer.updated_at = timezone.now()
                    changed.append(customer)
                    status.mark(customer.external_id, "updated")
                else:
                    status.mark(customer.external_id, "unchanged")
            if changed:
                Customer.objects.bulk_update(
                    changed, [*self.fields, "attributes", "updated_at"], batch_size=1000
                )

    def _build(self, r: dict) -> Customer:
        def flag(name: str) -> bool:
            return bool(r.get(name)) if r.get(name) is not None else False

        return Customer(
            external_id=r["external_id"],
            email=r.get("email") or "",
            name=(r.get("name") or "")[:200],
            country=(r.get("country") or "")[:100],
            language=(r.get("language") or "")[:8],
            consent_email=flag("consent_email"),
            consent_sms=flag("consent_sms"),
            consent_push=flag("consent_push"),
            consent_ads=flag("consent_ads"),
            attributes=r.get("attributes") or {},
        )


# ---------------------------------------------------------------------------------------
# Events


def _resolve_events(
    events: pd.DataFrame,
    products: _ProductIndex,
    customers: _CustomerIndex,
    catalog: Catalog,
) -> tuple[pd.DataFrame, list[Issue]]:
    """Turn SKUs and external ids into row ids; rows naming unknown ones are rejected."""
    if events.empty:
        return events, []
    issues: list[Issue] = []
    out = events
    sku = out["sku"]
    product_id = products.ids.lookup(sku)
    bad_sku = sku.notna() & product_id.isna()
    cust = out["customer"]
    customers.lookup(cust.dropna().unique())
    customer_id = customers.ids.lookup(cust)
    bad_customer = cust.notna() & customer_id.isna()
    for row, value in zip(out.loc[bad_sku, "_row"], sku[bad_sku], strict=True):
        issues.append(
            Issue(int(row), "sku", str(value), f"unknown SKU in catalog '{catalog.name}'")
        )
    for row, value in zip(out.loc[bad_customer, "_row"], cust[bad_customer], strict=True):
        issues.append(Issue(int(row), "customer", str(value), "unknown customer"))
    keep = ~(bad_sku | bad_customer)
    out = out.loc[keep].copy()
    out["product_id"] = product_id[keep]
    out["customer_id"] = customer_id[keep]
    out["catalog_id"] = catalog.pk
    return out, issues


def _event_writer(catalog: Catalog, *, expected_rows: int, stream: bool) -> _EventWriter:
    if connection.vendor == "postgresql":
        return _PostgresEventWriter(catalog, expected_rows=expected_rows, stream=stream)
    return _OrmEventWriter(catalog)


def _in_sorted(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Membership of ids in a sorted int64 array (binary search; no hashing of either side)."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    # Searching in sorted order walks the haystack forwards: far fewer cache misses than
    # random probes with hash-valued keys.
    order = np.argsort(ids, kind="stable")
    needles = ids[order]
    pos = np.searchsorted(sorted_ids, needles)
    pos[pos >= len(sorted_ids)] = 0
    found = np.empty(len(ids), dtype=bool)
    found[order] = sorted_ids[pos] == needles
    return found


class _EventWriter:
    streaming = False

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.seen = np.empty(0, dtype=np.int64)  # sorted keys this file already produced
        self.inserted = 0
        self.unchanged = 0

    def _new_in_file(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop events whose key this file already produced (same natural key twice)."""
        ids = frame["id"].to_numpy(dtype=np.int64)
        first = ~pd.Series(ids).duplicated().to_numpy() & ~_in_sorted(self.seen, ids)
        self.seen = np.sort(np.concatenate([self.seen, ids[first]]))
        return frame.loc[first]

    def finish(self) -> dict[str, int]:
        return {"inserted": self.inserted, "unchanged": self.unchanged}

    def __enter__(self) -> _EventWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        return None


class _PostgresEventWriter(_EventWriter):
    """COPY straight into the events table, skipping keys already stored.

    Imports into a catalog are serialized by an advisory lock, so checking which keys exist
    and then copying the rest cannot race with another import of the same rows. Rows are
    written once (no staging table, no INSERT … SELECT, no per-row FK triggers).

    A load that is large next to the table (BULK_MIN_ROWS and at least half the table) runs
    in bulk mode: the table is locked, its indexes dropped, the rows copied, and the indexes
    rebuilt by sorting — several times cheaper than growing four B-trees row by row, whose
    random inserts also flood the WAL with full-page images. It all happens inside the
    import's transaction, so a failure restores the indexes with everything else. Readers of
    events wait for the lock during such a load; small, incremental loads never take it.
    """

    BULK_MIN_ROWS = 100_000
    TABLE = "marketing_event"

    def __init__(self, catalog: Catalog, *, expected_rows: int, stream: bool = False) -> None:
        super().__init__(catalog)
        with connection.cursor() as cur:
            cur.execute("SET LOCAL TimeZone = 'UTC'")  # _event_csv writes naive UTC times
        self.copy_stack = ExitStack()
        self.copy = None
        self.bulk = False
        self.want_bulk = False
        self.existing: np.ndarray | None = None
        self.rebuild: list[str] = []
        if expected_rows >= self.BULK_MIN_ROWS:
            with connection.cursor() as cur:
                cur.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [self.TABLE])
                table_rows = max(float(cur.fetchone()[0]), 0.0)
            if expected_rows >= 0.5 * table_rows:
                self.want_bulk = True
                # Keys of this catalog already stored (event ids hash the catalog id, so no
                # other catalog can hold them): deduplication then needs no index at all.
                self.existing = _stored_event_ids(self.catalog.pk)
                # One COPY for the whole file: the server ingests chunk N while Python
                # parses chunk N+1. Only when nothing else must be queried meanwhile.
                self.streaming = stream

    def _enter_bulk_mode(self) -> None:
        """Lock the table and drop its indexes; finish() rebuilds them. Entered lazily, so a
        re-import that adds nothing never touches the indexes."""
        with connection.cursor() as cur:
            cur.execute(f"LOCK TABLE {self.TABLE} IN ACCESS EXCLUSIVE MODE")
            cur.execute(
                """
                SELECT c.conname, pg_get_constraintdef(c.oid)
                FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
                WHERE t.relname = %s AND c.contype IN ('p', 'u')
                """,
                [self.TABLE],
            )
            constraints = cur.fetchall()
            cur.execute(
                """
                SELECT i.indexname, i.indexdef FROM pg_indexes i
                WHERE i.tablename = %s AND NOT EXISTS (
                    SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
                """,
                [self.TABLE],
            )
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            for name, _ in constraints:
                cur.execute(f'ALTER TABLE {self.TABLE} DROP CONSTRAINT "{name}"')
        self.rebuild = [
            f'ALTER TABLE {self.TABLE} ADD CONSTRAINT "{name}" {definition}'
            for name, definition in constraints
        ] + [definition for _, definition in indexes]
        self.bulk = True

    def _drop_existing(self, frame: pd.DataFrame) -> pd.DataFrame:
        ids = frame["id"].to_numpy(dtype=np.int64)
        if self.existing is not None:
            stored = _in_sorted(self.existing, ids)
        else:
            with connection.cursor() as cur:
                # One array literal is far cheaper for the driver than 100k bound integers.
                cur.execute(
                    f"SELECT id FROM {self.TABLE} WHERE id = ANY(%s::bigint[])",
                    ["{" + ",".join(map(str, ids.tolist())) + "}"],
                )
                found = np.fromiter((r[0] for r in cur.fetchall()), dtype=np.int64)
            stored = np.isin(ids, found)
        self.unchanged += int(stored.sum())
        return frame.loc[~stored]

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = self._drop_existing(self._new_in_file(frame))
        if frame.empty:
            return
        if self.want_bulk and not self.bulk:
            self._enter_bulk_mode()
        # Bulk mode rebuilds every index afterwards, so rows go in time order, which keeps the
        # BRIN time index sharp; otherwise key order fills the primary key page by page.
        frame = frame.sort_values("occurred_at" if self.bulk else "id", kind="stable")
        data = _event_csv(frame)
        if self.streaming:
            if self.copy is None:
                self.copy = self._open_copy(self.copy_stack)
            self.copy.write(data)
        else:
            with ExitStack() as stack:
                self._open_copy(stack).write(data)
        self.inserted += len(frame)

    def _open_copy(self, stack: ExitStack):
        cur = stack.enter_context(connection.cursor())
        columns = ", ".join(EVENT_COLUMNS)
        # A queued writer sends from its own thread, so Python prepares the next chunk while
        # the server ingests this one (both cores busy instead of taking turns).
        raw = cur.cursor if hasattr(cur, "cursor") else cur
        return stack.enter_context(
            cur.copy(
                f"COPY {self.TABLE} ({columns}) FROM STDIN "
                "WITH (FORMAT csv, FORCE_NOT_NULL (kind, text, source))",
                writer=QueuedLibpqWriter(raw),
            )
        )

    def __exit__(self, *exc_info) -> None:
        # Ends an open COPY; with an exception, psycopg aborts it and the transaction rolls back.
        self.copy_stack.__exit__(*exc_info)

    def finish(self) -> dict[str, int]:
        self.copy_stack.close()
        self.copy = None
        if self.bulk:
            with connection.cursor() as cur:
                cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                for statement in self.rebuild:
                    cur.execute(statement)
                cur.execute(f"ANALYZE {self.TABLE}")
        return super().finish()


def _stored_event_ids(catalog_id: int) -> np.ndarray:
    """All event ids of a catalog, sorted: one bytea of big-endian int64s (1M ids in ~0.2 s)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT string_agg(int8send(id), ''::bytea) FROM marketing_event WHERE catalog_id = %s",
            [catalog_id],
        )
        data = cur.fetchone()[0]
    if not data:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.frombuffer(bytes(data), dtype=">i8").astype(np.int64))


def _event_csv(frame: pd.DataFrame) -> bytes:
    """The rows as CSV for COPY, written by Arrow's C++ writer (about 8x pandas.to_csv).

    Nulls come out as unquoted empty fields (NULL to COPY); strings are quoted, so an empty
    string stays an empty string.
    """
    occurred = frame["occurred_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    rating = frame["rating"] if "rating" in frame else pd.Series(np.nan, index=frame.index)
    columns = {
        "id": pa.array(frame["id"].to_numpy(dtype=np.int64)),
        "catalog_id": pa.array(frame["catalog_id"].to_numpy(dtype=np.int64)),
        "customer_id": pa.array(frame["customer_id"].astype("Int64")),
        "product_id": pa.array(frame["product_id"].astype("Int64")),
        "kind": pa.array(frame["kind"].astype(object), type=pa.string()),
        "quantity": pa.array(frame["quantity"].to_numpy(dtype=np.int64)),
        "value": pa.array(frame["value"].astype(float).round(2), from_pandas=True),
        "rating": pa.array(pd.to_numeric(rating).round().astype("Int64")),
        "text": pa.array(frame["text"].astype(object), type=pa.string()),
        # Naive UTC (the transaction's TimeZone is set to UTC): Arrow formats naive
        # timestamps ten times faster than zoned ones.
        "occurred_at": pa.array(occurred.astype("datetime64[s]")),
        "source": pa.array(frame["source"].astype(object), type=pa.string()),
    }
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


class _OrmEventWriter(_EventWriter):
    """SQLite (embedded mode): bulk inserts that ignore keys already stored."""

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = self._new_in_file(frame)
        ids = frame["id"].tolist()
        existing: set[int] = set()
        for start in range(0, len(ids), 900):
            existing.update(
                Event.objects.filter(pk__in=ids[start : start + 900]).values_list("pk", flat=True)
            )
        objs = []
        for r in frame.itertuples(index=False):
            if r.id in existing:
                continue
            objs.append(
                Event(
                    id=int(r.id),
                    catalog_id=self.catalog.pk,
                    customer_id=None if pd.isna(r.customer_id) else int(r.customer_id),
                    product_id=None if pd.isna(r.product_id) else int(r.product_id),
                    kind=r.kind,
                    quantity=int(r.quantity),
                    value=None if pd.isna(r.value) else Decimal(str(round(float(r.value), 2))),
                    rating=None if pd.isna(r.rating) else int(r.rating),
                    text=r.text or "",
                    occurred_at=_to_datetime(r.occurred_at),
                    source=r.source or "",
                )
            )
        Event.objects.bulk_create(objs, batch_size=2000)
        self.inserted += len(objs)
        self.unchanged += len(existing)


def _to_datetime(value) -> datetime:
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
