"""Random search, evaluation and the whole comparison protocol, on small synthetic data."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from recommendations.algorithms.base import Dataset, Recommender
from recommendations.algorithms.popular import MostPopular, RecentPopular, SegmentPopular
from recommendations.algorithms.registry import ALGORITHMS, get
from recommendations.evaluation.splits import build_split
from recommendations.evaluation.tuning import (
    ModelResult,
    SearchResult,
    Trial,
    compare,
    evaluate,
    one_se_choice,
    random_search,
    select_best,
)


def synthetic_frame(n_users: int = 80, n_items: int = 40, seed: int = 0) -> pd.DataFrame:
    """Skewed popularity, 2-5 shopping days per user over a month."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    weights /= weights.sum()
    rows = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for user in range(n_users):
        for day in sorted(rng.choice(30, size=int(rng.integers(2, 6)), replace=False)):
            for item in rng.choice(n_items, size=int(rng.integers(1, 5)), replace=False, p=weights):
                rows.append((f"u{user}", f"i{item}", start + pd.Timedelta(days=int(day))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


FRAME = synthetic_frame()


class Choice(Recommender):
    """Popularity when good=True, reversed popularity otherwise (a known best point)."""

    name = "choice"
    defaults = {"good": False}
    space = {"good": [False, True]}

    def _fit(self, data: Dataset, on_progress) -> None:
        self.pop = np.asarray((data.matrix > 0).sum(axis=0), dtype=np.float32).ravel()
        if not self.params["good"]:
            self.pop = -self.pop

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.pop, (len(users), 1))


class Fragile(Choice):
    """Fails for good=True: the failure is logged, the search goes on."""

    name = "fragile"

    def _fit(self, data: Dataset, on_progress) -> None:
        if self.params["good"]:
            raise ValueError("boom")
        super()._fit(data, on_progress)


class Spy(MostPopular):
    """Records the number of interactions of every dataset it is fitted on."""

    name = "spy"
    defaults = {"x": 0}
    space = {"x": ("int", 0, 1000)}
    fitted_on: list[int] = []

    def _fit(self, data: Dataset, on_progress) -> None:
        Spy.fitted_on.append(len(data.events))
        super()._fit(data, on_progress)


@pytest.fixture(scope="module")
def split():
    return build_split(FRAME, "lastday")


def test_defaults_only_when_the_space_is_empty_or_the_budget_is_zero(split):
    result = random_search(MostPopular, split, budget_s=60, k=5)
    assert [t.params for t in result.trials] == [{}]
    assert result.best_params == {} and result.metric == "ndcg@5"
    result = random_search(RecentPopular, split, budget_s=0, seed=1)
    assert [t.params for t in result.trials] == [{}]  # always at least the default trial


def test_search_samples_the_space_and_keeps_the_best(split):
    result = random_search(RecentPopular, split, budget_s=60, max_trials=4, seed=3, se_rule=0)
    assert len(result.trials) == 4 and result.trials[0].params == {}
    assert all(3.0 <= t.params["half_life_days"] <= 365.0 for t in result.trials[1:])
    assert result.best_score == max(t.score for t in result.trials)
    again = random_search(RecentPopular, split, budget_s=60, max_trials=4, seed=3)
    assert [t.params for t in again.trials] == [t.params for t in result.trials]  # seeded


def test_search_stops_when_a_choice_space_is_exhausted(split):
    result = random_search(Choice, split, budget_s=60, seed=0)
    assert len(result.trials) == 2  # defaults (good=False) + good=True; repeats skipped
    assert result.best_params == {"good": True}


def test_failed_trials_are_logged_not_fatal(split):
    result = random_search(Fragile, split, budget_s=60, seed=0)
    failed = [t for t in result.trials if t.error]
    assert len(failed) == 1 and "boom" in failed[0].error and math.isnan(failed[0].score)
    assert result.best_params == {}


def test_search_can_score_a_sample_of_users(split):
    result = random_search(MostPopular, split, budget_s=1, max_users=5)
    assert not math.isnan(result.best_score)


def test_tuning_metric_must_be_accuracy(split):
    with pytest.raises(ValueError):
        random_search(MostPopular, split, budget_s=1, metric="coverage@10")


def test_evaluate_fitted_models(split):
    model = MostPopular().fit(split.train)
    out = evaluate({"popular": model}, split, (5, 10))
    metrics = out["popular"].metrics
    assert {"ndcg@5", "recall@10", "coverage@5", "diversity@10"} <= set(metrics)
    assert out["popular"].score_s >= 0


def test_compare_tunes_on_validation_and_refits_on_train():
    Spy.fitted_on.clear()
    result = compare([Spy], FRAME, budget_s=60, max_trials=3, k=5)
    train_rows, val_rows = result.info["train_rows"], result.validation_info["train_rows"]
    assert val_rows < train_rows
    # Three tuning fits on the validation train, then one refit on the full train.
    assert Spy.fitted_on == [val_rows, val_rows, val_rows, train_rows]
    model = result.models["spy"]
    assert len(model.search.trials) == 3 and "ndcg@5" in model.metrics


def test_compare_skips_unmet_needs_and_reports_json():
    names = ("popular", "popular_recent", "popular_segment", "buy_again")
    result = compare({n: ALGORITHMS[n] for n in names}, FRAME, budget_s=0.5, k=5, buy_again=True)
    assert result.skipped == {"popular_segment": "needs user_features"}
    assert set(result.models) == {"popular", "popular_recent"}
    # A model that recommends seen items is scored on repeat purchases, apart from the rest.
    assert set(result.repeat_models) == {"buy_again"}
    assert result.best in result.models
    report = result.to_dict()
    json.dumps(report, allow_nan=False)
    assert report["split"] == "lastday" and report["selected"] in result.models
    entry = report["models"]["popular"]
    assert {"ndcg@5", "recall@10", "map@5", "hr@5", "coverage@5", "fit_s", "score_s"} <= set(entry)
    assert entry["params"] == {} and "buy_again" in entry
    assert report["buy_again_reference"]["hr@5"] > 0
    assert report["buy_again_models"]["buy_again"]["hr@5"] > 0
    assert "buy_again" not in report["models"] and report["best"] != "buy_again"


def test_compare_per_segment_with_user_features_and_global_split():
    users = pd.DataFrame(
        {"segment": ["A" if int(u[1:]) % 2 else "B" for u in FRAME.user_id.unique()]},
        index=FRAME.user_id.unique(),
    )
    result = compare(
        [SegmentPopular],
        FRAME,
        split="global",
        cutoff=0.8,
        budget_s=0.5,
        k=5,
        user_features=users,
    )
    assert "cutoff" in result.info
    table = result.models["popular_segment"].by_segment
    assert set(table.index) <= {"A", "B"} and "ndcg@5" in table.columns
    assert table["users"].sum() == result.info["scored_users"]


def test_compare_with_an_explicit_test_frame():
    cut = pd.Timestamp("2024-01-25", tz="UTC")
    train, test = FRAME[FRAME.timestamp < cut], FRAME[FRAME.timestamp >= cut]
    result = compare([MostPopular], train, test=test, budget_s=0.5, k=5)
    assert result.split == "explicit"
    assert result.validation_info["test_rows"] + result.validation_info["train_rows"] == len(train)


def _result(name, validation, test, per_user=None, cost_s=None):
    """A model's result; with per_user (its validation metric per user, on the same users
    for every model) and cost_s (its best trial's fit + scoring seconds)."""
    trials = [] if cost_s is None else [Trial({}, validation, cost_s / 2, cost_s / 2)]
    users = None if per_user is None else np.arange(len(per_user))
    search = SearchResult(name, "ndcg@10", {}, validation, trials, 0.0, users, per_user)
    return ModelResult(name, {}, {"ndcg@10": test}, 0.0, 0.0, search)


def test_select_best_uses_validation_never_test():
    results = [_result("a", 0.30, 0.10), _result("b", 0.20, 0.50), _result("c", math.nan, 0.9)]
    assert select_best(results) == "a"


def _per_user(rng, mean: float, n: int = 400) -> np.ndarray:
    """Binary hits with the given hit rate (a per-user metric with realistic noise)."""
    return (rng.random(n) < mean).astype(np.float64)


def test_select_best_prefers_a_much_cheaper_model_within_one_standard_error():
    rng = np.random.default_rng(0)
    best = _per_user(rng, 0.30)
    close = best.copy()
    # Worse for 6 users, better for 4: a net shortfall well within the noise.
    close[np.flatnonzero(best)[:6]] = 0.0
    close[np.flatnonzero(best == 0)[:4]] = 1.0
    results = [
        _result("neural", best.mean(), 0.5, best, cost_s=20.0),
        _result("graph", close.mean(), 0.1, close, cost_s=0.5),
    ]
    diff = best - close
    assert diff.mean() <= diff.std(ddof=1) / math.sqrt(len(diff))
    assert select_best(results) == "graph"
    assert select_best(results, se_rule=0) == "neural"  # plain highest validation score


def test_select_best_keeps_a_lead_larger_than_the_noise_whatever_it_costs():
    rng = np.random.default_rng(1)
    best = _per_user(rng, 0.30)
    worse = best.copy()
    worse[np.flatnonzero(best)[:40]] = 0.0  # 40 of 400 users: many standard errors
    results = [
        _result("cheap", worse.mean(), 0.9, worse, cost_s=0.1),
        _result("neural", best.mean(), 0.1, best, cost_s=60.0),
    ]
    assert select_best(results) == "neural"


def test_select_best_without_comparable_per_user_scores_takes_the_highest_score():
    rng = np.random.default_rng(2)
    best = _per_user(rng, 0.30)
    results = [
        _result("neural", best.mean(), 0.1, best, cost_s=20.0),
        _result("no_scores", best.mean() - 1e-6, 0.1, None, cost_s=0.1),
        _result("other_users", best.mean() - 1e-6, 0.1, best[:-1], cost_s=0.1),
    ]
    assert select_best(results) == "neural"


class Padded(Choice):
    """Choice with a ``pad`` that only costs time (the lists are the same)."""

    name = "padded"
    defaults = {"good": True, "pad": True}
    space = {"good": [True], "pad": [True, False]}

    def _fit(self, data: Dataset, on_progress) -> None:
        if self.params["pad"]:
            time.sleep(0.05)
        super()._fit(data, on_progress)


def test_search_keeps_the_cheapest_of_the_trials_the_validation_cannot_tell_apart(split):
    result = random_search(Padded, split, budget_s=60, seed=0)
    assert [t.params for t in result.trials] == [{}, {"good": True, "pad": False}]
    assert result.trials[0].score == result.trials[1].score
    assert result.best_params == {"good": True, "pad": False} and result.best_index == 1
    assert result.cost_s < 0.05 <= result.trials[0].fit_s
    plain = random_search(Padded, split, budget_s=60, seed=0, se_rule=0)
    assert plain.best_params == {} and plain.best_index == 0  # the first of equal scores


def test_one_se_choice_needs_per_user_scores_to_pass_over_the_leader():
    worse = np.array([1.0, 0.0, 1.0, 0.0])
    leader = np.array([1.0, 1.0, 1.0, 0.0])
    assert one_se_choice([0.75, 0.5], [9.0, 1.0], [leader, worse]) == 1  # 1 user of 4
    assert one_se_choice([0.75, 0.5], [9.0, 1.0], [leader, None]) == 0
    assert one_se_choice([0.75, 0.5], [9.0, math.nan], [leader, worse]) == 0
    assert one_se_choice([math.nan, math.nan], [1.0, 1.0], [None, None]) is None


def test_search_keeps_the_best_trials_scores_per_user_for_the_selection(split):
    result = random_search(RecentPopular, split, budget_s=60, max_trials=4, seed=3)
    assert np.array_equal(result.users, split.users)
    assert len(result.best_per_user) == len(split.users)
    assert np.nanmean(result.best_per_user) == pytest.approx(result.best_score)
    assert result.cost_s == pytest.approx(result.best_trial.fit_s + result.best_trial.score_s)
    assert result.best_trial.params == result.best_params


def test_registry_lists_the_popular_models():
    assert get("popular") is MostPopular
    assert all(name == cls.name for name, cls in ALGORITHMS.items())
    with pytest.raises(KeyError, match="known"):
        get("nope")


class Vocabless(Choice):
    """Raises what gensim raises on an empty vocabulary (neither a value nor an
    arithmetic error) for good=True."""

    name = "vocabless"

    def _fit(self, data: Dataset, on_progress) -> None:
        if self.params["good"]:
            raise RuntimeError("you must first build vocabulary before training the model")
        super()._fit(data, on_progress)


class TimeUp(Exception):
    """Stands for Celery's SoftTimeLimitExceeded (an Exception the core cannot import)."""


class Stopped(Choice):
    name = "stopped"

    def _fit(self, data: Dataset, on_progress) -> None:
        raise TimeUp()


def test_a_trial_that_raises_anything_fails_alone_unless_told_to_reraise(split):
    result = random_search(Vocabless, split, budget_s=60, seed=0)
    failed = [t for t in result.trials if t.error]
    assert len(failed) == 1 and failed[0].error.startswith("RuntimeError: you must first")
    assert result.best_params == {}
    # The whole comparison goes on too (the CLI used to crash here).
    assert "vocabless" in compare([Vocabless], FRAME, budget_s=60, k=5).models

    assert random_search(Stopped, split, budget_s=1).trials[0].error.startswith("TimeUp")
    with pytest.raises(TimeUp):
        random_search(Stopped, split, budget_s=1, reraise=(TimeUp,))
    with pytest.raises(TimeUp):
        compare([Stopped], FRAME, budget_s=1, k=5, reraise=(TimeUp,))


def test_user_features_from_a_function_see_only_each_training_period():
    """Features derived from purchases (an RFM segment) must come from the split's own
    training data: computed on all of it, they would show tuning the held-out days."""
    seen: list[pd.DataFrame] = []

    def segments(train: pd.DataFrame) -> pd.DataFrame:
        seen.append(train)
        last = train.groupby("user_id")["timestamp"].max()
        recent = last >= train["timestamp"].max() - pd.Timedelta(days=7)
        return pd.DataFrame({"segment": np.where(recent, "recent", "lapsed")}, index=last.index)

    result = compare(
        [SegmentPopular], FRAME, budget_s=0.5, max_trials=1, k=5, user_features=segments
    )
    outer_train, validation_train = seen
    assert len(outer_train) == result.info["train_rows"]
    assert len(validation_train) == result.validation_info["train_rows"]
    # Each customer's held-out (last) day is in neither frame the features were built from.
    last_day = FRAME["timestamp"].dt.floor("D").groupby(FRAME["user_id"]).transform("max")
    held_out = FRAME[
        (FRAME["timestamp"] >= last_day)
        & (FRAME.groupby("user_id")["timestamp"].transform("min") < last_day)
    ]
    keys = set(zip(held_out.user_id, held_out.item_id, held_out.timestamp, strict=True))
    for frame in seen:
        assert not keys & set(zip(frame.user_id, frame.item_id, frame.timestamp, strict=True))
    assert len(validation_train) < len(outer_train) < len(FRAME)
    table = result.models["popular_segment"].by_segment
    assert set(table.index) <= {"recent", "lapsed"}
