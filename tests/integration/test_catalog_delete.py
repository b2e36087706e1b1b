"""Deleting a catalog against imports, on PostgreSQL with real transactions.

Events reference their catalog without a database foreign key, so nothing but the service's
locking stops an import from committing events into a catalog that was deleted meanwhile. The
service takes the import's advisory lock, locks the catalog row and refuses while an import
job is queued or running; these tests check that no event is ever left without its catalog.
alice (admin) deletes; mary (marketer) imports.
"""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse

from marketing.analytics.importing import auto_map
from marketing.models import Catalog, Event, Job, Product, Upload
from marketing.services import catalogs as catalog_services
from marketing.services.imports import import_run
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, JobFactory
from tests.integration.conftest import wait_for
from tests.integration.import_support import (
    CUSTOMERS,
    PRODUCTS,
    Pause,
    event_rows,
    run_inline,
    succeeded,
    upload,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (advisory locks, row locks, concurrent transactions)")


def orphan_events() -> int:
    """Events whose catalog no longer exists (possible only because of db_constraint=False)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM marketing_event e"
            " WHERE NOT EXISTS (SELECT 1 FROM marketing_catalog c WHERE c.id = e.catalog_id)"
        )
        return cur.fetchone()[0]


def waiting_for_import_lock(catalog_id: int) -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = %s AND objid = %s",
            [catalog_services.IMPORT_LOCK_CLASS, catalog_id],
        )
        return cur.fetchone()[0] >= 1


def raw_connection() -> psycopg.Connection:
    """A second session on the test database, outside Django (it stands for an import)."""
    db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
    )


class DeleteInThread:
    """Runs catalog_delete in its own thread and connection, keeping its outcome."""

    def __init__(self, catalog: Catalog, user) -> None:
        self.outcome: object = None
        self.thread = threading.Thread(target=self._run, args=(catalog, user))

    def _run(self, catalog: Catalog, user) -> None:
        try:
            self.outcome = catalog_services.catalog_delete(catalog=catalog, user=user)
        except BaseException as exc:  # reported in the test thread
            self.outcome = exc
        finally:
            connection.close()

    def start(self) -> DeleteInThread:
        self.thread.start()
        return self

    def join(self) -> object:
        self.thread.join(60)
        assert not self.thread.is_alive(), "the delete never finished"
        return self.outcome


@pytest.fixture
def filled():
    """A catalog with products, customers, four events and an upload from a finished import."""
    catalog = CatalogFactory(name="Filled")
    customer = CustomerFactory()
    EventFactory.create_batch(4, product__catalog=catalog, customer=customer)
    JobFactory(catalog=catalog, status=Job.Status.SUCCEEDED)
    return catalog


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.RUNNING])
def test_delete_is_refused_while_an_import_is_active(client, admin_user, filled, status):
    JobFactory(catalog=filled, status=status)
    client.force_login(admin_user)

    response = client.post(reverse("marketing:catalog-delete", args=[filled.pk]))

    assert response.status_code == 200
    assert catalog_services.IMPORT_ACTIVE_MESSAGE in response.content.decode()
    assert Catalog.objects.filter(pk=filled.pk).exists()
    assert Event.objects.filter(catalog=filled).count() == 4
    assert Product.objects.filter(catalog=filled).count() == 4


def test_delete_without_an_active_import_removes_everything(client, admin_user, filled):
    other = CatalogFactory(name="Other")
    EventFactory(product__catalog=other)
    client.force_login(admin_user)

    response = client.post(reverse("marketing:catalog-delete", args=[filled.pk]))

    assert response.status_code == 302
    assert not Catalog.objects.filter(pk=filled.pk).exists()
    assert not Event.objects.filter(catalog_id=filled.pk).exists()
    assert not Product.objects.filter(catalog_id=filled.pk).exists()
    assert orphan_events() == 0
    assert Event.objects.filter(catalog=other).count() == 1


def test_delete_waits_for_an_import_transaction_and_removes_its_events(admin_user, filled):
    """An import holds the catalog's advisory lock while it writes; the delete waits for the
    commit and then removes the events it wrote too (before: they stayed, orphaned)."""
    importer = raw_connection()
    try:
        with importer.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [catalog_services.IMPORT_LOCK_CLASS, filled.pk],
            )
            cur.execute(
                "INSERT INTO marketing_event (id, catalog_id, kind, quantity, text, occurred_at,"
                " source) VALUES (987654321, %s, 'view', 1, '', %s, 'late')",
                [filled.pk, dt.datetime(2024, 5, 1, tzinfo=dt.UTC)],
            )
        delete = DeleteInThread(filled, admin_user).start()
        wait_for(
            lambda: waiting_for_import_lock(filled.pk),
            timeout=15,
            what="the delete to wait for the import's lock",
        )
        assert Catalog.objects.filter(pk=filled.pk).exists()
        importer.commit()
    finally:
        importer.close()

    deleted = delete.join()
    assert isinstance(deleted, catalog_services.CatalogDeleted), deleted
    assert deleted.events == 5  # the four before and the import's late one
    assert not Catalog.objects.filter(pk=filled.pk).exists()
    assert orphan_events() == 0


def test_delete_during_a_real_import_leaves_no_orphans(admin_user, marketer, settings, monkeypatch):
    """The import service itself, stopped inside its transaction: the delete waits for it, then
    finds the job still running and refuses, or (had the job finished) deletes everything."""
    settings.IMPORT_CHUNK_ROWS = 50
    catalog = CatalogFactory(name="Live")
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS))
    up = upload(catalog, marketer, "events", event_rows(200, customers=2), "events.csv")
    job = JobFactory(
        catalog=catalog,
        created_by=marketer,
        status=Job.Status.QUEUED,
        params={
            "upload_id": up.pk,
            "mapping": auto_map(up.detected["columns"], "events"),
            "file": up.original_name,
        },
    )
    pause = Pause(monkeypatch, at_chunk=2)  # 50 events written, not committed
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            import_run(job_id=job.pk, worker="test-worker")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    importing = threading.Thread(target=worker)
    importing.start()
    try:
        pause.wait()
        delete = DeleteInThread(catalog, admin_user).start()
        wait_for(
            lambda: waiting_for_import_lock(catalog.pk),
            timeout=15,
            what="the delete to wait for the import's lock",
        )
    finally:
        pause.resumed.set()
        importing.join(60)
    outcome = delete.join()

    assert not errors
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    assert orphan_events() == 0
    if isinstance(outcome, catalog_services.CatalogBusy):
        assert Event.objects.filter(catalog=catalog).count() == 200
        assert Upload.objects.filter(catalog=catalog).exists()
    else:
        assert isinstance(outcome, catalog_services.CatalogDeleted), outcome
        assert not Event.objects.filter(catalog_id=catalog.pk).exists()
