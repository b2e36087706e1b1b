"""Tuning and comparison: time-budgeted random search on a validation split, then the whole
offline protocol (``compare``).

Protocol of ``compare``:

1. outer split of the frame (last day per customer, a global cutoff, or an explicit
   train/test pair) → train, test;
2. a validation split carved from train only, the same way (explicit pairs: by last day);
3. per algorithm, random search on validation: the defaults first, then random points of
   the algorithm's ``space`` until its time budget is spent;
4. refit the best parameters on the full train; score the test lists (fit_s, score_s);
5. ``best`` = the highest test metric — for the report only. The product's automatic choice
   is ``select_best``, which looks at validation scores only, so test never steers a choice.

Choices are cost-aware, by the one-standard-error rule (Breiman et al., *Classification and
Regression Trees*, 1984; Hastie et al., *The Elements of Statistical Learning*, §7.10), both
between the trials of one algorithm's search (``random_search``) and between algorithms
(``select_best``): the best validation score is the reference; a candidate whose mean
per-customer shortfall against it, on the same validation customers, is within one standard
error of that paired difference is as good as the data can tell; among those the cheapest
to fit and score on validation is chosen (`one_se_choice`). A neural re-ranker that beats a
graph walk by less than the validation noise, at twenty times its cost, is not chosen — a
real lead, larger than the noise, still is. Within a search this also counters the winner's
curse: the top score of many noisy trials is partly luck, and luck must not buy a costlier
configuration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommendations.algorithms.base import Progress, Recommender, sample_params

from .scoring import ListScores, history_topk, metric_k, score_buy_again, score_lists
from .splits import EvalSplit, global_cutoff, make_split, split_frame, split_validation

# Random search stops after this many consecutive already-tried samples (small spaces).
_MAX_REPEATS = 50
# How many standard errors of the paired per-user difference a cheaper choice may trail the
# best validation score by (module docstring); 0 = always the best score.
SE_RULE = 1.0
# Trials whose per-user scores a search keeps for the rule: the best ones by score.
_KEPT_PER_USER = 50

# User features computed from a training frame (see `compare`).
UserFeatures = Callable[[pd.DataFrame], pd.DataFrame | None]


@dataclass(frozen=True)
class Trial:
    params: dict[str, Any]
    score: float  # NaN when the trial failed
    fit_s: float
    score_s: float
    error: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """best_params: the parameters to refit with (constructor keyword arguments; {} =
    defaults), or None when every trial failed. trials: in order, defaults first.
    The chosen trial ("best") is the one-standard-error choice (module docstring), not
    always the highest score. users / best_per_user: the validation users scored and the
    chosen trial's metric for each of them (for `select_best`; None when not recorded).
    best_index: the chosen trial's position in ``trials`` (None: the highest score)."""

    algorithm: str
    metric: str
    best_params: dict[str, Any] | None
    best_score: float
    trials: list[Trial]
    elapsed_s: float
    users: np.ndarray | None = field(default=None, repr=False)
    best_per_user: np.ndarray | None = field(default=None, repr=False)
    best_index: int | None = None

    @property
    def best_trial(self) -> Trial | None:
        """The trial best_params come from, None if all failed."""
        if self.best_index is not None:
            return self.trials[self.best_index]
        scored = [t for t in self.trials if not math.isnan(t.score)]
        return max(scored, key=lambda t: t.score) if scored else None  # first of ties

    @property
    def cost_s(self) -> float:
        """Fit + scoring seconds of the best trial on validation (NaN when unknown)."""
        best = self.best_trial
        return best.fit_s + best.score_s if best is not None else float("nan")


def missing_needs(algorithm_cls: type[Recommender], split: EvalSplit) -> list[str]:
    """The Dataset parts ``algorithm_cls.needs`` that the split's training data lacks."""
    return [n for n in algorithm_cls.needs if getattr(split.train, n, None) is None]


def _sample_users(users: np.ndarray, max_users: int | None, seed: int) -> np.ndarray:
    if max_users is None or len(users) <= max_users:
        return users
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(users, size=max_users, replace=False))


