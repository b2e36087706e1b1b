"""Brief services: validation with a message per field (nothing written), permissions,
audit, one active drafting job per brief, and the checks before a job is queued."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from copygen.models import Brief, Draft
from copygen.services import briefs as svc
from marketing.models import AuditEvent, Job, Segment, SegmentMembership
from recommendations.models import ModelRun, Recommendation
from tests.copy_support import copy_shop_create
from tests.factories import CatalogFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    return copy_shop_create()


def fields(shop, **changes) -> dict:
    return {
        "name": "Spring email",
        "segment": shop.segment,
        "audience": Brief.Audience.CUSTOMERS,
        "channel": "email",
        "locales": ["en", "de"],
        **changes,
    }


def errors_of(exc: pytest.ExceptionInfo) -> dict[str, list[str]]:
    return exc.value.message_dict


# ----------------------------------------------------------------------------- create


def test_create_stores_the_brief_with_defaults_and_audits(shop, marketer):
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))

    assert brief.catalog == shop.catalog and brief.created_by == marketer
    assert brief.locales == ["en", "de"] and brief.variants == 3
    assert brief.products_per_message == 1 and brief.tone == "friendly"
    assert brief.source == Brief.Source.RECOMMENDATIONS and brief.model_run is None
    event = AuditEvent.objects.get(action=svc.BRIEF_CREATED)
    assert event.object_id == str(brief.pk) and event.actor == marketer
    assert event.details == {"name": "Spring email", "catalog_id": shop.catalog.pk}


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"name": "  "}, "name", "Give the brief a name."),
        ({"name": "x" * 201}, "name", "Keep it to 200 characters"),
        ({"locales": []}, "locales", "Choose at least one language."),
        ({"locales": ["en", "pt"]}, "locales", "cannot write in “pt”"),
        ({"locales": "en"}, "locales", "as a list"),
        ({"variants": 0}, "variants", "Variants must be a whole number from 1 to 5."),
        ({"variants": 6}, "variants", "from 1 to 5"),
        ({"variants": 2.5}, "variants", "from 1 to 5"),
        ({"variants": True}, "variants", "from 1 to 5"),
        ({"products_per_message": 4}, "products_per_message", "from 1 to 3"),
        ({"channel": "sms", "sms_segments": 4}, "sms_segments", "from 1 to 3"),
        ({"channel": "fax"}, "channel", "Choose a channel"),
        ({"tone": "angry"}, "tone", "Choose a tone"),
        ({"audience": "everyone"}, "audience", "Choose the audience"),
        ({"occasion": "halloween"}, "occasion", "Unknown occasion “halloween”."),
        ({"segment": None}, "segment", "Choose a segment."),
        (
            {"audience": Brief.Audience.SEGMENT, "customer_language": True},
            "customer_language",
            "Only a brief with one draft per customer",
        ),
        (
            {"source": Brief.Source.PRODUCTS, "products_per_message": 2},
            "products",
            "Pick at least 2 products",
        ),
        ({"disclaimer": "d" * 501}, "disclaimer", "Keep it to 500 characters"),
        ({"banned_words": "x" * 101}, "banned_words", "too long for a banned phrase"),
    ],
)
def test_bad_input_gets_a_message_under_its_field_and_writes_nothing(
    shop, marketer, changes, field, text
):
    with pytest.raises(ValidationError) as exc:
        svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop, **changes))

    assert field in errors_of(exc)
    assert any(text in message for message in errors_of(exc)[field]), errors_of(exc)
    assert not Brief.objects.exists()
    assert not AuditEvent.objects.filter(action=svc.BRIEF_CREATED).exists()


def test_several_problems_are_reported_together(shop, marketer):
    with pytest.raises(ValidationError) as exc:
        svc.brief_create(
            user=marketer, catalog=shop.catalog, **fields(shop, locales=[], variants=9, name="")
        )
    assert set(errors_of(exc)) == {"locales", "variants", "name"}


def test_segments_runs_and_products_must_be_of_the_briefs_catalog(shop, marketer):
    other = CatalogFactory(name="Other")
    foreign_segment = Segment.objects.create(catalog=other, name="X", kind=Segment.Kind.RULE)
    foreign_product = ProductFactory(catalog=other)
    foreign_run = ModelRun.objects.create(catalog=other, status=ModelRun.Status.SUCCEEDED)
    with pytest.raises(ValidationError) as exc:
        svc.brief_create(
            user=marketer,
            catalog=shop.catalog,
            **fields(
                shop, segment=foreign_segment, products=[foreign_product], model_run=foreign_run
            ),
        )
    errors = errors_of(exc)
    assert errors["segment"] == ["Choose a segment of catalog “Copy shop”."]
    assert errors["products"] == ["1 of the hand-picked products are not in catalog “Copy shop”."]
    assert errors["model_run"] == ["Choose a recommendation run of catalog “Copy shop”."]


def test_a_run_that_did_not_succeed_cannot_be_chosen(shop, marketer):
    failed = ModelRun.objects.create(catalog=shop.catalog, status=ModelRun.Status.FAILED)
    with pytest.raises(ValidationError) as exc:
        svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop, model_run=failed))
    assert errors_of(exc)["model_run"] == [f"Recommendation run #{failed.pk} has not succeeded."]


def test_sms_segments_only_count_for_sms_and_hand_picked_briefs_keep_their_products(shop, marketer):
    picked = shop.products[:2]
    brief = svc.brief_create(
        user=marketer,
        catalog=shop.catalog,
        **fields(
            shop,
            sms_segments=3,
            source=Brief.Source.PRODUCTS,
            products=[p.pk for p in picked],
            model_run=shop.run,
            banned_words="cheap\n  free \ncheap\n",
        ),
    )
    assert brief.sms_segments == 1  # email
    assert brief.model_run is None  # hand-picked products need no run
    assert set(brief.products.all()) == set(picked)
    assert brief.banned_list == ["cheap", "free"]


def test_unknown_fields_are_a_programming_error(shop, marketer):
    with pytest.raises(TypeError):
        svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop, colour="red"))


@pytest.mark.parametrize("who", ["approver", "no_role_user"])
def test_only_marketers_and_admins_write_briefs(shop, marketer, who, request):
    user = request.getfixturevalue(who)
    with pytest.raises(PermissionDenied):
        svc.brief_create(user=user, catalog=shop.catalog, **fields(shop))
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    with pytest.raises(PermissionDenied):
        svc.brief_update(brief=brief, user=user, name="Mine")
    with pytest.raises(PermissionDenied):
        svc.brief_draft_start(brief=brief, user=user)
    with pytest.raises(PermissionDenied):
        svc.brief_delete(brief=brief, user=user)
    brief.refresh_from_db()
    assert brief.name == "Spring email" and brief.job is None


def test_admins_write_briefs(shop, admin_user):
    brief = svc.brief_create(user=admin_user, catalog=shop.catalog, **fields(shop))
    svc.brief_update(brief=brief, user=admin_user, tone="premium")
    svc.brief_delete(brief=brief, user=admin_user)
    assert not Brief.objects.exists()


# ----------------------------------------------------------------------------- update, delete


def test_update_changes_the_given_fields_and_audits_which(shop, marketer):
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    svc.brief_update(
        brief=brief, user=marketer, tone="premium", variants=2, products=[shop.products[0]]
    )
    brief.refresh_from_db()
    assert brief.tone == "premium" and brief.variants == 2
    assert list(brief.products.all()) == [shop.products[0]]
    assert brief.locales == ["en", "de"] and brief.name == "Spring email"
    event = AuditEvent.objects.get(action=svc.BRIEF_CHANGED)
    assert event.details["fields"] == ["products", "tone", "variants"]


def test_bad_update_leaves_the_brief_as_it_was(shop, marketer):
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    with pytest.raises(ValidationError) as exc:
        svc.brief_update(brief=brief, user=marketer, tone="premium", locales=["xx"])
    assert "locales" in errors_of(exc)
    brief.refresh_from_db()
    assert brief.tone == "friendly" and brief.locales == ["en", "de"]
    assert not AuditEvent.objects.filter(action=svc.BRIEF_CHANGED).exists()


def test_delete_removes_the_brief_with_its_drafts_and_audits_the_counts(shop, marketer):
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    for n, status in enumerate(["pending", "pending", "approved"], start=1):
        Draft.objects.create(
            brief=brief,
            catalog=shop.catalog,
            audience_key=f"customer:{shop.customers[n].pk}",
            customer=shop.customers[n],
            locale="en",
            variant=1,
            channel="email",
            tone="friendly",
            status=status,
        )
    counts = svc.brief_delete(brief=brief, user=marketer)

    assert counts == {"pending": 2, "approved": 1, "rejected": 0}
    assert not Brief.objects.exists() and not Draft.objects.exists()
    event = AuditEvent.objects.get(action=svc.BRIEF_DELETED)
    assert event.details["drafts"] == counts and event.object_id == str(brief.pk)


# ----------------------------------------------------------------------------- drafting


def test_drafting_queues_one_job_on_commit(
    shop, marketer, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "copygen.tasks.copy_draft_task.apply_async",
        lambda args, **kw: sent.append(args) or type("R", (), {"id": "celery-1"})(),
    )
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    with django_capture_on_commit_callbacks(execute=True):
        job = svc.brief_draft_start(brief=brief, user=marketer)

    assert sent == [[job.pk]]
    job.refresh_from_db()
    brief.refresh_from_db()
    assert brief.job == job and job.kind == Job.Kind.COPY_DRAFT
    assert job.params == {"brief_id": brief.pk, "run_id": shop.run.pk}
    assert job.catalog == shop.catalog and job.created_by == marketer
    assert job.celery_id == "celery-1" and job.status == Job.Status.QUEUED
    assert "each customer of “Regulars”" in job.message
    assert AuditEvent.objects.get(action=svc.BRIEF_DRAFTING_STARTED).details["job_id"] == job.pk


def test_one_active_drafting_job_per_brief_and_no_changes_meanwhile(shop, marketer):
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    job = svc.brief_draft_start(brief=brief, user=marketer)

    with pytest.raises(svc.BriefBusy) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert f"job #{job.pk}" in exc.value.messages[0]
    with pytest.raises(svc.BriefBusy):
        svc.brief_update(brief=brief, user=marketer, tone="premium")
    with pytest.raises(svc.BriefBusy):
        svc.brief_delete(brief=brief, user=marketer)
    assert Job.objects.filter(kind=Job.Kind.COPY_DRAFT).count() == 1

    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    second = svc.brief_draft_start(brief=brief, user=marketer)
    assert second.pk != job.pk
    brief.refresh_from_db()
    assert brief.job == second


def test_a_failure_while_starting_leaves_no_job_keeping_the_brief_busy(shop, marketer, monkeypatch):
    """The job row comes before the audit row: a failure in between must take the job back,
    or a job that was never sent would stay queued and refuse every later start."""
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))

    def broken_audit(**kwargs) -> None:
        raise RuntimeError("audit log unavailable")

    audit = svc.audit
    monkeypatch.setattr(svc, "audit", broken_audit)
    with pytest.raises(RuntimeError):
        svc.brief_draft_start(brief=brief, user=marketer)

    brief.refresh_from_db()
    assert brief.job is None
    assert not Job.objects.filter(kind=Job.Kind.COPY_DRAFT).exists()
    monkeypatch.setattr(svc, "audit", audit)
    assert svc.brief_draft_start(brief=brief, user=marketer).status == Job.Status.QUEUED


def test_drafting_from_recommendations_needs_a_run(marketer):
    shop = copy_shop_create()
    ModelRun.objects.filter(pk=shop.run.pk).update(is_current=False)
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    with pytest.raises(ValidationError) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert exc.value.messages == [
        "Run recommendations for this catalog first: the brief drafts from them."
    ]
    assert not Job.objects.exists()
    brief.refresh_from_db()
    assert brief.job is None


def test_a_segment_brief_needs_the_runs_list_for_its_segment(shop, marketer):
    newer = Segment.objects.create(catalog=shop.catalog, name="New", kind=Segment.Kind.RULE)
    brief = svc.brief_create(
        user=marketer,
        catalog=shop.catalog,
        **fields(shop, segment=newer, audience=Brief.Audience.SEGMENT),
    )
    with pytest.raises(ValidationError) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert "has no list for segment “New”" in exc.value.messages[0]


def test_a_customer_brief_needs_members(shop, marketer):
    empty = Segment.objects.create(catalog=shop.catalog, name="Empty", kind=Segment.Kind.RULE)
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop, segment=empty))
    with pytest.raises(ValidationError) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert "Segment “Empty” has no customers" in exc.value.messages[0]


def test_a_chosen_run_whose_lists_were_replaced_cannot_be_drafted_from(shop, marketer):
    brief = svc.brief_create(
        user=marketer, catalog=shop.catalog, **fields(shop, model_run=shop.run)
    )
    Recommendation.objects.filter(run=shop.run).delete()
    with pytest.raises(ValidationError) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert "no longer has its lists" in exc.value.messages[0]


def test_a_brief_whose_segment_is_gone_asks_for_another(shop, marketer):
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    Segment.objects.filter(pk=shop.segment.pk).delete()  # e.g. a re-clustered learned segment
    brief.refresh_from_db()
    assert brief.segment is None
    with pytest.raises(ValidationError) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert "segment no longer exists" in exc.value.messages[0]
    with pytest.raises(ValidationError) as exc:
        svc.brief_update(brief=brief, user=marketer, tone="premium")
    assert errors_of(exc)["segment"] == ["Choose a segment."]


def test_hand_picked_products_deleted_since_are_noticed(shop, marketer):
    brief = svc.brief_create(
        user=marketer,
        catalog=shop.catalog,
        **fields(
            shop, source=Brief.Source.PRODUCTS, products=shop.products[:2], products_per_message=2
        ),
    )
    shop.products[0].delete()
    with pytest.raises(ValidationError) as exc:
        svc.brief_draft_start(brief=brief, user=marketer)
    assert "1 hand-picked product but writes about 2 per message" in exc.value.messages[0]


def test_members_are_the_segments_customers_not_erased(shop, marketer):
    """The job's audience (see the drafting tests) and this check agree on membership."""
    for customer in shop.customers:
        SegmentMembership.objects.filter(segment=shop.segment, customer=customer).delete()
    brief = svc.brief_create(user=marketer, catalog=shop.catalog, **fields(shop))
    with pytest.raises(ValidationError):
        svc.brief_draft_start(brief=brief, user=marketer)
