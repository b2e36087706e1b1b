"""Reads of the copy studio's review: the drafts table, one draft with its products, its
history (revisions with word diffs, and reviews), a brief's counts, a customer's drafts."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from copygen.engine.channels import FIELDS, field_spec
from copygen.engine.checks import CHECK_LABELS, CHECKS
from copygen.models import CHANNEL_LABELS, Brief, Draft, DraftReview, DraftRevision
from marketing.models import Catalog, Customer, Product, Segment

HISTORY_LIMIT = 50  # revisions and reviews shown, newest first
FILTER_KEYS = (
    "brief",
    "catalog",
    "status",
    "segment",
    "locale",
    "channel",
    "failing",
    "passes",
    "customer",
)


def _pk(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return value.pk if hasattr(value, "pk") else int(value)


def draft_list(*, filters: Mapping[str, Any] | None = None) -> QuerySet[Draft]:
    """Drafts matching ``filters`` (every key optional; empty values ignored):

    - ``brief``, ``catalog``, ``customer``: a model or pk;
    - ``segment``: a Segment or pk: drafts of briefs for that segment, or written for it;
    - ``status`` (pending/approved/rejected), ``locale``, ``channel``;
    - ``failing``: a check name (errors and warnings alike);
    - ``passes``: True/"yes" (no blocking error) or False/"no".

    Ordered by newest brief, then audience, locale and variant. Nothing is joined, so a page
    of a brief's 100k drafts sorts the draft table alone: page the pks, then read the rows of
    the page with ``draft_rows``."""
    filters = filters or {}
    qs = Draft.objects.all()
    if (pk := _pk(filters.get("brief"))) is not None:
        qs = qs.filter(brief_id=pk)
    if (pk := _pk(filters.get("catalog"))) is not None:
        qs = qs.filter(catalog_id=pk)
    if (pk := _pk(filters.get("customer"))) is not None:
        qs = qs.filter(customer_id=pk)
    if (pk := _pk(filters.get("segment"))) is not None:
        briefs = Brief.objects.filter(segment_id=pk).values("pk")
        qs = qs.filter(Q(brief_id__in=briefs) | Q(segment_id=pk))
    for key in ("status", "locale", "channel"):
        if filters.get(key):
            qs = qs.filter(**{key: filters[key]})
    if filters.get("failing"):
        qs = qs.filter(failing__contains=f",{filters['failing']},")
    passes = filters.get("passes")
    if passes in (True, "yes", "1", "true"):
        qs = qs.filter(passes=True)
    elif passes in (False, "no", "0", "false"):
        qs = qs.filter(passes=False)
    return qs.order_by("-brief_id", "customer_id", "segment_id", "locale", "variant", "pk")


_ROW_RELATED = (
    "brief",
    "brief__segment",
    "catalog",
    "customer",
    "segment",
    "last_edited_by",
    "reviewed_by",
)


def draft_rows(*, ids: Sequence[int]) -> list[Draft]:
    """The drafts with these pks, in this order, with what the table shows joined and the
    display attributes of ``drafts_for_display``."""
    found = Draft.objects.select_related(*_ROW_RELATED).in_bulk(list(ids))
    return drafts_for_display(found[pk] for pk in ids if pk in found)


def draft_get(*, pk: int) -> Draft:
    """The draft with its brief, audience and reviewers, or Http404."""
    return get_object_or_404(Draft.objects.select_related(*_ROW_RELATED), pk=pk)


def draft_products(*, draft: Draft) -> list[Product]:
    """The products the draft is about, in its order (deleted ones left out)."""
    ids = [int(p) for p in draft.product_ids]
    found = Product.objects.filter(catalog_id=draft.catalog_id, pk__in=ids).only(
        "pk", "title", "price", "sku", "in_stock", "catalog_id"
    )
    by_pk = {p.pk: p for p in found}
    return [by_pk[pk] for pk in ids if pk in by_pk]


FILTER_OPTIONS_MAX = 200


def draft_filter_options(
    *,
    catalog: Catalog | int | None = None,
    brief: Brief | int | None = None,
    segment: Segment | int | None = None,
) -> dict[str, list]:
    """Choices of the drafts table's filter: catalogs with briefs, and the newest briefs and
    the segments with briefs (of the catalog, when given); the ``brief`` and ``segment``
    asked for are always among them (a link from an old brief keeps its filter)."""
    briefs = Brief.objects.order_by("-created_at")
    segments = Segment.objects.filter(briefs__isnull=False)
    if (pk := _pk(catalog)) is not None:
        briefs = briefs.filter(catalog_id=pk)
        segments = segments.filter(catalog_id=pk)
    brief_list = list(briefs[:FILTER_OPTIONS_MAX])
    segment_list = list(segments.distinct().order_by("name")[:FILTER_OPTIONS_MAX])
    if (pk := _pk(brief)) is not None and all(b.pk != pk for b in brief_list):
        brief_list += list(Brief.objects.filter(pk=pk))
    if (pk := _pk(segment)) is not None and all(s.pk != pk for s in segment_list):
        segment_list += list(Segment.objects.filter(pk=pk))
    return {
        "catalogs": list(Catalog.objects.filter(briefs__isnull=False).distinct().order_by("name")),
        "briefs": brief_list,
        "segments": segment_list,
    }


def draft_preview_text(draft: Draft) -> str:
    """The first non-empty text of the draft in its channel's field order (first item of a
    list), for one-line previews."""
    for spec in FIELDS.get(draft.channel, ()):
        value = (draft.fields or {}).get(spec.name)
        if isinstance(value, list):
            value = next((v for v in value if v), "")
        if value:
            return str(value)
    return ""


def draft_failing_names(draft: Draft) -> list[tuple[str, str, str]]:
    """(check name, label, worst severity) of the draft's stored failures, in check order."""
    worst: dict[str, str] = {}
    for failure in draft.checks or []:
        name = failure.get("check", "")
        if worst.get(name) != "error":
            worst[name] = failure.get("severity", "error")
    order = {name: i for i, name in enumerate(CHECKS)}
    return [
        (name, CHECK_LABELS.get(name, name), worst[name])
        for name in sorted(worst, key=lambda n: order.get(n, len(order)))
    ]


