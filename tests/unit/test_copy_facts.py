"""Fact sheets keep sources; locale formats parse back to the same values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from copygen.engine.facts import (
    fact_sheet,
    format_date,
    format_number,
    format_percent,
    format_price,
    number_candidates,
    number_values,
    numbers_in,
    percents_in,
)
from copygen.engine.types import LOCALES

PRODUCT = {
    "id": 42,
    "sku": "LS-42",
    "title": "Linen Shirt",
    "brand": "Acme",
    "category": "Men > Shirts > Linen",
    "price": "29.90",
    "description": "Made of 100% European linen. Weighs 180 g. Pre-washed at 40 degrees.",
    "attributes": {"color": "blue", "size": "M", "fit": "", "extra": None},
    "url": "https://shop.example/p/42",
    "in_stock": True,
}


def sources(sheet, kind):
    return [(f.name, f.value, f.source) for f in sheet.facts if f.kind == kind]


def test_fact_sheet_keeps_every_fact_with_its_source():
    sheet = fact_sheet(
        PRODUCT,
        currency="EUR",
        reviews=[
            {"id": 901, "text": "Lovely shirt. Soft and cool on hot days.", "rating": 5},
            {"id": 902, "text": "It shrank after one wash and the seams came apart.", "rating": 1},
            "Great fit for the price, would buy again.",
            {"id": 903, "text": "Got it on sale for under $40. Fits true to size.", "rating": 5},
        ],
        rating=4.2,
        stock_quantity=3,
    )
    assert sheet.product_id == "42"
    assert (sheet.title, sheet.brand, sheet.currency) == ("Linen Shirt", "Acme", "EUR")
    assert sheet.price == Decimal("29.90")
    assert sources(sheet, "title") == [("title", "Linen Shirt", "product:42.title")]
    assert sources(sheet, "brand") == [("brand", "Acme", "product:42.brand")]
    assert [v for _, v, _ in sources(sheet, "category")] == ["Men", "Shirts", "Linen"]
    assert sources(sheet, "price") == [("price", Decimal("29.90"), "product:42.price")]
    # empty attributes are dropped, the others kept with their key as source
    assert sheet.attributes == {"color": "blue", "size": "M"}
    assert ("color", "blue", "product:42.attributes.color") in sources(sheet, "attribute")
    # numbers and percentages found in the description
    desc = sources(sheet, "description")
    assert ("number", "180", "product:42.description") in desc
    assert ("number", "40", "product:42.description") in desc
    assert ("percent", "100", "product:42.description") in desc
    # positive review sentences only, with the review id as source, best-rated first
    reviews = [(v, s) for n, v, s in sources(sheet, "review") if n.startswith("review[")]
    assert ("Soft and cool on hot days.", "review:901") in reviews
    assert all("shrank" not in v for v, _ in reviews)
    assert ("Fits true to size.", "review:903") in reviews
    assert all("$40" not in v for v, _ in reviews)  # a quoted price is not the product's
    assert reviews[0][1] == "review:901"
    assert any(s == "product:42.reviews[2]" for _, s in reviews)
    assert sheet.reviews[0] == "Soft and cool on hot days."
    assert sheet.rating == 4.2
    assert sheet.review_count == 4
    assert sheet.stock_quantity == 3
    assert ("stock_quantity", 3, "product:42.stock_quantity") in sources(sheet, "stock")


def test_fact_sheet_without_price_or_reviews():
    sheet = fact_sheet({"sku": "X1", "title": "Mug"}, currency="GBP")
    assert sheet.product_id == "X1"
    assert sheet.price is None
    assert sheet.reviews == ()
    assert not sources(sheet, "price")


@pytest.mark.parametrize(
    ("locale", "currency", "expected"),
    [
        ("en", "GBP", "£12.50"),
        ("en", "USD", "$12.50"),
        ("de", "EUR", "12,50\xa0€"),
        ("fr", "EUR", "12,50\xa0€"),
        ("es", "EUR", "12,50\xa0€"),
        ("zh", "CNY", "¥12.50"),
    ],
)
def test_format_price_per_locale(locale, currency, expected):
    assert format_price("12.50", currency, locale) == expected


@pytest.mark.parametrize("locale", LOCALES)
def test_formats_parse_back(locale):
    for value in (Decimal("12.5"), Decimal("1234.5"), Decimal("1234567.89")):
        text = format_price(value, "EUR", locale)
        assert value in numbers_in(text)
        assert value in number_candidates(format_number(value, locale, decimals=2))
    assert Decimal(30) in percents_in(format_percent(30, locale))
    assert Decimal(2024) in numbers_in(format_date("2024-11-29", locale))


def test_number_candidates_cover_both_conventions():
    assert number_candidates("1.234") == {Decimal("1.234"), Decimal("1234")}
    assert number_candidates("1,234.50") == {Decimal("1234.5")}
    assert number_candidates("1.234,50") == {Decimal("1234.5")}
    assert number_candidates("1\u202f234,50") == {Decimal("1234.5")}
    assert number_candidates("12,5") == {Decimal("12.5")}
    assert number_candidates("36,38,40") == frozenset()
    assert number_values("36,38,40") == {Decimal(36), Decimal(38), Decimal(40)}


def test_percent_words():
    assert percents_in("30 Prozent, 20 pour cent, 10 por ciento, 5 percent, 7％") == {
        Decimal(30),
        Decimal(20),
        Decimal(10),
        Decimal(5),
        Decimal(7),
    }
