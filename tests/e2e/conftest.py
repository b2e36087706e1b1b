"""Headless Chromium (Debian's binary, never a downloaded one) driven by Playwright's sync API."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest

from marketing.celery import app as celery_app
from tests.integration.conftest import _require_real_services

logger = logging.getLogger(__name__)

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls made by
# the test itself (fixtures, assertions) are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def _chromium_path() -> str | None:
    return os.environ.get("PLAYWRIGHT_CHROMIUM") or shutil.which("chromium")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so `page` can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def start_worker(transactional_db) -> Iterator[Callable[[], object]]:
    """Call it to start a real worker thread on the configured broker (Redis in CI).

    Unlike `celery_worker` (tests/integration), nothing consumes until the test says so: a
    job enqueued before then waits on the broker, so the page can show it queued first.
    """
    _require_real_services()
    from celery.contrib.testing.worker import start_worker as worker_thread

    celery_app.control.purge()
    with ExitStack() as stack:
        yield lambda: stack.enter_context(
            worker_thread(
                celery_app,
                pool="solo",
                perform_ping_check=False,
                shutdown_timeout=30,
                loglevel="WARNING",
            )
        )


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    path = _chromium_path()
    if not path:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(request, browser, live_server, tmp_path) -> Iterator[object]:
    """A fresh browser context on the live server; a failing test leaves a screenshot in tmp_path."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception as exc:  # the page may be gone; the test's own error matters more
            logger.warning("no screenshot of the failure: %s", exc)
        else:
            logger.warning("screenshot of the failure: %s", shot)
    context.close()


class BrowserTraffic:
    """What a page did on the network and in its console, collected from Playwright events."""

    def __init__(self, page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.external_requests: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("requestfailed", self._on_request_failed)
        page.on("request", self._on_request)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def _on_request_failed(self, request) -> None:
        # The browser aborts what is still in flight when the page navigates away (a favicon, an htmx
        # poll); that is a cancellation, not a failure of the app.
        if request.failure == "net::ERR_ABORTED":
            return
        self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def _on_request(self, request) -> None:
        if not is_local(request.url):
            self.external_requests.append(request.url)


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


@pytest.fixture
def traffic(page) -> BrowserTraffic:
    return BrowserTraffic(page)


def log_out(page) -> None:
    """Log out and wait until the login page has loaded (a navigation started before then
    would abort the redirect, which the traffic checks count as a failed request)."""
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(lambda url: "/accounts/login/" in url)
    page.wait_for_load_state("load")


def login(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
