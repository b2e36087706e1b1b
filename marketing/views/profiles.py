"""Customer profiles: start a refresh on demand (imports queue one by themselves)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from marketing import selectors
from marketing.models import Catalog
from marketing.permissions import require_perm
from marketing.services.profiles import profile_refresh_start


def _get_catalog_for_refresh(request: HttpRequest, pk: int) -> Catalog:
    """The catalog (404 if missing), once the user may refresh its profiles (403)."""
    catalog = selectors.catalog_get(pk=pk)
    require_perm(request.user, "marketing.import_data")
    return catalog


@login_required
@require_POST
def profile_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    catalog = _get_catalog_for_refresh(request, pk)
    job = profile_refresh_start(catalog=catalog, user=request.user)
    messages.success(request, f"Profile refresh for “{catalog.name}” queued.")
    return redirect(job)
