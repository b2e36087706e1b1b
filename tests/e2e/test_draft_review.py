"""Review in the browser: a marketer fixes an invented price while the checks update as they
type, saves, and an approver approves the draft, which then shows locked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from copygen.models import Draft
from tests.copygen_factories import PASSING_FIELDS, draft_make
from tests.e2e.conftest import log_out, login

pytestmark = pytest.mark.e2e

INVENTED_PRICE = "Hi there,\n\nThe Blue Mug is yours for £9.99 today. It keeps your tea warm."


def test_marketer_fixes_a_draft_and_an_approver_approves_it(page, traffic, marketer, approver):
    draft = draft_make(fields={**PASSING_FIELDS["email"], "body": INVENTED_PRICE})
    assert not draft.passes

    login(page, "mary", "pw-mary")
    page.goto(draft.get_absolute_url())
    checks = page.locator("#draft-checks")
    expect(checks).to_contain_text("Faithful to product data")
    expect(checks).to_contain_text("1 error")

    body = page.get_by_label("Body")
    body.fill(INVENTED_PRICE.replace("£9.99 today", "£12.50"))
    expect(checks).to_contain_text("Passes every check.")
    expect(checks).to_contain_text("text as typed, not saved")
    assert Draft.objects.get(pk=draft.pk).revision == 1  # the live check saves nothing

    page.get_by_label("Subject line").fill("Meet the Blue Mug " + "now " * 12)
    expect(checks).to_contain_text("Length limits")
    expect(checks.locator("tr.over")).to_have_count(1)
    page.get_by_label("Subject line").fill("Meet the Blue Mug")
    expect(checks).to_contain_text("Passes every check.")

    page.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Saved revision 2; it passes every check.")
    expect(page.locator("#draft-history")).to_contain_text("edited by mary")
    expect(page.locator("#draft-history ins").first).to_have_text("12.50")
    log_out(page)

    login(page, "avery", "pw-avery")
    page.goto(draft.get_absolute_url())
    page.get_by_label("Comment").fill("Price checked")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#messages")).to_contain_text("Approved.")
    expect(page.locator(".draft-status")).to_contain_text("Locked")
    expect(page.get_by_role("button", name="Reopen for editing")).to_be_visible()
    assert Draft.objects.get(pk=draft.pk).status == Draft.Status.APPROVED

    page.wait_for_load_state("networkidle")
    assert traffic.external_requests == []
    assert traffic.failed_requests == []
    assert traffic.page_errors == []
    assert traffic.console_errors == []
