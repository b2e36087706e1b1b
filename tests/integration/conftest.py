"""Real Celery workers on the real broker (Redis in CI) against the test database.

`celery_worker` runs a worker thread in this process (fast); `worker_process` starts a
separate `celery worker` process, for tests that kill it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from marketing.celery import app as celery_app
from tests.roles import role_group

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _roles(transactional_db, settings) -> None:
    """Role groups again: transactional tests flush every table, the data migration's too."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    for role in ("admin", "marketer", "approver"):
        role_group(role)


def _require_real_services() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("integration tests run on PostgreSQL (set DATABASE_URL; `make test` does)")
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("integration tests need a Redis or RabbitMQ broker (CELERY_BROKER_URL)")


@pytest.fixture
def celery_worker(transactional_db) -> Iterator[object]:
    """A worker thread consuming from the configured broker."""
    _require_real_services()
    from celery.contrib.testing.worker import start_worker

    celery_app.control.purge()
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as worker:
        yield worker


def worker_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = os.environ.copy()
    env.update(
        {
            "DATABASE_URL": f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "JOB_STALE_AFTER_S": str(settings.JOB_STALE_AFTER_S),
            "IMPORT_CHUNK_ROWS": str(settings.IMPORT_CHUNK_ROWS),
        }
    )
    return env


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL if the process is still there after 20 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class WorkerProcess:
    """A `celery worker` subprocess that a test can start, kill and start again."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(
        self, *, pool: str = "solo", module: str = "celery", env: dict[str, str] | None = None
    ) -> None:
        """Start the worker; pool="prefork" runs tasks in one child process (as production).
        module: what `python -m` runs with the celery arguments (a wrapper that patches the
        worker before starting it); env: variables added to `worker_env()`."""
        self.starts += 1
        log = (self.log_dir / f"worker-{self.starts}.log").open("wb")
        pool_args = ["--pool", pool] + (["--concurrency", "1"] if pool == "prefork" else [])
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "-A",
                "marketing",
                "worker",
                *pool_args,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"test{self.starts}@%h",
            ],
            cwd=ROOT,
            env={**worker_env(), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))


def _forget_unacked() -> None:
    """Drop messages a killed worker left unacknowledged. Redis hands them out again once the
    visibility timeout has passed, which could be in a later run whose job ids are the same."""
    with celery_app.connection_for_write() as conn:
        channel = conn.default_channel
        if hasattr(channel, "unacked_key"):
            channel.client.delete(channel.unacked_key, channel.unacked_index_key)


@pytest.fixture
def worker_process(transactional_db, tmp_path) -> Iterator[WorkerProcess]:
    _require_real_services()
    celery_app.control.purge()
    worker = WorkerProcess(tmp_path)
    try:
        yield worker
    finally:
        worker.stop()
        _forget_unacked()


@pytest.fixture
def pg_proxy(transactional_db) -> Iterator[object]:
    """A running `pg_proxy.PgProxy` in front of the test database, for tests that restart
    PostgreSQL under the processes they start (their DATABASE_URL: `database_url()`)."""
    from tests.integration.pg_proxy import PgProxy  # it imports this module

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the restart is of PostgreSQL (set DATABASE_URL; `make test` does)")
    proxy = PgProxy.for_test_database()
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


UNREACHABLE_BROKER_URL = "redis://127.0.0.1:1/0"


def _forget_pools() -> None:
    """Drop (not close: kombu keeps them in a registry per URL) the app's cached connection
    and producer pools, so the next send connects to the broker URL configured now."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def broker_unreachable() -> Iterator[str]:
    """Point the Celery app at a closed port until the block ends, then at the real broker
    again. Celery prefers the CELERY_BROKER_URL environment variable over its conf, so both
    change. A worker subprocess started meanwhile still gets the real broker (worker_env)."""
    saved_env = os.environ.get("CELERY_BROKER_URL")
    saved_conf = celery_app.conf.broker_url
    os.environ["CELERY_BROKER_URL"] = UNREACHABLE_BROKER_URL
    celery_app.conf.broker_url = UNREACHABLE_BROKER_URL
    _forget_pools()
    try:
        assert celery_app.connection_for_write().port == 1
        yield UNREACHABLE_BROKER_URL
    finally:
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        celery_app.conf.broker_url = saved_conf
        _forget_pools()


@pytest.fixture
def unreachable_broker() -> Iterator[str]:
    """The broker cannot be reached for the whole test (see `broker_unreachable`)."""
    with broker_unreachable() as url:
        yield url


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
