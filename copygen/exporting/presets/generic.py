"""Generic CSV and JSON Lines: Tailor's own schema, for tools without a preset.

One record per draft and customer, keyed by the shop's customer id (join it to the tool's
contacts there); no other personal data.

==================  ==========================================================================
Key                 Value
==================  ==========================================================================
customer_id         the shop's external customer id; required
channel             email | sms | push | google_ads | meta_ads | product_text
locale              the draft's locale ("de")
<copy fields>       every field of the channel, in copygen.engine.channels.FIELDS order:
                    email: subject, preheader, body, cta; sms: text; push: title, body;
                    google_ads: headlines, descriptions (lists); meta_ads: primary_text,
                    headline, description; product_text: short, long
product_skus        list of the products' SKUs, in the draft's order
product_titles      list of their titles
product_urls        list of their URLs
product_prices      list of their prices, formatted with currency ("€12.50")
product_image_urls  list of their image URLs
segment             segment name
brief_id            int
draft_id            int
variant             int, 1 = best ranked
exported_at         ISO 8601 timestamp of the export
==================  ==========================================================================

In ``generic_csv`` a list is a JSON array in its cell (``["Headline 1","Headline 2"]``)
and the numbers are text; the header is the bound channel's, so one file holds one
channel. ``generic_jsonl`` writes one JSON object per line with real arrays and numbers,
and may mix channels. No limits: values are written whole.
"""

from __future__ import annotations

from typing import Any

from copygen.engine.channels import FIELDS
from copygen.exporting.presets.base import Contact, Preset, copy_fields, field_names, need_channel
from copygen.exporting.rows import ExportRow, ExportWarning

HEAD = ("customer_id", "channel", "locale")
TAIL = (
    "product_skus",
    "product_titles",
    "product_urls",
    "product_prices",
    "product_image_urls",
    "segment",
    "brief_id",
    "draft_id",
    "variant",
    "exported_at",
)


def columns(channel: str | None) -> tuple[str, ...]:
    if channel is None:
        return need_channel(channel)
    return (*HEAD, *field_names(channel), *TAIL)


def build(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    products = list(row.products)
    return {
        "customer_id": row.customer_id.strip(),
        "channel": row.channel,
        "locale": row.locale,
        **copy_fields(row),
        "product_skus": [p.sku for p in products],
        "product_titles": [p.title for p in products],
        "product_urls": [p.url for p in products],
        "product_prices": [p.price for p in products],
        "product_image_urls": [p.image_url for p in products],
        "segment": row.segment,
        "brief_id": row.brief_id,
        "draft_id": row.draft_id,
        "variant": row.variant,
        "exported_at": row.exported_at,
    }


CSV_PRESET = Preset(
    key="generic_csv",
    label="Generic CSV",
    format="csv",
    channels=tuple(FIELDS),
    needs={"*": ("customer_id",)},
    columns_for=columns,
    builder=build,
    source="Tailor's generic schema (this module)",
)

JSONL_PRESET = Preset(
    key="generic_jsonl",
    label="Generic JSON Lines",
    format="jsonl",
    channels=tuple(FIELDS),
    needs={"*": ("customer_id",)},
    columns_for=columns,
    builder=build,
    source="Tailor's generic schema (this module)",
)