def _run_trial(
    algorithm_cls: type[Recommender],
    params: dict[str, Any],
    split: EvalSplit,
    users: np.ndarray,
    k: int,
    metric: str,
    seed: int,
    reraise: tuple[type[BaseException], ...] = (),
) -> tuple[Trial, np.ndarray | None]:
    """One fit + score: (the trial, its metric per user — None when it failed). Any error
    of the model (gensim's RuntimeError on an empty vocabulary, a LinAlgError, …) fails
    only this trial, recorded with its message; ``reraise`` lists exceptions that must stop
    the search instead (a caller's time limit: the core cannot name Celery's
    SoftTimeLimitExceeded, which is an Exception)."""
    at = metric_k(metric)
    try:
        started = time.perf_counter()
        model = algorithm_cls(seed=seed, **params).fit(split.train)
        fitted = time.perf_counter()
        if algorithm_cls.recommends_seen:
            top = model.recommend(users, max(k, at), exclude=False)
            scored = time.perf_counter()
            result = score_buy_again(top.items, split, users, k_values=(at,))
        else:
            top = model.recommend(users, max(k, at))
            scored = time.perf_counter()
            result = score_lists(top.items, split, users, k_values=(at,), beyond=False)
    except Exception as error:
        if reraise and isinstance(error, reraise):
            raise
        failed = Trial(dict(params), float("nan"), 0.0, 0.0, f"{type(error).__name__}: {error}")
        return failed, None
    trial = Trial(dict(params), result.metrics[metric], fitted - started, scored - fitted)
    return trial, result.per_user.get(metric)


def random_search(
    algorithm_cls: type[Recommender],
    split: EvalSplit,
    *,
    budget_s: float,
    k: int = 10,
    metric: str | None = None,
    seed: int = 0,
    max_trials: int | None = None,
    max_users: int | None = None,
    on_progress: Progress | None = None,
    reraise: tuple[type[BaseException], ...] = (),
    se_rule: float = SE_RULE,
) -> SearchResult:
    """Random search of ``algorithm_cls.space`` on ``split`` (a VALIDATION split).

    Models that recommend seen items (``recommends_seen``) are scored on repeat purchases.

    The defaults are always tried first. Another trial starts only while the time spent plus
    the mean trial time stays within ``budget_s`` (so the budget is rarely overrun by more
    than one trial), ``max_trials`` is not reached and the space still yields untried
    points. A trial whose model raises is recorded with the error and skipped (except the
    ``reraise`` exceptions, which propagate).
    k: list length; metric: what is maximised (default ndcg@k; any accuracy metric@k).
    max_users: score a random sample of that many validation users (seeded) to save time.
    on_progress(elapsed whole seconds, budget whole seconds) after each trial.
    se_rule: the trial kept is `one_se_choice`'s (0 = the highest score).
    """
    metric = metric or f"ndcg@{k}"
    if metric.split("@")[0] not in ("ndcg", "recall", "precision", "map", "hr"):
        raise ValueError(f"tuning metric must be an accuracy metric, got {metric!r}")
    rng = np.random.default_rng(seed)
    # Buy-again models are tuned on the users with repeat purchases (see Recommender).
    pool = split.repeat_users if algorithm_cls.recommends_seen else split.users
    users = _sample_users(pool, max_users, seed)
    started = time.perf_counter()
    trials: list[Trial] = []
    per_user: list[np.ndarray | None] = []  # kept for the best _KEPT_PER_USER trials
    seen: set[str] = set()
    candidate: dict[str, Any] | None = {}
    repeats = 0
    while candidate is not None:
        key = repr(sorted({**algorithm_cls.defaults, **candidate}.items()))
        if key in seen:
            repeats += 1
        else:
            repeats = 0
            seen.add(key)
            trial, values = _run_trial(
                algorithm_cls, candidate, split, users, k, metric, seed, reraise
            )
            trials.append(trial)
            per_user.append(None if values is None else values.astype(np.float32))
            _forget_all_but_best(trials, per_user, _KEPT_PER_USER)
            if on_progress is not None:
                elapsed = time.perf_counter() - started
                on_progress(min(int(elapsed), int(budget_s)), int(budget_s))
        elapsed = time.perf_counter() - started
        mean_trial = elapsed / max(len(trials), 1)
        if (
            not algorithm_cls.space
            or repeats >= _MAX_REPEATS
            or (max_trials is not None and len(trials) >= max_trials)
            or elapsed + mean_trial > budget_s
        ):
            candidate = None
        else:
            candidate = sample_params(algorithm_cls.space, rng)
    index = one_se_choice(
        [t.score for t in trials], [t.fit_s + t.score_s for t in trials], per_user, se_rule
    )
    best = trials[index] if index is not None else None
    return SearchResult(
        algorithm=algorithm_cls.name,
        metric=metric,
        best_params=dict(best.params) if best else None,
        best_score=best.score if best else float("nan"),
        trials=trials,
        elapsed_s=time.perf_counter() - started,
        users=users,
        best_per_user=per_user[index] if index is not None else None,
        best_index=index,
    )


