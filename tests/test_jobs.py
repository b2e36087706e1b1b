"""Jobs: cancelling (service and view), claiming with an attempt budget, the task's failure hook,
the job page's report preview and download.

Roles: mary (marketer) may cancel jobs; avery (approver) may only look at them.
"""

from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage
from django.db import OperationalError, connection
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from marketing.models import Job
from marketing.services import jobs as job_services
from marketing.services.jobs import (
    CancelOutcome,
    JobCancelled,
    ProgressReporter,
    job_cancel,
    job_claim,
)
from marketing.tasks import import_run_task
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def queued_job(**fields) -> Job:
    return JobFactory(status=Job.Status.QUEUED, message="Queued", **fields)


def running_job(**fields) -> Job:
    now = timezone.now()
    values = {
        "attempts": 1,
        "worker": "elsewhere:1",
        "started_at": now,
        "heartbeat_at": now,
        "message": "Read 100 rows",
        **fields,
    }
    return JobFactory(status=Job.Status.RUNNING, **values)


def cancel_flag(job: Job):
    return cache.get(job_services._cancel_key(job.pk))


# --- job_cancel (service) ------------------------------------------------------------------------


def test_cancel_flags_the_cache_before_any_database_write_and_opens_no_transaction(
    marketer, monkeypatch
):
    """The worker reads the cache flag; on SQLite a write may wait for an import's lock, so the
    flag must already be there when the first write starts, and no transaction may hold it."""
    job = running_job()
    writes: list[tuple[object, int]] = []
    depth = len(connection.savepoint_ids)
    update = QuerySet.update

    def spy(self, **kwargs):
        if self.model is Job:
            writes.append((cancel_flag(job), len(connection.savepoint_ids)))
        return update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", spy)

    job_cancel(job=job, user=marketer)

    assert writes, "job_cancel wrote nothing"
    assert all(flag for flag, _ in writes), "a database write came before the cache flag"
    assert {d for _, d in writes} == {depth}, "job_cancel opened a transaction"


def test_cancelling_a_running_job_reaches_its_worker(marketer):
    job = running_job()

    job, outcome = job_cancel(job=job, user=marketer)

    assert outcome == CancelOutcome.REQUESTED
    assert (job.status, job.cancel_requested, job.message) == (
        Job.Status.RUNNING,
        True,
        "Cancelling…",
    )
    with pytest.raises(JobCancelled):
        ProgressReporter(job.pk)(10, 100, force=True)


def test_cancelling_a_queued_job_ends_it_at_once(marketer):
    job = queued_job()

    job, outcome = job_cancel(job=job, user=marketer)

    assert outcome == CancelOutcome.CANCELLED
    assert (job.status, job.message) == (Job.Status.CANCELLED, "Cancelled before it started")
    assert job.finished_at is not None
    assert cancel_flag(job) is None  # nothing left for a worker to notice
    assert job_claim(job_id=job.pk, worker="late") is None


@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.FAILED])
def test_cancelling_a_job_that_finished_meanwhile_leaves_it_alone(marketer, status):
    """The page showed it running; by the time Cancel arrives the worker has finished it."""
    job = running_job()
    Job.objects.filter(pk=job.pk).update(status=status, message="Imported 3 rows")

    job, outcome = job_cancel(job=job, user=marketer)  # job still says running

    assert outcome == CancelOutcome.FINISHED
    job.refresh_from_db()
    assert (job.status, job.message, job.cancel_requested) == (status, "Imported 3 rows", False)
    assert cancel_flag(job) is None


def test_cancelling_a_finished_job_changes_nothing(marketer):
    job = JobFactory(status=Job.Status.SUCCEEDED, message="Imported")

    job, outcome = job_cancel(job=job, user=marketer)

    assert outcome == CancelOutcome.FINISHED
    job.refresh_from_db()
    assert (job.status, job.message, job.cancel_requested) == (
        Job.Status.SUCCEEDED,
        "Imported",
        False,
    )


def test_cancel_service_checks_the_permission_itself(approver):
    job = running_job()

    with pytest.raises(PermissionDenied):
        job_cancel(job=job, user=approver)

    job.refresh_from_db()
    assert (job.cancel_requested, job.message) == (False, "Read 100 rows")
    assert cancel_flag(job) is None


def test_a_cancel_request_that_only_reached_the_cache_still_cancels_a_queued_job():
    """SQLite was busy, so only the flag was set: the worker that picks the job up ends it."""
    job = queued_job()
    cache.set(job_services._cancel_key(job.pk), job_services._cancel_flag_value(job))

    assert job_claim(job_id=job.pk, worker="w:1") is None

    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.CANCELLED, 0)


def test_a_cancel_flag_left_by_another_job_with_the_same_id_is_ignored():
    """A recreated database reuses ids while the cache keeps old flags."""
    job = queued_job()
    cache.set(job_services._cancel_key(job.pk), "2001-01-01T00:00:00+00:00")

    claimed = job_claim(job_id=job.pk, worker="w:1")

    assert claimed is not None and claimed.status == Job.Status.RUNNING


