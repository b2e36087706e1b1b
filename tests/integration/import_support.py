"""Helpers for the import integration tests: sample files, running an import, DB snapshots."""

from __future__ import annotations

import csv
import io
import threading

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from marketing.analytics.importing import Cleaner, auto_map
from marketing.models import Customer, Event, Job, Product, Upload
from marketing.services import imports
from marketing.services.imports import import_run, import_start, upload_create
from tests.factories import JobFactory
from tests.integration.conftest import wait_for

JOB_TIMEOUT_S = 60


def lines(header: str, *rows: str) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


PRODUCTS_HEADER = "sku,title,category,brand,price,in_stock,colour"
PRODUCTS = lines(
    PRODUCTS_HEADER,
    "MUG-1,Blue Mug,Home > Kitchen,Acme,12.50,yes,blue",
    "PAN-2,Frying Pan,Home > Kitchen > Pans,Chef,39.9,no,black",
    'LAMP-3,=HYPERLINK("http://evil.test"),Home > Lighting,Glow,5,1,',
    "BAD-4,Broken Price,Home,Acme,-3.00,yes,red",
    "MUG-1,Blue Mug again,Home > Kitchen,Acme,12.50,yes,blue",
)
CUSTOMERS = lines(
    "customer_id,email,name,country,language,consent_email,consent_sms",
    "C1,anna@example.com,Anna Schmidt,Germany,de,yes,no",
    "C2,ben@example.com,Ben Jones,United Kingdom,en,no,yes",
    "C3,not-an-email,Cleo,France,fr,yes,yes",
)
EVENTS = lines(
    "customer_id,sku,kind,quantity,value,occurred_at,source",
    "C1,MUG-1,view,,,2024-03-01 10:00:00,S1",
    "C1,MUG-1,purchase,2,25.00,2024-03-01 10:05:00,O1",
    "C1,MUG-1,purchase,-1,12.50,2024-03-10 09:00:00,O1",
    "C2,PAN-2,add_to_cart,1,,2024-03-02 18:30:00,S2",
    ",LAMP-3,view,,,2024-03-03 08:00:00,S3",
    "C2,GHOST-9,view,,,2024-03-04 08:00:00,S4",
    "C9,MUG-1,view,,,2024-03-04 09:00:00,S5",
    "C2,PAN-2,teleport,,,2024-03-04 10:00:00,S6",
)


def event_rows(n: int, *, customers: int = 3, skus: tuple[str, ...] = ("MUG-1", "PAN-2")) -> bytes:
    """n distinct, valid events over customers C1..Cn and the given SKUs (one per minute)."""
    rows = [
        f"C{i % customers + 1},{skus[i % len(skus)]},view,1,,"
        f"2024-01-{1 + i // 1440:02d} {i // 60 % 24:02d}:{i % 60:02d}:00,S{i}"
        for i in range(n)
    ]
    return lines("customer_id,sku,kind,quantity,value,occurred_at,source", *rows)


def upload(catalog, user, kind: str, content: bytes, name: str = "") -> Upload:
    name = name or f"{kind}.csv"
    return upload_create(
        catalog=catalog, kind=kind, file=SimpleUploadedFile(name, content), user=user
    )


def start(catalog, user, kind: str, content: bytes, name: str = "") -> Job:
    """Upload a file and start its import with the automatic mapping (the job is enqueued)."""
    up = upload(catalog, user, kind, content, name)
    return import_start(upload=up, mapping=auto_map(up.detected["columns"], kind), user=user)


def finished(job: Job, *, timeout: float = JOB_TIMEOUT_S) -> Job:
    """The job once it left queued/running (the worker ran it)."""
    wait_for(
        lambda: Job.objects.filter(pk=job.pk).exclude(status__in=Job.ACTIVE).exists(),
        timeout=timeout,
        what=f"job {job.pk} to finish",
    )
    job.refresh_from_db()
    return job


def run(catalog, user, kind: str, content: bytes, name: str = "") -> Job:
    """Upload, import through the worker, and return the finished job."""
    return finished(start(catalog, user, kind, content, name))


def queued(
    catalog, user, kind: str, content: bytes, name: str = "", *, mapping: dict | None = None
) -> Job:
    """Upload a file and create its queued import job without enqueuing it (no broker)."""
    up = upload(catalog, user, kind, content, name)
    return JobFactory(
        catalog=catalog,
        created_by=user,
        status=Job.Status.QUEUED,
        message="Queued",
        params={
            "upload_id": up.pk,
            "mapping": mapping or auto_map(up.detected["columns"], kind),
            "file": up.original_name,
        },
    )


def run_inline(
    catalog, user, kind: str, content: bytes, name: str = "", *, mapping: dict | None = None
) -> Job:
    """Upload and run the import in this process, without a broker or worker, and return the
    finished job: the same service on whichever database the tests use (SQLite too)."""
    job = queued(catalog, user, kind, content, name, mapping=mapping)
    import_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    return job


def succeeded(job: Job) -> Job:
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    return job


def snapshot(*, events: bool = True) -> dict[str, list[dict]]:
    """Every stored product, customer and event, all columns (timestamps included)."""
    rows = {
        "products": list(Product.objects.order_by("catalog_id", "sku").values()),
        "customers": list(Customer.objects.order_by("external_id").values()),
    }
    if events:
        rows["events"] = list(Event.objects.order_by("id").values())
    return rows


def event_facts(catalog) -> list[tuple]:
    """The catalog's events by content (no ids), comparable across catalogs."""
    return sorted(
        Event.objects.filter(catalog=catalog).values_list(
            "customer__external_id",
            "product__sku",
            "kind",
            "quantity",
            "value",
            "rating",
            "text",
            "occurred_at",
            "source",
        ),
        key=repr,
    )


def event_table_schema() -> tuple[list[tuple], list[tuple]]:
    """Indexes (name, definition, valid) and constraints (name, type, definition) of events."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT i.indexname, i.indexdef, x.indisvalid AND x.indisready
            FROM pg_indexes i
            JOIN pg_class c ON c.relname = i.indexname
            JOIN pg_index x ON x.indexrelid = c.oid
            WHERE i.tablename = 'marketing_event' ORDER BY i.indexname
            """
        )
        indexes = cur.fetchall()
        cur.execute(
            """
            SELECT c.conname, c.contype, pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
            WHERE t.relname = 'marketing_event' ORDER BY c.conname
            """
        )
        constraints = cur.fetchall()
    return indexes, constraints


def report_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


class Pause:
    """Stops the worker inside the import transaction at the n-th cleaned chunk, until resumed."""

    def __init__(self, monkeypatch, *, at_chunk: int) -> None:
        self.reached, self.resumed = threading.Event(), threading.Event()
        self.calls = 0
        original = Cleaner.clean

        def clean(cleaner, frame):
            self.calls += 1
            if self.calls == at_chunk:
                self.reached.set()
                assert self.resumed.wait(30), "test never resumed the import"
            return original(cleaner, frame)

        monkeypatch.setattr(imports.Cleaner, "clean", clean)

    def wait(self) -> None:
        assert self.reached.wait(30), "the import never reached the pause"
