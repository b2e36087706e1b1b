"""Review of drafts: edit (a new revision, checks re-run), approve, reject, reopen, bulk approve.

State machine of ``Draft.status``::

    pending ──approve──> approved ──reopen──> pending
       │  ^                                     ^
    reject └──────── edit (a rejected draft goes back to pending) ────┘
       v
    rejected ──approve──> approved

- Editing needs ``copygen.change_draft``; approving, rejecting and reopening need
  ``copygen.approve_draft``.
- An approved draft is locked: no edit and no rejection until an approver reopens it
  (with a comment; audited).
- Approval re-runs every check against the products' *current* data (a price changed since
  drafting blocks it) and, with ``settings.COPY_FOUR_EYES``, refuses the approver who edited
  the draft last.
- Bulk approval approves only pending drafts with no failure at all (warnings included),
  re-checked now, that the four-eyes rule allows; it says how many it skipped and why.

Every write takes the draft's row lock (``select_for_update``), so two edits, or an edit and
an approval, serialize: revision numbers never collide and nobody approves text they have
not seen checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from copygen.engine import checks
from copygen.engine.channels import FieldSpec, channel_fields
from copygen.engine.types import CheckResult, FactSheet, Recipient
from copygen.engine.types import Variant as EngineVariant
from copygen.models import CHANNEL_LABELS, Draft, DraftReview, DraftRevision
from copygen.services import sources
from marketing.models import AuditEvent
from marketing.permissions import require_perm
from marketing.services.audit import audit

CHANGE_PERM = "copygen.change_draft"
APPROVE_PERM = "copygen.approve_draft"

# Audit actions (AuditEvent.action); free text (comments, copy) never goes into the trail.
AUDIT_EDITED = "draft_edited"
AUDIT_APPROVED = "draft_approved"
AUDIT_REJECTED = "draft_rejected"
AUDIT_REOPENED = "draft_reopened"

LOCKED_MESSAGE = "Approved drafts are locked; reopen it first."
FOUR_EYES_MESSAGE = "You edited this draft last; another approver must approve it."

# Storage bounds, far above every channel's limit (the checks report the limits): a text
# this long is a paste gone wrong, not copy.
MAX_TEXT_CHARS = 20_000
MAX_COMMENT_CHARS = 2_000
# Drafts one bulk approval looks at (each is re-checked against current data).
BULK_APPROVE_MAX = 500  # about 3 s of checks in one request
BULK_BATCH = 200

# Why bulk approval skipped a draft, as the result message says it ("skipped 3 that …").
SKIP_REASONS = {
    "failing": "that fail a check",
    "four_eyes": "you edited last",
    "not_pending": "not pending",
    "missing": "no longer there",
}


# ----------------------------------------------------------------------------- fields


def _clean_text(spec: FieldSpec, value: Any, *, label: str) -> str:
    if not isinstance(value, str):
        raise ValidationError({spec.name: [f"{label} must be text."]})
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if "\x00" in text:
        raise ValidationError({spec.name: [f"{label} contains a NUL character."]})
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError(
            {spec.name: [f"{label} is too long to store ({len(text):,} characters)."]}
        )
    return text


def draft_fields_clean(*, channel: str, fields: Any) -> dict[str, Any]:
    """The channel's fields from ``fields``: every known field (optional ones may be left
    out), texts as stripped strings with ``\\n`` line ends, list fields as lists of non-blank
    strings within the channel's maximum count. Unknown fields and wrong types are a
    ValidationError keyed by field name. Limits, required texts and minimum counts are left to
    the checks: a draft may be saved failing them (it cannot be approved)."""
    if not isinstance(fields, dict):
        raise ValidationError("The draft's fields must be a mapping of field name to text.")
    specs = channel_fields(channel)
    known = {spec.name for spec in specs}
    unknown = sorted(str(k) for k in fields if k not in known)
    if unknown:
        raise ValidationError(
            f"{CHANNEL_LABELS.get(channel, channel)} has no field {', '.join(unknown)}."
        )
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in fields:
            if spec.required:
                raise ValidationError({spec.name: [f"{spec.label} is missing."]})
            continue
        value = fields[spec.name]
        if spec.kind == "list":
            if not isinstance(value, (list, tuple)):
                raise ValidationError({spec.name: [f"{spec.label} must be a list of texts."]})
            items = [_clean_text(spec, v, label=f"Each of {spec.label.lower()}") for v in value]
            items = [item for item in items if item]
            if spec.max_items is not None and len(items) > spec.max_items:
                raise ValidationError(
                    {spec.name: [f"{spec.label}: at most {spec.max_items}, {len(items)} given."]}
                )
            out[spec.name] = items
        else:
            out[spec.name] = _clean_text(spec, value, label=spec.label)
    return out


def _canonical(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields for comparison: empty values (an optional field left blank) dropped."""
    return {k: v for k, v in (fields or {}).items() if v not in ("", [], None)}


