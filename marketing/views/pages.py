"""Home (the dashboard) and About."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from marketing import charts, selectors, selectors_profiles
from marketing.forms import DashboardForm
from marketing.htmx import wants_partial


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def home(request: HttpRequest) -> HttpResponse:
    """KPIs, revenue trend and profile charts of one catalog over a date range.

    The form's section re-renders alone for htmx; invalid filters fall back to defaults
    (the latest profiled catalog, the 365 days up to its last event) and are reported next to the form.
    """
    form = DashboardForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    catalog = data.get("catalog") or selectors_profiles.dashboard_default_catalog()
    # The form is re-rendered unbound with the values in effect; errors are shown beside it.
    context = {
        "form": DashboardForm(),
        "form_errors": form.errors if form.is_bound else {},
        "catalog": catalog,
        "nav": "home",
    }
    if catalog is not None:
        # Figures come from the cache while the catalog's events and profiles are unchanged.
        version = selectors_profiles.dashboard_version(catalog=catalog)
        default_from, default_to = selectors_profiles.dashboard_default_range(
            catalog=catalog, version=version
        )
        date_from = data.get("date_from") or default_from
        date_to = data.get("date_to") or default_to
        if date_from > date_to:  # only one end given, on the wrong side of the default
            date_from, date_to = default_from, default_to
        context["form"] = DashboardForm(
            initial={"catalog": catalog, "date_from": date_from, "date_to": date_to}
        )
        context.update(
            _dashboard(catalog=catalog, date_from=date_from, date_to=date_to, version=version)
        )
    if wants_partial(request):
        return render(request, "marketing/home.html#dashboard", context)
    context.update({"totals": selectors.totals(), "recent_jobs": selectors.job_list(limit=5)})
    return render(request, "marketing/home.html", context)


def _dashboard(*, catalog, date_from, date_to, version) -> dict:
    """The dashboard section's context, charts included (building them costs as much as the
    cached queries), kept while the catalog's data is unchanged (see dashboard_version)."""
    return selectors_profiles.version_cached(
        version,
        f"section:{date_from}:{date_to}:{catalog.currency}",
        lambda: _dashboard_section(catalog=catalog, date_from=date_from, date_to=date_to),
    )


def _dashboard_section(*, catalog, date_from, date_to) -> dict:
    kpis = selectors_profiles.dashboard_kpis(catalog=catalog, date_from=date_from, date_to=date_to)
    months = selectors_profiles.dashboard_revenue_by_month(
        catalog=catalog, date_from=date_from, date_to=date_to
    )
    run = selectors_profiles.profile_run_latest(catalog=catalog)
    sizes = selectors_profiles.profile_segment_sizes(catalog=catalog)
    cells = selectors_profiles.profile_rf_grid(catalog=catalog)
    return {
        "date_from": date_from,
        "date_to": date_to,
        "kpis": kpis,
        "trend_fig": charts.monthly_value_figure(months, currency=catalog.currency)
        if months
        else None,
        "profile_run": run,
        "segment_sizes": sizes,
        "rf_cells": cells,
        "heatmap_fig": charts.rf_heatmap_figure(cells, currency=catalog.currency)
        if cells
        else None,
        "segments_fig": charts.segment_sizes_figure(sizes) if sizes else None,
    }


@require_http_methods(["GET", "HEAD"])
def about(request: HttpRequest) -> HttpResponse:
    return render(request, "marketing/about.html", {"nav": "about"})
