"""Job lifecycle: create, claim, report progress, finish.

A task claims its job with a conditional UPDATE (healthchecks' sendalerts pattern), so a
re-delivered message or a second worker cannot run the same job twice at once, while a
job whose worker died (stale heartbeat) can be taken over.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psutil
import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import (
    DatabaseError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.template.defaultfilters import pluralize
from django.utils import timezone

from marketing.models import Job
from marketing.permissions import require_perm

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a job when a user asked to cancel it; the job's transaction rolls back."""


def job_create(
    *, kind: str, user, catalog=None, params: dict | None = None, message: str = "Queued"
) -> Job:
    return Job.objects.create(
        kind=kind, created_by=user, catalog=catalog, params=params or {}, message=message
    )


def job_enqueue(job: Job) -> None:
    """Send the job's task once the surrounding transaction commits.

    A broker that cannot be reached fails the job with a message the user can act on,
    instead of leaving it queued forever.
    """
    from marketing.tasks import job_task_for  # tasks import services; import late

    task = job_task_for(job.kind)

    def send() -> None:
        try:
            result = task.apply_async(
                args=[job.pk],
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception as exc:  # kombu raises several types for an unreachable broker
            logger.error("could not enqueue job %s: %s", job.pk, type(exc).__name__)
            job_fail(
                job_id=job.pk,
                error="The job queue could not be reached, so the job did not start and "
                "nothing was changed. Try again in a minute; if it persists, ask an admin.",
            )
        else:
            Job.objects.filter(pk=job.pk, celery_id="").update(celery_id=result.id or "")

    transaction.on_commit(send)


def worker_name() -> str:
    """host:pid of this worker process, so a restarted host can spot jobs its dead processes held."""
    return f"{socket.gethostname()}:{os.getpid()}"


def job_claim(*, job_id: int, worker: str, celery_id: str = "") -> Job | None:
    """Mark the job running for this worker; None if it is finished or another live worker has it.

    A job cancelled meanwhile ends cancelled. A job that already ran MAX_JOB_ATTEMPTS times
    (each attempt's worker died: out of memory, hard time limit) fails instead of running again.
    """
    if _cancel_flagged(job_id):
        # job_cancel sets the cache flag first; its database write may not have happened
        # (SQLite was busy with another import).
        Job.objects.filter(pk=job_id, status__in=Job.ACTIVE).update(cancel_requested=True)
    holder = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).values_list(
        "worker", flat=True
    )
    for previous in holder:
        # A redelivered task (acks_late) whose previous worker process on this host died,
        # e.g. a killed pool child, need not wait for the heartbeat to go stale.
        if _worker_gone(previous):
            job_release(job_id=job_id)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    claimable = Q(status=Job.Status.QUEUED) | Q(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale), status=Job.Status.RUNNING
    )
    max_attempts = settings.MAX_JOB_ATTEMPTS
    changed = (
        Job.objects.filter(claimable, pk=job_id)
        .filter(cancel_requested=False, attempts__lt=max_attempts)
        .update(
            status=Job.Status.RUNNING,
            attempts=F("attempts") + 1,
            worker=worker,
            celery_id=celery_id,
            started_at=now,
            heartbeat_at=now,
            error="",
            message="Started",
        )
    )
    if changed != 1:
        # Cancelled while queued, or while running under a worker that then died: end it.
        cancelled = Job.objects.filter(claimable, pk=job_id, cancel_requested=True)
        cancelled.filter(status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELLED, finished_at=now, message="Cancelled before it started"
        )
        cancelled.filter(status=Job.Status.RUNNING).update(
            status=Job.Status.CANCELLED, finished_at=now, message="Cancelled; nothing was changed"
        )
        error = (
            f"Gave up after {max_attempts} attempt{pluralize(max_attempts)}: the worker kept dying "
            "(out of memory or time limit?) or lost the database. Nothing was changed."
        )
        Job.objects.filter(
            claimable, pk=job_id, cancel_requested=False, attempts__gte=max_attempts
        ).update(status=Job.Status.FAILED, finished_at=now, error=error, message=error)
        if not Job.objects.filter(pk=job_id, status__in=Job.ACTIVE).exists():
            _clear_cancel_flag(job_id)
        return None
    job = Job.objects.get(pk=job_id)
    _claims_here[job_id] = (worker, job.attempts)
    return job


