"""A database that cannot be reached (PostgreSQL restarting): which errors count as that, the
503 that pages answer meanwhile, and how a job's task retries until the database is back.
The real restart, with a web server and a worker behind a proxy, is in
tests/integration/test_database_restart.py."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from psycopg import errors as pg_errors

from api.auth import TOKEN_PREFIX
from marketing.middleware import UNREACHABLE_MESSAGE
from marketing.models import Job
from marketing.services import imports
from marketing.services import jobs as job_services
from marketing.services.jobs import (
    is_database_unreachable,
    job_claim,
    job_heartbeat,
    job_release_interrupted,
)
from marketing.tasks import RETRY_STATE, import_run_task
from tests.factories import JobFactory


def wrapped(driver_error: Exception) -> OperationalError:
    """Django's OperationalError around a driver error, as Django raises it."""
    error = OperationalError(str(driver_error))
    error.__cause__ = driver_error
    return error


CLOSED = psycopg.OperationalError("consuming input failed: server closed the connection")
REFUSED = psycopg.OperationalError('connection failed: connection to server at "10.0.0.1" failed')


# --- which errors mean "unreachable" --------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        CLOSED,  # raw, as a COPY through the driver's cursor raises it
        wrapped(REFUSED),
        wrapped(pg_errors.AdminShutdown("terminating connection due to administrator command")),
        wrapped(pg_errors.CannotConnectNow("the database system is starting up")),
        wrapped(pg_errors.ConnectionFailure("connection failure")),  # SQLSTATE class 08
    ],
    ids=["closed", "refused", "admin-shutdown", "starting-up", "class-08"],
)
def test_lost_or_refused_connections_are_unreachable(error):
    assert is_database_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(pg_errors.DeadlockDetected("deadlock detected")),
        wrapped(pg_errors.QueryCanceled("canceling statement due to statement timeout")),
        wrapped(pg_errors.InvalidCatalogName('database "nope" does not exist')),
        OperationalError("database is locked"),  # SQLite, no driver error behind it
        OperationalError("server closed the connection"),  # raised by hand, no driver error
        ValueError("closed"),
    ],
    ids=["deadlock", "timeout", "no-such-database", "sqlite-locked", "bare", "other"],
)
def test_errors_of_one_statement_or_of_the_setup_are_not(error):
    assert not is_database_unreachable(error)


# --- pages -------------------------------------------------------------------------------------

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def unreachable_view(monkeypatch):
    """The job page's view loses the database (its user was loaded before)."""

    def lost(job):
        raise wrapped(CLOSED)

    monkeypatch.setattr(job_services, "job_live_progress", lost)


@pytest.mark.django_db
def test_a_page_that_loses_the_database_answers_a_clear_503(
    client, marketer, unreachable_view, caplog
):
    job = JobFactory()
    client.force_login(marketer)

    response = client.get(job.get_absolute_url())

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    body = response.content.decode()
    assert UNREACHABLE_MESSAGE in body and "<html" in body
    assert marketer.username not in body  # rendered without the user: no database needed
    assert f'href="{job.get_absolute_url()}"' in body  # "Try again"
    assert f"database unreachable (OperationalError): GET /jobs/{job.pk}/ answered 503" in (
        caplog.text
    )
    assert "10.0.0.1" not in caplog.text  # the driver's message is not logged


@pytest.mark.django_db
def test_htmx_gets_the_message_alone(client, marketer, unreachable_view):
    client.force_login(marketer)

    response = client.get(reverse("marketing:job-status", args=[JobFactory().pk]), **HX)

    assert response.status_code == 503
    assert response.content.decode() == UNREACHABLE_MESSAGE


@pytest.mark.django_db
def test_loading_the_user_itself_fails_into_the_503_not_a_500(client, marketer, monkeypatch):
    """The session and user are loaded before the view (LoginRequiredMiddleware asks)."""
    client.force_login(marketer)

    def lost(request):
        raise wrapped(REFUSED)

    monkeypatch.setattr("django.contrib.auth.get_user", lost)

    page = client.get(reverse("marketing:catalog-list"))
    health = client.get(reverse("marketing:health"))  # public: it loads no user

    assert page.status_code == 503
    assert page["Retry-After"] == "10"
    assert UNREACHABLE_MESSAGE in page.content.decode()
    assert health.json()["database"]["ok"] is True  # its own check decides, not the session


