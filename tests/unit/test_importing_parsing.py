import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketing.analytics.importing import CleanOptionError
from marketing.analytics.importing.parsing import (
    DAY_FIRST,
    EITHER_ORDER,
    MONTH_FIRST,
    NAT,
    SAME_ORDER,
    check_timezone,
    formula_mask,
    parse_bools,
    parse_datetimes,
    parse_datetimes_ordered,
    parse_ints,
    parse_languages,
    parse_numbers,
    scan_text,
)


def arr(*values):
    return np.array(values, dtype=object)


def utc(ns):
    return [None if x == NAT else pd.Timestamp(x, tz="UTC").isoformat() for x in ns]


# ------------------------------------------------------------------------------ numbers


def test_numbers_plain_and_localised():
    values, bad = parse_numbers(
        arr(
            "12.5", "", "-3", "1e3", "12,50", "1.234,56", "1,234.56", "€ 9.99", "12.50 EUR", "1,234"
        )
    )
    assert values[0] == 12.5 and np.isnan(values[1]) and values[2] == -3 and values[3] == 1000
    assert values[4:].tolist() == [12.5, 1234.56, 1234.56, 9.99, 12.5, 1234.0]
    assert not bad.any()


@pytest.mark.parametrize("text", ["abc", "nan", "inf", "12..5", "1,2,3", "--5", "5 apples"])
def test_not_numbers(text):
    values, bad = parse_numbers(arr("1", text))
    assert bad.tolist() == [False, True]
    assert np.isnan(values[1])


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_numbers_round_trip(x):
    values, bad = parse_numbers(arr(repr(x), f"{x:.2f}"))
    assert not bad.any()
    assert values[0] == x
    assert values[1] == pytest.approx(round(x, 2), abs=0.006)


@given(st.decimals(min_value=0, max_value=10**7, places=2))
def test_european_decimal_comma_round_trip(d):
    text = f"{d:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")  # 1.234,56
    values, bad = parse_numbers(arr(text))
    assert not bad.any()
    assert values[0] == pytest.approx(float(d))


def test_integers():
    values, bad, fractional = parse_ints(arr("3", "3.0", "3.5", "x", "", "-2"))
    assert values[[0, 1, 5]].tolist() == [3, 3, -2]
    assert bad.tolist() == [False, False, False, True, False, False]
    assert fractional.tolist() == [False, False, True, False, False, False]


def test_integers_fast_path_keeps_values():
    values, bad, fractional = parse_ints(arr("1", "22", "-7"))
    assert values.tolist() == [1, 22, -7] and not bad.any() and not fractional.any()


# ----------------------------------------------------------------------------- booleans


def test_booleans():
    values, bad = parse_bools(arr("yes", "No", "TRUE", "0", "", "in stock", "maybe", "12"))
    assert values.tolist() == [True, False, True, False, None, True, None, None]
    assert bad.tolist() == [False] * 6 + [True, True]


def test_stock_counts_read_as_booleans_when_asked():
    values, bad = parse_bools(arr("12", "0", "out of stock"), counts=True)
    assert values.tolist() == [True, False, False] and not bad.any()


# ---------------------------------------------------------------------------- languages


def test_languages():
    values, bad = parse_languages(arr("en", "en_US", "de-AT", "English", "", "Klingon!"))
    assert values.tolist() == ["en", "en-us", "de-at", "en", "", ""]
    assert bad.tolist() == [False] * 5 + [True]


# ---------------------------------------------------------------------------- datetimes


def test_iso_dates_naive_and_with_offsets():
    ns, bad = parse_datetimes(
        arr("2024-01-05 10:00", "2024-01-05T10:00:00Z", "2024-06-01T10:00:00+02:00", "2024-01-05"),
        tz="UTC",
        dayfirst=False,
    )
    assert utc(ns) == [
        "2024-01-05T10:00:00+00:00",
        "2024-01-05T10:00:00+00:00",
        "2024-06-01T08:00:00+00:00",
        "2024-01-05T00:00:00+00:00",
    ]
    assert not bad.any()


def test_one_fixed_offset_everywhere_uses_the_fast_path():
    values = arr(*(f"2024-02-0{d}T1{d}:00:00+05:30" for d in range(1, 6)))
    ns, bad = parse_datetimes(values, tz="Europe/Berlin", dayfirst=False)
    assert utc(ns)[0] == "2024-02-01T05:30:00+00:00"
    assert not bad.any()