# The claims this process made (job id -> (worker, attempt)), so a task whose attempt lost the
# database can name in its retry which claim to release (see job_release_interrupted).
_claims_here: dict[int, tuple[str, int]] = {}


def job_claim_forget(job_id: int) -> tuple[str, int] | None:
    """The (worker, attempt) this process last claimed the job with, forgotten from now on."""
    return _claims_here.pop(job_id, None)


def job_release_interrupted(*, job_id: int, worker: str, attempt: int) -> bool:
    """Release the job if it is still held by the given claim, whose attempt has ended.

    An attempt that lost the database could not release its job then (job_release needs the
    database too). Its worker process lives on, so `_worker_gone` does not free the job, and
    its heartbeat goes stale only after JOB_STALE_AFTER_S, when the retry has come and gone
    (finding the job held, it would return and leave it running for good). The retried task
    knows which claim ended (worker and attempt travel in its message), so it may release
    exactly that one, on any worker.
    """
    released = Job.objects.filter(
        pk=job_id, status=Job.Status.RUNNING, worker=worker, attempts=attempt
    ).update(heartbeat_at=None, message="The database connection was lost; retrying")
    return released == 1


class ProgressReporter:
    """Throttled progress writes (about one per second) that also notice cancellation.

    Jobs write their data in one transaction, so progress must travel outside it: on
    PostgreSQL through a second connection, on SQLite (one writer at a time) through the
    cache, which `job_live_progress` merges back in for the status fragment.

    monotonic: never lower progress_done (several workers report parts of one job, each
    from its own count; the bar must not go backwards).
    """

    def __init__(self, job_id: int, *, interval_s: float = 1.0, monotonic: bool = False) -> None:
        self.job_id = job_id
        self.interval_s = interval_s
        self.monotonic = monotonic
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        fields = {"progress_done": done, "progress_total": total, "heartbeat_at": timezone.now()}
        if message:
            fields["message"] = message[:500]
        if connection.vendor == "sqlite" and connection.in_atomic_block:
            cache.set(_progress_key(self.job_id), fields, timeout=3600)
            cancelled = _cancel_flagged(self.job_id)
        else:
            if self.monotonic:
                fields["progress_done"] = Greatest(F("progress_done"), Value(done))
            cancelled = _outside_transaction(lambda: _write_progress(self.job_id, fields))
            # job_cancel sets the cache flag before its database write, which may have failed.
            cancelled = cancelled or _cancel_flagged(self.job_id)
        if cancelled:
            raise JobCancelled()


def _write_progress(job_id: int, fields: dict) -> bool:
    Job.objects.filter(pk=job_id).update(**fields)
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def _progress_key(job_id: int) -> str:
    return f"job-progress:{job_id}"


def _cancel_key(job_id: int) -> str:
    return f"job-cancel:{job_id}"


def _cancel_flag_value(job: Job) -> str:
    # The job's creation time, so a flag left behind never matches a later job with the same
    # id (a database recreated while the cache was kept, as test runs do).
    return job.created_at.isoformat()


def _cancel_flagged(job_id: int, job: Job | None = None) -> bool:
    """True when job_cancel flagged this job in the cache (see job_cancel)."""
    flag = cache.get(_cancel_key(job_id))
    if not flag:
        return False
    if job is None:
        job = Job.objects.filter(pk=job_id).only("created_at").first()
    return job is not None and flag == _cancel_flag_value(job)


def _clear_cancel_flag(job_id: int) -> None:
    cache.delete(_cancel_key(job_id))


def _outside_transaction(fn: Callable):
    """Run fn on a fresh connection (a short thread) so its writes commit at once."""
    if not connection.in_atomic_block:
        return fn()
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def job_live_progress(job: Job) -> Job:
    """Overlay what the cache knows about a running job: the progress a SQLite job cannot write
    (see ProgressReporter) and a cancel request that may not have reached the row yet."""
    if job.status == Job.Status.RUNNING:
        fields = cache.get(_progress_key(job.pk))
        if fields:
            for name, value in fields.items():
                setattr(job, name, value)
    if job.is_active and (job.cancel_requested or _cancel_flagged(job.pk, job)):
        job.cancel_requested = True
        job.message = CANCELLING
    return job


