"""Plotly figures travel to the page as JSON data blocks rendered by static/js/app.js."""

from __future__ import annotations

import json

import plotly.graph_objects as go

_LAYOUT = {
    "margin": {"l": 50, "r": 20, "t": 30, "b": 40},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def figure_data(fig: go.Figure) -> dict:
    """A JSON-safe dict of the figure (numpy arrays become lists) for `json_script`."""
    fig.update_layout(**_LAYOUT)
    return json.loads(fig.to_json())
