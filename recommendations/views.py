"""Recommendation runs: list, start, a run's progress and results (model comparison, per
segment, segment lists), and a customer preview under the run's or edited rules.

Everyone with `view_modelrun` reads runs; `add_modelrun` starts and cancels them (cancel also
needs `marketing.change_job`, as for any job). The preview shows a customer's purchases, so
it needs `view_recommendation` and `marketing.view_customer`.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from marketing import charts
from marketing import selectors as marketing_selectors
from marketing.htmx import stop_polling_when_finished, wants_partial
from marketing.models import Catalog, Customer
from marketing.permissions import require_perm
from marketing.selectors_segments import catalog_rule_categories
from marketing.services import jobs as job_services
from marketing.views.jobs import CANCEL_MESSAGES, announce_job_start
from recommendations import selectors
from recommendations.forms import PreviewRulesForm, RunForm, rules_initial
from recommendations.models import ModelRun
from recommendations.services import (
    ModelRunActive,
    algorithms_available,
    model_run_cancel,
    model_run_start,
)
from recommendations.services.artifacts import ArtifactMissing
from recommendations.services.runs import MAX_BUDGET_S

VIEW_RUNS = "recommendations.view_modelrun"
ADD_RUN = "recommendations.add_modelrun"
VIEW_RECS = "recommendations.view_recommendation"
RUNS_PER_PAGE = 25
SEGMENT_LIST_SHOWN = 5

# Why a product the model ranked high is not in the final list (postprocess.REMOVAL_RULES).
REMOVAL_LABELS = {
    "out_of_stock": "Out of stock",
    "category": "Category filter",
    "price": "Price range",
    "exclude_bought": "Already bought",
    "bury": "Buried",
    "diversity": "Diversity (λ) chose others",
    "displaced": "Pushed below the cut by boosts or pins",
}


def _get_catalog_for_user(request: HttpRequest, pk: int, *, perm: str = VIEW_RUNS) -> Catalog:
    """The catalog (404 if missing), once the user holds `perm` (403)."""
    catalog = marketing_selectors.catalog_get(pk=pk)
    require_perm(request.user, perm)
    return catalog


def _get_run_for_user(request: HttpRequest, pk: int, *, write: bool = False) -> ModelRun:
    """The run (404 if missing), once the user may see runs (403) or, to write, start and
    cancel them."""
    run = selectors.model_run_get(pk=pk)
    require_perm(request.user, VIEW_RUNS)
    if write:
        require_perm(request.user, ADD_RUN)
        require_perm(request.user, "marketing.change_job")
    return run


def _get_preview_for_user(
    request: HttpRequest, pk: int, customer_pk: int
) -> tuple[ModelRun, Customer]:
    """The run and a (not erased) customer, 404 if either is missing; 403 unless the user may
    see recommendations and customers."""
    run = selectors.model_run_get(pk=pk)
    customer = marketing_selectors.customer_get(pk=customer_pk)
    if customer.erased_at is not None:
        raise Http404("This customer was erased.")
    for perm in (VIEW_RUNS, VIEW_RECS, "marketing.view_customer"):
        require_perm(request.user, perm)
    return run, customer


def _abilities(request: HttpRequest) -> dict[str, bool]:
    """What the pages may offer; the views enforce it, templates only hide dead ends."""
    user = request.user
    return {
        "can_start": user.has_perm(ADD_RUN),
        "can_cancel": user.has_perm(ADD_RUN) and user.has_perm("marketing.change_job"),
        "can_preview": user.has_perm(VIEW_RECS) and user.has_perm("marketing.view_customer"),
    }


# ------------------------------------------------------------------------------- list


def _selected_test_ndcg(run: ModelRun) -> float | None:
    models = (run.comparison or {}).get("models") or {}
    return (models.get(run.selected_algorithm) or {}).get("ndcg@10")


@login_required
@require_http_methods(["GET", "HEAD"])
def run_list(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, catalog_pk)
    page = Paginator(selectors.model_run_list(catalog=catalog), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "catalog": catalog,
        "page": page,
        "rows": [{"run": run, "ndcg": _selected_test_ndcg(run)} for run in page.object_list],
        "active": selectors.model_run_active(catalog=catalog),
        "nav": "catalogs",
        **_abilities(request),
    }
    return render(request, "recommendations/run_list.html", context)


# ------------------------------------------------------------------------------ start


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def run_create(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, catalog_pk, perm=ADD_RUN)
    form = RunForm(request.POST or None, catalog=catalog)
    active = selectors.model_run_active(catalog=catalog)
    if request.method == "POST" and form.is_valid():
        try:
            run = model_run_start(
                catalog=catalog,
                user=request.user,
                algorithms=form.algorithm_names(),
                rules=form.rules(),
                budget_s=form.cleaned_data["budget_s"],
            )
        except ModelRunActive as exc:
            active = exc.run
            form.add_error(None, exc.messages[0])
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            announce_job_start(request, run.job_id, f"Recommendation run #{run.pk} started.")
            return redirect("recommendations:run-detail", run.pk)
    context = {
        "catalog": catalog,
        "form": form,
        "active": active,
        "categories": catalog_rule_categories(catalog=catalog),
        "max_budget": MAX_BUDGET_S,
        "nav": "catalogs",
    }
    return render(request, "recommendations/run_form.html", context)


# ----------------------------------------------------------------------------- detail


def _status_context(run: ModelRun) -> dict:
    """What `_job_status.html` needs to poll and cancel through the run's own URLs."""
    return {
        "job": job_services.job_live_progress(run.job),
        "status_url": reverse("recommendations:run-status", args=[run.pk]),
        "cancel_url": reverse("recommendations:run-cancel", args=[run.pk]),
        "unit": "steps",
    }


