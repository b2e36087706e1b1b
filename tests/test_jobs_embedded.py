"""Embedded mode (SQLite): the web stays usable while an import holds the write lock; settings
that decide the mode (secret key, sessions); answers for a busy database and for htmx requests
whose session expired."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import SESSION_KEY
from django.db import OperationalError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from marketing.models import Job
from marketing.services import jobs as job_services
from marketing.services.jobs import JobCancelled, ProgressReporter, job_mark_cancelled
from tests.factories import JobFactory

ROOT = Path(__file__).resolve().parents[1]
HX = {"HTTP_HX_REQUEST": "true"}
BUSY = "An import is writing to the database; try again in a moment."


# --- settings ------------------------------------------------------------------------------------


def settings_in_subprocess(tmp_path: Path, *names: str, **env: str) -> subprocess.CompletedProcess:
    """Load marketing.settings in a fresh interpreter with exactly this environment."""
    ours = {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "REQUIRE_SECRET_KEY", "DEBUG"}
    ours |= {"DATABASE_URL", "CELERY_BROKER_URL", "MAX_JOB_ATTEMPTS", "CACHE_LOCATION"}
    base = {k: v for k, v in os.environ.items() if k not in ours}
    base.update({"DATA_DIR": str(tmp_path / "data"), **env})
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'marketing.settings'\n"
        "from django.conf import settings\n"
        + "".join(f"print(settings.{name})\n" for name in names)
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True
    )


def test_without_secret_key_a_private_key_is_made_once_and_kept(tmp_path):
    first = settings_in_subprocess(tmp_path, "SECRET_KEY")
    second = settings_in_subprocess(tmp_path, "SECRET_KEY")

    key_file = tmp_path / "data" / ".secret_key"
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.strip() == key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "SECRET_KEY not set: using a generated key from" in first.stderr
    assert "set SECRET_KEY in production" in first.stderr


def test_a_readable_key_file_is_made_private(tmp_path):
    key_file = tmp_path / "data" / ".secret_key"
    key_file.parent.mkdir()
    key_file.write_text("k" * 50)
    key_file.chmod(0o644)

    result = settings_in_subprocess(tmp_path, "SECRET_KEY")

    assert result.stdout.strip() == "k" * 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_key_that_cannot_be_kept_stops_the_start(tmp_path):
    (tmp_path / "not-a-dir").write_text("")

    result = settings_in_subprocess(tmp_path, "SECRET_KEY", DATA_DIR=str(tmp_path / "not-a-dir"))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "cannot be written or read" in result.stderr


def test_require_secret_key_refuses_to_generate_one(tmp_path):
    result = settings_in_subprocess(tmp_path, "SECRET_KEY", REQUIRE_SECRET_KEY="1", DEBUG="1")

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
    assert not (tmp_path / "data" / ".secret_key").exists()


def test_a_given_secret_key_is_used_and_no_file_is_made(tmp_path):
    result = settings_in_subprocess(
        tmp_path, "SECRET_KEY", SECRET_KEY="from-the-env", REQUIRE_SECRET_KEY="1"
    )

    assert result.stdout.strip() == "from-the-env"
    assert not (tmp_path / "data" / ".secret_key").exists()
    assert "SECRET_KEY not set" not in result.stderr


def test_sessions_live_in_signed_cookies_on_sqlite_and_in_the_database_on_postgresql(tmp_path):
    sqlite = settings_in_subprocess(tmp_path, "SESSION_ENGINE", SECRET_KEY="x")
    postgres = settings_in_subprocess(
        tmp_path, "SESSION_ENGINE", SECRET_KEY="x", DATABASE_URL="postgres://u@127.0.0.1:1/none"
    )

    assert sqlite.stdout.strip() == "django.contrib.sessions.backends.signed_cookies"
    assert postgres.stdout.strip() == "django.contrib.sessions.backends.db"


def test_max_job_attempts_defaults_to_three_and_must_be_positive(tmp_path):
    default = settings_in_subprocess(tmp_path, "MAX_JOB_ATTEMPTS", SECRET_KEY="x")
    bad = settings_in_subprocess(tmp_path, "MAX_JOB_ATTEMPTS", SECRET_KEY="x", MAX_JOB_ATTEMPTS="0")

    assert default.stdout.strip() == "3"
    assert bad.returncode != 0
    assert "MAX_JOB_ATTEMPTS must be at least 1" in bad.stderr


# --- a busy database answers 503 -----------------------------------------------------------------


@pytest.fixture
def locked_view(monkeypatch):
    """The job page fails as a write does while SQLite's lock is held elsewhere."""

    def locked(job):
        raise OperationalError("database is locked")

    monkeypatch.setattr(job_services, "job_live_progress", locked)


@pytest.mark.django_db
def test_a_locked_database_gives_a_friendly_503(client, marketer, locked_view):
    job = JobFactory()
    client.force_login(marketer)

    response = client.get(job.get_absolute_url())

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.content.decode()
    assert BUSY in body
    assert "<html" in body  # the site's page, with its navigation


@pytest.mark.django_db
def test_a_locked_database_gives_htmx_a_short_503(client, marketer, locked_view):
    job = JobFactory()
    client.force_login(marketer)

    response = client.get(reverse("marketing:job-status", args=[job.pk]), **HX)

    assert response.status_code == 503
    assert response.content.decode() == BUSY


