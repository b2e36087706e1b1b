"""`Preset` and the rules every preset shares.

Rendering a row, in order:

1. The preset must take the row's channel (and, when the preset is bound to one channel
   for a CSV header, exactly that channel); otherwise the row is left out.
2. The row must have one of the identifiers the preset needs for that channel (a valid
   email address, a valid phone number, the customer id, or for Google a full name with
   country and zip); otherwise it is left out with a reason such as "no valid email
   address".
3. The preset builds the record. A value over the target's limit is never cut: a long
   body is split into numbered columns by `copygen.exporting.split` (documented per
   preset), anything else over the limit leaves the row out with a warning naming the
   draft, the column, its size and the limit.
4. Problems that do not stop the row (a phone number that is not valid, an unknown
   country, more products than columns) become warnings; the value is left empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Generic, Literal, TypeVar

from copygen.engine.channels import FIELDS
from copygen.exporting.normalize import (
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_zip,
    sha256_hex,
    split_name,
)
from copygen.exporting.rows import ExportProduct, ExportRow, ExportWarning, RenderResult
from copygen.exporting.split import Unit, measure, split_text

Format = Literal["csv", "jsonl", "json"]
Identifier = Literal["email", "phone", "customer_id", "address"]

# Products per message: copygen.services.briefs.MAX_PRODUCTS_PER_MESSAGE (not importable
# from the pure core). Presets with one column per product have this many product slots.
PRODUCT_SLOTS = 3

_IDENTIFIER_LABELS = {
    "email": "valid email address",
    "phone": "valid phone number",
    "customer_id": "customer id",
    "address": "full name with country and zip",
}


class Skip(Exception):
    """Raised by a preset's builder to leave the row out."""

    def __init__(self, column: str, reason: str, code: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason
        self.code = code


_T = TypeVar("_T")


class _once(Generic[_T]):  # a decorator, named like cached_property
    """functools.cached_property without the lock Python 3.11 takes on every first use:
    a Contact lives for one row, so each value is computed once and never shared."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__

    def __get__(self, obj: Any, owner: type | None = None) -> _T:
        if obj is None:
            return self  # type: ignore[return-value]
        value = obj.__dict__[self.name] = self.func(obj)  # later reads skip the descriptor
        return value


class Contact:
    """A row's contact data, normalised on first use (a Mailchimp export never parses a
    phone number)."""

    def __init__(self, row: ExportRow, *, gmail_dots: bool = False) -> None:
        self.row = row
        self.gmail_dots = gmail_dots

    @_once
    def country(self) -> str | None:
        return normalize_country(self.row.country)

    @_once
    def email(self) -> str | None:
        return normalize_email(self.row.email, gmail_dots=self.gmail_dots)

    @_once
    def phone(self) -> str | None:
        return normalize_phone(self.row.phone, self.country)

    @_once
    def names(self) -> tuple[str, str]:
        """(first, last) as written, by `split_name`."""
        return split_name(self.row.name)

    def has(self, identifier: str) -> bool:
        if identifier == "email":
            return self.email is not None
        if identifier == "phone":
            return self.phone is not None
        if identifier == "customer_id":
            return bool((self.row.customer_id or "").strip())
        if identifier == "address":
            first, last = self.names
            return bool(
                normalize_name(first)
                and normalize_name(last)
                and self.country
                and normalize_zip(self.row.zip, self.country)
            )
        raise ValueError(f"unknown identifier {identifier!r}")


def _needs_reason(needs: Sequence[str]) -> str:
    labels = [_IDENTIFIER_LABELS[n] for n in needs]
    if len(labels) > 2:
        return "no " + ", ".join(labels[:-1]) + " or " + labels[-1]
    return "no " + " or ".join(labels)


@dataclass(frozen=True)
class Preset:
    """One export format: what it takes and needs, its columns and limits, and `render`,
    the whole per-row API.

    ``channels``: the draft channels it takes. ``needs``: per channel ("*" for any), the
    identifiers of which the row must have at least one. ``columns_for(channel)``: the CSV
    header (the record keys for JSON formats); `columns` is that of the bound channel.
    ``field_limit_bytes`` / ``field_limit_chars``: the target's per-field limit (None: no
    limit), applied to every text column but ``limit_exempt``. ``raw_columns``: CSV columns
    whose values are E.164 phone numbers, which the writer leaves without the formula
    guard's apostrophe (see `copygen.exporting.writers`). ``max_file_bytes``: the target's
    upload limit, for the caller to start a new file. ``audience``: rows carry hashed
    identifiers only, no copy. ``source``: the published format it follows.
    """

    key: str
    label: str
    format: Format
    channels: tuple[str, ...]
    needs: Mapping[str, tuple[str, ...]] = field(hash=False)
    columns_for: Callable[[str | None], tuple[str, ...]] = field(repr=False, compare=False)
    builder: Callable[[Preset, ExportRow, Contact, list[ExportWarning]], dict[str, Any]] = field(
        repr=False, compare=False
    )
    field_limit_bytes: int | None = None
    field_limit_chars: int | None = None
    limit_exempt: frozenset[str] = frozenset()
    raw_columns: frozenset[str] = frozenset()
    max_file_bytes: int | None = None
    audience: bool = False
    gmail_dots: bool = False
    source: str = ""
    channel: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """CSV header for the bound channel; ValueError when it depends on an unbound one."""
        try:
            return self.columns_for(self.channel)
        except NeedsChannel:
            raise ValueError(
                f"the {self.key} columns depend on the channel: bind one, "
                f"e.g. preset_for({self.key!r}, channel={self.channels[0]!r})"
            ) from None

    def for_channel(self, channel: str | None) -> Preset:
        """This preset bound to ``channel`` (its CSV header and rows are that channel's)."""
        if channel is not None and channel not in self.channels:
            takes = ", ".join(self.channels)
            raise ValueError(f"{self.label} takes {takes} copy, not {channel!r}")
        return replace(self, channel=channel)

    def needs_for(self, channel: str) -> tuple[str, ...]:
        """Identifiers of which a row of ``channel`` must have at least one."""
        return self.needs.get(channel, self.needs.get("*", ()))

    def render(self, row: ExportRow) -> RenderResult:
        """The record for ``row``, or why it is left out; never raises on bad data."""
        warnings: list[ExportWarning] = []
        try:
            self._admit(row)
            contact = Contact(row, gmail_dots=self.gmail_dots)
            needs = self.needs_for(row.channel)
            if needs and not any(contact.has(n) for n in needs):
                raise Skip("", _needs_reason(needs), "missing_identifier")
            record = self.builder(self, row, contact, warnings)
            self._check_limits(record)
        except Skip as skip:
            warnings.append(
                ExportWarning(
                    row.draft_id, row.customer_id, skip.column, skip.reason, skip.code, True
                )
            )
            return RenderResult(None, skip.reason, tuple(warnings))
        return RenderResult(record, None, tuple(warnings))

    def _admit(self, row: ExportRow) -> None:
        if row.channel not in self.channels:
            takes = ", ".join(self.channels)
            raise Skip("", f"{self.label} takes {takes} copy, not {row.channel}", "wrong_channel")
        if self.channel is not None and row.channel != self.channel:
            raise Skip(
                "",
                f"this file holds {self.channel} copy, the draft is {row.channel}",
                "wrong_channel",
            )

    def _check_limits(self, record: dict[str, Any]) -> None:
        limits: tuple[tuple[Unit, int | None], ...] = (
            ("bytes", self.field_limit_bytes),
            ("chars", self.field_limit_chars),
        )
        for unit, limit in limits:
            if limit is None:
                continue
            # A value of at most `sure` code points fits whatever it holds (UTF-8 takes at
            # most 4 bytes per code point), so only longer ones are measured.
            sure = limit // 4 if unit == "bytes" else limit
            longer = [c for c, v in record.items() if isinstance(v, str) and len(v) > sure]
            for column in longer:
                if column not in self.limit_exempt:
                    size = measure(record[column], unit)
                    if size > limit:
                        raise Skip(column, too_long(size, limit, unit, self.label), "too_long")


# --- helpers for the builders ----------------------------------------------------------------


def unit_name(unit: str) -> str:
    return "bytes" if unit == "bytes" else "characters"


def too_long(size: int, limit: int, unit: str, label: str) -> str:
    u = unit_name(unit)
    return f"{size} {u}, but {label} holds at most {limit} {u} per field"


class NeedsChannel(ValueError):
    """The preset's columns depend on the channel and none is bound."""


def need_channel(channel: str | None) -> tuple[str, ...]:
    """Raise NeedsChannel: for ``columns_for`` of presets whose header depends on it."""
    raise NeedsChannel("the columns depend on the channel")


def copy_fields(row: ExportRow) -> dict[str, str | list[str]]:
    """The channel's fields in FIELDS order: text as str, list fields as list[str]; missing
    ones empty. Keys of ``row.fields`` that are not fields of the channel are ignored."""
    out: dict[str, str | list[str]] = {}
    for spec in FIELDS.get(row.channel, ()):
        value = row.fields.get(spec.name)
        if spec.kind == "list":
            if value is None or value == "":
                out[spec.name] = []
            elif isinstance(value, str):
                out[spec.name] = [value]
            else:
                out[spec.name] = ["" if v is None else str(v) for v in value]
        elif isinstance(value, (list, tuple)):
            out[spec.name] = "\n".join(str(v) for v in value)
        else:
            out[spec.name] = "" if value is None else str(value)
    return out


def field_names(channel: str) -> tuple[str, ...]:
    return tuple(spec.name for spec in FIELDS[channel])


def slotted_products(
    row: ExportRow, warnings: list[ExportWarning], slots: int = PRODUCT_SLOTS
) -> list[ExportProduct | None]:
    """Exactly ``slots`` entries (None for empty slots); a warning names products beyond."""
    products = list(row.products)
    if len(products) > slots:
        extra = ", ".join(p.sku for p in products[slots:])
        warnings.append(
            ExportWarning(
                row.draft_id,
                row.customer_id,
                "",
                f"{len(products)} products, the preset has columns for {slots}: left out {extra}",
                "extra_products",
            )
        )
    return [*products[:slots], *([None] * max(0, slots - len(products)))]


def phone_or_empty(contact: Contact, warnings: list[ExportWarning], column: str) -> str:
    """The E.164 phone, or "" with a warning when one was given but is not valid."""
    if contact.phone:
        return contact.phone
    if (contact.row.phone or "").strip():
        where = f" in {contact.country}" if contact.country else " (no known country to place it)"
        warnings.append(
            ExportWarning(
                contact.row.draft_id,
                contact.row.customer_id,
                column,
                f"the phone number is not a valid number{where}; left empty",
                "invalid_phone",
            )
        )
    return ""


def country_or_empty(contact: Contact, warnings: list[ExportWarning], column: str) -> str:
    """The ISO alpha-2 country, or "" with a warning when one was given but is unknown."""
    if contact.country:
        return contact.country
    if (contact.row.country or "").strip():
        warnings.append(
            ExportWarning(
                contact.row.draft_id,
                contact.row.customer_id,
                column,
                f"country {contact.row.country.strip()!r} is not recognised; left empty",
                "unknown_country",
            )
        )
    return ""


def split_columns(
    text: str,
    *,
    column: str,
    names: Sequence[str],
    limit: int,
    unit: Unit,
    locale: str,
    label: str,
) -> dict[str, str]:
    """``text`` over the numbered ``names`` (unused ones ""), by `split_text`; Skip when it
    needs more parts than there are names or has a word over the limit."""
    parts = split_text(text, limit, unit, locale=locale)
    if parts is None or len(parts) > len(names):
        u = unit_name(unit)
        size = measure(text, unit)
        if parts is None:
            raise Skip(
                column,
                f"{size} {u} with a word longer than {label}'s {limit} {u} per field, "
                "so it cannot be split at word boundaries",
                "too_long",
            )
        raise Skip(
            column,
            f"{size} {u}, which needs {len(parts)} fields of at most {limit} {u}; "
            f"{label} has {len(names)} ({names[0]}…{names[-1]})",
            "too_long",
        )
    return dict(zip(names, parts + [""] * (len(names) - len(parts)), strict=True))


def language_code(value: str) -> str:
    """ISO 639-1 code of a language tag ("de-AT" -> "de"), or "" when it is not one."""
    code = (value or "").strip().replace("_", "-").split("-")[0].lower()
    return code if len(code) == 2 and code.isalpha() else ""


def hashed_or_empty(value: str | None) -> str:
    """SHA-256 hex of a normalised value; an empty value stays empty."""
    return sha256_hex(value) if value else ""


# --- "tailor_*" custom properties (Klaviyo, HubSpot, Braze) ----------------------------------

PRODUCT_PARTS = ("name", "url", "price", "image")
# tailor_product_<i>_<part> per slot, named once rather than per row.
_PRODUCT_NAMES = tuple(
    tuple(f"tailor_product_{i}_{part}" for part in PRODUCT_PARTS)
    for i in range(1, PRODUCT_SLOTS + 1)
)
META_COLUMNS = (
    "tailor_segment",
    "tailor_brief",
    "tailor_brief_id",
    "tailor_draft_id",
    "tailor_variant",
    "tailor_locale",
)


def tailor_columns(channel: str, split: Mapping[str, int] | None = None) -> tuple[str, ...]:
    """Custom property names for ``channel``: ``tailor_<channel>_<field>`` per copy field
    (a field in ``split`` as ``…_1``…``…_n`` plus ``…_parts``), ``tailor_product_<i>_<part>``
    per product slot, then the META_COLUMNS."""
    split = split or {}
    columns: list[str] = []
    for name in field_names(channel):
        base = f"tailor_{channel}_{name}"
        if name in split:
            columns += [f"{base}_{i}" for i in range(1, split[name] + 1)] + [f"{base}_parts"]
        else:
            columns.append(base)
    columns += [
        f"tailor_product_{i}_{part}" for i in range(1, PRODUCT_SLOTS + 1) for part in PRODUCT_PARTS
    ]
    return (*columns, *META_COLUMNS)


@lru_cache(maxsize=64)
def _numbered(base: str, n: int) -> tuple[str, ...]:
    """``base_1`` … ``base_n``, named once per field rather than per row."""
    return tuple(f"{base}_{i}" for i in range(1, n + 1))


def tailor_properties(
    preset: Preset,
    row: ExportRow,
    warnings: list[ExportWarning],
    split: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Values for `tailor_columns`: copy (list fields joined by newlines), products, brief
    data. Fields in ``split`` go over numbered properties by the preset's limit."""
    split = split or {}
    record: dict[str, Any] = {}
    for name, value in copy_fields(row).items():
        base = f"tailor_{row.channel}_{name}"
        text = "\n".join(value) if isinstance(value, list) else value
        if name in split:
            unit: Unit = "bytes" if preset.field_limit_bytes is not None else "chars"
            limit = preset.field_limit_bytes or preset.field_limit_chars
            assert limit is not None, "a split field needs a per-field limit"
            names = _numbered(base, split[name])
            parts = split_columns(
                text,
                column=base,
                names=names,
                limit=limit,
                unit=unit,
                locale=row.locale,
                label=preset.label,
            )
            record.update(parts)
            record[f"{base}_parts"] = sum(1 for v in parts.values() if v)
        else:
            record[base] = text
    for names, product in zip(_PRODUCT_NAMES, slotted_products(row, warnings), strict=True):
        values = (
            (product.title, product.url, product.price, product.image_url) if product else ("",) * 4
        )
        record.update(zip(names, values, strict=True))
    record.update(
        {
            "tailor_segment": row.segment,
            "tailor_brief": row.brief_name,
            "tailor_brief_id": row.brief_id,
            "tailor_draft_id": row.draft_id,
            "tailor_variant": row.variant,
            "tailor_locale": row.locale,
        }
    )
    return record
