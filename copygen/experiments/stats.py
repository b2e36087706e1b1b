"""Small, deterministic statistics for campaign results (no Django).

Choices, and why:

* Rates get Wilson score intervals: unlike the textbook Wald interval they stay inside
  [0, 1] and keep near-nominal coverage at the small rates (1-5 %) that clicks and
  conversions have.
* Two rates are compared with the pooled two-proportion z-test (the classic A/B p-value)
  and Newcombe's hybrid score interval for the difference (Newcombe 1998, method 10),
  which behaves at 0 % and 100 % where the Wald interval collapses to a point.
* ``prob_to_beat`` is exact (a closed-form sum for integer Beta parameters, numerical
  integration otherwise), so the same data always give the same number; no Monte Carlo.
* Revenue per recipient uses Welch's t from count, sum and sum of squares. Those three are
  cheap SQL aggregates and make streaming possible; a bootstrap would need every raw value.
  Revenue is mostly zeros with a heavy tail, so with a handful of buyers the interval is
  optimistic; the central limit theorem makes it fine at the hundreds of buyers a real
  campaign has. Nothing decides a winner on revenue (see ``summary``).
* Degenerate input never raises: an empty group gives NaN estimates; a test without
  evidence (an empty group, or both groups at exactly 0 % or 100 %) gives p = 1.
  Invalid input (negative counts, more successes than trials) raises ``ValueError``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import integrate, special, stats

NAN = math.nan

# Closed-form prob_to_beat sums this many terms at most; larger posteriors are integrated.
_EXACT_TERMS_MAX = 200_000


class Record:
    """Mixin for result dataclasses: ``to_dict()`` gives plain JSON-safe values."""

    def to_dict(self) -> dict[str, Any]:
        """Fields as plain values; NaN and infinities become None (JSON has neither)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class RateEstimate(Record):
    """successes / trials with its Wilson interval; rate, low, high are NaN when trials = 0."""

    successes: int
    trials: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class MeanEstimate(Record):
    """A mean with its t interval; NaN when undefined (mean: n = 0, interval: n < 2)."""

    n: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class TestResult(Record):
    """A two-sample comparison of group 1 against group 2.

    statistic: pooled z (proportions) or Welch's t (means); p_value: two-sided;
    diff = estimate 1 − estimate 2 with its interval (diff_low, diff_high);
    df: Welch degrees of freedom, inf for the z-test.
    """

    __test__ = False  # not a pytest test class, despite the name

    statistic: float
    p_value: float
    diff: float
    diff_low: float
    diff_high: float
    df: float


@dataclass(frozen=True)
class Uplift(Record):
    """absolute = treatment − control (for rates: in proportion units, 0.009 = +0.9 pts);
    relative = treatment / control − 1, NaN when the control is 0 or unknown."""

    absolute: float
    relative: float


# -- input checks ---------------------------------------------------------------------------


def check_count(name: str, value: Any) -> int:
    """A non-negative whole number as int, else ValueError naming the field."""
    try:
        number = operator.index(value)
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number


def _check_counts(successes: Any, trials: Any, label: str = "") -> tuple[int, int]:
    s = check_count(f"{label}successes", successes)
    n = check_count(f"{label}trials", trials)
    if s > n:
        raise ValueError(f"{label}successes ({s}) must not exceed trials ({n})")
    return s, n


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2))


