"""Segments materialised from a catalog's profiles: one per RFM segment, one per learned cluster.

Both are rewritten by each profile refresh (see `marketing.services.profiles`), inside the
refresh's transaction, so readers see the old segments or the new ones, never a mix.
Learned segments use behaviour only (no customer attributes are passed to the core, so
nothing from `marketing.analytics.sensitive.DEFAULT_SENSITIVE` can be used).
"""

from __future__ import annotations

import pandas as pd
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from marketing.analytics.clustering import learn_segments
from marketing.models import Catalog, Profile, ProfileRun, Segment, SegmentMembership

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


def _share(part: float | None, total: float | None) -> float | None:
    if not total or part is None:
        return None
    return float(part) / float(total)


def _total_revenue(catalog: Catalog) -> float | None:
    return Profile.objects.filter(catalog=catalog).aggregate(total=Sum("monetary"))["total"]


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
            f"INSERT INTO {membership} (segment_id, customer_id) "
            f"SELECT s.id, p.customer_id FROM {profile} p "
            f"JOIN {segment} s ON s.catalog_id = p.catalog_id AND s.name = p.rfm_segment "
            "WHERE p.catalog_id = %s AND s.kind = %s",
            [catalog.pk, Segment.Kind.RFM.value],
        )
    return len(groups)


def _learn_frame(catalog: Catalog) -> pd.DataFrame:
    rows = Profile.objects.filter(catalog=catalog).values_list(*_LEARN_COLUMNS)
    frame = pd.DataFrame.from_records(list(rows), columns=_LEARN_COLUMNS)
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
    members = [
        SegmentMembership(segment=segments[int(label)], customer_id=int(customer_id))
        for customer_id, label in labels.items()
        if int(label) in segments
    ]
    SegmentMembership.objects.bulk_create(members, batch_size=BATCH_SIZE)
    return {"learned": len(segments), "learned_skipped": ""}
