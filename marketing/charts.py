"""Plotly figures travel to the page as JSON data blocks rendered by static/js/app.js."""

from __future__ import annotations

import functools
import json

import plotly.graph_objects as go
from plotly.subplots import make_subplots

_LAYOUT = {
    "margin": {"l": 50, "r": 20, "t": 30, "b": 40},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "system-ui, sans-serif", "size": 12},
}
# Every chart's template. Figures are built without it: assigning a template makes plotly
# validate and deep-copy it, about 10 ms a figure (most of what a chart costs a page), so
# figure_data() adds its JSON, serialised once per process.
TEMPLATE = "plotly_white"


@functools.cache
def _template_json() -> str:
    return json.dumps(
        json.loads(go.Figure(layout={"template": TEMPLATE}).to_json())["layout"]["template"]
    )


def figure_data(fig: go.Figure) -> dict:
    """A JSON-safe dict of the figure (numpy arrays become lists) for `json_script`, in the
    charts' template."""
    fig.update_layout(**_LAYOUT)
    fig.layout.template = None  # not serialised only to be replaced
    data = json.loads(fig.to_json())
    data["layout"]["template"] = json.loads(_template_json())
    return data


# ---------------------------------------------------------------------------------------------
# Dashboard and customer profile charts. Inputs are plain numbers from
# marketing.selectors_profiles; each function returns a JSON-safe dict for `_chart.html`.
# ---------------------------------------------------------------------------------------------

_PURCHASE_COLOUR, _RETURN_COLOUR = "#3b5bdb", "#e67700"


def monthly_value_figure(months, *, currency: str, title: str = "") -> dict:
    """Net value (purchases minus returns) per month as bars, with both parts in the hover."""
    fig = go.Figure(
        go.Bar(
            x=[m.month.isoformat() for m in months],
            y=[round(m.net, 2) for m in months],
            marker_color=_PURCHASE_COLOUR,
            customdata=[[m.purchased, m.returned] for m in months],
            hovertemplate=(
                f"%{{x|%b %Y}}: %{{y:,.2f}} {currency}"
                f"<br>purchases %{{customdata[0]:,.2f}}, returns %{{customdata[1]:,.2f}}"
                "<extra></extra>"
            ),
        )
    )
    fig.update_layout(height=300, title=title or None)
    fig.update_xaxes(type="date", tickformat="%b %Y")
    fig.update_yaxes(title_text=currency)
    return figure_data(fig)


def rf_heatmap_figure(cells, *, currency: str) -> dict:
    """Customers per (R, F) score cell, darker = more; hover adds their net value."""
    counts = [[0] * 5 for _ in range(5)]
    revenue = [[0.0] * 5 for _ in range(5)]
    for cell in cells:
        counts[cell.f_score - 1][cell.r_score - 1] = cell.customers
        revenue[cell.f_score - 1][cell.r_score - 1] = cell.revenue
    text = [
        [
            f"R {r + 1} · F {f + 1}<br>{counts[f][r]:,} customers<br>{revenue[f][r]:,.2f} {currency}"
            for r in range(5)
        ]
        for f in range(5)
    ]
    fig = go.Figure(
        go.Heatmap(
            x=[1, 2, 3, 4, 5],
            y=[1, 2, 3, 4, 5],
            z=counts,
            text=text,
            texttemplate="%{z}",
            hovertemplate="%{text}<extra></extra>",
            colorscale="Blues",
            colorbar={"title": {"text": "Customers"}},
        )
    )
    fig.update_layout(height=340)
    fig.update_xaxes(title_text="Recency score (5 = most recent)", dtick=1)
    fig.update_yaxes(title_text="Frequency score (5 = most orders)", dtick=1)
    return figure_data(fig)


def segment_sizes_figure(sizes: dict[str, int]) -> dict:
    names = list(sizes)[::-1]  # largest at the top of a horizontal bar chart
    fig = go.Figure(
        go.Bar(
            x=[sizes[n] for n in names],
            y=names,
            orientation="h",
            marker_color=_PURCHASE_COLOUR,
            hovertemplate="%{y}: %{x:,} customers<extra></extra>",
        )
    )
    fig.update_layout(height=max(260, 28 * len(names) + 80))
    fig.update_layout(margin={"l": 140})
    return figure_data(fig)


def category_mix_figure(categories: list[dict]) -> dict:
    """Top categories as shares of the customer's purchases (or interest); the rest as "Other"."""
    labels = [c["name"] or "(none)" for c in categories]
    values = [float(c["share"]) for c in categories]
    rest = 1 - sum(values)
    if rest > 0.005:
        labels.append("Other")
        values.append(rest)
    fig = go.Figure(go.Pie(labels=labels, values=values, hole=0.45, sort=False, textinfo="percent"))
    fig.update_layout(height=300, legend={"orientation": "h"})
    return figure_data(fig)


_PURCHASE_COLOUR, _RETURN_COLOUR = "#3b5bdb", "#e67700"


def sales_by_month_figure(months, *, currency: str) -> dict:
    """A product's units (top) and money (bottom) per month, purchases next to returns."""
    x = [m.month.isoformat() for m in months]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("Units", f"Revenue ({currency})"),
    )
    money = f"%{{y:,.2f}} {currency}"
    traces = [
        # (row, name, values, colour, group, hover)
        (
            1,
            "Units sold",
            [m.units_purchased for m in months],
            _PURCHASE_COLOUR,
            "purchases",
            "%{y:,} sold",
        ),
        (
            1,
            "Units returned",
            [m.units_returned for m in months],
            _RETURN_COLOUR,
            "returns",
            "%{y:,} returned",
        ),
        (2, "Revenue", [float(m.revenue) for m in months], _PURCHASE_COLOUR, "purchases", money),
        (
            2,
            "Refunds",
            [float(m.refunds) for m in months],
            _RETURN_COLOUR,
            "returns",
            money + " refunded",
        ),
    ]
    for row, name, values, colour, group, hover in traces:
        fig.add_trace(
            go.Bar(
                x=x,
                y=values,
                name=name,
                legendgroup=group,
                marker_color=colour,
                opacity=1.0 if row == 1 else 0.75,
                hovertemplate=f"%{{x|%b %Y}}: {hover}<extra></extra>",
            ),
            row=row,
            col=1,
        )
    fig.update_layout(
        barmode="group",
        height=460,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0},
    )
    fig.update_xaxes(type="date", tickformat="%b %Y", dtick="M1" if len(months) <= 18 else None)
    return figure_data(fig)


