"""Turn frames of source strings into validated products, customers and events.

A `Cleaner` is made once per import and fed every chunk in file order; it keeps what
must hold across chunks (keys and lines already seen, running counts). Validation is
vectorised over whole columns; Python loops run only over rejected rows (to build their
`Issue`) and over distinct values (kinds, flags, SKU patterns).
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import pandas as pd

from .errors import KEPT_AS_TEXT, REJECTED, ImportFileError, Issue, short
from .fields import EVENT_KINDS, FIELDS, FieldSpec
from .formats import EXTRA_COLUMN, ROW_COLUMN
from .keys import (
    KeyIndex,
    combine,
    first_seen,
    frame_line_hash,
    hash_ints,
    hash_scalar,
    hash_strings,
    occurrences,
    to_ids,
)
from .parsing import (
    EMAIL,
    NAT,
    URL,
    by_unique,
    check_timezone,
    formula_mask,
    invalid,
    longer_than,
    parse_bools,
    parse_datetimes,
    parse_ints,
    parse_languages,
    parse_numbers,
    scan_text,
    strip,
)

COUNT_KEYS = (
    "rows_read",
    "duplicate_lines",
    "returns",
    "non_product_lines",
    "anonymous_events",
    "zero_price_lines",
    "formula_cells",
    "rejected_rows",
)

PRODUCT_COLUMNS = [
    "sku",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "url",
    "image_url",
    "in_stock",
    "attributes",
    ROW_COLUMN,
]
CUSTOMER_COLUMNS = [
    "external_id",
    "email",
    "name",
    "country",
    "language",
    "consent_email",
    "consent_sms",
    "consent_push",
    "consent_ads",
    "attributes",
    ROW_COLUMN,
]
EVENT_COLUMNS = [
    "id",
    "customer",
    "sku",
    "kind",
    "quantity",
    "value",
    "rating",
    "text",
    "occurred_at",
    "source",
    ROW_COLUMN,
]

PRICE_LIMIT = 1e10  # Product.price: 12 digits, 2 decimals
VALUE_LIMIT = 1e12  # Event.value: 14 digits, 2 decimals
QUANTITY_LIMIT = 2**31 - 1  # Event.quantity: integer

_KIND_WORDS = {
    "view": ("view", "views", "viewed", "pageview", "page_view", "product_view", "detail"),
    "click": ("click", "clicked", "product_click", "select"),
    "cart": ("cart", "add_to_cart", "addtocart", "added_to_cart", "add_to_basket", "basket"),
    "purchase": (
        "purchase",
        "purchased",
        "order",
        "ordered",
        "buy",
        "bought",
        "sale",
        "transaction",
    ),
    "return": ("return", "returned", "refund", "refunded", "cancel", "cancelled", "cancellation"),
    "rating": ("rating", "rate", "rated"),
    "review": ("review", "reviewed"),
    "search": ("search", "searched", "query"),
    "wishlist": ("wishlist", "wish", "add_to_wishlist", "favorite", "favourite", "like", "save"),
}
_KIND_BY_WORD = {w: kind for kind, words in _KIND_WORDS.items() for w in words}


# Event kinds travel as small integer codes (cheap to compare and hash); strings at the end.
_KIND_CODE = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_KIND_NAMES = np.array(EVENT_KINDS, dtype=object)
_KIND_HASHES = hash_strings(_KIND_NAMES)
VIEW, CLICK, CART, PURCHASE, RETURN, RATING, REVIEW, SEARCH, WISHLIST = range(len(EVENT_KINDS))


def _kind_of(text: str) -> int:
    """Code of the normalised event kind, or -1 when unknown."""
    key = re.sub(r"[\s\-]+", "_", text.strip().lower())
    kind = _KIND_BY_WORD.get(key) or _KIND_BY_WORD.get(key.replace("_", ""))
    return _KIND_CODE[kind] if kind else -1


@dataclass
class CleanOptions:
    """Per-import settings that come from the catalog and the upload."""

    catalog_id: int
    timezone: str = "UTC"  # naive timestamps are in this zone
    non_product_patterns: list[str] | tuple[str, ...] = ()  # regexes on SKU, case-insensitive
    dayfirst: bool = False  # 01/02/2024 is 1 February
    default_time: dt.datetime | None = None  # tz-aware; reviews without a date get it


@dataclass
class CleanedChunk:
    """What one chunk yields: rows ready to write, and the problems found."""

    products: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)


class _Chunk:
    """One frame under validation: access to mapped columns and the problems found."""

    def __init__(self, frame: pd.DataFrame, mapping: dict[str, str | None]) -> None:
        self.frame = frame
        self.mapping = mapping
        self.n = len(frame)
        self.rows = frame[ROW_COLUMN].to_numpy(dtype=np.int64)
        self.rejected = np.zeros(self.n, dtype=bool)
        self._blank = np.full(self.n, "", dtype=object)
        self._found: list[tuple[np.ndarray, str, np.ndarray, object, str]] = []
        self._text: dict[str, np.ndarray] = {}
        self._no_formula: dict[int, np.ndarray] = {}  # id -> array known to hold no formula
        # id(values) -> (values, codes, distinct values) for id-like columns (SKU, customer):
        # strip, length, formula and hash work then runs once per distinct value.
        self._factors: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def col(self, name: str) -> str:
        return self.mapping.get(name) or ""

    def raw(self, name: str) -> np.ndarray:
        col = self.mapping.get(name)
        return self.frame[col].to_numpy(dtype=object) if col else self._blank

    def text(self, name: str) -> np.ndarray:
        """Stripped values of a mapped field ("" everywhere when unmapped)."""
        col = self.mapping.get(name)
        if not col:
            return self._blank
        return self.column_text(col)

    def column_text(self, col: str) -> np.ndarray:
        if col not in self._text:
            values, maybe_formula = scan_text(self.frame[col].to_numpy(dtype=object))
            self._text[col] = values
            if not maybe_formula:
                self._no_formula[id(values)] = values
        return self._text[col]

    def ids(self, name: str) -> np.ndarray:
        """Stripped values of an id-like field (few distinct values), processed per distinct
        value; "" everywhere when unmapped."""
        col = self.mapping.get(name)
        if not col:
            return self._blank
        key = "\x00ids:" + col
        if key not in self._text:
            codes, uniques = pd.factorize(self.frame[col].to_numpy(dtype=object))
            uniques, maybe_formula = scan_text(np.asarray(uniques, dtype=object))
            values = uniques.take(codes)
            self._text[key] = values
            self._factors[id(values)] = (values, codes, uniques)
            if not maybe_formula:
                self._no_formula[id(values)] = values
        return self._text[key]

    def factors(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(codes, distinct values) when values came from `ids`."""
        found = self._factors.get(id(values))
        return (found[1], found[2]) if found is not None and found[0] is values else None

    def reject(self, mask: np.ndarray, column: str, reason, values: np.ndarray) -> None:
        """Reject rows; reason is one sentence or one per masked row (in row order)."""
        idx = np.flatnonzero(mask)
        if idx.size:
            self.rejected[idx] = True
            self._found.append((idx, column, values[idx], reason, REJECTED))

    def keep_as_text(self, idx: np.ndarray, column: str, values: np.ndarray) -> int:
        """Report formula-looking cells among the kept rows idx; returns how many."""
        if id(values) in self._no_formula or values is self._blank:
            return 0
        mask = formula_mask(values[idx])
        if mask is None:
            return 0
        hit = idx[mask]
        self._found.append((hit, column, values[hit], "formula-looking cell", KEPT_AS_TEXT))
        return int(hit.size)

    def issues(self) -> list[Issue]:
        out: list[tuple[int, int, Issue]] = []
        for seq, (idx, column, values, reason, action) in enumerate(self._found):
            reasons = [reason] * idx.size if isinstance(reason, str) else list(reason)
            for i, value, why in zip(idx.tolist(), values.tolist(), reasons, strict=True):
                row = int(self.rows[i])
                out.append((row, seq, Issue(row, column, short(value), why, action)))
        out.sort(key=lambda t: (t[0], t[1]))
        return [issue for _, _, issue in out]


