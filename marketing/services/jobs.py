"""Job lifecycle: create, claim, report progress, finish.

A task claims its job with a conditional UPDATE (healthchecks' sendalerts pattern), so a
re-delivered message or a second worker cannot run the same job twice at once, while a
job whose worker died (stale heartbeat) can be taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psutil
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from marketing.models import Job

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
    """Mark the job running for this worker; None if it is finished or another live worker has it."""
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
    changed = (
        Job.objects.filter(claimable, pk=job_id)
        .filter(cancel_requested=False)
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
        return None
    return Job.objects.get(pk=job_id)


class ProgressReporter:
    """Throttled progress writes (about one per second) that also notice cancellation.

    Jobs write their data in one transaction, so progress must travel outside it: on
    PostgreSQL through a second connection, on SQLite (one writer at a time) through the
    cache, which `job_live_progress` merges back in for the status fragment.
    """

    def __init__(self, job_id: int, *, interval_s: float = 1.0) -> None:
        self.job_id = job_id
        self.interval_s = interval_s
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
            cancelled = bool(cache.get(_cancel_key(self.job_id)))
        else:
            cancelled = _outside_transaction(lambda: _write_progress(self.job_id, fields))
        if cancelled:
            raise JobCancelled()


def _write_progress(job_id: int, fields: dict) -> bool:
    Job.objects.filter(pk=job_id).update(**fields)
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def _progress_key(job_id: int) -> str:
    return f"job-progress:{job_id}"


def _cancel_key(job_id: int) -> str:
    return f"job-cancel:{job_id}"


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
    """Overlay progress a running SQLite job left in the cache (see ProgressReporter)."""
    if job.status == Job.Status.RUNNING:
        fields = cache.get(_progress_key(job.pk))
        if fields:
            for name, value in fields.items():
                setattr(job, name, value)
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
                Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
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
) -> None:
    fields = {} if done is None else {"progress_done": done, "progress_total": done}
    Job.objects.filter(pk=job_id).update(
        **fields,
        status=Job.Status.SUCCEEDED,
        result=result,
        message=message[:500],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )


def job_fail(*, job_id: int, error: str, result: dict | None = None) -> None:
    fields = {
        "status": Job.Status.FAILED,
        "error": error,
        "message": error.splitlines()[0][:500] if error else "Failed",
        "finished_at": timezone.now(),
    }
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).exclude(status=Job.Status.SUCCEEDED).update(**fields)


def job_mark_cancelled(*, job_id: int) -> None:
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.CANCELLED,
        message="Cancelled; nothing was changed",
        finished_at=timezone.now(),
    )


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Ask a job to stop. A queued job ends at once; a running one stops at its next checkpoint."""
    if job.status == Job.Status.QUEUED:
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            cancel_requested=True,
            status=Job.Status.CANCELLED,
            message="Cancelled before it started",
            finished_at=timezone.now(),
        )
    elif job.status == Job.Status.RUNNING:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True, message="Cancelling…")
        cache.set(_cancel_key(job.pk), True, timeout=24 * 3600)
    job.refresh_from_db()
    return job


def jobs_orphaned_on_this_host(*, starting: bool = False) -> list[Job]:
    """Running jobs whose worker process on this host no longer exists (killed, crashed).

    starting: the caller is a worker that is just starting, so no job can run in its own
    process or its pool's children yet. Their pids count as dead although they exist: a
    restarted container gives the new worker the same pids as the one that was killed.
    """
    hostname = socket.gethostname()
    fresh = _own_pids() if starting else set()
    orphans = []
    for job in Job.objects.filter(status=Job.Status.RUNNING, worker__startswith=f"{hostname}:"):
        pid = job.worker.rsplit(":", 1)[-1]
        if pid.isdigit() and (int(pid) in fresh or not _pid_alive(int(pid))):
            orphans.append(job)
    return orphans


def jobs_stale() -> list[Job]:
    """Running jobs on any host whose heartbeat stopped (their worker died elsewhere)."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    return list(
        Job.objects.filter(status=Job.Status.RUNNING).filter(
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
