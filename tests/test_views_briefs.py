"""Brief pages: list, create (catalog chooser, form, SKU errors), edit, delete, start drafting,
the brief's page and its polled status.

mary (marketer) writes briefs; avery (approver) reads them but writes nothing; nora has no
role; anonymous users are sent to log in. Jobs run in this process (no worker).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from copygen.models import Brief, Draft
from copygen.services import drafting
from copygen.services.briefs import brief_create, brief_draft_start
from marketing.models import Job
from recommendations.models import ModelRun
from tests.copy_support import copy_shop_create

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _drafting_settings(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.COPY_DRAFT_CHUNK_SIZE = 4
    settings.COPY_DRAFT_PARALLEL = 1


@pytest.fixture
def shop():
    return copy_shop_create()


@pytest.fixture
def brief(shop, marketer) -> Brief:
    return brief_create(
        user=marketer,
        catalog=shop.catalog,
        name="Spring email",
        segment=shop.segment,
        audience=Brief.Audience.CUSTOMERS,
        channel="email",
        locales=["en"],
        variants=2,
        voice="warm, witty",
        banned_words="cheap",
        disclaimer="Offer while stocks last.",
    )


@pytest.fixture
def drafted(brief, marketer) -> Brief:
    job = brief_draft_start(brief=brief, user=marketer)
    drafting.drafting_run(job_id=job.pk, worker="inline")
    brief.refresh_from_db()
    assert brief.job.status == Job.Status.SUCCEEDED, brief.job.error
    return brief


def url(name: str, *args) -> str:
    return reverse(f"copygen:{name}", args=args)


def words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def form_data(shop, **changes) -> dict:
    data = {
        "name": "Autumn SMS",
        "audience": "customers",
        "segment": shop.segment.pk,
        "channel": "sms",
        "tone": "playful",
        "locales": ["en", "fr"],
        "source": "recommendations",
        "model_run": "",
        "products": "",
        "products_per_message": 1,
        "variants": 2,
        "occasion": "christmas",
        "sms_segments": 2,
        "voice": "",
        "banned_words": "",
        "disclaimer": "",
        "sender": "Copy shop",
    }
    data.update(changes)
    return data


# ----------------------------------------------------------------------------- access


def test_every_page_needs_a_login(client, brief):
    for name, args in [
        ("brief-list", ()),
        ("brief-create", ()),
        ("brief-detail", (brief.pk,)),
        ("brief-update", (brief.pk,)),
        ("brief-delete", (brief.pk,)),
        ("brief-status", (brief.pk,)),
    ]:
        response = client.get(url(name, *args))
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], name
    response = client.post(url("brief-draft", brief.pk))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not Job.objects.exists()


def test_users_without_a_role_see_nothing(client, no_role_user, brief):
    client.force_login(no_role_user)
    for target in [url("brief-list"), url("brief-detail", brief.pk), url("brief-create")]:
        assert client.get(target).status_code == 403


def test_approvers_read_briefs_but_write_nothing(client, approver, shop, brief):
    client.force_login(approver)
    assert client.get(url("brief-list")).status_code == 200
    page = client.get(url("brief-detail", brief.pk))
    assert page.status_code == 200
    assert "Draft now" not in page.content.decode() and "Edit" not in words(page)
    for target in [
        url("brief-create"),
        url("brief-update", brief.pk),
        url("brief-delete", brief.pk),
    ]:
        assert client.get(target).status_code == 403
    assert (
        client.post(f"{url('brief-create')}?catalog={shop.catalog.pk}", form_data(shop)).status_code
        == 403
    )
    assert client.post(url("brief-update", brief.pk), form_data(shop)).status_code == 403
    assert client.post(url("brief-delete", brief.pk)).status_code == 403
    assert client.post(url("brief-draft", brief.pk)).status_code == 403
    brief.refresh_from_db()
    assert brief.name == "Spring email" and brief.job is None
    assert Brief.objects.count() == 1


def test_a_missing_brief_is_404(client, marketer):
    client.force_login(marketer)
    for name in ("brief-detail", "brief-update", "brief-delete", "brief-status"):
        assert client.get(url(name, 999999)).status_code == 404
    assert client.post(url("brief-draft", 999999)).status_code == 404


# ----------------------------------------------------------------------------- list


def test_the_list_shows_each_brief_with_its_job_and_draft_counts(client, marketer, drafted, shop):
    Draft.objects.filter(brief=drafted).filter(
        pk__in=Draft.objects.filter(brief=drafted).values("pk")[:3]
    ).update(status=Draft.Status.APPROVED)
    other = copy_shop_create(name="Other shop")
    brief_create(
        user=marketer,
        catalog=other.catalog,
        name="Elsewhere",
        segment=other.segment,
        channel="push",
        locales=["de"],
    )
    client.force_login(marketer)

    page = client.get(url("brief-list"))
    text = words(page)
    assert "Spring email" in text and "Elsewhere" in text
    row = page.content.decode().split(f'id="brief-{drafted.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "Succeeded" in row
    assert f'?brief={drafted.pk}&amp;status=approved">3<' in row
    assert f'?brief={drafted.pk}&amp;status=pending">15<' in row

    filtered = words(client.get(f"{url('brief-list')}?catalog={other.catalog.pk}"))
    assert "Elsewhere" in filtered and "Spring email" not in filtered
    assert client.get(f"{url('brief-list')}?catalog=nope").status_code == 200


# ----------------------------------------------------------------------------- create


def test_create_without_a_catalog_asks_for_one(client, marketer, shop):
    client.force_login(marketer)
    page = client.get(url("brief-create"))
    assert page.status_code == 200
    assert f"{url('brief-create')}?catalog={shop.catalog.pk}" in page.content.decode()


def test_create_prefills_brand_rules_from_the_catalogs_last_brief(client, marketer, shop, brief):
    client.force_login(marketer)
    page = client.get(f"{url('brief-create')}?catalog={shop.catalog.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'value="warm, witty"' in html and "Offer while stocks last." in html
    assert "Urgent is used only where the data supports it" in html


def test_create_saves_the_brief(client, marketer, shop):
    client.force_login(marketer)
    response = client.post(
        f"{url('brief-create')}?catalog={shop.catalog.pk}",
        form_data(
            shop, source="products", products=f"{shop.products[0].sku}\n{shop.products[3].sku}\n"
        ),
    )
    brief = Brief.objects.get(name="Autumn SMS")
    assert response.status_code == 302 and response["Location"] == brief.get_absolute_url()
    assert brief.catalog == shop.catalog and brief.channel == "sms" and brief.sms_segments == 2
    assert brief.locales == ["en", "fr"] and brief.occasion == "christmas"
    assert set(brief.products.all()) == {shop.products[0], shop.products[3]}
    assert brief.job is None


def test_save_and_draft_now_starts_the_job(client, marketer, shop):
    client.force_login(marketer)
    response = client.post(
        f"{url('brief-create')}?catalog={shop.catalog.pk}", {**form_data(shop), "draft": "1"}
    )
    brief = Brief.objects.get(name="Autumn SMS")
    assert response.status_code == 302
    assert brief.job is not None and brief.job.kind == Job.Kind.COPY_DRAFT


def test_unknown_skus_are_named_and_nothing_is_saved(client, marketer, shop):
    client.force_login(marketer)
    page = client.post(
        f"{url('brief-create')}?catalog={shop.catalog.pk}",
        form_data(shop, source="products", products=f"{shop.products[0].sku}\nNOPE-1\n<b>X</b>"),
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "Not in catalog “Copy shop”: NOPE-1, &lt;b&gt;X&lt;/b&gt;." in html
    assert "<b>X</b>" not in html
    assert not Brief.objects.exists()


def test_service_errors_land_under_their_field(client, marketer, shop):
    client.force_login(marketer)
    page = client.post(
        f"{url('brief-create')}?catalog={shop.catalog.pk}",
        form_data(shop, audience="segment", customer_language="on", locales=[], variants=9),
    )
    assert page.status_code == 200
    text = words(page)
    assert "Choose at least one language." in text
    assert "Ensure this value is less than or equal to 5." in text
    assert not Brief.objects.exists()
    page = client.post(
        f"{url('brief-create')}?catalog={shop.catalog.pk}",
        form_data(shop, audience="segment", customer_language="on"),
    )
    assert "Only a brief with one draft per customer can use each customer" in words(page)
    assert not Brief.objects.exists()


def test_a_segment_of_another_catalog_is_not_offered(client, marketer, shop):
    other = copy_shop_create(name="Other shop")
    client.force_login(marketer)
    page = client.post(
        f"{url('brief-create')}?catalog={shop.catalog.pk}",
        form_data(shop, segment=other.segment.pk),
    )
    assert page.status_code == 200 and "Select a valid choice" in words(page)
    assert not Brief.objects.exists()


# ----------------------------------------------------------------------------- edit, delete


def test_edit_shows_the_brief_and_saves_changes(client, marketer, shop, brief):
    client.force_login(marketer)
    page = client.get(url("brief-update", brief.pk))
    assert page.status_code == 200 and 'value="Spring email"' in page.content.decode()
    response = client.post(url("brief-update", brief.pk), form_data(shop, name="Renamed"))
    assert response.status_code == 302
    brief.refresh_from_db()
    assert brief.name == "Renamed" and brief.channel == "sms" and brief.catalog == shop.catalog


def test_bad_edit_leaves_the_brief_unchanged(client, marketer, shop, brief):
    client.force_login(marketer)
    page = client.post(url("brief-update", brief.pk), form_data(shop, name="", variants=0))
    assert page.status_code == 200 and "The brief was not saved" in words(page)
    brief.refresh_from_db()
    assert brief.name == "Spring email" and brief.variants == 2


def test_edit_while_drafting_is_refused(client, marketer, shop, brief):
    job = brief_draft_start(brief=brief, user=marketer)
    client.force_login(marketer)
    page = client.get(url("brief-update", brief.pk))
    assert f"job #{job.pk}" in words(page)
    page = client.post(url("brief-update", brief.pk), form_data(shop, name="Renamed"))
    assert page.status_code == 200 and "wait for it to finish or cancel it" in words(page)
    brief.refresh_from_db()
    assert brief.name == "Spring email"


def test_delete_asks_first_then_deletes(client, marketer, drafted):
    client.force_login(marketer)
    page = client.get(url("brief-delete", drafted.pk))
    assert page.status_code == 200 and "18 pending review" in words(page)
    assert Brief.objects.filter(pk=drafted.pk).exists()
    response = client.post(url("brief-delete", drafted.pk))
    assert response.status_code == 302 and response["Location"] == url("brief-list")
    assert not Brief.objects.filter(pk=drafted.pk).exists() and not Draft.objects.exists()


def test_delete_while_drafting_is_refused(client, marketer, brief):
    brief_draft_start(brief=brief, user=marketer)
    client.force_login(marketer)
    page = client.post(url("brief-delete", brief.pk))
    assert page.status_code == 200 and "before you delete it" in words(page)
    assert Brief.objects.filter(pk=brief.pk).exists()


# ----------------------------------------------------------------------------- drafting


def test_draft_starts_the_job_and_shows_the_brief(client, marketer, brief):
    client.force_login(marketer)
    assert client.get(url("brief-draft", brief.pk)).status_code == 405
    response = client.post(url("brief-draft", brief.pk))
    assert response.status_code == 302 and response["Location"] == brief.get_absolute_url()
    brief.refresh_from_db()
    assert brief.job.kind == Job.Kind.COPY_DRAFT and brief.job.status == Job.Status.QUEUED

    page = client.get(brief.get_absolute_url())
    html = page.content.decode()
    assert "Drafting started." in html
    assert f'hx-get="{url("brief-status", brief.pk)}" hx-trigger="every 1s"' in html
    assert re.search(r'<button type="submit" class="primary" disabled>\s*Draft again', html)

    again = client.post(url("brief-draft", brief.pk), follow=True)
    assert "Drafting did not start" in words(again)
    assert Job.objects.filter(kind=Job.Kind.COPY_DRAFT).count() == 1


def test_draft_says_why_it_cannot_start(client, marketer, shop, brief):
    ModelRun.objects.filter(pk=shop.run.pk).update(is_current=False)
    client.force_login(marketer)
    page = client.post(url("brief-draft", brief.pk), follow=True)
    assert "Run recommendations for this catalog first" in words(page)
    assert not Job.objects.exists()


def test_status_polls_while_the_job_runs_and_stops_when_it_ends(client, marketer, brief):
    client.force_login(marketer)
    assert client.get(url("brief-status", brief.pk)).status_code == 404  # never drafted
    job = brief_draft_start(brief=brief, user=marketer)

    running = client.get(url("brief-status", brief.pk), **HX)
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in running.content.decode()
    assert "HX-Trigger" not in running

    drafting.drafting_run(job_id=job.pk, worker="inline")
    done = client.get(url("brief-status", brief.pk), **HX)
    assert done.status_code == 286  # htmx stops polling
    assert "job-finished" in done["HX-Trigger"]
    assert "every 1s" not in done.content.decode()
    assert "Drafted 18 drafts for 9 customers in 1 language" in words(done)
    plain = client.get(url("brief-status", brief.pk))
    assert plain.status_code == 200


def test_the_brief_page_shows_counts_failing_checks_and_the_sentiment_model(
    client, approver, drafted
):
    Draft.objects.filter(brief=drafted, variant=2).update(passes=False, failing=",fidelity,")
    info = {
        **drafted.info,
        "sentiment": {
            "method": "tfidf+logreg",
            "accuracy": 0.951,
            "f1_macro": 0.899,
            "n_test": 600,
        },
    }
    Brief.objects.filter(pk=drafted.pk).update(info=info)
    client.force_login(approver)

    page = client.get(url("brief-detail", drafted.pk))
    text = words(page)
    html = page.content.decode()
    assert "Review sentiment model: accuracy 0.95, F1 0.90 on 600 held-out reviews" in text
    assert f"{url('draft-list')}?brief={drafted.pk}&amp;status=pending" in html
    assert f"{url('draft-list')}?brief={drafted.pk}&amp;failing=fidelity" in html
    assert f"{url('draft-list')}?brief={drafted.pk}&amp;passes=no" in html
    assert "18 drafts for 9 of 9 customers in English" in text
    assert "warm, witty" in text and "Offer while stocks last." in text

    partial = client.get(url("brief-detail", drafted.pk), **HX)
    assert partial.status_code == 200
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="brief-results"') and "<html" not in body


def test_the_brief_page_shows_the_jobs_error(client, marketer, brief):
    job = brief_draft_start(brief=brief, user=marketer)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error="Segment “Regulars” has no customers now."
    )
    client.force_login(marketer)
    text = words(client.get(url("brief-detail", brief.pk)))
    assert "Segment “Regulars” has no customers now." in text
    assert "Draft again" in text
