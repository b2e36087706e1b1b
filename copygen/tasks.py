"""Celery tasks of the copy studio: thin wrappers that call a service with a job id.

`copy_draft_task` is the drafting job's task (registered in marketing.tasks.JOB_TASKS, so
job_enqueue and the worker's requeue of orphaned jobs find it); `copy_draft_chunks_task`
helps it draft the job's chunks on other workers (see copygen.services.drafting).
`copy_export_task` is the export job's (copygen.services.exports, which also connects the
erasure hook of exports when this module is imported by the app's ready());
`results_import_task` is the campaign results import's (copygen.services.results_import).
"""

from __future__ import annotations

from celery import Task, shared_task

from copygen.services import exports
from marketing.models import Job
from marketing.services.jobs import worker_name
from marketing.tasks import DATABASE_RETRY, JOB_TASKS


# Every job task retries while the database cannot be reached, until it is back (see
# marketing.tasks.JobTask); a chunk's drafts are written in one transaction, so a retry
# drafts it again from scratch.
@shared_task(bind=True, name="copygen.copy_draft", **DATABASE_RETRY)
def copy_draft_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
    from copygen.services import drafting  # numpy, scikit-learn: only where it runs

    drafting.drafting_run(job_id=job_id, worker=worker_name(), celery_id=self.request.id or "")


@shared_task(bind=True, name="copygen.copy_draft_chunks", **DATABASE_RETRY)
def copy_draft_chunks_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
    from copygen.services import drafting  # numpy, scikit-learn: only where it runs

    drafting.drafting_chunks_run(job_id=job_id, worker=worker_name())


@shared_task(bind=True, name="copygen.copy_export", **DATABASE_RETRY)
def copy_export_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
    exports.export_run(job_id=job_id, worker=worker_name(), celery_id=self.request.id or "")


@shared_task(bind=True, name="copygen.results_import", **DATABASE_RETRY)
def results_import_task(self: Task, job_id: int, retry_state: dict | None = None) -> None:
    from copygen.services import results_import  # pandas: only in workers that run it

    results_import.results_import_run(
        job_id=job_id, worker=worker_name(), celery_id=self.request.id or ""
    )


JOB_TASKS[Job.Kind.COPY_DRAFT] = copy_draft_task
JOB_TASKS[Job.Kind.COPY_EXPORT] = copy_export_task
JOB_TASKS[Job.Kind.RESULTS_IMPORT] = results_import_task
