"""Google Ads Customer Match: a customer list CSV of hashed contact data (Tools > Audience
manager > Customer list > Upload emails, phones and/or mailing addresses).

Follows Google's "Customer Match data formatting guidelines" (CSV template with the
headers below) and the Google Ads API "Normalize and hash user-provided data".

==========  ==================================================================================
Column      Value
==========  ==================================================================================
Email       SHA-256 of the address trimmed and lower-cased; for gmail.com / googlemail.com
            without the dots before the "@"
Phone       SHA-256 of the E.164 number ("+49301234567"; national numbers are placed by the
            customer's country)
First Name  SHA-256 of the first token of the name, trimmed and lower-cased
Last Name   SHA-256 of the rest of the name, trimmed and lower-cased
Country     ISO 3166-1 alpha-2, NOT hashed ("DE")
Zip         the postal code as stored (trimmed), NOT hashed
==========  ==================================================================================

An empty value stays empty (never the hash of ""). A row needs a valid email address, a
valid phone number, or a mailing address (first and last name, country and zip: Google
matches those four together); otherwise it is left out. No copy is written: the list is
an audience for any channel's campaign, and it holds hashes, not plain contact data.

Feed one row per customer (for example variant 1 of each customer's drafts): a writer
keeps no state, so it cannot drop duplicates itself.
"""

from __future__ import annotations

from typing import Any

from copygen.engine.channels import FIELDS
from copygen.exporting.normalize import normalize_name, normalize_zip
from copygen.exporting.presets.base import (
    Contact,
    Preset,
    country_or_empty,
    hashed_or_empty,
    phone_or_empty,
)
from copygen.exporting.rows import ExportRow, ExportWarning

COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")


def build(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    first, last = contact.names
    country = country_or_empty(contact, warnings, "Country")
    return {
        "Email": hashed_or_empty(contact.email),  # Contact built with gmail_dots=True
        "Phone": hashed_or_empty(phone_or_empty(contact, warnings, "Phone")),
        "First Name": hashed_or_empty(normalize_name(first)),
        "Last Name": hashed_or_empty(normalize_name(last)),
        "Country": country,
        "Zip": normalize_zip(row.zip, country) or "",
    }


PRESET = Preset(
    key="google_customer_match",
    label="Google Ads Customer Match",
    format="csv",
    channels=tuple(FIELDS),
    needs={"*": ("email", "phone", "address")},
    columns_for=lambda channel: COLUMNS,
    builder=build,
    audience=True,
    gmail_dots=True,
    source="Google Ads: Customer Match data formatting guidelines",
)
