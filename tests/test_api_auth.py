"""Token authentication of the JSON endpoints: scopes, revocation, the user's current rights,
session cookies (never accepted), CSRF (not needed), rate limits and JSON errors.

mary (marketer) owns the tokens; avery (approver) may not hold any; alice is an admin.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from api import ratelimit
from api.auth import token_digest
from api.models import ApiToken, Scope
from api.services.tokens import token_create, token_revoke
from tests.copygen_factories import BriefFactory
from tests.factories import CatalogFactory
from tests.roles import role_group

pytestmark = pytest.mark.django_db

ALL_SCOPES = [Scope.CONTENT_READ, Scope.RECOMMENDATIONS_READ, Scope.EVENTS_WRITE]
# api/migrations/0002_roles.py, for a session whose flush rebuilt the groups without them.
API_ROLE_PERMISSIONS = {
    "admin": ["use_api", "view_apitoken", "change_apitoken"],
    "marketer": ["use_api"],
}


@pytest.fixture(autouse=True)
def _api_roles(db):
    for role, codenames in API_ROLE_PERMISSIONS.items():
        role_group(role).permissions.add(
            *Permission.objects.filter(content_type__app_label="api", codename__in=codenames)
        )


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def make_token(user, scopes=ALL_SCOPES, catalog=None) -> tuple[ApiToken, str]:
    created = token_create(user=user, name="Tool", scopes=list(scopes), catalog=catalog)
    return created.token, created.secret


@pytest.fixture
def brief():
    return BriefFactory(catalog=CatalogFactory(name="Shop"))


def content_url(brief) -> str:
    return reverse("api:brief-content", args=[brief.pk])


def test_a_valid_token_reads_and_the_secret_is_stored_only_as_a_digest(marketer, brief):
    token, secret = make_token(marketer)
    assert secret.startswith("tlr_") and len(secret) > 40
    assert token.prefix == secret[:8]
    assert token.digest == token_digest(secret) and secret not in token.digest
    response = Client().get(content_url(brief), **bearer(secret))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "private, no-store"
    assert response.json() == {"results": [], "next": None, "limit": 50}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer tlr_not-a-real-token", "Bearer abc"],
)
def test_missing_or_unknown_tokens_get_401_with_a_challenge(marketer, brief, header):
    make_token(marketer)
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get(content_url(brief), **extra)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith('Bearer realm="tailor"')


def test_a_revoked_token_gets_401(marketer, brief):
    token, secret = make_token(marketer)
    assert token_revoke(token=token, actor=marketer) is True
    response = Client().get(content_url(brief), **bearer(secret))
    assert response.status_code == 401
    assert response.json()["message"] == "The token was revoked."
    assert token_revoke(token=token, actor=marketer) is False  # twice changes nothing


def test_an_inactive_users_token_gets_401(marketer, brief):
    _, secret = make_token(marketer)
    marketer.is_active = False
    marketer.save()
    assert Client().get(content_url(brief), **bearer(secret)).status_code == 401


def test_a_token_without_the_scope_gets_403(marketer, brief):
    _, secret = make_token(marketer, scopes=[Scope.EVENTS_WRITE])
    response = Client().get(content_url(brief), **bearer(secret))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'scope="content:read"' in response["WWW-Authenticate"]


def test_leaving_the_role_takes_effect_at_once(marketer, brief):
    _, secret = make_token(marketer)
    client = Client()
    assert client.get(content_url(brief), **bearer(secret)).status_code == 200
    marketer.groups.clear()
    response = client.get(content_url(brief), **bearer(secret))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_a_session_cookie_is_no_authentication(marketer, brief):
    client = Client()
    client.force_login(marketer)
    response = client.get(content_url(brief))
    assert response.status_code == 401  # not 200, and not a redirect to the login page


def test_posts_need_no_csrf_token(marketer):
    _, secret = make_token(marketer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)  # a session cookie alone would make CSRF matter
    response = client.post(
        reverse("api:events"),
        data=b'{"event_id": "x", "kind": "view", "occurred_at": "2024-01-01T00:00:00Z"}\n',
        content_type="application/x-ndjson",
        **bearer(secret),
    )
    assert response.status_code == 200, response.content
    assert response.json()["rejected"] == 1  # no catalog on the line: a line error, not a 403


def test_wrong_methods_and_unknown_paths_answer_json(marketer, brief):
    _, secret = make_token(marketer)
    response = Client().post(content_url(brief), **bearer(secret))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    response = Client().get("/api/v1/nothing/here", **bearer(secret))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_last_used_is_recorded_at_most_once_a_minute(marketer, brief):
    token, secret = make_token(marketer)
    client = Client()
    client.get(content_url(brief), **bearer(secret))
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    client.get(content_url(brief), **bearer(secret))
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    client.get(content_url(brief), **bearer(secret))
    token.refresh_from_db()
    assert token.last_used_at > first


# -------------------------------------------------------------------------- rate limits


@pytest.fixture
def frozen_minute(monkeypatch):
    """Every request in the same minute window (10 s into it)."""
    now = {"t": 1_800_000_000.0 + 10}
    monkeypatch.setattr(ratelimit, "_now", lambda: now["t"])
    return now


@pytest.mark.parametrize("backend", ["configured", "redis"])
def test_reads_are_rate_limited_per_token(marketer, brief, settings, frozen_minute, backend):
    if backend == "redis":  # production's cache: the one-round-trip counter
        broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
        if not broker.startswith("redis://"):
            pytest.skip("no Redis configured")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": broker,
            }
        }
    settings.API_RATE_READ_PER_MIN = 2
    _, secret = make_token(marketer)
    _, other = make_token(marketer)
    client = Client()
    first = client.get(content_url(brief), **bearer(secret))
    assert first.status_code == 200
    assert first["X-RateLimit-Limit"] == "2" and first["X-RateLimit-Remaining"] == "1"
    assert client.get(content_url(brief), **bearer(secret)).status_code == 200
    limited = client.get(content_url(brief), **bearer(secret))
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert limited["Retry-After"] == "50"
    assert client.get(content_url(brief), **bearer(other)).status_code == 200  # per token
    frozen_minute["t"] += 60  # the next window
    assert client.get(content_url(brief), **bearer(secret)).status_code == 200


def test_writes_have_their_own_limit(marketer, settings, frozen_minute):
    settings.API_RATE_WRITE_PER_MIN = 1
    settings.API_RATE_READ_PER_MIN = 100
    _, secret = make_token(marketer)
    body = b'{"event_id": "x", "kind": "view", "occurred_at": "2024-01-01T00:00:00Z"}\n'

    def post():
        return Client().post(
            reverse("api:events"), data=body, content_type="application/x-ndjson", **bearer(secret)
        )

    assert post().status_code == 200
    limited = post()
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0


# -------------------------------------------------------------------------- token pages


def test_the_token_page_lists_only_my_tokens(marketer, admin_user):
    make_token(marketer)
    theirs, _ = make_token(admin_user)
    client = Client()
    client.force_login(marketer)
    response = client.get(reverse("api:token-list"))
    assert response.status_code == 200
    assert f'id="token-{theirs.pk}"' not in response.content.decode()
    assert response.content.decode().count('<tr id="token-') == 1


def test_anonymous_users_are_sent_to_log_in():
    response = Client().get(reverse("api:token-list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_approvers_and_users_without_a_role_may_not_have_tokens(approver, no_role_user):
    for user in (approver, no_role_user):
        client = Client()
        client.force_login(user)
        assert client.get(reverse("api:token-list")).status_code == 403
        assert client.post(reverse("api:token-create"), {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_creating_shows_the_secret_once_and_audits(marketer):
    catalog = CatalogFactory(name="Shop")
    client = Client()
    client.force_login(marketer)
    response = client.post(
        reverse("api:token-create"),
        {"name": "Klaviyo", "scopes": ["content:read", "events:write"], "catalog": catalog.pk},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get()
    page = response.content.decode()
    secret = page.split('id="token-secret"')[1].split('value="')[1].split('"')[0]
    assert token.digest == token_digest(secret)
    assert token.scopes == ["content:read", "events:write"] and token.catalog == catalog
    assert "no-store" in response["Cache-Control"]
    assert secret not in client.get(reverse("api:token-list")).content.decode()
    event = marketer.audit_events.get(action="api_token_created")
    assert event.object_id == str(token.pk)
    assert secret not in str(event.details) and token.digest not in str(event.details)


def test_a_token_cannot_get_a_scope_its_user_lacks(marketer):
    marketer.groups.remove(role_group("marketer"))
    marketer.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["use_api", "view_draft", "view_customer"],
        )
    )
    client = Client()
    client.force_login(marketer)
    response = client.post(
        reverse("api:token-create"), {"name": "Sneaky", "scopes": ["events:write"]}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ApiToken.objects.exists()
    response = client.post(
        reverse("api:token-create"), {"name": "Fine", "scopes": ["content:read"]}
    )
    assert ApiToken.objects.get().scopes == ["content:read"]


def test_bad_input_creates_nothing(marketer):
    client = Client()
    client.force_login(marketer)
    response = client.post(reverse("api:token-create"), {"name": " ", "scopes": []})
    assert response.status_code == 200
    assert 'class="errorlist"' in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_is_a_post_of_the_owner(marketer, admin_user):
    mine, secret = make_token(marketer)
    theirs, _ = make_token(admin_user)
    client = Client()
    client.force_login(marketer)
    assert client.get(reverse("api:token-revoke", args=[mine.pk])).status_code == 405
    assert client.post(reverse("api:token-revoke", args=[theirs.pk])).status_code == 404
    response = client.post(reverse("api:token-revoke", args=[mine.pk]))
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None
    assert marketer.audit_events.filter(action="api_token_revoked").count() == 1
    assert Client().get(reverse("api:openapi")).status_code == 200  # public document


def test_admins_list_and_revoke_tokens_in_the_django_admin(marketer):
    token, _ = make_token(marketer)
    boss = User.objects.create_superuser("boss", "boss@example.test", "pw")
    client = Client()
    client.force_login(boss)
    page = client.get(reverse("admin:api_apitoken_changelist"))
    assert page.status_code == 200
    assert token.prefix in page.content.decode() and token.digest not in page.content.decode()
    assert client.get(reverse("admin:api_apitoken_add")).status_code == 403
    response = client.post(
        reverse("admin:api_apitoken_changelist"),
        {"action": "revoke_selected", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = boss.audit_events.get(action="api_token_revoked")
    assert event.details == {"by_owner": False}