@contextmanager
def job_heartbeat(job_id: int, *, every_s: float = 5.0) -> Iterator[None]:
    """Keep heartbeat_at fresh from a side thread while a long statement runs."""
    if connection.vendor == "sqlite":
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every_s):
                try:
                    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError as exc:
                    # The database restarts or is out of reach: the job itself notices at its
                    # next statement. Keep beating; a fresh connection is tried next time.
                    logger.warning("job %s: heartbeat not written (%s)", job_id, type(exc).__name__)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, daemon=True, name=f"job-{job_id}-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 1)


def job_succeed(
    *, job_id: int, result: dict, message: str = "Finished", done: int | None = None
) -> bool:
    """Mark a running job succeeded; False (nothing changed) when it has already ended —
    a job that failed or was cancelled meanwhile keeps that outcome."""
    fields = {} if done is None else {"progress_done": done, "progress_total": done}
    changed = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
        **fields,
        status=Job.Status.SUCCEEDED,
        result=result,
        message=message[:500],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    _clear_cancel_flag(job_id)
    return changed == 1


def job_fail(*, job_id: int, error: str, result: dict | None = None) -> None:
    """Fail a job that has not ended otherwise (a succeeded or cancelled job stays so)."""
    fields = {
        "status": Job.Status.FAILED,
        "error": error,
        "message": error.splitlines()[0][:500] if error else "Failed",
        "finished_at": timezone.now(),
    }
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).exclude(
        status__in=(Job.Status.SUCCEEDED, Job.Status.CANCELLED)
    ).update(**fields)
    _clear_cancel_flag(job_id)


def job_mark_cancelled(*, job_id: int) -> None:
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.CANCELLED,
        message="Cancelled; nothing was changed",
        finished_at=timezone.now(),
    )
    _clear_cancel_flag(job_id)


CANCELLING = "Cancelling…"
# Longer than a job waits and runs (hard time limit); jobs clear their flag when they end.
_CANCEL_FLAG_TIMEOUT_S = 24 * 3600


class CancelOutcome(enum.StrEnum):
    CANCELLED = "cancelled"  # it was queued and ended at once
    REQUESTED = "requested"  # it runs, and stops at its next checkpoint
    FINISHED = "finished"  # it had already ended; nothing to cancel


def job_cancel(*, job: Job, user) -> tuple[Job, CancelOutcome]:
    """Ask a job to stop. A queued job ends at once; a running one stops at its next checkpoint.

    The cache flag comes first and outside any transaction: the worker's ProgressReporter and
    job_claim read it, so cancelling works even when the database write below cannot happen
    now. On SQLite an import holds the only write lock for its whole transaction; there the
    write waits only briefly and is otherwise left to the worker, which ends the job itself.
    Every update is conditional on the status, so a job that ended meanwhile keeps its outcome.
    """
    require_perm(user, "marketing.change_job")
    if not job.is_active:
        return job, CancelOutcome.FINISHED
    cache.set(_cancel_key(job.pk), _cancel_flag_value(job), timeout=_CANCEL_FLAG_TIMEOUT_S)
    now = timezone.now()

    def write() -> int:
        Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE).update(cancel_requested=True)
        # A worker cannot claim the job once cancel_requested is set, so queued stays queued.
        ended = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELLED, message="Cancelled before it started", finished_at=now
        )
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(message=CANCELLING)
        return ended

    # The worker sees the cache flag and writes the job's final state itself.
    ended = write_unless_sqlite_busy(write, what=f"writing the cancel request of job {job.pk}")
    job.refresh_from_db()
    if job.is_active:
        return job_live_progress(job), CancelOutcome.REQUESTED
    _clear_cancel_flag(job.pk)  # nothing left to tell a worker
    if ended:
        return job, CancelOutcome.CANCELLED
    return job, CancelOutcome.FINISHED  # it ended on its own before the request reached it


def write_unless_sqlite_busy(fn: Callable[[], int], *, what: str, wait_ms: int = 250) -> int:
    """fn(), but on SQLite give up after wait_ms waiting for the write lock (returns 0 then).

    For writes that may be skipped or that someone else makes later. Inside a transaction
    fn() runs as is: the lock is then already held, or the transaction would be left broken.
    """
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return fn()
    try:
        with sqlite_busy_timeout(wait_ms):
            return fn()
    except OperationalError as exc:
        if not is_database_locked(exc):
            raise
        logger.info("database busy (an import is writing): skipped %s", what)
        return 0


