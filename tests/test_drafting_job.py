"""The drafting job in this process (no broker, no worker): a brief's audience in chunks,
each customer's own recommendations, locales, re-runs that keep approved drafts, members who
leave, resume after a crash, cancel between chunks, dropped items, erased customers, and
markup in catalog text shown escaped."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from django.urls import reverse
from django.utils import timezone

from copygen.engine.llm import LLMUnavailable
from copygen.models import Brief, Draft, DraftChunk, DraftRevision
from copygen.services import drafting
from copygen.services.briefs import brief_create, brief_draft_start
from marketing.models import Customer, Job, Segment, SegmentMembership
from marketing.services.jobs import job_cancel, job_claim
from recommendations.models import Recommendation
from tests.copy_support import copy_shop_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _drafting_settings(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"  # the pickled copy models
    settings.COPY_DRAFT_CHUNK_SIZE = 4
    settings.COPY_DRAFT_PARALLEL = 1  # no helper tasks on the broker from these tests


@pytest.fixture
def shop():
    return copy_shop_create()


def customer_brief(shop, user, **fields) -> Brief:
    values = {
        "name": "Spring email",
        "segment": shop.segment,
        "audience": Brief.Audience.CUSTOMERS,
        "channel": "email",
        "locales": ["en", "de"],
        "variants": 2,
        **fields,
    }
    return brief_create(user=user, catalog=shop.catalog, **values)


def draft(brief: Brief, user) -> Job:
    """Start the brief's job and run it here to the end."""
    job = brief_draft_start(brief=brief, user=user)
    drafting.drafting_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    return job


def worker_died(job: Job) -> None:
    """What job_release does when the worker's process is gone: the job is claimable."""
    Job.objects.filter(pk=job.pk).update(heartbeat_at=None)


def succeeded(job: Job) -> Job:
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error, job.message)
    return job


def drafts_by_customer(brief: Brief) -> dict[int, list[Draft]]:
    out: dict[int, list[Draft]] = defaultdict(list)
    for d in Draft.objects.filter(brief=brief).order_by("customer_id", "locale", "variant"):
        out[d.customer_id].append(d)
    return out


# ----------------------------------------------------------------------------- drafting


def test_each_customer_gets_drafts_per_locale_and_variant_from_their_own_recommendations(
    shop, marketer
):
    brief = customer_brief(shop, marketer)
    job = succeeded(draft(brief, marketer))

    by_customer = drafts_by_customer(brief)
    assert set(by_customer) == {c.pk for c in shop.customers}
    own = shop.recommended
    for customer_id, drafts in by_customer.items():
        assert [(d.locale, d.variant) for d in drafts] == [
            ("de", 1),
            ("de", 2),
            ("en", 1),
            ("en", 2),
        ]
        allowed = own.get(customer_id) or shop.segment_list  # the last one has no list
        for d in drafts:
            assert d.audience_key == f"customer:{customer_id}"
            assert d.product_ids and set(d.product_ids) <= set(allowed)
            assert d.segment_id is None and d.catalog_id == shop.catalog.pk
            assert d.job_id == job.pk and d.channel == "email" and d.tone == "friendly"
            assert d.status == Draft.Status.PENDING and d.revision == 1
            assert set(d.fields) >= {"subject", "preheader", "body", "cta"}
            assert d.passes and d.frames and d.score >= 0
            assert isinstance(d.checks, list)
            revision = DraftRevision.objects.get(draft=d)
            assert revision.number == 1 and revision.fields == d.fields
            assert revision.source == "template" and revision.author is None
    # The customer without a list of their own got the segment's list.
    last = shop.customers[-1].pk
    assert last not in own and set(by_customer[last][0].product_ids) <= set(shop.segment_list)

    assert job.message == "Drafted 36 drafts for 9 customers in 2 languages"
    assert job.result["drafts"] == 36
    assert job.result["audience"] == 9 and job.result["audience_planned"] == 9
    assert job.result["locales"] == ["de", "en"]
    assert job.result["run_id"] == shop.run.pk
    assert job.result["dropped"] == 0 and job.result["chunks"] == 3
    assert job.progress_done == job.progress_total == 9
    chunks = DraftChunk.objects.filter(job=job).order_by("index")
    assert [c.size for c in chunks] == [4, 4, 1]
    assert all(c.done and c.finished_at for c in chunks)
    assert sum(c.drafts for c in chunks) == 36
    brief.refresh_from_db()
    assert brief.info["run_id"] == shop.run.pk and brief.info["audience"] == 9
    assert brief.info["sentiment"]["method"] in ("tfidf+logreg", "lexicon")
    assert brief.info["result"]["drafts"] == 36


