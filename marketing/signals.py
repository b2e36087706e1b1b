"""Signal hooks: worker start-up takes back orphaned jobs and starts the worker's heartbeat;
logins never wait for SQLite."""

from __future__ import annotations

import logging

from celery.signals import worker_ready, worker_shutdown
from django.contrib.auth import user_logged_in
from django.contrib.auth.models import update_last_login

logger = logging.getLogger(__name__)


@worker_ready.connect
def requeue_orphaned_jobs(**_: object) -> None:
    """A starting worker takes back the jobs its host's dead processes held, and any job whose
    worker died elsewhere."""
    requeue_lost_jobs(starting=True)


def requeue_lost_jobs(*, starting: bool = False) -> int:
    """Queue again every running job whose worker is gone: a dead process on this host, or a
    stale job heartbeat (a worker that died on any host). Returns how many.

    Safe to run on several workers at once: the claim (`job_claim`) lets one delivery run a
    job; the others find it running under a live worker and drop their message.
    """
    from marketing.services.jobs import job_release, jobs_orphaned_on_this_host, jobs_stale
    from marketing.tasks import job_task_for

    orphans = {job.pk: job for job in jobs_orphaned_on_this_host(starting=starting)}
    orphans.update({job.pk: job for job in jobs_stale()})
    for job in orphans.values():
        logger.warning("job %s lost its worker %s; retrying", job.pk, job.worker)
        job_release(job_id=job.pk)
        job_task_for(job.kind).delay(job.pk)
    return len(orphans)


@worker_ready.connect
def start_worker_heartbeat(sender: object = None, **_: object) -> None:
    """Beat every 30 s while this worker lives (see marketing.services.heartbeats); on
    PostgreSQL also sweep for lost jobs every JOB_STALE_AFTER_S. (SQLite keeps no job
    heartbeats, and its one embedded worker takes its jobs back when it starts.)"""
    from django.conf import settings
    from django.db import connection

    from marketing.services.heartbeats import worker_heartbeat_start
    from marketing.services.jobs import worker_name

    periodic = connection.vendor == "postgresql"
    worker_heartbeat_start(
        name=getattr(sender, "hostname", "") or worker_name(),
        sweep=requeue_lost_jobs if periodic else None,
        sweep_every_s=float(settings.JOB_STALE_AFTER_S),
    )


@worker_shutdown.connect
def stop_worker_heartbeat(**_: object) -> None:
    from marketing.services.heartbeats import worker_heartbeat_stop

    worker_heartbeat_stop()


def update_last_login_unless_busy(sender, user, **kwargs) -> None:
    """Django's update_last_login, skipped when SQLite is busy with an import.

    A login writes nothing else in embedded mode (sessions live in a signed cookie), so it
    need not wait for the import's write lock; a missed last_login is harmless.
    """
    from marketing.services.jobs import write_unless_sqlite_busy

    def write() -> int:
        update_last_login(sender, user, **kwargs)
        return 1

    write_unless_sqlite_busy(write, what=f"last_login of user {user.pk}")


# django.contrib.auth connects update_last_login in its ready(), which runs before ours.
if user_logged_in.disconnect(dispatch_uid="update_last_login"):
    user_logged_in.connect(update_last_login_unless_busy, dispatch_uid="update_last_login")
