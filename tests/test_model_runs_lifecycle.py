"""Model runs at their edges, through the services in this process: erasure while a run is
active or after it, runs that end while they train, model files nobody needs, who owns the
job while a chord of batches scores, stalled chords, re-delivered finishes, readers between
the switch and the prune, the time budget, and what a model file may hold."""

from __future__ import annotations

import itertools
import pickle

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import connection

from marketing.analytics.profiles import NO_PURCHASES, SEGMENTS
from marketing.models import Catalog, Customer, Job, Segment
from marketing.services.catalogs import catalog_delete
from marketing.services.customers import customer_erase
from marketing.services.jobs import DELEGATED, jobs_orphaned_on_this_host, jobs_stale
from marketing.signals import requeue_orphaned_jobs
from recommendations import selectors
from recommendations.algorithms import hybrid, linear
from recommendations.models import ModelRun, ModelRunBatch, Recommendation
from recommendations.services import (
    ModelRunActive,
    model_run_finish,
    model_run_run,
    model_run_score_batch,
    model_run_start,
    model_runs_prune,
)
from recommendations.services import artifacts as artifact_services
from recommendations.services import runs as run_services
from recommendations.services.artifacts import (
    ArtifactMissing,
    artifact_load,
    artifact_path,
    artifact_save,
)
from recommendations.services.retention import ERASURE_RETIRED
from recommendations.signals import resume_stalled_model_runs
from tests.recommendation_support import profiles_refresh, shop_create

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


@pytest.fixture
def chord(monkeypatch):
    """Chord mode without a broker: the chords and finish tasks sent, by run."""
    sent: list[tuple[int, list[int]]] = []
    monkeypatch.setattr(run_services, "scoring_mode", lambda: "chord")
    monkeypatch.setattr(
        run_services, "_send_chord", lambda run_id, indices: sent.append((run_id, indices))
    )
    from recommendations import tasks

    monkeypatch.setattr(
        tasks.model_run_finish_task, "delay", lambda run_id: sent.append((run_id, []))
    )
    return sent


def run_inline(catalog, user, **kwargs) -> ModelRun:
    run = model_run_start(catalog=catalog, user=user, **{**FAST, **kwargs})
    model_run_run(job_id=run.job_id, worker="inline")
    run.refresh_from_db()
    return run


def trained(catalog, user, **kwargs) -> ModelRun:
    """A chord-mode run trained and waiting for its batches."""
    run = model_run_start(catalog=catalog, user=user, **{**FAST, **kwargs})
    model_run_run(job_id=run.job_id, worker="trainer:1")
    run.refresh_from_db()
    assert run.status == ModelRun.Status.SCORING
    return run


def score_all(run: ModelRun) -> None:
    for index in range(run.batches_total):
        model_run_score_batch(run_id=run.pk, index=index, worker="w")


def finished(catalog, user, **kwargs) -> ModelRun:
    """A chord-mode run trained, scored and finished (the chord's work, done here)."""
    run = trained(catalog, user, **kwargs)
    score_all(run)
    model_run_finish(run_id=run.pk)
    run.refresh_from_db()
    assert run.is_current
    return run


def first_batch_customer(run: ModelRun) -> Customer:
    batch = ModelRunBatch.objects.get(run=run, index=0)
    return Customer.objects.get(pk=batch.first_customer_id)


# ---------------------------------------------------------------------------- erasure


