"""Token pages: list your tokens, create one (its secret is shown once), revoke one.

Pages for people (login, CSRF); the tokens themselves authenticate only the JSON endpoints.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api import selectors
from api.auth import ApiError
from api.forms import TokenCreateForm
from api.models import ApiToken
from api.services import tokens as token_services
from marketing.permissions import require_perm

NAV = "api"


def _get_token_for_user(request: HttpRequest, pk: int) -> ApiToken:
    """The user's own token (404 for others'), once they may use the API (403)."""
    require_perm(request.user, token_services.USE_PERM)
    try:
        return selectors.token_get_for_user(user=request.user, pk=pk)
    except ApiError:
        raise Http404("No such token") from None


@login_required
@require_http_methods(["GET", "HEAD"])
def token_list(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, token_services.USE_PERM)
    context = {
        "tokens": selectors.token_list(user=request.user),
        "nav": NAV,
    }
    return render(request, "api/token_list.html", context)


@login_required
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def token_create(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, token_services.USE_PERM)
    allowed = token_services.scopes_allowed(request.user)
    form = TokenCreateForm(request.POST or None, allowed_scopes=allowed)
    if request.method == "POST" and form.is_valid():
        try:
            created = token_services.token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                catalog=form.cleaned_data["catalog"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except PermissionDenied:
            form.add_error("scopes", "You may not give a token that scope.")
        else:
            # Rendered in the answer to the POST (never_cache): the secret is in no URL,
            # session or log, and reloading cannot show it again.
            return render(
                request,
                "api/token_created.html",
                {"token": created.token, "secret": created.secret, "nav": NAV},
            )
    return render(request, "api/token_form.html", {"form": form, "nav": NAV})


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = _get_token_for_user(request, pk)
    if token_services.token_revoke(token=token, actor=request.user):
        messages.success(request, f"Token “{token.name}” ({token.prefix}…) revoked.")
    else:
        messages.info(request, f"Token “{token.name}” was already revoked.")
    return redirect("api:token-list")
