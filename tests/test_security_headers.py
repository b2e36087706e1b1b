"""Production hardening: the Content-Security-Policy (and templates that need no inline code),
`check --deploy` with the production environment, HTTPS and secrets from the environment,
login throttling, and a zip-bomb workbook refused at the upload door.

Settings are read by running marketing/settings.py with a chosen environment (runpy, in a
temporary DATA_DIR), so the tests see what a deployment with that environment gets.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import runpy
import secrets
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from marketing.models import Upload
from tests.factories import CatalogFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "marketing" / "settings.py"
# Every variable the security settings read; cleared before each settings run.
SECURITY_ENV = (
    "DEBUG",
    "SECRET_KEY",
    "REQUIRE_SECRET_KEY",
    "ALLOWED_HOSTS",
    "HTTPS",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "TRUST_X_FORWARDED_PROTO",
    "CACHE_BACKEND",
    "CACHE_LOCATION",
    "LOGIN_THROTTLE",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_COOLOFF_MINUTES",
)
PRODUCTION_ENV = {
    "DEBUG": "0",
    "REQUIRE_SECRET_KEY": "1",
    "ALLOWED_HOSTS": "tailor.example.com",
    "CACHE_BACKEND": "django.core.cache.backends.redis.RedisCache",
    "CACHE_LOCATION": "redis://127.0.0.1:6379/0",
}
# What the deploy checks look at (the rest of a settings run, paths and databases, stays).
SECURITY_SETTINGS = re.compile(
    r"(SECURE_|SESSION_COOKIE_|CSRF_COOKIE_|AXES_)\w+|DEBUG|SECRET_KEY|ALLOWED_HOSTS|CACHES"
    r"|SILENCED_SYSTEM_CHECKS|X_FRAME_OPTIONS|CONTENT_SECURITY_POLICY|AUTHENTICATION_BACKENDS"
)


@pytest.fixture
def settings_for(monkeypatch, tmp_path):
    """settings_for(**env) → the settings module's names under that environment."""

    def run(**env: str) -> dict:
        for name in SECURITY_ENV:
            monkeypatch.delenv(name, raising=False)
        # The browser tests' conftest sets it for Playwright's sync API (async.E001 in a deploy
        # check); no deployment sets it.
        monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
        monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS))

    return run


def _random_key() -> str:
    return secrets.token_urlsafe(50)


# ----------------------------------------------------------------------------- HTTPS, deploy