def test_a_batch_scored_after_an_erasure_writes_nothing_for_the_customer(
    shop, marketer, admin_user, chord, monkeypatch
):
    run = trained(shop.catalog, marketer)
    anna = first_batch_customer(run)
    assert anna.erased_at is None
    original = run_services.customer_lists

    def erase_meanwhile(*args, **kwargs):
        lists = original(*args, **kwargs)  # computed with anna's history
        if not Customer.objects.get(pk=anna.pk).erased_at:
            customer_erase(user=admin_user, customer=Customer.objects.get(pk=anna.pk))
        return lists

    monkeypatch.setattr(run_services, "customer_lists", erase_meanwhile)
    score_all(run)
    batch = ModelRunBatch.objects.get(run=run, index=0)
    assert batch.done and batch.rows > 0
    assert not Recommendation.objects.filter(customer=anna).exists()
    # The others of the batch got theirs.
    assert Recommendation.objects.filter(
        run=run, customer_id__gt=anna.pk, customer_id__lte=batch.last_customer_id
    ).exists()

    # The finish sees that the model file holds an erased customer's history and retires it.
    model_run_finish(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ModelRun.Status.SUCCEEDED and run.is_current
    assert run.artifact == "" and not artifact_path(run.pk).exists()
    assert run.data_info["artifact_retired"] == ERASURE_RETIRED
    with pytest.raises(ArtifactMissing):
        selectors.customer_preview(run=run, customer=shop.customers[5])
    assert selectors.customer_recommendations(catalog=shop.catalog, customer=shop.customers[5])


def test_an_erasure_retires_the_model_files_that_hold_the_customer(
    shop, marketer, admin_user, django_capture_on_commit_callbacks
):
    run = run_inline(shop.catalog, marketer)
    other = shop_create(name="Other", customers=6)
    elsewhere = run_inline(other.catalog, marketer)
    stored = Recommendation.objects.filter(run=run).exclude(customer=shop.customers[0]).count()

    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(user=admin_user, customer=shop.customers[0])

    run.refresh_from_db()
    assert run.artifact == "" and not artifact_path(run.pk).exists()
    assert run.data_info["artifact_retired"] == ERASURE_RETIRED
    assert run.is_current and Recommendation.objects.filter(run=run).count() == stored
    with pytest.raises(ArtifactMissing):
        selectors.customer_preview(run=run, customer=shop.customers[1])
    # A catalog the customer never bought in keeps its model file.
    elsewhere.refresh_from_db()
    assert elsewhere.artifact and artifact_path(elsewhere.pk).exists()
    # The next run trains without them and keeps its file; the retired run is pruned.
    rerun = run_inline(shop.catalog, marketer)
    assert rerun.artifact and shop.customers[0].pk not in artifact_load(rerun.pk).customer_ids
    assert not Recommendation.objects.filter(run=run).exists()


def test_the_preview_page_says_why_a_retired_model_cannot_recompute(
    client, shop, marketer, admin_user, django_capture_on_commit_callbacks
):
    run = run_inline(shop.catalog, marketer)
    with django_capture_on_commit_callbacks(execute=True):
        customer_erase(user=admin_user, customer=shop.customers[0])
    client.force_login(marketer)
    from django.urls import reverse

    url = reverse("recommendations:run-preview", args=[run.pk, shop.customers[1].pk])
    page = client.get(url).content.decode()
    assert "A customer was erased after this run trained" in page


def test_model_files_keep_no_event_log(shop, marketer):
    run = run_inline(shop.catalog, marketer)
    artifact = artifact_load(run.pk)
    assert artifact.model.data.events is None
    assert artifact.buy_again is None or artifact.buy_again.data.events is None
    assert artifact.item_similarity is not None  # built at training, whatever the rules


# ------------------------------------------------------------- runs ending mid-training


@pytest.mark.parametrize("how", ["cancelled", "catalog deleted"])
def test_a_run_that_ends_while_it_trains_leaves_no_model_file(
    shop, marketer, admin_user, monkeypatch, how
):
    run = model_run_start(catalog=shop.catalog, user=marketer, **FAST)

    def end_then_save(artifact):
        # Ended while it compared the algorithms: there was no file yet to delete.
        if how == "cancelled":
            run_services._end(run.pk, ModelRun.Status.CANCELLED)
        else:
            catalog_delete(catalog=Catalog.objects.get(pk=shop.catalog.pk), user=admin_user)
        return artifact_save(artifact)

    monkeypatch.setattr(run_services, "artifact_save", end_then_save)
    model_run_run(job_id=run.job_id, worker="inline")
    assert not artifact_path(run.pk).exists()
    assert not list(artifact_path(run.pk).parent.glob(f"run-{run.pk}.*"))
    job = Job.objects.get(pk=run.job_id)
    assert job.status in (Job.Status.FAILED, Job.Status.CANCELLED)


def test_prune_deletes_model_files_no_run_needs(shop, marketer):
    current = run_inline(shop.catalog, marketer)
    models = artifact_path(current.pk).parent
    stray = [models / "run-987654.pkl", models / "run-987655.pkl.4242.tmp"]
    for path in stray:
        path.write_bytes(b"x")
    failed = ModelRun.objects.create(catalog=shop.catalog, status=ModelRun.Status.FAILED)
    artifact_path(failed.pk).write_bytes(b"x")
    active = ModelRun.objects.create(catalog=shop.catalog, status=ModelRun.Status.TRAINING)
    artifact_path(active.pk).write_bytes(b"x")  # still being written: it stays
    unrelated = models / "notes.txt"
    unrelated.write_text("keep")

    model_runs_prune(catalog_id=shop.catalog.pk)

    assert not any(path.exists() for path in stray)
    assert not artifact_path(failed.pk).exists()
    assert artifact_path(active.pk).exists() and artifact_path(current.pk).exists()
    assert unrelated.exists()


# --------------------------------------------------------------- who owns the chord's job


def test_chord_mode_delegates_the_job_so_a_restart_does_not_rerun_it(
    shop, marketer, chord, monkeypatch
):
    run = trained(shop.catalog, marketer)
    job = Job.objects.get(pk=run.job_id)
    assert job.params[DELEGATED] is True and job.attempts == 1
    assert chord == [(run.pk, list(range(run.batches_total)))]
    model_run_score_batch(run_id=run.pk, index=0, worker="batch-host:4242")
    job.refresh_from_db()
    assert job.worker == "trainer:1"  # a batch does not take the job over

    # The trainer's process is gone and the heartbeat is stale: a restarted worker leaves
    # the job alone (the sweep owns it), where it used to re-run the task.
    import socket

    Job.objects.filter(pk=job.pk).update(worker=f"{socket.gethostname()}:999999", heartbeat_at=None)
    assert job.pk not in {j.pk for j in jobs_stale()}
    assert job.pk not in {j.pk for j in jobs_orphaned_on_this_host(starting=True)}
    sent = []
    from marketing import tasks as marketing_tasks

    monkeypatch.setattr(
        marketing_tasks, "job_task_for", lambda kind: type("T", (), {"delay": sent.append})
    )
    requeue_orphaned_jobs()
    assert sent == []
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.attempts == 1


def test_the_sweep_resends_missing_batches_without_spending_an_attempt(
    shop, marketer, chord, django_capture_on_commit_callbacks
):
    run = trained(shop.catalog, marketer)
    model_run_score_batch(run_id=run.pk, index=0, worker="w")
    chord.clear()
    # Fresh heartbeat: nothing to do.
    assert run_services.model_runs_sweep() == 0
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        resume_stalled_model_runs()  # what a starting worker runs
    assert chord == [(run.pk, list(range(1, run.batches_total)))]
    job = Job.objects.get(pk=run.job_id)
    assert job.attempts == 1 and job.params["resumes"] == 1 and job.heartbeat_at

    # Every batch done but the finish lost: the sweep sends the finish alone.
    score_all(run)
    chord.clear()
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        run_services.model_runs_sweep()
    assert chord == [(run.pk, [])]


def test_the_sweep_fails_a_run_whose_batches_never_progress(
    shop, marketer, chord, settings, django_capture_on_commit_callbacks
):
    current = finished(shop.catalog, marketer)
    rows = Recommendation.objects.filter(run=current).count()
    run = trained(shop.catalog, marketer)
    with pytest.raises(ModelRunActive):  # a lost chord used to block the catalog for ever
        model_run_start(catalog=shop.catalog, user=marketer, **FAST)
    for _ in range(settings.MAX_JOB_ATTEMPTS):
        Job.objects.filter(pk=run.job_id).update(heartbeat_at=None)
        with django_capture_on_commit_callbacks(execute=True):
            run_services.model_runs_sweep()
    Job.objects.filter(pk=run.job_id).update(heartbeat_at=None)
    # The next start sweeps first: the stalled run fails, and the new one may start.
    model_run_start(catalog=shop.catalog, user=marketer, **FAST)
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert run.status == ModelRun.Status.FAILED and job.status == Job.Status.FAILED
    assert "no progress" in job.error
    assert not Recommendation.objects.filter(run=run).exists()
    current.refresh_from_db()
    assert current.is_current and Recommendation.objects.filter(run=current).count() == rows


def test_a_finish_after_the_job_ended_does_not_make_the_run_current(shop, marketer, chord):
    run = trained(shop.catalog, marketer)
    score_all(run)
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.FAILED, error="gave up")
    model_run_finish(run_id=run.pk)
    run.refresh_from_db()
    job = Job.objects.get(pk=run.job_id)
    assert run.status == ModelRun.Status.FAILED and not run.is_current
    assert job.status == Job.Status.FAILED and job.error == "gave up"
    assert not Recommendation.objects.filter(run=run).exists()