def test_each_customer_in_their_own_language(shop, marketer):
    brief = customer_brief(shop, marketer, locales=["fr", "en"], customer_language=True, variants=1)
    succeeded(draft(brief, marketer))

    languages = dict(
        Customer.objects.filter(pk__in=[c.pk for c in shop.customers]).values_list("pk", "language")
    )
    expected = {"en": "en", "de": "de", "fr": "fr", "es": "es", "zh": "zh", "pt": "fr", "": "fr"}
    expected |= {"en-GB": "en", "de-AT": "de"}
    for customer_id, drafts in drafts_by_customer(brief).items():
        assert [d.locale for d in drafts] == [expected[languages[customer_id]]]


def test_a_segment_brief_drafts_the_segment_once_per_locale(shop, marketer):
    brief = customer_brief(
        shop, marketer, audience=Brief.Audience.SEGMENT, locales=["en", "fr", "es"], variants=3
    )
    job = succeeded(draft(brief, marketer))

    drafts = list(Draft.objects.filter(brief=brief))
    assert len(drafts) == 9
    assert {d.audience_key for d in drafts} == {f"segment:{shop.segment.pk}"}
    assert all(d.segment_id == shop.segment.pk and d.customer_id is None for d in drafts)
    assert Counter(d.locale for d in drafts) == {"en": 3, "fr": 3, "es": 3}
    assert all(set(d.product_ids) <= set(shop.segment_list) for d in drafts)
    assert job.message == "Drafted 9 drafts for segment “Regulars” in 3 languages"


def test_hand_picked_products_are_the_only_ones_used(shop, marketer):
    picked = [shop.products[1], shop.products[6], shop.products[10]]
    brief = customer_brief(
        shop, marketer, source=Brief.Source.PRODUCTS, products=picked, locales=["en"]
    )
    job = succeeded(draft(brief, marketer))

    assert job.result["run_id"] is None
    drafts = Draft.objects.filter(brief=brief)
    assert drafts.count() == 18
    assert {p for d in drafts for p in d.product_ids} <= {p.pk for p in picked}


def test_the_llm_provider_is_asked_first_and_templates_fill_in(shop, marketer, monkeypatch):
    class Down:
        def generate(self, *args, **kwargs):
            raise LLMUnavailable("circuit open")

    monkeypatch.setattr(drafting, "provider_from_settings", lambda: Down())
    brief = customer_brief(shop, marketer, locales=["en"], variants=1)
    succeeded(draft(brief, marketer))

    d = Draft.objects.filter(brief=brief).first()
    assert d.source == "template"
    assert any("LLM unavailable" in note for note in d.notes)
    brief.refresh_from_db()
    assert brief.info["llm"] is True


# ----------------------------------------------------------------------------- re-runs


def test_drafting_again_replaces_pending_drafts_and_keeps_approved_ones(shop, marketer):
    brief = customer_brief(shop, marketer)
    first = succeeded(draft(brief, marketer))
    approved = Draft.objects.filter(brief=brief, locale="de", variant=2).first()
    Draft.objects.filter(pk=approved.pk).update(status=Draft.Status.APPROVED)
    rejected = Draft.objects.filter(brief=brief, locale="en").exclude(pk=approved.pk).first()
    Draft.objects.filter(pk=rejected.pk).update(status=Draft.Status.REJECTED)
    old = set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))

    second = succeeded(draft(brief, marketer))

    assert second.pk != first.pk
    assert not DraftChunk.objects.filter(job=first).exists()  # the old plan is gone
    approved_now = Draft.objects.get(pk=approved.pk)
    assert approved_now.status == Draft.Status.APPROVED and approved_now.fields == approved.fields
    # That customer's German version is kept as it is (its pending sibling went too).
    german = Draft.objects.filter(brief=brief, audience_key=approved.audience_key, locale="de")
    assert list(german.values_list("pk", flat=True)) == [approved.pk]
    remaining = set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert remaining & old == {approved.pk}  # every other draft (rejected too) is new
    assert Draft.objects.filter(brief=brief).count() == 36 - 1
    assert not Draft.objects.filter(brief=brief, job=first).exclude(pk=approved.pk).exists()
    assert second.result["kept_approved"] == 1
    assert second.result["drafts"] == 34


def test_members_who_left_the_segment_lose_their_pending_drafts(shop, marketer):
    brief = customer_brief(shop, marketer)
    succeeded(draft(brief, marketer))
    leaver, stayer = shop.customers[0], shop.customers[1]
    kept = Draft.objects.filter(brief=brief, customer=leaver, locale="en", variant=1).get()
    Draft.objects.filter(pk=kept.pk).update(status=Draft.Status.APPROVED)
    SegmentMembership.objects.filter(segment=shop.segment, customer=leaver).delete()

    job = succeeded(draft(brief, marketer))

    assert list(
        Draft.objects.filter(brief=brief, customer=leaver).values_list("pk", flat=True)
    ) == [kept.pk]
    assert Draft.objects.filter(brief=brief, customer=stayer, job=job).count() == 4
    assert job.result["removed"] == 3 and job.result["audience_planned"] == 8


