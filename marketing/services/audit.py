"""The audit trail: one call records who did what to which record (never personal data)."""

from __future__ import annotations

from typing import Any

from django.db import models

from marketing.models import AuditEvent


def audit(
    *, actor, action: str, obj: models.Model, details: dict[str, Any] | None = None
) -> AuditEvent:
    """Record ``action`` by ``actor`` on ``obj`` (named by model and pk only).

    ``details`` must hold counts, ids or names an admin chose (a segment's name), never a
    customer's email, name or attributes: the trail outlives erasure.
    """
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_username=user.get_username() if user else "",
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        details=details or {},
    )
