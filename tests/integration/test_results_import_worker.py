"""The campaign results import on PostgreSQL with real Celery workers over the broker: a
marketer's import is queued on commit and run by a worker (results, events, the queued profile
refresh), a worker killed inside the import's transaction leaves nothing and the next worker
to start takes the job over and imports once (``hanging_results_worker`` hangs it there),
and a redelivered task imports nothing twice.
"""

from __future__ import annotations

import socket

import pytest

from copygen.models import CampaignResult, Draft, Export
from copygen.services.exports import export_create
from copygen.services.results_import import results_import_start, results_upload_create
from copygen.tasks import results_import_task
from marketing.models import Event, Job
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.integration.conftest import wait_for
from tests.test_exports_service import grant_export_roles

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = 40
# Every recipient opened; every third clicked; every fifth bought (revenue 10 + n).
RESULTS = (
    "customer_id,opened,clicked,converted,revenue\n"
    + "".join(
        f"R-{n:02d},yes,{'yes' if n % 3 == 0 else 'no'},{'yes' if n % 5 == 0 else 'no'},"
        f"{10 + n if n % 5 == 0 else ''}\n"
        for n in range(RECIPIENTS)
    )
    + "R-99,yes,no,no,\n"  # not a recipient
).encode()
MAPPING = {
    "customer": "customer_id",
    "opened": "opened",
    "clicked": "clicked",
    "converted": "converted",
    "revenue": "revenue",
}
CLICKS = len(range(0, RECIPIENTS, 3))
PURCHASES = len(range(0, RECIPIENTS, 5))


@pytest.fixture(autouse=True)
def _results(settings, tmp_path, _roles):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()  # tests/roles.py rebuilds the groups after a flush


@pytest.fixture
def brief():
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Worker results")
    for n in range(RECIPIENTS):
        customer = CustomerFactory(
            external_id=f"R-{n:02d}", email=f"r{n}@example.test", consent_email=True
        )
        draft_make(brief=brief, customer=customer, status=Draft.Status.APPROVED)
    return brief


def finished(job_id: int, timeout: float = 90) -> Job:
    wait_for(
        lambda: Job.objects.filter(pk=job_id).exclude(status__in=Job.ACTIVE).exists(),
        timeout=timeout,
        what=f"job {job_id} to finish",
    )
    return Job.objects.get(pk=job_id)


def sent_export(brief, user) -> Export:
    export = export_create(user=user, brief=brief, preset="generic_csv")
    job = finished(export.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    export.refresh_from_db()
    return export


def start(export: Export, user) -> Job:
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = results_upload_create(
        export=export, file=SimpleUploadedFile("results.csv", RESULTS), user=user
    )
    return results_import_start(export=export, upload=upload, mapping=MAPPING, user=user)


def assert_imported_once(export: Export, job: Job) -> None:
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["results"]["recipients"] == RECIPIENTS
    assert job.result["rejected"] == 1
    assert CampaignResult.objects.filter(export=export).count() == RECIPIENTS
    assert CampaignResult.objects.filter(export=export, clicked=True).count() == CLICKS
    events = Event.objects.filter(source=f"campaign:{export.pk}")
    assert events.filter(kind="click").count() == CLICKS
    assert events.filter(kind="purchase").count() == PURCHASES
    assert events.count() == len(set(events.values_list("pk", flat=True)))


def test_a_real_worker_imports_the_results(brief, marketer, celery_worker):
    export = sent_export(brief, marketer)

    job = finished(start(export, marketer).pk)

    assert_imported_once(export, job)
    assert job.attempts == 1 and job.progress_done == RECIPIENTS + 1
    assert job.result["matched_by"] == {"customer": RECIPIENTS}
    assert job.result["events"]["recorded"] == CLICKS + PURCHASES
    # The new behaviour reaches the profiles: a refresh was queued (and the worker runs it).
    assert Job.objects.filter(kind=Job.Kind.PROFILE_REFRESH, catalog=export.catalog).exists()


def test_a_redelivered_task_imports_nothing_twice(brief, marketer, celery_worker):
    export = sent_export(brief, marketer)
    job = finished(start(export, marketer).pk)
    events = set(Event.objects.values_list("pk", "kind", "value", "occurred_at"))
    # As if the worker died after its commit but before acking: the message comes again
    # while the job looks running with a stale heartbeat.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, heartbeat_at=None)
    results_import_task.delay(job.pk)

    wait_for(
        lambda: Job.objects.filter(pk=job.pk, attempts=2, status=Job.Status.SUCCEEDED).exists(),
        timeout=60,
        what="the redelivered task to finish",
    )
    job.refresh_from_db()
    assert_imported_once(export, job)
    assert job.result["results"] == {"recipients": RECIPIENTS, "created": 0, "updated": RECIPIENTS}
    assert set(Event.objects.values_list("pk", "kind", "value", "occurred_at")) == events


def test_a_killed_worker_leaves_nothing_and_the_next_one_imports_once(
    brief, marketer, worker_process, tmp_path
):
    marker = tmp_path / "hanging"
    worker_process.start(
        module="tests.integration.hanging_results_worker",
        env={"HANG_RESULTS_MARKER": str(marker)},
    )
    first_pid = worker_process.proc.pid
    export = sent_export(brief, marketer)
    job = start(export, marketer)
    wait_for(marker.exists, timeout=90, what="the import to write (uncommitted)")
    worker_process.kill()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1), worker_process.log()
    assert job.worker == f"{socket.gethostname()}:{first_pid}"
    assert not CampaignResult.objects.exists() and not Event.objects.exists()

    worker_process.start()  # no marker: a plain worker; on start it requeues the orphan
    job = finished(job.pk, timeout=120)

    assert_imported_once(export, job)
    assert job.attempts == 2, worker_process.log()
    assert job.worker == f"{socket.gethostname()}:{worker_process.proc.pid}"