def check_labels(names: Iterable[str]) -> str:
    """ "Length limits, Faithful to product data" for check names."""
    return ", ".join(checks.CHECK_LABELS.get(n, n) for n in names)


# ----------------------------------------------------------------------------- helpers


def _lock(draft: Draft) -> Draft:
    """The draft's row, locked until the transaction ends (fresh: another request may have
    changed it since the caller read it)."""
    return Draft.objects.select_for_update().get(pk=draft.pk)


def four_eyes_blocks(*, draft: Draft, user) -> bool:
    """True when COPY_FOUR_EYES is on and ``user`` edited the draft last."""
    return bool(settings.COPY_FOUR_EYES) and draft.last_edited_by_id == user.pk


def _store_checks(draft: Draft, results: Sequence[CheckResult]) -> bool:
    """Put fresh check results on the (locked) draft; True when they changed."""
    failures, passes, failing = sources.summarize(results)
    if (draft.checks, draft.passes, draft.failing) == (failures, passes, failing):
        return False
    draft.checks, draft.passes, draft.failing = failures, passes, failing
    draft.save(update_fields=["checks", "passes", "failing", "updated_at"])
    return True


def _audit_details(draft: Draft, **extra: Any) -> dict[str, Any]:
    return {
        "brief": draft.brief_id,
        "revision": draft.revision,
        "channel": draft.channel,
        "locale": draft.locale,
        **extra,
    }


def _comment(comment: str, *, required: str = "") -> str:
    text = (comment or "").strip()
    if required and not text:
        raise ValidationError({"comment": [required]})
    if len(text) > MAX_COMMENT_CHARS:
        raise ValidationError(
            {"comment": [f"Keep the comment under {MAX_COMMENT_CHARS} characters."]}
        )
    return text


def _review(draft: Draft, *, user, action: str, status: str, comment: str) -> Draft:
    now = timezone.now()
    draft.status = status
    draft.reviewed_by = user
    draft.reviewed_at = now
    draft.review_comment = comment
    draft.save(
        update_fields=["status", "reviewed_by", "reviewed_at", "review_comment", "updated_at"]
    )
    DraftReview.objects.create(
        draft=draft, action=action, revision=draft.revision, comment=comment, user=user
    )
    return draft


# ----------------------------------------------------------------------------- edit


def draft_preview(*, draft: Draft, fields: dict[str, Any]) -> list[CheckResult]:
    """Every check on ``fields`` as the draft's text, against current product data; nothing is
    saved (the editor's live checks). ValidationError for fields of the wrong shape."""
    cleaned = draft_fields_clean(channel=draft.channel, fields=fields)
    return sources.check_fields(draft, cleaned)


@transaction.atomic
def draft_edit(*, draft: Draft, user, fields: dict[str, Any]) -> Draft:
    """Save ``fields`` as a new revision by ``user`` with its checks; unchanged text saves
    nothing. A rejected draft goes back to pending; an approved one is locked."""
    require_perm(user, CHANGE_PERM)
    cleaned = draft_fields_clean(channel=draft.channel, fields=fields)
    draft = _lock(draft)
    if draft.is_locked:
        raise ValidationError(LOCKED_MESSAGE)
    if _canonical(cleaned) == _canonical(draft.fields):
        return draft
    results = sources.check_fields(draft, cleaned)
    failures, passes, failing = sources.summarize(results)
    last = DraftRevision.objects.filter(draft=draft).aggregate(n=Max("number"))["n"] or 0
    number = max(last, draft.revision) + 1
    DraftRevision.objects.create(
        draft=draft,
        number=number,
        fields=cleaned,
        source="edit",
        author=user,
        passes=passes,
        failing=failing,
    )
    draft.fields = cleaned
    draft.source = "edit"
    draft.revision = number
    draft.last_edited_by = user
    draft.checks, draft.passes, draft.failing = failures, passes, failing
    update = ["fields", "source", "revision", "last_edited_by", "checks", "passes", "failing"]
    if draft.status == Draft.Status.REJECTED:
        draft.status = Draft.Status.PENDING
        update.append("status")
    draft.save(update_fields=[*update, "updated_at"])
    audit(actor=user, action=AUDIT_EDITED, obj=draft, details=_audit_details(draft))
    return draft


# ----------------------------------------------------------------------------- review


