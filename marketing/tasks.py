"""Celery tasks: thin wrappers that call a service with a job id."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import OperationalError

from marketing.models import Job
from marketing.services import imports
from marketing.services.jobs import worker_name


@shared_task(
    bind=True,
    name="marketing.import_run",
    # A lost database connection is transient: retry a few times with backoff and jitter.
    # Bad input is not retried; the service fails the job with a report instead.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def import_run_task(self: Task, job_id: int) -> None:
    imports.import_run(job_id=job_id, worker=worker_name(), celery_id=self.request.id or "")


JOB_TASKS: dict[str, Task] = {Job.Kind.IMPORT: import_run_task}


def job_task_for(kind: str) -> Task:
    return JOB_TASKS[kind]
