"""Statistics of campaign results: rates, uplift, tests and a cautious winner (no Django).

The Django side aggregates imported results per group with SQL (counts, SUM(revenue),
SUM(revenue²)), builds ``GroupCounts`` and calls ``summarize``; every result is a frozen
dataclass with ``to_dict()`` for JSON and charts.
"""

from copygen.experiments.stats import (
    MeanEstimate,
    RateEstimate,
    TestResult,
    Uplift,
    holm,
    prob_to_beat,
    rate_estimate,
    revenue_per_recipient,
    revenue_per_recipient_from_sums,
    revenue_uplift,
    revenue_uplift_from_sums,
    sample_size_two_proportions,
    two_proportion_test,
    uplift,
    wilson_interval,
)
from copygen.experiments.summary import (
    METRICS,
    Comparison,
    GroupCounts,
    GroupSummary,
    Summary,
    WinnerRule,
    summarize,
)

__all__ = [
    "METRICS",
    "Comparison",
    "GroupCounts",
    "GroupSummary",
    "MeanEstimate",
    "RateEstimate",
    "Summary",
    "TestResult",
    "Uplift",
    "WinnerRule",
    "holm",
    "prob_to_beat",
    "rate_estimate",
    "revenue_per_recipient",
    "revenue_per_recipient_from_sums",
    "revenue_uplift",
    "revenue_uplift_from_sums",
    "sample_size_two_proportions",
    "summarize",
    "two_proportion_test",
    "uplift",
    "wilson_interval",
]