@pytest.mark.django_db
def test_other_database_errors_are_not_disguised(client, marketer, monkeypatch):
    def broken(job):
        raise OperationalError("no such table: marketing_job")

    monkeypatch.setattr(job_services, "job_live_progress", broken)
    client.force_login(marketer)
    client.raise_request_exception = False

    response = client.get(JobFactory().get_absolute_url())

    assert response.status_code == 500


# --- htmx requests after the session expired -----------------------------------------------------


@pytest.mark.django_db
def test_htmx_poll_without_a_session_redirects_the_whole_page_to_login(client):
    job = JobFactory(status=Job.Status.RUNNING)

    response = client.get(
        reverse("marketing:job-status", args=[job.pk]),
        HTTP_HX_CURRENT_URL=f"http://testserver/jobs/{job.pk}/",
        **HX,
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/accounts/login/?next=/jobs/{job.pk}/"
    assert b"<form" not in response.content  # no login page swapped into the card


@pytest.mark.django_db
def test_htmx_redirect_never_leads_to_another_site(client):
    job = JobFactory(status=Job.Status.RUNNING)

    response = client.get(
        reverse("marketing:job-status", args=[job.pk]),
        HTTP_HX_CURRENT_URL="https://evil.test/phish",
        **HX,
    )

    assert response["HX-Redirect"] == "/accounts/login/?next=/"


@pytest.mark.django_db
def test_plain_requests_without_a_session_still_get_the_login_redirect(client):
    job = JobFactory()

    response = client.get(job.get_absolute_url())

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/jobs/{job.pk}/"


# --- an import holds SQLite's write lock ---------------------------------------------------------


class ImportHoldingTheLock:
    """A worker thread inside an import's transaction on SQLite: it takes the write lock, then
    reports progress each time the test calls advance(), until it notices a cancel request.
    Leaving the block lets it commit."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.locked, self.step, self.stepped = (threading.Event() for _ in range(3))
        self.finish = threading.Event()
        self.outcome = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        report = ProgressReporter(self.job_id, interval_s=0)
        try:
            with transaction.atomic():  # BEGIN IMMEDIATE: the database's only write lock
                Job.objects.filter(pk=self.job_id).update(message="Importing")
                self.locked.set()
                done = 0
                while self.step.wait(20) and not self.finish.is_set():
                    self.step.clear()
                    done += 1
                    report(done, 100, f"Read {done} rows")
                    self.stepped.set()
            self.outcome = "committed"
        except JobCancelled:
            job_mark_cancelled(job_id=self.job_id)
            self.outcome = "cancelled"
        finally:
            connection.close()
            self.stepped.set()

    def __enter__(self):
        self.thread.start()
        assert self.locked.wait(10)
        return self

    def advance(self) -> None:
        self.stepped.clear()
        self.step.set()
        assert self.stepped.wait(10)

    def __exit__(self, *exc) -> None:
        self.finish.set()
        self.step.set()
        self.thread.join(10)


@pytest.mark.django_db(transaction=True)
def test_login_status_and_cancel_keep_working_while_an_import_holds_the_sqlite_lock(
    client, marketer
):
    if connection.vendor != "sqlite":
        pytest.skip("the single write lock is SQLite's (embedded mode)")
    now = timezone.now()
    job = JobFactory(
        status=Job.Status.RUNNING, attempts=1, started_at=now, heartbeat_at=now, worker="w:1"
    )
    status_url = reverse("marketing:job-status", args=[job.pk])

    with ImportHoldingTheLock(job.pk) as importing:
        importing.advance()

        started = time.monotonic()
        response = client.post(
            reverse("login"), {"username": "mary", "password": "pw-mary"}, follow=False
        )
        assert response.status_code == 302, response.content.decode()[:500]
        assert client.session[SESSION_KEY] == str(marketer.pk)

        status = client.get(status_url, **HX)
        assert status.status_code == 200
        assert "Read 1 rows" in status.content.decode()

        cancel = client.post(reverse("marketing:job-cancel", args=[job.pk]), **HX)
        assert cancel.status_code == 200
        assert "Cancelling…" in cancel.content.decode()
        assert time.monotonic() - started < 10  # nothing waited for the 30 s lock timeout

        assert "Cancelling…" in client.get(status_url, **HX).content.decode()
        importing.advance()  # the worker's next progress report notices the request

    assert importing.outcome == "cancelled"
    job.refresh_from_db()
    assert (job.status, job.message) == (Job.Status.CANCELLED, "Cancelled; nothing was changed")
    assert client.get(status_url, **HX).status_code == 286  # polling stops


@pytest.mark.django_db(transaction=True)
def test_a_write_while_an_import_holds_the_sqlite_lock_gets_the_busy_page(client, admin_user):
    if connection.vendor != "sqlite":
        pytest.skip("the single write lock is SQLite's (embedded mode)")
    job = JobFactory(status=Job.Status.RUNNING, attempts=1, heartbeat_at=timezone.now())
    client.force_login(admin_user)

    with ImportHoldingTheLock(job.pk), job_services.sqlite_busy_timeout(100):
        response = client.post(
            reverse("marketing:catalog-create"),
            {
                "name": "Garden",
                "currency": "GBP",
                "default_language": "en",
                "timezone": "UTC",
                "non_product_patterns": "",
            },
        )

    assert response.status_code == 503
    assert BUSY in response.content.decode()
