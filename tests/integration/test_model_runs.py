"""Model runs with a real worker on PostgreSQL and Redis: training, then a Celery chord of
customer batches and its callback; reruns replace the lists atomically; batch tasks that
run twice leave no duplicates."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from marketing.models import Customer, Job
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
    # The superseded rows are pruned after the switch commits (readers already read through
    # the current run), so the worker may still be deleting them when the run reads done.
    wait_for(
        lambda: not Recommendation.objects.filter(run=first).exists(),
        timeout=30,
        what="the first run's rows to be pruned",
    )
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


# ------------------------------------------------- a batch's transaction against others


class PausedBatch:
    """Batch 0 of a trained chord-mode run, scored in a thread that stops inside its
    transaction just before it writes its rows (its locks taken), until `go()`."""

    def __init__(self, run: ModelRun, monkeypatch) -> None:
        self.run = run
        self.inside, self.release = threading.Event(), threading.Event()
        original = run_services.recommendations_write

        def paused(**kwargs):
            self.inside.set()
            assert self.release.wait(30)
            return original(**kwargs)

        monkeypatch.setattr(run_services, "recommendations_write", paused)
        self.thread = threading.Thread(target=self._score)
        self.errors: list[BaseException] = []

    def _score(self) -> None:
        try:
            run_services.model_run_score_batch(run_id=self.run.pk, index=0, worker="w")
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            connection.close()

    def start(self) -> PausedBatch:
        self.thread.start()
        assert self.inside.wait(30)
        return self

    def go(self) -> None:
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive() and not self.errors, self.errors


def _trained(shop, marketer, monkeypatch) -> ModelRun:
    monkeypatch.setattr(run_services, "_send_chord", lambda run_id, indices: None)
    run = model_run_start(catalog=shop.catalog, user=marketer, rules=RULES, **FAST)
    run_services.model_run_run(job_id=run.job_id, worker="trainer")
    run.refresh_from_db()
    assert run.status == ModelRun.Status.SCORING
    return run


def test_a_run_ended_while_a_batch_writes_keeps_none_of_its_rows(shop, marketer, monkeypatch):
    run = _trained(shop, marketer, monkeypatch)
    batch = PausedBatch(run, monkeypatch).start()

    def end() -> None:
        try:
            run_services.model_run_fail(run_id=run.pk, error="stopped")
        finally:
            connection.close()

    ender = threading.Thread(target=end)
    ender.start()
    ender.join(1.0)
    assert ender.is_alive()  # it waits for the batch's share lock on the run
    batch.go()
    ender.join(30)
    run.refresh_from_db()
    assert run.status == ModelRun.Status.FAILED
    assert not Recommendation.objects.filter(run=run).exists()


def test_an_erasure_while_a_batch_writes_is_refused_and_then_leaves_no_rows(
    shop, marketer, admin_user, monkeypatch
):
    from marketing.services.customers import CustomerErasureBusy, customer_erase

    run = _trained(shop, marketer, monkeypatch)
    first = ModelRunBatch.objects.get(run=run, index=0).first_customer_id
    anna = Customer.objects.get(pk=first)
    batch = PausedBatch(run, monkeypatch).start()
    with pytest.raises(CustomerErasureBusy):
        customer_erase(user=admin_user, customer=anna)  # the batch holds her row
    batch.go()
    assert Recommendation.objects.filter(run=run, customer=anna).exists()
    customer_erase(user=admin_user, customer=Customer.objects.get(pk=anna.pk))
    assert not Recommendation.objects.filter(customer=anna).exists()


def test_batch_progress_never_goes_backwards(shop, marketer, monkeypatch):
    run = _trained(shop, marketer, monkeypatch)
    total = Job.objects.get(pk=run.job_id).progress_total
    Job.objects.filter(pk=run.job_id).update(progress_done=total - 1)
    # This batch counted before the other workers' batches were marked done.
    monkeypatch.setattr(run_services, "_progress", lambda run: (1, total, 0))
    run_services.model_run_score_batch(run_id=run.pk, index=0, worker="w")
    assert Job.objects.get(pk=run.job_id).progress_done == total - 1
