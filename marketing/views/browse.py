"""Browsing products and customers: searchable lists and detail pages, read-only.

Lists re-render only their results section for htmx (`page.html#results`) and push the
query string to the address bar, so reload, back and shared links show the same state;
without JavaScript the same forms and links work as plain GETs.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from copygen.selectors import customer_drafts
from marketing import charts, selectors
from marketing.forms import CustomerFilterForm, ProductFilterForm
from marketing.htmx import wants_partial
from marketing.models import Catalog, Customer, Product, Profile
from marketing.permissions import require_perm
from marketing.profile_display import quality_text, segment_explanation, weekday_name
from marketing.selectors_profiles import (
    customer_profiles,
    customer_segments,
    customer_spend_by_month,
)
from recommendations.selectors import customer_recommendations

RECENT_EVENTS = 20
TIMELINE_PAGE_SIZE = 25

# Catalogs and products need no permission beyond being signed in (every role may browse).
# Customers are personal data: their pages need marketing.view_customer (every role has it;
# an account without a role does not), as segments and profiles do.
VIEW_CUSTOMERS = "marketing.view_customer"


def _get_catalog_for_user(request: HttpRequest, pk: int) -> Catalog:
    return selectors.catalog_get(pk=pk)


def _get_product_for_user(request: HttpRequest, pk: int) -> Product:
    return selectors.product_get(pk=pk)


def _get_customer_for_user(request: HttpRequest, pk: int) -> Customer:
    """The customer (404 if missing), once the user may see customers (403)."""
    customer = selectors.customer_get(pk=pk)
    require_perm(request.user, VIEW_CUSTOMERS)
    return customer


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def product_list(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, catalog_pk)
    form = ProductFilterForm(
        request.GET or None, categories=selectors.catalog_categories(catalog=catalog)
    )
    form.is_valid()
    filters = form.filters()
    products = selectors.product_search(catalog=catalog, **filters)
    unsorted = selectors.product_search(
        catalog=catalog, **{**filters, "sort": selectors.ProductSort.TITLE}
    )
    page = selectors.paginate(
        products, page=selectors.page_number(request.GET.get("page")), count_qs=unsorted
    )
    context = {
        "catalog": catalog,
        "form": form,
        "page": page,
        "products": page.object_list,
        "sort": filters["sort"],
        "best_selling": filters["sort"] == selectors.ProductSort.BEST_SELLING,
        "filtered": any(
            filters[key] not in ("", None) for key in ("q", "category", "price_min", "price_max")
        )
        or filters["in_stock"] is not None,
        "nav": "catalogs",
    }
    if wants_partial(request):
        return render(request, "marketing/product_list.html#results", context)
    return render(request, "marketing/product_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    product = _get_product_for_user(request, pk)
    months = selectors.product_sales_by_month(product=product)
    context = {
        "product": product,
        "catalog": product.catalog,
        "attributes": sorted((product.attributes or {}).items()),
        "months": months,
        "sales": _sales_totals(months),
        "fig": charts.sales_by_month_figure(months, currency=product.catalog.currency)
        if months
        else None,
        "events": selectors.product_recent_events(product=product, limit=RECENT_EVENTS),
        "recent_limit": RECENT_EVENTS,
        "nav": "catalogs",
    }
    return render(request, "marketing/product_detail.html", context)


def _sales_totals(months: list[selectors.MonthlySales]) -> dict:
    return {
        "units_purchased": sum(m.units_purchased for m in months),
        "revenue": sum((m.revenue for m in months), start=0),
        "units_returned": sum(m.units_returned for m in months),
        "refunds": sum((m.refunds for m in months), start=0),
    }


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def customer_list(request: HttpRequest) -> HttpResponse:
    require_perm(request.user, VIEW_CUSTOMERS)
    form = CustomerFilterForm(request.GET or None, countries=selectors.customer_countries())
    form.is_valid()
    filters = form.filters()
    # Erased customers are anonymous rows with nothing to show: lists leave them out.
    customers = selectors.customer_search(**filters).filter(erased_at__isnull=True)
    in_catalog = filters["catalog"] is not None
    page = selectors.paginate(
        customers,
        page=selectors.page_number(request.GET.get("page")),
        # Without a text search the count filters on equality only, so the estimate is good;
        # not for the catalog's semi-join (see CATALOG_FILTER_COUNT_CAP), counted to a bound.
        estimate=not filters["q"] and not in_catalog,
        cap=selectors.CATALOG_FILTER_COUNT_CAP if in_catalog else selectors.COUNT_CAP,
    )
    context = {
        "form": form,
        "page": page,
        "customers": page.object_list,
        "filtered": bool(filters["q"] or filters["country"]),
        "nav": "customers",
    }
    if wants_partial(request):
        return render(request, "marketing/customer_list.html#results", context)
    return render(request, "marketing/customer_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Facts, attributes and a paginated timeline; htmx pages re-render only the timeline."""
    customer = _get_customer_for_user(request, pk)
    if customer.erased_at is not None:  # nothing left but the anonymous row
        return render(
            request, "marketing/customer_erased.html", {"customer": customer, "nav": "customers"}
        )
    summary = selectors.customer_summary(customer=customer)
    timeline = selectors.paginate(
        selectors.customer_events(customer=customer),
        page=selectors.page_number(request.GET.get("page")),
        per_page=TIMELINE_PAGE_SIZE,
        count=False,
    )
    timeline.total = summary.events
    context = {
        "customer": customer,
        "timeline": timeline,
        "summary": summary,
        "can_erase": request.user.has_perm("marketing.delete_customer"),
        "nav": "customers",
    }
    if wants_partial(request):
        return render(request, "marketing/customer_detail.html#timeline", context)
    plain, sensitive = selectors.customer_attributes(customer=customer)
    profiles = list(customer_profiles(customer=customer))
    context.update(
        {
            "attributes": plain,
            "sensitive_attributes": sensitive,
            "profiles": [_profile_view(customer, p) for p in profiles],
            **_recommendations_view(request, customer, profiles),
            # The newest drafts written for this customer; None hides the section.
            "drafts": customer_drafts(customer=customer)
            if request.user.has_perm("copygen.view_draft")
            else None,
        }
    )
    return render(request, "marketing/customer_detail.html", context)


