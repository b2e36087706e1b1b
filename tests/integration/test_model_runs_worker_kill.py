"""A worker SIGKILLed in the middle of a model run's scoring, then a new worker: the run
completes with one list per customer, and every batch is written exactly once.

The first worker (`tests.integration.hanging_worker`) scores one batch, then hangs inside
the second batch's transaction with its rows written but not committed; the test kills it
there. Recovery differs by scoring mode:

* chord — the batches are the chord's tasks and the job is delegated to them. The killed
  batch's message stays unacknowledged (Redis hands it out again only after the visibility
  timeout, hours), so the chord never completes. Once the job's heartbeat is older than
  JOB_STALE_AFTER_S, a starting worker's sweep sends the batches not yet done again (its
  worker_ready handler runs before the worker takes any message); the old chord's queued
  copies find their batch done and write nothing.
* inline — the job's own task scores the batches; the new worker re-queues the job whose
  worker died on this host, and the run's task scores only the batches not yet done.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count
from django.utils import timezone

from marketing.models import Job
from recommendations.models import ModelRun, ModelRunBatch, Recommendation
from recommendations.services import model_run_start
from tests.integration.conftest import wait_for
from tests.recommendation_support import (
    assert_lists_honour_rules,
    profiles_refresh,
    shop_create,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

BATCH_SIZE = 10  # 37 customers: 4 batches
STALE_S = 5  # JOB_STALE_AFTER_S: how long a silent job waits for the sweep (the minimum)
TOP_N = 5


@pytest.mark.parametrize("mode", ["chord", "inline"])
def test_a_worker_killed_while_scoring_leaves_one_list_per_customer(
    mode, marketer, worker_process, settings, tmp_path
):
    settings.JOB_STALE_AFTER_S = STALE_S  # for the workers (worker_env) and the checks below
    shop = shop_create()
    profiles_refresh(shop.catalog, marketer)
    marker = tmp_path / "hanging-batch"
    env = {
        "DATA_DIR": str(tmp_path / "data"),  # the model file, shared by both workers
        "RECOMMENDATION_BATCH_SIZE": str(BATCH_SIZE),
        "RECOMMENDATION_SCORING": mode,
    }
    worker_process.start(
        module="tests.integration.hanging_worker",
        env={**env, "HANG_AT_BATCH": "2", "HANG_MARKER": str(marker)},
    )
    first_pid = worker_process.proc.pid
    run = model_run_start(
        catalog=shop.catalog,
        user=marketer,
        algorithms=["item_knn_cosine", "popular"],
        budget_s=1,
        rules={"top_n": TOP_N},
    )

    wait_for(marker.exists, timeout=30, interval=0.05, what="the second batch to hang")
    hanging = int(marker.read_text())
    batches = ModelRunBatch.objects.filter(run=run)
    assert batches.count() == 4, worker_process.log()
    assert list(batches.filter(done=True).values_list("index", flat=True)) == [0]
    assert hanging != 0
    # Its rows are written inside the open transaction: invisible here.
    assert not Recommendation.objects.filter(
        run=run, customer_id__gte=batches.get(index=hanging).first_customer_id
    ).exists()
    worker_process.kill()

    run.refresh_from_db()
    assert run.status == ModelRun.Status.SCORING and run.scoring_mode == mode
    assert not batches.filter(index=hanging, done=True).exists()
    if mode == "chord":
        # The sweep resumes a delegated run only once its heartbeat has gone stale.
        wait_for(
            lambda: Job.objects.filter(
                pk=run.job_id,
                heartbeat_at__lt=timezone.now() - dt.timedelta(seconds=STALE_S + 0.5),
            ).exists(),
            timeout=STALE_S + 10,
            what="the job's heartbeat to go stale",
        )
    worker_process.start(env=env)

    wait_for(
        lambda: ModelRun.objects.filter(pk=run.pk).exclude(status__in=ModelRun.ACTIVE).exists(),
        timeout=30,
        what="the run to finish",
    )
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert run.status == ModelRun.Status.SUCCEEDED, (job.error, worker_process.log())
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert run.is_current
    if mode == "chord":
        assert job.attempts == 1 and job.params["resumes"] == 1
    else:
        assert job.attempts == 2  # the task ran again on the new worker
        assert job.worker.endswith(f":{worker_process.proc.pid}")
        assert worker_process.proc.pid != first_pid
    assert sorted(batches.values_list("index", "done", "runs")) == [(i, True, 1) for i in range(4)]

    # Exactly one discover list of TOP_N per customer (the viewer too), nothing twice.
    per_customer = (
        Recommendation.objects.filter(run=run, customer__isnull=False, kind="discover")
        .values("customer_id")
        .annotate(n=Count("id"), ranks=Count("rank", distinct=True))
    )
    everyone = {c.pk for c in shop.customers} | {shop.viewer.pk}
    assert {row["customer_id"] for row in per_customer} == everyone
    assert all(row["n"] == row["ranks"] == TOP_N for row in per_customer)
    assert run.customers == job.result["customers"] == len(everyone)
    assert_lists_honour_rules(run, top_n=TOP_N)
    keys = list(
        Recommendation.objects.filter(run=run, customer__isnull=False).values_list(
            "customer_id", "kind", "rank"
        )
    )
    assert len(keys) == len(set(keys))
    assert sum(batches.values_list("rows", flat=True)) == len(keys)