def drafts_for_display(drafts: Iterable[Draft]) -> list[Draft]:
    """The drafts with what one-line listings show: ``preview`` (first text),
    ``channel_label`` and ``failing_names`` (see draft_failing_names)."""
    out = list(drafts)
    for d in out:
        d.preview = draft_preview_text(d)
        d.channel_label = CHANNEL_LABELS.get(d.channel, d.channel)
        d.failing_names = draft_failing_names(d)
    return out


def customer_drafts(*, customer: Customer, limit: int = 10) -> list[Draft]:
    """The customer's newest drafts (each with its brief; see drafts_for_display), for the
    profile page."""
    return drafts_for_display(
        Draft.objects.filter(customer=customer)
        .select_related("brief")
        .order_by("-created_at", "-pk")[:limit]
    )


# ----------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class DraftCounts:
    """A brief's drafts by status and by failing check (for the brief page)."""

    total: int = 0
    pending: int = 0
    approved: int = 0
    rejected: int = 0
    passing: int = 0  # no blocking error
    blocked: int = 0  # at least one blocking error
    # (check name, label, drafts failing it), most failed first; zero counts left out.
    by_check: list[tuple[str, str, int]] = field(default_factory=list)


def draft_counts(*, brief: Brief) -> DraftCounts:
    """Counts of the brief's drafts in one query: by status, passing, and per failing check
    (errors and warnings)."""
    aggregates = {
        "total": Count("pk"),
        "pending": Count("pk", filter=Q(status=Draft.Status.PENDING)),
        "approved": Count("pk", filter=Q(status=Draft.Status.APPROVED)),
        "rejected": Count("pk", filter=Q(status=Draft.Status.REJECTED)),
        "passing": Count("pk", filter=Q(passes=True)),
    }
    aggregates.update(
        {f"check_{name}": Count("pk", filter=Q(failing__contains=f",{name},")) for name in CHECKS}
    )
    row = Draft.objects.filter(brief=brief).aggregate(**aggregates)
    by_check = sorted(
        ((name, CHECK_LABELS.get(name, name), row[f"check_{name}"]) for name in CHECKS),
        key=lambda item: -item[2],
    )
    return DraftCounts(
        total=row["total"],
        pending=row["pending"],
        approved=row["approved"],
        rejected=row["rejected"],
        passing=row["passing"],
        blocked=row["total"] - row["passing"],
        by_check=[item for item in by_check if item[2]],
    )


# ----------------------------------------------------------------------------- history

