"""Approve → export → download → import results → see the variant chart, in the browser: an
approver approves a draft, a marketer exports the brief from its page as a Mailchimp file,
watches a real worker write it, reads the summary, downloads the file, then uploads the
campaign tool's per-recipient report (one good row, one for an address that was never sent),
watches the import, reads the rejected row, and opens the brief's results with its chart."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from copygen.models import CampaignResult, Draft, Export
from marketing.models import AuditEvent
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.e2e.conftest import log_out, login
from tests.factories import CatalogFactory, CustomerFactory
from tests.test_exports_service import grant_export_roles

pytestmark = pytest.mark.e2e


@pytest.fixture
def brief(settings, tmp_path, marketer, approver):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()  # after the role fixtures rebuilt the groups (a flush empties them)
    catalog = CatalogFactory(currency="GBP", name="Kitchen shop")
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Spring email")
    customer = CustomerFactory(
        external_id="K-1", email="kim@example.test", name="Kim Keller", consent_email=True
    )
    draft_make(brief=brief, customer=customer)
    no_consent = CustomerFactory(external_id="K-2", email="lou@example.test")
    draft_make(brief=brief, customer=no_consent, status=Draft.Status.APPROVED)
    return brief


def test_approve_export_download_import_results(page, traffic, start_worker, brief, tmp_path):
    draft = Draft.objects.get(brief=brief, customer__external_id="K-1")
    login(page, "avery", "pw-avery")
    page.goto(draft.get_absolute_url())
    page.get_by_label("Comment").fill("Good to go")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#messages")).to_contain_text("Approved.")
    log_out(page)

    login(page, "mary", "pw-mary")
    page.goto(brief.get_absolute_url())
    panel = page.locator("#brief-exports")
    expect(panel).to_contain_text("Mailchimp contact import")  # loaded by htmx
    expect(panel).to_contain_text("2 approved drafts")
    panel.locator("input[name=preset][value=mailchimp]").check()
    panel.get_by_label("Control group (%)").fill("0")
    panel.get_by_role("button", name="Export").click()

    page.wait_for_url(re.compile(r"/copy/exports/\d+/$"))
    export = Export.objects.get()
    expect(page.locator("main")).to_contain_text("Queued")  # no worker consumes yet
    start_worker()
    expect(page.locator("main")).to_contain_text("Succeeded", timeout=60_000)
    summary = page.locator("#export-summary")
    expect(summary).to_contain_text("Rows written")  # reloaded by job-finished
    expect(summary.locator("#export-skipped")).to_contain_text("No consent for the channel")

    with page.expect_download() as info:
        summary.get_by_role("link", name=re.compile("^Download")).click()
    download = info.value
    export.refresh_from_db()
    assert download.suggested_filename == export.file_name
    saved = tmp_path / "download.csv"
    download.save_as(saved)
    header, *rows = csv.reader(io.StringIO(Path(saved).read_text("utf-8"), newline=""))
    assert header[:4] == ["Email Address", "First Name", "Last Name", "SUBJECT"]
    assert len(rows) == 1 and rows[0][:4] == [
        "kim@example.test",
        "Kim",
        "Keller",
        "Meet the Blue Mug",
    ]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT_DOWNLOADED).count() == 1

    page.goto("/copy/exports/")
    expect(page.locator("table.exports")).to_contain_text("Mailchimp")
    expect(page.locator("table.exports")).to_contain_text("mary")

    # The campaign went out; the tool's per-recipient report comes back.
    report = tmp_path / "mailchimp-activity.csv"
    report.write_text(
        "Email Address,Opens,Clicks,Revenue\r\n"
        f"{rows[0][0].upper()},2,1,19.50\r\n"  # matched after normalising the address
        "stranger@example.test,1,0,\r\n",  # never sent: rejected, row 3
        encoding="utf-8",
    )
    page.goto(export.get_absolute_url())
    page.locator("#import-results").click()
    page.locator("input[type=file]").set_input_files(str(report))
    page.get_by_role("button", name="Upload and check columns").click()
    expect(page.locator("main")).to_contain_text("Email Address")  # the mapping step
    page.get_by_role("button", name="Start import").click()
    expect(page.locator("main")).to_contain_text("Succeeded", timeout=60_000)
    rejected = page.locator("#results-report")
    expect(rejected).to_contain_text("not a recipient of export")
    expect(rejected).to_contain_text("3")  # the file's row
    result = CampaignResult.objects.get()
    assert (result.customer.external_id, result.opened, result.clicked) == ("K-1", True, True)

    page.locator("#brief-results-link").click()
    chart = page.locator("[data-chart=variant-rates]")
    expect(chart.locator(".js-plotly-plot")).to_be_visible(timeout=15_000)
    expect(chart.locator("g.point")).to_have_count(1)  # one bar: the one variant sent
    expect(page.locator("main")).to_contain_text("Variant 1")

    page.wait_for_load_state("networkidle")
    assert traffic.external_requests == []
    assert traffic.failed_requests == []
    assert traffic.page_errors == []
    assert traffic.console_errors == []
