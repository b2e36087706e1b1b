"""Campaign results per group (variant or control) and a conservative suggested winner.

Call ``summarize`` once per slice (segment, locale, channel): the slicing is the caller's,
the statistics are the same. Denominators: ``delivered`` when known, else ``sent``. Every
rate is per recipient: open = opened / recipients, click = clicked / recipients (not click-
to-open: image blocking and privacy proxies make opens unreliable), conversion =
converted / recipients. Revenue per recipient counts every recipient, zeros included.

Winner rule (``WinnerRule``), conservative on purpose because a wrong "winner" gets rolled
out to everyone:

(a) every group has at least ``min_recipients`` recipients, and the winner has at least
    ``min_events`` successes on the metric;
(b) with a control group: the variant beats control, rate higher and Holm-adjusted p below
    ``alpha`` (Holm over all variant-vs-control tests). Without one: the best variant
    beats every other variant that way (Holm over all pairwise tests, so picking the best
    after seeing the data is covered);
(c) the posterior probability that it beats control (without control: each other
    variant) is at least ``min_prob``.

Among the variants that pass, the one with the highest rate is suggested. Revenue is
reported (Welch) but never picks a winner: with few buyers one large order decides it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from copygen.experiments.stats import (
    MeanEstimate,
    RateEstimate,
    Record,
    TestResult,
    Uplift,
    check_count,
    holm,
    moments_from_sums,
    prob_to_beat,
    rate_estimate,
    revenue_per_recipient_from_sums,
    revenue_uplift_from_sums,
    sample_size_two_proportions,
    two_proportion_test,
    uplift,
)

METRICS = ("open", "click", "conversion")
_EVENTS = {"open": "opens", "click": "clicks", "conversion": "conversions"}


@dataclass(frozen=True)
class GroupCounts:
    """One group's totals, cheap to aggregate in SQL.

    ``delivered`` is None when the campaign tool does not report it; the denominator is
    then ``sent``. Clicks may exceed opens (blocked tracking pixels), so that is not
    checked. ``revenue_sum`` / ``revenue_sumsq`` are SUM(revenue) and SUM(revenue²) over
    the same recipients (None when no revenue was imported).
    """

    name: str
    sent: int
    delivered: int | None = None
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    revenue_sum: float | None = None
    revenue_sumsq: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a group needs a name")
        sent = check_count(f"{self.name}: sent", self.sent)
        if self.delivered is not None:
            delivered = check_count(f"{self.name}: delivered", self.delivered)
            if delivered > sent:
                raise ValueError(f"{self.name}: delivered ({delivered}) is more than sent ({sent})")
        n = self.recipients
        for attr in ("opened", "clicked", "converted"):
            value = check_count(f"{self.name}: {attr}", getattr(self, attr))
            if value > n:
                raise ValueError(
                    f"{self.name}: {attr} ({value}) is more than {self.denominator} ({n})"
                )
        if (self.revenue_sum is None) != (self.revenue_sumsq is None):
            raise ValueError(f"{self.name}: give both revenue_sum and revenue_sumsq, or neither")
        if self.revenue_sum is not None:
            try:
                moments_from_sums(n, self.revenue_sum, self.revenue_sumsq)
            except ValueError as exc:
                raise ValueError(f"{self.name}: revenue: {exc}") from None

    @property
    def denominator(self) -> str:
        """Which count the rates divide by: "delivered" when known, else "sent"."""
        return "sent" if self.delivered is None else "delivered"

    @property
    def recipients(self) -> int:
        return int(self.sent if self.delivered is None else self.delivered)

    def successes(self, metric: str) -> int:
        return int(
            {"open": self.opened, "click": self.clicked, "conversion": self.converted}[metric]
        )


@dataclass(frozen=True)
class WinnerRule(Record):
    """Thresholds of the winner rule (module docstring). ``power`` is only used for the
    "recipients needed" estimate."""

    alpha: float = 0.05
    min_prob: float = 0.95
    min_recipients: int = 100
    min_events: int = 5
    power: float = 0.8


@dataclass(frozen=True)
class GroupSummary(Record):
    """Per group: the three rates with Wilson intervals and revenue per recipient (t
    interval; NaN when no revenue was imported)."""

    name: str
    is_control: bool
    recipients: int
    denominator: str
    open: RateEstimate
    click: RateEstimate
    conversion: RateEstimate
    revenue: MeanEstimate


@dataclass(frozen=True)
class Comparison(Record):
    """``group`` against ``reference`` on ``metric``: pooled z-test with Newcombe interval
    (test.diff = rate of group − rate of reference), uplift, Holm-adjusted p over the
    summary's family of comparisons, P(group rate > reference rate), and Welch's test of
    revenue per recipient (None unless both groups have revenue). prob_to_beat is NaN when a
    group has no recipients."""

    group: str
    reference: str
    metric: str
    test: TestResult
    uplift: Uplift
    p_adjusted: float
    prob_to_beat: float
    revenue: TestResult | None


@dataclass(frozen=True)
class Summary(Record):
    """Everything the results page shows for one slice. ``comparisons`` holds each variant
    against control, or every pair (in input order) when there is no control. ``winner`` is
    the suggested group name or None; ``reason`` says why, in words for a marketer."""

    metric: str
    control: str | None
    confidence: float
    rule: WinnerRule
    groups: tuple[GroupSummary, ...]
    comparisons: tuple[Comparison, ...]
    winner: str | None
    reason: str
    notes: tuple[str, ...] = field(default=())


def summarize(
    groups: Sequence[GroupCounts],
    *,
    control: str | None = None,
    metric: str = "click",
    confidence: float = 0.95,
    rule: WinnerRule | None = None,
) -> Summary:
    """Rates, revenue, comparisons and a suggested winner (or why there is none)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    rule = rule or WinnerRule()
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"group names must be unique, got {names}")
    if control is not None and control not in names:
        raise ValueError(f"control group {control!r} is not among the groups {names}")

    summaries = tuple(_group_summary(g, g.name == control, confidence) for g in groups)
    by_name = {g.name: g for g in groups}
    if control is None:
        pairs = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1 :]]
    else:
        pairs = [(g, by_name[control]) for g in groups if g.name != control]
    raw = [_compare(a, b, metric, confidence) for a, b in pairs]
    adjusted = holm([c.test.p_value for c in raw])
    comparisons = tuple(
        Comparison(c.group, c.reference, c.metric, c.test, c.uplift, p, c.prob_to_beat, c.revenue)
        for c, p in zip(raw, adjusted, strict=True)
    )
    winner, reason = _decide(list(groups), comparisons, control, metric, rule, confidence)
    notes = tuple(
        f"{g.name} has no recipients: its rates are unknown." for g in groups if not g.recipients
    )
    return Summary(metric, control, confidence, rule, summaries, comparisons, winner, reason, notes)


