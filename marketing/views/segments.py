"""Segments of a catalog: list, detail with member table, a members CSV (no PII), and the
rule segment builder (create, edit, delete, live count)."""

from __future__ import annotations

import csv

import plotly.graph_objects as go
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from marketing import selectors, selectors_segments
from marketing.analytics.rules import RuleError, describe_rule
from marketing.analytics.sensitive import DEFAULT_SENSITIVE
from marketing.charts import figure_data
from marketing.csvsafe import safe_cell
from marketing.htmx import wants_partial
from marketing.models import Catalog, Segment
from marketing.permissions import require_perm
from marketing.segment_builder import Builder, Problem, field_groups
from marketing.services import segments as segment_services
from recommendations.selectors import model_run_current, segment_recommendations

VIEW_PERM = "marketing.view_customer"
CSV_HEADER = [
    "external_id",
    "country",
    "language",
    "rfm_segment",
    "recency_days",
    "frequency",
    "monetary",
    "clv_12m",
    "churn_probability",
]


def _get_catalog_for_user(request: HttpRequest, pk: int) -> Catalog:
    """The catalog (404 if missing), once the user may see customers (403)."""
    catalog = selectors.catalog_get(pk=pk)
    require_perm(request.user, VIEW_PERM)
    return catalog


def _get_segment_for_user(request: HttpRequest, pk: int) -> Segment:
    """The segment (404 if missing), once the user may see customers (403)."""
    segment = selectors_segments.segment_get(pk=pk)
    require_perm(request.user, VIEW_PERM)
    return segment


def _get_rule_segment_for_user(request: HttpRequest, pk: int, *, perm: str) -> Segment:
    """A rule segment (404 if missing or another kind), once the user holds `perm` (403)."""
    segment = selectors_segments.segment_get(pk=pk)
    if segment.kind != Segment.Kind.RULE:
        raise Http404("Only rule segments are edited here.")
    require_perm(request.user, VIEW_PERM)
    require_perm(request.user, perm)
    return segment


def _abilities(request: HttpRequest) -> dict[str, bool]:
    """What the page may offer; the views enforce it, templates only hide dead ends."""
    user = request.user
    return {
        "can_add": user.has_perm("marketing.add_segment"),
        "can_change": user.has_perm("marketing.change_segment"),
        "can_delete": user.has_perm("marketing.delete_segment"),
    }


