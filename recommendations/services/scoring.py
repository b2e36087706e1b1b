"""Scoring with a run's artifact: customers' lists (per batch), segments' lists, rows.

`customer_lists` and `segment_lists` are computations (artifact + rules → rows in memory);
`recommendations_write` stores rows (one COPY on PostgreSQL, bulk_create elsewhere). The
job services in `runs.py` call them inside their transactions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import connection
from scipy import sparse

from marketing.models import Product, Segment, SegmentMembership
from recommendations.algorithms.postprocess import BusinessRules, Ranked, rank, rank_scores
from recommendations.algorithms.reasons import (
    Reason,
    buy_again_reason,
    reasons_for,
    segment_reasons,
)
from recommendations.models import Recommendation
from recommendations.reason_text import reason_text
from recommendations.services.artifacts import Artifact

_BULK_SIZE = 5000


@dataclass(frozen=True)
class Row:
    """One recommendation before it is stored (ids, not objects)."""

    customer_id: int | None
    segment_id: int | None
    kind: str
    product_id: int
    rank: int
    score: float
    reason_kind: str
    reason_text: str
    reason_product_ids: list[int] = field(default_factory=list)
    reason_data: dict = field(default_factory=dict)


def _json_safe(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[str(key)] = value
    return out


def _row(
    artifact: Artifact,
    *,
    customer_id: int | None,
    segment_id: int | None,
    kind: str,
    position: int,
    item: int,
    score: float,
    reason: Reason,
) -> Row:
    cited = [int(artifact.product_ids[i]) for i in reason.items]
    titles = [str(artifact.titles[i]) for i in reason.items]
    return Row(
        customer_id=customer_id,
        segment_id=segment_id,
        kind=kind,
        product_id=int(artifact.product_ids[item]),
        rank=position,
        score=float(score) if np.isfinite(score) else 0.0,
        reason_kind=reason.kind,
        reason_text=reason_text(reason.kind, reason.data, titles)[:500],
        reason_product_ids=cited,
        reason_data=_json_safe(reason.data),
    )


@dataclass(frozen=True)
class CustomerLists:
    """Rows of a block of users, and the raw rankings (the preview shows `removed`)."""

    rows: list[Row]
    discover: Ranked
    buy_again: Ranked | None


def customer_lists(
    artifact: Artifact, users: np.ndarray | Sequence[int], rules: BusinessRules
) -> CustomerLists:
    """Both lists of each user (dense indices): "discover" (the selected model under the
    rules, popularity for those it cannot rank) and "buy_again" (their own repeat
    purchases, under the filters), each item with its reason."""
    users = np.asarray(users, dtype=np.int64)
    # Stored at training; only an older artifact builds it here (workers, not the preview).
    similarity = artifact.similarity() if rules.mmr_lambda < 1.0 else None
    discover = rank(
        artifact.model,
        users,
        rules,
        artifact.items_meta,
        fallback=artifact.popularity,
        similarity=similarity,
    )
    again = None
    if artifact.buy_again is not None:
        again = rank(artifact.buy_again, users, rules.for_repeat_list(), artifact.items_meta)
    rows: list[Row] = []
    ctx = artifact.reasons
    for r, user in enumerate(users.tolist()):
        customer_id = int(artifact.customer_ids[user])
        listed = discover.row(r)
        reasons = reasons_for(ctx, artifact.model, user, [i for i, _ in listed])
        rows += _list_rows(artifact, customer_id, Recommendation.Kind.DISCOVER, listed, reasons)
        if again is not None:
            listed = again.row(r)
            reasons = [buy_again_reason(ctx, artifact.buy_again, user, i) for i, _ in listed]
            rows += _list_rows(
                artifact, customer_id, Recommendation.Kind.BUY_AGAIN, listed, reasons
            )
    return CustomerLists(rows, discover, again)


def _list_rows(artifact, customer_id: int, kind: str, listed, reasons) -> list[Row]:
    """One customer's list (ranked (item, score) pairs) as rows, each with its reason."""
    return [
        _row(
            artifact,
            customer_id=customer_id,
            segment_id=None,
            kind=kind,
            position=position,
            item=item,
            score=score,
            reason=reason,
        )
        for position, ((item, score), reason) in enumerate(
            zip(listed, reasons, strict=True), start=1
        )
    ]


