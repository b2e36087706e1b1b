"""Export pages: the form (on the brief's page and its own), the export's page with its polled
progress and summary, the download, and the history.

mary (marketer) exports and downloads; avery (approver) reads the history and summaries but
starts and downloads nothing; nora has no role; anonymous users are sent to log in. Jobs run
in this process (no worker).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from copygen.models import Draft, Export
from copygen.services import exports
from marketing.models import AuditEvent, Job
from tests.copygen_factories import PASSING_FIELDS, BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory
from tests.test_exports_service import grant_export_roles

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _export_settings(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()


@pytest.fixture
def brief():
    catalog = CatalogFactory(currency="GBP", name="Shop")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Spring <email>")
    for n, consent in enumerate((True, True, False)):
        customer = CustomerFactory(
            external_id=f"C-{n}",
            email=f"p{n}@example.test" if n else "",
            name=f"Pat {n}",
            consent_email=consent,
        )
        draft_make(brief=brief, customer=customer, status=Draft.Status.APPROVED)
    return brief


@pytest.fixture
def finished(brief, marketer) -> Export:
    export = exports.export_create(user=marketer, brief=brief, preset="mailchimp")
    exports.export_run(job_id=export.job_id, worker="inline")
    export.refresh_from_db()
    assert export.job.status == Job.Status.SUCCEEDED, export.job.error
    return export


def url(name: str, *args) -> str:
    return reverse(f"copygen:{name}", args=args)


def words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def page_urls(brief, export) -> list[str]:
    return [
        url("export-create", brief.pk),
        url("export-panel", brief.pk),
        url("export-list"),
        url("export-detail", export.pk),
        url("export-status", export.pk),
        url("export-download", export.pk),
    ]


# ----------------------------------------------------------------------------- access


def test_every_page_needs_a_login(client, brief, finished):
    for address in page_urls(brief, finished):
        response = client.get(address)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], address
    response = client.post(url("export-create", brief.pk), {"preset": "mailchimp"})
    assert response.status_code == 302 and Export.objects.count() == 1


def test_users_without_a_role_see_nothing(client, no_role_user, brief, finished):
    client.force_login(no_role_user)
    for address in page_urls(brief, finished):
        assert client.get(address).status_code == 403, address


def test_approvers_read_exports_but_neither_export_nor_download(client, approver, brief, finished):
    client.force_login(approver)
    assert client.get(url("export-list")).status_code == 200
    detail = client.get(url("export-detail", finished.pk))
    assert detail.status_code == 200 and "Download" not in words(detail)
    panel = client.get(url("export-panel", brief.pk), **HX)
    assert panel.status_code == 200 and "<form" not in panel.content.decode()
    assert client.get(url("export-create", brief.pk)).status_code == 403
    response = client.post(url("export-create", brief.pk), {"preset": "generic_csv"})
    assert response.status_code == 403 and Export.objects.count() == 1
    assert client.get(url("export-download", finished.pk)).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT_DOWNLOADED).exists()


def test_missing_objects_are_404(client, marketer):
    client.force_login(marketer)
    assert client.get(url("export-detail", 999)).status_code == 404
    assert client.get(url("export-download", 999)).status_code == 404
    assert client.get(url("export-create", 999)).status_code == 404


# ----------------------------------------------------------------------------- form


def test_the_brief_page_loads_the_export_panel(client, marketer, brief):
    client.force_login(marketer)
    page = client.get(brief.get_absolute_url()).content.decode()
    assert f'hx-get="{url("export-panel", brief.pk)}"' in page
    assert f'href="{url("export-create", brief.pk)}"' in page  # works without JS too

    panel = client.get(url("export-panel", brief.pk), **HX)
    text = words(panel)
    assert "Mailchimp contact import" in text and "Meta custom audience" in text
    assert "3 approved drafts" in text
    assert f'action="{url("export-create", brief.pk)}"' in panel.content.decode()
    # Without htmx the panel's URL leads to the form's page.
    assert client.get(url("export-panel", brief.pk))["Location"] == url("export-create", brief.pk)


def test_the_form_offers_only_presets_that_take_the_channel(client, marketer):
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    sms = BriefFactory(catalog=catalog, channel="sms")
    draft_make(brief=sms, status=Draft.Status.APPROVED)
    client.force_login(marketer)
    html = client.get(url("export-create", sms.pk)).content.decode()
    offered = set(re.findall(r'name="preset" value="([a-z_]+)"', html))
    assert offered == {
        "klaviyo",
        "braze_csv",
        "braze_json",
        "google_customer_match",
        "meta_custom_audience",
        "generic_csv",
        "generic_jsonl",
    }


def test_posting_the_form_starts_the_export_and_shows_its_page(client, marketer, brief):
    client.force_login(marketer)
    response = client.post(
        url("export-create", brief.pk),
        {"preset": "mailchimp", "control_share": "10", "excel_bom": "on"},
    )
    export = Export.objects.get()
    assert response.status_code == 302 and response["Location"] == export.get_absolute_url()
    assert (export.preset, export.control_share, export.excel_bom) == ("mailchimp", 10, True)
    assert export.job.status == Job.Status.QUEUED and export.created_by == marketer

    page = client.get(export.get_absolute_url())
    html = page.content.decode()
    assert "Export started." in html
    assert f'hx-get="{url("export-status", export.pk)}"' in html and "every 1s" in html
    assert "Spring &lt;email&gt;" in html and "Spring <email>" not in html  # autoescaped


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"preset": "nope", "control_share": "0"}, "Select a valid choice"),
        ({"preset": "mailchimp", "control_share": "60"}, "less than or equal to 50"),
        ({"preset": "mailchimp", "control_share": "x"}, "Enter a whole number"),
        (
            {"preset": "google_customer_match", "control_share": "0", "split_variants": "on"},
            "nothing to split",
        ),
    ],
)
def test_bad_input_is_explained_and_nothing_is_stored(client, marketer, brief, data, message):
    client.force_login(marketer)
    response = client.post(url("export-create", brief.pk), data)
    assert response.status_code == 200
    assert message in words(response)
    assert not Export.objects.exists()
    assert not Job.objects.filter(kind=Job.Kind.COPY_EXPORT).exists()


def test_a_brief_with_nothing_approved_says_so(client, marketer):
    catalog = CatalogFactory(currency="GBP")
    mug(catalog)
    brief = BriefFactory(catalog=catalog)
    draft_make(brief=brief)  # pending
    client.force_login(marketer)
    assert "approve drafts of this brief first" in words(client.get(url("export-create", brief.pk)))
    response = client.post(url("export-create", brief.pk), {"preset": "generic_csv"})
    assert response.status_code == 200 and "approve drafts of this brief first" in words(response)
    assert not Export.objects.exists()


# ----------------------------------------------------------------------------- progress, summary


def test_status_polls_while_the_job_runs_and_stops_when_it_ends(client, marketer, brief):
    client.force_login(marketer)
    export = exports.export_create(user=marketer, brief=brief, preset="mailchimp")
    running = client.get(url("export-status", export.pk), **HX)
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in running.content.decode()

    exports.export_run(job_id=export.job_id, worker="inline")
    done = client.get(url("export-status", export.pk), **HX)
    assert done.status_code == 286  # htmx: stop polling
    assert "job-finished" in done["HX-Trigger"]
    assert "every 1s" not in done.content.decode()


def test_the_summary_names_rows_reasons_and_warnings(client, marketer, finished):
    client.force_login(marketer)
    partial = client.get(url("export-detail", finished.pk), **HX)
    html = partial.content.decode()
    assert html.lstrip().startswith('<div id="export-summary"')  # only the summary section
    text = words(partial)
    assert "1 Rows written" in text and "2 Left out" in text
    assert "No consent for the channel 1" in text
    assert "No usable email / phone / customer id for this target 1" in text
    warning_row = re.search(r"<tr>\s*<td><a href=\"[^\"]+\">#(\d+)</a></td>.*?</tr>", html, re.S)
    assert warning_row is not None
    assert "no valid email address" in text and "left out" in text
    assert f'href="{url("export-download", finished.pk)}"' in html

    full = client.get(url("export-detail", finished.pk))
    assert "Settings" in words(full) and "Consent needed email" in words(full)


def test_download_sends_the_file_as_an_attachment_and_audits_it(client, marketer, finished):
    client.force_login(marketer)
    response = client.get(url("export-download", finished.pk))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    assert finished.file_name in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0].startswith("Email Address,First Name,Last Name,SUBJECT")
    assert "p1@example.test" in body and "p2@example.test" not in body
    audit = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT_DOWNLOADED)
    assert audit.actor == marketer and audit.object_id == str(finished.pk)


def test_downloading_an_unfinished_export_says_why(client, marketer, brief):
    export = exports.export_create(user=marketer, brief=brief, preset="generic_csv")
    client.force_login(marketer)
    response = client.get(url("export-download", export.pk), follow=True)
    assert "has not finished successfully" in words(response)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT_DOWNLOADED).exists()


def test_the_history_lists_who_when_which_preset_how_many_rows(client, approver, finished):
    other = BriefFactory(catalog=finished.catalog, name="Other brief")
    draft_make(brief=other, status=Draft.Status.APPROVED, fields=PASSING_FIELDS["email"])
    client.force_login(approver)
    text = words(client.get(url("export-list")))
    assert f"#{finished.pk}" in text and "Mailchimp" in text and "mary" in text
    row = re.search(rf"#{finished.pk} .*?Succeeded 1 2 0", text)
    assert row is not None, text
    only = words(client.get(url("export-list") + f"?brief={other.pk}"))
    assert f"#{finished.pk}" not in only and "No export yet" in only


def test_once_the_control_group_is_fixed_the_form_keeps_it(client, marketer, brief):
    first = exports.export_create(
        user=marketer, brief=brief, preset="generic_csv", control_share=20
    )
    exports.export_run(job_id=first.job_id, worker="inline")
    client.force_login(marketer)
    html = client.get(url("export-create", brief.pk)).content.decode()
    assert 'name="control_share"' not in html and "control group is fixed: 20 %" in words(
        client.get(url("export-create", brief.pk))
    )
    response = client.post(url("export-create", brief.pk), {"preset": "generic_csv"})
    second = Export.objects.exclude(pk=first.pk).get()
    assert response["Location"] == second.get_absolute_url()
    assert second.control_share == 20


def test_readers_of_the_brief_without_export_rights_get_the_panel_without_history(
    client, brief, finished
):
    reader = User.objects.create_user("rita", password="pw-rita")
    reader.user_permissions.add(Permission.objects.get(codename="view_brief"))
    client.force_login(reader)
    panel = client.get(url("export-panel", brief.pk), **HX)
    html = panel.content.decode()
    assert panel.status_code == 200
    assert "<form" not in html and "Export history" not in html and f"#{finished.pk}" not in html
    assert client.get(url("export-panel", brief.pk)).status_code == 403  # the history page
    assert client.get(url("export-list")).status_code == 403