def _forget_all_but_best(trials: list[Trial], per_user: list, keep: int) -> None:
    """Drop the per-user scores of all but the ``keep`` best-scoring trials (memory: a
    long search of a cheap model runs thousands of trials)."""
    held = [i for i, values in enumerate(per_user) if values is not None]
    if len(held) > keep:
        worst = min(held, key=lambda i: (trials[i].score, -i))
        per_user[worst] = None


def one_se_choice(
    scores: Sequence[float],
    costs: Sequence[float],
    per_user: Sequence[np.ndarray | None],
    se_rule: float = SE_RULE,
) -> int | None:
    """The one-standard-error choice among candidates (module docstring): the index of the
    cheapest candidate whose mean per-user shortfall against the highest score's candidate
    (the first of ties; the "leader") is at most ``se_rule`` standard errors of their paired
    per-user difference. Candidates without per-user values (or of another length) or
    without a finite cost can only be chosen as the leader. Equal costs go to the higher
    score, then to the earlier candidate. None when every score is NaN."""
    valid = [i for i, score in enumerate(scores) if not math.isnan(score)]
    if not valid:
        return None
    leader = max(valid, key=lambda i: (scores[i], -i))
    reference = per_user[leader]
    qualifying = [leader]
    if se_rule > 0 and reference is not None:
        for i in valid:
            values = per_user[i]
            if i == leader or values is None or len(values) != len(reference):
                continue
            if not math.isfinite(costs[i]):
                continue
            diff = np.asarray(reference, np.float64) - np.asarray(values, np.float64)
            diff = diff[~np.isnan(diff)]
            if len(diff) < 2:
                continue
            se = float(diff.std(ddof=1)) / math.sqrt(len(diff))
            if float(diff.mean()) <= se_rule * se:
                qualifying.append(i)

    def preference(i: int) -> tuple[float, float, int]:
        cost = costs[i] if math.isfinite(costs[i]) else math.inf
        return (cost, -scores[i], i)

    return min(qualifying, key=preference)


@dataclass(frozen=True)
class ModelScores:
    scores: ListScores
    score_s: float

    @property
    def metrics(self) -> dict[str, float]:
        return self.scores.metrics


def evaluate(
    models: Mapping[str, Recommender],
    split: EvalSplit,
    k_values: tuple[int, ...] = (10, 20),
    *,
    segments: np.ndarray | None = None,
    users: np.ndarray | None = None,
) -> dict[str, ModelScores]:
    """Score models already fitted on ``split.train`` on the split's targets (all metrics;
    ``score_s`` = time to make the top-k lists, metrics excluded)."""
    users = split.users if users is None else np.asarray(users, dtype=np.int64)
    out: dict[str, ModelScores] = {}
    for name, model in models.items():
        started = time.perf_counter()
        top = model.recommend(users, max(k_values))
        score_s = time.perf_counter() - started
        scores = score_lists(top.items, split, users, k_values=k_values, segments=segments)
        out[name] = ModelScores(scores, score_s)
    return out


@dataclass(frozen=True)
class ModelResult:
    name: str
    params: dict[str, Any]  # full parameters the final model was fitted with
    metrics: dict[str, float]  # on test
    fit_s: float
    score_s: float
    search: SearchResult  # on validation
    by_segment: pd.DataFrame | None = None
    buy_again: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: _json_float(v) for name, v in self.metrics.items()}
        out.update(
            fit_s=round(self.fit_s, 4),
            score_s=round(self.score_s, 4),
            params=_json_params(self.params),
            validation={
                "metric": self.search.metric,
                "score": _json_float(self.search.best_score),
                "cost_s": _json_float(self.search.cost_s),
                "trials": len(self.search.trials),
                "search_s": round(self.search.elapsed_s, 3),
                "failed_trials": sum(t.error is not None for t in self.search.trials),
            },
        )
        if self.by_segment is not None:
            out["segments"] = {
                str(segment): {name: _json_float(v) for name, v in row.items()}
                for segment, row in self.by_segment.to_dict(orient="index").items()
            }
        if self.buy_again is not None:
            out["buy_again"] = {name: _json_float(v) for name, v in self.buy_again.items()}
        return out