_MODEL_COLOUR, _BASELINE_COLOUR, _OTHER_COLOUR = "#3b5bdb", "#adb5bd", "#dee2e6"


def _comparison_bars(rows: list[tuple[str, float | None, str]], *, fmt: str) -> list[go.Bar]:
    """One bar per (name, value, colour), skipping figures that could not be measured."""
    shown = [(name, value, colour) for name, value, colour in rows if value is not None]
    return [
        go.Bar(
            x=[name for name, _, _ in shown],
            y=[value for _, value, _ in shown],
            marker_color=[colour for _, _, colour in shown],
            text=[format(value, fmt) for _, value, _ in shown],
            textposition="outside",
            hovertemplate=f"%{{x}}: %{{y:{fmt}}}<extra></extra>",
            showlegend=False,
        )
    ]


def clv_quality_figure(quality: dict, *, currency: str) -> dict:
    """Hold-out mean absolute error of the CLV model next to its two naive baselines."""
    rows = [
        ("Tailor's model", quality.get("clv_mae"), _MODEL_COLOUR),
        ("Previous period", quality.get("baseline_mae"), _BASELINE_COLOUR),
        ("Mean for all", quality.get("mean_baseline_mae"), _OTHER_COLOUR),
    ]
    fig = go.Figure(_comparison_bars(rows, fmt=",.0f"))
    fig.update_layout(height=280)
    fig.update_yaxes(title_text=f"MAE per customer ({currency})", rangemode="tozero")
    return figure_data(fig)


def churn_quality_figure(quality: dict) -> dict:
    """Hold-out AUC of the churn model next to recency alone and guessing (0.5)."""
    rows = [
        ("Tailor's model", quality.get("churn_auc"), _MODEL_COLOUR),
        ("Recency alone", quality.get("churn_auc_recency"), _BASELINE_COLOUR),
        ("Guessing", 0.5, _OTHER_COLOUR),
    ]
    fig = go.Figure(_comparison_bars(rows, fmt=".2f"))
    fig.update_layout(height=280)
    fig.update_yaxes(title_text="AUC (higher is better)", range=[0, 1.05])
    return figure_data(fig)


# ---------------------------------------------------------------------------------------------
# Recommendation runs: model comparison and per-segment quality. Inputs are plain dicts built
# by recommendations.views from the run's stored comparison.
# ---------------------------------------------------------------------------------------------

_RECALL_COLOUR = "#74c0fc"


def model_comparison_figure(models: list[dict]) -> dict:
    """Test NDCG@10 and recall@20 per model as grouped bars (each model: name, ndcg, recall,
    selected). The selected model's bars are outlined and labelled; missing values are gaps."""
    names = [m["name"] for m in models]
    ticks = [f"<b>{m['name']}</b>" if m["selected"] else m["name"] for m in models]
    outline = [2.5 if m["selected"] else 0 for m in models]
    traces = (
        ("Test NDCG@10", "ndcg", _PURCHASE_COLOUR),
        ("Test recall@20", "recall", _RECALL_COLOUR),
    )
    fig = go.Figure(
        [
            go.Bar(
                x=names,
                y=[m[key] for m in models],
                name=label,
                marker={"color": colour, "line": {"color": "#1d2330", "width": outline}},
                hovertemplate=f"%{{x}}: {label} %{{y:.3f}}<extra></extra>",
            )
            for label, key, colour in traces
        ]
    )
    for m in models:
        if m["selected"]:
            top = max(v for v in (m["ndcg"], m["recall"], 0) if v is not None)
            fig.add_annotation(
                x=m["name"], y=top, text="selected", showarrow=False, yshift=12, font={"size": 11}
            )
    fig.update_layout(
        barmode="group",
        height=340,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    fig.update_xaxes(tickvals=names, ticktext=ticks)
    fig.update_yaxes(title_text="On the test days (higher is better)", rangemode="tozero")
    return figure_data(fig)


def segment_metric_figure(rows: list[dict], *, overall: float | None, label: str) -> dict:
    """One model's metric per customer segment (rows: name, value, users) as horizontal bars,
    with the model's overall value as a dashed line."""
    rows = [r for r in rows if r["value"] is not None][::-1]  # first row at the top
    fig = go.Figure(
        go.Bar(
            x=[r["value"] for r in rows],
            y=[r["name"] for r in rows],
            orientation="h",
            marker_color=_PURCHASE_COLOUR,
            customdata=[r["users"] for r in rows],
            hovertemplate=f"%{{y}}: {label} %{{x:.3f}} (%{{customdata:,}} customers)<extra></extra>",
        )
    )
    if overall is not None:
        fig.add_vline(
            x=overall,
            line={"dash": "dash", "color": "#1d2330", "width": 1},
            annotation_text=f"all customers {overall:.3f}",
            annotation_position="top",
        )
    fig.update_layout(height=max(240, 30 * len(rows) + 90), margin={"l": 150, "t": 40})
    fig.update_xaxes(title_text=label, rangemode="tozero")
    return figure_data(fig)
