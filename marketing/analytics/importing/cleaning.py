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

from .chunk import (
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    PRODUCT_COLUMNS,
    Chunk,
    empty_frame,
)
from .errors import KEPT_AS_TEXT, ImportFileError, Issue
from .fields import FIELDS, QUANTITY_LIMIT, FieldSpec
from .formats import EXTRA_COLUMN, ROW_COLUMN
from .keys import (
    KeyIndex,
    combine,
    first_seen,
    hash_ints,
    hash_scalar,
    hash_strings,
    occurrences,
    to_ids,
)
from .kinds import KIND_HASHES, KIND_NAMES, RETURN, KindRules
from .parsing import (
    NAT,
    check_timezone,
    longer_than,
    parse_datetimes,
    parse_ints,
    parse_numbers,
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


class Cleaner(KindRules):
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
        ch = Chunk(frame, self.mapping)
        self.counts["rows_read"] += ch.n
        if EXTRA_COLUMN in ch.frame:
            extra = ch.frame[EXTRA_COLUMN].to_numpy(dtype=object)
            ch.reject(extra != "", "", "more values than the header has columns", extra)
        products, customers, events = getattr(self, f"_clean_{self.kind}")(ch)
        issues = ch.issues()
        self.counts["rejected_rows"] += int(ch.rejected.sum())
        self.counts["formula_cells"] += sum(i.action == KEPT_AS_TEXT for i in issues)
        return CleanedChunk(
            products if products is not None else empty_frame(PRODUCT_COLUMNS),
            customers if customers is not None else empty_frame(CUSTOMER_COLUMNS),
            events if events is not None else empty_frame(EVENT_COLUMNS),
            issues,
        )

    # ------------------------------------------------------------ shared checks

    def _source_columns(self, frame: pd.DataFrame) -> list[str]:
        return [c for c in frame.columns if c not in (ROW_COLUMN, EXTRA_COLUMN)]

    def _unmapped(self, frame: pd.DataFrame) -> list[str]:
        mapped = {c for c in self.mapping.values() if c}
        return [c for c in self._source_columns(frame) if c not in mapped]

    def _required(self, ch: Chunk, name: str, values: np.ndarray) -> None:
        ch.reject(values == "", ch.col(name), "missing required value", values)

    def _max_length(self, ch: Chunk, name: str, values: np.ndarray) -> None:
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
        self, ch: Chunk, name: str, *, limit: float, negative: str | None = None
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

    def _quantity(self, ch: Chunk, *, required: bool) -> np.ndarray:
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

    def _datetimes(self, ch: Chunk, name: str, *, required: bool) -> np.ndarray:
        values = ch.raw(name)
        if not ch.col(name):
            return np.full(ch.n, NAT, dtype=np.int64)
        ns, bad = parse_datetimes(values, tz=self.options.timezone, dayfirst=self.options.dayfirst)
        ch.reject(bad, ch.col(name), "unparseable date", values)
        if required:
            self._required(ch, name, values)
        return ns

    def _dedupe_lines(self, ch: Chunk, idx: np.ndarray, line_hash: np.ndarray) -> np.ndarray:
        """Drop exact repeats of earlier lines (counted, not reported); returns kept idx."""
        repeat, _first = first_seen(self._lines, line_hash, ch.rows[idx])
        self.counts["duplicate_lines"] += int(repeat.sum())
        return idx[~repeat]

    def _unique_keys(
        self, ch: Chunk, idx: np.ndarray, keys: np.ndarray, column: str, what: str
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

    def _attributes(self, ch: Chunk, idx: np.ndarray) -> list[dict[str, str]]:
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

    def _formulas(self, ch: Chunk, idx: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        for name, values in fields.items():
            if ch.col(name):
                ch.keep_as_text(idx, ch.col(name), values)

    def _rating(self, ch: Chunk, *, required: bool) -> np.ndarray:
        rating = self._number(ch, "rating", limit=np.inf)
        col = ch.col("rating")
        with np.errstate(invalid="ignore"):
            ch.reject((rating < 1) | (rating > 5), col, "rating outside 1..5", ch.raw("rating"))
        if required:
            self._required(ch, "rating", ch.raw("rating"))
        return rating

    def _rest_columns(self, ch: Chunk, also: tuple[str, ...] = ()) -> list[str]:
        """Source columns that are not part of the natural event key (for line identity)."""
        return self._unmapped(ch.frame) + [ch.col(n) for n in also if ch.col(n)]

    def _emit_events(
        self,
        ch: Chunk,
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
            KIND_HASHES[kind[idx]],
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
                "kind": KIND_NAMES[kinds],
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

    def _str_hash(self, values, idx, ch: Chunk, name: str | None, *, categorize=False):
        if name is not None and not ch.col(name) and values is ch.blank:
            return hash_scalar("")  # unmapped: the same constant for every row
        factors = ch.factors(values)
        if factors is not None:
            codes, uniques = factors
            return hash_strings(uniques)[codes[idx]]
        return hash_strings(values[idx], categorize=categorize)