@dataclass(frozen=True)
class Comparison:
    split: str
    info: dict[str, Any]
    validation_info: dict[str, Any]
    metric: str
    models: dict[str, ModelResult]
    skipped: dict[str, str] = field(default_factory=dict)
    buy_again_reference: dict[str, float] | None = None
    # Models that recommend seen items, scored on repeat purchases (never "best").
    repeat_models: dict[str, ModelResult] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        """Highest ``metric`` on TEST — for reporting only (see select_best)."""
        scored = {n: m.metrics.get(self.metric, float("nan")) for n, m in self.models.items()}
        scored = {n: v for n, v in scored.items() if not math.isnan(v)}
        return max(scored, key=scored.get) if scored else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "split": self.split,
            "metric": self.metric,
            "models": {name: result.to_dict() for name, result in self.models.items()},
            "best": self.best,
            "selected": select_best(self.models.values()),
            "skipped": dict(self.skipped),
            "info": _json_params(self.info),
            "validation_info": _json_params(self.validation_info),
        }
        if self.repeat_models:
            out["buy_again_models"] = {
                name: result.to_dict() for name, result in self.repeat_models.items()
            }
        if self.buy_again_reference is not None:
            out["buy_again_reference"] = {
                name: _json_float(v) for name, v in self.buy_again_reference.items()
            }
        return out


def select_best(results: Sequence[ModelResult] | Any, *, se_rule: float = SE_RULE) -> str | None:
    """The model to use in production, from VALIDATION scores only (never test): the
    one-standard-error choice (`one_se_choice`, module docstring) over the models' chosen
    trials — the cheapest model (`SearchResult.cost_s`: fit + scoring of its trial on
    validation) whose per-user validation metric trails the best model's by at most
    ``se_rule`` standard errors of the paired difference, on the same validation users.
    Models without per-user scores can only win with the best score; ties go to the first
    model in the given order; se_rule=0 picks the highest validation score."""
    results = list(results)
    if not results:
        return None
    scores = [r.search.best_score for r in results]
    valid = [i for i, score in enumerate(scores) if not math.isnan(score)]
    if not valid:
        return None
    leader = results[max(valid, key=lambda i: (scores[i], -i))].search
    per_user = [
        r.search.best_per_user
        if r.search.users is not None
        and leader.users is not None
        and np.array_equal(r.search.users, leader.users)
        else None
        for r in results
    ]
    index = one_se_choice(scores, [r.search.cost_s for r in results], per_user, se_rule)
    return results[index].name if index is not None else None


def compare(
    algorithms: Mapping[str, type[Recommender]] | Sequence[type[Recommender]],
    frame: pd.DataFrame,
    *,
    split: str = "lastday",
    test: pd.DataFrame | None = None,
    cutoff: float | str | pd.Timestamp | None = None,
    budget_s: float = 30.0,
    k: int = 10,
    seed: int = 0,
    max_trials: int | None = None,
    max_tuning_users: int | None = None,
    item_features: pd.DataFrame | None = None,
    user_features: pd.DataFrame | UserFeatures | None = None,
    segment_column: str = "segment",
    buy_again: bool = False,
    on_progress: Progress | None = None,
    reraise: tuple[type[BaseException], ...] = (),
) -> Comparison:
    """Run the whole offline protocol (module docstring) for each algorithm.

    frame: all interactions (split by ``split``: "lastday" or "global" with ``cutoff``), or
        the training interactions when ``test`` is given (an explicit split; validation is
        then carved from ``frame`` by last day).
    budget_s: random-search time budget PER ALGORITHM. k: lists are scored at k and 2k;
        tuning and ``best`` use ndcg@k. Algorithms whose ``needs`` the data cannot meet are
        listed in ``skipped`` with the reason.
    user_features: indexed by user id; or a function of a training frame returning them,
        called with each split's own training frame (the outer train, then validation's),
        so that features derived from purchases (an RFM segment) never include the
        held-out days: features computed on all the data would let tuning see the future.
    segment_column: column of user_features used for the per-segment breakdown.
    reraise: exceptions a trial must not swallow (see `_run_trial`).
    buy_again: also score each model's unfiltered lists (exclude=False) on the repeat
        targets, and a "history frequency" reference.
    on_progress(algorithms done, algorithms total).
    """
    if isinstance(algorithms, Mapping):
        classes = dict(algorithms)
    else:
        classes = {cls.name: cls for cls in algorithms}
    metric = f"ndcg@{k}"
    k_values = (k, 2 * k)
    if test is not None:
        name, train, test_frame, inner = "explicit", frame, test, "lastday"
    else:
        train, test_frame = split_frame(frame, split, cutoff)
        name, inner = split, split
    inner_cutoff = cutoff if isinstance(cutoff, float) else None
    val_train, val_test = split_validation(train, inner, inner_cutoff)
    info = {"cutoff": str(global_cutoff(frame, cutoff))} if name == "global" else {}
    outer = make_split(
        train,
        test_frame,
        name=name,
        info=info,
        item_features=item_features,
        user_features=_user_features(user_features, train),
    )
    validation = make_split(
        val_train,
        val_test,
        name=f"validation-{inner}",
        item_features=item_features,
        user_features=_user_features(user_features, val_train),
    )
    segments = _segments(outer, segment_column)

    models: dict[str, ModelResult] = {}
    repeat_models: dict[str, ModelResult] = {}
    skipped: dict[str, str] = {}
    for done, (algo_name, cls) in enumerate(classes.items()):
        missing = missing_needs(cls, outer)
        tuning_users = validation.repeat_users if cls.recommends_seen else validation.users
        if missing:
            skipped[algo_name] = f"needs {', '.join(missing)}"
        elif len(tuning_users) == 0:
            skipped[algo_name] = "no validation users with targets"
        elif cls.recommends_seen and len(outer.repeat_users) == 0:
            skipped[algo_name] = "no test users with repeat purchases"
        else:
            search = random_search(
                cls,
                validation,
                budget_s=budget_s,
                k=k,
                metric=metric,
                seed=seed,
                max_trials=max_trials,
                max_users=max_tuning_users,
                reraise=reraise,
            )
            if search.best_params is None:
                skipped[algo_name] = f"every trial failed: {search.trials[0].error}"
            elif cls.recommends_seen:
                repeat_models[algo_name] = _final_repeat(cls, search, outer, k_values, seed)
            else:
                models[algo_name] = _final(cls, search, outer, k_values, seed, segments, buy_again)
        if on_progress is not None:
            on_progress(done + 1, len(classes))
    reference = None
    if (buy_again or repeat_models) and len(outer.repeat_users):
        top = history_topk(outer.train, outer.repeat_users, max(k_values))
        reference = score_buy_again(top.items, outer, outer.repeat_users, k_values=k_values).metrics
    return Comparison(
        name,
        outer.info,
        validation.info,
        metric,
        models,
        skipped,
        buy_again_reference=reference,
        repeat_models=repeat_models,
    )


