"""Small display filters shared by templates."""

from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()

CLEANING_LABELS = {
    "duplicate_lines": "Exact duplicate lines dropped",
    "returns": "Cancellations / returns stored as return events",
    "non_product_lines": "Non-product lines kept out of the catalog (postage, fees, adjustments)",
    "anonymous_events": "Events without a customer id (kept as anonymous)",
    "zero_price_lines": "Zero-price lines skipped",
    "formula_cells": "Formula-like cells stored as plain text",
    "ambiguous_dates_assumed_month_first": "Dates like 01/02 read month first (nothing in the file decided)",
    "ambiguous_dates_assumed_day_first": "Dates like 01/02 read day first (nothing in the file decided)",
}


@register.filter
def seconds(value: timedelta | None) -> str:
    """A duration as '0.4 s', '12 s' or '3 min 05 s'."""
    if value is None:
        return "—"
    total = value.total_seconds()
    if total < 10:
        return f"{total:.1f} s"
    if total < 60:
        return f"{total:.0f} s"
    minutes, secs = divmod(int(total), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def cleaning_label(key: str) -> str:
    return CLEANING_LABELS.get(key, key.replace("_", " ").capitalize())
