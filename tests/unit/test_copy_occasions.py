"""The occasion calendar: computed, country-specific and tabled dates; localized names."""

from __future__ import annotations

import datetime as dt

from copygen.engine.occasions import (
    black_friday,
    easter,
    mothers_day,
    occasion_by_key,
    occasion_for,
    occasions_for_year,
)


def test_easter_by_computus():
    assert easter(2025) == dt.date(2025, 4, 20)
    assert easter(2024) == dt.date(2024, 3, 31)
    assert easter(2019) == dt.date(2019, 4, 21)
    assert easter(2038) == dt.date(2038, 4, 25)


def test_black_friday_and_cyber_monday():
    assert black_friday(2024) == dt.date(2024, 11, 29)
    assert black_friday(2025) == dt.date(2025, 11, 28)
    keys = {e.key: e.day for e in occasions_for_year("DE", 2025)}
    assert keys["cyber_monday"] == dt.date(2025, 12, 1)


def test_singles_day_in_china_only():
    occ = occasion_for("CN", dt.date(2025, 11, 5), locale="zh")
    assert occ.key == "singles_day" and occ.name == "双十一" and occ.ends_on == "2025-11-11"
    assert "singles_day" not in {e.key for e in occasions_for_year("US", 2025)}


def test_mothers_day_by_country():
    assert mothers_day("US", 2025) == dt.date(2025, 5, 11)
    assert mothers_day("GB", 2025) == dt.date(2025, 3, 30)  # Mothering Sunday
    assert mothers_day("ES", 2025) == dt.date(2025, 5, 4)
    assert mothers_day("FR", 2025) == dt.date(2025, 5, 25)
    assert mothers_day("FR", 2024) == dt.date(2024, 5, 26)
    assert mothers_day("MX", 2025) == dt.date(2025, 5, 10)


def test_tabled_lunar_dates():
    assert occasion_by_key("diwali", "IN", dt.date(2025, 1, 1)).ends_on == "2025-10-20"
    assert occasion_by_key("chinese_new_year", "CN", dt.date(2025, 1, 1)).ends_on == "2025-01-29"
    assert occasion_by_key("diwali", "IN", dt.date(2031, 1, 1)) is None  # beyond the table


def test_localized_names_and_no_occasion():
    assert occasion_for("DE", dt.date(2025, 12, 20), locale="de").name == "Weihnachten"
    assert occasion_for("FR", dt.date(2025, 12, 20), locale="fr").name == "Noël"
    assert occasion_for("ES", dt.date(2026, 1, 1), locale="es").name == "Año Nuevo"
    assert occasion_for("US", dt.date(2025, 8, 10)) is None
    assert occasion_for("", dt.date(2025, 12, 20)) is None
