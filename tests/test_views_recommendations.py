"""Recommendation pages: runs list, new run form, run page (progress, comparison, segments,
segment lists), customer search and preview, and the lists on customer and segment pages.

mary (marketer) starts runs; avery (approver) reads them; nora has no role; anonymous users
are sent to log in. Runs are trained in this process (inline scoring, no worker).
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from marketing.models import Customer, Job
from recommendations.models import ModelRun, Recommendation
from recommendations.selectors import customer_history
from recommendations.services import model_run_run, model_run_start
from tests.factories import CatalogFactory
from tests.recommendation_support import profiles_refresh, shop_create

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
FAST = {"algorithms": ["item_knn_cosine", "popular"], "budget_s": 1}
NASTY = "Kitchen <script>alert(1)</script> item"


@pytest.fixture(autouse=True)
def _inline_runs(settings, tmp_path):
    settings.RECOMMENDATION_SCORING = "inline"
    settings.RECOMMENDATION_BATCH_SIZE = 50
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def shop(marketer):
    """36 buyers and a viewer, profiled; product 10's title holds markup."""
    shop = shop_create()
    shop.products[10].title = NASTY
    shop.products[10].save(update_fields=["title"])
    profiles_refresh(shop.catalog, marketer)
    return shop


def run_inline(catalog, user, **kwargs) -> ModelRun:
    run = model_run_start(catalog=catalog, user=user, **{**FAST, **kwargs})
    model_run_run(job_id=run.job_id, worker="inline")
    run.refresh_from_db()
    assert run.status == ModelRun.Status.SUCCEEDED, run.job.error
    return run


@pytest.fixture
def run(shop, marketer) -> ModelRun:
    return run_inline(shop.catalog, marketer, rules={"top_n": 5})


@pytest.fixture
def queued(shop, marketer) -> ModelRun:
    """A run that no worker has picked up."""
    return model_run_start(catalog=shop.catalog, user=marketer, **FAST)


