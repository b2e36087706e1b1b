"""Imports that go wrong leave nothing half-written: file errors half way, crashes, cancellation,
a worker killed with SIGKILL (and retried), an unreachable broker."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys

import pytest
from django.db import OperationalError, connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from marketing.analytics.importing import auto_map
from marketing.analytics.synthetic import generate
from marketing.models import Customer, Event, Job, Product, Upload
from marketing.services import imports
from marketing.services.imports import _PostgresEventWriter, import_run
from marketing.signals import requeue_orphaned_jobs
from tests.factories import CatalogFactory, JobFactory
from tests.integration.conftest import wait_for
from tests.integration.import_support import (
    CUSTOMERS,
    EVENTS,
    PRODUCTS,
    Pause,
    event_rows,
    event_table_schema,
    finished,
    lines,
    run,
    snapshot,
    start,
    succeeded,
    upload,
)

pytestmark = pytest.mark.django_db(transaction=True)

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
RETAIL_ROWS = [
    "536365,MUG-1,BLUE MUG RENAMED,6,12/01/2010 08:26,2.55,17850,United Kingdom",
    "536365,NEW-7,WHITE LANTERN,6,12/01/2010 08:26,3.39,17850,United Kingdom",
    "536366,PAN-2,FRYING PAN,2,12/01/2010 08:28,44.00,17851,France",
    "536367,NEW-8,RED KETTLE,1,12/01/2010 08:34,18.00,17852,Spain",
    "C536368,NEW-7,WHITE LANTERN,-1,12/01/2010 09:00,3.39,17850,United Kingdom",
    "536369,NEW-9,GREEN BOWL,4,12/01/2010 09:10,1.25,,United Kingdom",
]


@pytest.fixture
def filled(marketer, celery_worker):
    """A catalog that already holds products, customers and events (imported by the worker)."""
    catalog = CatalogFactory(name="Home Goods")
    succeeded(run(catalog, marketer, "products", PRODUCTS))
    succeeded(run(catalog, marketer, "customers", CUSTOMERS))
    succeeded(run(catalog, marketer, "events", EVENTS))
    return catalog


@pytest.fixture
def rows_copied(monkeypatch) -> list[int]:
    """Rows each COPY of the event writer sent (proof that a failing import wrote first)."""
    sizes: list[int] = []
    original = _PostgresEventWriter.add

    def add(self, frame):
        before = self.inserted
        original(self, frame)
        sizes.append(self.inserted - before)

    monkeypatch.setattr(_PostgresEventWriter, "add", add)
    return sizes


# --- failures half way ----------------------------------------------------------------------------


def test_file_error_half_way_leaves_products_customers_and_events_as_before(
    filled, marketer, settings, rows_copied
):
    settings.IMPORT_CHUNK_ROWS = 2
    before = snapshot()
    broken = lines(
        RETAIL_HEADER, *RETAIL_ROWS, '536370,PAN-2,"BROKEN,1,12/01/2010 09:20,3.00,17853,Spain'
    )

    job = run(filled, marketer, "online_retail", broken, "retail.csv")

    assert sum(rows_copied) > 0  # earlier chunks were written before the error
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("retail.csv: ")
    assert "never closed (unbalanced quote)" in job.error
    assert job.message == job.error
    assert snapshot() == before
    assert Product.objects.get(catalog=filled, sku="MUG-1").title == "Blue Mug"


def test_events_file_without_sku_column_fails_half_way_naming_the_file(
    filled, marketer, settings, rows_copied
):
    settings.IMPORT_CHUNK_ROWS = 2
    before = snapshot()
    content = lines(
        "customer_id,kind,text,occurred_at",
        "C1,search,mugs,2024-03-01 10:00",
        "C2,search,pans,2024-03-01 10:01",
        "C1,search,lamps,2024-03-01 10:02",
        "C1,view,,2024-03-01 10:03",
    )

    job = run(filled, marketer, "events", content, "searches.csv")

    assert rows_copied == [2]  # the first chunk's searches were written, then rolled back
    assert job.status == Job.Status.FAILED
    assert job.error == (
        "searches.csv: column SKU: required column 'SKU' is missing: "
        "only search events may have no SKU"
    )
    assert snapshot() == before


def test_crash_during_a_bulk_load_rolls_back_and_restores_the_indexes(
    filled, marketer, settings, monkeypatch
):
    settings.IMPORT_CHUNK_ROWS = 40
    monkeypatch.setattr(_PostgresEventWriter, "BULK_MIN_ROWS", 1)
    bulk_loads: list[int] = []
    copies = {"n": 0}
    enter_bulk, add = _PostgresEventWriter._enter_bulk_mode, _PostgresEventWriter.add

    def spy_bulk(self) -> None:
        bulk_loads.append(self.catalog.pk)
        enter_bulk(self)

    def failing_add(self, frame) -> None:
        copies["n"] += 1
        if copies["n"] == 2:
            raise RuntimeError("disk full")
        add(self, frame)

    monkeypatch.setattr(_PostgresEventWriter, "_enter_bulk_mode", spy_bulk)
    monkeypatch.setattr(_PostgresEventWriter, "add", failing_add)
    before, schema = snapshot(), event_table_schema()

    job = run(filled, marketer, "events", event_rows(200))

    assert bulk_loads == [filled.pk]  # indexes were dropped, the first chunk copied
    assert job.status == Job.Status.FAILED
    assert job.error == "Unexpected error (RuntimeError); nothing was changed."
    assert snapshot() == before
    assert event_table_schema() == schema


def test_transient_database_error_is_retried_by_the_task(marketer, celery_worker, monkeypatch):
    catalog = CatalogFactory()
    calls = {"n": 0}
    lock = imports.run.lock_catalog

    def flaky_lock(catalog) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")
        lock(catalog)

    monkeypatch.setattr(imports.run, "lock_catalog", flaky_lock)

    job = finished(start(catalog, marketer, "products", PRODUCTS), timeout=30)

    assert calls["n"] == 2
    assert succeeded(job).attempts == 2
    assert Product.objects.filter(catalog=catalog).count() == 3


# --- cancellation ---------------------------------------------------------------------------------


def test_cancelling_a_running_import_keeps_nothing(filled, marketer, client, settings, monkeypatch):
    settings.IMPORT_CHUNK_ROWS = 2
    before = snapshot()
    pause = Pause(monkeypatch, at_chunk=2)
    job = start(filled, marketer, "online_retail", lines(RETAIL_HEADER, *RETAIL_ROWS))
    pause.wait()  # chunk 1 (new products, customers, events) is written, uncommitted
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), HTTP_HX_REQUEST="true")
    pause.resumed.set()

    assert response.status_code == 200
    assert "Cancelling…" in response.content.decode()
    job = finished(job)
    assert job.status == Job.Status.CANCELLED
    assert job.message == "Cancelled; nothing was changed"
    assert snapshot() == before
    assert not Product.objects.filter(sku__startswith="NEW-").exists()
    assert not Customer.objects.filter(external_id="17850").exists()


def test_a_job_cancelled_while_queued_never_runs(client, marketer):
    catalog = CatalogFactory()
    job = start(catalog, marketer, "products", PRODUCTS)  # no worker consumes it
    client.force_login(marketer)

    client.post(reverse("marketing:job-cancel", args=[job.pk]))
    import_run(job_id=job.pk, worker="late-worker")  # its message is delivered after all

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.attempts == 0
    assert not Product.objects.exists()


# --- a worker killed with SIGKILL -----------------------------------------------------------------


def test_worker_killed_mid_import_leaves_nothing_and_the_job_is_retried(
    marketer, worker_process, settings, tmp_path
):
    """SIGKILL during a bulk load (100k events: indexes dropped, table locked); the next
    worker to start on this host re-queues the job, which then completes exactly once."""
    settings.IMPORT_CHUNK_ROWS = 1_000  # the subprocess reads it from its environment
    events = _PostgresEventWriter.BULK_MIN_ROWS  # the smallest load that runs in bulk mode
    data = generate(
        tmp_path / "data", customers=2_000, products=200, events=events, seed=7, gzip_events=False
    )
    catalog = CatalogFactory()
    schema = event_table_schema()
    worker_process.start()
    succeeded(run(catalog, marketer, "products", data["products_path"].read_bytes()))
    succeeded(run(catalog, marketer, "customers", data["customers_path"].read_bytes()))
    before = snapshot()
    first_pid = worker_process.proc.pid

    job = start(catalog, marketer, "events", data["events_path"].read_bytes(), "events.csv")
    wait_for(
        lambda: Job.objects.filter(
            pk=job.pk,
            status=Job.Status.RUNNING,
            progress_done__gt=0,
            progress_done__lt=F("progress_total"),  # still reading chunks, far from the commit
        ).exists(),
        timeout=60,
        interval=0.05,
        what="the import to report progress",
    )
    assert _event_table_locked(), "the load is not in bulk mode"
    worker_process.kill()

    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING, worker_process.log()
    assert job.attempts == 1
    assert job.worker == f"{socket.gethostname()}:{first_pid}"
    assert snapshot() == before  # no events, products and customers untouched
    assert event_table_schema() == schema

    worker_process.start()
    job = finished(job, timeout=120)

    assert job.status == Job.Status.SUCCEEDED, (job.error, worker_process.log())
    assert job.attempts == 2
    assert job.worker == f"{socket.gethostname()}:{worker_process.proc.pid}"
    assert job.result["events"] == {"inserted": events, "unchanged": 0}
    assert job.result["rejected"] == 0
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT id) FROM marketing_event WHERE catalog_id = %s",
            [catalog.pk],
        )
        assert cur.fetchone() == (events, events)
    assert snapshot(events=False) == {k: before[k] for k in ("products", "customers")}
    assert event_table_schema() == schema


def _running_job(catalog, user, *, worker: str, **fields) -> Job:
    """A products import a worker claimed (and maybe lost): running, attempt 1."""
    up = upload(catalog, user, "products", PRODUCTS)
    now = timezone.now()
    values = {"attempts": 1, "started_at": now, "heartbeat_at": now, **fields}
    return JobFactory(
        catalog=catalog,
        created_by=user,
        status=Job.Status.RUNNING,
        worker=worker,
        params={
            "upload_id": up.pk,
            "mapping": auto_map(up.detected["columns"], "products"),
            "file": up.original_name,
        },
        **values,
    )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_starting_worker_requeues_a_job_left_running_under_its_own_pid(marketer, celery_worker):
    """A restarted container gives its new worker the pid of the one that was killed (often
    pid 1), so "is that pid alive?" alone would never let the job go."""
    catalog = CatalogFactory()
    host = socket.gethostname()
    orphan = _running_job(catalog, marketer, worker=f"{host}:{os.getpid()}")
    alive = _running_job(catalog, marketer, worker=f"{host}:{os.getppid()}")

    requeue_orphaned_jobs()  # what the worker_ready signal runs, here in "the restarted worker"

    orphan = succeeded(finished(orphan))
    assert orphan.attempts == 2
    assert Product.objects.filter(catalog=catalog).count() == 3
    alive.refresh_from_db()
    assert (alive.status, alive.attempts) == (Job.Status.RUNNING, 1)  # its worker still runs


def test_job_cancelled_before_its_worker_died_ends_cancelled_not_running(marketer, celery_worker):
    catalog = CatalogFactory()
    job = _running_job(
        catalog, marketer, worker=f"{socket.gethostname()}:{_dead_pid()}", cancel_requested=True
    )

    requeue_orphaned_jobs()

    job = finished(job, timeout=20)
    assert job.status == Job.Status.CANCELLED
    assert job.message == "Cancelled; nothing was changed"
    assert job.attempts == 1
    assert not Product.objects.exists()


def test_redelivered_task_leaves_a_job_alone_while_its_worker_lives(marketer):
    catalog = CatalogFactory()
    job = _running_job(catalog, marketer, worker=f"{socket.gethostname()}:{os.getppid()}")

    import_run(job_id=job.pk, worker="redelivered")

    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == (
        Job.Status.RUNNING,
        1,
        f"{socket.gethostname()}:{os.getppid()}",
    )
    assert not Product.objects.exists()


def test_a_running_worker_takes_over_a_job_lost_on_another_machine(marketer, worker_process):
    """No worker need start: each sweeps for stale jobs every JOB_STALE_AFTER_S (here 5 s)."""
    worker_process.start(env={"JOB_STALE_AFTER_S": "5"})
    wait_for(lambda: "ready." in worker_process.log(), timeout=60, what="the worker to start")
    catalog = CatalogFactory()
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    lost = _running_job(catalog, marketer, worker="lost-host:123", heartbeat_at=long_ago)
    soon = timezone.now() + dt.timedelta(hours=1)  # its worker keeps beating
    busy = _running_job(CatalogFactory(), marketer, worker="busy-host:456", heartbeat_at=soon)

    lost = succeeded(finished(lost, timeout=60))

    assert lost.attempts == 2 and lost.worker != "lost-host:123"
    assert Product.objects.filter(catalog=catalog).count() == 3
    busy.refresh_from_db()
    assert (busy.status, busy.worker, busy.attempts) == (Job.Status.RUNNING, "busy-host:456", 1)


def test_redelivered_task_takes_over_a_job_whose_heartbeat_went_stale(marketer, settings):
    catalog = CatalogFactory()
    silent = timezone.now() - dt.timedelta(seconds=settings.JOB_STALE_AFTER_S + 1)
    job = _running_job(catalog, marketer, worker="other-host:123", heartbeat_at=silent)

    import_run(job_id=job.pk, worker="redelivered")

    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == (Job.Status.SUCCEEDED, 2, "redelivered")
    assert Product.objects.filter(catalog=catalog).count() == 3


# --- an unreachable broker ------------------------------------------------------------------------


def test_unreachable_broker_fails_the_job_on_commit_and_changes_nothing(
    marketer, client, unreachable_broker, caplog
):
    catalog = CatalogFactory()

    job = start(catalog, marketer, "products", PRODUCTS)

    assert f"could not enqueue job {job.pk}: OperationalError" in caplog.text  # connection refused
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.message.startswith("The job queue could not be reached, so the job did not start")
    assert "nothing was changed" in job.error
    assert job.celery_id == ""
    assert job.attempts == 0
    assert Job.objects.count() == 1
    assert Upload.objects.count() == 1
    assert not Product.objects.exists()
    client.force_login(marketer)
    fragment = client.get(reverse("marketing:job-status", args=[job.pk])).content.decode()
    assert "The job queue could not be reached" in fragment


def _event_table_locked() -> bool:
    """Whether another session holds the events table exclusively (a bulk load)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = 'marketing_event' AND l.mode = 'AccessExclusiveLock'"
            " AND l.granted AND l.pid <> pg_backend_pid()"
        )
        return cur.fetchone()[0] > 0