# -- proportions ----------------------------------------------------------------------------


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for successes / trials; (nan, nan) when trials = 0 (no data,
    so no interval). The bounds are exactly 0 at 0 successes and 1 at trials successes."""
    s, n = _check_counts(successes, trials)
    z = _z(confidence)
    if n == 0:
        return NAN, NAN
    p = s / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if s == 0 else max(0.0, centre - half)
    high = 1.0 if s == n else min(1.0, centre + half)
    return low, high


def rate_estimate(successes: int, trials: int, confidence: float = 0.95) -> RateEstimate:
    """successes / trials with its Wilson interval, as a record."""
    s, n = _check_counts(successes, trials)
    low, high = wilson_interval(s, n, confidence)
    return RateEstimate(s, n, s / n if n else NAN, low, high)


def two_proportion_test(
    s1: int, n1: int, s2: int, n2: int, *, confidence: float = 0.95
) -> TestResult:
    """Is s1/n1 different from s2/n2? Pooled z-test (two-sided) and Newcombe's hybrid score
    interval for p1 − p2.

    Degenerate cases give no evidence rather than an error: with an empty group the
    difference is undefined (everything NaN, p = 1); when both groups are at exactly 0 %
    or 100 % the pooled standard error is 0, so z = 0 and p = 1 (the rates are equal).
    """
    s1, n1 = _check_counts(s1, n1, "group 1 ")
    s2, n2 = _check_counts(s2, n2, "group 2 ")
    if n1 == 0 or n2 == 0:
        return TestResult(NAN, 1.0, NAN, NAN, NAN, math.inf)
    p1, p2 = s1 / n1, s2 / n2
    diff = p1 - p2
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        z, p_value = 0.0, 1.0
    else:
        z = diff / se
        p_value = float(2 * stats.norm.sf(abs(z)))
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    low = diff - math.hypot(p1 - l1, u2 - p2)
    high = diff + math.hypot(u1 - p1, p2 - l2)
    return TestResult(z, p_value, diff, low, high, math.inf)


def prob_to_beat(
    s_a: int, n_a: int, s_b: int, n_b: int, *, prior: tuple[float, float] = (1.0, 1.0)
) -> float:
    """P(p_a > p_b) with independent Beta(prior + successes, prior + failures) posteriors.

    Exact and deterministic: for integer parameters the closed form (Evan Miller, "Formulas
    for Bayesian A/B testing") summed over the smallest of the four parameters, otherwise
    the integral of pdf_a · cdf_b. With no data both posteriors are the prior (0.5).
    """
    s_a, n_a = _check_counts(s_a, n_a, "group a ")
    s_b, n_b = _check_counts(s_b, n_b, "group b ")
    alpha0, beta0 = (float(v) for v in prior)
    if not (alpha0 > 0 and beta0 > 0 and math.isfinite(alpha0 + beta0)):
        raise ValueError(f"prior parameters must be positive, got {prior!r}")
    a = (alpha0 + s_a, beta0 + n_a - s_a)
    b = (alpha0 + s_b, beta0 + n_b - s_b)
    if all(v.is_integer() for v in (*a, *b)) and min(*a, *b) <= _EXACT_TERMS_MAX:
        return _prob_greater_exact(a, b)
    return _prob_greater_quad(a, b)


def _prob_greater_exact(a: tuple[float, float], b: tuple[float, float]) -> float:
    """P(X > Y), X ~ Beta(*a), Y ~ Beta(*b), integer parameters.

    h(x, y) = Σ_{i<x_α} B(y_α + i, y_β + x_β) / ((x_β + i) B(1 + i, x_β) B(y_α, y_β)) is
    P(X > Y) in x_α terms. By symmetry (1 − X ~ Beta(x_β, x_α)) and complements, the same
    probability costs x_α, y_α, x_β or y_β terms: use the cheapest.
    """
    (xa, xb), (ya, yb) = a, b
    options = [
        (xa, False, (xa, xb, ya, yb)),  # P(X > Y)
        (ya, True, (ya, yb, xa, xb)),  # 1 − P(Y > X)
        (yb, False, (yb, ya, xb, xa)),  # P(1 − Y > 1 − X)
        (xb, True, (xb, xa, yb, ya)),  # 1 − P(1 − X > 1 − Y)
    ]
    _, complement, params = min(options, key=lambda o: o[0])
    p = _miller_sum(*params)
    return float(min(1.0, max(0.0, 1.0 - p if complement else p)))


def _miller_sum(xa: float, xb: float, ya: float, yb: float) -> float:
    i = np.arange(int(xa), dtype=np.float64)
    log_terms = (
        special.betaln(ya + i, yb + xb)
        - np.log(xb + i)
        - special.betaln(1 + i, xb)
        - special.betaln(ya, yb)
    )
    return float(np.exp(special.logsumexp(log_terms)))


def _prob_greater_quad(a: tuple[float, float], b: tuple[float, float]) -> float:
    x, y = stats.beta(*a), stats.beta(*b)
    # Integrate only where X has mass: at large n the posterior is a narrow spike that
    # quad over [0, 1] could step over.
    lo, hi = float(x.ppf(1e-13)), float(x.isf(1e-13))
    value, _ = integrate.quad(
        lambda t: x.pdf(t) * y.cdf(t), lo, hi, points=[x.mean()], limit=200, epsabs=1e-11
    )
    return float(min(1.0, max(0.0, value)))


def sample_size_two_proportions(
    p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Recipients per group for a two-sided two-proportion z-test at level alpha to detect
    p1 vs p2 with the given power (no continuity correction):

    n = (z_{1−α/2} √(2 p̄ q̄) + z_{power} √(p1 q1 + p2 q2))² / (p1 − p2)², rounded up.

    None when the rates are equal or unknown: no sample size detects a zero difference.
    """
    if not (math.isfinite(p1) and math.isfinite(p2)) or p1 == p2:
        return None
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"rates must lie in [0, 1], got {p1} and {p2}")
    z_a = float(stats.norm.isf(alpha / 2))
    z_b = float(stats.norm.ppf(power))
    p_bar = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / (p1 - p2) ** 2)


