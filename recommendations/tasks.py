"""Celery tasks of model runs: thin wrappers that call a service with an id.

`model_run_task` (the job's task, registered in marketing.tasks.JOB_TASKS) trains and then
scores; in chord mode it sends `model_run_score_batch_task` per customer batch with
`model_run_finish_task` as the chord's callback (see recommendations.services.runs).

Each task imports the runs service when it runs: it loads numpy, pandas, scikit-learn and
gensim, which a worker process that only imports or exports should not hold (every process
imports this module through the app's ready()).
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from marketing.models import Job
from marketing.services.jobs import worker_name
from marketing.tasks import DATABASE_RETRY, JOB_TASKS, JobTask

logger = logging.getLogger(__name__)

_RETRY = {
    # A scoring step's lost database connection is transient: retry with backoff and jitter
    # (the services are idempotent). After the last retry on_failure fails the run.
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": max(settings.MAX_JOB_ATTEMPTS - 1, 0),
}


class ModelRunJobTask(JobTask):
    """The job's task: when it fails, the job fails (JobTask) and so does its run."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        super().on_failure(exc, task_id, args, kwargs, einfo)
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id is not None:
            _fail_quietly(job_id=job_id)


class ModelRunStepTask(Task):
    """A batch or the finish (first argument: the run id): when it fails, the run fails."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        run_id = args[0] if args else kwargs.get("run_id")
        logger.error("task %s of model run %s failed: %r", task_id, run_id, exc)
        if run_id is not None:
            _fail_quietly(run_id=run_id)


def _fail_quietly(**ids: int) -> None:
    from recommendations.services import runs

    try:
        runs.model_run_fail(
            **ids,
            error="Scoring stopped unexpectedly; the current recommendations were not changed.",
        )
    except Exception:  # the database may be what failed; the log line remains
        logger.exception("could not mark model run %s failed", ids)


# The job's task retries while the database cannot be reached, until it is back (see
# marketing.tasks.JobTask); the steps below keep a bounded retry and fail the run after it.
@shared_task(
    bind=True,
    name="recommendations.model_run",
    **{**DATABASE_RETRY, "base": ModelRunJobTask},
)
def model_run_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
    from recommendations.services import runs

    runs.model_run_run(job_id=job_id, worker=worker_name(), celery_id=self.request.id or "")


@shared_task(
    bind=True, base=ModelRunStepTask, name="recommendations.model_run_score_batch", **_RETRY
)
def model_run_score_batch_task(self: Task, run_id: int, index: int) -> None:
    from recommendations.services import runs

    runs.model_run_score_batch(run_id=run_id, index=index, worker=worker_name())


@shared_task(bind=True, base=ModelRunStepTask, name="recommendations.model_run_finish", **_RETRY)
def model_run_finish_task(self: Task, run_id: int) -> None:
    from recommendations.services import runs

    runs.model_run_finish(run_id=run_id)


JOB_TASKS[Job.Kind.MODEL_RUN] = model_run_task