def test_killed_pool_process_job_is_taken_over_by_the_redelivered_task(
    marketer, worker_process, settings, tmp_path
):
    """Production runs the prefork pool: the kernel's OOM killer picks the pool process that
    runs the import, the main worker lives on (no worker_ready), and Celery redelivers the
    message (task_reject_on_worker_lost) while the job still looks running."""
    settings.IMPORT_CHUNK_ROWS = 1_000
    events = 60_000
    data = generate(
        tmp_path / "data", customers=2_000, products=200, events=events, seed=8, gzip_events=False
    )
    catalog = CatalogFactory()
    worker_process.start(pool="prefork")
    succeeded(run(catalog, marketer, "products", data["products_path"].read_bytes()))
    succeeded(run(catalog, marketer, "customers", data["customers_path"].read_bytes()))
    before = snapshot()

    job = start(catalog, marketer, "events", data["events_path"].read_bytes(), "events.csv")
    wait_for(
        lambda: Job.objects.filter(
            pk=job.pk,
            status=Job.Status.RUNNING,
            progress_done__gt=0,
            progress_done__lt=F("progress_total"),
        ).exists(),
        timeout=60,
        interval=0.05,
        what="the import to report progress",
    )
    job.refresh_from_db()
    host, pid = job.worker.rsplit(":", 1)
    assert host == socket.gethostname()
    assert int(pid) != worker_process.proc.pid  # the pool process, not the main one
    os.kill(int(pid), signal.SIGKILL)

    job = finished(job, timeout=60)

    assert job.status == Job.Status.SUCCEEDED, (job.error, worker_process.log())
    assert job.attempts == 2
    assert job.result["events"] == {"inserted": events, "unchanged": 0}
    assert Event.objects.filter(catalog=catalog).count() == events
    assert snapshot(events=False) == {k: before[k] for k in ("products", "customers")}
