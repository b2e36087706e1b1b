"""Review services: edit (revisions, checks, locking), approve (permission, four eyes, checks on
current product data), reject, reopen (audited), bulk approve, and concurrent edits.

mary (marketer) edits; avery (approver) reviews; alice (admin) may do both, which is what the
four-eyes rule is about.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from copygen.models import Draft, DraftReview, DraftRevision
from copygen.services import drafts as svc
from copygen.services import sources
from marketing.models import AuditEvent
from tests.copygen_factories import PASSING_FIELDS, BriefFactory, SegmentFactory, draft_make
from tests.factories import CatalogFactory, CustomerFactory
from tests.roles import role_group

pytestmark = pytest.mark.django_db

INVENTED_PRICE = "Hi there,\n\nThe Blue Mug is yours for £9.99 today. It keeps your tea warm."


@pytest.fixture
def draft():
    return draft_make(channel="email")


def email(**changes) -> dict:
    return {**PASSING_FIELDS["email"], **changes}


def approver_two() -> User:
    user = User.objects.create_user("ari", "ari@example.test", "pw-ari")
    user.groups.add(role_group("approver"))
    return user


# --------------------------------------------------------------------------- edit


def test_edit_makes_a_revision_with_its_checks(draft, marketer):
    edited = svc.draft_edit(draft=draft, user=marketer, fields=email(subject="The Blue Mug is in"))
    assert edited.revision == 2 and edited.source == "edit"
    assert edited.last_edited_by == marketer and edited.passes and edited.failing == ""
    rev = DraftRevision.objects.get(draft=draft, number=2)
    assert rev.author == marketer and rev.source == "edit" and rev.passes
    assert rev.fields["subject"] == "The Blue Mug is in"
    draft.refresh_from_db()
    assert draft.fields["subject"] == "The Blue Mug is in"
    event = AuditEvent.objects.get(action=svc.AUDIT_EDITED)
    assert event.object_id == str(draft.pk) and event.details["revision"] == 2


def test_edit_with_an_invented_price_is_saved_failing_fidelity(draft, marketer):
    edited = svc.draft_edit(draft=draft, user=marketer, fields=email(body=INVENTED_PRICE))
    assert not edited.passes and ",fidelity," in edited.failing
    assert any(c["check"] == "fidelity" and c["field"] == "body" for c in edited.checks)
    rev = DraftRevision.objects.get(draft=draft, number=2)
    assert not rev.passes and ",fidelity," in rev.failing


def test_unchanged_text_makes_no_revision(draft, marketer):
    same = {k: f"  {v.replace(chr(10), chr(13) + chr(10))} " for k, v in email().items()}
    edited = svc.draft_edit(draft=draft, user=marketer, fields=same)
    assert edited.revision == 1 and edited.source == "template" and edited.last_edited_by is None
    assert DraftRevision.objects.filter(draft=draft).count() == 1
    assert not AuditEvent.objects.filter(action=svc.AUDIT_EDITED).exists()


@pytest.mark.parametrize(
    "fields, key",
    [
        (email(sender="me"), "__all__"),  # a field the channel does not have
        (email(subject=["a", "b"]), "subject"),  # a list for a text field
        (email(subject=42), "subject"),
        (email(subject="null \x00 byte"), "subject"),
        (email(body="x" * (svc.MAX_TEXT_CHARS + 1)), "body"),
        ({k: v for k, v in email().items() if k != "cta"}, "cta"),  # a required field missing
        ("subject: hello", "__all__"),
    ],
)
def test_bad_fields_are_refused_and_nothing_changes(draft, marketer, fields, key):
    with pytest.raises(ValidationError) as exc:
        svc.draft_edit(draft=draft, user=marketer, fields=fields)
    errors = exc.value.message_dict if hasattr(exc.value, "error_dict") else {"__all__": 1}
    assert key in errors
    draft.refresh_from_db()
    assert draft.revision == 1 and draft.fields == PASSING_FIELDS["email"]


def test_list_fields_take_lists_of_texts_within_the_maximum(marketer):
    ads = draft_make(channel="google_ads")
    fields = PASSING_FIELDS["google_ads"]
    with pytest.raises(ValidationError, match="at most 15"):
        svc.draft_edit(
            draft=ads,
            user=marketer,
            fields={**fields, "headlines": [f"Mug {i}" for i in range(16)]},
        )
    with pytest.raises(ValidationError, match="list of texts"):
        svc.draft_edit(draft=ads, user=marketer, fields={**fields, "headlines": "Meet the mug"})
    with pytest.raises(ValidationError, match="must be text"):
        svc.draft_edit(draft=ads, user=marketer, fields={**fields, "headlines": ["a", 3, "b"]})
    # Too few is saved (the checks say so): the marketer may be half-way through.
    edited = svc.draft_edit(
        draft=ads, user=marketer, fields={**fields, "headlines": ["Meet the Blue Mug", " "]}
    )
    assert edited.fields["headlines"] == ["Meet the Blue Mug"]
    assert not edited.passes and ",required," in edited.failing


def test_editing_a_rejected_draft_puts_it_back_in_review(draft, marketer, approver):
    svc.draft_reject(draft=draft, user=approver, comment="Too bland")
    edited = svc.draft_edit(draft=draft, user=marketer, fields=email(subject="The Blue Mug, new"))
    assert edited.status == Draft.Status.PENDING and edited.revision == 2


def test_approver_cannot_edit(draft, approver, no_role_user):
    for user in (approver, no_role_user):
        with pytest.raises(PermissionDenied):
            svc.draft_edit(draft=draft, user=user, fields=email(subject="Mine now"))
    draft.refresh_from_db()
    assert draft.revision == 1


def test_preview_checks_without_saving(draft):
    results = svc.draft_preview(draft=draft, fields=email(body=INVENTED_PRICE))
    assert any(r.check == "fidelity" and not r.ok for r in results)
    draft.refresh_from_db()
    assert draft.fields == PASSING_FIELDS["email"] and draft.passes


# --------------------------------------------------------------------------- approve


def test_approve_locks_the_draft(draft, marketer, approver):
    approved = svc.draft_approve(draft=draft, user=approver, comment="Lovely")
    assert approved.status == Draft.Status.APPROVED and approved.is_locked
    assert approved.reviewed_by == approver and approved.reviewed_at is not None
    assert approved.review_comment == "Lovely"
    review = DraftReview.objects.get(draft=draft)
    assert (review.action, review.revision, review.user) == ("approve", 1, approver)
    event = AuditEvent.objects.get(action=svc.AUDIT_APPROVED)
    assert event.actor == approver and "Lovely" not in str(event.details)
    with pytest.raises(ValidationError, match="Approved drafts are locked; reopen it first"):
        svc.draft_edit(draft=draft, user=marketer, fields=email(subject="Sneaky change"))
    with pytest.raises(ValidationError, match="Approved drafts are locked"):
        svc.draft_reject(draft=draft, user=approver, comment="changed my mind")
    with pytest.raises(ValidationError, match="already approved"):
        svc.draft_approve(draft=draft, user=approver)
    draft.refresh_from_db()
    assert draft.revision == 1 and draft.fields == PASSING_FIELDS["email"]


def test_a_stale_object_cannot_edit_an_approved_draft(draft, marketer, approver):
    stale = Draft.objects.get(pk=draft.pk)
    svc.draft_approve(draft=draft, user=approver)
    assert stale.status == Draft.Status.PENDING  # read before the approval
    with pytest.raises(ValidationError, match="locked"):
        svc.draft_edit(draft=stale, user=marketer, fields=email(subject="Too late"))


def test_marketer_cannot_approve_reject_or_reopen(draft, marketer):
    with pytest.raises(PermissionDenied):
        svc.draft_approve(draft=draft, user=marketer)
    with pytest.raises(PermissionDenied):
        svc.draft_reject(draft=draft, user=marketer, comment="no")
    with pytest.raises(PermissionDenied):
        svc.drafts_bulk_approve(user=marketer, drafts=[draft])
    draft.refresh_from_db()
    assert draft.status == Draft.Status.PENDING and not DraftReview.objects.exists()


def test_four_eyes_refuses_the_last_editor(draft, admin_user, settings):
    settings.COPY_FOUR_EYES = True
    svc.draft_edit(draft=draft, user=admin_user, fields=email(subject="Admin's subject"))
    with pytest.raises(ValidationError, match="You edited this draft last"):
        svc.draft_approve(draft=draft, user=admin_user)
    draft.refresh_from_db()
    assert draft.status == Draft.Status.PENDING
    # Another approver may.
    assert svc.draft_approve(draft=draft, user=approver_two()).status == Draft.Status.APPROVED


def test_four_eyes_off_lets_the_editor_approve(draft, admin_user, settings):
    settings.COPY_FOUR_EYES = False
    svc.draft_edit(draft=draft, user=admin_user, fields=email(subject="Admin's subject"))
    assert svc.draft_approve(draft=draft, user=admin_user).status == Draft.Status.APPROVED


def test_a_failing_draft_cannot_be_approved(draft, marketer, approver):
    svc.draft_edit(draft=draft, user=marketer, fields=email(body=INVENTED_PRICE))
    with pytest.raises(ValidationError, match="Faithful to product data"):
        svc.draft_approve(draft=draft, user=approver)
    draft.refresh_from_db()
    assert draft.status == Draft.Status.PENDING and not DraftReview.objects.exists()


def test_a_price_changed_after_drafting_blocks_approval(draft, approver):
    assert draft.passes  # £12.50 was right when it was drafted
    product = draft.catalog.products.get()
    product.price = Decimal("15.00")
    product.save()
    with pytest.raises(ValidationError) as exc:
        svc.draft_approve(draft=draft, user=approver)
    assert "Faithful to product data" in exc.value.messages[0]
    draft.refresh_from_db()
    # The fresh results are stored even though nothing was approved: the table shows why.
    assert draft.status == Draft.Status.PENDING
    assert not draft.passes and ",fidelity," in draft.failing


def test_approve_comment_is_bounded(draft, approver):
    with pytest.raises(ValidationError):
        svc.draft_approve(draft=draft, user=approver, comment="x" * (svc.MAX_COMMENT_CHARS + 1))


# --------------------------------------------------------------------------- reject, reopen


def test_reject_needs_a_comment(draft, approver):
    for comment in ("", "   "):
        with pytest.raises(ValidationError) as exc:
            svc.draft_reject(draft=draft, user=approver, comment=comment)
        assert "comment" in exc.value.message_dict
    draft.refresh_from_db()
    assert draft.status == Draft.Status.PENDING
    rejected = svc.draft_reject(draft=draft, user=approver, comment="Too long")
    assert rejected.status == Draft.Status.REJECTED and rejected.review_comment == "Too long"
    assert DraftReview.objects.get(draft=draft).action == "reject"
    assert AuditEvent.objects.filter(action=svc.AUDIT_REJECTED, object_id=str(draft.pk)).exists()
    with pytest.raises(ValidationError, match="already rejected"):
        svc.draft_reject(draft=draft, user=approver, comment="Again")


def test_reopen_is_explicit_and_audited(draft, marketer, approver):
    with pytest.raises(ValidationError, match="Only approved drafts"):
        svc.draft_reopen(draft=draft, user=approver, comment="why not")
    svc.draft_approve(draft=draft, user=approver)
    with pytest.raises(PermissionDenied):
        svc.draft_reopen(draft=draft, user=marketer, comment="let me edit")
    with pytest.raises(ValidationError):
        svc.draft_reopen(draft=draft, user=approver, comment="")
    reopened = svc.draft_reopen(draft=draft, user=approver, comment="Price changes on Monday")
    assert reopened.status == Draft.Status.PENDING and not reopened.is_locked
    actions = list(DraftReview.objects.filter(draft=draft).values_list("action", "comment"))
    assert actions == [("approve", ""), ("reopen", "Price changes on Monday")]
    event = AuditEvent.objects.get(action=svc.AUDIT_REOPENED)
    assert event.actor == approver and event.object_type == "copygen.draft"
    assert event.details == {"brief": draft.brief_id, "revision": 1, "channel": "email",
                             "locale": "en"}  # fmt: skip
    # Editable again.
    assert svc.draft_edit(draft=draft, user=marketer, fields=email(cta="Get yours")).revision == 2


# --------------------------------------------------------------------------- bulk


def test_bulk_approve_only_clean_pending_drafts(admin_user, approver, settings):
    settings.COPY_FOUR_EYES = True
    brief = BriefFactory(catalog=CatalogFactory(currency="GBP"), channel="email")
    clean = [draft_make(brief=brief) for _ in range(2)]
    failing = draft_make(brief=brief, fields=email(body=INVENTED_PRICE))
    warning = draft_make(brief=brief, fields=email(subject="Wow! Meet the Blue Mug!"))
    assert warning.passes and warning.checks  # a warning does not block one approval...
    edited = draft_make(brief=brief)
    svc.draft_edit(draft=edited, user=admin_user, fields=email(subject="Admin's subject"))
    done = draft_make(brief=brief)
    svc.draft_approve(draft=done, user=approver)
    drafts = [*clean, failing, warning, edited, done]

    result = svc.drafts_bulk_approve(user=admin_user, drafts=drafts)

    assert result["approved"] == 2
    assert result["skipped"] == {"failing": 2, "four_eyes": 1, "not_pending": 1, "missing": 0}
    assert result["message"] == (
        "Approved 2 drafts; skipped 2 that fail a check, 1 you edited last, 1 not pending."
    )
    statuses = dict(Draft.objects.values_list("pk", "status"))
    assert [statuses[d.pk] for d in drafts] == [
        "approved", "approved", "pending", "pending", "pending", "approved"
    ]  # fmt: skip
    for d in clean:
        review = DraftReview.objects.get(draft=d)
        assert (review.action, review.user) == ("approve", admin_user)
        assert AuditEvent.objects.filter(action=svc.AUDIT_APPROVED, object_id=str(d.pk)).exists()
    # ...but bulk approval wants no failure at all.
    assert Draft.objects.get(pk=warning.pk).status == Draft.Status.PENDING


def test_bulk_approve_rechecks_current_product_data(approver):
    d = draft_make()
    product = d.catalog.products.get()
    product.price = Decimal("20.00")
    product.save()
    result = svc.drafts_bulk_approve(user=approver, drafts=Draft.objects.filter(pk=d.pk))
    assert result["approved"] == 0 and result["skipped"]["failing"] == 1
    d.refresh_from_db()
    assert d.status == Draft.Status.PENDING and ",fidelity," in d.failing


def test_bulk_approve_counts_missing_and_caps(approver, monkeypatch):
    d = draft_make()
    monkeypatch.setattr(svc, "BULK_APPROVE_MAX", 1)
    result = svc.drafts_bulk_approve(user=approver, drafts=[d.pk, 10**9])
    assert result["approved"] == 1 and result["remaining"] == 1
    assert "1 more were not looked at" in result["message"]
    result = svc.drafts_bulk_approve(user=approver, drafts=[10**9])
    assert result["skipped"]["missing"] == 1 and result["approved"] == 0


def test_batch_checks_equal_one_by_one_checks():
    brief = BriefFactory(catalog=CatalogFactory(currency="GBP"), channel="sms")
    segment = SegmentFactory(catalog=brief.catalog)
    drafts = [
        draft_make(brief=brief, customer=CustomerFactory(name="Zoë Example")),
        draft_make(brief=brief, fields={"text": "The Blue Mug for £9.99! " * 8}),
        draft_make(brief=brief, segment=segment, locale="de"),
    ]
    batch = svc._BatchChecker().results(list(Draft.objects.filter(pk__in=[d.pk for d in drafts])))
    for d in drafts:
        assert batch[d.pk] == sources.check_fields(d, d.fields, source=d.source)


# --------------------------------------------------------------------------- concurrency


@pytest.mark.django_db(transaction=True)
def test_concurrent_edits_get_distinct_revision_numbers():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    marketer = User.objects.create_user("mary", "mary@example.test", "pw")
    marketer.groups.add(role_group("marketer"))
    draft = draft_make()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def edit(i: int) -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            svc.draft_edit(draft=draft, user=marketer, fields=email(subject=f"Blue Mug take {i}"))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    numbers = sorted(DraftRevision.objects.filter(draft=draft).values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4, 5]
    draft.refresh_from_db()
    assert draft.revision == 5
    last = DraftRevision.objects.get(draft=draft, number=5)
    assert draft.fields == last.fields
