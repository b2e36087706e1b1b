"""htmx helpers shared by views."""

from __future__ import annotations

from django.http import HttpRequest


def wants_partial(request: HttpRequest) -> bool:
    """True when the request came from htmx and expects a fragment, not a whole page.

    Boosted requests and history restores need the full page, so they get it.
    """
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
