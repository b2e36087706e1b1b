"""The import job: claim it, then parse, clean, validate and write the file in one transaction.

`import_run` turns every outcome into the job's final state (succeeded, failed, cancelled, or
released for a retry); `_import` streams the file chunk by chunk through the pure core and the
writers in `rows` and `events`, collecting rejected rows in the report (`report`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import traceback
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import DataError, OperationalError, connection, transaction

from marketing.analytics.importing import (
    Cleaner,
    CleanOptionError,
    CleanOptions,
    ImportFileError,
    SourceInfo,
    iter_frames,
    sniff,
)
from marketing.analytics.importing.errors import NUL_SHOWN_AS
from marketing.models import AuditEvent, Catalog, Job, Upload
from marketing.services.audit import audit
from marketing.services.customers import ERASURE_LOCK_CLASS
from marketing.services.jobs import (
    JobCancelled,
    ProgressReporter,
    job_claim,
    job_fail,
    job_heartbeat,
    job_mark_cancelled,
    job_release,
    job_succeed,
)
from marketing.services.profiles import profile_refresh_start

from .events import _event_writer, _resolve_events
from .report import _attach_report, _IssueWriter
from .rows import _CustomerIndex, _KeyStatus, _ProductIndex
from .uploads import UPLOAD_FILE_REMOVED

# The name the module had before it became a package, so log lines read as they did.
logger = logging.getLogger("marketing.services.imports")

_NO_EVENTS = (Upload.Kind.PRODUCTS, Upload.Kind.CUSTOMERS)
CATALOG_DELETED = "the catalog was deleted while the import was queued"

# The catalog settings the cleaner reads, as the catalog form labels them.
_CATALOG_SETTINGS = {"timezone": "time zone", "non_product_patterns": "non-product patterns"}

# SQLSTATEs of values the database refused, in words; the server's own text may quote the
# value (a customer's email address), so it is never shown or logged.
_DATA_ERRORS = {
    "22001": "a value is longer than its column allows",
    "22003": "a number is too large for its column",
    "22007": "a date it cannot read",
    "22008": "a date outside the range it can store",
    "22021": "a character it cannot store (such as NUL)",
    "22P02": "a value it cannot read as its column's type",
    "22P05": "a character it cannot store (such as NUL)",
}
_COPY_COLUMN = re.compile(r"\bCOPY \w+, line \d+, column (\w+)")


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
        job_fail(job_id=job.pk, error=str(exc).replace("\x00", NUL_SHOWN_AS))
    except OperationalError:
        # Transient database trouble: let the task retry; make the job claimable again.
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        _log_failure(job.pk, exc)
        job_fail(
            job_id=job.pk, error=f"Unexpected error ({type(exc).__name__}); nothing was changed."
        )
    else:
        _attach_report(job, issues_path)
        rejected = summary["rejected"]
        # Queue the refresh before the import reads as finished, so whoever sees the
        # import succeed also sees its refresh waiting.
        if (summary.get("events") or {}).get("inserted"):
            _queue_profile_refresh(job)
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


def _queue_profile_refresh(job: Job) -> None:
    """New events change customers' profiles: queue a refresh (the import already succeeded,
    so a failure to queue is only logged)."""
    catalog = Catalog.objects.filter(pk=job.catalog_id).first() if job.catalog_id else None
    if catalog is None:
        return
    try:
        profile_refresh_start(catalog=catalog, user=job.created_by, triggered_by_import=True)
    except Exception as exc:
        logger.error("import job %s: could not queue a profile refresh: %r", job.pk, exc)


def _log_failure(job_id: int, exc: BaseException) -> None:
    """Log an unexpected failure by type and code location only.

    The message of a database error carries the server's DETAIL and CONTEXT lines, which
    quote the offending row (email addresses, names); logger.exception would copy them into
    the logs. The frames (file, line, code) say where it broke without any data.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    logger.error(
        "import job %s failed: %s (message withheld: it may quote file data)\n%s",
        job_id,
        type(exc).__name__,
        frames,
    )


