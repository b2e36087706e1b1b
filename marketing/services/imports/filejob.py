"""The skeleton every file import job shares (data imports here, campaign results in copygen).

`file_job_run` claims the job, runs its body under a heartbeat and turns every outcome into
the job's final state: succeeded (with the rejected-rows report attached), failed (bad file,
unexpected error), cancelled, or released for the task's retry. The other names are the
pieces a body needs: the upload read chunk by chunk with progress (`UploadReader`), the
catalog's import lock, and the database's refusals in words.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DataError, OperationalError, connection

from marketing.analytics.importing import ImportFileError, SourceInfo, iter_frames, sniff
from marketing.analytics.importing.errors import NUL_SHOWN_AS
from marketing.models import Catalog, Job, Upload
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

from .report import attach_report

if TYPE_CHECKING:
    import pandas as pd

# The name the imports module had before it became a package, so log lines read as they did.
logger = logging.getLogger("marketing.services.imports")

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


@dataclass(frozen=True)
class FileJobOutcome:
    """What a job's body hands back: the job's result (with ``rows_read`` and ``rejected``),
    the head of its message, and whether events changed (profiles then need a refresh)."""

    summary: dict[str, Any]
    message: str
    events_changed: bool = False


def file_job_run(
    *,
    job_id: int,
    worker: str,
    celery_id: str,
    body: Callable[[Job, Path], FileJobOutcome],
    time_limit_error: str | None = None,
) -> None:
    """Claim the job and run ``body(job, issues_path)``, which writes the rejected rows to
    ``issues_path`` (see `IssueWriter`); safe to call again (a finished job returns at once).

    With ``time_limit_error``, Celery's soft time limit fails the job with that text;
    without, it counts as an unexpected error like any other.
    """
    job = job_claim(job_id=job_id, worker=worker, celery_id=celery_id)
    if job is None:
        return
    issues_path = Path(tempfile.mkstemp(prefix=f"job-{job.pk}-", suffix=".csv")[1])
    try:
        with job_heartbeat(job.pk):
            outcome = body(job, issues_path)
    except JobCancelled:
        job_mark_cancelled(job_id=job.pk)
    except ImportFileError as exc:
        if not exc.file:  # the cleaner's errors (a missing column) do not know the file's name
            exc.file = job.params.get("file", "")
        job_fail(job_id=job.pk, error=str(exc).replace("\x00", NUL_SHOWN_AS))
    except (OperationalError, psycopg.OperationalError):
        # Transient database trouble (a COPY raises the driver's own error for a lost
        # connection): let the task retry; make the job claimable again. If the database is
        # still away, the retried task releases the job instead (marketing.tasks.JobTask).
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        if time_limit_error and isinstance(exc, SoftTimeLimitExceeded):
            job_fail(job_id=job.pk, error=time_limit_error)
        else:
            log_failure(job.pk, exc)
            job_fail(
                job_id=job.pk,
                error=f"Unexpected error ({type(exc).__name__}); nothing was changed.",
            )
    else:
        attach_report(job, issues_path)
        # Queue the refresh before the job reads as finished, so whoever sees the import
        # succeed also sees its refresh waiting.
        if outcome.events_changed:
            queue_profile_refresh(job)
        rejected = outcome.summary["rejected"]
        job_succeed(
            job_id=job.pk,
            result=outcome.summary,
            done=outcome.summary["rows_read"],
            message=outcome.message + (f"; {rejected:,} rejected (see report)" if rejected else ""),
        )
    finally:
        issues_path.unlink(missing_ok=True)


class UploadReader:
    """An upload's file read chunk by chunk, with the job's progress: sniffed and its rows
    estimated up front ("Reading file"), then "Read N rows" after each chunk. ``done`` counts
    the rows read so far; ``report`` is the job's ProgressReporter, for the later steps."""

    def __init__(self, job: Job, upload: Upload) -> None:
        self.path = upload.file.path
        self.name = upload.original_name
        self.info = sniff(self.path, name=self.name, max_bytes=settings.IMPORT_MAX_BYTES)
        self.total = estimate_rows(self.path, self.info)
        self.done = 0
        self.report = ProgressReporter(job.pk)
        self.report(0, self.total, "Reading file", force=True)

    def frames(self) -> Iterator[pd.DataFrame]:
        """The file's frames of IMPORT_CHUNK_ROWS rows; progress moves once each is handled."""
        chunk_rows = settings.IMPORT_CHUNK_ROWS
        for frame in iter_frames(self.path, self.info, name=self.name, chunk_rows=chunk_rows):
            yield frame
            self.done += len(frame)
            self.report(self.done, max(self.total, self.done), f"Read {self.done:,} rows")


def queue_profile_refresh(job: Job) -> None:
    """New events change customers' profiles: queue a refresh (the import already succeeded,
    so a failure to queue is only logged)."""
    catalog = Catalog.objects.filter(pk=job.catalog_id).first() if job.catalog_id else None
    if catalog is None:
        return
    try:
        profile_refresh_start(catalog=catalog, user=job.created_by, triggered_by_import=True)
    except Exception as exc:
        logger.error("import job %s: could not queue a profile refresh: %r", job.pk, exc)


def log_failure(job_id: int, exc: BaseException) -> None:
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


@contextlib.contextmanager
def refused_values_as_file_errors(what: str, log: logging.Logger) -> Iterator[None]:
    """Turn a value the database refused (past the cleaner's checks) into an ImportFileError
    that names no value, and log the gap by type only: ``what`` says whose (``import job 7``)."""
    try:
        yield
    except (DataError, psycopg.DataError) as exc:
        log.warning("%s: the database refused a value (%s)", what, sqlstate(exc))
        raise data_error(exc) from None


def data_error(exc: Exception) -> ImportFileError:
    """A value the database refused, named by its SQLSTATE and column, without the value."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    state = getattr(cause, "sqlstate", None)
    what = _DATA_ERRORS.get(state) or f"a value it refused ({type(cause or exc).__name__})"
    diag = getattr(cause, "diag", None)
    found = _COPY_COLUMN.search(getattr(diag, "context", None) or "")
    column = f" in column {found.group(1)!r}" if found else ""
    return ImportFileError(f"the database could not store the data: {what}{column}")


def sqlstate(exc: Exception) -> str:
    """The error's type and SQLSTATE, for logs (the server's message may quote data)."""
    cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    return f"{type(cause or exc).__name__}, SQLSTATE {getattr(cause, 'sqlstate', None)}"


def lock_catalog(catalog: Catalog) -> None:
    """Serialize imports into one catalog (a second waits for the first to commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, catalog.pk])
            # Shared among imports; a customer erasure takes it exclusively (services.customers).
            cur.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", [ERASURE_LOCK_CLASS])
    # SQLite: the IMMEDIATE transaction already holds the database's single write lock.


def estimate_rows(path: str, info: SourceInfo) -> int:
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
