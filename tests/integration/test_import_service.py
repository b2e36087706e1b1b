"""The import service on PostgreSQL with a real worker: idempotency in bulk and incremental
mode, update semantics, unknown references, and serialized concurrent imports."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketing.models import Customer, Event, Job, Product
from marketing.services.imports import _PostgresEventWriter, import_run
from tests.factories import CatalogFactory
from tests.integration.conftest import wait_for
from tests.integration.import_support import (
    CUSTOMERS,
    EVENTS,
    PRODUCTS,
    Pause,
    event_facts,
    event_rows,
    event_table_schema,
    finished,
    lines,
    report_rows,
    run,
    snapshot,
    start,
    succeeded,
)

pytestmark = pytest.mark.django_db(transaction=True)

MODES = {"bulk": 1, "incremental": 10**9}


def _events_file(n: int) -> bytes:
    """The sample events (with their rejects, a return and a guest) plus n generated ones."""
    return EVENTS + event_rows(n, customers=2).split(b"\n", 1)[1]


@pytest.fixture
def bulk_loads(monkeypatch) -> list[int]:
    """Catalog ids of event loads that ran in bulk mode (indexes dropped and rebuilt)."""
    seen: list[int] = []
    original = _PostgresEventWriter._enter_bulk_mode

    def spy(self) -> None:
        seen.append(self.catalog.pk)
        original(self)

    monkeypatch.setattr(_PostgresEventWriter, "_enter_bulk_mode", spy)
    return seen


def _load(catalog, user, events: bytes) -> dict[str, Job]:
    return {
        "products": succeeded(run(catalog, user, "products", PRODUCTS)),
        "customers": succeeded(run(catalog, user, "customers", CUSTOMERS)),
        "events": succeeded(run(catalog, user, "events", events)),
    }


# --- idempotency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_importing_the_same_files_twice_changes_nothing(
    mode, marketer, celery_worker, settings, monkeypatch, bulk_loads
):
    settings.IMPORT_CHUNK_ROWS = 40
    monkeypatch.setattr(_PostgresEventWriter, "BULK_MIN_ROWS", MODES[mode])
    catalog = CatalogFactory()
    schema = event_table_schema()
    events = _events_file(200)

    first = _load(catalog, marketer, events)
    stored = snapshot()
    second = _load(catalog, marketer, events)

    assert first["events"].result["events"] == {"inserted": 205, "unchanged": 0}
    assert Event.objects.filter(catalog=catalog).count() == 205
    assert second["products"].result["products"] == {"inserted": 0, "updated": 0, "unchanged": 3}
    assert second["customers"].result["customers"] == {"inserted": 0, "updated": 0, "unchanged": 2}
    assert second["events"].result["events"] == {"inserted": 0, "unchanged": 205}
    assert second["events"].result["rejected"] == first["events"].result["rejected"] == 3
    assert snapshot() == stored  # every column, updated_at included
    # Bulk mode drops and rebuilds the indexes for the first load only: the re-import has
    # nothing to add, so it leaves them alone.
    assert bulk_loads == ([catalog.pk] if mode == "bulk" else [])
    assert event_table_schema() == schema


def test_bulk_and_incremental_loads_store_the_same_events(
    marketer, celery_worker, settings, monkeypatch, bulk_loads
):
    settings.IMPORT_CHUNK_ROWS = 40
    events = _events_file(200)
    schema = event_table_schema()
    bulk_catalog, incremental_catalog = CatalogFactory(), CatalogFactory()

    monkeypatch.setattr(_PostgresEventWriter, "BULK_MIN_ROWS", 1)
    bulk = _load(bulk_catalog, marketer, events)["events"]
    monkeypatch.setattr(_PostgresEventWriter, "BULK_MIN_ROWS", 10**9)
    incremental = _load(incremental_catalog, marketer, events)["events"]

    assert bulk_loads == [bulk_catalog.pk]
    assert bulk.result == incremental.result
    facts = event_facts(bulk_catalog)
    assert len(facts) == 205
    assert facts == event_facts(incremental_catalog)
    assert event_table_schema() == schema


def test_bulk_load_rebuilds_every_index_and_the_primary_key(
    marketer, celery_worker, monkeypatch, bulk_loads
):
    monkeypatch.setattr(_PostgresEventWriter, "BULK_MIN_ROWS", 1)
    catalog = CatalogFactory()
    indexes, constraints = event_table_schema()
    assert {name for name, _, _ in indexes} >= {
        "marketing_event_pkey",
        "event_customer_time",
        "event_product_time",
        "event_catalog_time",
    }
    assert ("marketing_event_pkey", "p", "PRIMARY KEY (id)") in constraints

    _load(catalog, marketer, _events_file(50))

    assert bulk_loads == [catalog.pk]
    assert event_table_schema() == (indexes, constraints)
    assert all(valid for _, _, valid in indexes)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT id) FROM marketing_event")
        assert cur.fetchone() == (55, 55)


# --- updates --------------------------------------------------------------------------------------


def test_changed_price_updates_only_that_product_and_blank_cells_keep_stored_values(
    marketer, celery_worker
):
    catalog = CatalogFactory()
    header = "sku,title,category,brand,price,colour"
    succeeded(
        run(
            catalog,
            marketer,
            "products",
            lines(
                header,
                "A1,Mug,Home > Kitchen,Acme,12.50,blue",
                "B2,Plate,Home > Dining,Potter,8.00,white",
                "C3,Bowl,Home > Dining,Potter,6.00,",
            ),
        )
    )
    before = {p.sku: p for p in Product.objects.filter(catalog=catalog)}

    job = succeeded(
        run(
            catalog,
            marketer,
            "products",
            lines(
                header,
                "A1,Mug,Home > Kitchen,Acme,14.00,blue",
                "B2,Plate,,,,",
                "C3,Bowl,Home > Dining,Potter,6.00,",
            ),
        )
    )

    assert job.result["products"] == {"inserted": 0, "updated": 1, "unchanged": 2}
    after = {p.sku: p for p in Product.objects.filter(catalog=catalog)}
    assert after["A1"].price == Decimal("14.00")
    assert after["A1"].updated_at > before["A1"].updated_at
    plate = after["B2"]
    assert (plate.category, plate.brand, plate.price, plate.attributes) == (
        "Home > Dining",
        "Potter",
        Decimal("8.00"),
        {"colour": "white"},
    )
    assert plate.updated_at == before["B2"].updated_at
    assert after["C3"].updated_at == before["C3"].updated_at


def test_customer_update_changes_consent_and_keeps_email_given_blank(marketer, celery_worker):
    catalog = CatalogFactory()
    header = "customer_id,email,name,consent_email"
    succeeded(
        run(
            catalog,
            marketer,
            "customers",
            lines(header, "C1,anna@example.com,Anna,yes", "C2,ben@example.com,Ben,no"),
        )
    )

    job = succeeded(
        run(catalog, marketer, "customers", lines(header, "C1,,,no", "C2,ben@example.com,Ben,no"))
    )

    assert job.result["customers"] == {"inserted": 0, "updated": 1, "unchanged": 1}
    anna = Customer.objects.get(external_id="C1")
    assert (anna.email, anna.name, anna.consent_email) == ("anna@example.com", "Anna", False)


# --- unknown references ---------------------------------------------------------------------------


def test_events_naming_unknown_skus_or_customers_are_rejected_and_the_rest_stored(
    marketer, celery_worker, settings
):
    settings.IMPORT_CHUNK_ROWS = 2
    shop, other = CatalogFactory(name="Shop"), CatalogFactory(name="Other")
    succeeded(run(shop, marketer, "products", PRODUCTS))
    succeeded(run(other, marketer, "products", lines("sku,title", "ELSEWHERE-1,Elsewhere")))
    succeeded(run(shop, marketer, "customers", CUSTOMERS))

    job = succeeded(
        run(
            shop,
            marketer,
            "events",
            lines(
                "customer_id,sku,kind,occurred_at",
                "C1,MUG-1,view,2024-03-01 10:00",
                "C1,ELSEWHERE-1,view,2024-03-01 10:01",
                "C404,PAN-2,view,2024-03-01 10:02",
                "C2,PAN-2,purchase,2024-03-01 10:03",
                "C3,MUG-1,view,2024-03-01 10:04",
                ",NOPE,view,2024-03-01 10:05",
            ),
        )
    )

    assert job.result["events"] == {"inserted": 2, "unchanged": 0}
    assert job.result["rejected"] == 4
    assert sorted(Event.objects.values_list("customer__external_id", "product__sku", "kind")) == [
        ("C1", "MUG-1", "view"),
        ("C2", "PAN-2", "purchase"),
    ]
    report = {
        (r["row"], r["column"], r["value"], r["reason"], r["action"])
        for r in report_rows(job.report_file.read())
    }
    assert report == {
        ("3", "sku", "ELSEWHERE-1", "unknown SKU in catalog 'Shop'", "rejected"),
        ("4", "customer", "C404", "unknown customer", "rejected"),
        ("6", "customer", "C3", "unknown customer", "rejected"),  # C3's row was rejected
        ("7", "sku", "NOPE", "unknown SKU in catalog 'Shop'", "rejected"),
    }


# --- concurrency ----------------------------------------------------------------------------------


def test_two_imports_into_one_catalog_are_serialized(
    marketer, celery_worker, settings, monkeypatch
):
    """Job A (on the worker) stops inside its transaction after writing its first chunk; job B
    (a second worker, here a thread) must wait for A's catalog lock instead of writing the
    same events alongside it."""
    settings.IMPORT_CHUNK_ROWS = 50
    catalog = CatalogFactory()
    succeeded(run(catalog, marketer, "products", PRODUCTS))
    succeeded(run(catalog, marketer, "customers", CUSTOMERS))
    rows = event_rows(300, customers=2).decode().splitlines()
    header = rows[0]
    a_file = "\n".join([header, *rows[1:201]]).encode()  # events 0..199
    b_file = "\n".join([header, *rows[101:301]]).encode()  # events 100..299

    pause = Pause(monkeypatch, at_chunk=2)  # A's second chunk: 50 events written, uncommitted
    job_a = start(catalog, marketer, "events", a_file, "a.csv")
    pause.wait()
    job_b = start(catalog, marketer, "events", b_file, "b.csv")  # queued behind A on the worker

    errors: list[BaseException] = []

    def second_worker() -> None:
        try:
            import_run(job_id=job_b.pk, worker="second-worker")
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=second_worker)
    thread.start()
    try:
        wait_for(
            lambda: _waiting_for_catalog_lock(catalog.pk),
            timeout=15,
            what="job B to wait for the catalog lock",
        )
        assert Event.objects.filter(catalog=catalog).count() == 0  # A's rows not visible yet
    finally:
        pause.resumed.set()
        thread.join(60)
    assert not errors
    job_a, job_b = finished(job_a), finished(job_b)

    assert succeeded(job_a).result["events"] == {"inserted": 200, "unchanged": 0}
    assert succeeded(job_b).result["events"] == {"inserted": 100, "unchanged": 100}
    assert job_b.worker == "second-worker"
    assert job_b.attempts == 1  # its queued message, delivered later, did not run it again
    events = Event.objects.filter(catalog=catalog)
    assert events.count() == 300
    keys = events.values_list("customer_id", "product_id", "kind", "occurred_at", "source")
    assert keys.distinct().count() == 300


def _waiting_for_catalog_lock(catalog_id: int) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = 7001 AND objid = %s",
            [catalog_id],
        )
        return cur.fetchone()[0] == 1


def test_streaming_bulk_load_works_with_django_debug_cursors(marketer, settings, monkeypatch):
    """DEBUG=1 wraps cursors in Django's debug wrapper; the streaming COPY must not depend on
    the wrapper's signature (it once passed a writer the wrapper did not accept)."""
    from tests.integration.import_support import run_inline

    settings.IMPORT_CHUNK_ROWS = 40
    monkeypatch.setattr(_PostgresEventWriter, "BULK_MIN_ROWS", 1)
    catalog = CatalogFactory()
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS))
    with CaptureQueriesContext(connection):  # what DEBUG=1 does to every cursor
        job = succeeded(run_inline(catalog, marketer, "events", _events_file(100)))
    assert job.result["events"] == {"inserted": 105, "unchanged": 0}
    assert Event.objects.filter(catalog=catalog).count() == 105