# --- job_cancel (view) ---------------------------------------------------------------------------


def test_view_cancels_a_queued_job_and_says_so(client, marketer):
    job = queued_job()
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), follow=True)

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert [str(m) for m in response.context["messages"]] == [
        "Cancelled before it started; nothing was changed."
    ]


def test_view_requests_cancellation_of_a_running_job(client, marketer):
    job = running_job()
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "Cancellation requested: the job stops at its next checkpoint and keeps nothing."
    ]
    assert "Cancelling…" in response.content.decode()


def test_view_says_when_the_job_had_already_finished(client, marketer):
    job = JobFactory(status=Job.Status.SUCCEEDED, message="Imported 3 rows")
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "The job had already finished; nothing to cancel."
    ]
    job.refresh_from_db()
    assert job.message == "Imported 3 rows"


def test_htmx_cancel_swaps_the_card_without_a_flash_message(client, marketer):
    job = running_job()
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), **HX)

    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="job-status-{job.pk}"' in body
    assert "Cancelling…" in body
    assert ">Cancel</button>" not in body  # asked once is enough
    page = client.get(job.get_absolute_url())
    assert list(page.context["messages"]) == []


def test_htmx_cancel_of_a_queued_job_announces_that_it_finished(client, marketer):
    job = queued_job()
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), **HX)

    assert "hx-trigger" not in response.content.decode()  # the card stops polling
    assert "job-finished" in response["HX-Trigger"]


def test_view_cancel_requires_the_change_permission(client, approver):
    job = running_job()
    client.force_login(approver)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]))

    assert response.status_code == 403
    job.refresh_from_db()
    assert not job.cancel_requested


def test_view_cancel_rejects_get(client, marketer):
    job = queued_job()
    client.force_login(marketer)

    assert client.get(reverse("marketing:job-cancel", args=[job.pk])).status_code == 405
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED


def test_view_cancel_of_a_missing_job_is_404(client, marketer):
    client.force_login(marketer)

    assert client.post(reverse("marketing:job-cancel", args=[999_999])).status_code == 404


def test_anonymous_cancel_changes_nothing(client):
    job = queued_job()

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]))

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED


# --- job_claim: attempts -------------------------------------------------------------------------


def test_claim_fails_a_job_whose_worker_kept_dying(settings):
    settings.MAX_JOB_ATTEMPTS = 3
    job = running_job(attempts=3, heartbeat_at=None)  # released after its third worker died

    assert job_claim(job_id=job.pk, worker="w:4") is None

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.attempts == 3
    assert job.error.startswith(
        "Gave up after 3 attempts: the worker kept dying (out of memory or time limit?)"
    )
    assert job.finished_at is not None


def test_claim_runs_a_job_within_its_attempt_budget(settings):
    settings.MAX_JOB_ATTEMPTS = 3
    job = running_job(attempts=2, heartbeat_at=None)

    claimed = job_claim(job_id=job.pk, worker="w:3")

    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.worker) == (Job.Status.RUNNING, 3, "w:3")


def test_claim_over_budget_leaves_a_job_alone_while_its_worker_lives(settings):
    settings.MAX_JOB_ATTEMPTS = 1
    job = running_job(attempts=1)  # fresh heartbeat: its worker is alive

    assert job_claim(job_id=job.pk, worker="redelivered:1") is None

    job.refresh_from_db()
    assert (job.status, job.worker) == (Job.Status.RUNNING, "elsewhere:1")


# --- job_succeed, delegated jobs -----------------------------------------------------------------


@pytest.mark.parametrize("status", [Job.Status.FAILED, Job.Status.CANCELLED, Job.Status.QUEUED])
def test_succeed_leaves_a_job_that_is_not_running_alone(status):
    job = JobFactory(status=status, error="gave up" if status == Job.Status.FAILED else "")

    assert job_services.job_succeed(job_id=job.pk, result={"rows": 1}) is False

    job.refresh_from_db()
    assert job.status == status and job.result != {"rows": 1}


def test_succeed_finishes_a_running_job():
    job = running_job()
    assert job_services.job_succeed(job_id=job.pk, result={"rows": 1}, done=7) is True
    job.refresh_from_db()
    assert (job.status, job.result, job.progress_done) == (Job.Status.SUCCEEDED, {"rows": 1}, 7)


