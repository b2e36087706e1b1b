"""Bearer-token authentication, scope checks, rate limits and JSON errors for API views.

`api_view` wraps every endpoint: it answers wrong methods with 405, authenticates the
``Authorization: Bearer tlr_…`` header (401 + ``WWW-Authenticate`` for a missing, unknown or
revoked token, or one whose user is inactive), checks that the token carries the scope (403),
counts the request against the token's rate limit (429 + ``Retry-After``) and checks that the
token's user still holds the scope's permissions (403). Session cookies are never looked at,
and the view is exempt from CSRF (nothing is authorised by a cookie) and from the login
middleware.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
from collections.abc import Callable
from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from api import conf
from api.models import SCOPE_PERMISSIONS, ApiToken
from api.ratelimit import rate_hit
from marketing.services.jobs import write_unless_sqlite_busy

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "tlr_"
TOKEN_MAX_LENGTH = 100
LAST_USED_EVERY = dt.timedelta(minutes=1)
REALM = 'Bearer realm="tailor"'


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiError(Exception):
    """An error answer: HTTP status, a stable code, a message for people, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.code, "message": self.message}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def _unauthorized(message: str, *, invalid: bool = True) -> ApiError:
    challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


@functools.cache
def _token_base() -> QuerySet[ApiToken]:
    """The token lookup every request chains (built once; never evaluated itself)."""
    return (
        ApiToken.objects.select_related("user")
        .only(
            "id",
            "prefix",
            "digest",
            "scopes",
            "catalog_id",
            "last_used_at",
            "revoked_at",
            "user__id",
            "user__is_active",
            "user__is_superuser",
        )
        .order_by()
    )


def token_authenticate(request: HttpRequest) -> ApiToken:
    """The active token named by the Authorization header, or ApiError 401.

    The secret is hashed and looked up by its digest (unique index): the comparison that
    matters happens on digests, so response times say nothing about the secret.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise _unauthorized(
            "Send your API token as 'Authorization: Bearer <token>'.", invalid=False
        )
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise _unauthorized("Use the Bearer scheme: 'Authorization: Bearer <token>'.")
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > TOKEN_MAX_LENGTH:
        raise _unauthorized("The token is not valid.")
    digest = token_digest(secret)
    token = next(iter(_token_base().filter(digest=digest)), None)
    if token is None or not hmac.compare_digest(token.digest, digest):
        raise _unauthorized("The token is not valid.")
    if token.revoked_at is not None:
        raise _unauthorized("The token was revoked.")
    if not token.user.is_active:
        raise _unauthorized("The token's user is deactivated.")
    return token


def token_touch(token: ApiToken) -> None:
    """Record the use, at most once a minute per token (a conditional UPDATE)."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    write_unless_sqlite_busy(
        lambda: ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now),
        what=f"last_used_at of API token {token.pk}",
    )
    token.last_used_at = now


@functools.cache
def _permissions_sql(codenames: int, apps: int) -> str:
    """The permissions of a user among some (app label, codename) pairs, direct or through
    groups. Table and column names come from the models' metadata."""
    user_model = get_user_model()
    direct = user_model.user_permissions.through._meta
    member = user_model.groups.through._meta
    granted = Group.permissions.through._meta

    def col(meta, name: str) -> str:
        return meta.get_field(name).column

    return f"""
        SELECT ct.app_label, p.codename
        FROM {Permission._meta.db_table} p
        JOIN {ContentType._meta.db_table} ct ON ct.id = p.content_type_id
        WHERE p.codename IN ({", ".join(["%s"] * codenames)})
        AND ct.app_label IN ({", ".join(["%s"] * apps)}) AND p.id IN (
            SELECT d.{col(direct, "permission")} FROM {direct.db_table} d
            WHERE d.{col(direct, "user")} = %s
            UNION
            SELECT g.{col(granted, "permission")} FROM {granted.db_table} g
            JOIN {member.db_table} m ON m.{col(member, "group")} = g.{col(granted, "group")}
            WHERE m.{col(member, "user")} = %s
        )
    """


def user_holds(user, perms: tuple[str, ...]) -> bool:
    """Whether the user holds every permission, directly or through a group: the rule of
    Django's ModelBackend (the only backend configured; inactive users hold nothing,
    superusers everything), asked in one small query for just these permissions instead of
    loading all of the user's (this runs on every API request)."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    pairs = {tuple(perm.split(".", 1)) for perm in perms}
    codenames = sorted({c for _, c in pairs})
    apps = sorted({a for a, _ in pairs})
    with connection.cursor() as cursor:
        cursor.execute(
            _permissions_sql(len(codenames), len(apps)), [*codenames, *apps, user.pk, user.pk]
        )
        held = set(cursor.fetchall())
    return pairs <= held


def token_authorize(token: ApiToken, scope: str) -> None:
    """403 unless the token has the scope and its user (now) holds the scope's permissions."""
    if scope not in token.scopes:
        raise ApiError(
            403,
            "insufficient_scope",
            f"This token lacks the scope '{scope}'.",
            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
        )
    if not user_holds(token.user, SCOPE_PERMISSIONS[scope]):
        raise ApiError(
            403,
            "forbidden",
            f"The token's user is no longer allowed to use '{scope}'.",
        )


def api_view(
    *, scope: str | None, methods: tuple[str, ...] = ("GET",), bucket: str = "read"
) -> Callable:
    """Decorate an API view ``fn(request, token, **kwargs)`` (token None when ``scope`` is
    None: a public document). ``bucket`` picks the rate limit: "read" or "write"."""
    limit_setting = {"read": "API_RATE_READ_PER_MIN", "write": "API_RATE_WRITE_PER_MIN"}[bucket]
    allowed = tuple(methods) + (("HEAD",) if "GET" in methods else ())

    def decorator(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(fn)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            rate_headers: dict[str, str] = {}
            try:
                if request.method not in allowed:
                    raise ApiError(
                        405,
                        "method_not_allowed",
                        f"Use {' or '.join(methods)}.",
                        headers={"Allow": ", ".join(allowed)},
                    )
                token = None
                if scope is not None:
                    token = token_authenticate(request)
                    if scope not in token.scopes:
                        token_authorize(token, scope)  # raises the 403
                    rate = rate_hit(
                        key=token.digest[:32], bucket=bucket, limit=conf.get(limit_setting)
                    )
                    rate_headers = rate.headers()
                    if not rate.allowed:
                        raise ApiError(
                            429,
                            "rate_limited",
                            f"Rate limit of {rate.limit} requests per minute reached; "
                            f"retry in {rate.retry_after_s} s.",
                        )
                    token_authorize(token, scope)
                    token_touch(token)
                response = fn(request, token, *args, **kwargs)
            except ApiError as exc:
                response = exc.response()
            for name, value in rate_headers.items():
                response[name] = value
            if scope is not None:
                response["Cache-Control"] = "private, no-store"
                response["Vary"] = "Authorization"
            return response

        return login_not_required(csrf_exempt(wrapper))

    return decorator
