"""The import job: claim it, then parse, clean, validate and write the file in one transaction.

`import_run` turns every outcome into the job's final state (succeeded, failed, cancelled, or
released for a retry); `_import` streams the file chunk by chunk through the pure core and the
writers in `rows` and `events`, collecting rejected rows in the report (`report`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, connection, transaction

from marketing.analytics.importing import (
    Cleaner,
    CleanOptions,
    ImportFileError,
    SourceInfo,
    iter_frames,
    sniff,
)
from marketing.models import Catalog, Job, Upload
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

from .events import _event_writer, _resolve_events
from .report import _attach_report, _IssueWriter
from .rows import _CustomerIndex, _KeyStatus, _ProductIndex

# The name the module had before it became a package, so log lines read as they did.
logger = logging.getLogger("marketing.services.imports")

_NO_EVENTS = (Upload.Kind.PRODUCTS, Upload.Kind.CUSTOMERS)


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
