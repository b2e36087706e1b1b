"""Reads of the export pages: one export, the history (global or per brief), a brief's
export panel (approved drafts, the control group, recent exports) and an export's summary
(rows left out by reason, warnings with labels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse

from copygen.exporting import PRESETS
from copygen.models import Brief, ControlMember, Draft, Export, ExportRecipient, preset_label
from copygen.services.exports import (
    SKIP_LABELS,
    WARNING_LABELS,
    ControlGroup,
    brief_control_group,
    consent_field,
)
from marketing.models import Catalog

RECENT_EXPORTS = 5
_RELATED = ("brief", "brief__segment", "catalog", "job", "created_by")


def export_get(*, pk: int) -> Export:
    """The export with its brief, catalog, job and author, or Http404."""
    return get_object_or_404(Export.objects.select_related(*_RELATED), pk=pk)


def export_list(*, brief: Brief | None = None, catalog: Catalog | None = None) -> QuerySet[Export]:
    """Exports (of the brief or catalog, or all), newest first."""
    qs = Export.objects.select_related(*_RELATED)
    if brief is not None:
        qs = qs.filter(brief=brief)
    if catalog is not None:
        qs = qs.filter(catalog=catalog)
    return qs.order_by("-created_at", "-pk")


@dataclass
class BriefExports:
    """What the brief page's export section shows."""

    approved: int
    exported: int
    control: ControlGroup | None
    control_members: int
    recent: list[Export]
    total: int


def export_brief_panel(*, brief: Brief, history: bool = True) -> BriefExports:
    """Counts of the brief's approved and exported drafts, its control group and (with
    ``history``) its recent exports."""
    approved = Draft.objects.filter(brief=brief, status=Draft.Status.APPROVED).count()
    exported = (
        ExportRecipient.objects.filter(export__brief=brief, draft__isnull=False)
        .values("draft_id")
        .distinct()
        .count()
    )
    recent = list(export_list(brief=brief)[:RECENT_EXPORTS]) if history else []
    return BriefExports(
        approved=approved,
        exported=exported,
        control=brief_control_group(brief),
        control_members=ControlMember.objects.filter(brief=brief).count(),
        recent=recent,
        total=Export.objects.filter(brief=brief).count() if history else 0,
    )


def export_summary(*, export: Export) -> dict[str, Any]:
    """The finished export in words: label, consent, rows left out by reason (most first),
    warnings with their labels and links to the drafts they name, counts per code."""
    preset = PRESETS.get(export.preset)
    consent = consent_field(preset, export.channel) if preset else None
    skipped = sorted(
        (
            {"code": code, "label": SKIP_LABELS.get(code, code), "count": n}
            for code, n in (export.skipped or {}).items()
            if n
        ),
        key=lambda r: -r["count"],
    )
    warnings = [
        {
            **w,
            "label": WARNING_LABELS.get(w.get("code", ""), w.get("code", "")),
            "draft_url": reverse("copygen:draft-detail", args=[w["draft_id"]])
            if w.get("draft_id")
            else "",
        }
        for w in export.warnings or []
    ]
    counts = sorted(
        (
            {"code": code, "label": WARNING_LABELS.get(code, code), "count": n}
            for code, n in (export.warning_counts or {}).items()
        ),
        key=lambda r: -r["count"],
    )
    total_warnings = sum(c["count"] for c in counts)
    summary = export.summary or {}
    return {
        "label": preset_label(export.preset),
        "format": preset.format if preset else "",
        "audience_list": bool(preset and preset.audience),
        "consent": consent.removeprefix("consent_") if consent else "",
        "skipped": skipped,
        "warnings": warnings,
        "warning_counts": counts,
        "warnings_total": total_warnings,
        "warnings_more": max(total_warnings - len(warnings), 0),
        "variants": sorted((summary.get("variants") or {}).items(), key=lambda kv: int(kv[0])),
        "control_from_export": summary.get("control_from_export"),
    }
