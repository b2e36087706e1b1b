"""A background request that fails (the database restarting, the server gone) shows one
banner above the page, in the server's words, and the banner leaves by itself once a later
request succeeds: the page recovers without a reload."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from marketing.models import Job
from tests.e2e.conftest import login
from tests.factories import JobFactory

pytestmark = pytest.mark.e2e

SAID = "The database cannot be reached right now (it may be restarting)."


def test_a_failing_poll_shows_a_banner_that_leaves_once_polls_succeed(page, marketer):
    job = JobFactory(status=Job.Status.QUEUED, created_by=marketer, message="Queued")
    status_url = f"**{reverse('marketing:job-status', args=[job.pk])}*"

    login(page, "mary", "pw-mary")
    page.goto(f"/jobs/{job.pk}/")
    expect(page.locator(f"#job-status-{job.pk} .badge")).to_have_text("Queued")
    banner = page.locator("#connection-problem")
    expect(banner).to_have_count(0)

    page.route(
        status_url,
        lambda route: route.fulfill(
            status=503, body=SAID, content_type="text/plain; charset=utf-8"
        ),
    )
    expect(banner).to_have_text(SAID)
    expect(banner).to_have_attribute("role", "alert")

    page.unroute(status_url)
    page.route(status_url, lambda route: route.abort("connectionrefused"))
    expect(banner).to_contain_text("The server cannot be reached")

    page.unroute(status_url)
    expect(banner).to_have_count(0)  # the next poll succeeded
    expect(page.locator(f"#job-status-{job.pk} .badge")).to_have_text("Queued")


def test_a_server_error_without_words_gets_a_plain_sentence(page, marketer):
    job = JobFactory(status=Job.Status.QUEUED, created_by=marketer, message="Queued")
    status_url = f"**{reverse('marketing:job-status', args=[job.pk])}*"

    login(page, "mary", "pw-mary")
    page.goto(f"/jobs/{job.pk}/")
    page.route(
        status_url,
        lambda route: route.fulfill(
            status=500, body="<h1>Server Error</h1>", content_type="text/html"
        ),
    )
    banner = page.locator("#connection-problem")
    expect(banner).to_contain_text("The server could not answer (error 500).")
    expect(banner).not_to_contain_text("<h1>")