@pytest.mark.django_db
def test_the_api_gets_json(client, monkeypatch):
    def lost():
        raise wrapped(CLOSED)

    monkeypatch.setattr("api.auth._token_base", lost)

    response = client.get(
        reverse("api:brief-content", args=[1]),
        HTTP_AUTHORIZATION=f"Bearer {TOKEN_PREFIX}not-a-real-one",
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.json() == {"error": "unavailable", "message": UNREACHABLE_MESSAGE}


@pytest.mark.django_db
def test_other_database_errors_stay_errors(client, marketer, monkeypatch):
    def deadlock(job):
        raise wrapped(pg_errors.DeadlockDetected("deadlock detected"))

    monkeypatch.setattr(job_services, "job_live_progress", deadlock)
    client.force_login(marketer)
    client.raise_request_exception = False

    response = client.get(JobFactory().get_absolute_url())

    assert response.status_code == 500


# --- jobs --------------------------------------------------------------------------------------


def _running(**fields) -> Job:
    now = timezone.now()
    values = {"attempts": 1, "worker": "host:1", "started_at": now, "heartbeat_at": now}
    return JobFactory(status=Job.Status.RUNNING, **{**values, **fields})


@pytest.mark.django_db
def test_releasing_an_interrupted_claim_frees_exactly_that_claim():
    job = _running(worker="host:1", attempts=2)

    assert not job_release_interrupted(job_id=job.pk, worker="host:1", attempt=1)  # an older one
    assert not job_release_interrupted(job_id=job.pk, worker="host:2", attempt=2)
    job.refresh_from_db()
    assert job.heartbeat_at is not None

    assert job_release_interrupted(job_id=job.pk, worker="host:1", attempt=2)
    job.refresh_from_db()
    assert (job.status, job.heartbeat_at) == (Job.Status.RUNNING, None)
    assert job.message == "The database connection was lost; retrying"
    assert job_claim(job_id=job.pk, worker="host:3").attempts == 3


class _Retried(Exception):
    def __init__(self, kwargs: dict, countdown: float) -> None:
        self.kwargs, self.countdown = kwargs, countdown


@pytest.fixture
def retries(monkeypatch) -> list[_Retried]:
    """What import_run_task's retries would send (instead of sending them)."""
    sent: list[_Retried] = []

    def retry(*, args, kwargs, exc, countdown, max_retries, throw):
        assert max_retries is None and throw is False  # our budget, not Celery's
        sent.append(_Retried(kwargs, countdown))
        return sent[-1]

    monkeypatch.setattr(import_run_task, "retry", retry)
    return sent


@pytest.mark.django_db
def test_a_task_cut_off_from_the_database_retries_and_its_retry_releases_the_claim(
    monkeypatch, retries
):
    """The attempt claims the job, then loses the database and cannot release the job; the
    retry names the claim, frees it first and runs the job again."""
    job = JobFactory(status=Job.Status.QUEUED)
    ran: list[int] = []

    def cut(*, job_id, worker, celery_id):
        ran.append(job_claim(job_id=job_id, worker=worker, celery_id=celery_id).attempts)
        if len(ran) == 1:
            raise CLOSED  # the release failed too: the job stays running, heartbeat fresh

    monkeypatch.setattr(imports, "import_run", cut)

    with pytest.raises(_Retried):
        import_run_task(job.pk)
    (first,) = retries
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1)
    assert first.kwargs == {RETRY_STATE: {"worker": job.worker, "attempt": 1}}
    assert 0.5 <= first.countdown <= 1.0

    import_run_task(job.pk, **first.kwargs)

    assert ran == [1, 2]
    assert len(retries) == 1


@pytest.mark.django_db
def test_an_unreachable_database_is_waited_for_without_spending_attempts(monkeypatch, retries):
    job = JobFactory(status=Job.Status.QUEUED)

    def refused(**_):
        raise wrapped(REFUSED)  # before the claim: the database never answered

    monkeypatch.setattr(imports, "import_run", refused)
    state: dict = {}
    for _ in range(6):
        with pytest.raises(_Retried):
            import_run_task(job.pk, **state)
        state = retries[-1].kwargs

    assert len(retries) == 6
    assert state == {RETRY_STATE: {}}  # no claim to release, no other error counted
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.QUEUED, 0)


@pytest.mark.django_db
def test_other_transient_errors_are_retried_max_job_attempts_times(monkeypatch, retries, settings):
    settings.MAX_JOB_ATTEMPTS = 3
    job = JobFactory(status=Job.Status.QUEUED)
    deadlock = wrapped(pg_errors.DeadlockDetected("deadlock detected"))

    def deadlocked(**_):
        raise deadlock

    monkeypatch.setattr(imports, "import_run", deadlocked)
    state: dict = {}
    for _ in range(2):
        with pytest.raises(_Retried):
            import_run_task(job.pk, **state)
        state = retries[-1].kwargs

    with pytest.raises(OperationalError) as raised:
        import_run_task(job.pk, **state)

    assert raised.value is deadlock  # to Celery, whose on_failure fails the job
    assert [r.kwargs[RETRY_STATE]["errors"] for r in retries] == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_the_job_heartbeat_survives_the_database_going_away(monkeypatch):
    job = _running(heartbeat_at=None)
    calls = {"n": 0}
    real_filter = Job.objects.filter
    beat_twice = threading.Event()

    def flaky_filter(*args, **kwargs):
        if threading.current_thread().name.startswith("job-"):
            calls["n"] += 1
            if calls["n"] == 1:
                raise wrapped(CLOSED)
            if calls["n"] >= 3:
                beat_twice.set()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(Job.objects, "filter", flaky_filter)

    with job_heartbeat(job.pk, every_s=0.05):
        assert beat_twice.wait(10), "the heartbeat thread died with the first error"

    job.refresh_from_db()
    assert job.heartbeat_at is not None
