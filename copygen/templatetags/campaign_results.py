"""Display filters of the campaign results pages: rates, intervals, differences in
percentage points, p-values and probabilities, written the way the summary's reasons write
them (copygen.experiments.summary), with "—" wherever a figure is unknown (NaN)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django import template

register = template.Library()

DASH = "—"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _percent(rate: float) -> str:
    value = rate * 100
    return f"{value:.1f}%" if abs(value) >= 1 or value == 0 else f"{value:.2f}%"


@register.filter
def pct(value: Any) -> str:
    """A rate as a percentage: 0.153 -> "15.3%", 0.004 -> "0.40%"."""
    rate = _number(value)
    return DASH if rate is None else _percent(rate)


@register.filter
def rate_ci(estimate: Any) -> str:
    """A RateEstimate's interval: "10.5% to 20.7%"."""
    low, high = _number(getattr(estimate, "low", None)), _number(getattr(estimate, "high", None))
    if low is None or high is None:
        return DASH
    return f"{_percent(low)} to {_percent(high)}"


@register.filter
def money(value: Any) -> str:
    """An amount with two decimals and thousands separators."""
    amount = _number(value)
    return DASH if amount is None else f"{amount:,.2f}"


@register.filter
def mean_ci(estimate: Any) -> str:
    """A MeanEstimate's interval: "0.42 to 1.37"."""
    low, high = _number(getattr(estimate, "low", None)), _number(getattr(estimate, "high", None))
    if low is None or high is None:
        return DASH
    return f"{low:,.2f} to {high:,.2f}"


@register.filter
def pts(value: Any) -> str:
    """A difference of rates in percentage points, signed: -0.1 -> "−10.0 pts"."""
    diff = _number(value)
    if diff is None:
        return DASH
    digits = 1 if abs(diff * 100) >= 0.1 or diff == 0 else 2
    return f"{diff * 100:+.{digits}f} pts".replace("-", "−")


def _interval(test: Any, shown: Callable[[float], str]) -> str:
    """A TestResult's interval of the difference, each end ``shown``, with a true minus."""
    low = _number(getattr(test, "diff_low", None))
    high = _number(getattr(test, "diff_high", None))
    if low is None or high is None:
        return DASH
    return f"{shown(low)} to {shown(high)}".replace("-", "−")


@register.filter
def pts_ci(test: Any) -> str:
    """A TestResult's interval of the difference, in points: "−17.8 to −2.0"."""
    return _interval(test, lambda x: f"{x * 100:+.1f}")


@register.filter
def signed_pct(value: Any) -> str:
    """A relative change: 0.667 -> "+66.7%"."""
    change = _number(value)
    return DASH if change is None else f"{change * 100:+.1f}%".replace("-", "−")


@register.filter
def signed_money(value: Any) -> str:
    amount = _number(value)
    return DASH if amount is None else f"{amount:+,.2f}".replace("-", "−")


@register.filter
def money_ci(test: Any) -> str:
    """A revenue TestResult's interval of the difference: "−0.40 to +1.20"."""
    return _interval(test, lambda x: f"{x:+,.2f}")


@register.filter
def pvalue(value: Any) -> str:
    p = _number(value)
    if p is None:
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@register.filter
def prob(value: Any) -> str:
    """A probability: ">99.9%", "97%", "<0.1%"."""
    p = _number(value)
    if p is None:
        return DASH
    if p > 0.999:
        return ">99.9%"
    if p < 0.001:
        return "<0.1%"
    return f"{p:.1%}" if p >= 0.99 or p <= 0.01 else f"{p:.0%}"
