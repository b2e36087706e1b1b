"""Imports of hostile or odd input end cleanly: consent never granted by accident, files that
break the parser or the database fail with a message (and leave no orphan file), dates read in
the file's own day/month order, no cell value in the logs, a catalog deleted meanwhile.

Tests that call `run_inline` need no worker: they run on SQLite as well as on PostgreSQL
(the ORM paths); tests on `celery_worker` or PostgreSQL features run on PostgreSQL only.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, transaction

from marketing.analytics.importing import ImportFileError, kinds
from marketing.models import Catalog, Customer, Event, Job, Product, Upload
from marketing.services import imports
from tests.factories import CatalogFactory
from tests.integration.conftest import wait_for
from tests.integration.import_support import (
    PRODUCTS,
    finished,
    lines,
    queued,
    report_rows,
    run,
    run_inline,
    succeeded,
    upload,
)

pytestmark = pytest.mark.django_db(transaction=True)

RETAIL = lines(
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
    "536365,MUG-1,BLUE MUG,6,12/01/2010 08:26,2.55,17850,United Kingdom",
    "536366,PAN-2,FRYING PAN,2,12/01/2010 08:28,44.00,17851,France",
)
CONSENTS = ("consent_email", "consent_sms", "consent_push", "consent_ads")


def _consents(external_id: str) -> tuple[bool, ...]:
    return tuple(Customer.objects.values_list(*CONSENTS).get(external_id=external_id))


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def _stored_uploads(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()]


# --- C1: consent is only what the file says -------------------------------------------------------


def test_online_retail_customers_get_no_consent(marketer):
    catalog = CatalogFactory()

    job = succeeded(run_inline(catalog, marketer, "online_retail", RETAIL, "retail.csv"))

    assert job.result["customers"]["inserted"] == 2
    assert _consents("17850") == _consents("17851") == (False, False, False, False)


def test_online_retail_customers_get_no_consent_through_the_worker(marketer, celery_worker):
    catalog = CatalogFactory()

    succeeded(run(catalog, marketer, "online_retail", RETAIL, "retail.csv"))

    assert not Customer.objects.filter(consent_email=True).exists()
    assert _consents("17850") == (False, False, False, False)


CONSENT_FILE = lines(
    "customer_id,consent_email,consent_sms,consent_push,consent_ads",
    "C1,true,false,,yes",
    "C2,,,,",
    "C3,false,true,true,no",
)
CONSENT_UPDATE = lines(
    "customer_id,consent_email,consent_sms,consent_push,consent_ads",
    "C1,,,true,",  # blank: unchanged
    "C2,yes,,,",
    "C3,,false,,",
)


def _check_consents_as_given(catalog, user, runner) -> None:
    first = succeeded(runner(catalog, user, "customers", CONSENT_FILE))
    assert first.result["customers"]["inserted"] == 3
    assert _consents("C1") == (True, False, False, True)
    assert _consents("C2") == (False, False, False, False)  # blank on insert: no consent
    assert _consents("C3") == (False, True, True, False)

    second = succeeded(runner(catalog, user, "customers", CONSENT_UPDATE))

    assert second.result["customers"] == {"inserted": 0, "updated": 3, "unchanged": 0}
    assert _consents("C1") == (True, False, True, True)
    assert _consents("C2") == (True, False, False, False)
    assert _consents("C3") == (False, False, True, False)


def test_customer_consents_are_stored_exactly_as_given(marketer):
    _check_consents_as_given(CatalogFactory(), marketer, run_inline)


def test_customer_consents_are_stored_exactly_as_given_through_the_worker(marketer, celery_worker):
    _check_consents_as_given(CatalogFactory(), marketer, run)


# --- I2: files that break the parser --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000),
        ("deep.jsonl", b'{"sku": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"),
    ],
)
def test_deeply_nested_json_is_a_file_error_and_leaves_no_file(
    marketer, settings, tmp_path, name, content
):
    settings.MEDIA_ROOT = tmp_path
    catalog = CatalogFactory()

    with pytest.raises(ImportFileError, match="nested too deeply") as err:
        upload(catalog, marketer, "products", content, name)

    assert err.value.file == name
    assert err.value.row == 1
    assert not Upload.objects.exists()
    assert _stored_uploads(tmp_path) == []


def test_unexpected_error_while_sniffing_removes_the_stored_file(
    marketer, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = tmp_path

    def broken_sniff(*args, **kwargs):
        raise RuntimeError("a bug in the sniffer")

    monkeypatch.setattr(imports.uploads, "sniff", broken_sniff)

    with pytest.raises(RuntimeError, match="a bug in the sniffer"):
        upload(CatalogFactory(), marketer, "products", PRODUCTS)

    assert not Upload.objects.exists()
    assert _stored_uploads(tmp_path) == []


# --- I3: NUL characters ---------------------------------------------------------------------------


def test_nul_in_a_json_cell_rejects_that_row_and_the_rest_imports(marketer):
    catalog = CatalogFactory()
    content = (
        b'{"sku": "MUG-1", "title": "Blue \\u0000Mug", "colour": "blue"}\n'
        b'{"sku": "PAN-2", "title": "Frying Pan", "colour": "bl\\u0000ack"}\n'
        b'{"sku": "LAMP-3", "title": "Lamp", "colour": "white"}\n'
    )
    up = upload(catalog, marketer, "products", content, "products.jsonl")
    up.refresh_from_db()  # the sample went through the database (jsonb takes no NUL)
    assert up.detected["sample"][0]["title"] == "Blue \u2400Mug"

    job = succeeded(run_inline(catalog, marketer, "products", content, "products.jsonl"))

    assert list(Product.objects.values_list("sku", "title", "attributes")) == [
        ("LAMP-3", "Lamp", {"colour": "white"})
    ]
    report = [(r["row"], r["column"], r["reason"]) for r in report_rows(job.report_file.read())]
    assert report == [
        ("1", "title", "contains a NUL character"),
        ("2", "colour", "contains a NUL character"),
    ]


def test_nul_in_a_json_key_is_a_file_error(marketer):
    with pytest.raises(ImportFileError, match="contains a NUL character"):
        upload(
            CatalogFactory(),
            marketer,
            "products",
            b'[{"sku\\u0000": "A", "title": "B"}]',
            "products.json",
        )


# --- I4: values the database cannot hold ----------------------------------------------------------


def test_line_value_over_the_column_limit_rejects_the_row(marketer):
    catalog = CatalogFactory()
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    content = lines(
        "sku,kind,quantity,unit_price,occurred_at",
        "MUG-1,purchase,2000000000,9999999.99,2024-03-01 10:00",  # 2e16: too large
        "MUG-1,purchase,2,12.50,2024-03-01 10:05",
    )

    job = succeeded(run_inline(catalog, marketer, "events", content))

    assert list(Event.objects.values_list("quantity", "value")) == [(2, Decimal("25.00"))]
    report = [(r["row"], r["column"], r["reason"]) for r in report_rows(job.report_file.read())]
    assert report == [
        (
            "2",
            "unit_price",
            "unit price × quantity is too large (the line value must be under 1,000,000,000,000)",
        )
    ]


def test_online_retail_line_value_over_the_column_limit_rejects_the_row(marketer):
    catalog = CatalogFactory()
    content = lines(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        "536365,MUG-1,BLUE MUG,2000000000,12/01/2010 08:26,999999.00,17850,United Kingdom",
        "536366,PAN-2,FRYING PAN,2,12/01/2010 08:28,44.00,17851,France",
    )

    job = succeeded(run_inline(catalog, marketer, "online_retail", content, "retail.csv"))

    assert list(Event.objects.values_list("product__sku", "value")) == [("PAN-2", Decimal("88"))]
    assert job.result["rejected"] == 1


def test_value_the_database_refuses_in_copy_fails_the_job_naming_the_column(marketer, monkeypatch):
    _require_postgresql()
    catalog = CatalogFactory()
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    monkeypatch.setattr(kinds, "VALUE_LIMIT", 1e30)  # the cleaner lets the value through
    content = lines("sku,value,occurred_at", "MUG-1,12345678901234567.00,2024-03-01 10:00")

    job = run_inline(catalog, marketer, "events", content)

    assert job.status == Job.Status.FAILED
    assert job.error == (
        "events.csv: the database could not store the data: a number is too large for its "
        "column in column 'value'"
    )
    assert not Event.objects.exists()


def test_value_the_database_refuses_in_an_orm_write_fails_the_job(marketer, monkeypatch):
    _require_postgresql()
    monkeypatch.setattr(kinds, "PRICE_LIMIT", 1e30)
    content = lines("sku,title,price", "MUG-1,Blue Mug,123456789012345.00")

    job = run_inline(CatalogFactory(), marketer, "products", content)

    assert job.status == Job.Status.FAILED
    assert job.error == (
        "products.csv: the database could not store the data: a number is too large for its column"
    )
    assert "123456789012345" not in job.error
    assert not Product.objects.exists()


# --- I5: no cell value in the logs ----------------------------------------------------------------


def test_unexpected_failure_logs_the_error_type_but_no_cell_value(marketer, monkeypatch, caplog):
    catalog = CatalogFactory()
    content = lines("customer_id,email", "anna.secret@example.com,anna.secret@example.com")
    succeeded(run_inline(catalog, marketer, "customers", content))
    # Forget stored customers: the insert then violates the unique key, and PostgreSQL's
    # message quotes the key ("Key (external_id)=(anna.secret@example.com) already exists").
    monkeypatch.setattr(imports.rows._CustomerIndex, "lookup", lambda self, keys: None)
    caplog.set_level(logging.INFO)

    job = run_inline(catalog, marketer, "customers", content)

    assert job.status == Job.Status.FAILED
    assert job.error == "Unexpected error (IntegrityError); nothing was changed."
    assert f"import job {job.pk} failed: IntegrityError" in caplog.text
    assert "rows.py" in caplog.text  # where it broke
    assert "anna.secret" not in caplog.text


# --- I6: day/month order --------------------------------------------------------------------------


def test_dates_follow_the_order_their_column_shows(marketer):
    catalog = CatalogFactory()
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    content = lines(
        "sku,kind,occurred_at,source",
        "MUG-1,view,01/02/2024 10:00,S1",  # 1 February: row 3 shows the file is day/month
        "MUG-1,view,13/02/2024 10:00,S2",
    )

    job = succeeded(run_inline(catalog, marketer, "events", content))

    assert sorted(Event.objects.values_list("occurred_at", flat=True)) == [
        dt.datetime(2024, 2, 1, 10, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 2, 13, 10, 0, tzinfo=dt.UTC),
    ]
    assert "ambiguous_dates_assumed_month_first" not in job.result["cleaning"]


def test_dates_that_never_show_their_order_are_counted(marketer):
    catalog = CatalogFactory()
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    content = lines("sku,kind,occurred_at", "MUG-1,view,01/02/2024", "PAN-2,view,03/04/2024")

    job = succeeded(run_inline(catalog, marketer, "events", content))

    assert job.result["cleaning"]["ambiguous_dates_assumed_month_first"] == 2
    assert sorted(Event.objects.values_list("occurred_at", flat=True))[0] == dt.datetime(
        2024, 1, 2, tzinfo=dt.UTC
    )


# --- I12: a catalog setting the cleaner cannot apply ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (
            "timezone",
            "Mars/Olympus",
            "catalog setting 'time zone': unknown time zone 'Mars/Olympus'",
        ),
        (
            "non_product_patterns",
            ["POST", "(unclosed"],
            "catalog setting 'non-product patterns': bad non-product pattern '(unclosed': "
            "missing ), unterminated subpattern at position 0",
        ),
    ],
)
def test_bad_catalog_setting_fails_the_job_naming_the_setting(marketer, field, value, error):
    catalog = CatalogFactory()
    Catalog.objects.filter(pk=catalog.pk).update(**{field: value})  # as an old row might be

    job = run_inline(catalog, marketer, "online_retail", RETAIL, "retail.csv")

    assert job.status == Job.Status.FAILED
    assert job.error == f"retail.csv: {error}; correct it on the catalog's page"
    assert not Customer.objects.exists()


# --- C3: the catalog deleted while the import waited ----------------------------------------------


def test_catalog_deleted_before_the_job_ran_fails_the_job(marketer):
    catalog = CatalogFactory()
    job = queued(catalog, marketer, "products", PRODUCTS)  # no worker took it yet
    catalog.delete()  # its uploads go with it; the job stays, without catalog

    imports.import_run(job_id=job.pk, worker="late-worker")

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "products.csv: the catalog was deleted while the import was queued"
    assert not Product.objects.exists()


def test_catalog_deleted_while_the_import_waited_for_its_lock_fails_the_job(marketer):
    """The deletion holds the catalog's advisory lock (as catalog deletion does) while the
    job, already past reading its upload, waits for it; once it gets the lock, the catalog
    is gone."""
    _require_postgresql()
    catalog = CatalogFactory()
    job = queued(catalog, marketer, "products", PRODUCTS)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            imports.import_run(job_id=job.pk, worker="second-worker")
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, catalog.pk])
        thread.start()
        wait_for(lambda: _waiting_for_catalog_lock(catalog.pk), timeout=15, what="the lock")
        Catalog.objects.filter(pk=catalog.pk).delete()
    thread.join(60)

    assert not errors
    job = finished(job, timeout=5)
    assert job.status == Job.Status.FAILED
    assert job.error == "products.csv: the catalog was deleted while the import was queued"
    assert not Product.objects.exists()


def _waiting_for_catalog_lock(catalog_id: int) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = 7001 AND objid = %s",
            [catalog_id],
        )
        return cur.fetchone()[0] == 1


# --- minor: old-Mac line endings ------------------------------------------------------------------


def test_csv_with_carriage_return_line_endings_imports(marketer):
    catalog = CatalogFactory()
    content = b'sku,title,price\r"MUG-1",Blue Mug,12.50\rPAN-2,"Pan, frying",39.90\r'

    job = succeeded(run_inline(catalog, marketer, "products", content))

    assert job.result["products"]["inserted"] == 2
    assert sorted(Product.objects.values_list("sku", "title")) == [
        ("MUG-1", "Blue Mug"),
        ("PAN-2", "Pan, frying"),
    ]