def test_check_deploy_is_clean_with_the_production_environment(settings_for, settings):
    production = settings_for(**PRODUCTION_ENV, SECRET_KEY=_random_key())
    for name, value in production.items():
        if SECURITY_SETTINGS.fullmatch(name):
            setattr(settings, name, value)
    out, err = io.StringIO(), io.StringIO()
    call_command("check", deploy=True, stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert "System check identified no issues" in out.getvalue()


def test_check_deploy_flags_the_embedded_defaults(settings_for, settings):
    """The test above can fail: the plain-HTTP defaults of `make run` are not production."""
    embedded = settings_for(SECRET_KEY=_random_key(), **{"DEBUG": "0"})
    for name, value in embedded.items():
        if SECURITY_SETTINGS.fullmatch(name):
            setattr(settings, name, value)
    err = io.StringIO()
    call_command("check", deploy=True, stdout=io.StringIO(), stderr=err)
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in err.getvalue()


def test_production_defaults_to_https_only(settings_for):
    s = settings_for(**PRODUCTION_ENV, SECRET_KEY=_random_key())
    assert s["SECURE_SSL_REDIRECT"] and s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"]
    assert s["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600 and s["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert "SECURE_PROXY_SSL_HEADER" not in s  # a client's X-Forwarded-Proto is not trusted
    behind_proxy = settings_for(
        **PRODUCTION_ENV, SECRET_KEY=_random_key(), TRUST_X_FORWARDED_PROTO="1"
    )
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.parametrize(
    "env",
    [
        {},  # make run: embedded, DEBUG off, plain HTTP on 127.0.0.1
        {"DEBUG": "1"},
        {**PRODUCTION_ENV, "HTTPS": "0"},  # a plain-HTTP run of production settings
    ],
)
def test_plain_http_runs_get_no_redirect_and_no_secure_only_cookies(settings_for, env):
    s = settings_for(**env, SECRET_KEY=_random_key())
    assert not s["SECURE_SSL_REDIRECT"]
    assert not s["SESSION_COOKIE_SECURE"] and not s["CSRF_COOKIE_SECURE"]
    assert s["SECURE_HSTS_SECONDS"] == 0


def test_https_settings_redirect_and_send_hsts(settings_for, settings, client, marketer):
    production = settings_for(**PRODUCTION_ENV, SECRET_KEY=_random_key())
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS"):
        setattr(settings, name, production[name])
    settings.SESSION_COOKIE_SECURE = production["SESSION_COOKIE_SECURE"]
    plain = client.get("/accounts/login/?next=/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/accounts/login/?next=/"
    secure = client.get("/accounts/login/", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    client.force_login(marketer)
    assert client.cookies[django_settings.SESSION_COOKIE_NAME]["secure"]


def test_production_takes_the_secret_key_from_the_environment_only(settings_for, tmp_path):
    key = _random_key()
    s = settings_for(**PRODUCTION_ENV, SECRET_KEY=key)
    assert s["SECRET_KEY"] == key
    assert not (tmp_path / "data" / ".secret_key").exists()  # nothing generated or stored
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        settings_for(**PRODUCTION_ENV)
    assert not (tmp_path / "data" / ".secret_key").exists()


# ----------------------------------------------------------------------------- CSP


def _directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def test_every_kind_of_answer_carries_the_policy(client, marketer):
    anonymous = client.get(reverse("login"))
    api = client.get("/api/v1/openapi.json")
    client.force_login(marketer)
    page = client.get(reverse("marketing:about"))
    for response in (anonymous, api, page):
        policy = _directives(response)
        assert policy["script-src"] == ["'self'"]  # no inline scripts, no eval
        assert policy["default-src"] == ["'self'"]
        assert policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
        assert policy["style-src"] == ["'self'", "'unsafe-inline'"]  # plotly's inline styles
        assert policy["img-src"] == ["'self'", "data:", "blob:"]


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
HANDLER_ATTRIBUTE = re.compile(r"\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"javascript:", re.I)


def test_templates_hold_no_inline_code():
    """What the policy forbids would silently break in the browser: keep it out of templates
    (data for charts goes through json_script blocks, handlers in static/js)."""
    offenders = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, HANDLER_ATTRIBUTE, JS_URL):
            offenders += [
                f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in pattern.finditer(text)
            ]
    assert not offenders, "\n".join(offenders)
    # The scan finds what it looks for.
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert HANDLER_ATTRIBUTE.search('<a href="#" onclick="x()">')
    assert not INLINE_SCRIPT.search('<script id="c" type="application/json">{}</script>')


def test_htmx_injects_no_inline_style_and_its_indicator_css_is_static(client, marketer):
    client.force_login(marketer)
    html = client.get(reverse("marketing:about")).content.decode()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html)
    assert config and '"includeIndicatorStyles": false' in config.group(1)
    css = (ROOT / "static" / "css" / "app.css").read_text()
    assert ".htmx-indicator { opacity: 0; }" in css
    assert not INLINE_SCRIPT.search(html)


# ----------------------------------------------------------------------------- login throttle


@pytest.fixture
def user_with_password(db):
    name = f"throttle-{uuid.uuid4().hex[:10]}"
    return User.objects.create_user(name, f"{name}@example.test", "right-password-1")


def _login(client, username: str, password: str, ip: str = "127.0.0.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_failed_logins_lock_out_that_username_from_that_address(
    client, user_with_password, marketer, caplog
):
    name = user_with_password.username
    limit = django_settings.AXES_FAILURE_LIMIT
    assert limit == 5  # LOGIN_FAILURE_LIMIT's default
    caplog.set_level(logging.INFO)
    for _ in range(limit - 1):
        response = _login(client, name, "wrong")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    locked = _login(client, name, "wrong")
    assert locked.status_code == 429
    text = re.sub(r"\s+", " ", locked.content.decode())
    assert "locked after 5 failed attempts. Try again in 15 minutes." in text
    # Even the right password is refused now, and nobody is logged in.
    refused = _login(client, name, "right-password-1")
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    # The pair is locked, not the user or the address.
    assert _login(Client(), name, "right-password-1", ip="10.0.0.9").status_code == 302
    marketer.set_password("pw-m-1")
    marketer.save()
    assert _login(Client(), marketer.username, "pw-m-1").status_code == 302
    # Logs mask who tried and from where.
    assert "AXES" in caplog.text
    assert name not in caplog.text and "127.0.0.1" not in caplog.text


def test_a_lock_out_ends_after_the_cool_off(client, user_with_password, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(seconds=1)
    name = user_with_password.username
    _login(client, name, "wrong")
    assert _login(client, name, "wrong").status_code == 429
    assert _login(client, name, "right-password-1").status_code == 429
    time.sleep(1.2)
    assert _login(client, name, "right-password-1").status_code == 302


# ----------------------------------------------------------------------------- uploads


def _zip_bomb(expanded_mb: int) -> bytes:
    """A small XLSX-looking zip whose worksheet inflates to `expanded_mb` MB of zeros."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w") as sheet:
            chunk = b"\0" * 2**20
            for _ in range(expanded_mb):
                sheet.write(chunk)
    return buf.getvalue()


def test_a_zip_bomb_workbook_is_refused_before_anything_inflates_it(client, marketer, monkeypatch):
    import openpyxl

    def never(*args, **kwargs):
        raise AssertionError("openpyxl opened the bomb")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    catalog = CatalogFactory()
    bomb = _zip_bomb(expanded_mb=100)
    assert len(bomb) < 200 * 1024  # 100 MB inside, under 200 KB on the wire
    client.force_login(marketer)
    response = client.post(
        reverse("marketing:upload-create", args=[catalog.pk]),
        {"kind": "products", "file": SimpleUploadedFile("orders.xlsx", bomb)},
    )
    assert response.status_code == 200
    assert "possible zip bomb" in response.content.decode()
    assert not Upload.objects.exists()
