"""Segments of a catalog: list, detail with member table, and a members CSV (no PII)."""

from __future__ import annotations

import csv

import plotly.graph_objects as go
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from marketing import selectors, selectors_segments
from marketing.analytics.sensitive import DEFAULT_SENSITIVE
from marketing.charts import figure_data
from marketing.csvsafe import safe_cell
from marketing.htmx import wants_partial
from marketing.models import Catalog, Segment
from marketing.permissions import require_perm

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
    }
    return render(request, "marketing/segment_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_segment_for_user(request, pk)
    page = selectors.paginate(
        selectors_segments.segment_profiles(segment=segment),
        page=selectors.page_number(request.GET.get("page")),
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
