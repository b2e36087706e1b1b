"""Segments materialised from a catalog's profiles: one per RFM segment, one per learned
cluster, and the rule segments marketers build.

All are rewritten by each profile refresh (see `marketing.services.profiles`), inside the
refresh's transaction, so readers see the old segments or the new ones, never a mix. Rule
segments are also filled when they are saved (`segment_rule_create` / `_update`).
Learned segments use behaviour only (no customer attributes are passed to the core, so
nothing from `marketing.analytics.sensitive.DEFAULT_SENSITIVE` can be used).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from marketing.analytics.clustering import learn_segments
from marketing.analytics.rules import RuleError, normalise_rule, rule_rename_categories
from marketing.models import (
    AuditEvent,
    Catalog,
    Profile,
    ProfileRun,
    Segment,
    SegmentMembership,
)
from marketing.permissions import require_perm
from marketing.segment_rules import catalog_as_of, rule_profiles
from marketing.services.audit import audit
from marketing.services.frames import query_frame

logger = logging.getLogger(__name__)

LEARNED_SEED = 0
LEARNED_K_RANGE = (3, 8)
BATCH_SIZE = 5000
# The profile columns the clustering core reads.
_LEARN_COLUMNS = [
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "return_rate",
    "price_ratio",
    "top_categories",
]
# Arrow types of the same columns as COPY writes them (CSV text; JSON as a string).
_LEARN_TYPES = {
    "customer_id": pa.int64(),
    "recency_days": pa.int64(),
    "frequency": pa.int64(),
    "monetary": pa.float64(),
    "aov": pa.float64(),
    "return_rate": pa.float64(),
    "price_ratio": pa.float64(),
    "top_categories": pa.string(),
}


def _share(part: float | None, total: float | None) -> float | None:
    if not total or part is None:
        return None
    return float(part) / float(total)


def _total_revenue(catalog: Catalog) -> float | None:
    return Profile.objects.filter(catalog=catalog).aggregate(total=Sum("monetary"))["total"]


class _Unset:
    """The default of an argument whose None is a real value."""


_UNSET = _Unset()


@transaction.atomic
def segments_refresh_rfm(*, catalog: Catalog, run: ProfileRun | None = None) -> int:
    """One RFM segment per segment name in the catalog's profiles; returns how many.

    Memberships are rewritten with one INSERT … SELECT; segments whose name no longer
    occurs are deleted.
    """
    now = timezone.now()
    total = _total_revenue(catalog)
    groups = {
        row["rfm_segment"]: row
        for row in Profile.objects.filter(catalog=catalog)
        .exclude(rfm_segment="")
        .values("rfm_segment")
        .annotate(n=Count("pk"), revenue=Sum("monetary"))
        .order_by()
    }
    rfm = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RFM)
    SegmentMembership.objects.filter(segment__in=rfm).delete()
    rfm.exclude(name__in=list(groups)).delete()
    description = f"RFM segment from the profiles as of {run.as_of:%Y-%m-%d}" if run else ""
    for name, row in groups.items():
        Segment.objects.update_or_create(
            catalog=catalog,
            kind=Segment.Kind.RFM,
            name=name,
            defaults={
                "size": row["n"],
                "revenue_share": _share(row["revenue"], total),
                "refreshed_at": now,
                "description": description,
            },
        )
    membership = SegmentMembership._meta.db_table
    segment = Segment._meta.db_table
    profile = Profile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            # Only our own table names are interpolated; values go in as parameters.
            f"INSERT INTO {membership} (segment_id, customer_id, monetary) "
            f"SELECT s.id, p.customer_id, p.monetary FROM {profile} p "
            f"JOIN {segment} s ON s.catalog_id = p.catalog_id AND s.name = p.rfm_segment "
            "WHERE p.catalog_id = %s AND s.kind = %s",
            [catalog.pk, Segment.Kind.RFM.value],
        )
    return len(groups)


def _learn_frame(catalog: Catalog) -> pd.DataFrame:
    rows = Profile.objects.filter(catalog=catalog).values_list(*_LEARN_COLUMNS)
    frame = query_frame(rows, _LEARN_COLUMNS, _LEARN_TYPES)
    if connection.vendor == "postgresql":  # COPY hands JSON over as text
        frame["top_categories"] = [json.loads(v) if v else [] for v in frame["top_categories"]]
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["recency_days"] = frame["recency_days"].astype("Int64")
    frame["frequency"] = frame["frequency"].astype("int64")
    for column in ("monetary", "aov", "return_rate", "price_ratio"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.set_index("customer_id")


@transaction.atomic
def segments_refresh_learned(*, catalog: Catalog) -> dict:
    """Cluster the catalog's buyers into "Cluster N" segments (seeded, k in 3..8).

    With too few buyers the previous learned segments are removed (they described
    profiles that no longer exist) and the core's reason is returned instead.
    Returns {"learned": n, "learned_skipped": reason or ""}.
    """
    Segment.objects.filter(catalog=catalog, kind=Segment.Kind.LEARNED).delete()
    frame = _learn_frame(catalog)
    result = learn_segments(frame, k_range=LEARNED_K_RANGE, seed=LEARNED_SEED)
    if not result.available:
        return {"learned": 0, "learned_skipped": result.reason}
    now = timezone.now()
    total = float(frame["monetary"].sum())
    labels = result.labels[result.labels >= 0]
    revenue = frame["monetary"].groupby(labels).sum()
    segments = {}
    for cluster in result.clusters:
        segments[cluster.label] = Segment.objects.create(
            catalog=catalog,
            kind=Segment.Kind.LEARNED,
            name=f"Cluster {cluster.label + 1}",
            description=cluster.description,
            size=int(cluster.size),
            revenue_share=_share(float(revenue.get(cluster.label, 0.0)), total),
            refreshed_at=now,
        )
    keep = labels.isin(list(segments))
    ids = labels.index[keep].to_numpy(dtype="int64")
    _insert_members(
        segment_ids=[segments[int(label)].pk for label in labels[keep]],
        customer_ids=ids.tolist(),
        monetary=frame["monetary"].reindex(ids).fillna(0.0).tolist(),
    )
    return {"learned": len(segments), "learned_skipped": ""}


def _insert_members(
    *, segment_ids: list[int], customer_ids: list[int], monetary: list[float]
) -> None:
    """Insert memberships from parallel lists: one statement over arrays on PostgreSQL (25k
    rows in tens of milliseconds), batched bulk_create elsewhere."""
    if not customer_ids:
        return
    if connection.vendor == "postgresql":
        table = SegmentMembership._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                # Only our own table name is interpolated; values go in as parameters.
                f"INSERT INTO {table} (segment_id, customer_id, monetary) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::double precision[])",
                [segment_ids, customer_ids, monetary],
            )
        return
    SegmentMembership.objects.bulk_create(
        (
            SegmentMembership(segment_id=s, customer_id=c, monetary=m)
            for s, c, m in zip(segment_ids, customer_ids, monetary, strict=True)
        ),
        batch_size=BATCH_SIZE,
    )


# --------------------------------------------------------------------------- rule segments

RULE_NAME_MAX = 200
RULE_DESCRIPTION_MAX = 2000


def _rule_clean(
    *, catalog: Catalog, name: str, description: str, rule: Any, exclude_pk: int | None = None
) -> tuple[str, str, dict]:
    """Validated (name, description, normalised rule) or ValidationError by field.

    Rule problems are ``ValidationError``s with ``params={"path": …}`` (the path in the
    submitted tree, as `normalise_rule` reports it), so a form can place each one.
    """
    errors: dict[str, list[ValidationError]] = {}
    name = (name or "").strip()
    description = (description or "").strip()
    if not name:
        errors.setdefault("name", []).append(ValidationError("Give the segment a name."))
    elif len(name) > RULE_NAME_MAX:
        errors.setdefault("name", []).append(
            ValidationError(f"Keep the name to {RULE_NAME_MAX} characters.")
        )
    else:
        taken = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RULE, name=name)
        if exclude_pk is not None:
            taken = taken.exclude(pk=exclude_pk)
        if taken.exists():
            errors.setdefault("name", []).append(_name_taken(name))
    if len(description) > RULE_DESCRIPTION_MAX:
        errors.setdefault("description", []).append(
            ValidationError(f"Keep the description to {RULE_DESCRIPTION_MAX} characters.")
        )
    normalised: dict = {}
    try:
        normalised = normalise_rule(rule)
    except RuleError as exc:
        errors["rule"] = [
            # "%" is escaped: Django formats a message with its params ("70 %" stays).
            ValidationError(reason.replace("%", "%%"), code="rule", params={"path": path})
            for path, reason in exc.errors
        ]
    if errors:
        raise ValidationError(errors)
    return name, description, normalised


def _name_taken(name: str) -> ValidationError:
    return ValidationError(
        "This catalog already has a rule segment named “%(name)s”.",
        code="name_taken",
        params={"name": name},
    )


def _lock_catalog(catalog: Catalog) -> None:
    """Serialise with a profile refresh, which replaces profiles under the same row lock:
    a save then materialises from the new profiles, or the refresh sees the new rule."""
    Catalog.objects.select_for_update().filter(pk=catalog.pk).exists()


@transaction.atomic
def segment_rule_create(
    *, user, catalog: Catalog, name: str, description: str = "", rule: Any
) -> Segment:
    """Create a rule segment and fill it now; ValidationError for a bad name or rule."""
    require_perm(user, "marketing.add_segment")
    name, description, normalised = _rule_clean(
        catalog=catalog, name=name, description=description, rule=rule
    )
    _lock_catalog(catalog)
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                catalog=catalog,
                kind=Segment.Kind.RULE,
                name=name,
                description=description,
                rule=normalised,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:  # a concurrent create with the same name won the race
        raise ValidationError({"name": [_name_taken(name)]}) from None
    segment_rule_materialise(segment=segment)
    audit(actor=user, action=AuditEvent.Action.SEGMENT_CREATED, obj=segment, details={"name": name})
    return segment


@transaction.atomic
def segment_rule_update(
    *, user, segment: Segment, name: str, description: str = "", rule: Any
) -> Segment:
    """Rename, redescribe and re-rule a rule segment, and refill it now."""
    require_perm(user, "marketing.change_segment")
    if segment.kind != Segment.Kind.RULE:
        raise ValidationError("Only rule segments can be edited; the others follow the profiles.")
    name, description, normalised = _rule_clean(
        catalog=segment.catalog,
        name=name,
        description=description,
        rule=rule,
        exclude_pk=segment.pk,
    )
    _lock_catalog(segment.catalog)
    segment.name, segment.description, segment.rule = name, description, normalised
    try:
        with transaction.atomic():
            segment.save(update_fields=["name", "description", "rule", "updated_at"])
    except IntegrityError:
        raise ValidationError({"name": [_name_taken(name)]}) from None
    segment_rule_materialise(segment=segment)
    audit(actor=user, action=AuditEvent.Action.SEGMENT_CHANGED, obj=segment, details={"name": name})
    return segment


@transaction.atomic
def segment_rule_delete(*, user, segment: Segment) -> None:
    """Delete a rule segment with its memberships (RFM and learned ones are not deletable)."""
    require_perm(user, "marketing.delete_segment")
    if segment.kind != Segment.Kind.RULE:
        raise ValidationError("Only rule segments can be deleted; the others follow the profiles.")
    # A refresh rewrites every rule segment under this lock: it must not find one vanishing.
    _lock_catalog(segment.catalog)
    audit(
        actor=user,
        action=AuditEvent.Action.SEGMENT_DELETED,
        obj=segment,
        details={"name": segment.name},
    )
    segment.delete()


def segment_rule_materialise(
    *,
    segment: Segment,
    as_of: datetime | None = None,
    total_revenue: float | None | _Unset = _UNSET,
) -> Segment:
    """Rewrite the segment's members from its rule (one INSERT … SELECT), size, revenue share.

    The rule runs once: its members are inserted, then counted and summed from the new
    membership rows. ``as_of`` defaults to the catalog's latest profile run;
    ``total_revenue`` (the catalog's profiles' net spend) is computed unless given, so a
    refresh of many segments sums it once. A catalog without profiles gives an empty
    segment; the next profile refresh fills it.
    """
    catalog = segment.catalog
    if as_of is None:
        as_of = catalog_as_of(catalog)
    if isinstance(total_revenue, _Unset):
        total_revenue = _total_revenue(catalog)
    SegmentMembership.objects.filter(segment=segment).delete()
    members = rule_profiles(segment.rule, catalog=catalog, as_of=as_of or timezone.now()).order_by()
    try:
        sql, params = members.values_list("customer_id", "monetary").query.sql_with_params()
    except EmptyResultSet:  # a rule that can match nobody ("recency_days in [4.5]")
        sql = None
    if sql is not None:
        membership = SegmentMembership._meta.db_table
        with connection.cursor() as cursor:
            # Only our own table name is interpolated; values go in as parameters.
            cursor.execute(
                f"INSERT INTO {membership} (segment_id, customer_id, monetary) "
                f"SELECT %s, m.customer_id, m.monetary FROM ({sql}) m",
                [segment.pk, *params],
            )
    totals = Profile.objects.filter(
        catalog=catalog,
        customer_id__in=SegmentMembership.objects.filter(segment=segment).values("customer_id"),
    ).aggregate(n=Count("pk"), revenue=Sum("monetary"))
    segment.size = totals["n"]
    segment.revenue_share = _share(totals["revenue"] or 0.0, total_revenue)
    segment.refreshed_at = timezone.now()
    segment.save(update_fields=["size", "revenue_share", "refreshed_at"])
    return segment


def segment_rules_rename_categories(
    *, catalog_id: int, renames: dict[str, str], user=None, reason: str
) -> list[int]:
    """Make rule segments follow renamed categories: ``bought_category`` values naming an old
    name (ignoring case, or as a path prefix) get the new one. Returns the changed segments'
    pks; each change is audited (actor ``user``, None for the system, and ``reason``).

    Runs inside the rename's transaction, so the rule and the name change together. The
    segments' rows are locked: a concurrent edit either lands first (and is rewritten) or
    waits. Members follow at the next materialisation (the rename queues a refresh).
    """
    renames = {old: new for old, new in renames.items() if old.casefold() != new.casefold()}
    if not renames:
        return []
    changed = []
    rules = Segment.objects.select_for_update(of=("self",)).filter(
        catalog_id=catalog_id, kind=Segment.Kind.RULE
    )
    for segment in rules.order_by("pk"):
        try:
            rule, rewritten = rule_rename_categories(segment.rule, renames)
        except RuleError:
            continue  # an invalid stored rule stays as it is until someone edits it
        if not rewritten:
            continue
        segment.rule = rule
        segment.save(update_fields=["rule", "updated_at"])
        audit(
            actor=user,
            action=AuditEvent.Action.SEGMENT_CHANGED,
            obj=segment,
            details={"name": segment.name, "reason": reason, "renamed_categories": renames},
        )
        changed.append(segment.pk)
    return changed


@transaction.atomic
def segments_refresh_rules(*, catalog: Catalog) -> int:
    """Refill every rule segment of the catalog from the current profiles; returns how many.

    The profile refresh calls this inside its transaction, after replacing the profiles.
    """
    as_of = catalog_as_of(catalog)
    segments = list(Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RULE))
    total = _total_revenue(catalog) if segments else None
    for segment in segments:
        segment.catalog = catalog
        try:
            with transaction.atomic():
                segment_rule_materialise(segment=segment, as_of=as_of, total_revenue=total)
        except RuleError as exc:
            # A rule stored before the validation changed must not fail the whole refresh:
            # the segment empties until someone edits it (its page says the rule is invalid).
            logger.warning("rule segment %s has an invalid rule: %s", segment.pk, exc)
            SegmentMembership.objects.filter(segment=segment).delete()
            Segment.objects.filter(pk=segment.pk).update(
                size=0, revenue_share=None, refreshed_at=timezone.now()
            )
    return len(segments)
