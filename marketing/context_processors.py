"""Template context shared by every page."""

from __future__ import annotations

from django.http import HttpRequest

from marketing.permissions import is_admin


def roles(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    return {"user_is_admin": bool(user and user.is_authenticated and is_admin(user))}