# Numbers ("12.50", "1,000"), words and punctuation runs, each with its trailing space: a
# changed word or price is one change, not a run of one-character edits. Chinese and Japanese
# have no spaces between words, so each of their characters is a token.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"\d+(?:[.,:]\d+)*\s*|[{_CJK}]\s*|[^\W{_CJK}]+\s*|[^\w\s]+\s*|\s+")


@dataclass(frozen=True)
class DiffOp:
    """A run of text: "equal" (unchanged), "insert" (added) or "delete" (removed)."""

    op: str
    text: str


@dataclass(frozen=True)
class FieldDiff:
    name: str
    label: str
    ops: tuple[DiffOp, ...]
    changed: bool


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a draft's history: a revision (text) or a review (action)."""

    kind: str  # "revision" | "review"
    at: dt.datetime
    user: Any  # User or None (generated, or the user was deleted)
    revision: int
    # revision
    source: str = ""
    passes: bool = True
    failing: tuple[str, ...] = ()
    diffs: tuple[FieldDiff, ...] = ()
    # review
    action: str = ""
    action_label: str = ""
    comment: str = ""

    @property
    def failing_labels(self) -> list[str]:
        return [CHECK_LABELS.get(n, n) for n in self.failing]


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def text_diff(old: str, new: str) -> tuple[DiffOp, ...]:
    """Word-level diff of ``old`` → ``new``: runs of equal, deleted and inserted text (words,
    spaces and punctuation are tokens, so joining the equal and inserted runs gives ``new``)."""
    a, b = _TOKEN_RE.findall(old), _TOKEN_RE.findall(new)
    ops: list[DiffOp] = []

    def add(op: str, tokens: list[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if ops and ops[-1].op == op:
            ops[-1] = DiffOp(op, ops[-1].text + text)
        else:
            ops.append(DiffOp(op, text))

    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("equal", a[i1:i2])
        else:
            add("delete", a[i1:i2])
            add("insert", b[j1:j2])
    return tuple(ops)


def _field_diffs(channel: str, old: dict | None, new: dict) -> tuple[FieldDiff, ...]:
    names = [s.name for s in FIELDS.get(channel, ())]
    names += [n for n in (*(old or {}), *new) if n not in names]
    out = []
    for name in dict.fromkeys(names):
        spec = field_spec(channel, name)
        label = spec.label if spec else name
        after = _as_text(new.get(name))
        if old is None:
            if after:
                out.append(FieldDiff(name, label, (DiffOp("equal", after),), changed=False))
            continue
        before = _as_text(old.get(name))
        if before == after:
            continue
        out.append(FieldDiff(name, label, text_diff(before, after), changed=True))
    return tuple(out)


def draft_history(*, draft: Draft, limit: int = HISTORY_LIMIT) -> list[HistoryEntry]:
    """The draft's revisions and reviews, newest first (at most ``limit``). A revision
    carries, per changed field, a word diff against the revision before it (the first
    revision: its whole text, unmarked)."""
    revisions = list(
        DraftRevision.objects.filter(draft=draft)
        .select_related("author")
        .order_by("-number")[: limit + 1]
    )
    revisions.reverse()  # oldest first; the extra one is only the base of the first diff
    entries: list[HistoryEntry] = []
    base = revisions[0].fields if len(revisions) > limit else None
    shown = revisions[1:] if len(revisions) > limit else revisions
    for rev in shown:
        entries.append(
            HistoryEntry(
                kind="revision",
                at=rev.created_at,
                user=rev.author,
                revision=rev.number,
                source=rev.source,
                passes=rev.passes,
                failing=tuple(n for n in rev.failing.strip(",").split(",") if n),
                diffs=_field_diffs(draft.channel, base, rev.fields or {}),
            )
        )
        base = rev.fields or {}
    reviews = DraftReview.objects.filter(draft=draft).select_related("user").order_by("-pk")
    for review in reviews[:limit]:
        entries.append(
            HistoryEntry(
                kind="review",
                at=review.created_at,
                user=review.user,
                revision=review.revision,
                action=review.action,
                action_label=review.get_action_display(),
                comment=review.comment,
            )
        )
    # Newest first; at the same instant a review follows the revision it reviewed.
    entries.sort(key=lambda e: (e.at, e.revision, e.kind == "review"), reverse=True)
    return entries[:limit]
