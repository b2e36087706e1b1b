"""Middleware: login for htmx requests, a friendly answer while the database is busy
(SQLite) or out of reach (PostgreSQL restarting), and the Content-Security-Policy header."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.template import engines
from django_htmx.http import HttpResponseClientRedirect

from marketing.services.jobs import is_database_locked, is_database_unreachable

logger = logging.getLogger(__name__)


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware; an htmx request gets HX-Redirect instead of a 302.

    htmx follows a 302 itself and swaps the login page into the fragment it polls (a job's
    status card once the session expired). HX-Redirect makes the browser load the login page
    instead, and `next` leads back to the page the user was on, not to the fragment.
    """

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        # Django's loads the user first, for public views too: /health/ would then need the
        # database for a request that carries a session cookie, and fail without it.
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        htmx = getattr(request, "htmx", None)
        if not htmx:
            return super().handle_no_permission(request, view_func)
        login_url = resolve_url(self.get_login_url(view_func))
        # The page the user was on (None unless it is on this site), not the fragment's URL.
        next_path = htmx.current_url_abs_path or "/"
        field = self.get_redirect_field_name(view_func)
        return HttpResponseClientRedirect(
            redirect_to_login(next_path, login_url, field)["Location"]
        )


BUSY_MESSAGE = "An import is writing to the database; try again in a moment."
UNREACHABLE_MESSAGE = (
    "The database cannot be reached right now (it may be restarting). Nothing needs to be "
    "done on your side: this page will work again by itself once the database is back, "
    "so try again in a moment."
)

# One page for both; it must render without the database when that is what failed.
_UNAVAILABLE_PAGE = """{% extends "base.html" %}{% block title %}{{ heading }}{% endblock %}
{% block content %}<h1>{{ heading }}</h1><p role="alert">{{ message }}</p>
<p><a href="{{ path }}">Try again</a></p>{% endblock %}"""


class DatabaseUnavailableMiddleware:
    """Answer 503 with a page that says what happens when the database cannot serve a request.

    - SQLite's "database is locked": in embedded mode an import holds SQLite's only write
      lock for its whole transaction; a request that must write waits for the lock (the
      connection's timeout) and then fails. Reading pages keep working (WAL), and so does
      cancelling (see job_cancel).
    - PostgreSQL unreachable (`is_database_unreachable`: refused, connection closed, a
      restart): nothing works until it is back, and then every page works again by itself;
      Django opens a new connection per request, or replaces a dead persistent one
      (CONN_HEALTH_CHECKS). Django's own answer would be a bare 500 and an error log with a
      traceback for every request meanwhile.

    The unreachable page renders without the request: the context processors would load the
    session and the user from the database again (the navigation is left out). The user is
    loaded in process_view, before LoginRequiredMiddleware does it where an error could only
    become a 500 (process_exception sees the view's errors only).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if not getattr(view_func, "login_required", True) or not hasattr(request, "user"):
            return None  # public views (/health/) load no user unless they need one
        try:
            request.user.is_authenticated  # noqa: B018 (loads the session and the user)
        except Exception as exc:
            response = self.process_exception(request, exc)
            if response is None:
                raise
            return response
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_locked(exception):
            logger.warning("database busy: %s %s answered 503", request.method, request.path)
            return _unavailable(request, "Busy", BUSY_MESSAGE, retry_after=5, with_request=True)
        if is_database_unreachable(exception):
            # The type only: the driver's message names the server's address.
            logger.warning(
                "database unreachable (%s): %s %s answered 503",
                type(exception.__cause__ or exception).__name__,
                request.method,
                request.path,
            )
            return _unavailable(
                request, "Database unavailable", UNREACHABLE_MESSAGE, retry_after=10
            )
        return None


def _unavailable(
    request: HttpRequest,
    heading: str,
    message: str,
    *,
    retry_after: int,
    with_request: bool = False,
) -> HttpResponse:
    """The 503: a short text for htmx (it swaps nothing on an error), JSON for the API, and
    the site's page otherwise (plain text if even that cannot be rendered)."""
    if request.path_info.startswith("/api/"):
        response: HttpResponse = JsonResponse({"error": "unavailable", "message": message})
    elif request.headers.get("HX-Request"):
        response = HttpResponse(message, content_type="text/plain; charset=utf-8")
    else:
        context = {"heading": heading, "message": message, "path": request.get_full_path()}
        try:
            page = engines["django"].from_string(_UNAVAILABLE_PAGE)
            response = HttpResponse(page.render(context, request if with_request else None))
        except Exception:  # the page's own queries may fail the same way
            response = HttpResponse(message, content_type="text/plain; charset=utf-8")
    response.status_code = 503
    response["Retry-After"] = str(retry_after)
    # Logged above as a warning; Django would add an ERROR line for every such request.
    response._has_been_logged = True
    return response


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY with every answer that has none of its own.

    Django 5.2 has no CSP support of its own (it arrives in 6.0) and the policy is one fixed
    string, so a library would add nothing. The policy forbids inline scripts, event-handler
    attributes and eval: an injected script cannot run even where escaping failed.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