def draft_approve(*, draft: Draft, user, comment: str = "") -> Draft:
    """Approve the draft after re-running every check on current product data.

    Refused (ValidationError) when it is already approved, when ``user`` edited it last and
    COPY_FOUR_EYES is on, or when a check fails with an error — the fresh results are stored
    on the draft even then, so the table shows why."""
    require_perm(user, APPROVE_PERM)
    comment = _comment(comment)
    blocked = ""
    with transaction.atomic():
        draft = _lock(draft)
        if draft.is_locked:
            raise ValidationError("This draft is already approved.")
        if four_eyes_blocks(draft=draft, user=user):
            raise ValidationError(FOUR_EYES_MESSAGE)
        results = sources.check_fields(draft, draft.fields, source=draft.source)
        _store_checks(draft, results)
        if not draft.passes:
            names = [r.check for r in results if not r.ok and r.severity == checks.ERROR]
            blocked = (
                f"Not approved: it fails {check_labels(dict.fromkeys(names))} against the "
                "current product data. Edit it first."
            )
        else:
            _review(
                draft,
                user=user,
                action=DraftReview.Action.APPROVE,
                status=Draft.Status.APPROVED,
                comment=comment,
            )
            audit(actor=user, action=AUDIT_APPROVED, obj=draft, details=_audit_details(draft))
    if blocked:
        raise ValidationError(blocked)
    return draft


@transaction.atomic
def draft_reject(*, draft: Draft, user, comment: str) -> Draft:
    """Reject with a comment saying why (required). Approved drafts must be reopened first."""
    require_perm(user, APPROVE_PERM)
    comment = _comment(comment, required="Say why you reject it: a comment is required.")
    draft = _lock(draft)
    if draft.is_locked:
        raise ValidationError(LOCKED_MESSAGE)
    if draft.status == Draft.Status.REJECTED:
        raise ValidationError("This draft is already rejected.")
    _review(
        draft,
        user=user,
        action=DraftReview.Action.REJECT,
        status=Draft.Status.REJECTED,
        comment=comment,
    )
    audit(actor=user, action=AUDIT_REJECTED, obj=draft, details=_audit_details(draft))
    return draft


@transaction.atomic
def draft_reopen(*, draft: Draft, user, comment: str) -> Draft:
    """Unlock an approved draft (back to pending) with a comment saying why; audited."""
    require_perm(user, APPROVE_PERM)
    comment = _comment(comment, required="Say why you reopen it: a comment is required.")
    draft = _lock(draft)
    if not draft.is_locked:
        raise ValidationError("Only approved drafts can be reopened.")
    _review(
        draft,
        user=user,
        action=DraftReview.Action.REOPEN,
        status=Draft.Status.PENDING,
        comment=comment,
    )
    audit(actor=user, action=AUDIT_REOPENED, obj=draft, details=_audit_details(draft))
    return draft


# ----------------------------------------------------------------------------- bulk


class _BatchChecker:
    """`sources.check_fields` for many drafts at once: one product-sheet, recipient and
    index read per catalog and batch instead of per draft (same inputs, same results)."""

    def __init__(self) -> None:
        self._index: dict[int, sources.CheckIndex] = {}
        self._briefs: dict[tuple, Any] = {}

    def results(self, drafts: Sequence[Draft]) -> dict[int, list[CheckResult]]:
        out: dict[int, list[CheckResult]] = {}
        by_catalog: dict[int, list[Draft]] = {}
        for d in drafts:
            by_catalog.setdefault(d.catalog_id, []).append(d)
        for group in by_catalog.values():
            catalog = group[0].catalog
            if catalog.pk not in self._index:
                self._index[catalog.pk] = sources.check_index(catalog)
            index = self._index[catalog.pk]
            ids = list(dict.fromkeys(int(p) for d in group for p in d.product_ids))
            sheets = {s.product_id: s for s in sources.product_sheets(catalog, ids)}
            customers = [d.customer_id for d in group if d.customer_id is not None]
            recipients = sources.customer_recipients(catalog, customers) if customers else {}
            for d in group:
                out[d.pk] = self._check(d, index, sheets, recipients)
        return out

    def _check(
        self,
        draft: Draft,
        index: sources.CheckIndex,
        sheets: dict[str, FactSheet],
        recipients: dict[int, Recipient],
    ) -> list[CheckResult]:
        own = [sheets[str(int(p))] for p in draft.product_ids if str(int(p)) in sheets]
        found = recipients.get(draft.customer_id) if draft.customer_id is not None else None
        if found is not None:
            recipient = Recipient(
                key=found.key,
                locale=draft.locale,
                first_name=found.first_name,
                interests=found.interests,
                segment=found.segment,
                country=found.country,
            )
        else:
            recipient = Recipient(key=draft.audience_key, locale=draft.locale)
        key = (draft.brief_id, draft.locale, recipient.country)
        if key not in self._briefs:
            self._briefs[key] = sources.engine_brief(
                draft.brief, draft.locale, country=recipient.country
            )
        variant = EngineVariant(
            channel=draft.channel,
            locale=draft.locale,
            tone=draft.tone,
            fields=draft.fields,
            product_ids=tuple(s.product_id for s in own),
            recipient_key=draft.audience_key,
            source=draft.source,
        )
        return checks.check_variant(
            variant,
            own,
            self._briefs[key],
            recipient=recipient,
            known_titles=index.titles,
            known_attributes=index.attributes,
        )


