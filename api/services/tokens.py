"""Creating and revoking API tokens (audited; the secret exists only in the creation answer)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from api.auth import TOKEN_PREFIX, token_digest
from api.models import SCOPE_PERMISSIONS, ApiToken, Scope
from marketing.models import AuditEvent, Catalog
from marketing.permissions import require_perm
from marketing.services.audit import audit

USE_PERM = "api.use_api"


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def scopes_allowed(user) -> list[str]:
    """The scopes ``user`` may give a token now (those whose permissions they hold)."""
    if not user.has_perm(USE_PERM):
        return []
    return [scope for scope in Scope.values if user.has_perms(SCOPE_PERMISSIONS[scope])]


def token_secret_new() -> str:
    """A fresh secret: the recognisable prefix and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def token_create(*, user, name: str, scopes: list[str], catalog: Catalog | None) -> CreatedToken:
    """A new token of ``user``; ValidationError for an empty name or no scope, 403 for a scope
    the user may not hold."""
    require_perm(user, USE_PERM)
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the token (what it is for)."})
    wanted = list(dict.fromkeys(scopes))
    unknown = [s for s in wanted if s not in Scope.values]
    if unknown or not wanted:
        raise ValidationError({"scopes": "Choose at least one of the listed scopes."})
    allowed = scopes_allowed(user)
    denied = [s for s in wanted if s not in allowed]
    if denied:
        raise PermissionDenied(f"You may not create tokens with {', '.join(denied)}")
    secret = token_secret_new()
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        prefix=secret[:8],
        digest=token_digest(secret),
        scopes=[s for s in Scope.values if s in wanted],
        catalog=catalog,
    )
    audit(
        actor=user,
        action=AuditEvent.Action.API_TOKEN_CREATED,
        obj=token,
        details={"scopes": token.scopes, "catalog_id": catalog.pk if catalog else None},
    )
    return CreatedToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, token: ApiToken, actor) -> bool:
    """Revoke the token (its owner, or a user who may change tokens, i.e. admins in the
    Django admin). Returns False when it was already revoked; revoking twice changes nothing."""
    if token.user_id != actor.pk:
        require_perm(actor, "api.change_apitoken")
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if changed:
        token.refresh_from_db(fields=["revoked_at"])
        audit(
            actor=actor,
            action=AuditEvent.Action.API_TOKEN_REVOKED,
            obj=token,
            details={"by_owner": token.user_id == actor.pk},
        )
    return bool(changed)
