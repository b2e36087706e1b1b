"""Model runs with a real worker on PostgreSQL and Redis: training, then a Celery chord of
customer batches and its callback; reruns replace the lists atomically; batch tasks that
run twice leave no duplicates."""

from __future__ import annotations

import pytest

from marketing.models import Job
from recommendations import selectors
from recommendations.models import ModelRun, ModelRunBatch, Recommendation
from recommendations.services import model_run_start
from recommendations.services import runs as run_services
from tests.integration.conftest import wait_for
from tests.recommendation_support import (
    assert_lists_honour_rules,
    profiles_refresh,
    shop_create,
)

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"algorithms": ["item_knn_cosine", "popular"], "budget_s": 1}
RULES = {"top_n": 5, "mmr_lambda": 0.8}


@pytest.fixture
def shop(marketer, settings, tmp_path):
    settings.RECOMMENDATION_BATCH_SIZE = 10
    settings.RECOMMENDATION_SCORING = "chord"
    settings.DATA_DIR = tmp_path / "data"
    shop = shop_create()
    profiles_refresh(shop.catalog, marketer)
    return shop


def finished(run: ModelRun, timeout: float = 90) -> ModelRun:
    wait_for(
        lambda: ModelRun.objects.filter(pk=run.pk).exclude(status__in=ModelRun.ACTIVE).exists(),
        timeout=timeout,
        what=f"model run {run.pk} to finish",
    )
    run.refresh_from_db()
    run.job.refresh_from_db()
    assert run.status == ModelRun.Status.SUCCEEDED, (run.status, run.job.error)
    assert run.job.status == Job.Status.SUCCEEDED
    return run


def test_a_run_scores_every_customer_in_a_chord_of_batches(shop, marketer, celery_worker):
    run = finished(model_run_start(catalog=shop.catalog, user=marketer, rules=RULES, **FAST))

    assert run.scoring_mode == "chord"
    assert run.is_current
    batches = ModelRunBatch.objects.filter(run=run)
    assert batches.count() == 4  # 37 customers, 10 per batch
    assert all(b.done and b.runs == 1 for b in batches)
    assert_lists_honour_rules(run, top_n=5)
    assert Recommendation.objects.filter(run=run, segment__isnull=False).exists()
    assert run.job.result["customers"] == 37
    assert run.job.progress_done == run.job.progress_total


def test_a_rerun_replaces_the_lists_atomically(shop, marketer, celery_worker):
    first = finished(model_run_start(catalog=shop.catalog, user=marketer, rules=RULES, **FAST))
    customer = shop.customers[0]
    old = [
        r.product_id
        for r in selectors.customer_recommendations(
            catalog=shop.catalog, customer=customer
        ).discover
    ]

    second = model_run_start(
        catalog=shop.catalog, user=marketer, rules={**RULES, "top_n": 4}, **FAST
    )
    # While it trains and scores, readers keep seeing the whole first list.
    seen = set()
    while ModelRun.objects.filter(pk=second.pk, status__in=ModelRun.ACTIVE).exists():
        lists = selectors.customer_recommendations(catalog=shop.catalog, customer=customer)
        ids = [r.product_id for r in lists.discover]
        assert ids == old or len(ids) == 4, ids
        seen.add(lists.run.pk)
    second = finished(second)
    first.refresh_from_db()

    assert second.is_current and not first.is_current
    assert not Recommendation.objects.filter(run=first).exists()
    assert ModelRun.objects.filter(catalog=shop.catalog, is_current=True).get() == second
    assert_lists_honour_rules(second, top_n=4)
    assert first.pk in seen


def test_batch_tasks_that_run_twice_leave_no_duplicates(shop, marketer, celery_worker, monkeypatch):
    original = run_services.chord_header

    def twice(run_id, indices):
        header = original(run_id, indices)
        return header + original(run_id, indices)  # every batch task sent twice

    monkeypatch.setattr(run_services, "chord_header", twice)
    run = finished(model_run_start(catalog=shop.catalog, user=marketer, rules=RULES, **FAST))

    assert all(b.runs == 1 for b in ModelRunBatch.objects.filter(run=run))
    assert_lists_honour_rules(run, top_n=5)
    keys = list(
        Recommendation.objects.filter(run=run, customer__isnull=False).values_list(
            "customer_id", "kind", "rank"
        )
    )
    assert len(keys) == len(set(keys))
