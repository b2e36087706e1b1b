"""Starting a job while the broker cannot be reached: a model run, a drafting job, an export
and a campaign results import (the data import: tests/integration/test_import_faults.py).
Each fails at once with a message that says so (the job and the page the user is sent to),
creates nothing half way (no run left queued, no drafts, no file, no recipient rows, no
results) and blocks nothing: with the broker back, starting again works, through a real
worker subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from copygen.models import (
    Brief,
    CampaignResult,
    ControlMember,
    Draft,
    DraftChunk,
    Export,
    ExportRecipient,
    export_storage,
)
from copygen.services.briefs import brief_create, brief_draft_start
from copygen.services.exports import export_create, export_run
from copygen.services.results_import import results_import_start, results_upload_create
from marketing.celery import app as celery_app
from marketing.models import Event, Job
from recommendations import selectors
from recommendations.models import ModelRun, ModelRunBatch, Recommendation
from recommendations.services import model_run_start
from tests.copy_support import copy_shop_create
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.integration.conftest import broker_unreachable, wait_for
from tests.recommendation_support import profiles_refresh, shop_create
from tests.test_exports_service import grant_export_roles

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

QUEUE_DOWN = "The job queue could not be reached, so the job did not start"


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path, _roles) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()  # tests/roles.py rebuilds the groups after a flush
    return settings.DATA_DIR


def assert_failed_at_once(job: Job, caplog) -> Job:
    job.refresh_from_db()
    assert f"could not enqueue job {job.pk}: OperationalError" in caplog.text
    assert job.status == Job.Status.FAILED
    assert job.message.startswith(QUEUE_DOWN)
    assert "nothing was changed" in job.error
    assert (job.celery_id, job.attempts, job.progress_done) == ("", 0, 0)
    return job


def shows_queue_down(client, url: str, *, status: int = 200) -> bool:
    response = client.get(url)
    assert response.status_code == status
    return QUEUE_DOWN in response.content.decode()


def ended(job_id: int, timeout: float = 45) -> Job:
    wait_for(
        lambda: Job.objects.filter(pk=job_id).exclude(status__in=Job.ACTIVE).exists(),
        timeout=timeout,
        what=f"job {job_id} to end",
    )
    return Job.objects.get(pk=job_id)


def test_a_model_run_fails_clearly_and_leaves_no_queued_run(
    marketer, client, worker_process, caplog, _data_dir
):
    shop = shop_create(customers=12)
    profiles_refresh(shop.catalog, marketer)
    client.force_login(marketer)

    with broker_unreachable():
        run = model_run_start(
            catalog=shop.catalog, user=marketer, algorithms=["popular"], budget_s=1
        )

    assert_failed_at_once(run.job, caplog)
    run.refresh_from_db()
    assert run.status == ModelRun.Status.FAILED  # not queued for ever
    assert run.finished_at is not None
    assert selectors.model_run_active(catalog=shop.catalog) is None
    assert not run.artifact
    assert not ModelRunBatch.objects.filter(run=run).exists()
    assert not Recommendation.objects.filter(run=run).exists()
    assert shows_queue_down(client, reverse("recommendations:run-status", args=[run.pk]))
    page = client.get(reverse("recommendations:run-detail", args=[run.pk])).content.decode()
    assert f"This run failed: {QUEUE_DOWN}" in page
    assert 'data-run-status="failed"' in page

    worker_process.start(env={"DATA_DIR": str(_data_dir)})
    again = model_run_start(catalog=shop.catalog, user=marketer, algorithms=["popular"], budget_s=1)

    assert ended(again.job_id).status == Job.Status.SUCCEEDED, worker_process.log()
    again.refresh_from_db()
    assert again.status == ModelRun.Status.SUCCEEDED and again.is_current


def customer_brief(shop, user) -> Brief:
    return brief_create(
        user=user,
        catalog=shop.catalog,
        name="Per customer",
        segment=shop.segment,
        audience=Brief.Audience.CUSTOMERS,
        channel="email",
        locales=["en"],
        variants=1,
    )


def test_a_drafting_job_fails_clearly_and_leaves_no_drafts(
    marketer, client, worker_process, caplog, settings, _data_dir
):
    settings.COPY_DRAFT_CHUNK_SIZE = 3
    shop = copy_shop_create()
    brief = customer_brief(shop, marketer)
    client.force_login(marketer)

    with broker_unreachable():
        job = brief_draft_start(brief=brief, user=marketer)

    assert_failed_at_once(job, caplog)
    brief.refresh_from_db()
    assert brief.job_id == job.pk
    assert not Draft.objects.filter(brief=brief).exists()
    assert not DraftChunk.objects.filter(job=job).exists()
    assert shows_queue_down(client, reverse("copygen:brief-status", args=[brief.pk]))
    assert shows_queue_down(client, brief.get_absolute_url())

    worker_process.start(env={"DATA_DIR": str(_data_dir), "COPY_DRAFT_PARALLEL": "1"})
    again = brief_draft_start(brief=brief, user=marketer)  # not refused as busy

    assert ended(again.pk).status == Job.Status.SUCCEEDED, (again.error, worker_process.log())
    assert Draft.objects.filter(brief=brief).count() == 9  # one per customer
    assert set(Draft.objects.filter(brief=brief).values_list("job_id", flat=True)) == {again.pk}


def results_brief(recipients: int) -> Brief:
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Broker down")
    for n in range(recipients):
        customer = CustomerFactory(
            external_id=f"B-{n:02d}", email=f"b{n}@example.test", consent_email=True
        )
        draft_make(brief=brief, customer=customer, status=Draft.Status.APPROVED)
    return brief


def export_files() -> list[str]:
    directory = Path(export_storage().location)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_an_export_fails_clearly_and_writes_no_file(
    marketer, client, worker_process, caplog, _data_dir
):
    brief = results_brief(12)
    client.force_login(marketer)

    with broker_unreachable():
        response = client.post(
            reverse("copygen:export-create", args=[brief.pk]),
            {"preset": "klaviyo", "control_share": 10},
            follow=True,
        )
    export = Export.objects.get(brief=brief)

    assert_failed_at_once(export.job, caplog)
    # The page the form leads to says the export did not start, not that it started.
    notices = [str(m) for m in response.context["messages"]]
    assert notices and notices[0].startswith(QUEUE_DOWN)
    assert "Export started." not in response.content.decode()
    export.refresh_from_db()
    assert not export.file and export.rows_written == 0
    assert export_files() == []
    assert not ExportRecipient.objects.exists() and not ControlMember.objects.exists()
    assert shows_queue_down(client, reverse("copygen:export-status", args=[export.pk]))
    page = client.get(export.get_absolute_url()).content.decode()
    assert QUEUE_DOWN in page and "No file was written." in page
    assert reverse("copygen:export-download", args=[export.pk]) not in page

    worker_process.start(env={"DATA_DIR": str(_data_dir)})
    again = export_create(user=marketer, brief=brief, preset="klaviyo", control_share=10)

    assert ended(again.job_id).status == Job.Status.SUCCEEDED, worker_process.log()
    again.refresh_from_db()
    assert export_files() == [f"export-{again.pk}.csv"]
    assert ExportRecipient.objects.filter(export=again).count() == again.rows_written > 0
    assert again.rows_written + again.control_size == 12


RESULTS = b"customer_id,opened,clicked\n" + b"".join(
    f"B-{n:02d},yes,{'yes' if n % 2 else 'no'}\n".encode() for n in range(6)
)
MAPPING = {"customer": "customer_id", "opened": "opened", "clicked": "clicked"}


def test_a_results_import_fails_clearly_and_stores_no_results(
    marketer, client, worker_process, caplog, _data_dir
):
    brief = results_brief(6)
    export = export_create(user=marketer, brief=brief, preset="generic_csv")
    export_run(job_id=export.job_id, worker="inline")  # the export itself, in this process
    celery_app.control.purge()  # its queued message, which would find it done
    export.refresh_from_db()
    assert export.status == Job.Status.SUCCEEDED
    client.force_login(marketer)

    def upload():
        return results_upload_create(
            export=export, file=SimpleUploadedFile("results.csv", RESULTS), user=marketer
        )

    first_upload = upload()
    with broker_unreachable():
        job = results_import_start(
            export=export, upload=first_upload, mapping=MAPPING, user=marketer
        )

    assert_failed_at_once(job, caplog)
    assert not CampaignResult.objects.exists()
    assert not Event.objects.filter(source=f"campaign:{export.pk}").exists()
    assert shows_queue_down(client, reverse("copygen:results-import-status", args=[job.pk]))
    assert shows_queue_down(client, reverse("copygen:results-import-detail", args=[job.pk]))

    worker_process.start(env={"DATA_DIR": str(_data_dir)})
    # The user's retry of the same upload queues a new job (the failed one never ran).
    again = results_import_start(export=export, upload=first_upload, mapping=MAPPING, user=marketer)
    assert again.pk != job.pk
    # A double-submitted form still returns the job that is queued or ran.
    assert (
        results_import_start(export=export, upload=first_upload, mapping=MAPPING, user=marketer).pk
        == again.pk
    )

    assert ended(again.pk).status == Job.Status.SUCCEEDED, (again.error, worker_process.log())
    assert CampaignResult.objects.filter(export=export).count() == 6
    assert CampaignResult.objects.filter(export=export, clicked=True).count() == 3
    assert Export.objects.get(pk=export.pk).status == Job.Status.SUCCEEDED
