"""Campaign results: a brief's results page (variants compared on the campaign tool's
numbers, uplift against the control group from store purchases, both with charts), the
brief page's small results panel, and a catalog's overview per channel and per brief.

Reading results needs ``copygen.view_campaignresult`` (admins, marketers, approvers); the
pages only read. The metric and the slice are GET parameters: htmx swaps the analysis
section in place (``results_brief.html#analysis``), and the same URL renders the whole
page without JavaScript.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from copygen import charts_results as charts
from copygen import selectors_briefs
from copygen import selectors_results as selectors
from copygen.experiments import METRICS
from copygen.models import Brief
from marketing.htmx import render_page
from marketing.models import Catalog
from marketing.permissions import require_perm

VIEW = "copygen.view_campaignresult"
ADD = "copygen.add_campaignresult"
ADD_EXPORT = "copygen.add_export"


def _get_brief_for_user(request: HttpRequest, pk: int) -> Brief:
    """The brief (404 if missing), once the user may read campaign results (403)."""
    brief = selectors_briefs.brief_get(pk=pk)
    require_perm(request.user, VIEW)
    return brief


def _choice(request: HttpRequest, name: str, allowed, default: str) -> str:
    """A GET parameter among ``allowed``; anything else (or nothing) is the default."""
    value = request.GET.get(name, "")
    return value if value in allowed else default


def _next_step(request: HttpRequest, brief: Brief, status: selectors.ResultsStatus) -> dict:
    """The empty state's way forward: import the latest export's results, or export first."""
    if status.export_ids:
        latest = status.export_ids[0]
        return {"url": reverse("copygen:results-import", args=[latest]), "export_id": latest}
    if request.user.has_perm(ADD_EXPORT):
        return {"url": reverse("copygen:export-create", args=[brief.pk]), "export_id": None}
    return {"url": "", "export_id": None}


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def brief_results(request: HttpRequest, pk: int) -> HttpResponse:
    """The brief's results: per variant (rates with intervals, comparisons, a suggested
    winner only with evidence) and, with a control group, the uplift from purchases."""
    brief = _get_brief_for_user(request, pk)
    metric = _choice(request, "metric", METRICS, selectors.DEFAULT_METRIC)
    slice_by = _choice(request, "slice", selectors.SLICES, "all")
    status = selectors.results_brief_status(brief=brief)
    variants = selectors.results_variants(brief=brief, metric=metric, slice_by=slice_by)
    uplift = selectors.results_uplift(brief=brief, slice_by=slice_by)
    context = {
        "brief": brief,
        "catalog": brief.catalog,
        "status": status,
        "metric": metric,
        "metric_label": selectors.METRIC_LABELS[metric],
        "metrics": selectors.METRIC_LABELS,
        "slice_by": slice_by,
        "slices": selectors.SLICES,
        "variants": variants,
        "sliced": slice_by != "all",
        "variant_fig": charts.rate_figure(variants, metric=metric) if variants else None,
        "uplift": uplift,
        "uplift_sliced": bool(uplift and uplift.slice_by != "all"),
        "uplift_fig": charts.rate_figure(uplift.slices, metric="conversion")
        if uplift and uplift.slices
        else None,
        "next_step": _next_step(request, brief, status),
        "can_import": request.user.has_perm(ADD),
        "results_url": reverse("copygen:brief-results", args=[brief.pk]),
        "nav": "copy",
    }
    return render_page(request, "copygen/results_brief.html", context, partial="analysis")


@login_required
@require_http_methods(["GET", "HEAD"])
def brief_results_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The brief page's results card (loaded by htmx): how many results were imported,
    when, and the way to the results page."""
    brief = _get_brief_for_user(request, pk)
    status = selectors.results_brief_status(brief=brief)
    context = {
        "brief": brief,
        "status": status,
        "next_step": _next_step(request, brief, status),
        "can_import": request.user.has_perm(ADD),
    }
    return render(request, "copygen/results_panel.html", context)


def _catalog(request: HttpRequest, catalogs: list[Catalog]) -> Catalog | None:
    raw = request.GET.get("catalog", "")
    if raw.isdigit():
        chosen = next((c for c in catalogs if c.pk == int(raw)), None)
        if chosen is not None:
            return chosen
    return catalogs[0] if catalogs else None


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def results_overview(request: HttpRequest) -> HttpResponse:
    """A catalog's campaign results per channel and per brief, rates with intervals
    (``?catalog=``; by default the catalog with the latest import)."""
    require_perm(request.user, VIEW)
    catalogs = selectors.results_catalogs()
    catalog = _catalog(request, catalogs)
    overview = selectors.results_catalog_overview(catalog=catalog) if catalog else None
    context = {
        "catalogs": catalogs,
        "catalog": catalog,
        "overview": overview,
        "channel_fig": charts.overview_figure(overview.by_channel)
        if overview and overview.by_channel
        else None,
        "nav": "copy",
    }
    return render_page(request, "copygen/results_overview.html", context, partial="overview")
