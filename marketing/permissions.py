"""Role checks. Roles are groups; permissions hang off the groups (see migration 0002)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied


def is_admin(user) -> bool:
    return user.is_superuser or user.groups.filter(name=settings.ROLE_ADMIN).exists()


def require_perm(user, perm: str) -> None:
    """403 unless the user holds the permission (through a role group or directly)."""
    if not user.has_perm(perm):
        raise PermissionDenied(f"Missing permission {perm}")
