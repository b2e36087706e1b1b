"""Jobs end on a real worker even when things keep going wrong: a database error on every
attempt, a worker that keeps dying, a cancel request that only reached the cache."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from marketing.analytics.importing import auto_map
from marketing.models import Job, Product
from marketing.services import imports
from marketing.services import jobs as job_services
from marketing.signals import requeue_orphaned_jobs
from tests.factories import CatalogFactory, JobFactory
from tests.integration.import_support import (
    CUSTOMERS,
    EVENTS,
    PRODUCTS,
    Pause,
    finished,
    run,
    snapshot,
    start,
    succeeded,
    upload,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_database_error_on_every_attempt_fails_the_job(marketer, celery_worker, monkeypatch):
    """Each retry claims the job again; after the last one the task's on_failure ends it."""
    calls = {"n": 0}

    def always_down(job, issues_path):
        calls["n"] += 1
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(imports.run, "_import", always_down)

    job = finished(start(CatalogFactory(), marketer, "products", PRODUCTS), timeout=60)

    assert job.status == Job.Status.FAILED
    assert calls["n"] == 3
    assert job.attempts == 3
    assert job.error.startswith("The database kept failing (OperationalError)")
    assert not Product.objects.exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_job_whose_worker_died_on_every_attempt_fails_instead_of_running_again(
    marketer, celery_worker, settings
):
    catalog = CatalogFactory()
    up = upload(catalog, marketer, "products", PRODUCTS)
    job = JobFactory(
        catalog=catalog,
        created_by=marketer,
        status=Job.Status.RUNNING,
        attempts=settings.MAX_JOB_ATTEMPTS,
        worker=f"{socket.gethostname()}:{_dead_pid()}",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        params={"upload_id": up.pk, "mapping": auto_map(up.detected["columns"], "products")},
    )

    requeue_orphaned_jobs()  # what a restarted worker runs first

    job = finished(job, timeout=20)
    assert job.status == Job.Status.FAILED
    assert job.attempts == settings.MAX_JOB_ATTEMPTS
    assert "the worker kept dying (out of memory or time limit?)" in job.error
    assert not Product.objects.exists()


def test_a_cancel_request_that_reached_only_the_cache_stops_a_running_import(
    client, marketer, celery_worker, settings, monkeypatch
):
    """As when SQLite was too busy for job_cancel's write: the worker still sees the flag."""
    catalog = CatalogFactory()
    succeeded(run(catalog, marketer, "products", PRODUCTS))
    succeeded(run(catalog, marketer, "customers", CUSTOMERS))
    before = snapshot()
    settings.IMPORT_CHUNK_ROWS = 2
    pause = Pause(monkeypatch, at_chunk=2)
    monkeypatch.setattr(job_services, "write_unless_sqlite_busy", lambda fn, **_: 0)
    job = start(catalog, marketer, "events", EVENTS)
    pause.wait()  # the first chunk's events are written, uncommitted
    client.force_login(marketer)

    response = client.post(reverse("marketing:job-cancel", args=[job.pk]), HTTP_HX_REQUEST="true")
    job.refresh_from_db()
    assert not job.cancel_requested  # the database never heard of it
    pause.resumed.set()

    assert "Cancelling…" in response.content.decode()
    job = finished(job)
    assert (job.status, job.message) == (Job.Status.CANCELLED, "Cancelled; nothing was changed")
    assert snapshot() == before
