"""A marketer starts a recommendation run in the browser, watches its progress bar with a
real worker, sees the model comparison chart, switches the per-segment view, and previews a
customer's history beside their recommendations with reasons."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from recommendations.models import ModelRun
from tests.e2e.conftest import login
from tests.recommendation_support import profiles_refresh, shop_create

pytestmark = pytest.mark.e2e

SAME_PAGE = "window.__e2eSamePage"  # survives htmx swaps, not a reload or a navigation


@pytest.fixture
def shop(marketer, settings, tmp_path):
    """36 buyers in three categories and one viewer, profiled; batches of 10 customers."""
    settings.DATA_DIR = tmp_path / "data"
    settings.RECOMMENDATION_BATCH_SIZE = 10
    shop = shop_create(name="Garden")
    profiles_refresh(shop.catalog, marketer)
    return shop


def test_marketer_runs_recommendations_and_previews_a_customer(page, traffic, start_worker, shop):
    catalog = shop.catalog
    login(page, "mary", "pw-mary")
    page.goto(catalog.get_absolute_url())
    page.locator(".page-head").get_by_role("link", name="Recommendations").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Recommendations")
    page.get_by_role("link", name="New run").click()

    page.get_by_label("Only the ones I tick below").check()
    page.get_by_label("item_knn_cosine").check()
    page.get_by_label("popular", exact=True).check()
    page.get_by_label("Time budget (seconds)").fill("2")
    page.get_by_label("List length").fill("5")
    page.get_by_role("button", name="Start run").click()

    page.wait_for_url(re.compile(r"/recommendations/runs/\d+/$"))
    run = ModelRun.objects.get(catalog=catalog)
    expect(page.locator("#messages")).to_contain_text(f"Recommendation run #{run.pk} started.")
    page.evaluate(f"{SAME_PAGE} = true")

    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    status = page.locator(f"#job-status-{run.job_id}")
    expect(status.locator(".badge")).to_have_text("Queued")  # no worker consumes yet
    expect(page.locator("#results-pending")).to_be_visible()

    start_worker()
    expect(status.locator(".badge")).to_have_text("Succeeded", timeout=60_000)
    expect(status.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(status.get_by_role("button", name="Cancel")).to_have_count(0)
    assert any(f"/recommendations/runs/{run.pk}/status/" in url for url in polls)

    # The results swap in on `job-finished`, and app.js draws the comparison chart.
    comparison = page.locator("#comparison")
    expect(comparison.locator(".js-plotly-plot")).to_have_count(1, timeout=15_000)
    expect(comparison.locator("tr.selected")).to_contain_text("Selected")
    expect(page.locator("[data-run-status]")).to_have_text("Succeeded")
    assert page.evaluate(SAME_PAGE) is True, "the run page reloaded instead of swapping"

    # Per segment: another model's figures swap in (chart included).
    page.locator("#segments select[name=model]").select_option("popular")
    expect(page.locator("#segment-metrics .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#segment-chart-popular")).to_have_count(1)

    # Preview: find a customer by external id and open their lists.
    customer = shop.customers[4]
    page.get_by_label("Customer external id").fill(customer.external_id)
    match = page.locator("#customer-matches").get_by_role("link", name=customer.external_id)
    expect(match).to_be_visible()
    match.click()
    page.wait_for_url(re.compile(rf"/recommendations/runs/{run.pk}/customers/{customer.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(customer.external_id)

    history = page.locator("section[aria-labelledby=history-h] tbody tr")
    expect(history.first).to_be_visible()
    assert history.count() >= 1
    discover = page.locator("#discover .rec-list li")
    expect(discover).to_have_count(5)
    expect(discover.first.locator(".reason")).not_to_be_empty()
    expect(page.locator("#buy-again")).to_be_visible()
    expect(page.locator("#removed")).to_contain_text("Already bought")

    # Edited rules re-rank the preview in place.
    page.evaluate(f"{SAME_PAGE} = true")
    page.get_by_text("Try other rules for this customer").click()
    page.get_by_label("List length").fill("3")
    page.get_by_role("button", name="Re-rank").click()
    expect(page.locator("#discover .rec-list li")).to_have_count(3)
    expect(page.locator("#preview")).to_contain_text("Re-ranked with the edited rules")
    assert page.evaluate(SAME_PAGE) is True

    assert not traffic.external_requests, traffic.external_requests
    assert not traffic.page_errors, traffic.page_errors
    assert not traffic.console_errors, traffic.console_errors
