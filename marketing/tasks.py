"""Celery tasks: thin wrappers that call a service with a job id.

Every process imports the task modules (the apps' ready(), the worker's autodiscovery), so
a task imports its service when it runs: a worker that only exports never loads pandas,
pyarrow or scikit-learn (about 150 MB per process).
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from marketing.models import Job
from marketing.services.jobs import job_fail, worker_name

logger = logging.getLogger(__name__)


class JobTask(Task):
    """A task whose first argument is a job id; when the task itself fails, so does the job.

    The services turn every outcome they expect into the job's final state. What reaches
    Celery as a failure (the last retry of a transient database error, anything else that
    escaped) would otherwise leave the job running forever.
    """

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id is None:
            return
        if isinstance(exc, OperationalError):
            error = (
                f"The database kept failing ({type(exc).__name__}), so the job stopped after "
                f"{self.max_retries + 1} attempts and nothing was changed. Try again later; "
                "if it persists, ask an admin."
            )
        else:
            error = f"The job stopped unexpectedly ({type(exc).__name__}); nothing was changed."
        logger.error("task %s for job %s failed: %r", task_id, job_id, exc)
        try:
            job_fail(job_id=job_id, error=error)
        except Exception:  # the database may be what failed; the log line above remains
            logger.exception("could not mark job %s failed", job_id)


@shared_task(
    bind=True,
    base=JobTask,
    name="marketing.import_run",
    # A lost database connection is transient: retry with backoff and jitter, within the job's
    # attempt budget (job_claim counts attempts). Bad input is not retried; the service fails
    # the job with a report instead. After the last retry JobTask.on_failure fails the job.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=max(settings.MAX_JOB_ATTEMPTS - 1, 0),
)
def import_run_task(self: Task, job_id: int) -> None:
    from marketing.services import imports  # pandas, pyarrow: only in workers that import

    imports.import_run(job_id=job_id, worker=worker_name(), celery_id=self.request.id or "")


@shared_task(
    bind=True,
    base=JobTask,
    name="marketing.profile_refresh",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=max(settings.MAX_JOB_ATTEMPTS - 1, 0),
)
def profile_refresh_task(self: Task, job_id: int) -> None:
    from marketing.services import profiles  # pandas, scikit-learn: only where it runs

    profiles.profile_refresh_run(
        job_id=job_id, worker=worker_name(), celery_id=self.request.id or ""
    )


JOB_TASKS: dict[str, Task] = {
    Job.Kind.IMPORT: import_run_task,
    Job.Kind.PROFILE_REFRESH: profile_refresh_task,
}


def job_task_for(kind: str) -> Task:
    return JOB_TASKS[kind]
