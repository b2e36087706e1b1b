"""Meta custom audience: a customer list CSV of hashed identifiers (Ads Manager > Audiences >
Create audience > Custom audience > Customer list).

Follows Meta's "Customer list custom audiences" formatting guidelines (column identifiers
email, phone, fn, ln, zip, ct, st, country) and the Marketing API "Hashing and
normalization" rules for custom audiences.

=======  =====================================================================================
Column   Value (each SHA-256 hex of the normalised value; empty stays empty)
=======  =====================================================================================
email    address trimmed and lower-cased (no Gmail dot removal: that is Google's rule)
phone    digits of the E.164 number, country code first, no "+" ("49301234567")
fn       first token of the name, lower case, no punctuation; other letters kept (UTF-8)
ln       the rest of the name, same rules
zip      lower case, no spaces or dashes; US: first 5 digits; UK: area, district, sector
ct       city: Tailor stores none, so always empty
st       state: Tailor stores none, so always empty
country  ISO 3166-1 alpha-2 in lower case ("de")
=======  =====================================================================================

A row needs a valid email address or phone number; otherwise it is left out. No copy is
written: the list is an audience for any channel's campaign. Feed one row per customer;
a writer keeps no state, so it cannot drop duplicates itself.
"""

from __future__ import annotations

from typing import Any

from copygen.engine.channels import FIELDS
from copygen.exporting.normalize import normalize_name, normalize_zip, phone_digits
from copygen.exporting.presets.base import (
    Contact,
    Preset,
    country_or_empty,
    hashed_or_empty,
    phone_or_empty,
)
from copygen.exporting.rows import ExportRow, ExportWarning

COLUMNS = ("email", "phone", "fn", "ln", "zip", "ct", "st", "country")


def build(
    preset: Preset, row: ExportRow, contact: Contact, warnings: list[ExportWarning]
) -> dict[str, Any]:
    first, last = contact.names
    country = country_or_empty(contact, warnings, "country")
    phone = phone_or_empty(contact, warnings, "phone")
    return {
        "email": hashed_or_empty(contact.email),
        "phone": hashed_or_empty(phone_digits(phone)),
        "fn": hashed_or_empty(normalize_name(first, strip_punctuation=True)),
        "ln": hashed_or_empty(normalize_name(last, strip_punctuation=True)),
        "zip": hashed_or_empty(normalize_zip(row.zip, country, meta=True)),
        "ct": "",
        "st": "",
        "country": hashed_or_empty(country.lower()),
    }


PRESET = Preset(
    key="meta_custom_audience",
    label="Meta custom audience",
    format="csv",
    channels=tuple(FIELDS),
    needs={"*": ("email", "phone")},
    columns_for=lambda channel: COLUMNS,
    builder=build,
    audience=True,
    source="Meta: Customer list custom audiences (formatting guidelines, hashing)",
)