def words(response) -> str:
    """What a reader sees: the HTML without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def html_section(response, marker: str) -> str:
    """The HTML of the <section> whose opening tag contains ``marker``."""
    return response.content.decode().split(marker, 1)[1].split("</section>", 1)[0]


def url(name: str, *args) -> str:
    return reverse(f"recommendations:{name}", args=args)


def buyer(shop) -> Customer:
    """A customer with purchases and both lists."""
    ids = Recommendation.objects.filter(kind="buy_again").values_list("customer_id", flat=True)
    return Customer.objects.get(pk=ids.first())


def run_form(**overrides) -> dict:
    data = {
        "choice": "pick",
        "algorithms": ["item_knn_cosine", "popular"],
        "budget_s": "2",
        "top_n": "8",
        "exclude_bought": "on",
        "in_stock_only": "on",
        "include_categories": ["", ""],
        "exclude_categories": ["Garden", ""],
        "price_min": "",
        "price_max": "45",
        "boost": "",
        "boost_categories": "",
        "bury": "",
        "pin": "",
        "mmr_lambda": "0.8",
    }
    data.update(overrides)
    return data


# --------------------------------------------------------------------------- runs list


def test_runs_list_shows_each_run_with_its_score_and_the_current_badge(client, run, marketer):
    client.force_login(marketer)
    response = client.get(url("run-list", run.catalog_id))
    assert response.status_code == 200
    text = words(response)
    assert f"Run #{run.pk} Current" in text
    assert "Succeeded" in text and "mary" in text and run.selected_algorithm in text
    ndcg = run.comparison["models"][run.selected_algorithm]["ndcg@10"]
    assert f"{ndcg:.3f}" in text
    assert url("run-create", run.catalog_id) in response.content.decode()


def test_runs_list_offers_new_run_to_marketers_only(client, shop, approver):
    client.force_login(approver)
    response = client.get(url("run-list", shop.catalog.pk))
    assert response.status_code == 200
    assert "No recommendation run yet" in words(response)
    assert url("run-create", shop.catalog.pk) not in response.content.decode()


def test_runs_list_announces_the_active_run(client, queued, marketer):
    client.force_login(marketer)
    response = client.get(url("run-list", queued.catalog_id))
    assert f"Run #{queued.pk} is queued" in words(response)


def test_catalog_page_links_to_recommendations(client, shop, approver):
    client.force_login(approver)
    response = client.get(shop.catalog.get_absolute_url())
    assert url("run-list", shop.catalog.pk) in response.content.decode()


# ------------------------------------------------------------------------------ new run


def test_new_run_form_lists_algorithms_and_category_suggestions(client, shop, marketer):
    client.force_login(marketer)
    response = client.get(url("run-create", shop.catalog.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="item_knn_cosine"' in html and 'value="ease"' in html
    assert 'value="buy_again"' not in html  # fitted anyway, never chosen
    assert '<option value="Home &gt; Kitchen">' in html and '<option value="Home">' in html
    assert 'list="rec-categories"' in html


def test_starting_a_run_stores_rules_with_product_ids_and_opens_its_page(client, shop, marketer):
    client.force_login(marketer)
    mug, pot, vase = shop.products[0], shop.products[1], shop.products[2]
    data = run_form(
        boost=f"{mug.sku} = 1.5",
        pin=f"{pot.sku}",
        bury=f"{vase.sku}",
        boost_categories="Home > Bath = 2",
    )
    response = client.post(url("run-create", shop.catalog.pk), data)
    run = ModelRun.objects.get(catalog=shop.catalog)
    assert response.status_code == 302
    assert response["Location"] == url("run-detail", run.pk)
    assert run.algorithms == ["item_knn_cosine", "popular"]
    assert run.budget_s == 2
    assert run.created_by == marketer
    assert run.rules["top_n"] == 8
    assert run.rules["exclude_categories"] == ["Garden"]
    assert run.rules["price_max"] == 45.0
    assert run.rules["boost"] == {str(mug.pk): 1.5}
    assert run.rules["boost_categories"] == {"Home > Bath": 2.0}
    assert run.rules["pin"] == [pot.pk] and run.rules["bury"] == [vase.pk]
    assert run.rules["mmr_lambda"] == 0.8
    assert run.job.status == Job.Status.QUEUED

    page = client.get(response["Location"])
    text = words(page)
    assert "Recommendation run #" in text and "started." in text
    assert f"{mug.sku} · {mug.title} × 1.5" in text
    assert f"Pinned {pot.sku}" in text and "Never categories Garden" in text


def test_automatic_choice_ignores_the_ticks(client, shop, marketer):
    client.force_login(marketer)
    client.post(url("run-create", shop.catalog.pk), run_form(choice="auto"))
    assert ModelRun.objects.get(catalog=shop.catalog).algorithms == []


def test_unknown_skus_are_field_errors_and_start_nothing(client, shop, marketer):
    client.force_login(marketer)
    response = client.post(
        url("run-create", shop.catalog.pk),
        run_form(pin="NOPE-1, " + shop.products[0].sku, boost="GHOST = 2"),
    )
    assert response.status_code == 200
    text = words(response)
    assert "No product with SKU NOPE-1 in this catalog" in text
    assert "No product with SKU GHOST in this catalog" in text
    assert not ModelRun.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"top_n": "0"}, "top_n", "greater than or equal to 1"),
        ({"budget_s": "99999"}, "budget_s", "less than or equal to 3600"),
        ({"algorithms": []}, "algorithms", "Tick at least one algorithm"),
        ({"price_min": "50", "price_max": "10"}, "price_max", "below the lowest"),
        ({"mmr_lambda": "1.5"}, "mmr_lambda", "less than or equal to 1"),
        ({"boost": "SKU-ONLY"}, "boost", "Line 1: write one SKU and its factor"),
        ({"boost": "X = -1"}, "boost", "above 0"),
        ({"pin": "A, A"}, "pin", "Listed twice: A"),
        ({"exclude_categories": ["Garden", "garden"]}, "exclude_categories", "listed twice"),
        # Checked by the service: its ValidationError lands under the field it names.
        ({"include_categories": ["Garden"]}, "exclude_categories", "both included and excluded"),
    ],
)
def test_bad_input_is_shown_by_field_and_starts_nothing(
    client, shop, marketer, overrides, field, message
):
    client.force_login(marketer)
    response = client.post(url("run-create", shop.catalog.pk), run_form(**overrides))
    assert response.status_code == 200
    html = response.content.decode()
    block = html.split(f'id="field-{field}"', 1)[1].split('<div class="field', 1)[0]
    assert message in block, block
    assert "The run was not started" in html
    assert not ModelRun.objects.exists()


def test_a_second_run_while_one_is_active_links_to_it(client, queued, marketer):
    client.force_login(marketer)
    page = client.get(url("run-create", queued.catalog_id))
    assert url("run-detail", queued.pk) in page.content.decode()

    response = client.post(url("run-create", queued.catalog_id), run_form())
    assert response.status_code == 200
    text = words(response)
    assert f"Model run #{queued.pk} of this catalog is still queued" in text
    assert url("run-detail", queued.pk) in response.content.decode()
    assert ModelRun.objects.count() == 1


def test_approvers_and_roleless_users_may_not_start_runs(client, shop, approver, no_role_user):
    for user in (approver, no_role_user):
        client.force_login(user)
        assert client.get(url("run-create", shop.catalog.pk)).status_code == 403
        assert client.post(url("run-create", shop.catalog.pk), run_form()).status_code == 403
    assert not ModelRun.objects.exists()


# ------------------------------------------------------------------------------ run page


def test_active_run_page_polls_its_own_status_and_waits_for_results(client, queued, marketer):
    client.force_login(marketer)
    response = client.get(url("run-detail", queued.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'hx-get="{url("run-status", queued.pk)}" hx-trigger="every 1s"' in html
    assert f'action="{url("run-cancel", queued.pk)}"' in html
    assert 'hx-trigger="job-finished from:body"' in html
    assert "appear here when the run has finished" in html
    assert "Automatic" not in words(response)  # FAST picks two algorithms
    assert "item_knn_cosine" in words(response) and "popular" in words(response)


def test_finished_run_page_shows_the_comparison_chart_table_and_lists(client, run, marketer):
    client.force_login(marketer)
    response = client.get(url("run-detail", run.pk))
    assert response.status_code == 200
    html = response.content.decode()
    text = words(response)
    # The table: the selected model first and highlighted, every metric column.
    assert '<tr class="selected" aria-current="true">' in html
    for header in ("Validation NDCG@10", "Test NDCG@10", "Recall@20", "MAP@10", "HR@10"):
        assert header in text
    for column in ("Coverage", "Novelty", "Diversity", "Fit s", "Score s", "Parameters"):
        assert column in text
    assert "item_knn_cosine" in text and "popular" in text
    # The chart travels as JSON, rendered by app.js with the vendored plotly.
    fig = json.loads(re.search(r'id="comparison-chart"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert {t["name"] for t in fig["data"]} == {"Test NDCG@10", "Test recall@20"}
    assert fig["layout"]["annotations"][0]["text"] == "selected"
    assert "vendor/plotly/plotly.min.js" in html
    # Per segment, buy-again model, segment lists, preview search.
    segments = run.comparison["models"][run.selected_algorithm]["segments"]
    assert 'id="segment-metrics"' in html and all(f"<td>{name}</td>" in html for name in segments)
    assert "Buy-again model" in text and "buy_again" in text
    assert "Segment lists" in text
    assert 'id="preview"' in html and url("run-customers", run.pk) in html


def test_run_page_results_partial_for_htmx(client, run, marketer):
    client.force_login(marketer)
    response = client.get(url("run-detail", run.pk), **HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="run-results"')
    assert "<html" not in html and 'id="comparison-chart"' in html


def test_status_fragment_stops_polling_and_announces_the_end(client, run, marketer):
    client.force_login(marketer)
    response = client.get(url("run-status", run.pk), **HX)
    assert response.status_code == 286
    assert json.loads(response["HX-Trigger"])["job-finished"]["status"] == "succeeded"
    assert "every 1s" not in response.content.decode()


def test_status_fragment_keeps_polling_while_queued(client, queued, approver):
    client.force_login(approver)
    response = client.get(url("run-status", queued.pk), **HX)
    assert response.status_code == 200
    assert "every 1s" in response.content.decode() and "steps" not in words(response)


def test_cancel_ends_a_queued_run_and_its_job(client, queued, marketer):
    client.force_login(marketer)
    response = client.post(url("run-cancel", queued.pk))
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.status == ModelRun.Status.CANCELLED
    assert queued.job.status == Job.Status.CANCELLED
    assert "Cancelled before it started" in words(client.get(response["Location"]))


def test_cancel_by_htmx_returns_the_status_card(client, queued, marketer):
    client.force_login(marketer)
    response = client.post(url("run-cancel", queued.pk), **HX)
    assert response.status_code == 200
    assert "Cancelled" in words(response)
    assert "job-finished" in response["HX-Trigger"]


def test_cancel_needs_post_and_permission(client, queued, approver, marketer):
    client.force_login(marketer)
    assert client.get(url("run-cancel", queued.pk)).status_code == 405
    client.force_login(approver)
    assert client.post(url("run-cancel", queued.pk)).status_code == 403
    queued.refresh_from_db()
    assert queued.status == ModelRun.Status.QUEUED


def test_per_segment_view_of_another_model(client, run, marketer):
    client.force_login(marketer)
    response = client.get(url("run-segments", run.pk), {"model": "popular"}, **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="segment-metrics"')
    assert 'id="segment-chart-popular"' in html
    segments = run.comparison["models"]["popular"]["segments"]
    assert any(name in html for name in segments)

    # Without htmx: the run page with that model chosen.
    plain = client.get(url("run-segments", run.pk), {"model": "popular"})
    assert plain.status_code == 302
    assert plain["Location"] == url("run-detail", run.pk) + "?model=popular#segments"
    page = client.get(plain["Location"])
    assert '<option value="popular" selected>' in page.content.decode()


def test_unknown_model_falls_back_to_the_selected_one(client, run, marketer):
    client.force_login(marketer)
    response = client.get(url("run-segments", run.pk), {"model": "<nope>"}, **HX)
    assert f'id="segment-chart-{run.selected_algorithm}"' in response.content.decode()


# ------------------------------------------------------------------------------ preview


def test_customer_search_finds_by_external_id(client, run, shop, marketer):
    client.force_login(marketer)
    target = shop.customers[3]
    response = client.get(url("run-customers", run.pk), {"q": target.external_id}, **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="customer-matches"')
    assert url("run-preview", run.pk, target.pk) in html

    Customer.objects.filter(pk=target.pk).update(erased_at=timezone.now())
    response = client.get(url("run-customers", run.pk), {"q": target.external_id}, **HX)
    assert url("run-preview", run.pk, target.pk) not in response.content.decode()
    assert "No customer with events" in words(response)

    plain = client.get(url("run-customers", run.pk), {"q": "C001"})
    assert plain["Location"] == url("run-detail", run.pk) + "?q=C001#preview"


def test_preview_shows_history_beside_lists_with_reasons_and_removals(client, run, shop, marketer):
    client.force_login(marketer)
    customer = buyer(shop)
    response = client.get(url("run-preview", run.pk, customer.pk))
    assert response.status_code == 200
    text = words(response)
    history = html_section(response, 'aria-labelledby="history-h"')
    for item in customer_history(catalog=shop.catalog, customer=customer):
        assert f"{item.product.sku}</span>" in history
    assert "Discover (5)" in text and "Buy again" in text
    assert "Because you bought" in text or "Popular" in text
    assert "You buy this about" in text or "You bought this" in text
    assert "Removed by the rules" in text and "Already bought" in text


def test_preview_escapes_titles_in_history_and_reasons(client, run, shop, marketer):
    client.force_login(marketer)
    nasty = shop.products[10]
    customer = Customer.objects.filter(events__product=nasty).first()
    html = client.get(url("run-preview", run.pk, customer.pk)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_preview_under_edited_rules(client, run, shop, marketer):
    client.force_login(marketer)
    customer = buyer(shop)
    params = {
        "edit": "1",
        "top_n": "3",
        "exclude_bought": "on",
        "in_stock_only": "on",
        "exclude_categories": ["Home"],
        "mmr_lambda": "1",
    }
    response = client.get(url("run-preview", run.pk, customer.pk), params, **HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="preview"')
    text = words(response)
    assert "Discover (3)" in text and "Re-ranked with the edited rules" in text
    assert "Category filter" in text
    discover = html.split('id="discover"', 1)[1].split("</section>", 1)[0]
    titles = re.findall(r'<a href="/products/\d+/">([^<]+)</a>', discover)
    assert len(titles) == 3 and all(t.startswith("Garden item") for t in titles), titles
    run.refresh_from_db()
    assert run.rules["top_n"] == 5  # nothing stored


def test_preview_rules_with_an_unknown_sku_are_a_field_error(client, run, shop, marketer):
    client.force_login(marketer)
    customer = buyer(shop)
    params = {"edit": "1", "top_n": "5", "pin": "NOPE", "mmr_lambda": "1"}
    response = client.get(url("run-preview", run.pk, customer.pk), params)
    assert response.status_code == 200
    text = words(response)
    assert "No product with SKU NOPE in this catalog" in text
    assert "These rules cannot be used" in text and "Discover (" not in text


def test_preview_prefills_the_runs_rules_by_sku(client, shop, marketer):
    pot = shop.products[1]
    run = run_inline(shop.catalog, marketer, rules={"top_n": 4, "pin": [pot.pk]})
    client.force_login(marketer)
    html = client.get(url("run-preview", run.pk, buyer(shop).pk)).content.decode()
    assert f"{pot.sku}</textarea>" in html and 'name="top_n" value="4"' in html


def test_preview_of_a_replaced_run_explains_the_model_is_gone(client, run, shop, marketer):
    run_inline(shop.catalog, marketer)  # replaces `run`, whose model file is deleted
    client.force_login(marketer)
    response = client.get(url("run-preview", run.pk, buyer(shop).pk))
    assert response.status_code == 200
    assert "model file is gone" in words(response)
    assert "kept for the current run only" in words(client.get(url("run-detail", run.pk)))


def test_preview_of_a_customer_outside_the_runs_data(client, run, marketer):
    client.force_login(marketer)
    stranger = Customer.objects.create(external_id="stranger")
    response = client.get(url("run-preview", run.pk, stranger.pk))
    assert response.status_code == 200
    assert "had no events in" in words(response)


# ------------------------------------------------------------------ profile and segments


def test_customer_page_shows_the_current_lists_with_reasons(client, run, shop, approver):
    client.force_login(approver)
    customer = buyer(shop)
    response = client.get(customer.get_absolute_url())
    html = response.content.decode()
    text = words(response)
    assert f"Recommendations in {shop.catalog.name}" in text
    section = html.split(f'id="recs-{shop.catalog.pk}"', 1)[1].split("</section>", 1)[0]
    assert section.count("<li") >= 5 + 1  # five discover, at least one buy again
    assert 'class="reason"' in section
    assert url("run-preview", run.pk, customer.pk) in section
    assert url("run-detail", run.pk) in section
    assert "No recommendations yet" not in text
    assert "Drafts" in text  # still a placeholder


def test_customer_page_without_a_run_offers_to_start_one(client, shop, marketer, approver):
    customer = shop.customers[0]
    client.force_login(marketer)
    response = client.get(customer.get_absolute_url())
    assert "No recommendation run in Shop yet" in words(response)
    assert url("run-create", shop.catalog.pk) in response.content.decode()
    client.force_login(approver)
    response = client.get(customer.get_absolute_url())
    assert url("run-create", shop.catalog.pk) not in response.content.decode()
    assert url("run-list", shop.catalog.pk) in response.content.decode()


def test_customer_page_hides_recommendations_without_permission(client, run, shop, no_role_user):
    # May see customers (the page needs that), not recommendations.
    no_role_user.user_permissions.add(
        Permission.objects.get(content_type__app_label="marketing", codename="view_customer")
    )
    client.force_login(no_role_user)
    response = client.get(buyer(shop).get_absolute_url())
    assert response.status_code == 200
    assert "Recommendations in" not in words(response)
    assert url("run-detail", run.pk) not in response.content.decode()


def test_segment_page_shows_its_list_of_the_current_run(client, run, shop, marketer):
    segment = (
        shop.catalog.segments.filter(recommendations__run=run).distinct().order_by("pk").first()
    )
    client.force_login(marketer)
    response = client.get(segment.get_absolute_url())
    text = words(response)
    assert "Recommended for this segment" in text and "Popular with" in text
    assert url("run-detail", run.pk) in response.content.decode()


def test_segment_page_without_a_run_has_no_card(client, shop, marketer):
    segment = shop.catalog.segments.order_by("pk").first()
    client.force_login(marketer)
    assert "Recommended for this segment" not in words(client.get(segment.get_absolute_url()))


def test_job_page_of_a_run_links_to_its_results(client, run, marketer):
    client.force_login(marketer)
    response = client.get(run.job.get_absolute_url())
    assert url("run-detail", run.pk) in response.content.decode()
    assert "Rows read" not in words(response)


# ------------------------------------------------------------------------------ access


def _every_url(run: ModelRun, customer: Customer) -> list[str]:
    return [
        url("run-list", run.catalog_id),
        url("run-create", run.catalog_id),
        url("run-detail", run.pk),
        url("run-status", run.pk),
        url("run-segments", run.pk),
        url("run-customers", run.pk),
        url("run-preview", run.pk, customer.pk),
    ]


def test_every_page_requires_login(client, queued, shop):
    for address in _every_url(queued, shop.customers[0]):
        response = client.get(address)
        assert response.status_code == 302, address
        assert response["Location"].startswith("/accounts/login/"), address
    response = client.post(url("run-cancel", queued.pk))
    assert response["Location"].startswith("/accounts/login/")


def test_htmx_requests_without_a_session_get_a_client_redirect(client, queued):
    response = client.get(url("run-status", queued.pk), **HX)
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_roleless_users_get_403(client, queued, shop, no_role_user):
    client.force_login(no_role_user)
    for address in _every_url(queued, shop.customers[0]):
        assert client.get(address).status_code == 403, address


def test_approvers_read_runs_and_previews(client, queued, shop, approver):
    client.force_login(approver)
    expected = [200, 403, 200, 200, 302, 302, 200]  # no new run; plain GETs of fragments redirect
    for address, status in zip(_every_url(queued, shop.customers[0]), expected, strict=True):
        assert client.get(address).status_code == status, address


def test_missing_objects_are_404(client, run, shop, marketer):
    client.force_login(marketer)
    customer = shop.customers[0]
    for address in (
        url("run-list", 999_999),
        url("run-create", 999_999),
        url("run-detail", 999_999),
        url("run-status", 999_999),
        url("run-cancel", 999_999),
        url("run-segments", 999_999),
        url("run-customers", 999_999),
        url("run-preview", 999_999, customer.pk),
        url("run-preview", run.pk, 999_999),
    ):
        method = client.post if address.endswith("/cancel/") else client.get
        assert method(address).status_code == 404, address
    Customer.objects.filter(pk=customer.pk).update(erased_at=timezone.now())
    assert client.get(url("run-preview", run.pk, customer.pk)).status_code == 404


def test_posts_need_the_csrf_token(queued, marketer, shop):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(marketer)
    assert strict.post(url("run-cancel", queued.pk)).status_code == 403
    assert strict.post(url("run-create", shop.catalog.pk), run_form()).status_code == 403


def test_runs_of_another_catalog_are_not_mixed_in(client, run, marketer):
    other = CatalogFactory(name="Other")
    client.force_login(marketer)
    response = client.get(url("run-list", other.pk))
    assert f"Run #{run.pk}" not in words(response)
