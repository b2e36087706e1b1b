"""Reading segments: lists, one segment's statistics and its members (Profile ⋈ membership),
and the rule builder's live count and category suggestions."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Avg, Count, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from marketing.models import (
    Catalog,
    Product,
    Profile,
    Segment,
    SegmentMembership,
    effective_category,
)
from marketing.segment_rules import catalog_as_of, rule_q
from marketing.selectors import PAGE_SIZE, ApproxCount, PageSlice
from marketing.selectors_profiles import version_cached

TOP_N = 5


@dataclass(frozen=True)
class SegmentStats:
    size: int
    revenue: float
    avg_r: float | None
    avg_f: float | None
    avg_m: float | None
    top_categories: list[dict]  # [{"name": ..., "n": ...}]
    top_countries: list[dict]
    by_rfm_segment: list[dict]


def segment_get(*, pk: int) -> Segment:
    """The segment (with its catalog) or Http404."""
    return get_object_or_404(Segment.objects.select_related("catalog"), pk=pk)


def segment_list(*, catalog: Catalog) -> dict[str, list[Segment]]:
    """The catalog's segments grouped by kind label, in the order of Segment.Kind."""
    groups: dict[str, list[Segment]] = {label: [] for _, label in Segment.Kind.choices}
    for segment in Segment.objects.filter(catalog=catalog).order_by("kind", "-size", "name"):
        groups[segment.get_kind_display()].append(segment)
    return groups


def segment_profiles(*, segment: Segment) -> QuerySet[Profile]:
    """The members' profiles in the segment's catalog, biggest spenders first."""
    return (
        Profile.objects.filter(
            catalog_id=segment.catalog_id, customer__segment_memberships__segment=segment
        )
        .select_related("customer")
        .order_by("-monetary", "customer_id")
    )


def segment_member_page(*, segment: Segment, page: int, per_page: int = PAGE_SIZE) -> PageSlice:
    """One page of members' profiles, biggest spenders first, total from ``segment.size``.

    The order comes from the memberships' copied spend (one index range, whatever the
    segment's size); the page's profiles and customers are then fetched by key.
    """
    offset = (page - 1) * per_page
    ids = list(
        SegmentMembership.objects.filter(segment=segment)
        .order_by("-monetary", "customer_id")
        .values_list("customer_id", flat=True)[offset : offset + per_page + 1]
    )
    profiles = Profile.objects.filter(
        catalog_id=segment.catalog_id, customer_id__in=ids[:per_page]
    ).select_related("customer")
    by_customer = {p.customer_id: p for p in profiles}
    return PageSlice(
        object_list=[by_customer[i] for i in ids[:per_page] if i in by_customer],
        number=page,
        per_page=per_page,
        has_next=len(ids) > per_page,
        total=ApproxCount(segment.size),  # kept exact by every membership write
    )


def _top(qs: QuerySet[Profile], field: str, *, exclude_blank: bool = True) -> list[dict]:
    rows = qs.order_by()
    if exclude_blank:
        rows = rows.exclude(**{field: ""})
    return [
        {"name": row[field], "n": row["n"]}
        for row in rows.values(field).annotate(n=Count("pk")).order_by("-n", field)[:TOP_N]
    ]


def segment_version(segment: Segment) -> str:
    """A token that changes whenever the segment's members or their profiles may have:
    refreshes rewrite members and stamp ``refreshed_at``, rule edits move ``updated_at``,
    erasures lower ``size``."""
    parts = (
        connection.settings_dict["NAME"],
        segment.pk,
        segment.refreshed_at,
        segment.updated_at,
        segment.size,
    )
    text = "|".join(p.isoformat() if isinstance(p, dt.datetime) else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def segment_stats(*, segment: Segment) -> SegmentStats:
    """Size, revenue, average RFM, top categories/countries (cached per segment version:
    five aggregates over every member are too slow to repeat on each page view)."""
    return version_cached(
        segment_version(segment), f"segment-stats:{segment.pk}", lambda: _segment_stats(segment)
    )


def segment_stats_warm(*, catalog: Catalog) -> int:
    """Compute (and cache) the statistics of every segment of the catalog; returns how many."""
    segments = list(Segment.objects.filter(catalog=catalog))
    for segment in segments:
        segment_stats(segment=segment)
    return len(segments)


def _segment_stats(segment: Segment) -> SegmentStats:
    profiles = segment_profiles(segment=segment)
    totals = profiles.order_by().aggregate(
        size=Count("pk"),
        revenue=Sum("monetary"),
        avg_r=Avg("r_score"),
        avg_f=Avg("f_score"),
        avg_m=Avg("m_score"),
    )
    by_segment = [
        {"name": row["rfm_segment"], "n": row["n"]}
        for row in profiles.order_by()
        .values("rfm_segment")
        .annotate(n=Count("pk"))
        .order_by("-n", "rfm_segment")
    ]
    return SegmentStats(
        size=totals["size"],
        revenue=totals["revenue"] or 0.0,
        avg_r=totals["avg_r"],
        avg_f=totals["avg_f"],
        avg_m=totals["avg_m"],
        top_categories=_top(profiles, "top_category"),
        top_countries=_top(profiles, "customer__country"),
        by_rfm_segment=by_segment,
    )


def segment_member_rows(*, segment: Segment) -> Iterator[tuple]:
    """CSV rows of the members, without personal data (no email, no name)."""
    return (
        segment_profiles(segment=segment)
        .values_list(
            "customer__external_id",
            "customer__country",
            "customer__language",
            "rfm_segment",
            "recency_days",
            "frequency",
            "monetary",
            "clv_12m",
            "churn_probability",
        )
        .iterator(chunk_size=2000)
    )


# --------------------------------------------------------------------------- rule builder

MAX_CATEGORY_SUGGESTIONS = 500


@dataclass(frozen=True)
class RulePreview:
    count: int
    profiled: int  # the catalog's profiled customers
    as_of: dt.datetime | None

    @property
    def percent(self) -> float:
        return 100.0 * self.count / self.profiled if self.profiled else 0.0


def segment_rule_preview(*, catalog: Catalog, rule: Any) -> RulePreview:
    """How many of the catalog's profiled customers the rule matches (RuleError if invalid).

    One query counts both: all profiles, and those the rule keeps (``COUNT … FILTER``).
    """
    as_of = catalog_as_of(catalog)
    match = rule_q(rule, catalog=catalog, as_of=as_of or timezone.now())
    totals = Profile.objects.filter(catalog=catalog).aggregate(
        profiled=Count("pk"), count=Count("pk", filter=match)
    )
    return RulePreview(count=totals["count"], profiled=totals["profiled"], as_of=as_of)


def segment_has_profiles(*, catalog: Catalog) -> bool:
    return Profile.objects.filter(catalog=catalog).exists()


def catalog_rule_categories(
    *, catalog: Catalog, limit: int = MAX_CATEGORY_SUGGESTIONS
) -> list[str]:
    """The catalog's effective categories (own, else derived) and every parent path of them,
    sorted, for the builder's suggestions ("Home" covers "Home > Kitchen")."""
    paths = (
        Product.objects.filter(catalog=catalog)
        .annotate(path=effective_category())
        .exclude(path="")
        .order_by("path")
        .values_list("path", flat=True)
        .distinct()
    )
    names: set[str] = set()
    for path in paths[: limit * 4]:
        parts = [p.strip() for p in path.split(">")]
        for depth in range(1, len(parts) + 1):
            names.add(" > ".join(parts[:depth]))
    return sorted(names, key=str.casefold)[:limit]
