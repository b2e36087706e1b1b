"""Import through the pages: upload, map columns, the worker runs the job, the results show.

Real PostgreSQL and a real Celery worker on the broker (never eager). mary (marketer) imports;
nora (no role) may not; alice (admin) owns an upload mary must not touch.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from marketing.analytics.importing import auto_map
from marketing.models import Customer, Event, EventKind, Job, Product, Upload
from tests.factories import CatalogFactory, JobFactory
from tests.integration.import_support import (
    CUSTOMERS,
    EVENTS,
    PRODUCTS,
    finished,
    lines,
    report_rows,
    snapshot,
    upload,
)

pytestmark = pytest.mark.django_db(transaction=True)

UTC = dt.UTC


def _upload_page(client, catalog, kind: str, content: bytes, name: str):
    return client.post(
        reverse("marketing:upload-create", args=[catalog.pk]),
        {"kind": kind, "file": SimpleUploadedFile(name, content, content_type="text/csv")},
    )


def _import_via_pages(client, catalog, kind: str, content: bytes, name: str) -> Job:
    """Upload → mapping page → start; returns the job the pages redirected to (not waited on)."""
    response = _upload_page(client, catalog, kind, content, name)
    up = Upload.objects.get(original_name=name, catalog=catalog)
    assert response.status_code == 302
    assert response["Location"] == reverse("marketing:upload-mapping", args=[up.pk])

    page = client.get(response["Location"])
    assert page.status_code == 200
    for column in up.detected["columns"]:
        assert f"<th>{column}</th>" in page.content.decode()

    mapping = {k: v or "" for k, v in auto_map(up.detected["columns"], kind).items()}
    response = client.post(response["Location"], mapping)
    job = Job.objects.get(params__upload_id=up.pk)
    assert response.status_code == 302
    assert response["Location"] == reverse("marketing:job-detail", args=[job.pk])
    assert job.created_by.username == "mary"
    return job


def _status_fragment(client, job: Job):
    return client.get(reverse("marketing:job-status", args=[job.pk]), HTTP_HX_REQUEST="true")


# --- the whole flow ---------------------------------------------------------------------------


def test_products_customers_and_events_imported_through_the_pages(client, marketer, celery_worker):
    catalog = CatalogFactory(name="Home Goods", timezone="Europe/Berlin")
    client.force_login(marketer)

    products_job = finished(
        _import_via_pages(client, catalog, "products", PRODUCTS, "@shop-products.csv")
    )
    customers_job = finished(
        _import_via_pages(client, catalog, "customers", CUSTOMERS, "customers.csv")
    )
    events_job = finished(_import_via_pages(client, catalog, "events", EVENTS, "events.csv"))

    # Products: values cleaned and typed; a negative price and a repeated SKU rejected; a
    # formula-looking title kept as plain text; unmapped columns become attributes.
    assert products_job.status == Job.Status.SUCCEEDED, products_job.error
    products = {p.sku: p for p in Product.objects.filter(catalog=catalog)}
    assert sorted(products) == ["LAMP-3", "MUG-1", "PAN-2"]
    mug, pan, lamp = products["MUG-1"], products["PAN-2"], products["LAMP-3"]
    assert (mug.title, mug.category, mug.brand, mug.price, mug.in_stock, mug.attributes) == (
        "Blue Mug",
        "Home > Kitchen",
        "Acme",
        Decimal("12.50"),
        True,
        {"colour": "blue"},
    )
    assert (pan.category, pan.price, pan.in_stock) == (
        "Home > Kitchen > Pans",
        Decimal("39.90"),
        False,
    )
    assert (lamp.title, lamp.price, lamp.attributes) == (
        '=HYPERLINK("http://evil.test")',
        Decimal("5.00"),
        {},
    )
    assert products_job.result["products"] == {"inserted": 3, "updated": 0, "unchanged": 0}
    assert products_job.result["rows_read"] == 5
    assert products_job.result["rejected"] == 2
    assert products_job.result["kept_as_text"] == 1
    assert products_job.result["cleaning"]["formula_cells"] == 1
    assert products_job.message == "Imported 5 rows; 2 rejected (see report)"
    assert (products_job.progress_done, products_job.progress_total) == (5, 5)

    # Customers: consents per channel; an invalid email rejects its row.
    assert customers_job.status == Job.Status.SUCCEEDED, customers_job.error
    customers = {c.external_id: c for c in Customer.objects.all()}
    assert sorted(customers) == ["C1", "C2"]
    anna, ben = customers["C1"], customers["C2"]
    assert (anna.email, anna.name, anna.country, anna.language) == (
        "anna@example.com",
        "Anna Schmidt",
        "Germany",
        "de",
    )
    assert (anna.consent_email, anna.consent_sms, anna.consent_push) == (True, False, False)
    assert (ben.consent_email, ben.consent_sms) == (False, True)
    assert customers_job.result["customers"] == {"inserted": 2, "updated": 0, "unchanged": 0}
    assert customers_job.result["rejected"] == 1

    # Events: kinds normalised, a negative purchase stored as a return, blank quantity = 1,
    # a blank customer = anonymous, naive times read in the catalog's zone (Berlin, UTC+1).
    assert events_job.status == Job.Status.SUCCEEDED, events_job.error
    stored = sorted(
        Event.objects.filter(catalog=catalog).values_list(
            "customer__external_id",
            "product__sku",
            "kind",
            "quantity",
            "value",
            "occurred_at",
            "source",
        ),
        key=lambda e: e[5],
    )
    assert stored == [
        ("C1", "MUG-1", EventKind.VIEW, 1, None, dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC), "S1"),
        (
            "C1",
            "MUG-1",
            EventKind.PURCHASE,
            2,
            Decimal("25.00"),
            dt.datetime(2024, 3, 1, 9, 5, tzinfo=UTC),
            "O1",
        ),
        ("C2", "PAN-2", EventKind.CART, 1, None, dt.datetime(2024, 3, 2, 17, 30, tzinfo=UTC), "S2"),
        (None, "LAMP-3", EventKind.VIEW, 1, None, dt.datetime(2024, 3, 3, 7, 0, tzinfo=UTC), "S3"),
        (
            "C1",
            "MUG-1",
            EventKind.RETURN,
            1,
            Decimal("12.50"),
            dt.datetime(2024, 3, 10, 8, 0, tzinfo=UTC),
            "O1",
        ),
    ]
    result = events_job.result
    assert result["events"] == {"inserted": 5, "unchanged": 0}
    assert (result["rows_read"], result["rejected"]) == (8, 3)
    assert result["cleaning"]["returns"] == 1
    assert result["cleaning"]["anonymous_events"] == 1
    assert (
        result["products"] == result["customers"] == {"inserted": 0, "updated": 0, "unchanged": 0}
    )

    # The job page shows the outcome and the first rejected rows.
    page = client.get(reverse("marketing:job-detail", args=[events_job.pk])).content.decode()
    assert "Imported 8 rows; 3 rejected (see report)" in page
    assert "unknown customer" in page
    assert reverse("marketing:job-report", args=[events_job.pk]) in page


def test_status_fragment_stops_polling_and_fires_job_finished(client, marketer, celery_worker):
    catalog = CatalogFactory()
    client.force_login(marketer)
    job = finished(_import_via_pages(client, catalog, "products", PRODUCTS, "products.csv"))
    assert job.status == Job.Status.SUCCEEDED, job.error

    response = _status_fragment(client, job)

    assert response.status_code == 286
    trigger = json.loads(response["HX-Trigger"])
    assert trigger == {"job-finished": {"id": job.pk, "status": "succeeded"}}
    body = response.content.decode()
    assert 'hx-trigger="every 1s"' not in body
    assert 'data-status="succeeded"' in body
    assert "5 of 5 rows" in body


def test_status_fragment_keeps_polling_while_the_job_runs(client, marketer):
    job = JobFactory(status=Job.Status.RUNNING, progress_done=40, progress_total=100)
    client.force_login(marketer)

    response = _status_fragment(client, job)

    assert response.status_code == 200
    assert "HX-Trigger" not in response
    body = response.content.decode()
    assert 'hx-trigger="every 1s"' in body
    assert "40 of 100 rows" in body


def test_rejected_rows_report_names_file_row_column_value_reason_action(
    client, marketer, celery_worker
):
    catalog = CatalogFactory()
    client.force_login(marketer)
    job = finished(_import_via_pages(client, catalog, "products", PRODUCTS, "@shop-products.csv"))

    response = client.get(reverse("marketing:job-report", args=[job.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert f'filename="job-{job.pk}-rejected-rows.csv"' in response["Content-Disposition"]
    content = b"".join(response.streaming_content)
    assert content.splitlines()[0] == b"file,row,column,value,reason,action"
    rows = {(r["row"], r["column"]): r for r in report_rows(content)}
    assert set(rows) == {("4", "title"), ("5", "price"), ("6", "sku")}
    # Every cell a spreadsheet would run as a formula starts with an apostrophe.
    assert rows[("4", "title")] == {
        "file": "'@shop-products.csv",
        "row": "4",
        "column": "title",
        "value": '\'=HYPERLINK("http://evil.test")',
        "reason": "formula-looking cell",
        "action": "kept as text",
    }
    assert rows[("5", "price")]["value"] == "'-3.00"
    assert rows[("5", "price")]["reason"] == "negative price"
    assert rows[("5", "price")]["action"] == "rejected"
    assert rows[("6", "sku")]["reason"] == "duplicate SKU 'MUG-1' (first seen on row 2)"
    assert {r["file"] for r in rows.values()} == {"'@shop-products.csv"}


# --- bad files on the upload page ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("blank.csv", b"  \n\n", "blank.csv: file is empty"),
        ("header.csv", b"sku,title\n", "header.csv: file has a header row but no data rows"),
        (
            "photo.csv",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,
            "photo.csv: binary file",
        ),
    ],
)
def test_file_level_problem_is_shown_on_the_upload_page_and_nothing_is_stored(
    client, marketer, settings, name, content, message
):
    catalog = CatalogFactory()
    client.force_login(marketer)

    response = _upload_page(client, catalog, "products", content, name)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Upload.objects.exists()
    assert not Job.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_zero_byte_file_is_refused_by_the_form(client, marketer, settings):
    catalog = CatalogFactory()
    client.force_login(marketer)

    response = _upload_page(client, catalog, "products", b"", "empty.csv")

    assert response.status_code == 200
    assert "The submitted file is empty." in response.content.decode()
    assert not Upload.objects.exists()


def test_file_over_the_limit_is_refused_before_it_is_stored(client, marketer, settings):
    settings.IMPORT_MAX_BYTES = 2 * 1024 * 1024
    catalog = CatalogFactory()
    client.force_login(marketer)
    content = lines("sku,title", *(f"S{i:07d},A product title long enough" for i in range(80_000)))
    assert len(content) > 2 * 1024 * 1024

    response = _upload_page(client, catalog, "products", content, "big.csv")

    body = response.content.decode()
    assert response.status_code == 200
    assert "big.csv: file is 2.8 MB, over the 2.0 MB limit" in body  # MB = 2**20 bytes
    assert not Upload.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_required_field_left_unmapped_starts_no_job(client, marketer):
    catalog = CatalogFactory()
    client.force_login(marketer)
    up = upload(catalog, marketer, "products", lines("sku,price", "A1,3.50"))

    response = client.post(
        reverse("marketing:upload-mapping", args=[up.pk]),
        {"sku": "sku", "title": "", "price": "price"},
    )

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Job.objects.exists()


def test_mapping_to_a_column_not_in_the_file_starts_no_job(client, marketer):
    catalog = CatalogFactory()
    client.force_login(marketer)
    up = upload(catalog, marketer, "products", lines("sku,title", "A1,Mug"))

    response = client.post(
        reverse("marketing:upload-mapping", args=[up.pk]), {"sku": "sku", "title": "name"}
    )

    assert response.status_code == 200
    assert not Job.objects.exists()


# --- who may import -------------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login(client):
    catalog = CatalogFactory()

    response = _upload_page(client, catalog, "products", PRODUCTS, "products.csv")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Upload.objects.exists()


def test_user_without_import_permission_is_refused(client, no_role_user):
    catalog = CatalogFactory()
    client.force_login(no_role_user)

    response = _upload_page(client, catalog, "products", PRODUCTS, "products.csv")

    assert response.status_code == 403
    assert not Upload.objects.exists()


def test_someone_elses_upload_cannot_be_started(client, marketer, admin_user):
    catalog = CatalogFactory()
    up = upload(catalog, admin_user, "products", PRODUCTS)
    client.force_login(marketer)
    mapping = {k: v or "" for k, v in auto_map(up.detected["columns"], "products").items()}

    response = client.post(reverse("marketing:upload-mapping", args=[up.pk]), mapping)

    assert response.status_code == 403
    assert not Job.objects.exists()
    assert snapshot()["products"] == []


def test_report_of_a_job_without_one_is_not_found(client, marketer):
    job = JobFactory()
    client.force_login(marketer)

    response = client.get(reverse("marketing:job-report", args=[job.pk]))

    assert response.status_code == 404


@pytest.mark.parametrize(
    "name", ["marketing:job-detail", "marketing:job-status", "marketing:job-report"]
)
def test_job_pages_need_the_job_permission(client, no_role_user, name):
    job = JobFactory()
    client.force_login(no_role_user)

    response = client.get(reverse(name, args=[job.pk]))

    assert response.status_code == 403


def test_approver_may_watch_an_import_but_not_cancel_it(client, approver):
    job = JobFactory(status=Job.Status.RUNNING)
    client.force_login(approver)

    watched = client.get(reverse("marketing:job-status", args=[job.pk]))
    cancelled = client.post(reverse("marketing:job-cancel", args=[job.pk]))

    assert watched.status_code == 200
    assert cancelled.status_code == 403
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (Job.Status.RUNNING, False)
