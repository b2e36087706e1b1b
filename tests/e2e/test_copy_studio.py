"""The copy studio end to end in the browser: a marketer writes a brief for a segment and
starts drafting; a real worker drafts while the progress bar polls; the marketer opens a
draft, breaks and fixes its price while the checks update as they type, saves; an approver
approves it and it shows locked."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from copygen.models import Brief, Draft
from tests.copy_support import copy_shop_create
from tests.e2e.conftest import log_out, login

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.COPY_DRAFT_CHUNK_SIZE = 3  # several chunks, so progress moves
    return copy_shop_create(name="Garden", customers=6)


def test_brief_to_approved_draft(page, traffic, start_worker, shop, marketer, approver):
    login(page, "mary", "pw-mary")
    page.goto("/copy/")
    page.get_by_role("link", name="New brief").first.click()
    page.get_by_role("link", name=re.compile("Garden")).first.click()

    page.get_by_label("Name", exact=True).fill("Spring email")
    page.get_by_label("Segment", exact=True).select_option(str(shop.segment.pk))
    page.get_by_label("One draft per customer of the segment").check()
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Variants").fill("2")
    page.get_by_label("Banned words").fill("cheap")
    page.get_by_role("button", name="Save and draft now").click()

    page.wait_for_url(re.compile(r"/copy/briefs/\d+/$"))
    brief = Brief.objects.get(name="Spring email")
    expect(page.locator("main")).to_contain_text("Queued")  # no worker consumes yet
    start_worker()
    expect(page.locator("main")).to_contain_text("Succeeded", timeout=90_000)
    brief.refresh_from_db()
    drafts = Draft.objects.filter(brief=brief)
    assert drafts.count() == 2 * len(shop.members())  # two variants each, one language
    assert not drafts.filter(passes=False).exists()

    draft = drafts.filter(variant=1).order_by("pk").first()
    product = shop.products[0].__class__.objects.get(pk=draft.product_ids[0])
    page.get_by_role("link", name="Review drafts").click()
    expect(page.locator("table")).to_contain_text(draft.customer.external_id)
    page.goto(draft.get_absolute_url())
    checks = page.locator("#draft-checks")
    expect(checks).to_contain_text("Passes every check.")

    # An invented price fails the fidelity check as the marketer types; nothing is saved.
    body = page.get_by_label("Body")
    original = body.input_value()
    body.fill(original + "\nOnly £1.23 this week!")
    expect(checks).to_contain_text("Faithful to product data")
    assert Draft.objects.get(pk=draft.pk).revision == 1
    body.fill(original + f"\nSee the {product.title} today.")
    expect(checks).to_contain_text("Passes every check.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("Saved revision 2")
    expect(page.locator("#draft-history")).to_contain_text("edited by mary")
    log_out(page)

    login(page, "avery", "pw-avery")
    page.goto(draft.get_absolute_url())
    page.get_by_label("Comment").fill("Looks right")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#messages")).to_contain_text("Approved.")
    expect(page.locator(".draft-status")).to_contain_text("Locked")
    draft.refresh_from_db()
    assert draft.status == Draft.Status.APPROVED and draft.reviewed_by == approver

    page.wait_for_load_state("networkidle")
    assert traffic.external_requests == []
    assert traffic.failed_requests == []
    assert traffic.page_errors == []
    assert traffic.console_errors == []
