"""PostgreSQL restarts while the site runs: pages answer a clear 503 meanwhile and work again by
themselves afterwards; an import cut half way ends exactly once (or fails clearly), never
half-written and never stuck running.

The restart is a proxy between the processes under test and the server (pg_proxy): stopping
it cuts every connection and refuses new ones, as a restarting server does to its clients.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse

from marketing.middleware import UNREACHABLE_MESSAGE
from marketing.models import Event, Job
from tests.factories import CatalogFactory
from tests.integration.conftest import wait_for
from tests.integration.import_support import (
    CUSTOMERS,
    PRODUCTS,
    event_rows,
    event_table_schema,
    finished,
    run_inline,
    snapshot,
    start,
    succeeded,
)
from tests.integration.pg_proxy import CUT, WebServer, cut_paused_worker

pytestmark = pytest.mark.django_db(transaction=True)

HX = {"HX-Request": "true"}


@pytest.fixture
def web(pg_proxy, tmp_path) -> Iterator[WebServer]:
    server = WebServer(tmp_path)
    yield server
    server.stop()


def _session_of(user) -> dict[str, str]:
    """A logged-in session stored in the test database, as cookies for the web server."""
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def _get(web: WebServer, path: str, cookies: dict, **headers: str) -> requests.Response:
    return requests.get(
        web.url + path, cookies=cookies, headers=headers, allow_redirects=False, timeout=30
    )


def _log_in(web: WebServer, username: str) -> requests.Response:
    """Post the login form (its page needs no database: an anonymous visitor has no session)."""
    session = requests.Session()
    form = session.get(web.url + reverse("login"), timeout=30)
    assert form.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return session.post(
        web.url + reverse("login"),
        data={"username": username, "password": "pw-" + username, "csrfmiddlewaretoken": token},
        headers={"Referer": web.url + reverse("login")},
        allow_redirects=False,
        timeout=30,
    )


def _assert_unavailable_page(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert response.headers["Retry-After"] == "10"
    assert response.headers["Content-Type"].startswith("text/html")
    body = response.text
    assert "<html" in body  # the site's page, without the navigation that needs the user
    assert "Database unavailable" in body
    assert UNREACHABLE_MESSAGE in body
    assert "Traceback" not in body and "Server Error" not in body


@pytest.mark.parametrize("conn_max_age", ["0", "60"], ids=["new-connections", "persistent"])
def test_pages_answer_503_while_the_database_is_away_and_work_again_after(
    web, pg_proxy, marketer, conn_max_age
):
    web.start(env={"DATABASE_URL": pg_proxy.database_url(), "DB_CONN_MAX_AGE": conn_max_age})
    cookies = _session_of(marketer)
    page = reverse("marketing:catalog-list")
    assert _get(web, page, cookies).status_code == 200

    pg_proxy.stop()
    full = _get(web, page, cookies)
    fragment = _get(web, page, cookies, **HX)
    health = _get(web, reverse("marketing:health"), cookies)  # a session it must not load
    login = _log_in(web, marketer.username)

    _assert_unavailable_page(full)
    _assert_unavailable_page(login)
    assert fragment.status_code == 503
    assert fragment.headers["Retry-After"] == "10"
    assert fragment.text == UNREACHABLE_MESSAGE
    assert health.status_code == 503
    assert health.json()["status"] == "down"
    assert health.json()["database"] == {
        "ok": False,
        "latency_ms": None,
        "error": "OperationalError",
    }

    pg_proxy.start()
    again = _get(web, page, cookies)
    fragment = _get(web, page, cookies, **HX)

    assert again.status_code == 200, again.text[:500]
    assert "Catalogs" in again.text and marketer.username in again.text
    assert fragment.status_code == 200
    assert _get(web, reverse("marketing:health"), {}).json()["database"]["ok"] is True
    log = web.log()
    assert "database unreachable (OperationalError): GET /catalogs/ answered 503" in log
    assert "Traceback" not in log
    assert "Internal Server Error" not in log
    assert "Service Unavailable: /catalogs/" not in log  # our warning says it (/health/ may)


def test_a_persistent_connection_cut_between_two_requests_is_replaced_unnoticed(
    web, pg_proxy, marketer
):
    """The restart happens while no request runs: the next one finds its kept connection dead.
    CONN_HEALTH_CHECKS makes Django notice and connect anew instead of failing that request."""
    web.start(env={"DATABASE_URL": pg_proxy.database_url(), "DB_CONN_MAX_AGE": "600"})
    cookies = _session_of(marketer)
    page = reverse("marketing:catalog-list")
    assert _get(web, page, cookies).status_code == 200
    connections = pg_proxy.connections

    pg_proxy.stop()
    pg_proxy.start()
    response = _get(web, page, cookies)

    assert response.status_code == 200, response.text[:500]
    assert pg_proxy.connections == connections + 1  # the dead one was replaced
    assert "Traceback" not in web.log()


# --- jobs -------------------------------------------------------------------------------------

EVENTS = 300


@pytest.fixture
def catalog(marketer):
    """A catalog with products and customers (imported in this process, not through the proxy)."""
    catalog = CatalogFactory()
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS))
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS))
    return catalog


def _cut_an_import_half_way(catalog, marketer, pg_proxy, worker_process, tmp_path, **env) -> Job:
    """Start an events import on a worker behind the proxy, pause it at its third chunk (two
    are written, uncommitted), restart the "server" and let the import go on into the cut;
    return once the worker retried three times against the stopped proxy."""
    marker, release = tmp_path / "paused", tmp_path / "go-on"
    worker_process.start(
        module="tests.integration.pausing_import_worker",
        env={
            "DATABASE_URL": pg_proxy.database_url(),
            "IMPORT_CHUNK_ROWS": "50",
            "PAUSE_AT_CHUNK": "3",
            "PAUSE_MARKER": str(marker),
            "PAUSE_RELEASE": str(release),
            **env,
        },
    )
    job = start(catalog, marketer, "events", event_rows(EVENTS, customers=2), "events.csv")
    wait_for(marker.exists, timeout=60, what="the import to pause at its third chunk")

    cut_paused_worker(pg_proxy, worker_process, release)
    return job


def test_import_cut_by_a_restart_completes_exactly_once_when_the_database_is_back(
    catalog, marketer, pg_proxy, worker_process, tmp_path
):
    before, schema = snapshot(), event_table_schema()

    job = _cut_an_import_half_way(catalog, marketer, pg_proxy, worker_process, tmp_path)

    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1)  # nothing could record more
    assert snapshot() == before  # the written chunks were rolled back with the connection
    assert f"{CUT} (OperationalError); retrying in" in worker_process.log()

    pg_proxy.start()
    job = finished(job, timeout=60)

    assert job.status == Job.Status.SUCCEEDED, (job.error, worker_process.log())
    assert job.attempts == 2  # the retry released the cut attempt's claim and ran again
    assert job.result["events"] == {"inserted": EVENTS, "unchanged": 0}
    assert job.result["rejected"] == 0
    assert Event.objects.filter(catalog=catalog).count() == EVENTS
    assert len(set(Event.objects.filter(catalog=catalog).values_list("source", flat=True))) == (
        EVENTS
    )
    assert snapshot(events=False) == {k: before[k] for k in ("products", "customers")}
    assert event_table_schema() == schema


def test_import_cut_by_a_restart_fails_clearly_when_it_has_no_attempt_left(
    catalog, marketer, pg_proxy, worker_process, tmp_path
):
    before = snapshot()

    job = _cut_an_import_half_way(
        catalog, marketer, pg_proxy, worker_process, tmp_path, MAX_JOB_ATTEMPTS="1"
    )
    pg_proxy.start()
    job = finished(job, timeout=60)

    assert job.status == Job.Status.FAILED
    assert job.attempts == 1
    assert job.error.startswith("Gave up after 1 attempt: ")
    assert "or lost the database. Nothing was changed." in job.error
    assert snapshot() == before
