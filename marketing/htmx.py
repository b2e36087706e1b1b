"""htmx helpers shared by views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

if TYPE_CHECKING:
    from marketing.models import Job


def wants_partial(request: HttpRequest) -> bool:
    """True when the request came from htmx and expects a fragment, not a whole page.

    Boosted requests and history restores need the full page, so they get it.
    """
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_page(
    request: HttpRequest, template: str, context: dict, *, partial: str
) -> HttpResponse:
    """The whole page, or only its ``{% partialdef partial %}`` when `wants_partial`: one
    view serves the page without JavaScript and the section htmx swaps in place."""
    name = f"{template}#{partial}" if wants_partial(request) else template
    return render(request, name, context)


def stop_polling_when_finished(
    request: HttpRequest, response: HttpResponse, job: Job
) -> HttpResponse:
    """A polled job card's response: once the job has ended, htmx stops polling
    (status 286) and `job-finished` fires, so panels listening ``from:body`` reload."""
    if not job.is_active and request.headers.get("HX-Request"):
        response.status_code = HttpResponseStopPolling.status_code
        trigger_client_event(response, "job-finished", {"id": job.pk, "status": job.status})
    return response
