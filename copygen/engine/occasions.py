"""A small per-country calendar of shopping occasions, with localized names.

``occasion_for(country, day)`` answers "is there an occasion to mention on this day?": the
occasion whose season (``lead_days`` before it up to the day itself, or the sale window for
Black Friday → Cyber Monday) contains ``day``. The returned ``Occasion.ends_on`` is the last
day of the occasion, which is what lets the urgent tone say "ends on …".

Dates:
- fixed: Christmas (12-25), New Year (01-01), Valentine's Day (02-14), Singles' Day (CN 11-11);
- computed: Black Friday (day after the 4th Thursday of November), Cyber Monday (three days
  later), Easter (Gregorian computus, "anonymous" algorithm of Meeus/Jones/Butcher),
  Mother's Day by country (2nd Sunday of May in most; Mothering Sunday = Easter − 21 days in
  GB/IE; first Sunday of May in ES/PT/ZA/LT/HU; last Sunday of May in FR unless it is
  Pentecost, then the first Sunday of June; May 10 in MX/IN…);
- tables (lunar / lunisolar, not computed): Chinese New Year and Diwali 2024–2030.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .types import Occasion

# Chinese New Year (first day of the first lunar month).
CHINESE_NEW_YEAR = {
    2024: dt.date(2024, 2, 10),
    2025: dt.date(2025, 1, 29),
    2026: dt.date(2026, 2, 17),
    2027: dt.date(2027, 2, 6),
    2028: dt.date(2028, 1, 26),
    2029: dt.date(2029, 2, 13),
    2030: dt.date(2030, 2, 3),
}
# Diwali (Lakshmi Puja), as in India's national holiday lists.
DIWALI = {
    2024: dt.date(2024, 10, 31),
    2025: dt.date(2025, 10, 20),
    2026: dt.date(2026, 11, 8),
    2027: dt.date(2027, 10, 29),
    2028: dt.date(2028, 10, 17),
    2029: dt.date(2029, 11, 5),
    2030: dt.date(2030, 10, 26),
}

NAMES: dict[str, dict[str, str]] = {
    "black_friday": {
        "en": "Black Friday",
        "de": "Black Friday",
        "fr": "Black Friday",
        "es": "Black Friday",
        "zh": "黑色星期五",
    },
    "cyber_monday": {
        "en": "Cyber Monday",
        "de": "Cyber Monday",
        "fr": "Cyber Monday",
        "es": "Cyber Monday",
        "zh": "网络星期一",
    },
    "christmas": {
        "en": "Christmas",
        "de": "Weihnachten",
        "fr": "Noël",
        "es": "Navidad",
        "zh": "圣诞节",
    },
    "new_year": {
        "en": "New Year",
        "de": "Neujahr",
        "fr": "Nouvel An",
        "es": "Año Nuevo",
        "zh": "新年",
    },
    "valentines_day": {
        "en": "Valentine's Day",
        "de": "Valentinstag",
        "fr": "Saint-Valentin",
        "es": "San Valentín",
        "zh": "情人节",
    },
    "mothers_day": {
        "en": "Mother's Day",
        "de": "Muttertag",
        "fr": "Fête des mères",
        "es": "Día de la Madre",
        "zh": "母亲节",
    },
    "singles_day": {
        "en": "Singles' Day",
        "de": "Singles' Day",
        "fr": "Fête des célibataires",
        "es": "Día del Soltero",
        "zh": "双十一",
    },
    "diwali": {"en": "Diwali", "de": "Diwali", "fr": "Diwali", "es": "Diwali", "zh": "排灯节"},
    "chinese_new_year": {
        "en": "Chinese New Year",
        "de": "Chinesisches Neujahr",
        "fr": "Nouvel An chinois",
        "es": "Año Nuevo chino",
        "zh": "春节",
    },
    "easter": {"en": "Easter", "de": "Ostern", "fr": "Pâques", "es": "Pascua", "zh": "复活节"},
}

_WESTERN = {
    "US", "GB", "UK", "IE", "DE", "AT", "CH", "FR", "BE", "NL", "LU", "ES", "PT", "IT", "SE",
    "NO", "DK", "FI", "PL", "CZ", "AU", "NZ", "CA", "MX", "BR", "AR", "CL", "CO", "ZA", "IS",
    "GR", "CY", "MT", "LT", "LV", "EE", "HU", "SK", "SI", "HR", "RO", "BG", "JP", "SG", "HK",
    "IN", "AE", "IL", "KR", "TW", "CN", "MY", "PH",
}  # fmt: skip
BLACK_FRIDAY_COUNTRIES = _WESTERN - {"JP", "KR", "TW", "IL", "HK", "MY"}
CHRISTMAS_COUNTRIES = _WESTERN | {"RU", "UA"}
CHINESE_NEW_YEAR_COUNTRIES = {"CN", "TW", "HK", "SG", "MY", "VN", "KR"}
SINGLES_DAY_COUNTRIES = {"CN"}
DIWALI_COUNTRIES = {"IN", "NP", "SG", "MY"}
EASTER_COUNTRIES = _WESTERN - {"JP", "CN", "HK", "TW", "KR", "IN", "AE", "IL", "SG", "MY"}

# How many days before an occasion copy may start to mention it.
LEAD_DAYS = {
    "black_friday": 10,
    "cyber_monday": 0,  # covered by the Black Friday window until then
    "christmas": 30,
    "new_year": 6,
    "valentines_day": 14,
    "mothers_day": 14,
    "singles_day": 10,
    "diwali": 21,
    "chinese_new_year": 21,
    "easter": 14,
}


def easter(year: int) -> dt.date:
    """Western (Gregorian) Easter Sunday — the anonymous Gregorian computus."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """n-th (1-based; -1 = last) ``weekday`` (Mon=0) of the month."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def black_friday(year: int) -> dt.date:
    return _nth_weekday(year, 11, 3, 4) + dt.timedelta(days=1)


