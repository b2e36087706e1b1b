"""Model runs through their services in this process (no broker, no worker): inline scoring
end to end, chord-mode batches called directly, reruns, cancel, validation and selectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from marketing.models import Job, Segment
from marketing.services.jobs import job_cancel
from recommendations import selectors
from recommendations.models import ModelRun, ModelRunBatch, Recommendation
from recommendations.services import (
    ModelRunActive,
    model_run_finish,
    model_run_run,
    model_run_score_batch,
    model_run_start,
    rules_validate,
)
from recommendations.services import runs as run_services
from tests.factories import CatalogFactory, ProductFactory
from tests.recommendation_support import (
    assert_lists_honour_rules,
    bought,
    profiles_refresh,
    shop_create,
)

pytestmark = pytest.mark.django_db

FAST = {"algorithms": ["item_knn_cosine", "popular"], "budget_s": 1}


@pytest.fixture(autouse=True)
def _small_batches(settings, tmp_path):
    settings.RECOMMENDATION_BATCH_SIZE = 7
    settings.RECOMMENDATION_SCORING = "inline"
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def shop(marketer):
    shop = shop_create()
    profiles_refresh(shop.catalog, marketer)
    return shop


def run_inline(catalog, user, **kwargs) -> ModelRun:
    run = model_run_start(catalog=catalog, user=user, **{**FAST, **kwargs})
    model_run_run(job_id=run.job_id, worker="inline")
    run.refresh_from_db()
    return run


def succeeded(run: ModelRun) -> ModelRun:
    run.job.refresh_from_db()
    assert run.status == ModelRun.Status.SUCCEEDED, (run.status, run.job.error)
    assert run.job.status == Job.Status.SUCCEEDED
    return run


def test_a_run_trains_scores_every_customer_and_becomes_current(shop, marketer):
    run = succeeded(run_inline(shop.catalog, marketer, rules={"top_n": 5}))

    assert run.is_current
    assert run.selected_algorithm in ("item_knn_cosine", "popular")
    assert set(run.comparison["models"]) <= {"item_knn_cosine", "popular"}
    assert run.comparison["models"][run.selected_algorithm]["trials"]
    assert run.comparison["selected"] == run.selected_algorithm
    assert run.batches_total == 6  # 37 customers in batches of 7
    assert ModelRunBatch.objects.filter(run=run, done=True).count() == 6
    assert (Path(settings.DATA_DIR) / run.artifact).exists()
    assert_lists_honour_rules(run, top_n=5)
    # The viewer has no purchases: popular products, said so.
    viewer = Recommendation.objects.filter(run=run, customer=shop.viewer)
    assert {r.reason_kind for r in viewer} <= {"popular", "popular_segment"}
    assert not viewer.filter(kind=Recommendation.Kind.BUY_AGAIN).exists()
    # Every segment with members got a list, with real counts.
    segments = Segment.objects.filter(catalog=shop.catalog, size__gt=0)
    assert segments.exists()
    for segment in segments:
        rows = selectors.segment_recommendations(segment=segment)
        assert [r.rank for r in rows] == [1, 2, 3, 4, 5]
        assert all(r.product.in_stock for r in rows)
    job = run.job
    assert job.result["customers"] == 37
    assert job.progress_done == job.progress_total


def test_history_reasons_name_the_products_the_customer_bought(shop, marketer):
    run = succeeded(run_inline(shop.catalog, marketer, algorithms=["item_knn_cosine"]))
    together = Recommendation.objects.filter(run=run, reason_kind="bought_together")
    assert together.count() > 20
    history = bought(shop.catalog)
    for row in together.select_related("customer"):
        assert set(row.reason_product_ids) <= history[row.customer_id]
        assert row.reason_text.startswith("Because you bought ")


def test_filters_pins_and_buries_are_honoured(shop, marketer):
    kitchen = [p for p in shop.products if p.category == "Home > Kitchen"]
    pin, bury = kitchen[9], kitchen[0]
    rules = {
        "top_n": 6,
        "include_categories": ["Home"],
        "exclude_categories": ["Home > Bath"],
        "price_max": 45,
        "pin": [pin.pk],
        "bury": [bury.pk],
        "mmr_lambda": 0.7,
    }
    run = succeeded(run_inline(shop.catalog, marketer, rules=rules))
    history = bought(shop.catalog)
    for customer_id in {*history, shop.viewer.pk}:
        discover = list(
            Recommendation.objects.filter(
                run=run, customer_id=customer_id, kind=Recommendation.Kind.DISCOVER
            )
            .select_related("product")
            .order_by("rank")
        )
        products = [r.product for r in discover]
        assert all(p.category == "Home > Kitchen" for p in products)
        assert all(p.price <= 45 for p in products)
        mine = history.get(customer_id, set())
        # The pinned product (price 50) is refused by the price filter, so never shown.
        assert pin.pk not in {p.pk for p in products}
        if bury.pk in {p.pk for p in products}:
            assert products[-1].pk == bury.pk
        assert not {p.pk for p in products} & mine

    # A pin that passes the filters leads every list of those who did not buy it.
    allowed = kitchen[3]
    rerun = succeeded(
        run_inline(shop.catalog, marketer, rules={**rules, "pin": [allowed.pk], "bury": []})
    )
    for customer_id in {*history, shop.viewer.pk}:
        first = Recommendation.objects.get(
            run=rerun, customer_id=customer_id, kind=Recommendation.Kind.DISCOVER, rank=1
        )
        if allowed.pk in history.get(customer_id, set()):
            assert first.product_id != allowed.pk
        else:
            assert first.product_id == allowed.pk


def test_a_rerun_replaces_the_lists_atomically(shop, marketer):
    first = succeeded(run_inline(shop.catalog, marketer, rules={"top_n": 4}))
    first_artifact = Path(settings.DATA_DIR) / first.artifact
    second = succeeded(run_inline(shop.catalog, marketer, rules={"top_n": 3}))
    first.refresh_from_db()

    assert second.is_current and not first.is_current
    assert not Recommendation.objects.filter(run=first).exists()
    assert not first_artifact.exists() and first.artifact == ""
    assert first.comparison  # the old run's metrics stay
    assert_lists_honour_rules(second, top_n=3)
    assert selectors.model_run_current(catalog=shop.catalog) == second


def test_chord_batches_are_idempotent_and_the_finish_flips_once(shop, marketer, monkeypatch):
    sent: list[list[int]] = []
    monkeypatch.setattr(run_services, "_send_chord", lambda run_id, indices: sent.append(indices))
    monkeypatch.setattr(run_services, "scoring_mode", lambda: "chord")
    run = model_run_start(catalog=shop.catalog, user=marketer, rules={"top_n": 4}, **FAST)
    model_run_run(job_id=run.job_id, worker="main")
    run.refresh_from_db()
    assert run.status == ModelRun.Status.SCORING
    assert sent == [[0, 1, 2, 3, 4, 5]]

    written = model_run_score_batch(run_id=run.pk, index=0, worker="w1")
    rows = sorted(Recommendation.objects.filter(run=run).values_list("customer_id", "kind", "rank"))
    assert written == len(rows) > 0
    # Delivered again: nothing to do. Written again (its first copy died before the mark):
    # the same rows, no duplicates.
    assert model_run_score_batch(run_id=run.pk, index=0, worker="w2") == 0
    ModelRunBatch.objects.filter(run=run, index=0).update(done=False)
    assert model_run_score_batch(run_id=run.pk, index=0, worker="w2") == written
    again = sorted(
        Recommendation.objects.filter(run=run).values_list("customer_id", "kind", "rank")
    )
    assert again == rows

    # The main task delivered again (its worker died) sends only the missing batches.
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=None)
    model_run_run(job_id=run.job_id, worker="main-2")
    assert sent[-1] == [1, 2, 3, 4, 5]

    model_run_finish(run_id=run.pk)  # a batch is missing: the run fails, nothing current
    run.refresh_from_db()
    assert run.status == ModelRun.Status.FAILED and not run.is_current


def test_the_finish_after_all_batches_makes_the_run_current(shop, marketer, monkeypatch):
    monkeypatch.setattr(run_services, "_send_chord", lambda run_id, indices: None)
    monkeypatch.setattr(run_services, "scoring_mode", lambda: "chord")
    run = model_run_start(catalog=shop.catalog, user=marketer, rules={"top_n": 4}, **FAST)
    model_run_run(job_id=run.job_id, worker="main")
    for index in range(6):
        model_run_score_batch(run_id=run.pk, index=index, worker="w")
    model_run_finish(run_id=run.pk)
    model_run_finish(run_id=run.pk)  # a second callback changes nothing
    run.refresh_from_db()
    succeeded(run)
    assert run.is_current
    assert_lists_honour_rules(run, top_n=4)


def test_cancel_between_batches_keeps_the_current_lists(shop, marketer, monkeypatch):
    current = succeeded(run_inline(shop.catalog, marketer, rules={"top_n": 4}))
    before = Recommendation.objects.filter(run=current).count()
    run = model_run_start(catalog=shop.catalog, user=marketer, **FAST)
    original = run_services.customer_lists
    calls = []

    def cancel_after_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            job_cancel(job=Job.objects.get(pk=run.job_id), user=marketer)
        return original(*args, **kwargs)

    monkeypatch.setattr(run_services, "customer_lists", cancel_after_first)
    model_run_run(job_id=run.job_id, worker="inline")
    run.refresh_from_db()
    run.job.refresh_from_db()

    assert len(calls) == 1
    assert run.status == ModelRun.Status.CANCELLED
    assert run.job.status == Job.Status.CANCELLED
    assert not Recommendation.objects.filter(run=run).exists()
    current.refresh_from_db()
    assert current.is_current
    assert Recommendation.objects.filter(run=current).count() == before


def test_a_catalog_without_purchases_fails_with_a_clear_message(marketer):
    catalog = CatalogFactory()
    ProductFactory(catalog=catalog)
    run = run_inline(catalog, marketer)
    assert run.status == ModelRun.Status.FAILED
    assert "no purchases" in run.job.error


def test_starting_needs_the_permission(shop, approver, no_role_user):
    for user in (approver, no_role_user):
        with pytest.raises(PermissionDenied):
            model_run_start(catalog=shop.catalog, user=user)
    assert not ModelRun.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"algorithms": ["no_such_model"]}, "algorithms"),
        ({"algorithms": ["buy_again"]}, "algorithms"),
        ({"algorithms": []}, "algorithms"),
        ({"budget_s": 0}, "budget_s"),
        ({"rules": {"top_n": 0}}, "top_n"),
        ({"rules": {"mmr_lambda": 2}}, "mmr_lambda"),
        ({"rules": {"colour": "red"}}, "colour"),
        ({"rules": {"pin": ["abc"]}}, "pin"),
    ],
)
def test_bad_requests_are_refused_by_field_and_create_nothing(shop, marketer, kwargs, field):
    with pytest.raises(ValidationError) as error:
        model_run_start(catalog=shop.catalog, user=marketer, **kwargs)
    assert field in error.value.message_dict
    assert not ModelRun.objects.exists() and not Job.objects.filter(kind="model_run").exists()


def test_rules_may_only_name_products_of_the_catalog(shop):
    other = ProductFactory()
    with pytest.raises(ValidationError) as error:
        rules_validate(catalog=shop.catalog, data={"pin": [other.pk]})
    assert "no such product in this catalog" in str(error.value.message_dict["pin"])
    clean = rules_validate(catalog=shop.catalog, data={"boost": {str(shop.products[0].pk): 2}})
    assert clean["boost"] == {str(shop.products[0].pk): 2.0}
    assert clean["top_n"] == 20 and clean["exclude_bought"] is True


def test_one_active_run_per_catalog(shop, marketer):
    first = model_run_start(catalog=shop.catalog, user=marketer)
    with pytest.raises(ModelRunActive) as error:
        model_run_start(catalog=shop.catalog, user=marketer)
    assert error.value.run == first
    # Another catalog is independent.
    other = shop_create(name="Other", customers=6)
    model_run_start(catalog=other.catalog, user=marketer)


def test_selectors_give_lists_comparison_and_a_preview(shop, marketer):
    run = succeeded(run_inline(shop.catalog, marketer, rules={"top_n": 5}))
    customer = shop.customers[0]
    lists = selectors.customer_recommendations(catalog=shop.catalog, customer=customer)
    assert lists.run == run
    assert [r.rank for r in lists.discover] == [1, 2, 3, 4, 5]
    assert all(r.product.title for r in lists.discover)
    assert all(r.product_id in bought(shop.catalog)[customer.pk] for r in lists.buy_again)
    cited = {pid for r in lists.discover for pid in r.reason_product_ids}
    assert cited <= set(lists.reason_products)

    comparison = selectors.model_run_comparison(run=run)
    assert comparison.selected == run.selected_algorithm
    assert comparison.models[0].selected and comparison.models[0].metrics
    assert "ndcg@10" in comparison.metric_names

    preview = selectors.customer_preview(run=run, customer=customer)
    assert preview.known
    assert [i.product.pk for i in preview.discover] == [r.product_id for r in lists.discover]
    assert {h.product.pk for h in preview.history} == bought(shop.catalog)[customer.pk]
    # What the model alone would have shown but the rules took out, with the rule.
    assert {r.rule for r in preview.removed} <= {
        "exclude_bought",
        "out_of_stock",
        "category",
        "price",
        "bury",
        "diversity",
        "displaced",
    }
    bought_ids = bought(shop.catalog)[customer.pk]
    assert all(r.product.pk in bought_ids for r in preview.removed if r.rule == "exclude_bought")

    # Other rules, on the fly: nothing stored changes.
    stored = Recommendation.objects.filter(run=run).count()
    garden = selectors.customer_preview(
        run=run, customer=customer, rules={"top_n": 3, "include_categories": ["Garden"]}
    )
    assert len(garden.discover) == 3
    assert all(i.product.category == "Garden" for i in garden.discover)
    assert any(r.rule == "category" for r in garden.removed)
    assert Recommendation.objects.filter(run=run).count() == stored


@pytest.mark.parametrize(
    ("mode", "backend", "expected"),
    [
        ("auto", None, "inline"),  # embedded: filesystem broker, no result backend
        ("auto", "redis://127.0.0.1:6379/0", "chord"),
        ("inline", "redis://127.0.0.1:6379/0", "inline"),
        ("chord", None, "chord"),
    ],
)
def test_scoring_mode_follows_the_result_backend(settings, mode, backend, expected):
    settings.RECOMMENDATION_SCORING = mode
    settings.CELERY_RESULT_BACKEND = backend
    assert run_services.scoring_mode() == expected


def test_cancelling_a_queued_run_ends_it_at_once(shop, marketer):
    from recommendations.services import model_run_cancel

    run = model_run_start(catalog=shop.catalog, user=marketer, **FAST)
    assert model_run_cancel(run=run, user=marketer) == "cancelled"
    run.refresh_from_db()
    assert run.status == ModelRun.Status.CANCELLED
    model_run_run(job_id=run.job_id, worker="late")  # a late delivery does nothing
    run.refresh_from_db()
    assert run.status == ModelRun.Status.CANCELLED and not run.artifact
    # The catalog is free for the next run.
    model_run_start(catalog=shop.catalog, user=marketer, **FAST)


def test_the_selection_note_says_why_the_model_was_chosen():
    from recommendations.evaluation.tuning import Comparison, ModelResult, SearchResult

    def result(name, score):
        return ModelResult(name, {}, {}, 0.0, 0.0, SearchResult(name, "ndcg@10", {}, score, [], 0))

    comparison = Comparison(
        "lastday",
        {},
        {},
        "ndcg@10",
        {"ranker": result("ranker", 0.125), "rp3beta": result("rp3beta", 0.124)},
    )
    assert run_services._selection_note("ranker", comparison) == "best validation score"
    note = run_services._selection_note("rp3beta", comparison)
    assert "within one standard error" in note and "(ranker)" in note
