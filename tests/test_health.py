"""GET /health/: database, broker and worker heartbeats; 503 only when the database is down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import OperationalError
from django.urls import reverse

from marketing.services import heartbeats
from marketing.services.heartbeats import (
    HEARTBEAT_STALE_S,
    worker_heartbeat_beat,
    worker_heartbeat_start,
    worker_heartbeat_stop,
    worker_heartbeats,
)
from marketing.views import health

pytestmark = pytest.mark.django_db

URL = reverse("marketing:health")
ROOT = Path(__file__).resolve().parents[1]
CLOSED_PORT_BROKER = "redis://:s3cret-pw@127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _own_cache(settings, tmp_path):
    """Heartbeats of this test only (a file cache a worker subprocess can share)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }


@pytest.fixture
def redis_broker(settings):
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        pytest.skip("needs a Redis broker (CELERY_BROKER_URL); `make test` has one")
    return settings.CELERY_BROKER_URL


def get(client) -> tuple[int, dict]:
    response = client.get(URL)
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_all_well_is_ok_without_logging_in(client, redis_broker):
    worker_heartbeat_beat(name="tailor@host-a")
    status, body = get(client)
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["database"]["latency_ms"] >= 0
    assert body["broker"] == {
        "ok": True,
        "latency_ms": body["broker"]["latency_ms"],
        "transport": "redis",
    }
    assert [w["name"] for w in body["workers"]] == ["tailor@host-a"]
    assert body["workers"][0]["last_heartbeat_s"] < 5 and body["workers"][0]["ok"] is True


def test_broker_down_is_degraded_quickly_and_names_no_secret(client, settings):
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    worker_heartbeat_beat(name="tailor@host-a")
    started = time.monotonic()
    response = client.get(URL)
    assert time.monotonic() - started < health.BROKER_TIMEOUT_S + 1
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is False and body["broker"]["transport"] == "redis"
    assert body["broker"]["latency_ms"] is None
    text = response.content.decode()
    assert "s3cret" not in text and "127.0.0.1" not in text


def test_no_workers_is_degraded(client, redis_broker):
    status, body = get(client)
    assert (status, body["status"], body["workers"]) == (200, "degraded", [])


def test_a_silent_worker_is_listed_with_its_age_and_degrades(client, redis_broker):
    worker_heartbeat_beat(name="tailor@gone", now=time.time() - HEARTBEAT_STALE_S - 30)
    status, body = get(client)
    assert status == 200 and body["status"] == "degraded"
    (gone,) = body["workers"]
    assert gone["name"] == "tailor@gone" and gone["ok"] is False
    assert gone["last_heartbeat_s"] >= HEARTBEAT_STALE_S + 30


def test_one_live_worker_is_enough(client, redis_broker):
    worker_heartbeat_beat(name="tailor@gone", now=time.time() - HEARTBEAT_STALE_S - 30)
    worker_heartbeat_beat(name="tailor@alive")
    status, body = get(client)
    assert body["status"] == "ok"
    assert [w["name"] for w in body["workers"]] == ["tailor@alive", "tailor@gone"]


def test_database_down_is_503(client, monkeypatch, redis_broker):
    class DeadConnection:
        def cursor(self):
            raise OperationalError("connection refused (host db.internal, user tailor)")

    monkeypatch.setattr(health, "connection", DeadConnection())
    worker_heartbeat_beat(name="tailor@host-a")
    status, body = get(client)
    assert status == 503
    assert body["status"] == "down"
    assert body["database"] == {"ok": False, "latency_ms": None, "error": "OperationalError"}
    assert "db.internal" not in str(body)


def test_unreadable_heartbeats_are_degraded_not_an_error(client, monkeypatch, redis_broker):
    def broken(**_):
        raise ConnectionError("cache down")

    monkeypatch.setattr(health, "worker_heartbeats", broken)
    status, body = get(client)
    assert (status, body["status"], body["workers"]) == (200, "degraded", [])
    assert body["workers_error"] == "heartbeats unreadable"


def test_embedded_filesystem_broker_says_so(client, settings, tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(queue)}
    worker_heartbeat_beat(name="tailor@laptop")
    status, body = get(client)
    assert status == 200 and body["status"] == "ok"
    assert body["broker"]["ok"] is True
    assert body["broker"]["transport"] == "filesystem" and body["broker"]["embedded"] is True


def test_only_reads(client):
    assert client.post(URL).status_code == 405


# --- the heartbeat itself --------------------------------------------------------------------


def test_the_heartbeat_thread_beats_and_leaves_on_stop():
    worker_heartbeat_start(name="tailor@thread", every_s=0.05)
    try:
        worker_heartbeat_start(name="tailor@second", every_s=0.05)  # one per process
        deadline = time.monotonic() + 5
        while not worker_heartbeats() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [b.name for b in worker_heartbeats()] == ["tailor@thread"]
    finally:
        worker_heartbeat_stop()
    assert worker_heartbeats() == []
    assert heartbeats._beater is None
    worker_heartbeat_stop()  # stopping twice changes nothing


def test_the_heartbeat_thread_sweeps_on_its_own_schedule_and_survives_a_failed_sweep():
    calls: list[float] = []

    def sweep() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database down")  # logged; the thread goes on

    worker_heartbeat_start(name="tailor@sweeper", every_s=10, sweep=sweep, sweep_every_s=0.05)
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(calls) >= 3
        assert heartbeats._beater is not None and heartbeats._beater.thread.is_alive()
    finally:
        worker_heartbeat_stop()


def test_expired_workers_leave_the_index():
    worker_heartbeat_beat(name="a")
    worker_heartbeat_beat(name="b")
    heartbeats.cache.delete(heartbeats._key("a"))  # its entry expired
    worker_heartbeat_beat(name="b")
    assert heartbeats.cache.get(heartbeats._INDEX_KEY) == ["b"]


def test_a_real_worker_beats_from_start_until_a_warm_shutdown(client, redis_broker, tmp_path):
    """The signals wire it up: `celery worker` appears in /health/ and leaves on SIGTERM."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": redis_broker,
        "CACHE_BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "CACHE_LOCATION": settings.CACHES["default"]["LOCATION"],
    }
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the worker subprocess reaches the test database on PostgreSQL only")
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "marketing", "worker", "--pool", "solo"]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        + ["-Q", "health-test-idle", "-n", "health-test@%h", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        names: list[str] = []
        while time.monotonic() < deadline and not names:
            time.sleep(0.2)
            names = [w["name"] for w in client.get(URL).json()["workers"]]
        assert names and names[0].startswith("health-test@"), (tmp_path / "worker.log").read_text()
        assert client.get(URL).json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert client.get(URL).json()["workers"] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
