"""What goes into an export (one row per customer and draft) and what comes out of a preset.

The Django side builds an `ExportRow` per approved draft and consenting customer (consent
filtering, control groups and the choice of drafts happen there) and hands it to
`Preset.render`, which returns a `RenderResult`: the record to write, or the reason the row
was left out, plus `ExportWarning`s the UI lists ("draft 42, customer C-17, column BODY: …").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CODES", "ExportProduct", "ExportRow", "ExportWarning", "RenderResult"]


@dataclass(frozen=True)
class ExportProduct:
    """A product the copy is about. ``price`` is already formatted with its currency
    ("€12.50"); presets never recompute it."""

    sku: str
    title: str = ""
    url: str = ""
    price: str = ""
    image_url: str = ""


@dataclass(frozen=True, kw_only=True)
class ExportRow:
    """One draft for one customer, as stored (not yet normalised).

    ``customer_id`` is the shop's external id. ``country`` is as stored ("Germany", "DE");
    presets normalise it. ``channel`` is a key of ``copygen.engine.channels.FIELDS`` and
    ``fields`` maps its field names to text (lists of text for ``headlines`` /
    ``descriptions``); keys that are not fields of the channel are ignored. ``exported_at``
    is an ISO 8601 timestamp.
    """

    customer_id: str
    channel: str
    fields: Mapping[str, str | Sequence[str]]
    draft_id: int
    brief_id: int
    email: str = ""
    name: str = ""
    phone: str = ""
    country: str = ""
    zip: str = ""
    language: str = ""
    products: Sequence[ExportProduct] = ()
    segment: str = ""
    brief_name: str = ""
    variant: int = 1
    locale: str = "en"
    exported_at: str = ""


@dataclass(frozen=True)
class ExportWarning:
    """Something the marketer should know about one row. ``column`` is the output column
    concerned ("" for the whole row); ``code`` groups warnings for the UI (see `CODES`);
    ``row_skipped`` says whether the row was left out of the file."""

    draft_id: int
    customer_id: str
    column: str
    reason: str
    code: str = "note"
    row_skipped: bool = False

    def __str__(self) -> str:
        where = f", column {self.column}" if self.column else ""
        outcome = " (row left out)" if self.row_skipped else ""
        return f"Draft {self.draft_id}, customer {self.customer_id}{where}: {self.reason}{outcome}"


# Warning codes, for grouping in the UI.
CODES = {
    "wrong_channel": "the preset does not take this channel's copy",
    "missing_identifier": "no usable email / phone / customer id for this target",
    "too_long": "a value exceeds the target's limit (never cut: the row is left out)",
    "bad_tag": "a tag the target would reject",
    "extra_products": "more products than the preset has columns for",
    "invalid_phone": "a phone number that is not a valid number; left out",
    "unknown_country": "a country that is not recognised; left empty",
}


@dataclass(frozen=True)
class RenderResult:
    """Either ``record`` (column -> value, in the preset's column order) or ``skip_reason``;
    ``warnings`` also holds the skip, as a warning with ``row_skipped=True``."""

    record: dict[str, Any] | None
    skip_reason: str | None = None
    warnings: tuple[ExportWarning, ...] = field(default=())

    @property
    def skipped(self) -> bool:
        return self.record is None