def mothers_day(country: str, year: int) -> dt.date | None:
    c = country.upper()
    if c in {"GB", "UK", "IE"}:
        return easter(year) - dt.timedelta(days=21)  # Mothering Sunday
    if c in {"ES", "PT", "ZA", "LT", "HU"}:
        return _nth_weekday(year, 5, 6, 1)
    if c == "FR":
        last = _nth_weekday(year, 5, 6, -1)
        pentecost = easter(year) + dt.timedelta(days=49)
        return last + dt.timedelta(days=7) if last == pentecost else last
    if c in {"MX", "IN", "SV", "GT"}:
        return dt.date(year, 5, 10)
    if c in {"US", "CA", "DE", "AT", "CH", "IT", "NL", "BE", "DK", "FI", "AU", "NZ", "JP"}:
        return _nth_weekday(year, 5, 6, 2)
    if c in {"CN", "HK", "TW", "SG", "BR", "GR", "TR", "CZ", "SK", "HR", "EE", "IS"}:
        return _nth_weekday(year, 5, 6, 2)
    return None


@dataclass(frozen=True)
class Entry:
    key: str
    starts: dt.date  # first day copy may mention it
    day: dt.date  # the occasion itself
    ends: dt.date  # last day (offers end)


def occasions_for_year(country: str, year: int) -> list[Entry]:
    """Every occasion of ``country`` in ``year``, sorted by its day."""
    c = (country or "").upper()
    out: list[Entry] = []

    def add(key: str, day: dt.date | None, ends: dt.date | None = None) -> None:
        if day is not None:
            out.append(Entry(key, day - dt.timedelta(days=LEAD_DAYS[key]), day, ends or day))

    if c in BLACK_FRIDAY_COUNTRIES:
        bf = black_friday(year)
        add("black_friday", bf)
        add("cyber_monday", bf + dt.timedelta(days=3))
    if c in CHRISTMAS_COUNTRIES:
        add("christmas", dt.date(year, 12, 25))
    add("new_year", dt.date(year, 1, 1))
    if c not in {"IN", "CN"}:
        add("valentines_day", dt.date(year, 2, 14))
    add("mothers_day", mothers_day(c, year))
    if c in SINGLES_DAY_COUNTRIES:
        add("singles_day", dt.date(year, 11, 11))
    if c in DIWALI_COUNTRIES:
        add("diwali", DIWALI.get(year))
    if c in CHINESE_NEW_YEAR_COUNTRIES:
        add("chinese_new_year", CHINESE_NEW_YEAR.get(year))
    if c in EASTER_COUNTRIES:
        add("easter", easter(year))
    return sorted(out, key=lambda e: (e.day, e.key))


def occasion_name(key: str, locale: str = "en") -> str:
    names = NAMES.get(key, {})
    return names.get(locale.split("_")[0], names.get("en", key))


def occasion_for(country: str, day: dt.date, *, locale: str = "en") -> Occasion | None:
    """The occasion whose season contains ``day`` in ``country`` (the nearest one when
    seasons overlap), localized; None when there is none or the country is unknown."""
    if not country:
        return None
    candidates = [
        e
        for year in (day.year, day.year + 1)
        for e in occasions_for_year(country, year)
        if e.starts <= day <= e.ends
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda e: (e.day - day).days)
    return Occasion(
        key=best.key, name=occasion_name(best.key, locale), ends_on=best.ends.isoformat()
    )


def occasion_by_key(key: str, country: str, day: dt.date, *, locale: str = "en") -> Occasion | None:
    """The next occurrence (on or after ``day``) of occasion ``key`` in ``country``."""
    for year in (day.year, day.year + 1):
        for e in occasions_for_year(country, year):
            if e.key == key and e.ends >= day:
                return Occasion(
                    key=key, name=occasion_name(key, locale), ends_on=e.ends.isoformat()
                )
    return None
