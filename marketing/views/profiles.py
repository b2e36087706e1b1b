"""Customer profiles: start a refresh on demand (imports queue one by themselves), and the
page that explains the models behind them with their measured quality."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from marketing import charts, profile_display, selectors, selectors_profiles, selectors_segments
from marketing.models import Catalog
from marketing.permissions import require_perm
from marketing.services.profiles import profile_refresh_start
from marketing.services.segments import LEARNED_K_RANGE
from marketing.views.jobs import announce_job_start


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
    announce_job_start(request, job.pk, f"Profile refresh for “{catalog.name}” queued.")
    return redirect(job)


@login_required
@require_http_methods(["GET", "HEAD"])
def profile_models(request: HttpRequest, pk: int) -> HttpResponse:
    """How the catalog's profiles, RFM segments, CLV and churn are computed, and how well."""
    catalog = selectors.catalog_get(pk=pk)
    require_perm(request.user, "marketing.view_customer")
    history = selectors_profiles.profile_run_history(catalog=catalog)
    run = history[0] if history else None
    quality = (run.quality or {}) if run else {}
    context = {
        "catalog": catalog,
        "run": run,
        "quality": quality,
        "quality_text": profile_display.quality_text(quality),
        "bias": profile_display.bias_text(quality),
        "history": [(r, profile_display.quality_text(r.quality or {})) for r in history],
        "features_used": (run.features or {}).get("used", []) if run else [],
        "dropped_sensitive": (run.features or {}).get("dropped_sensitive", []) if run else [],
        "rfm_rules": profile_display.rfm_rules(),
        "learned": selectors_segments.segment_list(catalog=catalog)["Learned"],
        "learned_k_range": LEARNED_K_RANGE,
        "nav": "catalogs",
    }
    if quality.get("clv_mae") is not None:
        context["clv_fig"] = charts.clv_quality_figure(quality, currency=catalog.currency)
    if quality.get("churn_auc") is not None:
        context["churn_fig"] = charts.churn_quality_figure(quality)
    return render(request, "marketing/profile_models.html", context)
