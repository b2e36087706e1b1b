"""Approve → export → download in the browser: an approver approves a draft, a marketer
exports the brief from its page as a Mailchimp file, watches a real worker write it, reads
the summary and downloads the file."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from copygen.models import Draft, Export
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


def test_approve_export_download(page, traffic, start_worker, brief, tmp_path):
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

    page.wait_for_load_state("networkidle")
    assert traffic.external_requests == []
    assert traffic.failed_requests == []
    assert traffic.page_errors == []
    assert traffic.console_errors == []
