"""Model runs as jobs: start, train, score every customer in batches, finish.

`model_run_start` checks the request and queues a `Job` of kind MODEL_RUN (one active run
per catalog). The job's task runs `model_run_run`:

1. **Train.** Read the purchases (COPY on PostgreSQL), compare the chosen algorithms (or
   all registered ones) on a validation split within the time budget, select by
   *validation* scores only (`select_best`: the cheapest model within one standard error
   of the best, never test), refit it — and a BuyAgain model —
   on ALL purchases, and pickle them with what scoring needs (the artifact, under
   DATA_DIR/models: every worker must see the same DATA_DIR). The customers are cut into
   `ModelRunBatch` rows of RECOMMENDATION_BATCH_SIZE. When campaign clicks and conversions
   came in since the previous run, its model and this run's, both fitted blind to them, and
   its stored lists are measured on them (`campaign_check`, into ``comparison["campaign"]``).
2. **Score.** `model_run_score_batch` ranks one batch under the rules, builds each item's
   reason and writes the batch's rows in one transaction that also marks the batch done,
   after deleting whatever rows of (run, those customers) exist — so a redelivered or
   repeated batch changes nothing (a row lock on the batch serialises two copies).
   - *chord* mode (a result backend is configured, e.g. Redis): the batches are a Celery
     chord's header, spread over every worker; its callback is `model_run_finish`. The run's
     own task then returns and marks its job delegated (`job_delegate`): the batches keep
     the job's heartbeat and the finish ends it, and a worker restart does not re-run the
     task. `model_runs_sweep` (on worker start-up and before a new run of the catalog)
     resends the missing batches of a run whose batches stopped progressing for
     JOB_STALE_AFTER_S — without spending an attempt — and fails it after
     MAX_JOB_ATTEMPTS resends, so a lost chord cannot block the catalog for ever.
   - *inline* mode (embedded: SQLite + filesystem broker, which has no result backend):
     the run's own task scores the batches one after the other, then finishes.
3. **Finish.** In one transaction: the segment lists (RFM, rule and learned segments), the
   flip of `is_current` to this run, and the job's success. Readers read the current run's
   rows in one query, so they see the old lists or the new ones, never a mix. Right after,
   superseded runs lose their rows and artifact (their ModelRun rows, with metrics and
   comparison, stay as history), and model files no run needs are deleted.

Erasure: a batch writes rows only for customers not erased, locked (FOR KEY SHARE) until it
commits; a customer erased while the run was active makes the finish retire the run's
model file, which holds their history (see recommendations.services.retention).

Re-runs: a run task that is delivered again (its worker died; the job's requeue logic) looks
at the run's state: still training → it trains again from scratch; scoring → it sends only
the batches not yet done (done ones are never sent twice); finished → nothing. Cancel is
honoured between algorithms and between batches; a cancelled or failed run leaves the
current lists untouched and its own rows are deleted.

Time: the budget covers the whole comparison. Once it is spent, the remaining algorithms
are skipped ("time budget spent") except the cheap baseline popular_recent, so a run ends;
Celery's soft time limit is never swallowed by a failing algorithm or trial.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import traceback
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from celery import chord
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from marketing.dbstats import analyze_after_commit
from marketing.models import Catalog, Customer, Job
from marketing.permissions import require_perm
from marketing.services.jobs import (
    DELEGATED,
    CancelOutcome,
    JobCancelled,
    ProgressReporter,
    job_cancel,
    job_claim,
    job_create,
    job_delegate,
    job_enqueue,
    job_fail,
    job_heartbeat,
    job_mark_cancelled,
    job_release,
    job_succeed,
)
from recommendations.algorithms.buy_again import BuyAgain
from recommendations.algorithms.linear import ease_allowed
from recommendations.algorithms.popular import RecentPopular
from recommendations.algorithms.reasons import ReasonContext
from recommendations.algorithms.registry import ALGORITHMS
from recommendations.evaluation.tuning import Comparison, ModelResult, compare, select_best
from recommendations.models import ModelRun, ModelRunBatch, Recommendation
from recommendations.services.artifacts import (
    WINDOW_DAYS,
    Artifact,
    ArtifactMissing,
    ArtifactTooLarge,
    TrainingData,
    artifact_delete,
    artifact_load,
    artifact_save,
    popularity,
    training_data_read,
)
from recommendations.services.campaign_check import campaign_check_run
from recommendations.services.retention import (
    ERASURE_RETIRED,
    artifact_retire,
    artifacts_orphaned_delete,
    erased_in,
)
from recommendations.services.rules import rules_for_artifact, rules_validate
from recommendations.services.scoring import (
    customer_lists,
    recommendations_write,
    segment_lists,
)

logger = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 60
MAX_BUDGET_S = 3600
# Compared even when the time budget is spent: cheap, so a run always has a candidate.
BASELINES = (RecentPopular.name,)
BUDGET_SPENT = "time budget spent"
# Validation users scored per tuning trial (a seeded sample; keeps trials short).
MAX_TUNING_USERS = 2000
TUNING_K = 10
FALLBACK_ALGORITHM = "popular"


class ModelRunError(Exception):
    """An expected reason a run cannot go on; the job fails with this message."""


class ModelRunActive(ValidationError):
    """The catalog already has a queued or running model run (``run``)."""

    def __init__(self, run: ModelRun) -> None:
        super().__init__(
            f"Model run #{run.pk} of this catalog is still {run.get_status_display().lower()}; "
            "wait for it to finish or cancel it."
        )
        self.run = run


# ----------------------------------------------------------------------------- start


def algorithms_available() -> list[str]:
    """Names a run may ask for (BuyAgain is always fitted for the buy-again lists)."""
    return [name for name, cls in ALGORITHMS.items() if not cls.recommends_seen]


def _auto_algorithms(n_items: int) -> list[str]:
    """All algorithms, but EASE only up to `linear.AUTO_MAX_ITEMS` items (its dense item
    matrices; the hybrid and the ranker apply the same limit to their own EASE parts)."""
    names = algorithms_available()
    if not ease_allowed(n_items):
        names = [n for n in names if n != "ease"]
    return names


def scoring_mode() -> str:
    """ "chord" when batches can be spread over workers (a result backend exists), else
    "inline"; RECOMMENDATION_SCORING forces one."""
    mode = settings.RECOMMENDATION_SCORING
    if mode == "auto":
        mode = "chord" if settings.CELERY_RESULT_BACKEND else "inline"
    return mode


def _clean_algorithms(algorithms: list[str] | None) -> list[str]:
    if algorithms is None:
        return []
    if isinstance(algorithms, str) or not isinstance(algorithms, list | tuple):
        raise ValidationError({"algorithms": "Choose a list of algorithms, or none for auto."})
    known = algorithms_available()
    out: list[str] = []
    for name in algorithms:
        if name not in known:
            raise ValidationError(
                {"algorithms": f"Unknown algorithm {name!r} (choose from {', '.join(known)})."}
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ValidationError({"algorithms": "Choose at least one algorithm, or auto."})
    return out


def _clean_budget(budget_s: Any) -> int:
    if isinstance(budget_s, bool) or not isinstance(budget_s, int | float):
        raise ValidationError({"budget_s": "The time budget is a number of seconds."})
    if not 1 <= budget_s <= MAX_BUDGET_S:
        raise ValidationError(
            {"budget_s": f"The time budget must be between 1 and {MAX_BUDGET_S} seconds."}
        )
    return int(math.ceil(budget_s))


def model_run_start(
    *,
    catalog: Catalog,
    user,
    algorithms: list[str] | None = None,
    rules: dict | None = None,
    budget_s: int = DEFAULT_BUDGET_S,
) -> ModelRun:
    """Queue a model run of the catalog and return it (its job is enqueued on commit).

    algorithms: names from `algorithms_available()`, or None = automatic (all of them).
    rules: business rules (see recommendations.services.rules). budget_s: tuning time for
    all algorithms together. Raises PermissionDenied without recommendations.add_modelrun,
    ValidationError (keyed by argument) for bad input, ModelRunActive when a run of the
    catalog is already queued or running.
    """
    require_perm(user, "recommendations.add_modelrun")
    names = _clean_algorithms(algorithms)
    clean_rules = rules_validate(catalog=catalog, data=rules)
    budget = _clean_budget(budget_s)
    # A run whose batches stalled is resumed or failed first (in its own transactions: the
    # refusal below must not roll that back).
    model_runs_sweep(catalog_id=catalog.pk)
    with transaction.atomic():
        # Serialise concurrent starts for one catalog (a double-clicked button).
        if not Catalog.objects.select_for_update().filter(pk=catalog.pk).exists():
            raise ValidationError("The catalog was deleted.")
        _end_orphaned_runs(catalog)
        active = ModelRun.objects.filter(catalog=catalog, status__in=ModelRun.ACTIVE).first()
        if active is not None:
            raise ModelRunActive(active)
        job = job_create(
            kind=Job.Kind.MODEL_RUN,
            user=user,
            catalog=catalog,
            message="Queued: train and score recommendations",
        )
        run = ModelRun.objects.create(
            catalog=catalog,
            job=job,
            algorithms=names,
            rules=clean_rules,
            budget_s=budget,
            created_by=user,
        )
        job.params = {"run_id": run.pk, "algorithms": names or "auto", "budget_s": budget}
        job.save(update_fields=["params"])
        job_enqueue(job)
        # Runs after job_enqueue's send (on_commit keeps the order): a job it failed (the
        # broker could not be reached) ends its run too, rather than leave it queued.
        transaction.on_commit(lambda: _end_orphaned_runs(catalog))
    return run


def _end_orphaned_runs(catalog: Catalog) -> None:
    """Runs still marked active whose job has ended (its worker gave up): end them too."""
    for run in ModelRun.objects.filter(catalog=catalog, status__in=ModelRun.ACTIVE).exclude(
        job__status__in=Job.ACTIVE
    ):
        cancelled = run.job is not None and run.job.status == Job.Status.CANCELLED
        status = ModelRun.Status.CANCELLED if cancelled else ModelRun.Status.FAILED
        _end(run.pk, status)


def model_run_cancel(*, run: ModelRun, user) -> CancelOutcome:
    """Ask the run to stop (its job's cancel; needs marketing.change_job). A queued run ends
    at once, a running one at its next checkpoint (between algorithms or batches)."""
    if run.job is None:
        return CancelOutcome.FINISHED
    _, outcome = job_cancel(job=run.job, user=user)
    if outcome == CancelOutcome.CANCELLED:
        _end(run.pk, ModelRun.Status.CANCELLED)
    return outcome


# ------------------------------------------------------------------------------- run


def model_run_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """The run's job end to end (or its next step after a restart); safe to call again."""
    job = job_claim(job_id=job_id, worker=worker, celery_id=celery_id)
    if job is None:
        return
    run = ModelRun.objects.filter(job_id=job.pk).select_related("catalog").first()
    if run is None:
        job_fail(job_id=job.pk, error="The catalog was deleted before its model run started.")
        return
    try:
        with job_heartbeat(job.pk):
            if run.status in (ModelRun.Status.QUEUED, ModelRun.Status.TRAINING):
                _train(run, job)
                run.refresh_from_db()
            if run.status == ModelRun.Status.SCORING:
                _score(run, worker)
            elif run.status == ModelRun.Status.SUCCEEDED:
                job_succeed(job_id=job.pk, result=job.result or {}, message="Finished")
            elif run.status == ModelRun.Status.CANCELLED:
                job_mark_cancelled(job_id=job.pk)
            else:
                job_fail(
                    job_id=job.pk,
                    error="The run failed; the current recommendations were not changed.",
                )
    except JobCancelled:
        _end(run.pk, ModelRun.Status.CANCELLED)
        job_mark_cancelled(job_id=job.pk)
    except (ModelRunError, ArtifactMissing, ArtifactTooLarge) as exc:
        model_run_fail(run_id=run.pk, job_id=job.pk, error=str(exc))
    except SoftTimeLimitExceeded:
        model_run_fail(run_id=run.pk, job_id=job.pk, error=TIME_LIMIT_ERROR)
    except OperationalError:
        # Transient database trouble: the task retries; make the job claimable again.
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        _log_unexpected("model run", run.pk, exc)
        model_run_fail(
            run_id=run.pk,
            job_id=job.pk,  # the run may be gone with its catalog; the job is not
            error=f"Unexpected error ({type(exc).__name__}); the current recommendations "
            "were not changed.",
        )


TIME_LIMIT_ERROR = (
    "The run reached the workers' time limit (CELERY_TASK_SOFT_TIME_LIMIT) and stopped; the "
    "current recommendations were not changed. Use a smaller time budget or fewer algorithms."
)


def _log_unexpected(what: str, run_id: int, exc: BaseException) -> None:
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    logger.error("%s %s failed: %s: %s\n%s", what, run_id, type(exc).__name__, exc, frames)


def _train(run: ModelRun, job: Job) -> None:
    report = ProgressReporter(job.pk)
    ModelRun.objects.filter(pk=run.pk).update(
        status=ModelRun.Status.TRAINING, started_at=timezone.now()
    )
    report(0, 1, "Reading purchases", force=True)
    data = training_data_read(catalog=run.catalog)
    if data.purchases.empty:
        raise ModelRunError("This catalog has no purchases yet: import purchase events first.")
    names = run.algorithms or _auto_algorithms(len(data.product_ids))
    missing = [n for n in names if n not in ALGORITHMS]
    if missing:
        raise ModelRunError(f"Algorithm(s) no longer available: {', '.join(missing)}.")
    batch_size = settings.RECOMMENDATION_BATCH_SIZE
    n_batches = math.ceil(len(data.customer_ids) / batch_size)
    # Steps: each algorithm, buy again, refit, then each batch, then the finish.
    total = len(names) + 2 + n_batches + 1
    comparison = _compare(names, data, budget_s=run.budget_s, report=report, total=total)

    selected = select_best(comparison.models.values())
    dataset = data.dataset()
    report(
        len(names) + 1, total, f"Fitting {selected or 'a fallback'} on all purchases", force=True
    )
    started = time.perf_counter()
    model, selected, params, note = _fit_final(selected, comparison, names, dataset)
    fit_s = time.perf_counter() - started
    buy_again = _fit_buy_again(comparison, dataset)
    reasons = ReasonContext.build(dataset, item_new=data.item_new(), window_days=WINDOW_DAYS)
    artifact = Artifact(
        run_id=run.pk,
        model=model,
        buy_again=buy_again,
        customer_ids=data.customer_ids,
        product_ids=data.product_ids,
        titles=data.products["title"].reindex(data.product_ids).fillna("").to_numpy(),
        items_meta=data.items_meta(),
        popularity=popularity(reasons),
        reasons=reasons,
        as_of=pd.Timestamp(data.purchases["timestamp"].max()),
    )
    # Built once here (not in every worker, nor in a web request when the preview asks for
    # diversity), whatever the run's own rules say.
    artifact.similarity()
    path = artifact_save(artifact)

    summary = comparison.to_dict()
    for name, result in {**comparison.models, **comparison.repeat_models}.items():
        key = "models" if name in comparison.models else "buy_again_models"
        summary[key][name]["trials"] = _trials(result)
    summary["selected"] = selected
    summary["selection"] = note
    summary["final_fit_s"] = round(fit_s, 3)
    # Before the finish prunes the previous run's lists: they are what was sent.
    report(len(names) + 1, total, "Measuring the models on campaign feedback", force=True)
    summary["campaign"] = campaign_check_run(
        run=run, data=data, selected=selected, params=params, fit_s=fit_s, k=TUNING_K
    )
    bounds = [
        (i, data.customer_ids[start : start + batch_size])
        for i, start in enumerate(range(0, len(data.customer_ids), batch_size))
    ]
    with transaction.atomic():
        locked = ModelRun.objects.select_for_update().filter(pk=run.pk).first()
        if locked is None or locked.status != ModelRun.Status.TRAINING:
            # Ended (cancelled, failed, its catalog deleted) while it trained: whoever ended
            # it could not delete a file that did not exist yet, so it goes here.
            artifact_delete(run.pk)
            raise ModelRunError("The run was ended while it trained.")
        ModelRunBatch.objects.filter(run=run).delete()
        ModelRunBatch.objects.bulk_create(
            ModelRunBatch(
                run=run,
                index=i,
                customers=len(ids),
                first_customer_id=int(ids[0]),
                last_customer_id=int(ids[-1]),
            )
            for i, ids in bounds
        )
        ModelRun.objects.filter(pk=run.pk).update(
            status=ModelRun.Status.SCORING,
            artifact=path,
            comparison=summary,
            split_info={"train": comparison.info, "validation": comparison.validation_info},
            data_info={
                "purchases": len(data.purchases),
                "buyers": int(data.purchases["user_id"].nunique()),
                "customers": len(data.customer_ids),
                "products": len(data.product_ids),
                "as_of": artifact.as_of.isoformat(),
            },
            selected_algorithm=selected,
            selected_params=_jsonable(params),
            batches_total=len(bounds),
            scoring_mode=scoring_mode(),
        )
        Job.objects.filter(pk=job.pk).update(progress_total=total)
    report(len(names) + 2, total, f"Selected {selected}; scoring customers", force=True)


def _compare(
    names: list[str], data: TrainingData, *, budget_s: int, report, total: int
) -> Comparison:
    """compare() one algorithm at a time (progress, cancel, and a failing algorithm is only
    skipped), then merged into one Comparison. BuyAgain is tuned last, on repeat purchases.

    The budget covers them all: each algorithm's search gets an equal share of what is
    left, and once it is spent the rest are skipped (BASELINES excepted). User features
    (the RFM segment) are computed from each split's training purchases only
    (`TrainingData.segments_of`), never from the stored profiles, which count the held-out
    days too."""
    frame = data.purchases[["user_id", "item_id", "timestamp", "basket", "weight"]]
    features = data.products[["title", "description", "category", "brand", "price"]]
    classes = [ALGORITHMS[n] for n in names] + [BuyAgain]
    deadline = time.monotonic() + budget_s
    models: dict[str, ModelResult] = {}
    repeat: dict[str, ModelResult] = {}
    skipped: dict[str, str] = {}
    info: dict = {}
    validation_info: dict = {}
    metric = f"ndcg@{TUNING_K}"
    for step, cls in enumerate(classes, start=1):
        left = deadline - time.monotonic()
        if left <= 0 and cls.name not in BASELINES:
            skipped[cls.name] = BUDGET_SPENT
            continue
        report(step, total, f"Comparing algorithms: {cls.name} ({step}/{len(classes)})", force=True)
        try:
            part = compare(
                [cls],
                frame,
                split="lastday",
                budget_s=max(left / (len(classes) - step + 1), 0.5),
                k=TUNING_K,
                seed=0,
                max_tuning_users=MAX_TUNING_USERS,
                item_features=features,
                user_features=data.segments_of,
                reraise=(SoftTimeLimitExceeded,),
            )
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: not one algorithm's failure
        except Exception as exc:  # one broken algorithm must not sink the run
            _log_unexpected(f"comparing {cls.name} in run", 0, exc)
            skipped[cls.name] = f"failed: {type(exc).__name__}: {exc}"[:300]
            continue
        models.update(part.models)
        repeat.update(part.repeat_models)
        skipped.update(part.skipped)
        info, validation_info, metric = part.info, part.validation_info, part.metric
    return Comparison(
        "lastday", info, validation_info, metric, models, skipped, repeat_models=repeat
    )


def _fit_final(selected: str | None, comparison: Comparison, names: list[str], dataset):
    """The selected model refitted on all data; without a selection (too little data to
    validate), the first requested algorithm that fits with its defaults, else popular."""
    if selected is not None:
        params = dict(comparison.models[selected].params)
        model = ALGORITHMS[selected](seed=0, **params).fit(dataset)
        return model, selected, params, _selection_note(selected, comparison)
    for name in [*names, FALLBACK_ALGORITHM]:
        cls = ALGORITHMS[name]
        try:
            model = cls(seed=0).fit(dataset)
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:  # e.g. gensim's RuntimeError, a LinAlgError: try the next
            logger.warning("fallback %s not fitted: %s: %s", name, type(exc).__name__, exc)
            continue
        note = "too little history to validate the algorithms; used defaults"
        return model, name, dict(model.params), note
    raise ModelRunError("No algorithm could be fitted on this catalog's purchases.")


def _selection_note(selected: str, comparison: Comparison) -> str:
    """Why `select_best` chose ``selected``: the best validation score, or as good as the
    best within the validation noise and cheaper."""
    scores = {name: result.search.best_score for name, result in comparison.models.items()}
    leader = max((n for n in scores if not math.isnan(scores[n])), key=scores.get)
    if scores[selected] >= scores[leader]:
        return "best validation score"
    return (
        f"within one standard error of the best validation score ({leader}) and cheaper "
        "to fit and score"
    )


def _fit_buy_again(comparison: Comparison, dataset) -> BuyAgain | None:
    tuned = comparison.repeat_models.get(BuyAgain.name)
    params = dict(tuned.params) if tuned else {}
    try:
        return BuyAgain(seed=0, **params).fit(dataset)
    except (ArithmeticError, ValueError, MemoryError) as exc:
        logger.warning("buy-again model not fitted: %s", exc)
        return None


def _trials(result: ModelResult) -> list[dict]:
    return [
        {
            "params": _jsonable(t.params),
            "score": None if math.isnan(t.score) else round(t.score, 6),
            "fit_s": round(t.fit_s, 4),
            "score_s": round(t.score_s, 4),
            "error": t.error,
        }
        for t in result.search.trials
    ]


def _jsonable(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, str | int | float | bool | type(None)):
            value = str(value)
        out[str(key)] = value
    return out


# ---------------------------------------------------------------------------- score


def _pending(run_id: int) -> list[int]:
    return list(
        ModelRunBatch.objects.filter(run_id=run_id, done=False)
        .order_by("index")
        .values_list("index", flat=True)
    )


def _score(run: ModelRun, worker: str) -> None:
    if run.scoring_mode == "chord":
        # The batches own the job from here (before sending: a worker that dies in between
        # leaves a delegated job for the sweep, not a task that re-runs and spends attempts).
        if run.job_id is not None:
            job_delegate(job_id=run.job_id, message="Scoring customers on every worker")
        _dispatch(run.pk)
        return
    for index in _pending(run.pk):
        _score_batch(run, index, worker)
    _finish(run)


def _dispatch(run_id: int) -> None:
    """Send the run's batches not yet done as a chord (its callback finishes the run), or
    the finish alone when every batch is done."""
    from recommendations.tasks import model_run_finish_task  # tasks import services

    pending = _pending(run_id)
    if pending:
        _send_chord(run_id, pending)
    else:
        model_run_finish_task.delay(run_id)


def chord_header(run_id: int, indices: list[int]) -> list:
    """The chord's header: one batch task per index (a hook tests may wrap)."""
    from recommendations.tasks import model_run_score_batch_task

    return [model_run_score_batch_task.si(run_id, index) for index in indices]


def _send_chord(run_id: int, indices: list[int]) -> None:
    from recommendations.tasks import model_run_finish_task

    chord(chord_header(run_id, indices))(model_run_finish_task.si(run_id))


def model_run_score_batch(*, run_id: int, index: int, worker: str = "") -> int:
    """Score and store one customer batch of a run (a chord header task); returns the rows
    written (0 when there was nothing to do: finished batch, ended run, cancel)."""
    run = ModelRun.objects.filter(pk=run_id).first()
    if run is None or run.status != ModelRun.Status.SCORING:
        return 0
    if run.job_id is not None:
        # A sign of progress for the sweep; the job's worker stays the one that trained.
        Job.objects.filter(pk=run.job_id, status=Job.Status.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    try:
        with job_heartbeat(run.job_id) if run.job_id else contextlib.nullcontext():
            return _score_batch(run, index, worker)
    except JobCancelled:
        return 0  # the chord's callback ends the run as cancelled
    except ArtifactMissing as exc:
        model_run_fail(run_id=run.pk, error=str(exc))
        return 0
    except SoftTimeLimitExceeded:
        model_run_fail(run_id=run.pk, error=TIME_LIMIT_ERROR)
        return 0


def _progress(run: ModelRun) -> tuple[int, int, int]:
    """(steps done, steps total, batches done) of the run's job: the steps before scoring
    plus the batches done (never below what the job already shows)."""
    shown = Job.objects.filter(pk=run.job_id).values_list("progress_done", "progress_total")
    current, total = shown.first() or (0, 0)
    batches = ModelRunBatch.objects.filter(run=run, done=True).count()
    total = total or run.batches_total + 1
    return max(current, total - run.batches_total - 1 + batches), total, batches


def _run_status_shared(run_id: int) -> str | None:
    """The run's status, its row locked FOR SHARE until the transaction ends (PostgreSQL)."""
    if connection.vendor != "postgresql":
        return ModelRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    with connection.cursor() as cursor:
        # Only our own table name is interpolated.
        cursor.execute(
            f"SELECT status FROM {ModelRun._meta.db_table} WHERE id = %s FOR SHARE", [run_id]
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _customers_to_write(customer_ids: np.ndarray, batch: ModelRunBatch) -> set[int]:
    """The batch's customers that are not erased, locked FOR KEY SHARE until the batch
    commits: an erasure (FOR UPDATE on the customer) waits for the batch, or refuses, and
    one that committed first leaves its customer out — no rows, no reason texts."""
    ids = [int(i) for i in customer_ids]
    if connection.vendor != "postgresql":  # one writer at a time
        erased = Customer.objects.filter(
            pk__gte=batch.first_customer_id,
            pk__lte=batch.last_customer_id,
            erased_at__isnull=False,
        ).values_list("pk", flat=True)
        return set(ids) - set(erased)
    with connection.cursor() as cursor:
        # Only our own table name is interpolated.
        cursor.execute(
            f"SELECT id FROM {Customer._meta.db_table} "
            "WHERE id = ANY(%s) AND erased_at IS NULL FOR KEY SHARE",
            [ids],
        )
        return {row[0] for row in cursor.fetchall()}


def _score_batch(run: ModelRun, index: int, worker: str) -> int:
    batch = ModelRunBatch.objects.filter(run=run, index=index).first()
    if batch is None or batch.done:
        return 0
    if run.job_id is not None:
        done, total, _ = _progress(run)
        # Writes progress (never lower: other batches count too), and raises JobCancelled
        # when a cancel was asked for.
        ProgressReporter(run.job_id, monotonic=True)(
            done, total, f"Scoring customers: batch {index + 1} of {run.batches_total}", force=True
        )
    artifact = artifact_load(run.pk)
    rules = rules_for_artifact(run.rules, artifact.item_index())
    ids = artifact.customer_ids
    lo = int(np.searchsorted(ids, batch.first_customer_id, side="left"))
    hi = int(np.searchsorted(ids, batch.last_customer_id, side="right"))
    lists = customer_lists(artifact, np.arange(lo, hi), rules)
    with transaction.atomic():
        locked = ModelRunBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.done:
            return 0  # another copy of this batch won
        # Share-locked: a concurrent end (cancel, failure) waits until these rows are in,
        # then deletes them; an end that came first is seen here.
        if _run_status_shared(run.pk) != ModelRun.Status.SCORING:
            return 0
        customers = _customers_to_write(ids[lo:hi], batch)
        rows = [row for row in lists.rows if row.customer_id in customers]
        Recommendation.objects.filter(
            run=run,
            customer_id__gte=batch.first_customer_id,
            customer_id__lte=batch.last_customer_id,
        ).delete()
        written = recommendations_write(run_id=run.pk, catalog_id=run.catalog_id, rows=rows)
        ModelRunBatch.objects.filter(pk=batch.pk).update(
            done=True, rows=written, runs=F("runs") + 1, finished_at=timezone.now()
        )
    if run.job_id is not None:
        done, total, batches = _progress(run)
        Job.objects.filter(pk=run.job_id, status=Job.Status.RUNNING).update(
            progress_done=Greatest(F("progress_done"), Value(done)),
            message=f"Scored {batches:,} of {run.batches_total:,} customer batches",
            heartbeat_at=timezone.now(),
        )
    return written


# --------------------------------------------------------------------------- finish


def model_run_finish(*, run_id: int) -> None:
    """The chord's callback: segment lists, flip to current, job succeeded (idempotent)."""
    run = ModelRun.objects.filter(pk=run_id).select_related("catalog").first()
    if run is None or run.status != ModelRun.Status.SCORING:
        return
    try:
        with job_heartbeat(run.job_id) if run.job_id else contextlib.nullcontext():
            _finish(run)
    except JobCancelled:
        _end(run.pk, ModelRun.Status.CANCELLED)
        if run.job_id:
            job_mark_cancelled(job_id=run.job_id)
    except (ModelRunError, ArtifactMissing) as exc:
        model_run_fail(run_id=run.pk, error=str(exc))
    except SoftTimeLimitExceeded:
        model_run_fail(run_id=run.pk, error=TIME_LIMIT_ERROR)
    except OperationalError:
        raise  # the task retries
    except Exception as exc:
        _log_unexpected("finishing model run", run.pk, exc)
        model_run_fail(
            run_id=run.pk,
            error=f"Unexpected error ({type(exc).__name__}); the current recommendations "
            "were not changed.",
        )


def _finish(run: ModelRun) -> None:
    if run.job_id is not None:
        done, total, _ = _progress(run)
        ProgressReporter(run.job_id, monotonic=True)(
            done, total, "Writing segment lists", force=True
        )
    missing = ModelRunBatch.objects.filter(run=run, done=False).count()
    if missing:
        raise ModelRunError(f"{missing} customer batch(es) were not scored.")
    artifact = artifact_load(run.pk)
    rules = rules_for_artifact(run.rules, artifact.item_index())
    rows = segment_lists(artifact, rules, catalog_id=run.catalog_id)
    ended_job, retire = None, False
    with transaction.atomic():
        if not Catalog.objects.select_for_update().filter(pk=run.catalog_id).exists():
            return  # the catalog (and with it this run) is being deleted
        locked = ModelRun.objects.select_for_update().filter(pk=run.pk).first()
        if locked is None or locked.status != ModelRun.Status.SCORING:
            return
        if run.job_id is not None:
            job_status = Job.objects.filter(pk=run.job_id).values_list("status", flat=True).first()
            if job_status != Job.Status.RUNNING:
                ended_job = job_status  # the job ended meanwhile: the run follows it
        if ended_job is None:
            # After the locks: an erasure that committed before them is seen here; one that
            # commits later retires the file itself (see retention).
            retire = erased_in(artifact.customer_ids)
            _switch(run, locked, rows)
    if ended_job is not None:
        cancelled = ended_job == Job.Status.CANCELLED
        _end(run.pk, ModelRun.Status.CANCELLED if cancelled else ModelRun.Status.FAILED)
        return
    if retire:
        artifact_retire(run_id=run.pk, reason=ERASURE_RETIRED)
    model_runs_prune(catalog_id=run.catalog_id)
    analyze_after_commit(Recommendation)  # the new run's rows in, the old run's gone


def _switch(run: ModelRun, locked: ModelRun, rows: list) -> None:
    """The finish's writes (in its transaction): segment rows, is_current, the job."""
    Recommendation.objects.filter(run=run, segment__isnull=False).delete()
    segment_rows = recommendations_write(run_id=run.pk, catalog_id=run.catalog_id, rows=rows)
    customer_rows = ModelRunBatch.objects.filter(run=run).aggregate(n=Sum("rows"))["n"] or 0
    customers = Recommendation.objects.filter(run=run, customer__isnull=False).values("customer_id")
    n_customers = customers.order_by().distinct().count()
    n_segments = len({r.segment_id for r in rows})
    ModelRun.objects.filter(catalog_id=run.catalog_id, is_current=True).exclude(pk=run.pk).update(
        is_current=False
    )
    ModelRun.objects.filter(pk=run.pk).update(
        status=ModelRun.Status.SUCCEEDED,
        is_current=True,
        finished_at=timezone.now(),
        customers=n_customers,
        recommendations=customer_rows + segment_rows,
        segments=n_segments,
    )
    if run.job_id is not None:
        total = Job.objects.filter(pk=run.job_id).values_list("progress_total", flat=True)
        result = {
            "run_id": run.pk,
            "algorithm": locked.selected_algorithm,
            "customers": n_customers,
            "segments": n_segments,
            "recommendations": customer_rows + segment_rows,
            "batches": locked.batches_total,
            "scoring": locked.scoring_mode,
        }
        job_succeed(
            job_id=run.job_id,
            result=result,
            done=total.first() or None,
            message=f"Recommended to {n_customers:,} customers and {n_segments:,} "
            f"segments with {locked.selected_algorithm}",
        )


# ----------------------------------------------------------------------- end, prune


def model_run_fail(*, run_id: int | None = None, job_id: int | None = None, error: str) -> None:
    """Fail the run and its job (a run already ended keeps its outcome); delete its rows."""
    if run_id is None and job_id is not None:
        run_id = ModelRun.objects.filter(job_id=job_id).values_list("pk", flat=True).first()
    if run_id is not None:
        if job_id is None:
            job_id = ModelRun.objects.filter(pk=run_id).values_list("job_id", flat=True).first()
        _end(run_id, ModelRun.Status.FAILED)
    if job_id is not None:
        job_fail(job_id=job_id, error=error)


def _end(run_id: int, status: str) -> None:
    """End an active run as failed or cancelled and remove what it wrote."""
    ended = ModelRun.objects.filter(pk=run_id, status__in=ModelRun.ACTIVE).update(
        status=status, finished_at=timezone.now()
    )
    if ended:
        Recommendation.objects.filter(run_id=run_id).delete()
        artifact_delete(run_id)


def model_runs_prune(*, catalog_id: int) -> int:
    """Delete the rows and artifacts of the catalog's runs that are neither current nor
    active (superseded, failed, cancelled); their ModelRun rows stay. Then delete model
    files no run needs (any catalog's: see `artifacts_orphaned_delete`). Returns runs
    pruned. Readers never see a half-pruned run: they read through the current one."""
    pruned = 0
    has_rows = Exists(Recommendation.objects.filter(run_id=OuterRef("pk")))
    stale = (
        ModelRun.objects.filter(catalog_id=catalog_id, is_current=False)
        .exclude(status__in=ModelRun.ACTIVE)
        .filter(~Q(artifact="") | has_rows)
    )
    for run_id in stale.values_list("pk", flat=True):
        Recommendation.objects.filter(run_id=run_id).delete()
        artifact_delete(run_id)
        ModelRun.objects.filter(pk=run_id).update(artifact="")
        pruned += 1
    artifacts_orphaned_delete()
    return pruned


# ------------------------------------------------------------------------------ sweep


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)


def model_runs_sweep(*, catalog_id: int | None = None) -> int:
    """Resume the chord-mode runs whose batches stopped: the job is delegated (its own
    task has returned) and no batch reported for JOB_STALE_AFTER_S (its chord was lost, or
    the workers died). Each resume resends the batches not yet done (or the finish alone)
    and counts in ``Job.params["resumes"]`` — not in attempts; after MAX_JOB_ATTEMPTS
    resumes the run and its job fail instead. Runs of ``catalog_id`` only, or all.
    Returns the runs resumed or failed."""
    runs = ModelRun.objects.filter(
        status=ModelRun.Status.SCORING,
        job__status=Job.Status.RUNNING,
        job__params__has_key=DELEGATED,
    ).filter(Q(job__heartbeat_at__lt=_stale_before()) | Q(job__heartbeat_at__isnull=True))
    if catalog_id is not None:
        runs = runs.filter(catalog_id=catalog_id)
    swept = 0
    for run_id, job_id in list(runs.values_list("pk", "job_id")):
        swept += _run_resume(run_id, job_id)
    return swept


def _run_resume(run_id: int, job_id: int) -> int:
    failed = False
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status=Job.Status.RUNNING)
            .filter(Q(heartbeat_at__lt=_stale_before()) | Q(heartbeat_at__isnull=True))
            .first()
        )
        if (
            job is None
            or not ModelRun.objects.filter(pk=run_id, status=ModelRun.Status.SCORING).exists()
        ):
            return 0  # it moved on meanwhile
        resumes = int((job.params or {}).get("resumes", 0))
        if resumes >= settings.MAX_JOB_ATTEMPTS:
            failed = True
        else:
            job.params = {**(job.params or {}), "resumes": resumes + 1}
            job.heartbeat_at = timezone.now()
            job.message = "The scoring batches stopped; sending the missing ones again"
            job.save(update_fields=["params", "heartbeat_at", "message"])
            transaction.on_commit(lambda: _dispatch(run_id))
    if failed:
        logger.warning("model run %s: batches stalled %s times; failing it", run_id, resumes)
        model_run_fail(
            run_id=run_id,
            error=f"Scoring stopped: its customer batches made no progress, also after being "
            f"sent again {resumes} times. The current recommendations were not changed.",
        )
    else:
        logger.warning("model run %s: batches stalled; resending the missing ones", run_id)
    return 1
