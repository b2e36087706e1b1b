"""Vectorised parsing of string columns into typed arrays, with a mask of the bad values.

Every parser takes a numpy object array of str ("" = blank) and returns the typed values
plus a boolean `bad` mask (blank values are never bad; the caller decides whether blank
is allowed). Fast paths cover the common shapes of large files; slow, forgiving fallbacks
(localised numbers, other date formats) run only on the values the fast path refused,
usually on their unique values.
"""

from __future__ import annotations

import re
import warnings
from operator import itemgetter
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .errors import CleanOptionError

NAT = np.iinfo(np.int64).min  # int64 view of NaT

_WS = " \t\r\n\xa0\u3000"
_FORMULA_START = ("=", "+", "-", "@")


def blank(values: np.ndarray) -> np.ndarray:
    return values == ""


def strip(values: np.ndarray) -> np.ndarray:
    """Strip surrounding whitespace; costs one join and a few searches when there is none."""
    return scan_text(values)[0]


def scan_text(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """(values stripped, whether any may be a formula), from a single join of the column."""
    if values.size == 0:
        return values, False
    joined = "\x00".join(values)
    for ch in _WS:
        if ch in joined and (
            joined.startswith(ch)
            or joined.endswith(ch)
            or "\x00" + ch in joined
            or ch + "\x00" in joined
        ):
            values = pd.Series(values, dtype=object).str.strip().to_numpy(dtype=object)
            joined = "\x00".join(values)
            break
    maybe = any(joined.startswith(c) or "\x00" + c in joined for c in _FORMULA_START)
    return values, maybe


def longer_than(values: np.ndarray, limit: int) -> np.ndarray | None:
    """Mask of values over limit characters, or None when there are none."""
    if values.size == 0 or max(map(len, values)) <= limit:
        return None
    return np.fromiter(map(len, values), dtype=np.int64, count=values.size) > limit


def by_unique(values: np.ndarray, func) -> np.ndarray:
    """Apply a per-value Python function once per distinct value (ids, kinds, flags).

    values holds str only (frames never carry NaN), so no NA pass is needed.
    """
    codes, uniques = pd.factorize(values)
    mapped = np.array([func(u) for u in uniques], dtype=object)
    return mapped[codes] if len(mapped) else np.empty(0, dtype=object)


# --------------------------------------------------------------------------- formulas

_PLAIN_NUMBER = re.compile(r"[+-][\d\s().,/]*\d[\d\s().,/-]*")


def formula_mask(values: np.ndarray) -> np.ndarray | None:
    """Cells a spreadsheet would run as a formula (=, +, -, @ first), except plain numbers
    such as -3 or +44 20 7946 0958. None when the column has none (the common case)."""
    if values.size == 0:
        return None
    joined = "\x00".join(values)
    if not any(joined.startswith(c) or "\x00" + c in joined for c in _FORMULA_START):
        return None
    series = pd.Series(values, dtype=object)
    cand = series.str[:1].isin(_FORMULA_START).to_numpy() & (series.str.len() > 1).to_numpy()
    for i in np.flatnonzero(cand):
        if _PLAIN_NUMBER.fullmatch(values[i]):
            cand[i] = False
    return cand if cand.any() else None


# ---------------------------------------------------------------------------- numbers

_CURRENCY = r"(?:[$€£¥₹₽₩]|[A-Z]{3})"
_LOCAL_NUMBER = re.compile(
    rf"([+-]?)\s*(?:{_CURRENCY}\s*)?([+-]?)\s*([\d][\d.,' \u00a0\u202f]*)\s*(?:{_CURRENCY})?"
)


def _localised_number(text: str) -> float:
    """'1.234,50', '1,234.50', '12,5', '€ 12.50', '12.50 EUR' -> float; NaN if not a number."""
    m = _LOCAL_NUMBER.fullmatch(text.strip())
    if not m or (m.group(1) and m.group(2)):
        return np.nan
    sign = -1.0 if "-" in (m.group(1) + m.group(2)) else 1.0
    digits = re.sub(r"[' \u00a0\u202f]", "", m.group(3))
    if "," in digits and "." in digits:
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        digits = digits.replace("." if decimal == "," else ",", "").replace(",", ".")
    elif "," in digits:
        if re.fullmatch(r"\d{1,3}(,\d{3})+", digits):
            digits = digits.replace(",", "")  # 1,234 / 1,234,567: thousands
        elif digits.count(",") == 1:
            digits = digits.replace(",", ".")  # 12,50: decimal comma
        else:
            return np.nan
    elif re.fullmatch(r"\d{1,3}(\.\d{3}){2,}", digits):
        digits = digits.replace(".", "")  # 1.234.567
    try:
        return sign * float(digits)
    except ValueError:
        return np.nan


def parse_numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN for blank) and the mask of non-blank values that are not numbers."""
    out = np.full(values.size, np.nan)
    filled = np.flatnonzero(values != "")
    if filled.size == 0:
        return out, np.zeros(values.size, dtype=bool)
    sub = values[filled]
    try:
        parsed = sub.astype(np.float64)  # float() per value, in C
    except (ValueError, TypeError):
        parsed = pd.to_numeric(sub, errors="coerce").astype(np.float64, copy=False)
    failed = ~np.isfinite(parsed)
    if failed.any():
        parsed = parsed.copy()
        idx = np.flatnonzero(failed)
        texts = pd.Series(sub[idx], dtype=object)
        # The common European shape (12,5 / 1234,56) in bulk; the rest value by value.
        comma = texts.str.fullmatch(r"[+-]?\d+,(?:\d{1,2}|\d{4,})").to_numpy(dtype=bool)
        if comma.any():
            parsed[idx[comma]] = texts[comma].str.replace(",", ".", regex=False).astype(float)
        rest = idx[~comma]
        if rest.size:
            parsed[rest] = by_unique(sub[rest], _localised_number).astype(np.float64)
        failed = ~np.isfinite(parsed)
    out[filled] = parsed
    bad = np.zeros(values.size, dtype=bool)
    bad[filled[failed]] = True
    return out, bad


def parse_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values, not-a-number mask, not-an-integer mask); "3.0" is the integer 3."""
    filled = values != ""
    if filled.all():
        try:
            ints = values.astype(np.int64)
        except (ValueError, TypeError, OverflowError):
            pass
        else:
            none = np.zeros(values.size, dtype=bool)
            return ints.astype(np.float64), none, none
    numbers, bad = parse_numbers(values)
    with np.errstate(invalid="ignore"):
        fractional = filled & ~bad & (np.floor(numbers) != numbers)
    return numbers, bad, fractional