def _user_features(
    user_features: pd.DataFrame | UserFeatures | None, train: pd.DataFrame
) -> pd.DataFrame | None:
    return user_features(train) if callable(user_features) else user_features


def _segments(split: EvalSplit, column: str) -> np.ndarray | None:
    features = split.train.user_features
    if features is None or column not in features:
        return None
    return features[column].fillna("").astype(str).to_numpy()


def _final(
    cls: type[Recommender],
    search: SearchResult,
    split: EvalSplit,
    k_values: tuple[int, ...],
    seed: int,
    segments: np.ndarray | None,
    buy_again: bool,
) -> ModelResult:
    started = time.perf_counter()
    model = cls(seed=seed, **(search.best_params or {})).fit(split.train)
    fit_s = time.perf_counter() - started
    scored = evaluate({cls.name: model}, split, k_values, segments=segments)[cls.name]
    repeat = None
    if buy_again and len(split.repeat_users):
        users = split.repeat_users
        top = model.recommend(users, max(k_values), exclude=False)
        repeat = score_buy_again(top.items, split, users, k_values=k_values).metrics
    by_segment = scored.scores.by_segment
    if by_segment is not None:
        keep = ["users"] + [c for c in by_segment.columns if c.endswith(f"@{k_values[0]}")]
        by_segment = by_segment[keep]
    return ModelResult(
        name=cls.name,
        params=dict(model.params),
        metrics=scored.metrics,
        fit_s=fit_s,
        score_s=scored.score_s,
        search=search,
        by_segment=by_segment,
        buy_again=repeat,
    )


def _final_repeat(
    cls: type[Recommender],
    search: SearchResult,
    split: EvalSplit,
    k_values: tuple[int, ...],
    seed: int,
) -> ModelResult:
    """A buy-again model refitted on train and scored on the test's repeat purchases."""
    started = time.perf_counter()
    model = cls(seed=seed, **(search.best_params or {})).fit(split.train)
    fit_s = time.perf_counter() - started
    users = split.repeat_users
    started = time.perf_counter()
    top = model.recommend(users, max(k_values), exclude=False)
    score_s = time.perf_counter() - started
    metrics = score_buy_again(top.items, split, users, k_values=k_values).metrics
    return ModelResult(
        name=cls.name,
        params=dict(model.params),
        metrics=metrics,
        fit_s=fit_s,
        score_s=score_s,
        search=search,
    )


def _json_float(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[str(name)] = value if isinstance(value, str | int | float | bool | None) else str(value)
    return out