def _param_text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _model_table(run: ModelRun, rows: list[selectors.ModelRow]) -> list[dict]:
    """One dict per model with the table's numbers (metric names hold '@', which templates
    cannot look up)."""
    stored = (run.comparison or {}).get("models", {}) | (run.comparison or {}).get(
        "buy_again_models", {}
    )
    out = []
    for row in rows:
        m = row.metrics
        out.append(
            {
                "name": row.name,
                "selected": row.selected,
                "validation": row.validation.get("score"),
                "trials": row.validation.get("trials", len(row.trials)),
                "failed_trials": row.validation.get("failed_trials", 0),
                "search_s": row.validation.get("search_s"),
                "ndcg": m.get("ndcg@10"),
                "recall": m.get("recall@20"),
                "map": m.get("map@10"),
                "hr": m.get("hr@10"),
                "coverage": m.get("coverage@10"),
                "novelty": m.get("novelty@10"),
                "diversity": m.get("diversity@10"),
                "fit_s": row.fit_s,
                "score_s": (stored.get(row.name) or {}).get("score_s"),
                "params": [(k, _param_text(v)) for k, v in sorted(row.params.items())],
            }
        )
    return out


def _segment_context(run: ModelRun, comparison: selectors.Comparison, model: str | None) -> dict:
    """The per-segment view of one model (the selected one unless `model` names another)."""
    rows = {row.name: row for row in comparison.models}
    chosen = rows.get(model or "") or rows.get(comparison.selected) or next(iter(rows.values()))
    segments = [
        {
            "name": name,
            "users": int(values.get("users") or 0),
            "ndcg": values.get("ndcg@10"),
            "recall": values.get("recall@10"),
            "hr": values.get("hr@10"),
            "map": values.get("map@10"),
            "value": values.get("ndcg@10"),
        }
        for name, values in sorted(
            chosen.segments.items(), key=lambda item: -(item[1].get("users") or 0)
        )
    ]
    overall = chosen.metrics.get("ndcg@10")
    return {
        "run": run,
        "segment_models": list(rows),
        "segment_model": chosen.name,
        "segment_rows": segments,
        "segment_fig": charts.segment_metric_figure(segments, overall=overall, label="NDCG@10")
        if segments
        else None,
    }


CAMPAIGN_KINDS = (("click", "Clicks"), ("purchase", "Conversions"))


