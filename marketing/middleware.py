"""Middleware: login for htmx requests, a friendly answer while SQLite is busy, and the
Content-Security-Policy header."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.template import engines
from django_htmx.http import HttpResponseClientRedirect

from marketing.services.jobs import is_database_locked

logger = logging.getLogger(__name__)


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware; an htmx request gets HX-Redirect instead of a 302.

    htmx follows a 302 itself and swaps the login page into the fragment it polls (a job's
    status card once the session expired). HX-Redirect makes the browser load the login page
    instead, and `next` leads back to the page the user was on, not to the fragment.
    """

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

_BUSY_PAGE = """{% extends "base.html" %}{% block title %}Busy{% endblock %}
{% block content %}<h1>Busy</h1><p role="alert">{{ message }}</p>
<p><a href="{{ request.get_full_path }}">Try again</a></p>{% endblock %}"""


class DatabaseBusyMiddleware:
    """Turn SQLite's "database is locked" into a 503 that tells the user what happens.

    In embedded mode an import holds SQLite's only write lock for its whole transaction; a
    request that must write waits for the lock (the connection's timeout) and then fails.
    Reading pages keep working (WAL), and so does cancelling (see job_cancel).
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_database_locked(exception):
            return None
        logger.warning("database busy: %s %s answered 503", request.method, request.path)
        if request.headers.get("HX-Request"):
            response = HttpResponse(BUSY_MESSAGE, content_type="text/plain; charset=utf-8")
        else:
            try:
                page = engines["django"].from_string(_BUSY_PAGE)
                response = HttpResponse(page.render({"message": BUSY_MESSAGE}, request))
            except Exception:  # the page's own queries may fail the same way
                response = HttpResponse(BUSY_MESSAGE, content_type="text/plain; charset=utf-8")
        response.status_code = 503
        response["Retry-After"] = "5"
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