def uplift(rate_t: float, rate_c: float) -> Uplift:
    """Treatment against control: absolute difference and relative lift."""
    relative = rate_t / rate_c - 1 if rate_c and math.isfinite(rate_c) else NAN
    return Uplift(rate_t - rate_c, relative)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in input order: the i-th smallest of m is
    multiplied by (m − i + 1), made non-decreasing, capped at 1. Compare each with alpha;
    the family-wise error rate stays at most alpha. NaN entries stay NaN and do not count
    in m."""
    values = [float(p) for p in p_values]
    for p in values:
        if not (math.isnan(p) or 0 <= p <= 1):
            raise ValueError(f"p-values must lie in [0, 1], got {p}")
    order = sorted((i for i, p in enumerate(values) if not math.isnan(p)), key=values.__getitem__)
    m = len(order)
    adjusted = [NAN] * len(values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[i]))
        adjusted[i] = running
    return adjusted


# -- means (revenue per recipient) ------------------------------------------------------------


@dataclass(frozen=True)
class _Moments:
    n: int
    mean: float
    var: float  # sample variance (ddof 1); NaN for n < 2


def moments_from_sums(n: int, total: float, total_sq: float) -> _Moments:
    """Mean and sample variance from count, sum and sum of squares (SQL aggregates)."""
    n = check_count("n", n)
    total, total_sq = float(total), float(total_sq)
    if not (math.isfinite(total) and math.isfinite(total_sq)) or total_sq < 0:
        raise ValueError(f"sums must be finite and the sum of squares ≥ 0, got {total}, {total_sq}")
    if n == 0:
        if total or total_sq:
            raise ValueError("n is 0 but the sums are not")
        return _Moments(0, NAN, NAN)
    mean = total / n
    if n < 2:
        return _Moments(n, mean, NAN)
    ss = total_sq - total * mean  # Σ(x − mean)²
    if ss < -1e-9 * max(total_sq, 1.0):
        raise ValueError(
            f"sum of squares {total_sq} is too small for n={n}, sum={total} (Cauchy–Schwarz)"
        )
    return _Moments(n, mean, max(ss, 0.0) / (n - 1))


def _moments(values: Any) -> _Moments:
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError("values must be finite numbers")
    n = len(x)
    mean = float(x.mean()) if n else NAN
    var = float(x.var(ddof=1)) if n >= 2 else NAN
    return _Moments(n, mean, var)


def _mean_estimate(m: _Moments, confidence: float) -> MeanEstimate:
    _z(confidence)  # validates
    if m.n < 2:
        return MeanEstimate(m.n, m.mean, NAN, NAN)
    half = float(stats.t.ppf(0.5 + confidence / 2, m.n - 1)) * math.sqrt(m.var / m.n)
    return MeanEstimate(m.n, m.mean, m.mean - half, m.mean + half)


def _welch(m1: _Moments, m2: _Moments, confidence: float) -> TestResult:
    """Welch's t-test and interval for mean 1 − mean 2. Undefined (n < 2 in a group):
    NaN and p = 1. Both groups constant: p = 1 if the means are equal, else 0."""
    _z(confidence)
    if m1.n < 2 or m2.n < 2:
        diff = m1.mean - m2.mean if m1.n and m2.n else NAN
        return TestResult(NAN, 1.0, diff, NAN, NAN, NAN)
    diff = m1.mean - m2.mean
    v1, v2 = m1.var / m1.n, m2.var / m2.n
    se2 = v1 + v2
    if se2 == 0:
        if diff == 0:
            return TestResult(0.0, 1.0, 0.0, 0.0, 0.0, NAN)
        return TestResult(math.copysign(math.inf, diff), 0.0, diff, diff, diff, NAN)
    df = se2 * se2 / (v1 * v1 / (m1.n - 1) + v2 * v2 / (m2.n - 1))
    se = math.sqrt(se2)
    t = diff / se
    p_value = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return TestResult(t, p_value, diff, diff - half, diff + half, df)


def revenue_per_recipient(values: Any, *, confidence: float = 0.95) -> MeanEstimate:
    """Mean revenue per recipient (zeros included: every recipient counts) with a t
    interval. Why t and not a bootstrap: see the module docstring."""
    return _mean_estimate(_moments(values), confidence)


def revenue_per_recipient_from_sums(
    n: int, total: float, total_sq: float, *, confidence: float = 0.95
) -> MeanEstimate:
    """``revenue_per_recipient`` from SQL aggregates: COUNT, SUM(revenue), SUM(revenue²)
    over all recipients of the group (zeros included)."""
    return _mean_estimate(moments_from_sums(n, total, total_sq), confidence)


def revenue_uplift(treatment: Any, control: Any, *, confidence: float = 0.95) -> TestResult:
    """Welch's t-test and interval for mean revenue per recipient, treatment − control.
    Welch, because the groups' variances differ (one big order changes a variance)."""
    return _welch(_moments(treatment), _moments(control), confidence)


def revenue_uplift_from_sums(
    treatment: tuple[int, float, float],
    control: tuple[int, float, float],
    *,
    confidence: float = 0.95,
) -> TestResult:
    """``revenue_uplift`` from (count, sum, sum of squares) of each group."""
    return _welch(moments_from_sums(*treatment), moments_from_sums(*control), confidence)
