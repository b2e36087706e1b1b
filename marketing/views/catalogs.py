"""Catalogs: everyone signed in reads them; only admins create, edit and delete them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from marketing import selectors
from marketing.forms import CatalogForm
from marketing.models import Catalog
from marketing.permissions import require_perm
from marketing.services import catalogs as catalog_services


def _get_catalog_for_user(request: HttpRequest, pk: int, *, perm: str | None = None) -> Catalog:
    """The catalog (404 if missing), after checking `perm` when the view writes (403)."""
    catalog = selectors.catalog_get(pk=pk)
    if perm:
        require_perm(request.user, perm)
    return catalog


def _abilities(request: HttpRequest) -> dict[str, bool]:
    """What the page may offer; the views enforce it, templates only hide dead ends."""
    user = request.user
    return {
        "can_create": user.has_perm("marketing.add_catalog"),
        "can_change": user.has_perm("marketing.change_catalog"),
        "can_delete": user.has_perm("marketing.delete_catalog"),
        "can_import": user.has_perm("marketing.import_data"),
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def catalog_list(request: HttpRequest) -> HttpResponse:
    context = {
        "rows": selectors.catalog_overview(),
        "overview_scan": selectors.OVERVIEW_SCAN,
        "nav": "catalogs",
        **_abilities(request),
    }
    return render(request, "marketing/catalog_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def catalog_create(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, "marketing.add_catalog")
    form = CatalogForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            catalog = catalog_services.catalog_create(**form.cleaned_data, user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, f"Catalog “{catalog.name}” created. Import data into it next."
            )
            return redirect(catalog)
    return render(
        request, "marketing/catalog_form.html", {"form": form, "catalog": None, "nav": "catalogs"}
    )


@login_required
@require_http_methods(["GET", "HEAD"])
def catalog_detail(request: HttpRequest, pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, pk)
    context = {
        "catalog": catalog,
        "stats": selectors.catalog_stats(catalog=catalog),
        "jobs": selectors.job_list(catalog=catalog, limit=10),
        "nav": "catalogs",
        **_abilities(request),
    }
    return render(request, "marketing/catalog_detail.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def catalog_update(request: HttpRequest, pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, pk, perm="marketing.change_catalog")
    form = CatalogForm(request.POST or None, catalog=catalog)
    if request.method == "POST" and form.is_valid():
        try:
            catalog_services.catalog_update(catalog=catalog, **form.cleaned_data, user=request.user)
        except ValidationError as exc:
            catalog.refresh_from_db()
            form.add_error(None, exc)
        else:
            messages.success(request, f"Catalog “{catalog.name}” saved.")
            return redirect(catalog)
    return render(
        request,
        "marketing/catalog_form.html",
        {"form": form, "catalog": catalog, "nav": "catalogs"},
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def catalog_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation and shows what goes; only POST deletes."""
    catalog = _get_catalog_for_user(request, pk, perm="marketing.delete_catalog")
    error = None
    if request.method == "POST":
        try:
            deleted = catalog_services.catalog_delete(catalog=catalog, user=request.user)
        except Catalog.DoesNotExist as exc:  # deleted by someone else since the fetch above
            raise Http404("No such catalog.") from exc
        except catalog_services.CatalogBusy as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(
                request,
                f"Catalog “{deleted.name}” deleted with {deleted.products:,} products and "
                f"{deleted.events:,} events.",
            )
            return redirect("marketing:catalog-list")
    context = {
        "catalog": catalog,
        "stats": selectors.catalog_stats(catalog=catalog),
        "active_imports": selectors.catalog_active_imports(catalog=catalog),
        "error": error,
        "nav": "catalogs",
    }
    return render(request, "marketing/catalog_confirm_delete.html", context)