def test_a_delegated_job_is_left_out_of_the_requeue_of_dead_and_stale_workers():
    import socket

    dead = f"{socket.gethostname()}:999999"
    plain = running_job(worker=dead, heartbeat_at=None)
    delegated = running_job(worker=dead, heartbeat_at=None, params={"run_id": 4})
    assert job_services.job_delegate(job_id=delegated.pk, message="Batches running") is True
    Job.objects.filter(pk=delegated.pk).update(heartbeat_at=None)

    assert {j.pk for j in job_services.jobs_stale()} == {plain.pk}
    orphans = job_services.jobs_orphaned_on_this_host(starting=True)
    assert {j.pk for j in orphans} == {plain.pk}
    delegated.refresh_from_db()
    assert delegated.params == {"run_id": 4, job_services.DELEGATED: True}
    assert delegated.message == "Batches running"
    assert job_services.job_delegate(job_id=JobFactory(status=Job.Status.FAILED).pk) is False


# --- the task's failure hook ---------------------------------------------------------------------


def test_task_failure_after_its_last_retry_fails_the_job():
    job = running_job(attempts=3, heartbeat_at=None)

    import_run_task.on_failure(
        OperationalError("server closed the connection"), "task-1", (job.pk,), {}, None
    )

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("The database kept failing (OperationalError)")
    assert "nothing was changed" in job.error
    assert job.finished_at is not None


def test_task_failure_names_an_unexpected_error_and_keeps_a_cancelled_job_cancelled():
    failing = running_job()
    cancelled = JobFactory(status=Job.Status.CANCELLED, message="Cancelled; nothing was changed")

    import_run_task.on_failure(MemoryError(), "t", (), {"job_id": failing.pk}, None)
    import_run_task.on_failure(MemoryError(), "t", (cancelled.pk,), {}, None)

    failing.refresh_from_db()
    cancelled.refresh_from_db()
    assert failing.error == "The job stopped unexpectedly (MemoryError); nothing was changed."
    assert cancelled.status == Job.Status.CANCELLED


# --- job page: the rejected-rows report ----------------------------------------------------------

REPORT_HEADER = "file,row,column,value,reason,action\n"


def report_job(rows: int, **result) -> Job:
    lines = "".join(f"events.csv,{i + 2},sku,X{i},unknown SKU,rejected\n" for i in range(rows))
    job = JobFactory(result={"rows_read": rows, "rejected": rows, **result})
    job.report_file.save("report.csv", ContentFile((REPORT_HEADER + lines).encode()))
    return job


class CountingReader(io.BufferedReader):
    """A file that counts the bytes read from it."""

    def __init__(self, raw) -> None:
        super().__init__(raw)
        self.bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def read1(self, size=-1):
        data = super().read1(size)
        self.bytes_read += len(data)
        return data


@pytest.fixture
def opened(monkeypatch) -> list[CountingReader]:
    """Every file the storage opens, counting what is read from it."""
    files: list[CountingReader] = []

    def _open(self, name, mode="rb"):
        reader = CountingReader(io.FileIO(self.path(name), "rb"))
        files.append(reader)
        return File(reader)

    monkeypatch.setattr(FileSystemStorage, "_open", _open)
    return files


def test_job_page_reads_only_the_first_rows_of_a_big_report(client, marketer, opened):
    job = report_job(100_000)
    size = job.report_file.size
    client.force_login(marketer)

    response = client.get(job.get_absolute_url())

    body = response.content.decode()
    assert response.status_code == 200
    assert len(response.context["report"]["rows"]) == 50
    assert "Showing the first 50; the download has all of them." in body
    assert "100,000" not in body.split("Rejected rows and warnings")[1].split("</h2>")[0]
    assert sum(f.bytes_read for f in opened) < size / 10


def test_job_page_takes_the_issue_total_from_the_result(client, marketer):
    job = report_job(60, issues=75)
    client.force_login(marketer)

    response = client.get(job.get_absolute_url())

    assert "Rejected rows and warnings (75)" in response.content.decode()


def test_job_page_with_a_short_report_shows_it_whole(client, marketer):
    job = report_job(3)
    client.force_login(marketer)

    body = client.get(job.get_absolute_url()).content.decode()

    assert "X2" in body
    assert "Showing the first" not in body
    assert "Download the full report" in body


def test_job_page_survives_a_missing_report_file(client, marketer):
    job = report_job(3)
    job.report_file.storage.delete(job.report_file.name)
    client.force_login(marketer)

    response = client.get(job.get_absolute_url())

    body = response.content.decode()
    assert response.status_code == 200
    assert "The report file is no longer available." in body
    assert "Download the full report" not in body


def test_report_download_of_a_missing_file_is_404(client, marketer):
    job = report_job(3)
    job.report_file.storage.delete(job.report_file.name)
    client.force_login(marketer)

    assert client.get(reverse("marketing:job-report", args=[job.pk])).status_code == 404


def test_report_download_sends_the_whole_file(client, marketer):
    job = report_job(70)
    client.force_login(marketer)

    response = client.get(reverse("marketing:job-report", args=[job.pk]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content).count(b"\n") == 71


def test_report_download_needs_the_view_permission(client, no_role_user):
    job = report_job(3)
    client.force_login(no_role_user)

    assert client.get(reverse("marketing:job-report", args=[job.pk])).status_code == 403
