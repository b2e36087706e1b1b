"""Campaign-result statistics against hand-computed values (arithmetic in the comments).

z_{0.975} = 1.959964, z² = 3.841459, z_{0.8} = 0.841621 throughout.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from copygen.experiments import (
    GroupCounts,
    WinnerRule,
    holm,
    prob_to_beat,
    rate_estimate,
    revenue_per_recipient,
    revenue_per_recipient_from_sums,
    revenue_uplift,
    revenue_uplift_from_sums,
    sample_size_two_proportions,
    summarize,
    two_proportion_test,
    uplift,
    wilson_interval,
)

# -- Wilson ---------------------------------------------------------------------------------


def test_wilson_10_of_100():
    # p = 0.1, z²/n = 0.0384146, denom = 1.0384146
    # centre = (0.1 + 0.0192073) / 1.0384146 = 0.114797
    # half = 1.959964 / 1.0384146 · √(0.1·0.9/100 + 3.841459/40000)
    #      = 1.887458 · √0.00099604 = 1.887458 · 0.0315601 = 0.059569
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.0552, abs=5e-5)
    assert high == pytest.approx(0.1744, abs=5e-5)


def test_wilson_bounds_are_exact_at_0_and_all():
    # 0/10: centre = half = (3.841459/20) / 1.3841459 = 0.138766 -> (0, 0.27753)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    # 10/10 mirrors it: (1 − 0.27753, 1)
    assert wilson_interval(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)


def test_wilson_without_trials_is_nan():
    low, high = wilson_interval(0, 0)
    assert math.isnan(low) and math.isnan(high)
    assert math.isnan(rate_estimate(0, 0).rate)


@pytest.mark.parametrize(
    ("successes", "trials", "message"),
    [(-1, 10, "must not be negative"), (11, 10, "must not exceed"), (1.5, 10, "whole number")],
)
def test_wilson_rejects_bad_counts(successes, trials, message):
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, trials)


# -- two proportions ----------------------------------------------------------------------


def test_two_proportion_z_test():
    # 30/200 = 0.15 vs 20/200 = 0.10: pooled 50/400 = 0.125
    # se = √(0.125 · 0.875 · (1/200 + 1/200)) = √0.00109375 = 0.0330719
    # z = 0.05 / 0.0330719 = 1.51186; p = 2 · (1 − Φ(1.51186)) = 0.13057
    result = two_proportion_test(30, 200, 20, 200)
    assert result.diff == pytest.approx(0.05)
    assert result.statistic == pytest.approx(1.5119, abs=1e-4)
    assert result.p_value == pytest.approx(0.1306, abs=1e-4)
    # Newcombe: Wilson 30/200 = (0.107136, 0.206056), 20/200 = (0.065670, 0.149406)
    # low  = 0.05 − √((0.15 − 0.107136)² + (0.149406 − 0.10)²) = 0.05 − 0.065408 = −0.015408
    # high = 0.05 + √((0.206056 − 0.15)² + (0.10 − 0.065670)²) = 0.05 + 0.065733 = 0.115733
    assert result.diff_low == pytest.approx(-0.0154, abs=1e-4)
    assert result.diff_high == pytest.approx(0.1157, abs=1e-4)


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Stat Med 17:873, table II example (a): 56/70 − 48/80, method 10
    result = two_proportion_test(56, 70, 48, 80)
    assert result.diff == pytest.approx(0.2)
    assert (result.diff_low, result.diff_high) == (
        pytest.approx(0.0524, abs=1e-4),
        pytest.approx(0.3339, abs=1e-4),
    )


def test_two_proportion_degenerate_counts_do_not_raise():
    empty = two_proportion_test(0, 0, 3, 10)
    assert empty.p_value == 1.0 and math.isnan(empty.diff) and math.isnan(empty.statistic)
    nothing = two_proportion_test(0, 100, 0, 100)  # pooled se = 0
    assert (nothing.statistic, nothing.p_value, nothing.diff) == (0.0, 1.0, 0.0)
    assert nothing.diff_low < 0 < nothing.diff_high  # Newcombe still has a width


def test_two_proportion_rejects_bad_counts():
    with pytest.raises(ValueError, match=r"group 2 successes \(5\) must not exceed trials \(4\)"):
        two_proportion_test(1, 10, 5, 4)
    with pytest.raises(ValueError, match="group 1 trials must not be negative"):
        two_proportion_test(0, -1, 0, 4)


# -- Holm, uplift, sample size ------------------------------------------------------------


def test_holm():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # 2·0.5 = 1.0, then max(1.0, 0.6): capped and monotone
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    # NaN stays NaN and does not count: m = 2 -> 2·0.01, max(0.02, 0.04)
    adjusted = holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert holm([]) == []
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])


def test_uplift():
    lift = uplift(0.05, 0.04)
    assert lift.absolute == pytest.approx(0.01)
    assert lift.relative == pytest.approx(0.25)  # 0.05 / 0.04 − 1
    assert math.isnan(uplift(0.05, 0.0).relative)


def test_sample_size_two_proportions():
    # 0.10 vs 0.15: p̄ = 0.125, √(2·0.125·0.875) = 0.467707, √(0.09 + 0.1275) = 0.466369
    # (1.959964·0.467707 + 0.841621·0.466369)² / 0.05² = (0.916688 + 0.392506)² / 0.0025
    # = 1.713989 / 0.0025 = 685.6 -> 686 per group
    assert sample_size_two_proportions(0.10, 0.15) == 686
    assert sample_size_two_proportions(0.15, 0.10) == 686
    assert sample_size_two_proportions(0.1, 0.1) is None


# -- probability to beat ------------------------------------------------------------------


def test_prob_to_beat_symmetric_is_one_half():
    assert prob_to_beat(5, 10, 5, 10) == pytest.approx(0.5, abs=1e-12)
    assert prob_to_beat(0, 0, 0, 0) == pytest.approx(0.5, abs=1e-12)  # prior only


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Beta(2,1) vs Beta(1,1): ∫ 2x · x dx = 2/3
        ((1, 1, 0, 0), 2 / 3),
        # Beta(1,1) vs Beta(1,2): ∫ 1 − (1 − x)² dx = 1 − 1/3 = 2/3
        ((0, 0, 0, 1), 2 / 3),
        # Beta(2,1) vs Beta(1,2): ∫ 2x (2x − x²) dx = 4/3 − 1/2 = 5/6
        ((1, 1, 0, 1), 5 / 6),
        # and the other way round: 1 − 5/6
        ((0, 1, 1, 1), 1 / 6),
    ],
)
def test_prob_to_beat_small_integrals(counts, expected):
    assert prob_to_beat(*counts) == pytest.approx(expected, abs=1e-12)


def _monte_carlo(s_a, n_a, s_b, n_b, prior=(1, 1), draws=200_000):
    rng = np.random.default_rng(20240501)
    a = rng.beta(prior[0] + s_a, prior[1] + n_a - s_a, draws)
    b = rng.beta(prior[0] + s_b, prior[1] + n_b - s_b, draws)
    return float((a > b).mean())


@pytest.mark.parametrize("prior", [(1, 1), (0.5, 0.5)])  # closed form, then quad
def test_prob_to_beat_agrees_with_monte_carlo(prior):
    exact = prob_to_beat(30, 200, 20, 200, prior=prior)
    assert exact == pytest.approx(_monte_carlo(30, 200, 20, 200, prior), abs=0.005)
    assert 0.9 < exact < 0.95


def test_prob_to_beat_paths_agree_and_are_deterministic():
    closed = prob_to_beat(30, 200, 20, 200)
    assert prob_to_beat(30, 200, 20, 200, prior=(1 + 1e-9, 1.0)) == pytest.approx(closed, 1e-6)
    assert prob_to_beat(30, 200, 20, 200) == closed
    assert prob_to_beat(20, 200, 30, 200) == pytest.approx(1 - closed, abs=1e-12)


def test_prob_to_beat_clear_and_large_cases():
    assert prob_to_beat(40, 100, 3, 100) > 0.99
    # 1M recipients each, 5.0% vs 4.9%: normal approximation z = 0.001 / √(2·0.05·0.95/1e6)
    # = 3.244 -> Φ = 0.99941 (closed form, 49k terms)
    assert prob_to_beat(50_000, 10**6, 49_000, 10**6) == pytest.approx(0.99941, abs=1e-4)
    # 30.0% vs 29.9%: too many terms for the sum, integrated; z = 0.001 / √(2·0.3·0.7/1e6)
    # = 1.543 -> Φ = 0.9386
    assert prob_to_beat(300_000, 10**6, 299_000, 10**6) == pytest.approx(0.9386, abs=1e-3)


def test_prob_to_beat_rejects_bad_input():
    with pytest.raises(ValueError, match="prior"):
        prob_to_beat(1, 2, 1, 2, prior=(0, 1))
    with pytest.raises(ValueError, match="must not exceed"):
        prob_to_beat(3, 2, 1, 2)


# -- revenue --------------------------------------------------------------------------------

TREATMENT = [0.0, 0.0, 6.0, 10.0]  # mean 4, Σ(x−4)² = 16+16+4+36 = 72, var 72/3 = 24
CONTROL = [0.0, 2.0, 4.0]  # mean 2, Σ(x−2)² = 4+0+4 = 8, var 8/2 = 4


def test_revenue_per_recipient():
    # se = √(24/4) = 2.449490, t_{0.975, 3} = 3.182446 -> 4 ± 7.795370
    estimate = revenue_per_recipient(TREATMENT)
    assert estimate.mean == 4.0
    assert (estimate.low, estimate.high) == (
        pytest.approx(-3.79537, abs=1e-5),
        pytest.approx(11.79537, abs=1e-5),
    )
    # the same from SQL aggregates: n = 4, Σx = 16, Σx² = 36 + 100 = 136
    assert revenue_per_recipient_from_sums(4, 16.0, 136.0) == estimate
    assert math.isnan(revenue_per_recipient([7.0]).low)
    assert math.isnan(revenue_per_recipient([]).mean)


def test_revenue_uplift_welch():
    # v1 = 24/4 = 6, v2 = 4/3 = 1.333333, se = √7.333333 = 2.708013
    # t = (4 − 2) / 2.708013 = 0.738549
    # df = 7.333333² / (6²/3 + 1.333333²/2) = 53.777778 / 12.888889 = 4.172414
    result = revenue_uplift(TREATMENT, CONTROL)
    assert result.diff == 2.0
    assert result.statistic == pytest.approx(0.738549, abs=1e-6)
    assert result.df == pytest.approx(4.172414, abs=1e-6)
    reference = stats.ttest_ind(TREATMENT, CONTROL, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, abs=1e-12)
    half = stats.t.ppf(0.975, 4.172414) * 2.708013
    assert result.diff_low == pytest.approx(2 - half, abs=1e-5)
    assert result.diff_high == pytest.approx(2 + half, abs=1e-5)
    # from sums: (n, Σx, Σx²) = (4, 16, 136) and (3, 6, 20)
    assert revenue_uplift_from_sums((4, 16.0, 136.0), (3, 6.0, 20.0)).p_value == pytest.approx(
        result.p_value
    )


def test_revenue_degenerate_and_invalid():
    none = revenue_uplift([0.0] * 5, [0.0] * 5)  # nobody bought anything
    assert (none.diff, none.p_value) == (0.0, 1.0)
    tiny = revenue_uplift([5.0], [0.0, 1.0])
    assert tiny.p_value == 1.0 and math.isnan(tiny.statistic)
    with pytest.raises(ValueError, match="Cauchy"):
        revenue_per_recipient_from_sums(4, 16.0, 10.0)  # Σx² < (Σx)²/n
    with pytest.raises(ValueError, match="finite"):
        revenue_per_recipient([1.0, math.nan])


# -- summarize --------------------------------------------------------------------------------


def _clicks(name, delivered, clicked):
    return GroupCounts(name, sent=delivered + 100, delivered=delivered, clicked=clicked)


def test_clear_winner_against_control():
    groups = [
        _clicks("Control", 2000, 60),  # 3.0 %
        _clicks("Variant A", 2000, 66),  # 3.3 %
        _clicks("Variant B", 2000, 100),  # 5.0 %
    ]
    summary = summarize(groups, control="Control")
    # B vs control: pooled 160/4000 = 0.04, se = √(0.04·0.96·2/2000) = 0.0061968
    #   z = 0.02 / 0.0061968 = 3.2275, p = 0.0012488
    # A vs control: pooled 126/4000 = 0.0315, se = √(0.0315·0.9685·2/2000) = 0.0055234
    #   z = 0.003 / 0.0055234 = 0.5431, p = 0.5870
    # Holm (m = 2): B 2·0.0012488 = 0.0024976; A max(0.5870, 0.0025) = 0.5870
    a, b = summary.comparisons
    assert (a.group, b.group, b.reference) == ("Variant A", "Variant B", "Control")
    assert b.test.statistic == pytest.approx(3.2275, abs=1e-4)
    assert b.p_adjusted == pytest.approx(0.0024976, abs=1e-6)
    assert a.p_adjusted == pytest.approx(0.5870, abs=1e-4)
    assert b.prob_to_beat > 0.99
    assert b.uplift.absolute == pytest.approx(0.02)
    assert b.uplift.relative == pytest.approx(2 / 3)  # 0.05 / 0.03 − 1
    assert summary.winner == "Variant B"
    assert summary.reason.startswith(
        "Variant B: click rate 5.0% vs 3.0% for control, +2.0 pts (95% CI +0.8 to +3.2), "
        "p=0.002 after Holm, probability to beat control"
    )
    # delivered is the denominator when known
    assert summary.groups[0].denominator == "delivered"
    assert summary.groups[0].click.rate == pytest.approx(0.03)


def test_two_variants_beat_control_and_the_note_says_they_are_close():
    groups = [_clicks("Control", 2000, 60), _clicks("A", 2000, 100), _clicks("B", 2000, 98)]
    summary = summarize(groups, control="Control")
    assert summary.winner == "A"
    assert "B also beats control; A is not clearly better than B." in summary.reason


def test_tiny_sample_gives_no_winner_and_says_why():
    groups = [
        GroupCounts("Control", sent=40, clicked=1),  # 2.5 %
        GroupCounts("Variant B", sent=40, clicked=3),  # 7.5 %
    ]
    summary = summarize(groups, control="Control")
    assert summary.winner is None
    assert summary.groups[0].denominator == "sent"
    # 0.075 vs 0.025: p̄ = 0.05, (1.959964·√0.095 + 0.841621·√(0.069375 + 0.024375))²/0.05²
    # = (0.604105 + 0.257695)² / 0.0025 = 297.1 -> 298; 298 − 40 = 258 -> "about 260"
    assert summary.reason == (
        "No winner yet: too few recipients (control 40, Variant B 40); each group needs at "
        "least 100. At 7.5% vs 2.5%, about 260 more recipients per group would be needed to "
        "detect this difference (80% power, alpha 0.05)."
    )


def test_no_winner_when_the_lead_is_not_significant():
    groups = [
        GroupCounts("Control", sent=1000, clicked=30),
        GroupCounts("New", sent=1000, clicked=40),
    ]
    summary = summarize(groups, control="Control")
    assert summary.winner is None
    assert summary.reason.startswith(
        "No winner yet: New leads (click rate 4.0% vs 3.0% for control) but beats control "
        "with probability 89%, below 95%"
    )
    assert "more recipients per group would be needed" in summary.reason


def test_no_winner_with_too_few_events():
    groups = [GroupCounts("Control", sent=200, clicked=0), GroupCounts("New", sent=200, clicked=4)]
    summary = summarize(groups, control="Control")
    assert summary.winner is None
    assert "New has only 4 clicks; a winner needs at least 5." in summary.reason


def test_no_control_compares_the_best_with_the_runner_up():
    groups = [_clicks("A", 2000, 66), _clicks("B", 2000, 100), _clicks("C", 2000, 60)]
    summary = summarize(groups)
    assert summary.control is None
    # every pair, in input order, Holm over all three
    assert [(c.group, c.reference) for c in summary.comparisons] == [
        ("A", "B"),
        ("A", "C"),
        ("B", "C"),
    ]
    assert summary.winner == "B"
    assert summary.reason.startswith("B: click rate 5.0% vs 3.3% for A, +1.7 pts")
    ab = summary.comparisons[0]
    assert ab.test.diff == pytest.approx(-0.017) and ab.prob_to_beat < 0.01


def test_no_control_and_a_tie_has_no_winner():
    groups = [_clicks("A", 2000, 80), _clicks("B", 2000, 80)]
    summary = summarize(groups)
    assert summary.winner is None
    assert summary.reason.startswith("No winner yet: no variant has a higher click rate")


def test_metric_and_rule_are_parameters():
    groups = [
        GroupCounts("Control", sent=500, opened=100, clicked=10, converted=1),
        GroupCounts("New", sent=500, opened=160, clicked=11, converted=2),
    ]
    assert summarize(groups, control="Control", metric="open").winner == "New"
    assert summarize(groups, control="Control", metric="click").winner is None
    strict = WinnerRule(min_recipients=1000)
    assert summarize(groups, control="Control", metric="open", rule=strict).winner is None


def test_zero_deliveries_do_not_crash_and_serialize():
    groups = [
        GroupCounts("Control", sent=100, delivered=0),
        GroupCounts("New", sent=0, revenue_sum=0.0, revenue_sumsq=0.0),
    ]
    summary = summarize(groups, control="Control")
    assert summary.winner is None
    assert "too few recipients (control 0, New 0)" in summary.reason
    assert len(summary.notes) == 2
    data = summary.to_dict()
    json.dumps(data, allow_nan=False)  # NaN became None
    assert data["groups"][0]["click"]["rate"] is None
    assert data["comparisons"][0]["p_adjusted"] == 1.0


def test_single_group_has_nothing_to_compare():
    summary = summarize([_clicks("Only", 5000, 200)])
    assert summary.winner is None and summary.comparisons == ()
    assert summary.reason.startswith("Nothing to compare")


def test_revenue_is_summarized_from_sums():
    groups = [
        GroupCounts("Control", sent=3, revenue_sum=6.0, revenue_sumsq=20.0),
        GroupCounts("New", sent=4, revenue_sum=16.0, revenue_sumsq=136.0),
    ]
    summary = summarize(groups, control="Control")
    assert summary.groups[1].revenue.mean == 4.0
    assert summary.comparisons[0].revenue.statistic == pytest.approx(0.738549, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sent": -1}, "A: sent must not be negative"),
        ({"sent": 10, "delivered": 11}, r"A: delivered \(11\) is more than sent \(10\)"),
        ({"sent": 10, "delivered": 5, "clicked": 6}, r"A: clicked \(6\) is more than delivered"),
        ({"sent": 10, "opened": 11}, r"A: opened \(11\) is more than sent \(10\)"),
        ({"sent": 10, "revenue_sum": 1.0}, "both revenue_sum and revenue_sumsq"),
    ],
)
def test_group_counts_reject_bad_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupCounts("A", **kwargs)


def test_summarize_rejects_bad_arguments():
    groups = [_clicks("A", 200, 10), _clicks("B", 200, 12)]
    with pytest.raises(ValueError, match="not among the groups"):
        summarize(groups, control="Z")
    with pytest.raises(ValueError, match="metric must be one of"):
        summarize(groups, metric="revenue")
    with pytest.raises(ValueError, match="unique"):
        summarize([groups[0], groups[0]])
