"""Klaviyo: a list upload CSV (Lists & Segments > a list > Manage list > Upload contacts),
email or SMS copy as custom profile properties.

Follows Klaviyo's "How to create and add subscribers to a new list" (CSV requirements) and
"How to import profile properties using a CSV upload".

=========================  ==================================================================
Column                     Value
=========================  ==================================================================
Email                      normalised address; required for email copy (Klaviyo wants
                           "Email" or "Phone Number" as the first column)
First Name / Last Name     first token of the name / the rest
Phone Number               E.164 ("+4915112345678"), from the number and the customer's
                           country; required for SMS copy; an invalid number is left empty
                           with a warning
tailor_<channel>_<field>   the copy: tailor_email_subject, tailor_email_preheader,
                           tailor_email_body, tailor_email_cta, or tailor_sms_text
tailor_product_<n>_<part>  product slots 1-3: name, url, price, image
tailor_segment, tailor_brief, tailor_brief_id, tailor_draft_id, tailor_variant,
tailor_locale              where the copy came from (for segments and reporting)
=========================  ==================================================================

Limits: Klaviyo publishes no per-value limit for properties uploaded by CSV (its API caps
a whole profile payload at 100 KB, far above Tailor's largest row), so values are written
whole and nothing is split; the upload file may be at most **50 MB** (``max_file_bytes``).
Phone numbers are written without the formula guard's apostrophe, since Klaviyo rejects a
number that is not E.164 (see `copygen.exporting.writers`).
"""

from __future__ import annotations

from typing import Any

from copygen.exporting.presets.base import (
    Contact,
    Preset,
    need_channel,
    phone_or_empty,
    tailor_columns,
    tailor_properties,
)
from copygen.exporting.rows import ExportRow, ExportWarning

PROFILE_COLUMNS = ("Email", "First Name", "Last Name", "Phone Number")
MAX_FILE_BYTES = 50 * 1024 * 1024


def columns(channel: str | None) -> tuple[str, ...]:
    if channel is None:
        return need_channel(channel)
    return (*PROFILE_COLUMNS, *tailor_columns(channel))


def build(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    first, last = contact.names
    record: dict[str, Any] = {
        "Email": contact.email or "",
        "First Name": first,
        "Last Name": last,
        "Phone Number": phone_or_empty(contact, warnings, "Phone Number"),
    }
    record.update(tailor_properties(preset, row, warnings))
    return record


PRESET = Preset(
    key="klaviyo",
    label="Klaviyo",
    format="csv",
    channels=("email", "sms"),
    needs={"email": ("email",), "sms": ("phone",)},
    columns_for=columns,
    builder=build,
    raw_columns=frozenset({"Phone Number"}),
    max_file_bytes=MAX_FILE_BYTES,
    source="Klaviyo: How to create and add subscribers to a new list (CSV requirements)",
)
