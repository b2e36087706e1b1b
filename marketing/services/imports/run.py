"""The import job: claim it, then parse, clean, validate and write the file in one transaction.

`import_run` hands the job to `filejob.file_job_run`, which turns every outcome into the job's
final state (succeeded, failed, cancelled, or released for a retry); `_import` streams the file
chunk by chunk through the pure core and the writers in `rows` and `events`, collecting
rejected rows in the report (`report`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction

from marketing.analytics.importing import (
    Cleaner,
    CleanOptionError,
    CleanOptions,
    ImportFileError,
)
from marketing.models import AuditEvent, Catalog, Job, Upload
from marketing.services.audit import audit

from .events import _event_writer, _resolve_events
from .filejob import (
    FileJobOutcome,
    UploadReader,
    file_job_run,
    lock_catalog,
    refused_values_as_file_errors,
)
from .report import IssueWriter
from .rows import _CustomerIndex, _KeyStatus, _ProductIndex
from .uploads import UPLOAD_FILE_REMOVED

# The name the module had before it became a package, so log lines read as they did.
logger = logging.getLogger("marketing.services.imports")

_NO_EVENTS = (Upload.Kind.PRODUCTS, Upload.Kind.CUSTOMERS)
CATALOG_DELETED = "the catalog was deleted while the import was queued"

# The catalog settings the cleaner reads, as the catalog form labels them.
_CATALOG_SETTINGS = {"timezone": "time zone", "non_product_patterns": "non-product patterns"}


def import_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """Run one import job end to end; safe to call again for the same job (idempotent)."""
    file_job_run(job_id=job_id, worker=worker, celery_id=celery_id, body=_import)


def _import(job: Job, issues_path: Path) -> FileJobOutcome:
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
    reader = UploadReader(job, upload)
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
    issues = IssueWriter(issues_path, upload.original_name)
    products = _KeyStatus()
    customers = _KeyStatus()
    try:
        # A refused value rolls back; the cleaner should have caught it, so the gap is logged.
        with (
            refused_values_as_file_errors(f"import job {job.pk}", logger),
            transaction.atomic(),
        ):
            lock_catalog(catalog)
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
                expected_rows=0 if upload.kind in _NO_EVENTS else reader.total,
                stream=upload.kind == Upload.Kind.EVENTS,
            )
            if events.streaming:
                customer_index.preload_all()
            with events:
                for frame in reader.frames():
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
                done = reader.done
                reader.report(done, max(reader.total, done), "Saving events", force=True)
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
            reader.report(done, done, "Committing", force=True)
    finally:
        issues.close()
    counts = dict(cleaner.counts)
    rows_read = counts.pop("rows_read", done)
    summary = {
        "rows_read": rows_read,
        "rejected": len(issues.rejected_rows),
        "kept_as_text": issues.kept,
        "issues": issues.lines,
        "products": products.counts(),
        "customers": customers.counts(),
        "events": event_counts,
        "cleaning": {k: v for k, v in counts.items() if k != "rejected_rows"},
    }
    return FileJobOutcome(
        summary=summary,
        message=f"Imported {rows_read:,} rows",
        events_changed=bool((event_counts or {}).get("inserted")),
    )