# --------------------------------------------------------------------------- booleans

_TRUE = {
    "true", "t", "yes", "y", "1", "on", "x", "in stock", "instock", "in_stock", "available",
    "opt-in", "optin", "opted in", "subscribed", "granted", "ja", "oui", "si", "sí",
}  # fmt: skip
_FALSE = {
    "false", "f", "no", "n", "0", "off", "out of stock", "outofstock", "out_of_stock",
    "unavailable", "sold out", "soldout", "opt-out", "optout", "opted out", "unsubscribed",
    "denied", "nein", "non",
}  # fmt: skip


def parse_bools(values: np.ndarray, *, counts: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Object array of True/False/None (blank) and the mask of unrecognised values.

    counts=True also reads a number as "more than zero" (a stock count in an in-stock column).
    """

    def one(text: str):
        key = text.strip().lower()
        if not key:
            return None
        if key in _TRUE:
            return True
        if key in _FALSE:
            return False
        if counts:
            try:
                return float(key) > 0
            except ValueError:
                pass
        return "?"

    parsed = by_unique(values, one)
    bad = parsed == "?"
    parsed[bad] = None
    return parsed, bad


# -------------------------------------------------------------------------- datetimes

_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})\Z")
_HAS_OFFSET = _OFFSET.pattern.replace("(Z|", "(?:Z|")
_TIME_FORMATS_MDY = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m-%d-%Y %H:%M:%S",
    "%m-%d-%Y %H:%M",
    "%m-%d-%Y",
    "%m/%d/%y %H:%M",
    "%m/%d/%y",
)
_TIME_FORMATS_DMY = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
    "%d/%m/%Y %I:%M:%S %p",
    "%d/%m/%Y %I:%M %p",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%d/%m/%y %H:%M",
    "%d/%m/%y",
)
_TIME_FORMATS_ANY = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
)

# Day/month order of a date written with its day and month first (01/02/2024, 1-2-24): what
# `parse_datetimes_ordered` reports per value. Dotted dates (01.02.2024) are always day first.
SAME_ORDER = 0  # no such date, or one that reads the same either way (05/05/2024)
DAY_FIRST = 1  # only day/month makes sense (13/02/2024)
MONTH_FIRST = 2  # only month/day makes sense (02/13/2024)
EITHER_ORDER = 3  # both make sense and give different dates (01/02/2024)
_NUMERIC_DATE = re.compile(r"\s*(\d{1,2})[/-](\d{1,2})[/-](?:\d{4}|\d{2})(?![\d/-])")


def check_timezone(tz: str) -> str:
    """Fail early (ValueError) on a time zone name the importer could not apply."""
    try:
        ZoneInfo(tz)
    except (KeyError, ValueError, TypeError) as exc:
        raise CleanOptionError("timezone", f"unknown time zone {tz!r}") from exc
    return tz


def parse_datetimes(
    values: np.ndarray, *, tz: str, dayfirst: bool
) -> tuple[np.ndarray, np.ndarray]:
    """int64 nanoseconds since the epoch in UTC (NAT for blank) and the unparseable mask.

    Naive times are read in `tz`. ISO 8601 is parsed in bulk; other shapes (12/01/2010
    08:26, 01.12.2010, epoch seconds, "1 March 2024") only for the values that failed.
    A date such as 01/02/2024 is read day first when `dayfirst`; one that only makes sense
    in one order (13/02/2024) is read in that order.
    """
    ns, bad, _order = parse_datetimes_ordered(values, tz=tz, dayfirst=dayfirst)
    return ns, bad


def parse_datetimes_ordered(
    values: np.ndarray, *, tz: str, dayfirst: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`parse_datetimes`, plus the day/month order each value shows (SAME_ORDER, DAY_FIRST,
    MONTH_FIRST, EITHER_ORDER; int8), or None when no value is a day-month-year date (every
    ISO 8601 file: the fast path pays nothing for it).
    """
    out = np.full(values.size, NAT, dtype=np.int64)
    order = None
    filled = np.flatnonzero(values != "")
    if filled.size:
        sub = values[filled]
        parsed = _parse_iso(sub, tz)
        failed = parsed == NAT
        if failed.any():
            codes, uniques = pd.factorize(sub[failed], use_na_sentinel=False)
            other, other_order = _parse_other(np.asarray(uniques, dtype=object), tz, dayfirst)
            parsed[failed] = other[codes]
            if other_order.any():
                order = np.zeros(values.size, dtype=np.int8)
                order[filled[failed]] = other_order[codes]
        out[filled] = parsed
    bad = (values != "") & (out == NAT)
    return out, bad, order


def _localize(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    if index.tz is None:
        if tz != "UTC":
            index = index.tz_localize(
                tz, ambiguous=np.ones(len(index), dtype=bool), nonexistent="shift_forward"
            )
        else:
            index = index.tz_localize("UTC")
    return index.tz_convert("UTC").asi8.copy()


def _iso(values: np.ndarray, **kwargs) -> pd.DatetimeIndex | pd.Index:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(values, format="ISO8601", errors="coerce", **kwargs)


def _parse_iso(values: np.ndarray, tz: str) -> np.ndarray:
    m = _OFFSET.search(values[0])
    if m:
        start = m.start(1)
        while start and values[0][start - 1] == " ":
            start -= 1
        suffix = values[0][start:]
        joined = "\x00".join(values)
        if joined.endswith(suffix) and joined.count(suffix + "\x00") == values.size - 1:
            # One fixed offset on every value (typically "Z"): cut it off, parse naive and
            # shift; far faster than pandas' per-value time zone handling.
            cut = itemgetter(slice(0, -len(suffix)))
            naive = np.fromiter(map(cut, values), dtype=object, count=values.size)
            index = _iso(naive)
            if isinstance(index, pd.DatetimeIndex) and index.tz is None:
                ns = index.asi8.copy()
                ok = ns != NAT
                ns[ok] -= _offset_ns(suffix.strip())
                return ns
    index = _iso(values)
    if isinstance(index, pd.DatetimeIndex):
        return _localize(index, tz)
    # Mixed naive and offset values: split them.
    has_offset = pd.Series(values, dtype=object).str.contains(_HAS_OFFSET, regex=True)
    has_offset = has_offset.to_numpy(dtype=bool)
    out = np.full(values.size, NAT, dtype=np.int64)
    if has_offset.any():
        out[has_offset] = _iso(values[has_offset], utc=True).asi8
    if (~has_offset).any():
        naive = _iso(values[~has_offset])
        if isinstance(naive, pd.DatetimeIndex):
            out[~has_offset] = _localize(naive, tz)
    return out


def _offset_ns(suffix: str) -> int:
    if suffix == "Z":
        return 0
    sign = -1 if suffix[0] == "-" else 1
    digits = suffix[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000_000


def _parse_other(values: np.ndarray, tz: str, dayfirst: bool) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-ISO values -> (UTC nanoseconds, NAT where unparseable; day/month order).

    Common spreadsheet layouts are tried as whole-array formats first: the preferred
    day/month order, then the other one (13/02/2024 only parses day first), then layouts
    without the question. The forgiving per-value parser only sees what is left (month
    names, odd separators).
    """
    values = strip(values)
    out = np.full(values.size, NAT, dtype=np.int64)
    order = np.zeros(values.size, dtype=np.int8)
    digits = np.fromiter(map(str.isdigit, values), dtype=bool, count=values.size)
    # Unix time: 10 digits are seconds, 13 are milliseconds (2001-2286); other numbers are
    # not dates (a bare "5" is not the 5th of this month).
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=values.size)
    for size, unit in ((10, 1_000_000_000), (13, 1_000_000)):
        hit = digits & (lengths == size)
        if hit.any():
            out[hit] = values[hit].astype(np.int64) * unit
    todo = np.flatnonzero(~digits & (lengths > 0))
    families = [(_TIME_FORMATS_MDY, MONTH_FIRST), (_TIME_FORMATS_DMY, DAY_FIRST)]
    if dayfirst:
        families.reverse()
    families.append((_TIME_FORMATS_ANY, None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for formats, family in families:
            for fmt in formats:
                if todo.size == 0:
                    break
                index = pd.DatetimeIndex(pd.to_datetime(values[todo], format=fmt, errors="coerce"))
                ok = ~index.isna()
                if ok.any():
                    hit, index = todo[ok], index[ok]
                    out[hit] = _localize(index, tz)
                    if family is not None:
                        # Read in this family's order: a day over 12 proves the order, a
                        # different day and month could be read the other way too.
                        day, month = index.day.to_numpy(), index.month.to_numpy()
                        order[hit] = np.where(
                            day == month, SAME_ORDER, np.where(day > 12, family, EITHER_ORDER)
                        )
                    todo = todo[~ok]
        for i in todo.tolist():
            text = values[i]
            if len(text) > 64 or not any(c.isdigit() for c in text):
                continue
            try:
                out[i] = _ts_ns(pd.Timestamp(pd.to_datetime(text, dayfirst=dayfirst)), tz)
            except (ValueError, OverflowError, TypeError):
                continue
            if out[i] != NAT:
                order[i] = _order_of(text)
    return out, order


def _order_of(text: str) -> int:
    """Day/month order of one date that starts with its day and month (1/2/24 3pm)."""
    m = _NUMERIC_DATE.match(text)
    if not m:
        return SAME_ORDER
    a, b = int(m.group(1)), int(m.group(2))
    if a == b or not (1 <= a <= 31 and 1 <= b <= 31) or (a > 12 and b > 12):
        return SAME_ORDER
    if a > 12:
        return DAY_FIRST
    return MONTH_FIRST if b > 12 else EITHER_ORDER


def _ts_ns(ts: pd.Timestamp, tz: str) -> int:
    if ts is pd.NaT:
        return NAT
    try:
        if ts.tzinfo is None:
            ts = ts.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
        return int(ts.tz_convert("UTC").as_unit("ns").value)
    except (ValueError, OverflowError):  # out of the 1677-2262 range pandas can hold
        return NAT


# ------------------------------------------------------------------- emails, URLs, langs

EMAIL = re.compile(r"[^@\s\"<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
URL = re.compile(r"https?://[^\s/?#.][^\s]*", re.IGNORECASE)


def invalid(values: np.ndarray, pattern: re.Pattern) -> np.ndarray:
    """Mask of non-blank values that do not fully match pattern."""
    filled = values != ""
    out = np.zeros(values.size, dtype=bool)
    if filled.any():
        ok = pd.Series(values[filled], dtype=object).str.fullmatch(
            pattern.pattern, flags=pattern.flags
        )
        out[np.flatnonzero(filled)] = ~ok.to_numpy(dtype=bool)
    return out


_LANGUAGE_NAMES = {
    "english": "en", "german": "de", "deutsch": "de", "french": "fr", "français": "fr",
    "francais": "fr", "spanish": "es", "español": "es", "espanol": "es", "italian": "it",
    "italiano": "it", "dutch": "nl", "nederlands": "nl", "portuguese": "pt", "português": "pt",
    "polish": "pl", "polski": "pl", "swedish": "sv", "svenska": "sv", "danish": "da",
    "dansk": "da", "norwegian": "no", "norsk": "no", "finnish": "fi", "suomi": "fi",
    "czech": "cs", "greek": "el", "turkish": "tr", "japanese": "ja", "chinese": "zh",
    "korean": "ko", "russian": "ru", "arabic": "ar",
}  # fmt: skip
_LANGUAGE_CODE = re.compile(r"([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,4}))?")


def parse_languages(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """'en', 'en_US', 'de-AT', 'English' -> 'en', 'en-us', 'de-at', 'en'; mask of others."""

    def one(text: str):
        key = text.strip().lower()
        if not key:
            return ""
        if key in _LANGUAGE_NAMES:
            return _LANGUAGE_NAMES[key]
        m = _LANGUAGE_CODE.fullmatch(key)
        if not m:
            return None
        return m.group(1) + (f"-{m.group(2)}" if m.group(2) else "")

    parsed = by_unique(values, one)
    bad = pd.isna(parsed)
    parsed[bad] = ""
    return parsed, bad