def test_naive_times_are_read_in_the_catalog_time_zone():
    ns, _ = parse_datetimes(
        arr("2024-01-15 12:00", "2024-07-15 12:00", "2024-03-31 02:30", "2024-10-27 02:30"),
        tz="Europe/Berlin",
        dayfirst=False,
    )
    assert utc(ns) == [
        "2024-01-15T11:00:00+00:00",  # CET
        "2024-07-15T10:00:00+00:00",  # CEST
        "2024-03-31T01:00:00+00:00",  # 02:30 does not exist: shifted to 03:00
        "2024-10-27T00:30:00+00:00",  # 02:30 happens twice: the first (summer) one
    ]


def test_other_shapes_fall_back_and_dayfirst_decides():
    values = arr("12/01/2010 08:26", "01.12.2010", "1700000000", "1700000000123", "1 March 2024")
    us, bad = parse_datetimes(values, tz="UTC", dayfirst=False)
    assert not bad.any()
    assert utc(us) == [
        "2010-12-01T08:26:00+00:00",
        "2010-12-01T00:00:00+00:00",
        "2023-11-14T22:13:20+00:00",
        "2023-11-14T22:13:20.123000+00:00",
        "2024-03-01T00:00:00+00:00",
    ]
    eu, _ = parse_datetimes(values, tz="UTC", dayfirst=True)
    assert utc(eu)[0] == "2010-01-12T08:26:00+00:00"


@pytest.mark.parametrize("text", ["junk", "5", "13/25/2020", "2024-02-30", "99999-01-01"])
def test_unparseable_dates(text):
    ns, bad = parse_datetimes(arr("2024-01-01", text, ""), tz="UTC", dayfirst=False)
    assert bad.tolist() == [False, True, False]
    assert ns[1] == NAT and ns[2] == NAT


def test_unknown_time_zone():
    with pytest.raises(ValueError, match="unknown time zone"):
        check_timezone("Mars/Olympus")


# ----------------------------------------------------------------------------- formulas


def test_formula_looking_cells():
    values = arr("=SUM(A1)", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "-3", "+44 20 7946 0958",
                 "-", "hello", "", "-1,234.50")  # fmt: skip
    mask = formula_mask(values)
    assert mask.tolist() == [True, True, True, True, False, False, False, False, False, False]


def test_no_formula_is_cheap_none():
    assert formula_mask(arr("a", "b", "c-d")) is None


def test_scan_text_strips_and_flags():
    values, maybe = scan_text(arr(" a ", "b\t", "=x"))
    assert values.tolist() == ["a", "b", "=x"]
    assert maybe
    values, maybe = scan_text(arr("a", "b"))
    assert values.tolist() == ["a", "b"] and not maybe


def test_day_month_order_of_each_value():
    ns, bad, order = parse_datetimes_ordered(
        arr(
            "01/02/2024",  # either way
            "13/02/2024 10:00",  # only day first
            "02/13/2024",  # only month first
            "05/05/2024",  # the same either way
            "1/2/24 3:05 pm",  # either way, read by the forgiving parser
            "01.02.2024",  # dotted: always day first
            "2024-02-01",
            "",
        ),
        tz="UTC",
        dayfirst=False,
    )
    assert order.tolist() == [
        EITHER_ORDER, DAY_FIRST, MONTH_FIRST, SAME_ORDER, EITHER_ORDER, SAME_ORDER, SAME_ORDER, 0
    ]  # fmt: skip
    assert utc(ns)[:5] == [
        "2024-01-02T00:00:00+00:00",
        "2024-02-13T10:00:00+00:00",
        "2024-02-13T00:00:00+00:00",
        "2024-05-05T00:00:00+00:00",
        "2024-01-02T15:05:00+00:00",
    ]
    assert not bad.any()


def test_iso_dates_report_no_order_at_all():
    _ns, _bad, order = parse_datetimes_ordered(
        arr("2024-01-05 10:00", "2024-01-05T10:00:00Z", ""), tz="UTC", dayfirst=False
    )
    assert order is None


@pytest.mark.parametrize("dayfirst", [False, True])
def test_a_date_that_fits_one_order_only_is_read_in_it(dayfirst):
    ns, bad = parse_datetimes(arr("13/02/2024", "02/13/2024", "13-02-2024"), tz="UTC",
                              dayfirst=dayfirst)  # fmt: skip
    assert utc(ns) == ["2024-02-13T00:00:00+00:00"] * 3
    assert not bad.any()


def test_bad_time_zone_names_the_option():
    with pytest.raises(CleanOptionError) as exc:
        check_timezone("Mars/Olympus")
    assert exc.value.option == "timezone"
