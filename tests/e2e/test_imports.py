"""Importing through the browser: upload, mapping, a real worker, live progress, cancel."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from marketing.models import Job, Product
from tests.e2e.conftest import login
from tests.factories import CatalogFactory, JobFactory

pytestmark = pytest.mark.e2e

PRODUCTS_CSV = """\
sku,title,price,category,in_stock
E2E-001,Linen Apron,12.50,Home > Kitchen,yes
E2E-002,Oak Chopping Board,24.00,Home > Kitchen,yes
E2E-003,Enamel Mug,8.75,Home > Dining,no
E2E-004,Broken Teapot,abc,Home > Dining,yes
"""

SAME_PAGE = "window.__e2eSamePage"  # survives htmx swaps, not a reload or a navigation


def _cell(page, table: str, row: str, column: int):
    return (
        page.locator(f"{table} tr", has=page.locator("th", has_text=row)).locator("td").nth(column)
    )


def test_admin_imports_csv(page, start_worker, admin_user, tmp_path):
    catalog = CatalogFactory(name="Kitchen Shop")
    csv_file = tmp_path / "products.csv"
    csv_file.write_text(PRODUCTS_CSV, encoding="utf-8")

    login(page, "alice", "pw-alice")
    page.get_by_role("navigation").get_by_role("link", name="Catalogs").click()
    page.get_by_role("link", name="Kitchen Shop").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kitchen Shop")
    page.locator(".page-head").get_by_role("link", name="Import data").click()

    page.select_option("select[name=kind]", label="Products")
    page.set_input_files("input[name=file]", csv_file)
    page.get_by_role("button", name="Upload and check columns").click()

    page.wait_for_url(re.compile(r"/uploads/\d+/mapping/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Check the columns of products.csv")
    for field, column in {
        "sku": "sku",
        "title": "title",
        "price": "price",
        "category": "category",
        "in_stock": "in_stock",
        "description": "",
    }.items():
        expect(page.locator(f"select[name={field}]")).to_have_value(column)
    page.get_by_role("button", name="Start import").click()

    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    job = Job.objects.get(catalog=catalog)
    expect(page.locator("#messages")).to_contain_text("Import of products.csv started.")
    page.evaluate(f"{SAME_PAGE} = true")

    status_url = f"/jobs/{job.pk}/status/"
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    status = page.locator(f"#job-status-{job.pk}")
    expect(status.locator(".badge")).to_have_text("Queued")  # no worker consumes yet
    expect(status.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "0")
    expect(status.get_by_role("button", name="Cancel")).to_be_visible()

    start_worker()
    expect(status.locator(".badge")).to_have_text("Succeeded", timeout=30_000)
    expect(status.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(status.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(status).not_to_have_attribute("hx-trigger", re.compile("every"))

    summary = page.locator("#job-summary")  # reloads itself on the `job-finished` event
    expect(summary.get_by_role("heading", name="Summary")).to_be_visible()
    expect(summary.locator(".stat", has_text="Rows read").locator(".value")).to_have_text("4")
    expect(summary.locator(".stat", has_text="Rows rejected").locator(".value")).to_have_text("1")
    expect(_cell(page, "#job-summary table.summary", "Products", 0)).to_have_text("3")
    expect(summary.get_by_role("heading", name=re.compile(r"Rejected rows"))).to_be_visible()
    rejected = summary.locator("table").last.locator("tbody tr")
    expect(rejected).to_have_count(1)
    expect(rejected).to_contain_text("abc")
    expect(rejected).to_contain_text("not a number")
    assert any(status_url in url for url in polls), "the status fragment was never polled"
    assert page.evaluate(SAME_PAGE) is True, "the job page reloaded instead of polling"

    page.locator("main").get_by_role("link", name="Kitchen Shop").first.click()
    page.get_by_role("link", name="Browse products").click()
    page.wait_for_url(re.compile(rf"/catalogs/{catalog.pk}/products/$"))
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#results")).not_to_contain_text("Broken Teapot")

    page.evaluate(f"{SAME_PAGE} = true")
    page.get_by_role("searchbox").fill("oak")
    page.wait_for_url(re.compile(r"[?&]q=oak(&|$)"))
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Oak Chopping Board")
    expect(page.locator("#results .result-count")).to_contain_text("1 product match")
    assert page.evaluate(SAME_PAGE) is True, "the search reloaded the page instead of swapping"
    assert set(Product.objects.filter(catalog=catalog).values_list("sku", flat=True)) == {
        "E2E-001",
        "E2E-002",
        "E2E-003",
    }


def test_marketer_cancels_queued_job(page, marketer):
    """No worker runs, so the job stays queued until the marketer cancels it from its page."""
    job = JobFactory(status=Job.Status.QUEUED, created_by=marketer, message="Queued")

    login(page, "mary", "pw-mary")
    page.goto(f"/jobs/{job.pk}/")
    page.evaluate(f"{SAME_PAGE} = true")
    status = page.locator(f"#job-status-{job.pk}")
    expect(status.locator(".badge")).to_have_text("Queued")

    status.get_by_role("button", name="Cancel").click()

    expect(status.locator(".badge")).to_have_text("Cancelled")
    expect(status.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(status).not_to_have_attribute("hx-trigger", re.compile("every"))
    assert page.evaluate(SAME_PAGE) is True, "cancelling reloaded the page instead of swapping"
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.finished_at is not None