def _group_summary(g: GroupCounts, is_control: bool, confidence: float) -> GroupSummary:
    n = g.recipients
    if g.revenue_sum is None or g.revenue_sumsq is None:
        revenue = MeanEstimate(n, math.nan, math.nan, math.nan)
    else:
        revenue = revenue_per_recipient_from_sums(
            n, g.revenue_sum, g.revenue_sumsq, confidence=confidence
        )
    return GroupSummary(
        name=g.name,
        is_control=is_control,
        recipients=n,
        denominator=g.denominator,
        open=rate_estimate(g.opened, n, confidence),
        click=rate_estimate(g.clicked, n, confidence),
        conversion=rate_estimate(g.converted, n, confidence),
        revenue=revenue,
    )


def _rate(g: GroupCounts, metric: str) -> float:
    return g.successes(metric) / g.recipients if g.recipients else math.nan


def _compare(a: GroupCounts, b: GroupCounts, metric: str, confidence: float) -> Comparison:
    sa, na, sb, nb = a.successes(metric), a.recipients, b.successes(metric), b.recipients
    test = two_proportion_test(sa, na, sb, nb, confidence=confidence)
    prob = prob_to_beat(sa, na, sb, nb) if na and nb else math.nan
    revenue = None
    if a.revenue_sum is not None and b.revenue_sum is not None:
        revenue = revenue_uplift_from_sums(
            (na, a.revenue_sum, a.revenue_sumsq or 0.0),
            (nb, b.revenue_sum, b.revenue_sumsq or 0.0),
            confidence=confidence,
        )
    lift = uplift(_rate(a, metric), _rate(b, metric))
    return Comparison(a.name, b.name, metric, test, lift, test.p_value, prob, revenue)


