"""Charts of the campaign results pages: a rate per group with its confidence interval as
error bars. Inputs are ``ResultSlice``s from copygen.selectors_results; outputs are
JSON-safe dicts for ``_chart.html`` (rendered by static/js/app.js)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from copygen.experiments import GroupSummary, RateEstimate
from copygen.selectors_results import CONTROL, METRIC_LABELS, OverviewRow, ResultSlice
from marketing.charts import figure_data

_VARIANT_COLOURS = ("#3b5bdb", "#74c0fc", "#7048e8", "#15aabf", "#4263eb")
_CONTROL_COLOUR = "#adb5bd"
_WINNER_COLOUR = "#2b8a3e"


def _pct(value: float) -> float | None:
    return round(value * 100, 3) if math.isfinite(value) else None


def _error_bars(estimates: Sequence[RateEstimate]) -> dict:
    """Asymmetric error bars from the Wilson bounds (percent)."""
    plus = [_pct(e.high - e.rate) if e.trials else None for e in estimates]
    minus = [_pct(e.rate - e.low) if e.trials else None for e in estimates]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


def _hover(estimates: Sequence[RateEstimate], confidence: float) -> list[str]:
    return [
        f"{e.rate:.1%} ({confidence:.0%} CI {e.low:.1%} to {e.high:.1%}), "
        f"{e.successes:,} of {e.trials:,}"
        if e.trials
        else "no recipients"
        for e in estimates
    ]


def _colour(g: GroupSummary, index: int, winner: str | None) -> str:
    if g.is_control or g.name == CONTROL:
        return _CONTROL_COLOUR
    if g.name == winner:
        return _WINNER_COLOUR
    return _VARIANT_COLOURS[index % len(_VARIANT_COLOURS)]


def rate_figure(slices: Sequence[ResultSlice], *, metric: str, title: str = "") -> dict:
    """The metric's rate per group with its interval. One slice: one bar per group (the
    suggested winner in green, control in grey). Several slices: the slices along the
    x axis, one series of bars per group."""
    label = METRIC_LABELS[metric]
    if len(slices) == 1:
        summary = slices[0].summary
        groups = summary.groups
        estimates = [getattr(g, metric) for g in groups]
        traces = [
            go.Bar(
                x=[g.name for g in groups],
                y=[_pct(e.rate) for e in estimates],
                error_y=_error_bars(estimates),
                marker_color=[_colour(g, i, summary.winner) for i, g in enumerate(groups)],
                customdata=_hover(estimates, summary.confidence),
                hovertemplate="%{x}: %{customdata}<extra></extra>",
                showlegend=False,
            )
        ]
    else:
        names: list[str] = []
        for s in slices:
            names += [g.name for g in s.summary.groups if g.name not in names]
        names.sort(key=lambda n: (n == CONTROL, n))
        traces = []
        for i, name in enumerate(names):
            shown = [
                (s.label, g)
                for s in slices
                for g in s.summary.groups
                if g.name == name and g.recipients
            ]
            estimates = [getattr(g, metric) for _, g in shown]
            confidence = slices[0].summary.confidence
            traces.append(
                go.Bar(
                    name=name,
                    x=[label_ for label_, _ in shown],
                    y=[_pct(e.rate) for e in estimates],
                    error_y=_error_bars(estimates),
                    marker_color=_CONTROL_COLOUR
                    if name == CONTROL
                    else _VARIANT_COLOURS[i % len(_VARIANT_COLOURS)],
                    customdata=_hover(estimates, confidence),
                    hovertemplate=f"{name}, %{{x}}: %{{customdata}}<extra></extra>",
                )
            )
    fig = go.Figure(traces)
    fig.update_layout(
        barmode="group",
        height=320,
        title=title or None,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    fig.update_yaxes(title_text=f"{label} (%)", ticksuffix="%", rangemode="tozero")
    return figure_data(fig)


_METRIC_COLOURS = {"open": "#74c0fc", "click": "#3b5bdb", "conversion": "#2b8a3e"}


def overview_figure(rows: Sequence[OverviewRow]) -> dict:
    """Open, click and conversion rate per channel (or brief), with their intervals."""
    traces = []
    for metric, colour in _METRIC_COLOURS.items():
        estimates = [getattr(r.estimates, metric) for r in rows]
        traces.append(
            go.Bar(
                name=METRIC_LABELS[metric],
                x=[r.label for r in rows],
                y=[_pct(e.rate) for e in estimates],
                error_y=_error_bars(estimates),
                marker_color=colour,
                customdata=_hover(estimates, 0.95),
                hovertemplate=f"%{{x}}, {METRIC_LABELS[metric].lower()}: %{{customdata}}"
                "<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    fig.update_layout(
        barmode="group",
        height=320,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    fig.update_yaxes(title_text="Rate (%)", ticksuffix="%", rangemode="tozero")
    return figure_data(fig)
