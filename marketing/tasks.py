"""Celery tasks: thin wrappers that call a service with a job id.

Every process imports the task modules (the apps' ready(), the worker's autodiscovery), so
a task imports its service when it runs: a worker that only exports never loads pandas,
pyarrow or scikit-learn (about 150 MB per process).
"""

from __future__ import annotations

import logging
import random

import psycopg
from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from marketing.models import Job
from marketing.services.jobs import (
    is_database_unreachable,
    job_claim_forget,
    job_fail,
    job_release_interrupted,
    worker_name,
)

logger = logging.getLogger(__name__)

# What a retry may cure: Django's OperationalError and the driver's own (a COPY through the
# raw cursor raises psycopg's).
TRANSIENT_DATABASE_ERRORS = (OperationalError, psycopg.OperationalError)
# The longest pause between two retries while the database cannot be reached.
RETRY_DELAY_MAX_S = 30.0
# The retried message's keyword argument: which claim the failed attempt held (so the retry
# can release it) and how many transient errors other than an unreachable database the job
# met. Tasks with retry_database accept it (Celery checks a message's arguments).
RETRY_STATE = "retry_state"


def retry_delay(retries: int) -> float:
    """Exponential backoff capped at RETRY_DELAY_MAX_S, with jitter that keeps at least half
    the delay (workers retrying after one restart do not all come back at once)."""
    return min(RETRY_DELAY_MAX_S, 2.0 ** min(retries, 16)) * random.uniform(0.5, 1.0)


class JobTask(Task):
    """A task whose first argument is a job id; when the task itself fails, so does the job.

    The services turn every outcome they expect into the job's final state. What reaches
    Celery as a failure (the last retry of a transient database error, anything else that
    escaped) would otherwise leave the job running forever.

    retry_database = True (a task option) retries transient database errors here instead of
    with Celery's autoretry_for:
    - the database cannot be reached (a restart, a network cut; `is_database_unreachable`):
      retry with backoff until it answers again. Nothing, not even the job's failure, can be
      recorded without it, and each attempt that reaches it counts against the job's
      MAX_JOB_ATTEMPTS in job_claim, so this ends.
    - any other OperationalError (a deadlock, a statement timeout): MAX_JOB_ATTEMPTS - 1
      retries, then on_failure fails the job.
    The attempt that lost the database could not release its job; the retry carries which
    claim it held and releases exactly that one first (`job_release_interrupted`).
    """

    retry_database = False

    def __call__(self, *args, **kwargs):
        job_id = args[0] if args else kwargs.get("job_id")
        if not self.retry_database:
            try:
                return super().__call__(*args, **kwargs)
            finally:
                job_claim_forget(job_id)
        state = kwargs.pop(RETRY_STATE, None) or {}
        try:
            if state.get("worker"):
                job_release_interrupted(
                    job_id=job_id, worker=state["worker"], attempt=state["attempt"]
                )
            return super().__call__(*args, **kwargs)
        except TRANSIENT_DATABASE_ERRORS as exc:
            retry = self._retry_database(exc, job_id, state, job_claim_forget(job_id))
            if retry is None:
                raise  # on_failure fails the job
            raise retry from exc
        finally:
            job_claim_forget(job_id)

    def _retry_database(self, exc, job_id, state: dict, claim) -> BaseException | None:
        """Send the retry of a transient database error and return the Retry to raise, or
        None when the job has had enough of them."""
        state = dict(state)
        if claim:  # this attempt claimed the job: the claim the retry must release
            state.update(worker=claim[0], attempt=claim[1])
        if is_database_unreachable(exc):
            what = "the database cannot be reached"
        else:
            state["errors"] = state.get("errors", 0) + 1
            if state["errors"] >= settings.MAX_JOB_ATTEMPTS:
                return None
            what = "a transient database error"
        countdown = retry_delay(self.request.retries)
        logger.warning(
            "job %s: %s (%s); retrying in %.1fs", job_id, what, type(exc).__name__, countdown
        )
        return self.retry(
            args=[job_id],
            kwargs={RETRY_STATE: state},
            exc=exc,
            countdown=countdown,
            max_retries=None,  # the task's own, None: no limit here; the budget is above
            throw=False,
        )

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id is None:
            return
        if isinstance(exc, TRANSIENT_DATABASE_ERRORS):
            error = (
                f"The database kept failing ({type(exc).__name__}), so the job stopped and "
                "nothing was changed. Try again later; if it persists, ask an admin."
            )
        else:
            error = f"The job stopped unexpectedly ({type(exc).__name__}); nothing was changed."
        logger.error("task %s for job %s failed: %r", task_id, job_id, exc)
        try:
            job_fail(job_id=job_id, error=error)
        except Exception:  # the database may be what failed; the log line above remains
            logger.exception("could not mark job %s failed", job_id)


# retry_state: JobTask's (see RETRY_STATE); the body never sees it.
DATABASE_RETRY = {"base": JobTask, "retry_database": True, "max_retries": None}


@shared_task(bind=True, name="marketing.import_run", **DATABASE_RETRY)
def import_run_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
    from marketing.services import imports  # pandas, pyarrow: only in workers that import

    imports.import_run(job_id=job_id, worker=worker_name(), celery_id=self.request.id or "")


@shared_task(bind=True, name="marketing.profile_refresh", **DATABASE_RETRY)
def profile_refresh_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
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