def test_a_chunk_task_or_a_second_delivery_of_a_finished_job_changes_nothing(shop, marketer):
    brief = customer_brief(shop, marketer)
    job = succeeded(draft(brief, marketer))
    before = sorted(Draft.objects.filter(brief=brief).values_list("pk", "fields"))

    drafting.drafting_chunks_run(job_id=job.pk, worker="helper")
    drafting.drafting_run(job_id=job.pk, worker="again")

    assert sorted(Draft.objects.filter(brief=brief).values_list("pk", "fields")) == before
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 1


def test_a_redelivered_job_resumes_at_the_chunks_not_done(shop, marketer):
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    # The first delivery plans and drafts one chunk, then its worker dies.
    claimed = job_claim(job_id=job.pk, worker="dead:1")
    ctx = drafting._context(claimed, Brief.objects.get(pk=brief.pk))
    drafting._plan(ctx, claimed)
    assert drafting._draft_next(ctx) == drafting.DRAFTED
    first_chunk = set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert len(first_chunk) == 16
    plan = list(DraftChunk.objects.filter(job=job).values_list("pk", "keys"))
    worker_died(job)

    drafting.drafting_run(job_id=job.pk, worker="inline")

    job = succeeded(Job.objects.get(pk=job.pk))
    assert job.attempts == 2
    assert list(DraftChunk.objects.filter(job=job).values_list("pk", "keys")) == plan
    drafts = set(Draft.objects.filter(brief=brief).values_list("pk", flat=True))
    assert first_chunk <= drafts and len(drafts) == 36
    assert job.result["drafts"] == 36 and job.result["audience"] == 9


def test_cancel_is_honoured_between_chunks(shop, marketer, monkeypatch):
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    draft_chunk = drafting._draft_chunk

    def then_cancel(ctx, chunk):
        draft_chunk(ctx, chunk)
        job_cancel(job=Job.objects.get(pk=ctx.job_id), user=marketer)

    monkeypatch.setattr(drafting, "_draft_chunk", then_cancel)
    drafting.drafting_run(job_id=job.pk, worker="inline")

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.message.startswith("Cancelled after drafting 4 of 9")
    assert list(DraftChunk.objects.filter(job=job).values_list("done", flat=True)) == [
        True,
        False,
        False,
    ]
    first_keys = set(DraftChunk.objects.get(job=job, index=0).keys)
    assert {d.audience_key for d in Draft.objects.filter(brief=brief)} == first_keys


def test_a_customer_without_products_is_dropped_with_a_reason(shop, marketer):
    # A segment without a list of its own, holding the customer who has no list either.
    other = Segment.objects.create(catalog=shop.catalog, name="Few", kind=Segment.Kind.RULE)
    for customer in shop.customers[-3:]:
        SegmentMembership.objects.create(segment=other, customer=customer)
    brief = customer_brief(shop, marketer, segment=other)
    job = succeeded(draft(brief, marketer))

    assert job.result["dropped"] == 2  # one customer, two locales
    assert job.result["dropped_reasons"] == [[drafting.NO_RECOMMENDATIONS, 2]]
    assert job.result["audience"] == 2 and job.result["drafts"] == 8
    assert not Draft.objects.filter(brief=brief, customer=shop.customers[-1]).exists()


def test_erased_customers_are_skipped(shop, marketer):
    erased_before, erased_during = shop.customers[2], shop.customers[5]
    Customer.objects.filter(pk=erased_before.pk).update(erased_at=timezone.now())
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    claimed = job_claim(job_id=job.pk, worker="first:1")
    drafting._plan(drafting._context(claimed, Brief.objects.get(pk=brief.pk)), claimed)
    Customer.objects.filter(pk=erased_during.pk).update(erased_at=timezone.now())
    worker_died(job)

    drafting.drafting_run(job_id=job.pk, worker="inline")

    job = succeeded(Job.objects.get(pk=job.pk))
    assert job.result["audience_planned"] == 8 and job.result["audience"] == 7
    drafted = set(Draft.objects.filter(brief=brief).values_list("customer_id", flat=True))
    assert erased_before.pk not in drafted and erased_during.pk not in drafted


def test_a_job_whose_run_was_replaced_before_it_ran_fails_with_a_message(shop, marketer):
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    Recommendation.objects.filter(run=shop.run).delete()  # pruned by a newer run

    drafting.drafting_run(job_id=job.pk, worker="inline")

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "replaced while the job waited" in job.error
    assert not Draft.objects.filter(brief=brief).exists()