def _recommendations_view(request: HttpRequest, customer: Customer, profiles: list) -> dict:
    """The current run's lists in each catalog the customer has a profile in; nothing for
    users who may not see recommendations."""
    user = request.user
    if not user.has_perm("recommendations.view_recommendation"):
        return {"recommendations": None}
    return {
        "recommendations": [
            {
                "catalog": p.catalog,
                "lists": customer_recommendations(catalog=p.catalog, customer=customer),
            }
            for p in profiles
        ],
        "can_start_run": user.has_perm("recommendations.add_modelrun"),
        "can_preview_run": user.has_perm("marketing.view_customer"),
    }


def _profile_view(customer: Customer, profile: Profile) -> dict:
    """One catalog's profile with its words, the run's quality and its two charts."""
    currency = profile.catalog.currency
    months = customer_spend_by_month(customer=customer, catalog=profile.catalog)
    return {
        "profile": profile,
        "run": profile.run,
        "segment_explanation": segment_explanation(profile.rfm_segment),
        "segments": customer_segments(customer=customer, catalog_id=profile.catalog_id),
        "weekday": weekday_name(profile.preferred_weekday),
        "quality": quality_text(profile.run.quality),
        "spend_id": f"spend-fig-{profile.catalog_id}",
        "categories_id": f"categories-fig-{profile.catalog_id}",
        "spend_fig": charts.monthly_value_figure(months, currency=currency) if months else None,
        "categories_fig": charts.category_mix_figure(profile.top_categories)
        if profile.top_categories
        else None,
    }
