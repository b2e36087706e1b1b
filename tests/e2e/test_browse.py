"""Browsing pages in a real browser: charts render offline, anonymous users must log in."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from marketing.models import EventKind
from tests.e2e.conftest import login
from tests.factories import (
    CatalogFactory,
    CustomerFactory,
    EventFactory,
    JobFactory,
    ProductFactory,
)

pytestmark = pytest.mark.e2e


def test_product_detail_chart(page, traffic, marketer):
    product = ProductFactory(title="Linen Apron", catalog=CatalogFactory(currency="EUR"))
    for month, quantity in ((1, 2), (2, 5), (4, 1)):
        EventFactory(
            product=product,
            quantity=quantity,
            value=Decimal("12.50") * quantity,
            occurred_at=dt.datetime(2024, month, 10, 12, tzinfo=dt.UTC),
        )
    EventFactory(
        product=product,
        kind=EventKind.RETURN,
        quantity=-1,
        value=Decimal("-12.50"),
        occurred_at=dt.datetime(2024, 2, 20, 12, tzinfo=dt.UTC),
    )

    login(page, "mary", "pw-mary")
    page.goto(f"/products/{product.pk}/")

    expect(page.get_by_role("heading", level=1)).to_have_text("Linen Apron")
    chart = page.locator(".chart[data-plotly=sales-chart]")
    expect(chart).to_have_attribute("data-rendered", "1")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".legendtext", has_text="Units sold")).to_have_count(1)
    expect(page.locator(".stat", has_text="Units sold").locator(".value")).to_have_text("8")
    page.wait_for_load_state("networkidle")

    assert traffic.external_requests == []
    assert traffic.failed_requests == []
    assert traffic.console_errors == []
    assert traffic.page_errors == []


def test_anonymous_user_is_sent_to_login_from_every_page(page, traffic, marketer):
    product = ProductFactory()
    customer = CustomerFactory()
    job = JobFactory(catalog=product.catalog)
    paths = [
        "/",
        "/about/",
        "/catalogs/",
        "/catalogs/new/",
        f"/catalogs/{product.catalog.pk}/",
        f"/catalogs/{product.catalog.pk}/edit/",
        f"/catalogs/{product.catalog.pk}/delete/",
        f"/catalogs/{product.catalog.pk}/products/",
        f"/catalogs/{product.catalog.pk}/import/",
        f"/products/{product.pk}/",
        "/customers/",
        f"/customers/{customer.pk}/",
        "/jobs/",
        f"/jobs/{job.pk}/",
        f"/jobs/{job.pk}/status/",
    ]
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.ok, path
        assert page.url.endswith(f"/accounts/login/?next={path}"), (path, page.url)
        expect(page.get_by_role("heading", level=1)).to_have_text("Log in to Tailor")

    expect(page.get_by_role("button", name="Log out")).to_have_count(0)

    # Logging in from a redirect lands on the page that was asked for.
    page.goto(f"/products/{product.pk}/")
    page.fill("input[name=username]", "mary")
    page.fill("input[name=password]", "pw-mary")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(rf"/products/{product.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(product.title)
    assert traffic.external_requests == []