def is_database_locked(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" (another connection holds the write lock)."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


# Server-side SQLSTATEs of a server that goes away or is not ready: admin_shutdown (a restart,
# "terminating connection due to administrator command"), crash_shutdown, cannot_connect_now
# ("the database system is starting up / shutting down"); class 08 is connection_exception.
_SERVER_GONE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def is_database_unreachable(exc: BaseException) -> bool:
    """True when exc says PostgreSQL cannot be reached or dropped the connection: refused,
    closed unexpectedly, restarting. Not for an error of one statement (a deadlock, a timeout,
    a constraint), which the same connection survives.

    Django wraps the driver's error (its __cause__); a COPY through the raw cursor raises the
    driver's own. psycopg gives client-side connection failures no SQLSTATE.
    """
    error: BaseException | None = exc
    for _ in range(5):  # Django's wrapper, the driver's error; never a long or cyclic chain
        if error is None:
            return False
        if isinstance(error, psycopg.OperationalError):
            state = error.sqlstate
            return state is None or state.startswith("08") or state in _SERVER_GONE_SQLSTATES
        error = error.__cause__
    return False


@contextmanager
def sqlite_busy_timeout(ms: int) -> Iterator[None]:
    """Make this SQLite connection wait at most ms for the write lock, then restore the wait."""
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("PRAGMA busy_timeout")
        previous = int(cur.fetchone()[0])
        cur.execute(f"PRAGMA busy_timeout = {int(ms)}")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute(f"PRAGMA busy_timeout = {previous}")


# Job.params key: the job's own task has handed the rest of its work to other tasks (a
# chord of batches) that keep its heartbeat and end it. Its task is not re-run when a
# worker restarts; the app that delegated sweeps such jobs itself (`job_delegate`).
DELEGATED = "delegated"


def job_delegate(*, job_id: int, message: str = "") -> bool:
    """Record that the running job's task handed its remaining work to other tasks and
    returned. The worker that ran it no longer owns the job, so the requeue logic for dead
    or stale workers skips it (re-running the task would resend that work and spend an
    attempt each time); whoever delegated must notice and resume stalled work. Returns
    False when the job is no longer running."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, status=Job.Status.RUNNING).first()
        if job is None:
            return False
        job.params = {**(job.params or {}), DELEGATED: True}
        job.heartbeat_at = timezone.now()
        fields = ["params", "heartbeat_at"]
        if message:
            job.message = message[:500]
            fields.append("message")
        job.save(update_fields=fields)
    return True


def _not_delegated(jobs):
    # has_key first: a missing key compares as NULL, which a bare exclude() would drop.
    delegated = Q(params__has_key=DELEGATED) & Q(**{f"params__{DELEGATED}": True})
    return jobs.exclude(delegated)


def jobs_orphaned_on_this_host(*, starting: bool = False) -> list[Job]:
    """Running jobs whose worker process on this host no longer exists (killed, crashed).
    Delegated jobs (`job_delegate`) are not their worker's any more and are left out.

    starting: the caller is a worker that is just starting, so no job can run in its own
    process or its pool's children yet. Their pids count as dead although they exist: a
    restarted container gives the new worker the same pids as the one that was killed.
    """
    hostname = socket.gethostname()
    fresh = _own_pids() if starting else set()
    orphans = []
    running = Job.objects.filter(status=Job.Status.RUNNING, worker__startswith=f"{hostname}:")
    for job in _not_delegated(running):
        pid = job.worker.rsplit(":", 1)[-1]
        if pid.isdigit() and (int(pid) in fresh or not _pid_alive(int(pid))):
            orphans.append(job)
    return orphans


def jobs_stale() -> list[Job]:
    """Running jobs on any host whose heartbeat stopped (their worker died elsewhere);
    delegated jobs (`job_delegate`) are left to whoever delegated them."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    return list(
        _not_delegated(Job.objects.filter(status=Job.Status.RUNNING)).filter(
            Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
        )
    )


def _worker_gone(worker: str) -> bool:
    """True when `host:pid` names a process on this host that no longer exists."""
    host, _, pid = worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def _own_pids() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(child.pid for child in me.children(recursive=True))}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_release(*, job_id: int) -> None:
    """Make a job claimable again (its previous worker died)."""
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
        heartbeat_at=None, message="Worker restarted; retrying"
    )
    close_old_connections()