@dataclass(frozen=True)
class BulkApproval:
    approved: int
    skipped: dict[str, int]
    remaining: int  # candidates left out past BULK_APPROVE_MAX

    def as_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "skipped": self.skipped, "remaining": self.remaining}

    @property
    def message(self) -> str:
        """ "Approved 12 drafts; skipped 3 that fail a check, 1 you edited last." """
        text = f"Approved {self.approved} draft{'' if self.approved == 1 else 's'}"
        parts = [f"{n} {SKIP_REASONS[k]}" for k, n in self.skipped.items() if n]
        if parts:
            text += "; skipped " + ", ".join(parts)
        text += "."
        if self.remaining:
            text += f" {self.remaining} more were not looked at: run it again."
        return text


def drafts_bulk_approve(*, user, drafts: QuerySet[Draft] | Iterable[Draft | int]) -> dict[str, Any]:
    """Approve the pending drafts among ``drafts`` (a queryset, drafts or pks) that pass every check with no warning
    (re-checked on current product data) and that the four-eyes rule lets ``user`` approve.

    At most BULK_APPROVE_MAX drafts are looked at; batches of BULK_BATCH are locked and
    written in one transaction each. Returns ``{"approved": n, "skipped": {reason: n},
    "remaining": n, "message": "Approved …"}`` (reasons: see SKIP_REASONS)."""
    require_perm(user, APPROVE_PERM)
    if isinstance(drafts, QuerySet):
        ids = list(drafts.order_by("pk").values_list("pk", flat=True)[:BULK_APPROVE_MAX])
        remaining = drafts.count() - len(ids) if len(ids) == BULK_APPROVE_MAX else 0
    else:
        ids = list(dict.fromkeys(d if isinstance(d, int) else d.pk for d in drafts))
        remaining = max(0, len(ids) - BULK_APPROVE_MAX)
        ids = ids[:BULK_APPROVE_MAX]
    skipped: Counter[str] = Counter(dict.fromkeys(SKIP_REASONS, 0))
    approved = 0
    checker = _BatchChecker()
    for start in range(0, len(ids), BULK_BATCH):
        batch_ids = ids[start : start + BULK_BATCH]
        with transaction.atomic():
            rows = list(Draft.objects.select_for_update().filter(pk__in=batch_ids).order_by("pk"))
            skipped["missing"] += len(batch_ids) - len(rows)
            candidates = []
            for d in rows:
                if d.status != Draft.Status.PENDING:
                    skipped["not_pending"] += 1
                elif four_eyes_blocks(draft=d, user=user):
                    skipped["four_eyes"] += 1
                else:
                    candidates.append(d)
            results = checker.results(candidates) if candidates else {}
            clean = []
            for d in candidates:
                if any(not r.ok for r in results[d.pk]):
                    skipped["failing"] += 1
                    _store_checks(d, results[d.pk])
                else:
                    clean.append(d)
            approved += _approve_many(clean, user=user)
    result = BulkApproval(approved=approved, skipped=dict(skipped), remaining=remaining)
    return {**result.as_dict(), "message": result.message}


def _approve_many(drafts: list[Draft], *, user) -> int:
    if not drafts:
        return 0
    now = timezone.now()
    Draft.objects.filter(pk__in=[d.pk for d in drafts]).update(
        status=Draft.Status.APPROVED,
        reviewed_by=user,
        reviewed_at=now,
        review_comment="",
        checks=[],
        passes=True,
        failing="",
        updated_at=now,
    )
    DraftReview.objects.bulk_create(
        DraftReview(
            draft=d, action=DraftReview.Action.APPROVE, revision=d.revision, comment="", user=user
        )
        for d in drafts
    )
    # What marketing.services.audit.audit writes, one INSERT for the batch.
    AuditEvent.objects.bulk_create(
        AuditEvent(
            actor=user,
            actor_username=user.get_username(),
            action=AUDIT_APPROVED,
            object_type=Draft._meta.label_lower,
            object_id=str(d.pk),
            details=_audit_details(d, bulk=True),
        )
        for d in drafts
    )
    return len(drafts)
