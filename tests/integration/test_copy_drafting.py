"""Drafting jobs on PostgreSQL with real workers: a per-customer brief drafted end to end
through the broker (the job's task plus a helper task), two workers sharing one job's chunks,
and a worker SIGKILLed in the middle of a chunk, or PostgreSQL restarting there (pg_proxy):
the job resumes at the chunks not done."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from copygen.models import Brief, Draft, DraftChunk, DraftRevision
from copygen.services import drafting
from copygen.services.briefs import brief_create, brief_draft_start
from marketing.models import Job
from marketing.services.jobs import job_claim
from tests.copy_support import copy_shop_create
from tests.integration.conftest import wait_for
from tests.integration.pg_proxy import CUT, cut_paused_worker

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 3  # 9 customers: 3 chunks


@pytest.fixture
def shop(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.COPY_DRAFT_CHUNK_SIZE = CHUNK
    return copy_shop_create()


def customer_brief(shop, user) -> Brief:
    return brief_create(
        user=user,
        catalog=shop.catalog,
        name="Per customer",
        segment=shop.segment,
        audience=Brief.Audience.CUSTOMERS,
        channel="email",
        locales=["en", "es"],
        variants=2,
    )


def finished(job: Job, timeout: float = 90) -> Job:
    wait_for(
        lambda: Job.objects.filter(pk=job.pk).exclude(status__in=Job.ACTIVE).exists(),
        timeout=timeout,
        what=f"drafting job {job.pk} to finish",
    )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    return job


def assert_drafted_once(brief: Brief, shop, job: Job) -> None:
    drafts = list(Draft.objects.filter(brief=brief))
    keys = [(d.audience_key, d.locale, d.variant) for d in drafts]
    assert len(keys) == len(set(keys)) == 9 * 2 * 2
    for d in drafts:
        allowed = shop.recommended.get(d.customer_id) or shop.segment_list
        assert set(d.product_ids) <= set(allowed)
        assert d.job_id == job.pk
    assert DraftRevision.objects.filter(draft__brief=brief).count() == len(drafts)
    chunks = DraftChunk.objects.filter(job=job)
    assert chunks.count() == 3 and all(c.done for c in chunks)
    assert job.result["drafts"] == len(drafts) and job.result["audience"] == 9
    assert job.progress_done == job.progress_total == 9


def test_a_customer_brief_is_drafted_by_a_real_worker(shop, marketer, celery_worker, settings):
    settings.COPY_DRAFT_PARALLEL = 2  # the job's task also sends one helper task
    brief = customer_brief(shop, marketer)

    job = finished(brief_draft_start(brief=brief, user=marketer))

    assert_drafted_once(brief, shop, job)
    assert job.message == "Drafted 36 drafts for 9 customers in 2 languages"
    assert job.attempts == 1
    brief.refresh_from_db()
    assert brief.info["result"]["drafts"] == 36


def test_two_workers_share_a_jobs_chunks_and_finish_it_once(shop, marketer, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED needs PostgreSQL")
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    claimed = job_claim(job_id=job.pk, worker="main:1")
    drafting._plan(drafting._context(claimed, Brief.objects.get(pk=brief.pk)), claimed)
    who: Counter[str] = Counter()
    original = drafting._draft_chunk

    def slow_chunk(ctx, chunk):
        who[threading.current_thread().name] += 1
        original(ctx, chunk)
        time.sleep(0.4)  # both workers hold a chunk at the same time

    monkeypatch.setattr(drafting, "_draft_chunk", slow_chunk)
    succeeded = []
    original_succeed = drafting.job_succeed
    monkeypatch.setattr(
        drafting, "job_succeed", lambda **kw: succeeded.append(original_succeed(**kw))
    )

    def run(fn) -> None:
        try:
            fn()
        finally:
            connection.close()

    threads = [
        threading.Thread(
            target=run,
            args=(lambda: drafting.drafting_run(job_id=job.pk, worker="main:1"),),
            name="main",
        ),
        threading.Thread(
            target=run,
            args=(lambda: drafting.drafting_chunks_run(job_id=job.pk, worker="helper:2"),),
            name="helper",
        ),
    ]
    # The main task re-claims the job (its heartbeat is fresh, so release it first).
    Job.objects.filter(pk=job.pk).update(heartbeat_at=None)
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert who["main"] >= 1 and who["helper"] >= 1 and sum(who.values()) == 3
    assert_drafted_once(brief, shop, job)
    assert job.result["chunks"] == 3
    assert succeeded == [True]  # whoever drafted the last chunk finished it, once


@pytest.mark.worker
def test_a_worker_killed_mid_chunk_leaves_each_draft_once(
    marketer, worker_process, settings, tmp_path
):
    settings.JOB_STALE_AFTER_S = 5
    settings.DATA_DIR = tmp_path / "data"
    settings.COPY_DRAFT_CHUNK_SIZE = CHUNK
    shop = copy_shop_create()
    marker = tmp_path / "hanging-chunk"
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "COPY_DRAFT_CHUNK_SIZE": str(CHUNK),
        "COPY_DRAFT_PARALLEL": "1",
    }
    worker_process.start(
        module="tests.integration.hanging_drafting_worker",
        env={**env, "HANG_AT_CHUNK": "2", "HANG_MARKER": str(marker)},
    )
    first_pid = worker_process.proc.pid
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)

    wait_for(marker.exists, timeout=60, interval=0.05, what="the second chunk to hang")
    assert int(marker.read_text()) == 1
    first = set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert len(first) == CHUNK * 4  # chunk 0 committed; chunk 1's drafts are not visible
    worker_process.kill()
    worker_process.start(env=env)

    job = finished(job, timeout=60)
    assert job.attempts == 2, worker_process.log()
    assert (
        job.worker.endswith(f":{worker_process.proc.pid}") and worker_process.proc.pid != first_pid
    )
    assert first <= set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert_drafted_once(brief, shop, job)


@pytest.mark.worker
def test_a_database_restart_mid_chunk_leaves_each_draft_once(
    shop, marketer, pg_proxy, worker_process, tmp_path
):
    """PostgreSQL restarts while the second chunk's drafts are written, not committed: the
    chunk rolls back, the task retries while the database is away, and the first retry once
    it is back releases the cut attempt's claim and drafts the chunks not done."""
    marker, release = tmp_path / "paused-chunk", tmp_path / "go-on"
    worker_process.start(
        module="tests.integration.hanging_drafting_worker",
        env={
            "DATABASE_URL": pg_proxy.database_url(),
            "DATA_DIR": str(tmp_path / "data"),
            "COPY_DRAFT_CHUNK_SIZE": str(CHUNK),
            "COPY_DRAFT_PARALLEL": "1",
            "HANG_AT_CHUNK": "2",
            "HANG_MARKER": str(marker),
            "HANG_RELEASE": str(release),
        },
    )
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    wait_for(marker.exists, timeout=60, interval=0.05, what="the second chunk to pause")
    assert int(marker.read_text()) == 1
    first = set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert len(first) == CHUNK * 4  # chunk 0 committed; chunk 1's drafts are not visible

    cut_paused_worker(pg_proxy, worker_process, release)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1), worker_process.log()
    assert f"{CUT} (OperationalError); retrying in" in worker_process.log()
    assert set(Draft.objects.filter(brief=brief).values_list("pk", flat=True)) == first
    assert list(DraftChunk.objects.filter(job=job, done=True).values_list("index", flat=True)) == [
        0
    ]

    pg_proxy.start()
    job = finished(job, timeout=60)

    assert job.attempts == 2, worker_process.log()  # the retry released the cut claim
    assert job.worker.endswith(f":{worker_process.proc.pid}")
    assert first <= set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert_drafted_once(brief, shop, job)