def segment_lists(artifact: Artifact, rules: BusinessRules, *, catalog_id: int) -> list[Row]:
    """A "discover" list per segment of the catalog (RFM, rule and learned): what its
    members bought most within the window (distinct buyers; then ever; then catalog-wide
    popularity), under the rules (no purchase exclusion: a segment has no history)."""
    segments = list(
        Segment.objects.filter(catalog_id=catalog_id).order_by("pk").values_list("pk", "name")
    )
    if not segments:
        return []
    position = {pk: s for s, (pk, _) in enumerate(segments)}
    members = SegmentMembership.objects.filter(segment__catalog_id=catalog_id).values_list(
        "segment_id", "customer_id"
    )
    pairs = np.array(list(members), dtype=np.int64).reshape(-1, 2)
    users = artifact.user_index(pairs[:, 1]) if len(pairs) else np.zeros(0, dtype=np.int64)
    known = users >= 0
    seg_rows = np.array([position[s] for s in pairs[known, 0]], dtype=np.int64)
    n_users = len(artifact.customer_ids)
    indicator = sparse.csr_matrix(
        (np.ones(len(seg_rows)), (seg_rows, users[known])), shape=(len(segments), n_users)
    )
    ctx = artifact.reasons
    ever = sparse.csr_matrix(ctx.history, copy=True)
    ever.data[:] = 1.0
    recent = np.asarray((indicator @ ctx.recent).toarray(), dtype=np.float64)
    total = np.asarray((indicator @ ever).toarray(), dtype=np.float64)
    # Recent buyers decide; buyers ever break their ties (< 0.5), catalog-wide popularity
    # breaks the remaining ones (< half a step of the buyers-ever term).
    step = 1.0 / (total.max(initial=0) + 1.0)
    tie = artifact.popularity / (artifact.popularity.max(initial=0) + 1.0)
    scores = recent + 0.5 * step * total + 0.25 * step * tie[None, :]
    ranked = rank_scores(
        scores,
        rules,
        artifact.items_meta,
        fallback=artifact.popularity,
        similarity=artifact.similarity() if rules.mmr_lambda < 1.0 else None,
    )
    rows: list[Row] = []
    for s, (segment_id, name) in enumerate(segments):
        listed = ranked.row(s)
        items = [i for i, _ in listed]
        reasons = segment_reasons(ctx, items, name, recent[s])
        for pos, ((item, score), reason) in enumerate(zip(listed, reasons, strict=True), 1):
            rows.append(
                _row(
                    artifact,
                    customer_id=None,
                    segment_id=segment_id,
                    kind=Recommendation.Kind.DISCOVER,
                    position=pos,
                    item=item,
                    score=score,
                    reason=reason,
                )
            )
    return rows


_COLUMNS = [
    "run_id",
    "catalog_id",
    "customer_id",
    "segment_id",
    "kind",
    "product_id",
    "rank",
    "score",
    "reason_kind",
    "reason_text",
    "reason_product_ids",
    "reason_data",
]


def recommendations_write(*, run_id: int, catalog_id: int, rows: Iterable[Row]) -> int:
    """Insert rows of a run (the caller deleted what they replace, in its transaction).
    Rows of products deleted since the run trained are left out. One COPY on PostgreSQL;
    bulk_create batches elsewhere. Returns the count."""
    rows = list(rows)
    if not rows:
        return 0
    wanted = {row.product_id for row in rows}
    existing = set(Product.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if len(existing) < len(wanted):
        rows = [row for row in rows if row.product_id in existing]
    if connection.vendor != "postgresql":
        for start in range(0, len(rows), _BULK_SIZE):
            Recommendation.objects.bulk_create(
                Recommendation(run_id=run_id, catalog_id=catalog_id, **row.__dict__)
                for row in rows[start : start + _BULK_SIZE]
            )
        return len(rows)
    table = Recommendation._meta.db_table
    columns = ", ".join(_COLUMNS)
    # Only our own table and column names are interpolated.
    statement = f"COPY {table} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                (
                    run_id,
                    catalog_id,
                    row.customer_id,
                    row.segment_id,
                    row.kind,
                    row.product_id,
                    row.rank,
                    row.score,
                    row.reason_kind,
                    row.reason_text,
                    json.dumps(row.reason_product_ids),
                    json.dumps(row.reason_data),
                )
            )
    return len(rows)