def _campaign_context(run: ModelRun) -> dict | None:
    """The "Campaign feedback" card from ``comparison["campaign"]`` (see
    recommendations.services.campaign_check); None for runs from before the check."""
    block = (run.comparison or {}).get("campaign")
    if not isinstance(block, dict):
        return None
    previous = block.get("previous_run")
    labels = {
        "previous": f"Run #{previous}'s model" if previous else "Previous run's model",
        "current": "This run's model",
        "stored": f"Run #{previous}'s stored lists (what was sent)",
    }
    rows = []
    for row in block.get("rows") or []:
        scores = row.get("scores") or {}
        rows.append(
            {
                "key": row.get("key"),
                "label": labels.get(row.get("key"), row.get("key")),
                "algorithm": row.get("algorithm") or "",
                "reason": row.get("reason"),
                "same_as": labels.get(row.get("same_as")) if row.get("same_as") else None,
                "without_list": row.get("without_list"),
                "kinds": [scores.get(kind) or {} for kind, _ in CAMPAIGN_KINDS],
            }
        )
    dropped = {"no_history": 0, "unknown_product": 0, "already_bought": 0}
    for counts in (block.get("dropped") or {}).values():
        for key in dropped:
            dropped[key] += int(counts.get(key) or 0)
    events = block.get("events") or {}
    scored = block.get("scored") or {}
    return {
        "compared": block.get("status") == "compared",
        "reason": block.get("reason"),
        "previous_run": previous,
        "since": _parse_time(block.get("since")),
        "cutoff": _parse_time(block.get("cutoff")),
        "k": block.get("k"),
        "customers": block.get("customers"),
        "clicks": events.get("click", 0),
        "conversions": events.get("purchase", 0),
        "scored": [(label, scored.get(kind) or {}) for kind, label in CAMPAIGN_KINDS],
        "dropped": dropped,
        "kinds": [label for _, label in CAMPAIGN_KINDS],
        "rows": rows,
    }


def _parse_time(value):
    return parse_datetime(value) if isinstance(value, str) else None


def _rules_display(run: ModelRun) -> list[tuple[str, list]]:
    """The run's rules in words (label, lines), products by SKU and title."""
    rules = run.rules or {}
    products = selectors.rule_products(catalog=run.catalog, rules=rules)

    def named(pk) -> str:
        product = products.get(int(pk))
        return f"{product.sku} · {product.title}" if product else f"deleted product #{pk}"

    out: list[tuple[str, list]] = [
        ("List length", [f"{rules.get('top_n', 20)} products"]),
        ("Already bought", ["left out" if rules.get("exclude_bought", True) else "allowed"]),
        ("Stock", ["in stock only" if rules.get("in_stock_only", True) else "any"]),
    ]
    if rules.get("include_categories"):
        out.append(("Only categories", list(rules["include_categories"])))
    if rules.get("exclude_categories"):
        out.append(("Never categories", list(rules["exclude_categories"])))
    lo, hi = rules.get("price_min"), rules.get("price_max")
    if lo is not None or hi is not None:
        if lo is not None and hi is not None:
            price = f"{lo:g} – {hi:g}"
        else:
            price = f"from {lo:g}" if lo is not None else f"up to {hi:g}"
        out.append(("Price", [f"{price} {run.catalog.currency}"]))
    boosts = [f"{named(k)} × {v:g}" for k, v in (rules.get("boost") or {}).items()]
    boosts += [f"{k} × {v:g}" for k, v in (rules.get("boost_categories") or {}).items()]
    if boosts:
        out.append(("Boost", boosts))
    for key, label in (("pin", "Pinned"), ("bury", "Buried")):
        if rules.get(key):
            out.append((label, [named(pk) for pk in rules[key]]))
    lam = rules.get("mmr_lambda", 1.0)
    out.append(("Diversity", ["none (λ = 1)" if lam >= 1 else f"λ = {lam:g}"]))
    return out


