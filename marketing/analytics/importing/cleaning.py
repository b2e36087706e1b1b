"""Turn frames of source strings into validated products, customers and events (and, for
campaign results, recipients' outcomes).

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
from .errors import KEPT_AS_TEXT, CleanOptionError, ImportFileError, Issue
from .fields import FIELDS, QUANTITY_LIMIT, REQUIRED_ONE_OF, VALUE_LIMIT, FieldSpec, one_of_label
from .formats import EXTRA_COLUMN, NUL_COLUMN, ROW_COLUMN
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
from .kinds import KIND_HASHES, KIND_NAMES, RESULT_COLUMNS, RETURN, KindRules
from .parsing import (
    DAY_FIRST,
    EITHER_ORDER,
    MONTH_FIRST,
    NAT,
    check_timezone,
    longer_than,
    parse_datetimes,
    parse_datetimes_ordered,
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
    # How to read 01/02/2024 when no date in its column shows the order (a day over 12):
    # False is 2 January. Such rows are counted ("ambiguous_dates_assumed_month_first").
    dayfirst: bool = False
    default_time: dt.datetime | None = None  # tz-aware; reviews without a date get it


@dataclass
class _DateOrder:
    """What one date column has shown of its day/month order so far, as (row, value)."""

    day_first: tuple[int, str] | None = None  # first date only day/month fits (13/02/2024)
    month_first: tuple[int, str] | None = None  # first date only month/day fits (02/13/2024)
    either: tuple[int, str] | None = None  # first date kept that reads both ways (01/02/2024)
    assumed: int = 0  # dates read by CleanOptions.dayfirst while the order was still unknown


@dataclass
class CleanedChunk:
    """What one chunk yields: rows ready to write, and the problems found."""

    products: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)
    # Campaign results only: one row per kept recipient row (kinds.RESULT_COLUMNS).
    results: pd.DataFrame = field(default_factory=lambda: empty_frame(RESULT_COLUMNS))


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
        group = REQUIRED_ONE_OF.get(kind, ())
        if group and not any(self.mapping[name] for name in group):
            label = one_of_label(kind)
            raise ImportFileError(
                f"required column {label} is missing (map at least one)", column=label
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
        self._date_orders: dict[str, _DateOrder] = {}  # source column -> order seen so far
        self._catalog_hash = hash_scalar(int(options.catalog_id))
        self._checked = False

    @staticmethod
    def _compile(patterns) -> re.Pattern | None:
        parts = []
        if isinstance(patterns, str):
            patterns = [patterns]
        for p in patterns or ():
            if not isinstance(p, str):
                raise CleanOptionError(
                    "non_product_patterns", f"pattern {p!r} is not text (a regular expression)"
                )
            try:
                re.compile(p)
            except re.error as exc:
                raise CleanOptionError(
                    "non_product_patterns", f"bad non-product pattern {p!r}: {exc}"
                ) from None
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
        if NUL_COLUMN in ch.frame:
            # No database text column can hold NUL (PostgreSQL refuses it outright) or a lone
            # surrogate (no encoder takes it).
            where = ch.frame[NUL_COLUMN].to_numpy(dtype=object)
            for col in pd.unique(where[where != ""]).tolist():
                values = ch.frame[col].to_numpy(object)
                reasons = [
                    "contains a NUL character"
                    if "\x00" in v
                    else "contains a lone surrogate (such as \\ud800), which is not text"
                    for v in values[where == col].tolist()
                ]
                ch.reject(where == col, col, reasons, values)
        products, customers, events, *results = getattr(self, f"_clean_{self.kind}")(ch)
        issues = ch.issues()
        self.counts["rejected_rows"] += int(ch.rejected.sum())
        self.counts["formula_cells"] += sum(i.action == KEPT_AS_TEXT for i in issues)
        return CleanedChunk(
            products if products is not None else empty_frame(PRODUCT_COLUMNS),
            customers if customers is not None else empty_frame(CUSTOMER_COLUMNS),
            events if events is not None else empty_frame(EVENT_COLUMNS),
            issues,
            *results,
        )

    # ------------------------------------------------------------ shared checks

    def _source_columns(self, frame: pd.DataFrame) -> list[str]:
        return [c for c in frame.columns if c not in (ROW_COLUMN, EXTRA_COLUMN, NUL_COLUMN)]

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
        with np.errstate(invalid="ignore", over="ignore"):
            # Compared as stored (2 decimals): 999999999999.999 would round up to the limit.
            ch.reject(np.abs(np.round(numbers, 2)) >= limit, col, "number too large", values)
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
        col = ch.col(name)
        if not col:
            return np.full(ch.n, NAT, dtype=np.int64)
        state = self._date_orders.setdefault(col, _DateOrder())
        dayfirst = self._dayfirst(state)
        ns, bad, order = parse_datetimes_ordered(
            values, tz=self.options.timezone, dayfirst=dayfirst
        )
        ch.reject(bad, col, "unparseable date", values)
        if order is not None:
            self._date_order(ch, col, state, values, ns, order, dayfirst)
        if required:
            self._required(ch, name, values)
        return ns

    def _dayfirst(self, state: _DateOrder) -> bool:
        """The column's day/month order if its dates showed exactly one, else the option."""
        if (state.day_first is None) != (state.month_first is None):
            return state.day_first is not None
        return self.options.dayfirst

    @property
    def _assumed_key(self) -> str:
        return f"ambiguous_dates_assumed_{'day' if self.options.dayfirst else 'month'}_first"

    def _date_order(
        self,
        ch: Chunk,
        col: str,
        state: _DateOrder,
        values: np.ndarray,
        ns: np.ndarray,
        order: np.ndarray,
        parsed_dayfirst: bool,
    ) -> None:
        """Settle the day/month order of dates such as 01/02/2024 from the whole column.

        A date whose day is over 12 shows the order (13/02/2024: day first). Dates that read
        both ways follow it, even rows before it in the chunk; with no such date yet they
        follow `CleanOptions.dayfirst` and are counted. A column showing both orders has
        its two-way dates rejected. A later chunk that contradicts what earlier chunks
        already read two ways stops the import: those rows cannot be taken back.
        """
        for kind, attr in ((DAY_FIRST, "day_first"), (MONTH_FIRST, "month_first")):
            if getattr(state, attr) is None:
                hit = np.flatnonzero(order == kind)
                if hit.size:
                    setattr(state, attr, (int(ch.rows[hit[0]]), str(values[hit[0]])))
        either = np.flatnonzero(order == EITHER_ORDER)
        if state.day_first is not None and state.month_first is not None:
            (d_row, d_value), (m_row, m_value) = state.day_first, state.month_first
            if state.either is not None:
                e_row, e_value = state.either
                raise ImportFileError(
                    f"the dates mix day/month order (row {d_row}: {d_value!r}) and month/day "
                    f"order (row {m_row}: {m_value!r}), so earlier dates such as row {e_row} "
                    f"({e_value!r}) cannot be read reliably; write the dates as YYYY-MM-DD",
                    column=col,
                )
            mask = np.zeros(ch.n, dtype=bool)
            mask[either] = True
            reason = (
                f"ambiguous mixed day/month order: the column has day/month (row {d_row}) "
                f"and month/day (row {m_row}) dates"
            )
            ch.reject(mask, col, reason, values)
            return
        if state.day_first is not None or state.month_first is not None:
            dayfirst = state.day_first is not None
            if state.assumed:
                if dayfirst != self.options.dayfirst:
                    row, value = state.day_first or state.month_first
                    e_row, e_value = state.either
                    shown, read = (
                        ("day/month", "month/day") if dayfirst else ("month/day", "day/month")
                    )
                    raise ImportFileError(
                        f"row {row} ({value!r}) shows the dates are {shown}, but "
                        f"{state.assumed:,} earlier dates such as row {e_row} ({e_value!r}) "
                        f"were already read as {read}; write the dates as YYYY-MM-DD",
                        column=col,
                    )
                self._drop_assumed(state)  # the guess was right
            if either.size and dayfirst != parsed_dayfirst:
                ns[either] = parse_datetimes(
                    values[either], tz=self.options.timezone, dayfirst=dayfirst
                )[0]
        elif either.size:
            state.assumed += int(either.size)
            self.counts[self._assumed_key] += int(either.size)
        if either.size and state.either is None:
            state.either = (int(ch.rows[either[0]]), str(values[either[0]]))

    def _drop_assumed(self, state: _DateOrder) -> None:
        key = self._assumed_key
        self.counts[key] -= state.assumed
        if self.counts[key] <= 0:
            del self.counts[key]
        state.assumed = 0

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
            outside = (rating < 1) | (rating > 5)
            ch.reject(outside, col, "rating outside 1..5", ch.raw("rating"))
            # The database stores whole stars; 3.5 would be rounded differently per backend.
            ch.reject(
                ~outside & np.isfinite(rating) & (rating != np.floor(rating)),
                col,
                "rating must be a whole number from 1 to 5",
                ch.raw("rating"),
            )
        if required:
            self._required(ch, "rating", ch.raw("rating"))
        return rating

    def _line_value(self, ch: Chunk, value: np.ndarray, computed: np.ndarray) -> None:
        """Reject rows whose unit price × quantity (computed rows) the database cannot hold."""
        with np.errstate(invalid="ignore", over="ignore"):
            too_large = computed & (np.abs(np.round(value, 2)) >= VALUE_LIMIT)
        ch.reject(
            too_large,
            ch.col("unit_price"),
            f"unit price × quantity is too large (the line value must be under {VALUE_LIMIT:,.0f})",
            ch.raw("unit_price"),
        )

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