@login_required
@require_http_methods(["GET", "HEAD"])
def segment_list(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, catalog_pk)
    groups = selectors_segments.segment_list(catalog=catalog)
    context = {
        "catalog": catalog,
        "groups": groups,
        "empty": not any(groups.values()),
        "sensitive": DEFAULT_SENSITIVE,
        "nav": "catalogs",
        **_abilities(request),
    }
    return render(request, "marketing/segment_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_segment_for_user(request, pk)
    page = selectors_segments.segment_member_page(
        segment=segment, page=selectors.page_number(request.GET.get("page"))
    )
    context = {
        "segment": segment,
        "catalog": segment.catalog,
        "page": page,
        "members": page.object_list,
        "nav": "catalogs",
    }
    if wants_partial(request):
        return render(request, "marketing/segment_detail.html#members", context)
    stats = selectors_segments.segment_stats(segment=segment)
    context.update(
        stats=stats,
        fig=figure_data(_members_figure(segment, stats)) if stats.size else None,
        sensitive=DEFAULT_SENSITIVE,
        **_abilities(request),
    )
    if request.user.has_perm("recommendations.view_recommendation"):
        run = model_run_current(catalog=segment.catalog)
        context.update(
            rec_run=run,
            recs=segment_recommendations(segment=segment, run=run)[:10] if run else [],
        )
    if segment.kind == Segment.Kind.RULE:
        context.update(
            rule_text=_describe(segment.rule),
            has_profiles=selectors_segments.segment_has_profiles(catalog=segment.catalog),
        )
    return render(request, "marketing/segment_detail.html", context)


def _members_figure(segment: Segment, stats: selectors_segments.SegmentStats) -> go.Figure:
    """Members by country for RFM segments (one RFM segment each), else by RFM segment."""
    if segment.kind == Segment.Kind.RFM:
        rows, title = stats.top_countries, "Members by country (top 5)"
    else:
        rows, title = stats.by_rfm_segment, "Members by RFM segment"
    fig = go.Figure(
        go.Bar(x=[r["name"] or "—" for r in rows], y=[r["n"] for r in rows], marker_color="#3b5bdb")
    )
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=300)
    return fig


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_http_methods(["GET", "HEAD"])
def segment_members_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    segment = _get_segment_for_user(request, pk)
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_HEADER)
        for row in selectors_segments.segment_member_rows(segment=segment):
            yield writer.writerow([safe_cell(value) for value in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-members.csv"'
    return response


# --------------------------------------------------------------------------- rule builder


def _describe(rule: dict) -> str:
    try:
        return describe_rule(rule)
    except RuleError:  # a rule stored before a validation change; show it, do not crash
        return "(this rule is no longer valid: edit it to fix it)"


def _require_builder(request: HttpRequest) -> None:
    """The builder's helpers (live count) serve those who may create or change segments."""
    require_perm(request.user, VIEW_PERM)
    user = request.user
    if not (user.has_perm("marketing.add_segment") or user.has_perm("marketing.change_segment")):
        raise PermissionDenied("Missing permission marketing.add_segment")


def _preview(catalog: Catalog, builder: Builder) -> dict:
    """The live count's context: the preview, or the rule's problems in words."""
    try:
        preview = selectors_segments.segment_rule_preview(catalog=catalog, rule=builder.rule())
    except RuleError as exc:
        return {"preview": None, "problems": builder.problems(exc.errors)}
    return {"preview": preview, "problems": []}


def _builder_page(
    request: HttpRequest,
    *,
    catalog: Catalog,
    segment: Segment | None,
    builder: Builder,
    errors: dict[str, list[str]] | None = None,
    problems: list[Problem] | None = None,
) -> HttpResponse:
    if segment is None:
        action = reverse("marketing:segment-create", args=[catalog.pk])
        cancel = reverse("marketing:segment-list", args=[catalog.pk])
    else:
        action = reverse("marketing:segment-update", args=[segment.pk])
        cancel = segment.get_absolute_url()
    context = {
        "catalog": catalog,
        "segment": segment,
        "builder": builder,
        "root": builder.view(problems),
        "errors": errors or {},
        "form_action": action,
        "count_url": reverse("marketing:segment-count", args=[catalog.pk]),
        "cancel_url": cancel,
        "field_groups": field_groups(),
        "nav": "catalogs",
        **_preview(catalog, builder),  # the one count of this request
    }
    if request.method == "POST" and wants_partial(request):
        # The category suggestions (a <datalist> outside the builder) stay on the page.
        return render(request, "marketing/segment_form.html#builder", context)
    context["categories"] = selectors_segments.catalog_rule_categories(catalog=catalog)
    return render(request, "marketing/segment_form.html", context)


def _builder_post(
    request: HttpRequest, *, catalog: Catalog, segment: Segment | None
) -> HttpResponse:
    """Save (the "save" button), or apply a builder action and show the builder again."""
    saving = "save" in request.POST
    builder = Builder.from_post(request.POST, reset_changed=not saving and wants_partial(request))
    if not saving:
        builder.apply(request.POST.get("action", ""))
        return _builder_page(request, catalog=catalog, segment=segment, builder=builder)
    fields = {"name": builder.name, "description": builder.description, "rule": builder.rule()}
    try:
        if segment is None:
            saved = segment_services.segment_rule_create(
                user=request.user, catalog=catalog, **fields
            )
        else:
            saved = segment_services.segment_rule_update(
                user=request.user, segment=segment, **fields
            )
    except ValidationError as exc:
        by_field = exc.error_dict if hasattr(exc, "error_dict") else {"__all__": exc.error_list}
        rule_errors = [(e.params["path"], e.messages[0]) for e in by_field.pop("rule", [])]
        errors = {key: [m for e in errs for m in e.messages] for key, errs in by_field.items()}
        problems = builder.problems(rule_errors)
        if problems:
            errors["rule"] = [p.text for p in problems]
        return _builder_page(
            request,
            catalog=catalog,
            segment=segment,
            builder=builder,
            errors=errors,
            problems=problems,
        )
    if saved.size or selectors_segments.segment_has_profiles(catalog=catalog):
        note = f"{saved.size:,} customer{'s' if saved.size != 1 else ''}"
    else:
        note = "no profiles yet; it fills after the first profile refresh"
    messages.success(request, f"Rule segment “{saved.name}” saved: {note}.")
    return redirect(saved)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
def segment_create(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    catalog = _get_catalog_for_user(request, catalog_pk)
    require_perm(request.user, "marketing.add_segment")
    if request.method == "POST":
        return _builder_post(request, catalog=catalog, segment=None)
    return _builder_page(request, catalog=catalog, segment=None, builder=Builder.new())


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
@vary_on_headers("HX-Request")
def segment_update(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_rule_segment_for_user(request, pk, perm="marketing.change_segment")
    if request.method == "POST":
        return _builder_post(request, catalog=segment.catalog, segment=segment)
    builder = Builder.from_rule(
        name=segment.name, description=segment.description, rule=segment.rule
    )
    return _builder_page(request, catalog=segment.catalog, segment=segment, builder=builder)


@login_required
@require_POST
def segment_count(request: HttpRequest, catalog_pk: int) -> HttpResponse:
    """The builder's live count for the posted (unsaved) rule."""
    catalog = _get_catalog_for_user(request, catalog_pk)
    _require_builder(request)
    builder = Builder.from_post(request.POST)
    context = {"catalog": catalog, **_preview(catalog, builder)}
    return render(request, "marketing/_segment_rule_count.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_rule_segment_for_user(request, pk, perm="marketing.delete_segment")
    if request.method == "POST":
        segment_services.segment_rule_delete(user=request.user, segment=segment)
        messages.success(request, f"Rule segment “{segment.name}” deleted.")
        return redirect("marketing:segment-list", segment.catalog_id)
    context = {
        "segment": segment,
        "catalog": segment.catalog,
        "rule_text": _describe(segment.rule),
        "nav": "catalogs",
    }
    return render(request, "marketing/segment_confirm_delete.html", context)
