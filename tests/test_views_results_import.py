"""Results import pages: upload → column mapping → start → the job's polled status and summary,
the "Import results" button on the export's page, and who may do what.

mary (marketer) imports; avery (approver) reads the job's page but uploads and starts
nothing; nora has no role; anonymous users are sent to log in. Jobs run in this process.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from copygen.models import CampaignResult, Draft, Export
from copygen.services import exports, results_import
from marketing.forms import UploadForm
from marketing.models import Job, Upload
from marketing.services.imports import import_start
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.test_exports_service import grant_export_roles

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
RESULTS = b"Email Address,Opens,Clicks,tailor_variant\nP1@example.test,2,1,1\nnobody@x.test,1,0,\n"


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()


@pytest.fixture
def export(marketer) -> Export:
    catalog = CatalogFactory(currency="GBP", name="Shop")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Spring <email>")
    for n in (1, 2):
        customer = CustomerFactory(
            external_id=f"C-{n}", email=f"p{n}@example.test", consent_email=True
        )
        draft_make(brief=brief, customer=customer, status=Draft.Status.APPROVED)
    export = exports.export_create(user=marketer, brief=brief, preset="mailchimp")
    exports.export_run(job_id=export.job_id, worker="inline")
    export.refresh_from_db()
    assert export.status == Job.Status.SUCCEEDED, export.job.error
    return export


def url(name: str, *args) -> str:
    return reverse(f"copygen:{name}", args=args)


def words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def upload_file(client, export, content: bytes = RESULTS, name: str = "report.csv"):
    return client.post(
        url("results-import", export.pk), {"file": SimpleUploadedFile(name, content)}
    )


def finished_job(export: Export, user) -> Job:
    up = results_import.results_upload_create(
        export=export, file=SimpleUploadedFile("report.csv", RESULTS), user=user
    )
    job = results_import.results_import_start(
        export=export,
        upload=up,
        mapping={"email": "Email Address", "opened": "Opens", "clicked": "Clicks"},
        user=user,
    )
    results_import.results_import_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    return job


# ----------------------------------------------------------------------------- happy path


def test_upload_map_start_and_follow_the_job(client, marketer, export):
    client.force_login(marketer)
    page = client.get(url("results-import", export.pk))
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.content.decode()

    response = upload_file(client, export)
    upload = Upload.objects.get(kind=Upload.Kind.CAMPAIGN_RESULTS)
    assert response.status_code == 302
    assert response["Location"] == url("results-import-mapping", export.pk, upload.pk)
    assert (upload.catalog_id, upload.created_by) == (export.catalog_id, marketer)

    mapping = client.get(response["Location"])
    html = mapping.content.decode()
    assert mapping.status_code == 200 and "P1@example.test" in html  # the preview
    # The tool's headers are mapped already.
    guessed = {"email": "Email Address", "opened": "Opens", "variant": "tailor_variant"}
    for field, column in guessed.items():
        select = re.search(rf'<select name="{field}".*?</select>', html, re.S).group(0)
        assert re.search(rf'<option value="{column}" selected>', select), field

    posted = dict.fromkeys(("draft", "customer", "export", "brief", "sku"), "")
    posted.update({"email": "Email Address", "opened": "Opens", "clicked": "Clicks"})
    posted["variant"] = "tailor_variant"
    started = client.post(response["Location"], posted)
    job = Job.objects.get(kind=Job.Kind.RESULTS_IMPORT)
    assert started.status_code == 302 and started["Location"] == url(
        "results-import-detail", job.pk
    )
    assert job.params["mapping"]["email"] == "Email Address" and job.status == Job.Status.QUEUED

    queued = client.get(url("results-import-detail", job.pk))
    assert queued.status_code == 200
    assert f'hx-get="{url("results-import-status", job.pk)}"' in queued.content.decode()
    assert 'hx-trigger="every 1s"' in queued.content.decode()

    results_import.results_import_run(job_id=job.pk, worker="inline")
    status = client.get(url("results-import-status", job.pk), **HX)
    assert status.status_code == 286  # htmx stops polling
    assert "job-finished" in status["HX-Trigger"]
    summary = client.get(url("results-import-detail", job.pk), **HX)
    text = words(summary)
    assert summary.status_code == 200 and "<html" not in summary.content.decode()
    assert "Recipients with results" in text and "Rows rejected" in text
    link = re.search(r'id="brief-results-link" href="([^"]+)"', summary.content.decode())
    assert link.group(1) == f"/copy/briefs/{export.brief_id}/results/"
    assert f'href="{reverse("marketing:job-report", args=[job.pk])}"' in summary.content.decode()
    assert "not a recipient of export" in text  # the report's preview
    assert CampaignResult.objects.get().customer.external_id == "C-1"
    assert "Spring &lt;email&gt;" in summary.content.decode()  # autoescaped


def test_the_export_page_offers_the_import_to_those_who_may(client, marketer, approver, export):
    client.force_login(marketer)
    page = client.get(url("export-detail", export.pk)).content.decode()
    assert f'href="{url("results-import", export.pk)}"' in page
    client.force_login(approver)
    page = client.get(url("export-detail", export.pk)).content.decode()
    assert url("results-import", export.pk) not in page


def test_the_report_download_is_the_jobs_report(client, marketer, export):
    job = finished_job(export, marketer)
    client.force_login(marketer)
    response = client.get(reverse("marketing:job-report", args=[job.pk]))
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and "not a recipient of export" in body


# ----------------------------------------------------------------------------- access


def page_urls(export: Export, upload: Upload, job: Job) -> list[str]:
    return [
        url("results-import", export.pk),
        url("results-import-mapping", export.pk, upload.pk),
        url("results-import-detail", job.pk),
        url("results-import-status", job.pk),
    ]


def test_every_page_needs_a_login(client, marketer, export):
    job = finished_job(export, marketer)
    upload = Upload.objects.get()
    for address in page_urls(export, upload, job):
        response = client.get(address)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = upload_file(client, export)
    assert response.status_code == 302 and Upload.objects.count() == 1


def test_approvers_read_the_job_but_neither_upload_nor_start(client, marketer, approver, export):
    job = finished_job(export, marketer)
    upload = Upload.objects.get()
    client.force_login(approver)
    assert client.get(url("results-import-detail", job.pk)).status_code == 200
    assert client.get(url("results-import-status", job.pk)).status_code == 200
    assert client.get(url("results-import", export.pk)).status_code == 403
    assert upload_file(client, export).status_code == 403
    response = client.post(url("results-import-mapping", export.pk, upload.pk), {"email": "x"})
    assert response.status_code == 403
    assert Upload.objects.count() == 1 and Job.objects.filter(kind="results_import").count() == 1


def test_users_without_a_role_see_nothing(client, marketer, no_role_user, export):
    job = finished_job(export, marketer)
    client.force_login(no_role_user)
    for address in page_urls(export, Upload.objects.get(), job):
        assert client.get(address).status_code == 403, address


def test_someone_elses_upload_is_theirs(client, marketer, export):
    job = finished_job(export, marketer)
    other = User.objects.create_user("max", "m@example.test", "pw")
    other.groups.set(marketer.groups.all())
    client.force_login(other)
    upload = Upload.objects.get()
    assert client.get(url("results-import-mapping", export.pk, upload.pk)).status_code == 403
    assert job.status == Job.Status.SUCCEEDED


def test_missing_and_mismatched_objects_are_404(client, marketer, export):
    job = finished_job(export, marketer)
    upload = Upload.objects.get()
    client.force_login(marketer)
    assert client.get(url("results-import", 999)).status_code == 404
    assert client.get(url("results-import-mapping", export.pk, 999)).status_code == 404
    other = exports.Export.objects.create(
        catalog=CatalogFactory(), brief=export.brief, preset="generic_csv", channel="email", seed=1
    )
    # The upload belongs to the first export's catalog.
    assert client.get(url("results-import-mapping", other.pk, upload.pk)).status_code == 404
    assert client.get(url("results-import-detail", export.job_id)).status_code == 404  # export job
    assert client.get(url("results-import-detail", job.pk + 999)).status_code == 404


# ----------------------------------------------------------------------------- bad input


def test_a_bad_file_shows_why_and_stores_nothing(client, marketer, export):
    client.force_login(marketer)
    response = upload_file(client, export, b"", name="empty.csv")
    assert response.status_code == 200 and "file is empty" in words(response)
    response = upload_file(client, export, b"\x00\x01binary\x00", name="odd.csv")
    assert response.status_code == 200 and "binary" in words(response)
    assert not Upload.objects.exists()


def test_a_file_over_the_limit_is_refused_while_it_arrives(client, marketer, export, settings):
    settings.IMPORT_MAX_BYTES = 100
    client.force_login(marketer)
    response = upload_file(client, export, b"email,opened\n" + b"a@x.test,yes\n" * 50)
    assert response.status_code == 200 and "over the" in words(response)
    assert not Upload.objects.exists()


def test_a_mapping_without_a_recipient_column_is_refused(client, marketer, export):
    client.force_login(marketer)
    upload_file(client, export)
    upload = Upload.objects.get()
    response = client.post(url("results-import-mapping", export.pk, upload.pk), {"opened": "Opens"})
    assert response.status_code == 200
    assert "Required fields not mapped: Draft ID, Customer ID or Email" in words(response)
    assert not Job.objects.filter(kind=Job.Kind.RESULTS_IMPORT).exists()


def test_an_export_that_did_not_succeed_takes_no_results(client, marketer, export):
    Job.objects.filter(pk=export.job_id).update(status=Job.Status.FAILED)
    client.force_login(marketer)
    page = client.get(url("results-import", export.pk))
    assert page.status_code == 200 and "only a finished export" in words(page)
    assert "<form" not in page.content.decode().split('id="upload-h"')[1]
    response = upload_file(client, export)
    assert response.status_code == 200 and not Upload.objects.exists()


def test_the_upload_form_posts_with_the_csrf_token(marketer, export):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    refused = upload_file(client, export)
    assert refused.status_code == 403 and not Upload.objects.exists()
    page = client.get(url("results-import", export.pk)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        url("results-import", export.pk),
        {"file": SimpleUploadedFile("r.csv", RESULTS), "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302 and Upload.objects.count() == 1


def test_catalog_importer_does_not_take_campaign_results(client, marketer, admin_user, export):
    """Results belong to an export: the catalog's upload form does not offer the kind, and
    starting such an upload as a catalog import is refused (it would store nothing)."""
    assert Upload.Kind.CAMPAIGN_RESULTS not in dict(UploadForm().fields["kind"].choices)
    client.force_login(marketer)
    client.post(
        url("results-import", export.pk),
        {"file": SimpleUploadedFile("r.csv", RESULTS, content_type="text/csv")},
    )
    upload = Upload.objects.get(kind=Upload.Kind.CAMPAIGN_RESULTS)
    with pytest.raises(ValidationError, match="export's page"):
        import_start(upload=upload, mapping={"email": "Email Address"}, user=admin_user)
    assert not Job.objects.filter(kind=Job.Kind.IMPORT).exists()