def _data_error(exc: Exception) -> ImportFileError:
    """A value the database refused (past the cleaner's checks), named without the value."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    what = _DATA_ERRORS.get(sqlstate) or f"a value it refused ({type(cause or exc).__name__})"
    diag = getattr(cause, "diag", None)
    found = _COPY_COLUMN.search(getattr(diag, "context", None) or "")
    column = f" in column {found.group(1)!r}" if found else ""
    return ImportFileError(f"the database could not store the data: {what}{column}")


def _import(job: Job, issues_path: Path) -> dict:
    try:
        upload = Upload.objects.select_related("catalog").get(pk=job.params["upload_id"])
    except Upload.DoesNotExist:
        # Deleting a catalog deletes its uploads (the job itself stays, without catalog).
        gone = CATALOG_DELETED if job.catalog_id is None else "the upload was deleted"
        raise ImportFileError(gone) from None
    if not upload.file:  # removed by a customer erasure (which refuses while jobs are queued)
        raise ImportFileError(UPLOAD_FILE_REMOVED)
    catalog = upload.catalog
    mapping = job.params.get("mapping", {})
    path = upload.file.path
    info = sniff(path, name=upload.original_name, max_bytes=settings.IMPORT_MAX_BYTES)
    total = _estimate_rows(path, info)
    report = ProgressReporter(job.pk)
    report(0, total, "Reading file", force=True)
    patterns = catalog.non_product_patterns or []
    try:
        cleaner = Cleaner(
            upload.kind,
            mapping,
            CleanOptions(
                catalog_id=catalog.pk,
                timezone=catalog.timezone,
                non_product_patterns=[patterns] if isinstance(patterns, str) else list(patterns),
                default_time=upload.created_at,
            ),
        )
    except CleanOptionError as exc:
        label = _CATALOG_SETTINGS.get(exc.option, exc.option)
        raise ImportFileError(
            f"catalog setting {label!r}: {exc.reason}; correct it on the catalog's page"
        ) from None
    issues = _IssueWriter(issues_path, upload.original_name)
    products = _KeyStatus()
    customers = _KeyStatus()
    try:
        with transaction.atomic():
            _lock_catalog(catalog)
            # Deleting a catalog takes the same lock: once we hold it, the catalog either
            # still exists (and stays until we commit) or is gone for good.
            if not Catalog.objects.filter(pk=catalog.pk).exists():
                raise ImportFileError(CATALOG_DELETED)
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
                    issues.write(customer_index.take_issues())  # erased customers' rows
                    resolved, event_issues = _resolve_events(
                        chunk.events, product_index, customer_index, catalog
                    )
                    issues.write(event_issues)
                    events.add(resolved)
                    done += len(frame)
                    report(done, max(total, done), f"Read {done:,} rows")
                report(done, max(total, done), "Saving events", force=True)
                event_counts = events.finish()
            # In the import's transaction: the trail records exactly the imports that committed.
            audit(
                actor=job.created_by,
                action=AuditEvent.Action.DATA_IMPORTED,
                obj=job,
                details={
                    "catalog_id": catalog.pk,
                    "upload_id": upload.pk,
                    "kind": upload.kind,
                    "rows_read": cleaner.counts.get("rows_read", done),
                    "rejected": len(issues.rejected_rows),
                    "products": products.counts(),
                    "customers": customers.counts(),
                    "events": event_counts,
                },
            )
            report(done, done, "Committing", force=True)
    except (DataError, psycopg.DataError) as exc:
        # Rolled back; the cleaner should have caught the value, so note the gap (by type).
        logger.warning("import job %s: the database refused a value (%s)", job.pk, _sqlstate(exc))
        raise _data_error(exc) from None
    finally:
        issues.close()
    counts = dict(cleaner.counts)
    rejected = len(issues.rejected_rows)
    return {
        "rows_read": counts.pop("rows_read", done),
        "rejected": rejected,
        "kept_as_text": issues.kept,
        "issues": issues.lines,
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
            # Shared among imports; a customer erasure takes it exclusively (services.customers).
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", [ERASURE_LOCK_CLASS])
    # SQLite: the IMMEDIATE transaction already holds the database's single write lock.


def _sqlstate(exc: Exception) -> str:
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    return f"{type(cause or exc).__name__}, SQLSTATE {getattr(cause, 'sqlstate', None)}"


def _estimate_rows(path: str, info: SourceInfo) -> int:
    """A cheap row count for the progress bar: line feeds in text formats (carriage returns
    in an old-Mac file that has none)."""
    if info.format in ("csv", "jsonl"):
        lf = cr = 0
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                lf += block.count(b"\n")
                if not lf:
                    cr += block.count(b"\r")
        return max((lf or cr) - (1 if info.format == "csv" else 0), 0)
    return 0