def test_a_redelivered_finish_changes_nothing(shop, marketer, chord):
    first = finished(shop.catalog, marketer)
    second = finished(shop.catalog, marketer, rules={"top_n": 3})
    rows = Recommendation.objects.filter(run=second).count()
    job = Job.objects.get(pk=first.job_id)

    model_run_finish(run_id=first.pk)  # delivered again, after a newer run took over

    second.refresh_from_db()
    first.refresh_from_db()
    assert second.is_current and not first.is_current
    assert Recommendation.objects.filter(run=second).count() == rows
    assert not Recommendation.objects.filter(run=first).exists()
    again = Job.objects.get(pk=first.job_id)
    assert (again.status, again.finished_at, again.result) == (
        job.status,
        job.finished_at,
        job.result,
    )


# --------------------------------------------------------------------- switch and prune


def test_a_reader_between_the_switch_and_the_prune_sees_a_whole_list(shop, marketer):
    if connection.vendor != "postgresql":
        # SQLite reads a result lazily on the same connection as the writes here.
        pytest.skip("concurrent readers are PostgreSQL's case")
    first = run_inline(shop.catalog, marketer, rules={"top_n": 4})
    customer = shop.customers[0]
    segment = Segment.objects.filter(catalog=shop.catalog, size__gt=0).first()
    waiting: list[ModelRun] = []

    def switch_after_the_first_query(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if waiting:
            # The reader's first query is done; another run turns current and prunes the
            # old one's rows before the reader's next query.
            model_run_run(job_id=waiting.pop().job_id, worker="inline")
        return result

    waiting.append(model_run_start(catalog=shop.catalog, user=marketer, rules={"top_n": 3}, **FAST))
    with connection.execute_wrapper(switch_after_the_first_query):
        lists = selectors.customer_recommendations(catalog=shop.catalog, customer=customer)
    assert not waiting and ModelRun.objects.get(catalog=shop.catalog, is_current=True) != first
    assert len(lists.discover) == 4 and lists.run.pk == first.pk
    assert {r.run_id for r in lists.discover} == {first.pk}

    waiting.append(model_run_start(catalog=shop.catalog, user=marketer, rules={"top_n": 2}, **FAST))
    with connection.execute_wrapper(switch_after_the_first_query):
        rows = selectors.segment_recommendations(segment=segment)
    assert not waiting and [r.rank for r in rows] == [1, 2, 3]


# ------------------------------------------------------------------ tuning and the budget


def test_tuning_segments_come_from_each_training_period_only(shop, marketer, monkeypatch):
    seen = []
    original = run_services.compare

    def spy(classes, frame, **kwargs):
        seen.append(kwargs["user_features"])
        return original(classes, frame, **kwargs)

    monkeypatch.setattr(run_services, "compare", spy)
    run = run_inline(shop.catalog, marketer, algorithms=["popular_segment"])
    assert run.status == ModelRun.Status.SUCCEEDED
    assert seen and all(callable(f) for f in seen)  # never the stored (all-time) profiles

    data = artifact_services.training_data_read(catalog=shop.catalog)
    cutoff = data.purchases["timestamp"].quantile(0.5)
    early = data.purchases[data.purchases["timestamp"] < cutoff]
    features = data.segments_of(early)
    assert set(features.index) == set(early["user_id"])
    # A customer's segment as of the training data alone, whatever they bought later.
    late_only = set(data.purchases["user_id"]) - set(early["user_id"])
    assert late_only and not late_only & set(features.index)
    assert set(features["segment"]) <= {*SEGMENTS, NO_PURCHASES}


class _Clock:
    """time.monotonic that jumps far ahead after ``free`` calls; perf_counter as usual."""

    def __init__(self, free: int) -> None:
        self.calls = itertools.count()
        self.free = free

    def monotonic(self) -> float:
        return 0.0 if next(self.calls) < self.free else 10_000.0

    @staticmethod
    def perf_counter() -> float:
        import time

        return time.perf_counter()


def test_a_spent_budget_skips_the_rest_but_keeps_the_baseline(shop, marketer, monkeypatch):
    monkeypatch.setattr(run_services, "time", _Clock(free=2))
    run = run_inline(
        shop.catalog, marketer, algorithms=["item_knn_cosine", "popular", "popular_recent"]
    )
    assert run.status == ModelRun.Status.SUCCEEDED, run.job.error
    comparison = run.comparison
    assert set(comparison["models"]) == {"item_knn_cosine", "popular_recent"}
    assert comparison["skipped"] == {
        "popular": run_services.BUDGET_SPENT,
        "buy_again": run_services.BUDGET_SPENT,
    }


def test_the_soft_time_limit_is_not_swallowed_as_a_failed_algorithm(shop, marketer, monkeypatch):
    def time_up(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(run_services, "compare", time_up)
    run = run_inline(shop.catalog, marketer)
    job = Job.objects.get(pk=run.job_id)
    assert run.status == ModelRun.Status.FAILED
    assert "time limit" in job.error and not run.comparison


# ------------------------------------------------------------ what a model file may hold


def test_auto_mode_keeps_ease_out_above_the_limit_also_inside_the_hybrid(
    shop, marketer, monkeypatch
):
    monkeypatch.setattr(linear, "AUTO_MAX_ITEMS", 10)  # the shop has 30 products
    assert "ease" not in run_services._auto_algorithms(30)
    assert "ease" in run_services._auto_algorithms(10)
    run = run_inline(shop.catalog, marketer, algorithms=["hybrid"])
    model = artifact_load(run.pk).model
    # Tuning may pick either of the hybrid's other collaborative parts (which one depends on
    # how many trials fit the time budget), but never EASE.
    assert model.name == "hybrid"
    assert model.resolved["collaborative"] in {"rp3beta", "item_knn_cosine"}
    # Untuned, the hybrid's default ("ease") falls back to the next collaborative model.
    assert hybrid.registered("ease", seed=0, n_items=30).name == "rp3beta"
    assert hybrid.registered("ease", seed=0, n_items=10).name == "ease"


def test_a_model_file_over_the_size_limit_fails_the_run_with_a_clear_message(
    shop, marketer, monkeypatch
):
    monkeypatch.setattr(artifact_services, "_MB", 1)  # the limit: 2,048 MB → 2,048 bytes
    run = run_inline(shop.catalog, marketer)
    job = Job.objects.get(pk=run.job_id)
    assert run.status == ModelRun.Status.FAILED
    assert "RECOMMENDATION_MAX_ARTIFACT_MB" in job.error
    assert not list(artifact_path(run.pk).parent.glob(f"run-{run.pk}*"))


def test_a_web_process_caches_one_model_file(shop, marketer):
    first = run_inline(shop.catalog, marketer)
    other = shop_create(name="Other", customers=6)
    second = run_inline(other.catalog, marketer)
    artifact_load(first.pk)
    artifact_load(second.pk)
    assert set(artifact_services._CACHE) >= {first.pk, second.pk}
    selectors.customer_preview(run=first, customer=shop.customers[0])
    assert list(artifact_services._CACHE) == [first.pk]


def test_the_preview_refuses_diversity_without_a_stored_similarity(shop, marketer, monkeypatch):
    run = run_inline(shop.catalog, marketer)
    customer = shop.customers[0]
    diverse = {**run.rules, "mmr_lambda": 0.5}
    assert selectors.customer_preview(run=run, customer=customer, rules=diverse).discover

    old = pickle.loads(pickle.dumps(artifact_load(run.pk)))
    old.item_similarity = None  # stored by a run of before: trained with mmr_lambda = 1
    artifact_save(old)

    def never(*args, **kwargs):
        raise AssertionError("the preview built the item similarity")

    monkeypatch.setattr(artifact_services, "ItemSimilarity", never)
    with pytest.raises(ValidationError) as error:
        selectors.customer_preview(run=run, customer=customer, rules=diverse)
    assert "mmr_lambda" in error.value.message_dict
    assert selectors.customer_preview(run=run, customer=customer).discover  # λ = 1: fine