@dataclass(frozen=True)
class _Versus:
    """A comparison seen from ``first``'s side."""

    other: GroupCounts
    diff: float
    low: float
    high: float
    p_adjusted: float
    prob: float


def _versus(first: GroupCounts, other: GroupCounts, comparisons: Sequence[Comparison]) -> _Versus:
    for c in comparisons:
        if (c.group, c.reference) == (first.name, other.name):
            t = c.test
            return _Versus(other, t.diff, t.diff_low, t.diff_high, c.p_adjusted, c.prob_to_beat)
        if (c.group, c.reference) == (other.name, first.name):
            t = c.test
            return _Versus(
                other, -t.diff, -t.diff_high, -t.diff_low, c.p_adjusted, 1 - c.prob_to_beat
            )
    raise LookupError(f"no comparison of {first.name} with {other.name}")  # pragma: no cover


def _passes(v: _Versus, rule: WinnerRule) -> bool:
    # NaN compares False, so an undefined test never passes.
    return v.diff > 0 and v.p_adjusted < rule.alpha and v.prob >= rule.min_prob


def _decide(
    groups: list[GroupCounts],
    comparisons: Sequence[Comparison],
    control: str | None,
    metric: str,
    rule: WinnerRule,
    confidence: float,
) -> tuple[str | None, str]:
    if len(groups) < 2:
        return None, "Nothing to compare: a test needs at least two groups."
    candidates = [g for g in groups if g.name != control]
    # Highest rate first; unknown rates last; ties keep input order (sorted is stable).
    candidates.sort(key=lambda g: -_rate(g, metric) if g.recipients else math.inf)
    best = candidates[0]
    if control is not None:
        ref = next(g for g in groups if g.name == control)
        versus = {g.name: [_versus(g, ref, comparisons)] for g in candidates}
    else:
        ref = candidates[1]
        # Closest rival first, so a failure is reported against the runner-up if it fails.
        versus = {best.name: [_versus(best, g, comparisons) for g in candidates[1:]]}

    small = [g for g in groups if g.recipients < rule.min_recipients]
    if small:
        listed = ", ".join(f"{_label(g, control)} {g.recipients:,}" for g in small)
        why = f"too few recipients ({listed}); each group needs at least {rule.min_recipients:,}."
        return None, _no_winner(why, best, ref, control, metric, rule)

    def qualifies(g: GroupCounts) -> bool:
        return (
            g.name in versus
            and g.successes(metric) >= rule.min_events
            and all(_passes(v, rule) for v in versus[g.name])
        )

    passing = [g for g in candidates if qualifies(g)]  # highest rate first
    if passing:
        text = _evidence(passing[0], versus[passing[0].name][0], control, metric, confidence)
        if rest := passing[1:]:
            text += (
                f" {_join([g.name for g in rest])} also beat{'s' if len(rest) == 1 else ''} control"
            )
            close = [g.name for g in rest if not _differs(passing[0], g, metric, rule.alpha)]
            if close:
                text += f"; {passing[0].name} is not clearly better than {_join(close)}"
            text += "."
        return passing[0].name, text

    # No winner: explain for the best candidate, first failing check first.
    events = best.successes(metric)
    if events < rule.min_events:
        why = (
            f"{best.name} has only {events} {_EVENTS[metric]}; a winner needs at least "
            f"{rule.min_events}."
        )
        return None, _no_winner(why, best, ref, control, metric, rule)
    failing = next(v for v in versus[best.name] if not _passes(v, rule))
    rival = _label(failing.other, control)
    label = metric + " rate"
    rates = (
        f"{label} {_pct(_rate(best, metric))} vs {_pct(_rate(failing.other, metric))} for {rival}"
    )
    if not failing.diff > 0:
        what = "control" if control is not None else "the other variants"
        why = f"no variant has a higher {label} than {what} (best: {best.name}, {rates})."
    elif not failing.prob >= rule.min_prob:
        why = (
            f"{best.name} leads ({rates}) but beats {rival} with probability "
            f"{_prob(failing.prob)}, below {rule.min_prob:.0%} ({_p(failing.p_adjusted)} after "
            f"Holm)."
        )
    else:
        why = (
            f"{best.name} leads ({rates}) and beats {rival} with probability "
            f"{_prob(failing.prob)}, but the difference is not significant: "
            f"{_p(failing.p_adjusted)} after Holm, not below {rule.alpha:g}."
        )
    return None, _no_winner(why, best, failing.other, control, metric, rule)


