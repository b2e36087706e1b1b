"""Template context shared by every page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from marketing.permissions import is_admin


def roles(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {"user_is_admin": bool(user and user.is_authenticated and is_admin(user))}


def sensitive_attributes(request: HttpRequest) -> dict:
    """The configured sensitive attributes, for the notes that say models never use them."""
    return {"sensitive_attributes_policy": settings.SENSITIVE_ATTRIBUTES}
