"""Mailchimp: a contact import CSV (Audience > Add contacts > Import contacts), email copy.

Follows Mailchimp's "Format guidelines for your import file" and "Audience fields and
*|MERGE|* tags".

=================  =========================================================================
Column             Value
=================  =========================================================================
Email Address      normalised address (trimmed, lower case); required, rows without one
                   are left out ("no valid email address")
First Name         first token of the name (maps to FNAME)
Last Name          the rest of the name (maps to LNAME)
SUBJECT            subject line
PREHEADER          preheader
BODY_1…BODY_10     the body, split at word boundaries (see below)
CTA                call to action
P1_NAME…P3_IMAGE   per product slot 1-3: P<n>_NAME (title), P<n>_URL, P<n>_PRICE (formatted
                   with currency), P<n>_IMAGE (image URL)
Tags               the segment name and the brief name, comma-separated
=================  =========================================================================

Limits and rules:

* A text field holds at most **255 bytes** of UTF-8 and Mailchimp clips anything longer
  on import (the format guidelines say so), so every merge-field value is checked in
  bytes: 255 ASCII letters, but only 85 Chinese characters. A value over the limit leaves
  the row out with a warning; only the body is split.
* The body goes into **BODY_1…BODY_10** (at most 10 x 255 bytes) by
  `copygen.exporting.split`: for every locale but zh / ja the parts end at whitespace
  and the template joins them with one space (``*|BODY_1|* *|BODY_2|* …``); for zh / ja
  they join with nothing (``*|BODY_1|**|BODY_2|*…``). A body that needs more than 10
  parts (about 2,400 bytes of English) leaves the row out with a warning giving its size.
* Why 10 parts and 3 products: an audience has at most **30 merge fields**, and a new
  audience already has FNAME, LNAME, ADDRESS, PHONE and BIRTHDAY; this preset adds 25
  (SUBJECT, PREHEADER, CTA, 10 BODY, 12 product fields): 30 in all.
* Column headers double as merge tags, which Mailchimp limits to **10 characters**
  (hence P1_NAME rather than PRODUCT1_NAME). Create the fields as text fields (not
  "website", which checks URLs) before the first import, or let the import create them.
* A tag may have at most **100 characters** and no emoji; a tag containing a comma is
  wrapped in double quotes, as the guidelines ask. A tag Mailchimp would reject leaves
  the row out with a warning (rename the segment or brief).
* Unused BODY_n / product columns are empty. Use conditional merge tags
  (``*|IF:BODY_3|*``) in the template rather than relying on empty fields clearing older
  values.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from copygen.exporting.presets.base import (
    PRODUCT_SLOTS,
    Contact,
    Preset,
    Skip,
    copy_fields,
    slotted_products,
    split_columns,
)
from copygen.exporting.rows import ExportRow, ExportWarning

LIMIT_BYTES = 255
BODY_PARTS = 10
TAG_MAX_CHARS = 100
BODY_COLUMNS = tuple(f"BODY_{i}" for i in range(1, BODY_PARTS + 1))
PRODUCT_COLUMNS = tuple(
    f"P{i}_{part}"
    for i in range(1, PRODUCT_SLOTS + 1)
    for part in ("NAME", "URL", "PRICE", "IMAGE")
)
# P<n>_NAME, P<n>_URL, P<n>_PRICE, P<n>_IMAGE per slot, named once rather than per row.
_SLOT_COLUMNS = tuple(PRODUCT_COLUMNS[i : i + 4] for i in range(0, len(PRODUCT_COLUMNS), 4))
COLUMNS = (
    "Email Address",
    "First Name",
    "Last Name",
    "SUBJECT",
    "PREHEADER",
    *BODY_COLUMNS,
    "CTA",
    *PRODUCT_COLUMNS,
    "Tags",
)


# Code points from U+1F000 up (emoji, symbols) and the dingbats / misc. symbols block.
_EMOJI = re.compile("[\u2600-\u27bf\U0001f000-\U0010ffff]")


def _has_emoji(text: str) -> bool:
    return _EMOJI.search(text) is not None


def tags(row: ExportRow) -> str:
    """The Tags cell: segment and brief name; Skip for a tag Mailchimp would reject."""
    return _tags(row.segment, row.brief_name)


@lru_cache(maxsize=256)  # one export's rows share segment and brief (a Skip is not cached)
def _tags(segment: str, brief_name: str) -> str:
    out = []
    for value in (segment, brief_name):
        tag = " ".join((value or "").split())
        if not tag:
            continue
        if len(tag) > TAG_MAX_CHARS:
            raise Skip(
                "Tags",
                f"tag {tag[:30]!r}… is {len(tag)} characters, Mailchimp tags hold at most "
                f"{TAG_MAX_CHARS}",
                "bad_tag",
            )
        if _has_emoji(tag):
            raise Skip(
                "Tags", f"tag {tag!r} has an emoji, which Mailchimp tags do not take", "bad_tag"
            )
        out.append(f'"{tag}"' if "," in tag else tag)
    return ",".join(out)


def build(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    copy = copy_fields(row)
    first, last = contact.names
    record: dict[str, Any] = {
        "Email Address": contact.email or "",
        "First Name": first,
        "Last Name": last,
        "SUBJECT": copy["subject"],
        "PREHEADER": copy["preheader"],
    }
    record.update(
        split_columns(
            str(copy["body"]),
            column="BODY",
            names=BODY_COLUMNS,
            limit=LIMIT_BYTES,
            unit="bytes",
            locale=row.locale,
            label=preset.label,
        )
    )
    record["CTA"] = copy["cta"]
    slots = zip(_SLOT_COLUMNS, slotted_products(row, warnings), strict=True)
    for (name, url, price, image), product in slots:
        record[name] = product.title if product else ""
        record[url] = product.url if product else ""
        record[price] = product.price if product else ""
        record[image] = product.image_url if product else ""
    record["Tags"] = tags(row)
    return record


PRESET = Preset(
    key="mailchimp",
    label="Mailchimp",
    format="csv",
    channels=("email",),
    needs={"*": ("email",)},
    columns_for=lambda channel: COLUMNS,
    builder=build,
    field_limit_bytes=LIMIT_BYTES,
    limit_exempt=frozenset({"Email Address", "Tags"}),
    source="Mailchimp: Format guidelines for your import file; Audience fields and merge tags",
)