def _differs(a: GroupCounts, b: GroupCounts, metric: str, alpha: float) -> bool:
    """Unadjusted test between two variants that both beat control (a note, not a rule)."""
    test = two_proportion_test(a.successes(metric), a.recipients, b.successes(metric), b.recipients)
    return test.p_value < alpha


def _no_winner(
    why: str,
    best: GroupCounts,
    ref: GroupCounts,
    control: str | None,
    metric: str,
    rule: WinnerRule,
) -> str:
    text = "No winner yet: " + why
    r_best, r_ref = _rate(best, metric), _rate(ref, metric)
    if not r_best > r_ref:
        return text
    needed = sample_size_two_proportions(r_best, r_ref, alpha=rule.alpha, power=rule.power)
    more = (needed or 0) - min(best.recipients, ref.recipients)
    if more > 0:
        text += (
            f" At {_pct(r_best)} vs {_pct(r_ref)}, about {_about(more):,} more recipients per "
            f"group would be needed to detect this difference ({rule.power:.0%} power, "
            f"alpha {rule.alpha:g})."
        )
    return text


def _evidence(
    g: GroupCounts, v: _Versus, control: str | None, metric: str, confidence: float
) -> str:
    rival = _label(v.other, control)
    return (
        f"{g.name}: {metric} rate {_pct(_rate(g, metric))} vs {_pct(_rate(v.other, metric))} for "
        f"{rival}, {_pts(v.diff, v.diff)} ({confidence:.0%} CI {_pts(v.low, v.diff, unit=False)} "
        f"to {_pts(v.high, v.diff, unit=False)}), {_p(v.p_adjusted)} after Holm, "
        f"probability to beat {rival} {_prob(v.prob)}."
    )


def _label(g: GroupCounts, control: str | None) -> str:
    if g.name != control:
        return g.name
    return "control" if g.name.lower() == "control" else f"control ({g.name})"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pct(rate: float) -> str:
    if not math.isfinite(rate):
        return "n/a"
    value = rate * 100
    return f"{value:.1f}%" if value >= 1 or value == 0 else f"{value:.2f}%"


def _pts(diff: float, scale: float, *, unit: bool = True) -> str:
    """Percentage points, signed; two decimals when the difference is below 0.1 pts."""
    digits = 1 if abs(scale * 100) >= 0.1 else 2
    return f"{diff * 100:+.{digits}f}" + (" pts" if unit else "")


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _prob(p: float) -> str:
    if p > 0.999:
        return ">99.9%"
    if p < 0.001:
        return "<0.1%"
    return f"{p:.1%}" if p >= 0.99 or p <= 0.01 else f"{p:.0%}"


def _about(n: int) -> int:
    """Round up to two significant digits: an estimate should not look precise."""
    if n < 100:
        return n
    step = 10 ** (len(str(n)) - 2)
    return math.ceil(n / step) * step
