"""A catalog's categories: derived ones (named clusters of product text) that admins rename
inline, or, for catalogs with their own categories, those paths read-only.

Rename is the inline-edit shape: the row (`_category_row.html`) swaps between display and
form with htmx; without JavaScript the Rename link opens a page with the same form and a
successful POST redirects back to the list.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from marketing import selectors, selectors_categories
from marketing.htmx import wants_partial
from marketing.models import Catalog, DerivedCategory
from marketing.permissions import require_perm
from marketing.services import categories as category_services

VIEW_PERM = "marketing.view_derivedcategory"
RENAME_PERM = "marketing.change_derivedcategory"


class CategoryRenameForm(forms.Form):
    name = forms.CharField(
        max_length=category_services.NAME_MAX,
        label="New name",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )


def _get_catalog_for_user(request: HttpRequest, pk: int) -> Catalog:
    catalog = selectors.catalog_get(pk=pk)
    require_perm(request.user, VIEW_PERM)
    return catalog


def _get_category_for_user(
    request: HttpRequest, pk: int, *, write: bool = False
) -> DerivedCategory:
    """The category (404 if missing), once the user may read it, or rename it (403)."""
    category = selectors_categories.derived_category_get(pk=pk)
    require_perm(request.user, RENAME_PERM if write else VIEW_PERM)
    return category


def _list_url(category: DerivedCategory) -> str:
    url = reverse("marketing:category-list", args=[category.catalog_id])
    return f"{url}#category-{category.pk}"


@login_required
@require_http_methods(["GET", "HEAD"])
def category_list(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, catalog_pk)
    overview = selectors_categories.category_overview(catalog=catalog)
    context = {
        "catalog": catalog,
        "overview": overview,
        "categories": selectors_categories.derived_category_list(catalog=catalog),
        "own_categories": []
        if overview.derived
        else selectors_categories.own_category_counts(catalog=catalog),
        "share_percent": round(category_services.DERIVE_BELOW_SHARE * 100),
        "can_rename": request.user.has_perm(RENAME_PERM),
        "nav": "catalogs",
    }
    return render(request, "marketing/category_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def category_row(request: HttpRequest, pk: int) -> HttpResponse:
    """The row in display mode (the inline form's Cancel); a plain GET goes to the list."""
    category = _get_category_for_user(request, pk)
    if not wants_partial(request):
        return redirect(_list_url(category))
    context = {
        "category": selectors_categories.derived_category_row(category=category),
        "can_rename": request.user.has_perm(RENAME_PERM),
    }
    return render(request, "marketing/_category_row.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
def category_rename(request: HttpRequest, pk: int) -> HttpResponse:
    category = _get_category_for_user(request, pk, write=True)
    form = CategoryRenameForm(
        request.POST or None, initial={"name": category.name}, auto_id=f"category-{pk}-%s"
    )
    if request.method == "POST" and form.is_valid():
        try:
            renamed = category_services.category_rename(
                user=request.user, category=category, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if renamed.refresh_job is None:
                messages.info(request, "The name is unchanged.")
            else:
                messages.success(
                    request,
                    f"Renamed “{renamed.old_name}” to “{renamed.category.name}”. Customer "
                    "profiles and segment descriptions are being refreshed to use the new "
                    "name (see Jobs).",
                )
            if wants_partial(request):
                context = {
                    "category": selectors_categories.derived_category_row(
                        category=renamed.category
                    ),
                    "can_rename": True,
                    "messages_oob": True,
                }
                return render(request, "marketing/_category_row.html", context)
            return redirect(_list_url(category))
    context = {
        "catalog": category.catalog,
        "category": selectors_categories.derived_category_row(category=category),
        "form": form,
        "editing": True,
        "can_rename": True,
        "nav": "catalogs",
    }
    if wants_partial(request):
        # Invalid input re-renders the form at 200: htmx 2 does not swap 4xx responses.
        return render(request, "marketing/_category_row.html", context)
    return render(request, "marketing/category_rename.html", context)