def test_a_job_whose_brief_was_deleted_fails(shop, marketer):
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    Brief.objects.filter(pk=brief.pk).delete()

    drafting.drafting_run(job_id=job.pk, worker="inline")

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "brief was deleted" in job.error


def test_markup_in_a_product_title_is_shown_escaped(marketer, approver, client):
    title = 'Mug <script>alert("x")</script> <b>Bold</b>'
    shop = copy_shop_create(name="Markup shop", product_titles={1: title})
    brief = customer_brief(
        shop,
        marketer,
        name="<i>Launch</i>",
        source=Brief.Source.PRODUCTS,
        products=[shop.products[1]],
        locales=["en"],
    )
    job = draft(brief, marketer)
    assert job.status == Job.Status.SUCCEEDED, job.error

    client.force_login(approver)
    pages = [reverse("copygen:brief-detail", args=[brief.pk]), reverse("copygen:brief-list")]
    pages += [d.get_absolute_url() for d in Draft.objects.filter(brief=brief)[:2]]
    for url in pages:
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "<i>Launch</i>" not in html and "<b>Bold</b>" not in html, url
    detail = client.get(pages[0]).content.decode()
    assert "&lt;script&gt;" in detail and "&lt;i&gt;Launch&lt;/i&gt;" in detail


def test_recipients_take_their_interests_from_the_profiles_category_names(shop):
    from copygen.services import sources
    from marketing.models import Profile, ProfileRun

    customer = shop.customers[0]
    run = ProfileRun.objects.create(catalog=shop.catalog, as_of=timezone.now())
    Profile.objects.create(
        catalog=shop.catalog,
        customer=customer,
        run=run,
        rfm_segment="Champions",
        top_categories=[
            {"name": "Home > Bath", "share": 0.5},
            {"name": "Garden", "share": 0.3},
            {"name": "Cake cases · Fairy · Tier", "share": 0.2},  # a derived category
        ],
    )
    SegmentMembership.objects.filter(segment=shop.segment).exclude(customer=customer).delete()

    recipient = sources.customer_recipients(shop.catalog, [customer.pk])[customer.pk]

    # As copy may say them: a path's leaf, a derived category's leading term.
    assert recipient.interests[:3] == ("Bath", "Garden", "Cake cases")
    assert recipient.interests[3:] == ("Oak Cutting Board", "Blue Stoneware Mug", "Copper Kettle")
    assert recipient.first_name == "Anna" and recipient.segment == "Champions"
    assert recipient.country == "GB"
    assert sources.segment_recipient(shop.segment, "de").interests == (
        "Bath",
        "Garden",
        "Cake cases",
    )


def test_a_cancel_noticed_within_a_chunk_rolls_that_chunk_back(
    shop, marketer, monkeypatch, settings
):
    import functools

    from marketing.services.jobs import ProgressReporter

    settings.COPY_DRAFT_CHUNK_SIZE = 100  # one chunk
    monkeypatch.setattr(
        drafting, "ProgressReporter", functools.partial(ProgressReporter, interval_s=0)
    )
    brief = customer_brief(shop, marketer)
    job = brief_draft_start(brief=brief, user=marketer)
    items = drafting._items

    def cancel_then_items(ctx, chunk):
        job_cancel(job=Job.objects.get(pk=ctx.job_id), user=marketer)
        return items(ctx, chunk)

    monkeypatch.setattr(drafting, "_items", cancel_then_items)
    drafting.drafting_run(job_id=job.pk, worker="inline")

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.message.startswith("Cancelled after drafting 0 of 9")
    assert not Draft.objects.filter(brief=brief).exists()
    assert not DraftChunk.objects.get(job=job).done


def test_a_copy_model_pickled_by_other_engine_code_is_fitted_again(shop, settings):
    import pickle
    from pathlib import Path

    from copygen.engine.generate import CopyModel
    from copygen.services import sources

    version = sources.catalog_version(shop.catalog)
    folder = Path(settings.DATA_DIR) / "copygen"
    folder.mkdir(parents=True)
    stale = folder / f"catalog-{shop.catalog.pk}-{version}-oldrelease.pkl"
    stale.write_bytes(pickle.dumps("a model of an older release"))
    sources._copy_models.pop(shop.catalog.pk, None)

    model = sources.copy_model(shop.catalog)

    assert isinstance(model, CopyModel)
    assert not stale.exists()
    assert [p.name for p in folder.glob("*.pkl")] == [
        f"catalog-{shop.catalog.pk}-{version}-{sources.engine_fingerprint()}.pkl"
    ]
