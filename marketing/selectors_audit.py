"""Reads for the audit log page: filtered entries, a link to each entry's object while it
exists, and a one-line summary of its details.

An entry names its object by type and primary key only (`marketing.services.audit`), so the
page labels it the same way ("Customer #12"): never by the object's own text, which for a
customer would be personal data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import Model, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.text import capfirst

from marketing.models import AuditEvent

# The object types the app records, for the filter (a type only old entries carry still
# shows, labelled by its name, when it is filtered by URL).
AUDITED_TYPES = (
    "marketing.catalog",
    "marketing.job",
    "marketing.customer",
    "marketing.segment",
    "marketing.derivedcategory",
    "copygen.brief",
    "copygen.draft",
    "copygen.export",
    "api.apitoken",
)

SUMMARY_MAX_CHARS = 240
_LIST_ITEMS_SHOWN = 5


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    user: str = ""
    object_type: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    @property
    def active(self) -> bool:
        return any((self.action, self.user, self.object_type, self.date_from, self.date_to))


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    object_label: str
    object_exists: bool
    object_url: str
    summary: str


def _model(object_type: str) -> type[Model] | None:
    try:
        return apps.get_model(object_type)
    except (LookupError, ValueError):
        return None


def object_type_label(object_type: str) -> str:
    model = _model(object_type)
    return capfirst(model._meta.verbose_name) if model else object_type


def object_type_choices() -> list[tuple[str, str]]:
    return [(t, object_type_label(t)) for t in AUDITED_TYPES if _model(t) is not None]


def _day_start(day: dt.date) -> dt.datetime:
    """Midnight of ``day`` in the site's time zone (TIME_ZONE), as the page shows times."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def audit_events(*, filters: AuditFilter) -> QuerySet[AuditEvent]:
    """Entries matching every given filter, newest first; the date range includes both days."""
    qs = AuditEvent.objects.all()
    if filters.action:
        qs = qs.filter(action=filters.action)
    if filters.user:
        qs = qs.filter(actor_username=filters.user)
    if filters.object_type:
        qs = qs.filter(object_type=filters.object_type)
    if filters.date_from:
        qs = qs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        qs = qs.filter(created_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    return qs.order_by("-created_at", "-pk")


def audit_actors() -> list[str]:
    """Usernames that appear in the trail (deleted users included: the entry keeps the name)."""
    return list(
        AuditEvent.objects.exclude(actor_username="")
        .order_by("actor_username")
        .values_list("actor_username", flat=True)
        .distinct()
    )


def _object_urls(events: Iterable[AuditEvent], *, admin_links: bool) -> dict[tuple[str, str], str]:
    """(type, id) → URL of each object that still exists: its page, else (for staff) its
    change page in the Django admin, else "". One query per object type on the page."""
    ids: dict[str, set[str]] = defaultdict(set)
    for event in events:
        ids[event.object_type].add(event.object_id)
    urls: dict[tuple[str, str], str] = {}
    for object_type, pks in ids.items():
        model = _model(object_type)
        if model is None:
            continue
        wanted = [pk for pk in pks if pk.isdigit()]
        for obj in model._default_manager.filter(pk__in=wanted).only("pk"):
            urls[(object_type, str(obj.pk))] = _url_of(obj, admin_links=admin_links)
    return urls


def _url_of(obj: Model, *, admin_links: bool) -> str:
    if hasattr(obj, "get_absolute_url"):
        return obj.get_absolute_url()
    if not admin_links:
        return ""
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


def audit_rows(events: Iterable[AuditEvent], *, admin_links: bool = False) -> list[AuditRow]:
    """The page's rows: each entry with its object's label, link (while it exists) and summary."""
    events = list(events)
    urls = _object_urls(events, admin_links=admin_links)
    return [
        AuditRow(
            event=event,
            object_label=f"{object_type_label(event.object_type)} #{event.object_id}",
            object_exists=(event.object_type, event.object_id) in urls,
            object_url=urls.get((event.object_type, event.object_id), ""),
            summary=details_summary(event.details),
        )
        for event in events
    ]


def _label(key: str) -> str:
    """`catalog_id` → "catalog", `rows_read` → "rows read"."""
    key = key.removesuffix("_id")
    return key.replace("_", " ")


def _items(mapping: dict) -> list[tuple[str, Any]]:
    """Keys in a stable order (PostgreSQL's jsonb does not keep the written one): a name
    first, then alphabetical."""
    return sorted(
        ((str(k), v) for k, v in mapping.items()), key=lambda kv: (kv[0] != "name", kv[0])
    )


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{_value(value['from'])} → {_value(value['to'])}"
        # Nested counts ({"inserted": 3, "updated": 0}): the zeros are noise.
        parts = [
            f"{_label(k)} {_value(v)}"
            for k, v in _items(value)
            if v not in ({}, []) and not (type(v) is int and v == 0)
        ]
        return ", ".join(parts) if parts else "none"
    if isinstance(value, list | tuple):
        shown = [_value(v) for v in value[:_LIST_ITEMS_SHOWN]]
        more = len(value) - len(shown)
        return ", ".join(shown) + (f" +{more} more" if more > 0 else "") if shown else "none"
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, default=str)


def details_summary(details: Any) -> str:
    """The details in one line (`rows read: 1200 · rejected: 3`), cut at SUMMARY_MAX_CHARS."""
    if not isinstance(details, dict):
        return "" if details in (None, "") else _value(details)[:SUMMARY_MAX_CHARS]
    text = " · ".join(f"{_label(k)}: {_value(v)}" for k, v in _items(details))
    if len(text) > SUMMARY_MAX_CHARS:
        text = text[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
    return text


CSV_HEADER = [
    "time",
    "user",
    "action",
    "action_label",
    "object_type",
    "object_id",
    "summary",
    "details",
]


def audit_csv_rows(qs: QuerySet[AuditEvent]) -> Iterator[list[str]]:
    """The filtered log as CSV rows (header first), read in chunks; cells are not yet
    formula-protected (the view does that)."""
    yield CSV_HEADER
    for event in qs.iterator(chunk_size=2000):
        yield [
            timezone.localtime(event.created_at).isoformat(),
            event.actor_username,
            event.action,
            event.get_action_display(),
            event.object_type,
            event.object_id,
            details_summary(event.details),
            json.dumps(event.details, ensure_ascii=False, sort_keys=True, default=str),
        ]
