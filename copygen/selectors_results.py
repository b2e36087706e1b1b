"""Reads of the campaign results pages: a brief's variants compared on the campaign tool's
numbers, its uplift against the control group measured from the store's purchases, and a
catalog's overview per channel and per brief.

Everything is aggregated in the database (conditional COUNT, SUM(revenue), SUM(revenue²))
into ``GroupCounts`` per variant, so 100k results cost one grouped scan; the statistics are
``copygen.experiments``'s. Two sources, never mixed:

* **Campaign tool** (``CampaignResult``): sent, delivered, opened, clicked, converted and
  revenue as the tool reported them for the people an export sent copy to. Control members
  were sent nothing, so the tool knows nothing about them.
* **Store purchases** (``Event`` kind purchase, quantity > 0): for uplift, both arms are
  measured the same way: did the person buy, and for how much, within
  ``CAMPAIGN_ATTRIBUTION_DAYS`` of the export that first sent them copy (recipients) or
  first held them out (control)?
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    FilteredRelation,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.utils import timezone

from copygen.experiments import (
    METRICS,
    Comparison,
    GroupCounts,
    GroupSummary,
    MeanEstimate,
    Summary,
    TestResult,
    WinnerRule,
    rate_estimate,
    revenue_per_recipient_from_sums,
    summarize,
)
from copygen.models import (
    CHANNEL_LABELS,
    LOCALE_LABELS,
    Brief,
    CampaignResult,
    ControlMember,
    Export,
    ExportRecipient,
)
from marketing.models import Catalog, Event, EventKind, Job, Segment

CONTROL = "Control"
NO_SEGMENT = "No RFM segment"
DEFAULT_METRIC = "click"
METRIC_LABELS = {"open": "Open rate", "click": "Click rate", "conversion": "Conversion rate"}
SLICES = {
    "all": "All recipients",
    "locale": "By language",
    "segment": "By RFM segment",
    "channel": "By channel",
}
# Control members have no language or channel (nothing was sent to them): uplift is sliced
# only by what both arms have.
UPLIFT_SLICES = ("all", "segment")


def variant_name(variant: int) -> str:
    return f"Variant {variant}"


# ----------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ResultsStatus:
    """How much a brief has to show: imported result rows (and from how many exports, the
    latest import), people its exports sent copy to, its control group, and its exports
    that wrote a file (``export_ids``, newest first: the ones whose results can come in)."""

    results: int
    exports: int
    latest: dt.datetime | None
    recipients: int
    control: int
    export_ids: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.results


def results_brief_status(*, brief: Brief) -> ResultsStatus:
    """Counts for the brief's results panel and page header (three small queries)."""
    imported = CampaignResult.objects.filter(brief=brief).aggregate(
        n=Count("pk"), exports=Count("export_id", distinct=True), latest=Max("updated_at")
    )
    export_ids = tuple(
        Export.objects.filter(brief=brief, job__status=Job.Status.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .values_list("pk", flat=True)
    )
    return ResultsStatus(
        results=imported["n"],
        exports=imported["exports"],
        latest=imported["latest"],
        recipients=ExportRecipient.objects.filter(export__brief=brief).count(),
        control=ControlMember.objects.filter(brief=brief).count(),
        export_ids=export_ids,
    )


# ----------------------------------------------------------------------------- aggregation


def _aggregates() -> dict[str, Any]:
    """Per group of result rows (sent ones only): counts over everything sent and over the
    delivered rows alone, so the caller picks the denominator without a second query."""
    delivered = Q(delivered=True)
    revenue_sq = F("revenue") * F("revenue")
    return {
        "n_sent": Count("pk"),
        "n_unknown": Count("pk", filter=Q(delivered__isnull=True)),
        "n_delivered": Count("pk", filter=delivered),
        "n_opened": Count("pk", filter=Q(opened=True)),
        "n_clicked": Count("pk", filter=Q(clicked=True)),
        "n_converted": Count("pk", filter=Q(converted=True)),
        "n_opened_d": Count("pk", filter=delivered & Q(opened=True)),
        "n_clicked_d": Count("pk", filter=delivered & Q(clicked=True)),
        "n_converted_d": Count("pk", filter=delivered & Q(converted=True)),
        "n_revenue": Count("revenue"),
        "revenue_sum": Sum("revenue"),
        "revenue_sumsq": Sum(revenue_sq),
        "revenue_sum_d": Sum("revenue", filter=delivered),
        "revenue_sumsq_d": Sum(revenue_sq, filter=delivered),
    }


def _float(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _group_counts(
    name: str, row: Mapping[str, Any], *, by_delivered: bool, with_revenue: bool
) -> GroupCounts:
    """A row of ``_aggregates`` as GroupCounts: over delivered rows when every row of the
    comparison reports delivery, else over sent; unreported revenue counts as 0 once any row
    of the comparison has revenue (tools often report it only for buyers)."""
    suffix = "_d" if by_delivered else ""
    revenue = (
        (_float(row["revenue_sum" + suffix]), _float(row["revenue_sumsq" + suffix]))
        if with_revenue
        else (None, None)
    )
    return GroupCounts(
        name=name,
        sent=row["n_sent"],
        delivered=row["n_delivered"] if by_delivered else None,
        opened=row["n_opened" + suffix],
        clicked=row["n_clicked" + suffix],
        converted=row["n_converted" + suffix],
        revenue_sum=revenue[0],
        revenue_sumsq=revenue[1],
    )


def _rfm_segments(catalog_id: int) -> dict[int, str]:
    return dict(
        Segment.objects.filter(catalog_id=catalog_id, kind=Segment.Kind.RFM).values_list(
            "pk", "name"
        )
    )


def _with_slice(qs: QuerySet, slice_by: str, segments: Mapping[int, str]) -> QuerySet:
    """``qs`` annotated with ``slice_key``: the locale, the channel, the customer's current
    RFM segment's id (None without one) or "" (everyone)."""
    if slice_by == "locale":
        return qs.annotate(slice_key=F("locale"))
    if slice_by == "channel":
        return qs.annotate(slice_key=F("channel"))
    if slice_by == "segment" and segments:
        # Through the membership rows of the catalog's RFM segments (a customer is in one).
        return qs.annotate(
            rfm=FilteredRelation(
                "customer__segment_memberships",
                condition=Q(customer__segment_memberships__segment_id__in=list(segments)),
            ),
            slice_key=F("rfm__segment_id"),
        )
    if slice_by == "segment":  # the catalog has no RFM segments (no profiles yet)
        return qs.annotate(slice_key=Value(None, output_field=IntegerField()))
    return qs.annotate(slice_key=Value("", output_field=CharField()))


def _slice_label(slice_by: str, key: Any, segments: Mapping[int, str]) -> str:
    if slice_by == "locale":
        return LOCALE_LABELS.get(key, key or "unknown")
    if slice_by == "channel":
        return CHANNEL_LABELS.get(key, key or "unknown")
    if slice_by == "segment":
        return segments.get(key, NO_SEGMENT) if key is not None else NO_SEGMENT
    return SLICES["all"]


@dataclass(frozen=True)
class ResultSlice:
    """One slice (everyone, a language, a segment, a channel) of a comparison: the groups'
    counts, the summary of ``copygen.experiments`` and notes on where the numbers come from."""

    key: str
    label: str
    groups: tuple[GroupCounts, ...]
    summary: Summary
    notes: tuple[str, ...] = ()

    @property
    def recipients(self) -> int:
        return sum(g.recipients for g in self.groups)

    @property
    def denominator(self) -> str:
        return self.groups[0].denominator if self.groups else "sent"

    @property
    def has_revenue(self) -> bool:
        return any(g.revenue_sum is not None for g in self.groups)

    @property
    def has_opens(self) -> bool:
        """False when no group has a single open: the channel (SMS) or the tool reports
        none, and "0.0%" would mislead."""
        return any(g.opened for g in self.groups)

    @property
    def comparison_rows(self) -> list[ComparisonRow]:
        """The summary's comparisons for reading: against control as they are; between
        variants turned so that the leader comes first (a positive difference)."""
        rates = {g.name: getattr(g, self.summary.metric).rate for g in self.summary.groups}
        return [
            ComparisonRow.of(c, rates, flip=self.summary.control is None and c.test.diff < 0)
            for c in self.summary.comparisons
        ]


@dataclass(frozen=True)
class ComparisonRow:
    """One comparison as the page shows it: ``group`` against ``reference``."""

    group: str
    reference: str
    diff: float
    diff_low: float
    diff_high: float
    relative: float
    p_adjusted: float
    prob_to_beat: float
    revenue: TestResult | None

    @classmethod
    def of(cls, c: Comparison, rates: Mapping[str, float], *, flip: bool) -> ComparisonRow:
        if not flip:
            t = c.test
            return cls(
                c.group,
                c.reference,
                t.diff,
                t.diff_low,
                t.diff_high,
                c.uplift.relative,
                c.p_adjusted,
                c.prob_to_beat,
                c.revenue,
            )
        t, r = c.test, c.revenue
        revenue = None
        if r is not None:
            revenue = TestResult(r.statistic, r.p_value, -r.diff, -r.diff_high, -r.diff_low, r.df)
        # Turned round, the old reference is the group: relative to the old group's rate.
        base = rates.get(c.group, math.nan)
        relative = rates.get(c.reference, math.nan) / base - 1 if base else math.nan
        return cls(
            c.reference,
            c.group,
            -t.diff,
            -t.diff_high,
            -t.diff_low,
            relative,
            c.p_adjusted,
            1 - c.prob_to_beat,
            revenue,
        )


def _order_slices(slices: list[ResultSlice]) -> list[ResultSlice]:
    """Biggest first; "No RFM segment" last."""
    return sorted(slices, key=lambda s: (s.label == NO_SEGMENT, -s.recipients, s.label))


def _clean_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def _clean_slice(slice_by: str) -> str:
    if slice_by not in SLICES:
        raise ValueError(f"slice must be one of {', '.join(SLICES)}, got {slice_by!r}")
    return slice_by


# ----------------------------------------------------------------------------- variants


def _variant_rows(
    brief: Brief, slice_by: str, segments: Mapping[int, str]
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """The aggregates per slice key and variant (one grouped query): [(key, [row…])] with
    rows holding ``variant`` and the counts of ``_aggregates``."""
    qs = _with_slice(CampaignResult.objects.filter(brief=brief, sent=True), slice_by, segments)
    rows = qs.values("slice_key", "variant").annotate(**_aggregates()).order_by("variant")
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["slice_key"], []).append(row)
    return list(grouped.items())


def results_variants(
    *,
    brief: Brief,
    metric: str = DEFAULT_METRIC,
    slice_by: str = "all",
    rule: WinnerRule | None = None,
) -> list[ResultSlice]:
    """The variants compared on the campaign tool's numbers, one ``ResultSlice`` per slice
    (``summarize(groups, control=None, metric=metric)``); empty without results."""
    metric = _clean_metric(metric)
    segments = _rfm_segments(brief.catalog_id) if _clean_slice(slice_by) == "segment" else {}
    slices = []
    for key, rows in _variant_rows(brief, slice_by, segments):
        by_delivered = all(r["n_unknown"] == 0 for r in rows)
        with_revenue = any(r["n_revenue"] for r in rows)
        groups = [
            _group_counts(
                variant_name(r["variant"]), r, by_delivered=by_delivered, with_revenue=with_revenue
            )
            for r in rows
        ]
        notes = []
        if not by_delivered and any(r["n_unknown"] < r["n_sent"] for r in rows):
            notes.append(
                "Some results report delivery and some do not: every rate here divides by "
                "the messages sent."
            )
        slices.append(
            ResultSlice(
                key="" if key is None else str(key),
                label=_slice_label(slice_by, key, segments),
                groups=tuple(groups),
                summary=summarize(groups, control=None, metric=metric, rule=rule),
                notes=tuple(notes),
            )
        )
    return _order_slices(slices)


# ----------------------------------------------------------------------------- uplift


@dataclass(frozen=True)
class AttributionWindow:
    """The purchase window of the people an export first sent copy to or held out."""

    export_id: int
    start: dt.datetime
    end: dt.datetime
    sent: int
    held_out: int
    is_open: bool


@dataclass(frozen=True)
class UpliftResults:
    """Variants and control measured from store purchases in each person's window."""

    days: int
    windows: tuple[AttributionWindow, ...]
    slice_by: str
    slices: tuple[ResultSlice, ...]
    control_members: int
    control_sent: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def still_open(self) -> bool:
        return any(w.is_open for w in self.windows)


def _windows(brief: Brief, days: int, now: dt.datetime) -> list[AttributionWindow]:
    sent = dict(
        ExportRecipient.objects.filter(export__brief=brief)
        .values("export_id")
        .annotate(n=Count("pk"))
        .values_list("export_id", "n")
    )
    held = dict(
        ControlMember.objects.filter(brief=brief)
        .values("export_id")
        .annotate(n=Count("pk"))
        .values_list("export_id", "n")
    )
    exports = Export.objects.filter(
        pk__in=set(sent) | set(held), finished_at__isnull=False
    ).order_by("finished_at", "pk")
    span = dt.timedelta(days=days)
    return [
        AttributionWindow(
            export_id=e.pk,
            start=e.finished_at,
            end=e.finished_at + span,
            sent=sent.get(e.pk, 0),
            held_out=held.get(e.pk, 0),
            is_open=e.finished_at + span > now,
        )
        for e in exports
    ]


def _window_bounds(windows: Sequence[AttributionWindow]) -> dict[str, Case]:
    """``start_at`` / ``end_at`` of each row's export, as CASE over the brief's exports
    (computed here, so no date arithmetic differs between PostgreSQL and SQLite)."""
    out = DateTimeField()
    return {
        "start_at": Case(
            *(When(export_id=w.export_id, then=Value(w.start, output_field=out)) for w in windows),
            default=Value(None, output_field=out),
            output_field=out,
        ),
        "end_at": Case(
            *(When(export_id=w.export_id, then=Value(w.end, output_field=out)) for w in windows),
            default=Value(None, output_field=out),
            output_field=out,
        ),
    }


def _purchases_per_arm(
    arms: QuerySet, catalog_id: int, windows: Sequence[AttributionWindow]
) -> list[tuple[Any, int, int, int, Any, Any]]:
    """(slice_key, arm, people, buyers, revenue, revenue²) per slice and arm of ``arms`` (a
    queryset annotated with slice_key and arm, one row per person) from their purchase
    events inside their window. Two queries: the people per arm, then the buyers, whose
    purchases are summed per person and then per arm (only buyers reach the second
    grouping, so its cost follows the purchases, not the audience)."""
    people = {
        (row["slice_key"], row["arm"]): row["n"]
        for row in arms.values("slice_key", "arm").annotate(n=Count("pk")).order_by()
    }
    if not people:
        return []
    arm_sql, arm_params = (
        arms.annotate(**_window_bounds(windows))
        .values("slice_key", "arm", "customer_id", "start_at", "end_at")
        .query.sql_with_params()
    )
    event = connection.ops.quote_name(Event._meta.db_table)
    sql = (
        # Only our own table name is interpolated; values go in as parameters.
        "SELECT per.slice_key, per.arm, COUNT(*), SUM(per.v), SUM(per.v * per.v) "
        "FROM (SELECT a.slice_key, a.arm, a.customer_id, COALESCE(SUM(e.value), 0) AS v "
        f"FROM ({arm_sql}) a JOIN {event} e ON e.customer_id = a.customer_id "
        "AND e.occurred_at >= a.start_at AND e.occurred_at < a.end_at "
        "WHERE e.catalog_id = %s AND e.kind = %s AND e.quantity > 0 "
        # The span of all windows as constants lets the planner skip the events outside
        # every window through the (catalog, time) index before joining.
        "AND e.occurred_at >= %s AND e.occurred_at < %s "
        "GROUP BY a.slice_key, a.arm, a.customer_id) per "
        "GROUP BY per.slice_key, per.arm"
    )
    field = Event._meta.get_field("occurred_at")
    span = [
        field.get_db_prep_value(min(w.start for w in windows), connection),
        field.get_db_prep_value(max(w.end for w in windows), connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*arm_params, catalog_id, EventKind.PURCHASE.value, *span])
        bought = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
    return [(key, arm, n, *bought.get((key, arm), (0, 0, 0))) for (key, arm), n in people.items()]


def results_uplift(
    *,
    brief: Brief,
    slice_by: str = "all",
    days: int | None = None,
    now: dt.datetime | None = None,
    rule: WinnerRule | None = None,
) -> UpliftResults | None:
    """Each variant's people and the control group, measured from store purchases in
    their attribution window; ``summarize(…, control="Control", metric="conversion")`` per
    slice. None when the brief has no control group.

    Recipients count once, in the variant of the first export that sent them copy (later
    exports of the brief repeat the same people); control members whom an export of the
    brief did send copy to (an earlier export without a control group) are left out of the
    control arm and counted in ``control_sent``. Slices other than everyone and RFM segment
    fall back to everyone: control members have no language or channel."""
    _clean_slice(slice_by)
    days = settings.CAMPAIGN_ATTRIBUTION_DAYS if days is None else days
    now = now or timezone.now()
    control_members = ControlMember.objects.filter(brief=brief).count()
    if not control_members:
        return None
    notes = []
    if slice_by not in UPLIFT_SLICES:
        notes.append(
            f"Control members were sent nothing, so they have no {slice_by}: this comparison "
            "covers everyone."
        )
        slice_by = "all"
    windows = _windows(brief, days, now)
    segments = _rfm_segments(brief.catalog_id) if slice_by == "segment" else {}
    sent_by_brief = ExportRecipient.objects.filter(
        export__brief_id=brief.pk, customer_id=OuterRef("customer_id")
    )
    recipients = _with_slice(
        ExportRecipient.objects.filter(export__brief=brief), slice_by, segments
    ).annotate(arm=F("variant"))
    if sum(1 for w in windows if w.sent) > 1:  # people sent again count from their first
        recipients = recipients.exclude(
            Exists(sent_by_brief.filter(export_id__lt=OuterRef("export_id")))
        )
    control = (
        _with_slice(ControlMember.objects.filter(brief=brief), slice_by, segments)
        .exclude(Exists(sent_by_brief))
        .annotate(arm=Value(0, output_field=IntegerField()))
    )
    rows = (
        _purchases_per_arm(recipients, brief.catalog_id, windows)
        + _purchases_per_arm(control, brief.catalog_id, windows)
        if windows
        else []
    )
    control_kept = sum(r[2] for r in rows if r[1] == 0)
    per_slice: dict[Any, list[GroupCounts]] = {}
    for key, arm, people, buyers, revenue, revenue_sq in rows:
        name = CONTROL if arm == 0 else variant_name(arm)
        per_slice.setdefault(key, []).append(
            GroupCounts(
                name=name,
                sent=people,
                converted=buyers,
                revenue_sum=_float(revenue),
                revenue_sumsq=_float(revenue_sq),
            )
        )
    slices = []
    for key, groups in per_slice.items():
        groups.sort(key=lambda g: (g.name == CONTROL, _variant_number(g.name)))
        if not any(g.name == CONTROL for g in groups):  # summary notes it has no recipients
            groups.append(GroupCounts(name=CONTROL, sent=0, revenue_sum=0.0, revenue_sumsq=0.0))
        slices.append(
            ResultSlice(
                key="" if key is None else str(key),
                label=_slice_label(slice_by, key, segments),
                groups=tuple(groups),
                summary=summarize(groups, control=CONTROL, metric="conversion", rule=rule),
            )
        )
    return UpliftResults(
        days=days,
        windows=tuple(windows),
        slice_by=slice_by,
        slices=tuple(_order_slices(slices)),
        control_members=control_members,
        control_sent=control_members - control_kept,
        notes=tuple(notes),
    )


def _variant_number(name: str) -> int:
    return int(name.rsplit(" ", 1)[-1]) if name.startswith("Variant ") else 0


# ----------------------------------------------------------------------------- overview


@dataclass(frozen=True)
class OverviewRow:
    """One channel or brief of a catalog's results: its counts and estimates (no test:
    channels and briefs reach different people, so they are described, not compared)."""

    key: str
    label: str
    counts: GroupCounts
    estimates: GroupSummary
    brief: Brief | None = None


@dataclass(frozen=True)
class CatalogResults:
    catalog: Catalog
    results: int
    latest: dt.datetime | None
    by_channel: tuple[OverviewRow, ...]
    by_brief: tuple[OverviewRow, ...]


def _estimates(counts: GroupCounts) -> GroupSummary:
    n = counts.recipients
    if counts.revenue_sum is None or counts.revenue_sumsq is None:
        revenue = MeanEstimate(n, math.nan, math.nan, math.nan)
    else:
        revenue = revenue_per_recipient_from_sums(n, counts.revenue_sum, counts.revenue_sumsq)
    return GroupSummary(
        name=counts.name,
        is_control=False,
        recipients=n,
        denominator=counts.denominator,
        open=rate_estimate(counts.opened, n),
        click=rate_estimate(counts.clicked, n),
        conversion=rate_estimate(counts.converted, n),
        revenue=revenue,
    )


def _overview_row(key: str, label: str, row: Mapping[str, Any], **extra: Any) -> OverviewRow:
    counts = _group_counts(
        label,
        row,
        by_delivered=row["n_unknown"] == 0,
        with_revenue=bool(row["n_revenue"]),
    )
    return OverviewRow(key=key, label=label, counts=counts, estimates=_estimates(counts), **extra)


def results_catalog_overview(*, catalog: Catalog) -> CatalogResults:
    """The catalog's results per channel and per brief (two grouped queries), biggest first."""
    base = CampaignResult.objects.filter(brief__catalog=catalog, sent=True)
    total = CampaignResult.objects.filter(brief__catalog=catalog).aggregate(
        n=Count("pk"), latest=Max("updated_at")
    )
    channels = [
        _overview_row(r["channel"], CHANNEL_LABELS.get(r["channel"], r["channel"]), r)
        for r in base.values("channel").annotate(**_aggregates()).order_by("channel")
    ]
    rows = list(base.values("brief_id").annotate(**_aggregates()).order_by("brief_id"))
    briefs = Brief.objects.in_bulk([r["brief_id"] for r in rows])
    by_brief = [
        _overview_row(
            str(r["brief_id"]), briefs[r["brief_id"]].name, r, brief=briefs[r["brief_id"]]
        )
        for r in rows
    ]
    return CatalogResults(
        catalog=catalog,
        results=total["n"],
        latest=total["latest"],
        by_channel=tuple(sorted(channels, key=lambda r: -r.counts.sent)),
        by_brief=tuple(sorted(by_brief, key=lambda r: -r.counts.sent)),
    )


def results_catalogs() -> list[Catalog]:
    """Catalogs with imported results first (most recent import first), then the rest by
    name: the overview's choice, and its default."""
    latest = {
        row["brief__catalog_id"]: row["latest"]
        for row in CampaignResult.objects.values("brief__catalog_id")
        .annotate(latest=Max("updated_at"))
        .order_by()
    }
    catalogs = list(Catalog.objects.order_by("name"))
    with_results = sorted(
        (c for c in catalogs if c.pk in latest), key=lambda c: latest[c.pk], reverse=True
    )
    return with_results + [c for c in catalogs if c.pk not in latest]