class Cleaner:
    """Validates and normalises the chunks of one import, keeping cross-chunk state."""

    def __init__(self, kind: str, mapping: dict[str, str | None], options: CleanOptions) -> None:
        if kind not in FIELDS:
            raise ValueError(f"unknown import kind {kind!r}")
        self.kind = kind
        self.specs: dict[str, FieldSpec] = {s.name: s for s in FIELDS[kind]}
        unknown = set(mapping) - set(self.specs)
        if unknown:
            raise ValueError(f"unknown fields for {kind}: {sorted(unknown)}")
        self.mapping = {name: (mapping.get(name) or None) for name in self.specs}
        for spec in self.specs.values():
            if spec.required and not self.mapping[spec.name]:
                hint = "" if spec.aliases[0] == spec.label else f" (e.g. {spec.aliases[0]!r})"
                raise ImportFileError(
                    f"required column {spec.label!r} is missing{hint}", column=spec.label
                )
        self.options = options
        check_timezone(options.timezone)
        self._non_product = self._compile(options.non_product_patterns)
        if options.default_time is not None and options.default_time.tzinfo is None:
            raise ValueError("CleanOptions.default_time must be timezone-aware")
        if kind == "reviews" and options.default_time is None and not self.mapping["occurred_at"]:
            raise ValueError("reviews without a date column need CleanOptions.default_time")
        self.counts: collections.Counter = collections.Counter(dict.fromkeys(COUNT_KEYS, 0))
        self._lines = KeyIndex()  # exact duplicate lines
        self._keys = KeyIndex()  # SKU / customer id / explicit event id -> first row
        self._natural = KeyIndex()  # natural event key -> occurrences so far
        self._titles: dict[str, str] = {}  # online_retail: last known description per SKU
        self._categories: dict[str, str] = {}  # reviews: last known category per SKU
        self._catalog_hash = hash_scalar(int(options.catalog_id))
        self._checked = False

    @staticmethod
    def _compile(patterns) -> re.Pattern | None:
        parts = []
        for p in patterns or ():
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"bad non-product pattern {p!r}: {exc}") from None
            parts.append(f"(?:{p})")
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None

    # ----------------------------------------------------------------- entry point

    def clean(self, frame: pd.DataFrame) -> CleanedChunk:
        """Validate one chunk (frames must come in file order)."""
        if not self._checked:
            for name, col in self.mapping.items():
                if col and col not in frame.columns:
                    raise ImportFileError(
                        f"column {col!r} (mapped to {self.specs[name].label}) is not in the file",
                        column=col,
                    )
            self._checked = True
        ch = _Chunk(frame, self.mapping)
        self.counts["rows_read"] += ch.n
        if EXTRA_COLUMN in ch.frame:
            extra = ch.frame[EXTRA_COLUMN].to_numpy(dtype=object)
            ch.reject(extra != "", "", "more values than the header has columns", extra)
        products, customers, events = getattr(self, f"_clean_{self.kind}")(ch)
        issues = ch.issues()
        self.counts["rejected_rows"] += int(ch.rejected.sum())
        self.counts["formula_cells"] += sum(i.action == KEPT_AS_TEXT for i in issues)
        return CleanedChunk(
            products if products is not None else _empty(PRODUCT_COLUMNS),
            customers if customers is not None else _empty(CUSTOMER_COLUMNS),
            events if events is not None else _empty(EVENT_COLUMNS),
            issues,
        )

    # ------------------------------------------------------------ shared checks

    def _source_columns(self, frame: pd.DataFrame) -> list[str]:
        return [c for c in frame.columns if c not in (ROW_COLUMN, EXTRA_COLUMN)]

    def _unmapped(self, frame: pd.DataFrame) -> list[str]:
        mapped = {c for c in self.mapping.values() if c}
        return [c for c in self._source_columns(frame) if c not in mapped]

    def _required(self, ch: _Chunk, name: str, values: np.ndarray) -> None:
        ch.reject(values == "", ch.col(name), "missing required value", values)

    def _max_length(self, ch: _Chunk, name: str, values: np.ndarray) -> None:
        limit = self.specs[name].max_length if name in self.specs else None
        if limit and ch.col(name):
            factors = ch.factors(values)
            if factors is not None:
                codes, uniques = factors
                long_uniques = longer_than(uniques, limit)
                too_long = None if long_uniques is None else long_uniques[codes]
            else:
                too_long = longer_than(values, limit)
            if too_long is not None:
                ch.reject(too_long, ch.col(name), f"longer than {limit} characters", values)

    def _number(
        self, ch: _Chunk, name: str, *, limit: float, negative: str | None = None
    ) -> np.ndarray:
        """float64 (NaN = blank or rejected); negative values rejected with that reason."""
        values = ch.raw(name)
        if not ch.col(name):
            return np.full(ch.n, np.nan)
        numbers, bad = parse_numbers(values)
        col = ch.col(name)
        ch.reject(bad, col, "not a number", values)
        with np.errstate(invalid="ignore"):
            ch.reject(np.abs(numbers) >= limit, col, "number too large", values)
            if negative:
                ch.reject(numbers < 0, col, negative, values)
        return numbers

    def _quantity(self, ch: _Chunk, *, required: bool) -> np.ndarray:
        """Integer quantities as float64 (blank -> 1 unless required)."""
        col = ch.col("quantity")
        if not col:
            return np.ones(ch.n)
        values = ch.raw("quantity")
        numbers, bad, fractional = parse_ints(values)
        ch.reject(bad, col, "not a number", values)
        ch.reject(fractional, col, "not an integer", values)
        with np.errstate(invalid="ignore"):
            ch.reject(np.abs(numbers) > QUANTITY_LIMIT, col, "number too large", values)
        blank = values == ""
        if required:
            self._required(ch, "quantity", values)
        numbers = np.where(blank, 1.0, numbers)
        return numbers

    def _datetimes(self, ch: _Chunk, name: str, *, required: bool) -> np.ndarray:
        values = ch.raw(name)
        if not ch.col(name):
            return np.full(ch.n, NAT, dtype=np.int64)
        ns, bad = parse_datetimes(values, tz=self.options.timezone, dayfirst=self.options.dayfirst)
        ch.reject(bad, ch.col(name), "unparseable date", values)
        if required:
            self._required(ch, name, values)
        return ns

    def _dedupe_lines(self, ch: _Chunk, idx: np.ndarray, line_hash: np.ndarray) -> np.ndarray:
        """Drop exact repeats of earlier lines (counted, not reported); returns kept idx."""
        repeat, _first = first_seen(self._lines, line_hash, ch.rows[idx])
        self.counts["duplicate_lines"] += int(repeat.sum())
        return idx[~repeat]

    def _unique_keys(
        self, ch: _Chunk, idx: np.ndarray, keys: np.ndarray, column: str, what: str
    ) -> np.ndarray:
        """Reject later rows repeating a key of an earlier kept row; returns kept idx."""
        repeat, first = first_seen(self._keys, hash_strings(keys[idx]), ch.rows[idx])
        if repeat.any():
            mask = np.zeros(ch.n, dtype=bool)
            mask[idx[repeat]] = True
            reasons = [
                f"duplicate {what} {k!r} (first seen on row {r})"
                for k, r in zip(keys[idx[repeat]].tolist(), first[repeat].tolist(), strict=True)
            ]
            ch.reject(mask, column, reasons, keys)
        return idx[~repeat]

    def _attributes(self, ch: _Chunk, idx: np.ndarray) -> list[dict[str, str]]:
        cols = self._unmapped(ch.frame)
        if not cols:
            return [{} for _ in range(idx.size)]
        arrays = []
        blank = np.zeros(idx.size, dtype=bool)
        for c in cols:
            values = ch.column_text(c)[idx]
            ch.keep_as_text(idx, c, ch.column_text(c))
            blank |= values == ""
            arrays.append(values.tolist())
        # dict(zip(...)) per row runs in C; only rows with blank cells need filtering.
        records = list(map(dict, map(zip, repeat(cols), zip(*arrays, strict=True))))
        for i in np.flatnonzero(blank).tolist():
            records[i] = {k: v for k, v in records[i].items() if v}
        return records

    def _formulas(self, ch: _Chunk, idx: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        for name, values in fields.items():
            if ch.col(name):
                ch.keep_as_text(idx, ch.col(name), values)

    # ------------------------------------------------------------------ products

    def _clean_products(self, ch: _Chunk):
        sku, title = ch.text("sku"), ch.text("title")
        self._required(ch, "sku", sku)
        self._required(ch, "title", title)
        text = {name: ch.text(name) for name in ("description", "category", "brand")}
        urls = {name: ch.text(name) for name in ("url", "image_url")}
        for name, values in {"sku": sku, "title": title, **text, **urls}.items():
            self._max_length(ch, name, values)
        for name, values in urls.items():
            ch.reject(invalid(values, URL), ch.col(name), "invalid URL", values)
        price = self._number(ch, "price", limit=PRICE_LIMIT, negative="negative price")
        in_stock, bad = parse_bools(ch.raw("in_stock"), counts=True)
        ch.reject(bad, ch.col("in_stock"), "not a yes/no value", ch.raw("in_stock"))

        idx = np.flatnonzero(~ch.rejected)
        idx = self._dedupe_lines(
            ch, idx, frame_line_hash(ch.frame.iloc[idx], self._source_columns(ch.frame))
        )
        idx = self._unique_keys(ch, idx, sku, ch.col("sku"), "SKU")
        self._formulas(ch, idx, {"sku": sku, "title": title, **text})
        attributes = self._attributes(ch, idx)
        products = pd.DataFrame(
            {
                "sku": sku[idx],
                "title": title[idx],
                **{k: v[idx] for k, v in text.items()},
                "price": np.round(price[idx], 2),
                **{k: v[idx] for k, v in urls.items()},
                "in_stock": in_stock[idx],
                "attributes": attributes,
                ROW_COLUMN: ch.rows[idx],
            },
            columns=PRODUCT_COLUMNS,
        )
        return products, None, None

    # ----------------------------------------------------------------- customers

    def _clean_customers(self, ch: _Chunk):
        ext = ch.text("external_id")
        self._required(ch, "external_id", ext)
        self._max_length(ch, "external_id", ext)
        email = ch.text("email")
        ch.reject(invalid(email, EMAIL), ch.col("email"), "invalid email", email)
        self._max_length(ch, "email", email)
        first, last = ch.text("first_name"), ch.text("last_name")
        if ch.col("name"):
            name = ch.text("name")
            self._max_length(ch, "name", name)
        else:
            name = (
                strip(first + " " + last)
                if (ch.col("first_name") or ch.col("last_name"))
                else first
            )
            too_long = longer_than(name, 200)
            if too_long is not None:
                column = ch.col("first_name") or ch.col("last_name")
                ch.reject(too_long, column, "name longer than 200 characters", name)
        country = ch.text("country")
        self._max_length(ch, "country", country)
        language, bad = parse_languages(ch.raw("language"))
        ch.reject(bad, ch.col("language"), "not a language code", ch.raw("language"))
        consents = {}
        for channel in ("email", "sms", "push", "ads"):
            key = f"consent_{channel}"
            consents[key], bad = parse_bools(ch.raw(key))
            ch.reject(bad, ch.col(key), "not a yes/no value", ch.raw(key))

        idx = np.flatnonzero(~ch.rejected)
        idx = self._dedupe_lines(
            ch, idx, frame_line_hash(ch.frame.iloc[idx], self._source_columns(ch.frame))
        )
        idx = self._unique_keys(ch, idx, ext, ch.col("external_id"), "customer id")
        self._formulas(
            ch,
            idx,
            {"external_id": ext, "name": name, "first_name": first, "last_name": last},
        )
        self._formulas(ch, idx, {"email": email, "country": country})
        customers = pd.DataFrame(
            {
                "external_id": ext[idx],
                "email": email[idx],
                "name": name[idx],
                "country": country[idx],
                "language": language[idx],
                **{k: v[idx] for k, v in consents.items()},
                "attributes": self._attributes(ch, idx),
                ROW_COLUMN: ch.rows[idx],
            },
            columns=CUSTOMER_COLUMNS,
        )
        return None, customers, None

    # -------------------------------------------------------------------- events

    def _clean_events(self, ch: _Chunk):
        when = self._datetimes(ch, "occurred_at", required=True)
        if ch.col("kind"):
            raw_kind = ch.ids("kind")
            codes, uniques = ch.factors(raw_kind)
            kind = np.array([_kind_of(u) for u in uniques], dtype=np.int8)[codes]
            blank = np.array([not u for u in uniques], dtype=bool)[codes]
            ch.reject(blank, ch.col("kind"), "missing event kind", raw_kind)
            ch.reject(
                (kind < 0) & ~blank,
                ch.col("kind"),
                "unknown event kind (use one of: " + ", ".join(EVENT_KINDS) + ")",
                raw_kind,
            )
        else:
            kind = np.full(ch.n, PURCHASE, dtype=np.int8)
        customer, sku = ch.ids("customer"), ch.ids("sku")
        self._max_length(ch, "customer", customer)
        self._max_length(ch, "sku", sku)
        if ch.col("sku"):
            ch.reject(
                (sku == "") & (kind != SEARCH) & (kind >= 0),
                ch.col("sku"),
                "missing SKU (only search events may leave it blank)",
                sku,
            )
        elif ((kind != SEARCH) & (kind >= 0)).any():
            raise ImportFileError(
                "required column 'SKU' is missing: only search events may have no SKU",
                column="SKU",
            )
        quantity = self._quantity(ch, required=False)
        value = self._number(ch, "value", limit=VALUE_LIMIT)
        price = self._number(ch, "unit_price", limit=PRICE_LIMIT, negative="negative price")
        rating = self._rating(ch, required=False)
        ch.reject(
            (kind == RATING) & np.isnan(rating) & ~ch.rejected,
            ch.col("rating"),
            "rating event without a rating",
            ch.raw("rating"),
        )
        text, source = ch.text("text"), ch.text("source")
        self._max_length(ch, "source", source)

        # Returns: a "return" kind, or a purchase with a negative quantity.
        with np.errstate(invalid="ignore"):
            negative = quantity < 0
            kind = np.where(negative & (kind == PURCHASE), RETURN, kind).astype(np.int8)
            is_return = kind == RETURN
            ch.reject(
                negative & ~is_return, ch.col("quantity"), "negative quantity", ch.raw("quantity")
            )
            quantity = np.abs(quantity)
            if ch.col("unit_price"):
                value = np.where(np.isnan(value), price * quantity, value)
            value_col = ch.col("value") or ch.col("unit_price")
            ch.reject(
                (value < 0) & ~is_return,
                value_col,
                "negative value",
                ch.raw("value") if ch.col("value") else ch.raw("unit_price"),
            )
            value = np.abs(value)

        idx = np.flatnonzero(~ch.rejected)
        events, idx = self._emit_events(
            ch,
            idx,
            kind=kind,
            customer=customer,
            sku=sku,
            quantity=quantity,
            value=value,
            rating=rating,
            text=text,
            when=when,
            source=source,
            event_id=ch.text("event_id") if ch.col("event_id") else None,
            rest=self._rest_columns(ch, ("unit_price", "event_id")),
        )
        self._formulas(ch, idx, {"customer": customer, "sku": sku, "source": source, "text": text})
        return None, None, events

    def _rating(self, ch: _Chunk, *, required: bool) -> np.ndarray:
        rating = self._number(ch, "rating", limit=np.inf)
        col = ch.col("rating")
        with np.errstate(invalid="ignore"):
            ch.reject((rating < 1) | (rating > 5), col, "rating outside 1..5", ch.raw("rating"))
        if required:
            self._required(ch, "rating", ch.raw("rating"))
        return rating

    def _rest_columns(self, ch: _Chunk, also: tuple[str, ...] = ()) -> list[str]:
        """Source columns that are not part of the natural event key (for line identity)."""
        return self._unmapped(ch.frame) + [ch.col(n) for n in also if ch.col(n)]

    def _emit_events(
        self,
        ch: _Chunk,
        idx: np.ndarray,
        *,
        kind,
        customer,
        sku,
        quantity,
        value,
        rating,
        text,
        when,
        source,
        event_id,
        rest,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Hash, de-duplicate and assemble the events of rows idx; returns (events, kept idx).

        The id hashes the natural key; the k-th repeat (k >= 1) of the same natural key in
        a file that is not an exact repeat of the line (e.g. two identical anonymous
        ratings from different reviewers) gets k mixed into its id, so ids stay unique and
        re-importing the same file yields the same ids.
        """
        n = idx.size
        cents = np.where(np.isnan(value[idx]), np.iinfo(np.int64).min, np.round(value[idx] * 100))
        rating_x100 = np.where(
            np.isnan(rating[idx]), np.iinfo(np.int64).min, np.round(rating[idx] * 100)
        )
        parts = [
            self._catalog_hash,
            _KIND_HASHES[kind[idx]],
            self._str_hash(customer, idx, ch, "customer", categorize=True),
            self._str_hash(sku, idx, ch, "sku", categorize=True),
            hash_ints(when[idx]),
            self._str_hash(source, idx, ch, "source"),
            hash_ints(quantity[idx].astype(np.int64)),
            hash_ints(cents.astype(np.int64)),
            hash_ints(rating_x100.astype(np.int64)),
            self._str_hash(text, idx, ch, "text"),
        ]
        natural = combine(parts, n)
        if rest:
            line = combine(
                [natural, *(hash_strings(ch.frame[c].to_numpy(dtype=object)[idx]) for c in rest)],
                n,
            )
        else:
            line = natural
        repeat, _ = first_seen(self._lines, line, ch.rows[idx])
        self.counts["duplicate_lines"] += int(repeat.sum())
        idx, natural = idx[~repeat], natural[~repeat]

        ids = np.empty(idx.size, dtype=np.uint64)
        plain = np.ones(idx.size, dtype=bool)
        if event_id is not None:
            given = event_id[idx] != ""
            if given.any():
                gidx = idx[given]
                keys = combine([self._catalog_hash, hash_strings(event_id[gidx])], gidx.size)
                dup, first = first_seen(self._keys, keys, ch.rows[gidx])
                if dup.any():
                    mask = np.zeros(ch.n, dtype=bool)
                    mask[gidx[dup]] = True
                    reasons = [
                        f"duplicate event id {k!r} (first seen on row {r})"
                        for k, r in zip(
                            event_id[gidx[dup]].tolist(), first[dup].tolist(), strict=True
                        )
                    ]
                    ch.reject(mask, ch.col("event_id"), reasons, event_id)
                ids[given] = keys
                plain = ~given
                keep = np.ones(idx.size, dtype=bool)
                keep[np.flatnonzero(given)[dup]] = False
                idx, natural, ids, plain = idx[keep], natural[keep], ids[keep], plain[keep]
        if plain.any() and rest:
            # Without other columns, a repeated natural key is an exact repeat of the line
            # and was dropped above; only with other columns can distinct lines share one.
            occ = occurrences(self._natural, natural[plain])
            mixed = natural[plain].copy()
            again = occ > 0
            if again.any():
                mixed[again] = combine([mixed[again], hash_ints(occ[again])], int(again.sum()))
            ids[plain] = mixed
        elif plain.any():
            ids[plain] = natural[plain]

        customers = customer[idx]
        anonymous = customers == ""
        self.counts["anonymous_events"] += int(anonymous.sum())
        kinds = kind[idx]
        self.counts["returns"] += int((kinds == RETURN).sum())
        skus = sku[idx]
        events = pd.DataFrame(
            {
                "id": to_ids(ids),
                "customer": np.where(anonymous, None, customers),
                "sku": np.where(skus == "", None, skus),
                "kind": _KIND_NAMES[kinds],
                "quantity": quantity[idx].astype(np.int64),
                "value": np.round(value[idx], 2),
                "rating": rating[idx],
                "text": text[idx],
                "occurred_at": pd.to_datetime(when[idx], unit="ns", utc=True),
                "source": source[idx],
                ROW_COLUMN: ch.rows[idx],
            },
            columns=EVENT_COLUMNS,
            copy=False,
        )
        return events, idx

    def _str_hash(self, values, idx, ch: _Chunk, name: str | None, *, categorize=False):
        if name is not None and not ch.col(name) and values is ch._blank:
            return hash_scalar("")  # unmapped: the same constant for every row
        factors = ch.factors(values)
        if factors is not None:
            codes, uniques = factors
            return hash_strings(uniques)[codes[idx]]
        return hash_strings(values[idx], categorize=categorize)

    # ------------------------------------------------------------------- reviews

    def _clean_reviews(self, ch: _Chunk):
        sku = ch.text("sku")
        self._required(ch, "sku", sku)
        self._max_length(ch, "sku", sku)
        rating = self._rating(ch, required=True)
        title, body = ch.text("title"), ch.text("text")
        text = _join_title(title, body)
        if ch.col("occurred_at"):
            when = self._datetimes(ch, "occurred_at", required=False)
        else:
            when = np.full(ch.n, NAT, dtype=np.int64)
        missing_time = when == NAT
        default = self.options.default_time
        if default is not None:
            when = np.where(missing_time, pd.Timestamp(default).tz_convert("UTC").value, when)
        else:
            ch.reject(
                missing_time & ~ch.rejected,
                ch.col("occurred_at"),
                "missing date (and no default time given)",
                ch.raw("occurred_at"),
            )
        department, klass = ch.text("department"), ch.text("class_name")
        category = _category_path(department, klass, ch.text("category"))
        source = ch.text("source")
        self._max_length(ch, "source", source)
        kind = np.where(text != "", REVIEW, RATING).astype(np.int8)

        idx = np.flatnonzero(~ch.rejected)
        events, idx = self._emit_events(
            ch,
            idx,
            kind=kind,
            customer=ch._blank,
            sku=sku,
            quantity=np.ones(ch.n),
            value=np.full(ch.n, np.nan),
            rating=rating,
            text=text,
            when=when,
            source=source,
            event_id=None,
            rest=self._rest_columns(ch, ("title", "text", "department", "class_name", "category")),
        )
        self._formulas(
            ch,
            idx,
            {"sku": sku, "title": title, "text": body, "department": department},
        )
        self._formulas(ch, idx, {"class_name": klass, "category": ch.text("category")})
        frame = pd.DataFrame({"sku": sku[idx], "category": category[idx], "row": ch.rows[idx]})
        known = frame[frame["category"] != ""].drop_duplicates("sku", keep="last")
        self._categories.update(zip(known["sku"], known["category"], strict=True))
        last = frame.drop_duplicates("sku", keep="last")
        skus = last["sku"].to_numpy(dtype=object)
        products = _products_frame(
            skus,
            titles=np.array([f"Item {s}" for s in skus], dtype=object),
            categories=np.array([self._categories.get(s, "") for s in skus], dtype=object),
            prices=np.full(skus.size, np.nan),
            rows=last["row"].to_numpy(dtype=np.int64),
        )
        return products, None, events

    # ------------------------------------------------------------- online retail

    def _clean_online_retail(self, ch: _Chunk):
        invoice = ch.text("source")
        self._required(ch, "source", invoice)
        self._max_length(ch, "source", invoice)
        sku = by_unique(ch.text("sku"), str.upper)
        self._required(ch, "sku", sku)
        self._max_length(ch, "sku", sku)
        title = ch.text("title")
        self._max_length(ch, "title", title)
        quantity = self._quantity(ch, required=True)
        when = self._datetimes(ch, "occurred_at", required=True)
        price = self._number(ch, "unit_price", limit=PRICE_LIMIT)
        self._required(ch, "unit_price", ch.raw("unit_price"))
        customer = by_unique(ch.text("customer"), _integral_id)
        self._max_length(ch, "customer", customer)
        country = ch.text("country")
        self._max_length(ch, "country", country)

        alive = ~ch.rejected
        # Bad-debt adjustments (A invoices) and postage, fees, vouchers are not products.
        adjustment = by_unique(invoice, lambda v: v[:1].upper() == "A").astype(bool)
        if self._non_product is not None:
            pattern = self._non_product
            non_product = by_unique(sku, lambda v: pattern.search(v) is not None).astype(bool)
        else:
            non_product = np.zeros(ch.n, dtype=bool)
        skipped = alive & (adjustment | non_product)
        self.counts["non_product_lines"] += int(skipped.sum())
        with np.errstate(invalid="ignore"):
            ch.reject(alive & ~skipped & (price < 0), ch.col("unit_price"), "negative price",
                      ch.raw("unit_price"))  # fmt: skip
            zero = alive & ~skipped & (price == 0) & ~ch.rejected
            ch.reject(
                alive & ~skipped & (quantity == 0) & ~zero,
                ch.col("quantity"),
                "quantity is zero",
                ch.raw("quantity"),
            )
        self.counts["zero_price_lines"] += int(zero.sum())
        cancelled = by_unique(invoice, lambda v: v[:1].upper() == "C").astype(bool)
        with np.errstate(invalid="ignore"):
            kind = np.where(cancelled | (quantity < 0), RETURN, PURCHASE).astype(np.int8)
            quantity = np.abs(quantity)
            value = quantity * price

        idx = np.flatnonzero(~ch.rejected & ~skipped & ~zero)
        events, idx = self._emit_events(
            ch,
            idx,
            kind=kind,
            customer=customer,
            sku=sku,
            quantity=quantity,
            value=value,
            rating=np.full(ch.n, np.nan),
            text=ch._blank,
            when=when,
            source=invoice,
            event_id=None,
            rest=self._rest_columns(ch, ("title", "unit_price", "country")),
        )
        self._formulas(
            ch,
            idx,
            {
                "source": invoice,
                "sku": sku,
                "title": title,
                "customer": customer,
                "country": country,
            },
        )

        lines = pd.DataFrame(
            {
                "sku": sku[idx],
                "title": title[idx],
                "price": price[idx],
                "customer": customer[idx],
                "country": country[idx],
                "row": ch.rows[idx],
            }
        )
        named = lines[lines["title"] != ""].drop_duplicates("sku", keep="last")
        self._titles.update(zip(named["sku"], named["title"], strict=True))
        last = lines.drop_duplicates("sku", keep="last")
        skus = last["sku"].to_numpy(dtype=object)
        products = _products_frame(
            skus,
            titles=np.array([self._titles.get(s) or f"Item {s}" for s in skus], dtype=object),
            categories=np.full(skus.size, "", dtype=object),
            prices=np.round(last["price"].to_numpy(dtype=np.float64), 2),
            rows=last["row"].to_numpy(dtype=np.int64),
        )
        known = lines[lines["customer"] != ""]
        countries = known[known["country"] != ""].drop_duplicates("customer", keep="last")
        country_of = dict(zip(countries["customer"], countries["country"], strict=True))
        people = known.drop_duplicates("customer", keep="last")
        ids = people["customer"].to_numpy(dtype=object)
        customers = pd.DataFrame(
            {
                "external_id": ids,
                "email": "",
                "name": "",
                "country": np.array([country_of.get(c, "") for c in ids], dtype=object),
                "language": "",
                "consent_email": None,
                "consent_sms": None,
                "consent_push": None,
                "consent_ads": None,
                "attributes": [{} for _ in range(ids.size)],
                ROW_COLUMN: people["row"].to_numpy(dtype=np.int64),
            },
            columns=CUSTOMER_COLUMNS,
        )
        return products, customers, events


# --------------------------------------------------------------------------- helpers


def _integral_id(text: str) -> str:
    """17850.0 -> 17850: ids that went through a float column on the way."""
    if text.endswith(".0") and text[:-2].isdigit():
        return text[:-2]
    return text


def _join_title(title: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Title + ". " + body ("Love it! Great fit" when the title already ends a sentence)."""
    both = (title != "") & (body != "")
    out = np.where(title != "", title, body).astype(object)
    if both.any():
        t, b = title[both], body[both]
        ends = pd.Series(t, dtype=object).str[-1:].isin([".", "!", "?", "…"]).to_numpy()
        out[both] = t + np.where(ends, " ", ". ").astype(object) + b
    return out


def _category_path(department: np.ndarray, klass: np.ndarray, category: np.ndarray) -> np.ndarray:
    both = (department != "") & (klass != "") & (department != klass)
    out = np.where(department != "", department, klass).astype(object)
    if both.any():
        out[both] = department[both] + " > " + klass[both]
    return np.where(out == "", category, out).astype(object)


def _products_frame(skus, *, titles, categories, prices, rows) -> pd.DataFrame:
    n = len(skus)
    return pd.DataFrame(
        {
            "sku": skus,
            "title": titles,
            "description": np.full(n, "", dtype=object),
            "category": categories,
            "brand": np.full(n, "", dtype=object),
            "price": prices,
            "url": np.full(n, "", dtype=object),
            "image_url": np.full(n, "", dtype=object),
            "in_stock": np.full(n, None, dtype=object),
            "attributes": [{} for _ in range(n)],
            ROW_COLUMN: rows,
        },
        columns=PRODUCT_COLUMNS,
    )


_DTYPES = {
    "id": "int64",
    "quantity": "int64",
    "value": "float64",
    "rating": "float64",
    "price": "float64",
    ROW_COLUMN: "int64",
    "occurred_at": "datetime64[ns, UTC]",
}


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, object)) for c in columns})