def _results_context(request: HttpRequest, run: ModelRun) -> dict:
    comparison = selectors.model_run_comparison(run=run)
    context: dict = {
        "run": run,
        "catalog": run.catalog,
        "comparison": comparison,
        "rules": _rules_display(run),
        "auto_algorithms": algorithms_available(),
        "campaign": _campaign_context(run),
        **_abilities(request),
    }
    if comparison.models:
        table = _model_table(run, comparison.models)
        context.update(
            models=table,
            buy_again=_model_table(run, comparison.buy_again),
            comparison_fig=charts.model_comparison_figure(table),
            **_segment_context(run, comparison, request.GET.get("model")),
        )
    if run.status == ModelRun.Status.SUCCEEDED and run.is_current:
        context["segment_lists"] = [
            {"segment": s, "rows": s.run_rows[:SEGMENT_LIST_SHOWN], "total": len(s.run_rows)}
            for s in selectors.run_segment_lists(run=run)
        ]
    context["previewable"] = bool(run.artifact) and run.status == ModelRun.Status.SUCCEEDED
    query = request.GET.get("q", "").strip()
    context["q"] = query
    if context["previewable"] and query and context["can_preview"]:
        context["matches"] = selectors.preview_customer_search(catalog=run.catalog, q=query)
    return context


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Parameters, the job's progress while it runs, then the results; htmx (after the
    `job-finished` event) re-renders only the results."""
    run = _get_run_for_user(request, pk)
    context = _results_context(request, run)
    if wants_partial(request):
        return render(request, "recommendations/run_detail.html#results", context)
    if run.job is not None:
        context.update(_status_context(run))
    context["nav"] = "catalogs"
    return render(request, "recommendations/run_detail.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
def run_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The polled progress card; once the job ends, polling stops and `job-finished` fires."""
    run = _get_run_for_user(request, pk)
    if run.job is None:
        raise Http404("This run has no job.")
    context = _status_context(run)
    response = render(request, "marketing/_job_status.html", context)
    return stop_polling_when_finished(request, response, context["job"])


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run_for_user(request, pk, write=True)
    outcome = model_run_cancel(run=run, user=request.user)
    run.refresh_from_db()
    if wants_partial(request) and run.job is not None:
        context = _status_context(run)
        response = render(request, "marketing/_job_status.html", context)
        if not context["job"].is_active:
            trigger_client_event(response, "job-finished", {"id": run.job_id, "status": run.status})
        return response
    level, text = CANCEL_MESSAGES[outcome]
    messages.add_message(request, level, text)
    return redirect("recommendations:run-detail", run.pk)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def run_segments(request: HttpRequest, pk: int) -> HttpResponse:
    """The per-segment quality of the model chosen in `?model=` (htmx swaps it in)."""
    run = _get_run_for_user(request, pk)
    model = request.GET.get("model", "")
    if not wants_partial(request):
        url = reverse("recommendations:run-detail", args=[run.pk])
        return redirect(f"{url}?{urlencode({'model': model})}#segments")
    comparison = selectors.model_run_comparison(run=run)
    if not comparison.models:
        raise Http404("This run has no comparison yet.")
    context = _segment_context(run, comparison, model)
    return render(request, "recommendations/_segment_metrics.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def run_customers(request: HttpRequest, pk: int) -> HttpResponse:
    """Customers of the run's catalog whose external id matches `?q=`, to preview."""
    run = _get_run_for_user(request, pk)
    for perm in (VIEW_RECS, "marketing.view_customer"):
        require_perm(request.user, perm)
    query = request.GET.get("q", "").strip()
    if not wants_partial(request):
        url = reverse("recommendations:run-detail", args=[run.pk])
        return redirect(f"{url}?{urlencode({'q': query})}#preview")
    context = {
        "run": run,
        "q": query,
        "matches": selectors.preview_customer_search(catalog=run.catalog, q=query),
    }
    return render(request, "recommendations/_customer_matches.html", context)


# ---------------------------------------------------------------------------- preview


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def run_preview(request: HttpRequest, pk: int, customer_pk: int) -> HttpResponse:
    """A customer's history beside their lists under the run's model, with what the rules
    removed; `?edit=1&…` re-ranks under edited rules (nothing is stored)."""
    run, customer = _get_preview_for_user(request, pk, customer_pk)
    catalog = run.catalog
    products = selectors.rule_products(catalog=catalog, rules=run.rules)
    edited = "edit" in request.GET
    form = PreviewRulesForm(
        request.GET if edited else None,
        catalog=catalog,
        initial={**rules_initial(run.rules, products), "edit": "1"},
    )
    preview = missing = None
    if not edited or form.is_valid():
        try:
            preview = selectors.customer_preview(
                run=run, customer=customer, rules=form.rules() if edited else None
            )
        except ArtifactMissing:
            missing = True
        except ValidationError as exc:
            form.add_service_errors(exc)
    context = {
        "run": run,
        "catalog": catalog,
        "customer": customer,
        "form": form,
        "edited": edited,
        "preview": preview,
        "missing": missing,
        "history": preview.history
        if preview
        else selectors.customer_history(catalog=catalog, customer=customer),
        "removal_labels": REMOVAL_LABELS,
        "categories": catalog_rule_categories(catalog=catalog),
        "nav": "catalogs",
    }
    if preview is not None:
        context["removed"] = [
            {"product": item.product, "rule": REMOVAL_LABELS.get(item.rule, item.rule)}
            for item in preview.removed
        ]
    if wants_partial(request):
        return render(request, "recommendations/run_preview.html#preview", context)
    return render(request, "recommendations/run_preview.html", context)
