"""A marketer builds a rule segment in the browser, watches the live count, saves it, and
opens a member's profile with its charts."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from marketing.models import EventKind, Job, Segment
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from tests.e2e.conftest import login
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(marketer):
    """Five buyers (three in France, one in Spain, one in Italy), profiled."""
    catalog = CatalogFactory(name="Garden Shop", currency="EUR")
    products = [
        ProductFactory(catalog=catalog, category="Garden > Tools", price=Decimal("20.00")),
        ProductFactory(catalog=catalog, category="Home > Kitchen", price=Decimal("8.00")),
    ]
    start = dt.datetime(2024, 1, 5, 12, tzinfo=dt.UTC)
    people = [("fr-1", "France"), ("fr-2", "France"), ("fr-3", "France"), ("es-1", "Spain"),
              ("it-1", "Italy")]  # fmt: skip
    for i, (external_id, country) in enumerate(people):
        customer = CustomerFactory(external_id=external_id, country=country)
        for n in range(1 + i % 3):
            product = products[(i + n) % 2]
            EventFactory(
                catalog=catalog,
                product=product,
                customer=customer,
                kind=EventKind.PURCHASE,
                quantity=2,
                value=product.price * 2,
                source=f"O{i}-{n}",
                occurred_at=start + dt.timedelta(days=35 * n + i),
            )
    job = profile_refresh_start(catalog=catalog, user=marketer)
    profile_refresh_run(job_id=job.pk, worker="inline")
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    return catalog


def settled(page) -> None:
    """Wait until htmx has swapped and initialised new content (it binds triggers on settle)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def test_marketer_builds_a_rule_segment_and_opens_a_member(page, traffic, shop):
    login(page, "mary", "pw-mary")
    page.goto(f"/catalogs/{shop.pk}/segments/")
    page.get_by_role("link", name="New rule segment").click()
    page.wait_for_url(re.compile(rf"/catalogs/{shop.pk}/segments/new/$"))
    page.get_by_label("Name").fill("French gardeners")

    count = page.locator("#rule-count")
    expect(count).to_contain_text("of 5 profiled")

    # Condition 1 becomes "Country is France": the field change re-renders the condition.
    page.get_by_label("Condition 1: field").select_option("country")
    expect(page.locator("#rule-node-0-0")).to_have_attribute("data-field", "country")
    settled(page)
    value = page.get_by_label("Condition 1: value")
    value.fill("france")
    expect(count).to_contain_text("3 customers (60 % of 5 profiled)")

    # Editing the condition's value updates the count while typing.
    value.fill("Spain")
    expect(count).to_contain_text("1 customer (20 % of 5 profiled)")
    value.fill("France")
    expect(count).to_contain_text("3 customers (60 % of 5 profiled)")

    # A nested group with a second condition: bought in the Garden category (or below).
    page.get_by_role("button", name="+ Group").click()
    expect(page.locator("#rule-node-0-1-0")).to_be_visible()
    settled(page)
    page.get_by_label("Condition 2: field").select_option("bought_category")
    expect(page.locator("#rule-node-0-1-0")).to_have_attribute("data-field", "bought_category")
    settled(page)
    page.get_by_label("Condition 2: value").fill("garden")
    expect(count).to_contain_text("of 5 profiled")
    expect(count).not_to_contain_text("Not counted")

    page.get_by_role("button", name="Save segment", exact=True).last.click()
    page.wait_for_url(re.compile(r"/segments/\d+/$"))
    segment = Segment.objects.get(kind=Segment.Kind.RULE, name="French gardeners")
    expect(page.locator("#messages")).to_contain_text("Rule segment “French gardeners” saved")
    expect(page.locator(".rule-summary")).to_contain_text("country = 'France'")
    rows = page.locator("#members tbody tr")
    expect(rows).to_have_count(segment.size)
    assert 1 <= segment.size <= 3

    # A member's profile, from the member table, with its plotly charts.
    link = rows.first.locator("a").first
    external_id = link.inner_text()
    link.click()
    page.wait_for_url(re.compile(r"/customers/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(external_id)
    chart = page.locator(".chart[data-plotly]").first
    expect(chart).to_have_attribute("data-rendered", "1")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert traffic.external_requests == []
    assert traffic.failed_requests == []
    assert traffic.page_errors == []
    assert traffic.console_errors == []
