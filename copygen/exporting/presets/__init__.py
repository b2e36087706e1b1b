"""Export presets: one per campaign tool's import format, plus generic CSV / JSON Lines.

=========================  ======  ===================  =========================================
Key                        Format  Channels             Needs (at least one)
=========================  ======  ===================  =========================================
mailchimp                  csv     email                email
klaviyo                    csv     email, sms           email (email copy) / phone (SMS copy)
hubspot                    csv     email                email
braze_csv                  csv     email, push, sms     customer id
braze_json                 json    email, push, sms     customer id
google_customer_match      csv     any (audience)       email, phone, or name+country+zip
meta_custom_audience       csv     any (audience)       email or phone
generic_csv                csv     any (one per file)   customer id
generic_jsonl              jsonl   any                  customer id
=========================  ======  ===================  =========================================

Each preset's module documents its columns, limits and the published format it follows.
Shared rules are in `copygen.exporting.presets.base`; in short: a value over the target's
limit is split by a documented rule or the row is left out with a warning, never cut; a
row without the identifier the target needs is left out with a reason; a name is split
into first name (first token) and last name (the rest); personal data goes only where the
target needs it, and audience lists carry hashes only.

A preset whose header depends on the channel (klaviyo, braze_csv, generic_csv) must be
bound to one before a CSV writer can write its header: ``preset_for(key, channel=...)``.
"""

from __future__ import annotations

from copygen.exporting.presets import braze, generic, google, hubspot, klaviyo, mailchimp, meta
from copygen.exporting.presets.base import PRODUCT_SLOTS, Preset

__all__ = ["PRESETS", "PRODUCT_SLOTS", "Preset", "preset_for"]

PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        mailchimp.PRESET,
        klaviyo.PRESET,
        braze.CSV_PRESET,
        braze.JSON_PRESET,
        hubspot.PRESET,
        google.PRESET,
        meta.PRESET,
        generic.CSV_PRESET,
        generic.JSONL_PRESET,
    )
}


def preset_for(key: str, channel: str | None = None) -> Preset:
    """The preset ``key``, bound to ``channel`` when given.

    ValueError for an unknown key (naming the known ones) or a channel the preset does not
    take ("Mailchimp takes email copy, not 'sms'").
    """
    try:
        preset = PRESETS[key]
    except KeyError:
        known = ", ".join(PRESETS)
        raise ValueError(f"unknown export preset {key!r}; known presets: {known}") from None
    return preset.for_channel(channel) if channel is not None else preset
