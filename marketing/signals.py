"""Worker start-up: take back jobs whose worker process died on this host."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@worker_ready.connect
def requeue_orphaned_jobs(**_: object) -> None:
    from marketing.services.jobs import job_release, jobs_orphaned_on_this_host, jobs_stale
    from marketing.tasks import job_task_for

    orphans = {job.pk: job for job in jobs_orphaned_on_this_host(starting=True)}
    # A worker that died on another host stops its heartbeat; any starting worker takes it.
    orphans.update({job.pk: job for job in jobs_stale()})
    for job in orphans.values():
        logger.warning("job %s lost its worker %s; retrying", job.pk, job.worker)
        job_release(job_id=job.pk)
        job_task_for(job.kind).delay(job.pk)
