"""HubSpot: a contacts import CSV (CRM > Import > File from computer > Contacts), email copy
as custom contact properties.

Follows HubSpot's "Set up import files" and "Property field types in HubSpot".

=========================  ==================================================================
Column                     Value
=========================  ==================================================================
Email                      normalised address; required (HubSpot deduplicates contacts by it)
First Name / Last Name     first token of the name / the rest
Phone Number               E.164, from the number and the customer's country; an invalid
                           number is left empty with a warning
tailor_email_<field>       the copy: tailor_email_subject, tailor_email_preheader,
                           tailor_email_body, tailor_email_cta
tailor_product_<n>_<part>  product slots 1-3: name, url, price, image
tailor_segment, tailor_brief, tailor_brief_id, tailor_draft_id, tailor_variant,
tailor_locale              where the copy came from
=========================  ==================================================================

The tailor_* headers are the properties' internal names (lower case, digits and
underscores), so the import maps them once the properties exist; create them as
single-line text (multi-line text for tailor_email_body).

Limits: a text property holds at most **65,536 characters** when set outside a form
(checked per value; Tailor's copy is far shorter, so nothing is split); a file has fewer
than 1,000 columns (this one has 26) and at most 512 MB on paid plans (20 MB on the free
tools; ``max_file_bytes`` is the paid limit).
"""

from __future__ import annotations

from copygen.exporting.presets.base import Preset, tailor_columns
from copygen.exporting.presets.klaviyo import PROFILE_COLUMNS
from copygen.exporting.presets.klaviyo import build as _build_profile

LIMIT_CHARS = 65_536
MAX_FILE_BYTES = 512 * 1024 * 1024
COLUMNS = (*PROFILE_COLUMNS, *tailor_columns("email"))

PRESET = Preset(
    key="hubspot",
    label="HubSpot",
    format="csv",
    channels=("email",),
    needs={"*": ("email",)},
    columns_for=lambda channel: COLUMNS,
    # Same profile columns as Klaviyo ("Email", "First Name", "Last Name", "Phone Number").
    builder=_build_profile,
    field_limit_chars=LIMIT_CHARS,
    raw_columns=frozenset({"Phone Number"}),
    max_file_bytes=MAX_FILE_BYTES,
    source="HubSpot: Set up import files; Property field types in HubSpot",
)
