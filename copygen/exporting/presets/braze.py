"""Braze: user attributes as a CSV (Audience > Import users) or as a /users/track request
body; email, push or SMS copy as custom attributes.

Follows Braze's "CSV import" (user attributes by external ID), "User attributes object"
of the /users/track endpoint, and "Custom attributes" (data types and limits).

``braze_csv`` columns (``braze_json`` objects have the same keys):

==================================  =========================================================
Column                              Value
==================================  =========================================================
external_id                         the customer id (first column, Braze's CSV identifier);
                                    required
email, first_name, last_name        default attributes: normalised address, first token of
                                    the name, the rest
phone                               E.164, from the number and the customer's country
country                             ISO 3166-1 alpha-2 (from "Germany", "DEU", …)
language                            ISO 639-1 ("de-AT" -> "de")
tailor_email_subject,               email copy; the body over tailor_email_body_1…_12, with
tailor_email_preheader,             tailor_email_body_parts = how many are used
tailor_email_body_<n>,
tailor_email_body_parts,
tailor_email_cta
tailor_push_title, tailor_push_body  push copy
tailor_sms_text_<n>,                SMS text over tailor_sms_text_1…_3 (3 SMS segments are
tailor_sms_text_parts               at most 459 characters)
tailor_product_<n>_<part>           product slots 1-3: name, url, price, image
tailor_segment, tailor_brief, tailor_brief_id, tailor_draft_id, tailor_variant,
tailor_locale                       where the copy came from
==================================  =========================================================

Limits: a custom attribute string holds at most **255 characters** (Braze: "Custom
attribute keys and values have a maximum length of 255 characters"); counted as Unicode
code points. Every tailor_* value is checked; the email body and SMS text are split at
word boundaries by `copygen.exporting.split` (join with one space, or with nothing for
zh / ja) — a Liquid template loops ``tailor_email_body_parts`` times; anything else over
255 characters leaves the row out with a warning. The default attributes are not checked.
A CSV import file may be at most 500 MB.

``braze_json`` writes ``{"attributes": [{…}, …]}``, the body of POST /users/track. That
endpoint takes at most **75 attribute objects per request**, so the uploader sends the
objects in batches of 75. In the JSON, an empty default attribute is left out (so it
does not overwrite what Braze knows), and an empty tailor_* attribute is null, which
removes the value an earlier export left (say tailor_email_body_5). In the CSV a blank
cell does not change the profile, hence tailor_email_body_parts.
"""

from __future__ import annotations

from typing import Any

from copygen.exporting.presets.base import (
    Contact,
    Preset,
    country_or_empty,
    language_code,
    need_channel,
    phone_or_empty,
    tailor_columns,
    tailor_properties,
)
from copygen.exporting.rows import ExportRow, ExportWarning

LIMIT_CHARS = 255
MAX_FILE_BYTES = 500 * 1024 * 1024
REQUEST_BATCH = 75
# Copy fields split over numbered attributes, and how many there are. Email body: 2,000
# graphemes at most (copygen.engine.channels.EMAIL_BODY_MAX) need 8-10 parts; SMS text:
# 3 segments (copygen.services.briefs.MAX_SMS_SEGMENTS) need 2.
SPLIT = {"email": {"body": 12}, "sms": {"text": 3}, "push": {}}
PROFILE_COLUMNS = (
    "external_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "country",
    "language",
)


def columns(channel: str | None) -> tuple[str, ...]:
    if channel is None:
        return need_channel(channel)
    return (*PROFILE_COLUMNS, *tailor_columns(channel, SPLIT[channel]))


def build(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    first, last = contact.names
    record: dict[str, Any] = {
        "external_id": row.customer_id.strip(),
        "email": contact.email or "",
        "first_name": first,
        "last_name": last,
        "phone": phone_or_empty(contact, warnings, "phone"),
        "country": country_or_empty(contact, warnings, "country"),
        "language": language_code(row.language),
    }
    record.update(tailor_properties(preset, row, warnings, SPLIT[row.channel]))
    return record


def build_json(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    record = build(preset, row, contact, warnings)
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key.startswith("tailor_"):
            out[key] = None if value == "" else value
        elif value != "":
            out[key] = value
    return out


_COMMON: dict[str, Any] = {
    "channels": ("email", "push", "sms"),
    "needs": {"*": ("customer_id",)},
    "field_limit_chars": LIMIT_CHARS,
    "limit_exempt": frozenset(PROFILE_COLUMNS),
}

CSV_PRESET = Preset(
    key="braze_csv",
    label="Braze",
    format="csv",
    columns_for=columns,
    builder=build,
    raw_columns=frozenset({"phone"}),
    max_file_bytes=MAX_FILE_BYTES,
    source="Braze: CSV import (user attributes, external ID); Custom attributes",
    **_COMMON,
)

JSON_PRESET = Preset(
    key="braze_json",
    label="Braze",
    format="json",
    columns_for=columns,
    builder=build_json,
    source="Braze: POST /users/track, user attributes object; Custom attributes",
    **_COMMON,
)
