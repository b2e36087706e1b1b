import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketing.analytics.importing import (
    Cleaner,
    CleanOptionError,
    CleanOptions,
    ImportFileError,
    Issue,
    auto_map,
    iter_frames,
    sniff,
)

from .conftest import UPLOAD_TIME, run_import, write

PRODUCTS = "sku,title,description,category,brand,price,in_stock,url,image_url"
CUSTOMERS = (
    "customer_id,email,name,country,language,consent_email,consent_sms,consent_push,"
    "consent_ads,gender,age"
)
EVENTS = "customer_id,sku,kind,quantity,value,occurred_at,source"
UCI = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
NON_PRODUCT = [r"^POST$", r"^DOT$", r"^M$", r"^D$", r"^B$", r"^BANK CHARGES$", r"^GIFT_"]


def lines(header, *rows):
    return "\n".join([header, *rows]) + "\n"


def only(issues, **match):
    return [i for i in issues if all(getattr(i, k) == v for k, v in match.items())]


# ----------------------------------------------------------------------------- products


def test_products_happy_path(csv_import):
    run = csv_import(
        lines(
            PRODUCTS + ",material,season",
            "A1,Mug,Blue mug,Home > Kitchen,Acme,12.50,yes,https://shop.test/a1,"
            "https://cdn.test/a1.jpg,ceramic,",
            "B2,Plate,,Home,,,0,,,,summer",
        ),
        "products",
    )
    assert run.issues == []
    a1, b2 = run.products.to_dict("records")
    assert a1 == {
        "sku": "A1",
        "title": "Mug",
        "description": "Blue mug",
        "category": "Home > Kitchen",
        "brand": "Acme",
        "price": 12.5,
        "url": "https://shop.test/a1",
        "image_url": "https://cdn.test/a1.jpg",
        "in_stock": True,
        "attributes": {"material": "ceramic"},
        "_row": 2,
    }
    assert math.isnan(b2["price"]) and b2["in_stock"] is False
    assert b2["attributes"] == {"season": "summer"}
    assert run.counts["rows_read"] == 2 and run.counts["rejected_rows"] == 0


def test_products_bad_rows_get_specific_issues(csv_import):
    run = csv_import(
        lines(
            "sku,title,price,in_stock,url",
            "A1,Mug,12.50,yes,",
            ",No SKU,1,,",  # row 3
            "C3,,1,,",  # row 4
            "D4,Plate,abc,,",  # row 5
            "E5,Bowl,-5,,",  # row 6
            "F6,Cup,2,maybe,",  # row 7
            "G7,Jug,2,,javascript:alert(1)",  # row 8
            "A1,Another mug,3,,",  # row 9: duplicate SKU
            "X" * 101 + ",Long,1,,",  # row 10
        ),
        "products",
    )
    assert run.products["sku"].tolist() == ["A1"]
    assert [(i.row, i.column, i.value, i.reason) for i in run.issues] == [
        (3, "sku", "", "missing required value"),
        (4, "title", "", "missing required value"),
        (5, "price", "abc", "not a number"),
        (6, "price", "-5", "negative price"),
        (7, "in_stock", "maybe", "not a yes/no value"),
        (8, "url", "javascript:alert(1)", "invalid URL"),
        (9, "sku", "A1", "duplicate SKU 'A1' (first seen on row 2)"),
        (10, "sku", "X" * 101, "longer than 100 characters"),
    ]
    assert all(i.action == "rejected" for i in run.issues)
    assert run.counts["rejected_rows"] == 8


def test_a_row_with_several_problems_lists_each(csv_import):
    run = csv_import(lines("sku,title,price", ",,oops"), "products", chunk_rows=10)
    assert [(i.row, i.column, i.reason) for i in run.issues] == [
        (2, "sku", "missing required value"),
        (2, "title", "missing required value"),
        (2, "price", "not a number"),
    ]
    assert run.counts["rejected_rows"] == 1


def test_exact_duplicate_lines_are_dropped_and_counted_not_rejected(csv_import):
    run = csv_import(lines("sku,title", "A1,Mug", "A1,Mug", "B2,Plate"), "products")
    assert run.products["sku"].tolist() == ["A1", "B2"]
    assert run.issues == []
    assert run.counts["duplicate_lines"] == 1


def test_duplicates_are_found_across_chunks(csv_import):
    run = csv_import(
        lines("sku,title", "A1,Mug", "B2,Plate", "C3,Bowl", "A1,Mug", "B2,Other plate"),
        "products",
        chunk_rows=2,
    )
    assert run.chunks == 3
    assert run.products["sku"].tolist() == ["A1", "B2", "C3"]
    assert run.counts["duplicate_lines"] == 1  # row 5 repeats row 2 exactly
    assert [(i.row, i.reason) for i in run.issues] == [
        (6, "duplicate SKU 'B2' (first seen on row 3)")
    ]


def test_formula_looking_cells_are_kept_as_text_and_reported(csv_import):
    run = csv_import(
        lines(
            "sku,title,note",
            'A1,"=HYPERLINK(""http://evil"",""x"")",@SUM(1)',
            "B2,-3,+44 20 7946 0958",
        ),
        "products",
    )
    assert run.products["title"].tolist() == ['=HYPERLINK("http://evil","x")', "-3"]
    assert run.products["attributes"].tolist()[0] == {"note": "@SUM(1)"}
    assert [(i.row, i.column, i.value, i.reason, i.action) for i in run.issues] == [
        (2, "title", '=HYPERLINK("http://evil","x")', "formula-looking cell", "kept as text"),
        (2, "note", "@SUM(1)", "formula-looking cell", "kept as text"),
    ]
    assert run.counts["formula_cells"] == 2
    assert run.counts["rejected_rows"] == 0


def test_row_with_more_values_than_columns_is_rejected(csv_import):
    run = csv_import(lines("sku,title", "A1,Mug", "B2,Plate,surprise"), "products")
    assert run.products["sku"].tolist() == ["A1"]
    assert run.issues == [
        Issue(3, "", "surprise", "more values than the header has columns", "rejected")
    ]


# ---------------------------------------------------------------------------- customers


def test_customers(csv_import):
    run = csv_import(
        lines(
            CUSTOMERS,
            "C1,ann@example.com,Ann Lee,DE,de-AT,yes,no,,1,f,34",
            "C2,not-an-email,Bob,US,en,yes,yes,yes,yes,,",  # row 3
            "C3,,Cy,FR,fr,perhaps,,,,,",  # row 4
            "C1,other@example.com,Ann again,DE,de,,,,,,",  # row 5
            "C5,,,GB,Klingon!,,,,,,",  # row 6
        ),
        "customers",
    )
    assert run.customers.to_dict("records") == [
        {
            "external_id": "C1",
            "email": "ann@example.com",
            "name": "Ann Lee",
            "country": "DE",
            "language": "de-at",
            "consent_email": True,
            "consent_sms": False,
            "consent_push": None,
            "consent_ads": True,
            "attributes": {"gender": "f", "age": "34"},
            "_row": 2,
        }
    ]
    assert [(i.row, i.column, i.reason) for i in run.issues] == [
        (3, "email", "invalid email"),
        (4, "consent_email", "not a yes/no value"),
        (5, "customer_id", "duplicate customer id 'C1' (first seen on row 2)"),
        (6, "language", "not a language code"),
    ]


def test_customer_name_from_first_and_last(csv_import):
    run = csv_import(
        lines("Customer ID,First Name,Last Name", "7, Ann ,Lee", "8,,Solo"), "customers"
    )
    assert run.customers["name"].tolist() == ["Ann Lee", "Solo"]
    assert run.customers["external_id"].tolist() == ["7", "8"]


# ------------------------------------------------------------------------------- events


def test_synthetic_events(csv_import):
    run = csv_import(
        lines(
            EVENTS,
            "C1,A1,view,1,,2024-03-01T10:00:00Z,sess-1",
            "C1,A1,add_to_cart,2,25.00,2024-03-01T10:01:00Z,sess-1",
            "C1,A1,order,2,25.00,2024-03-01T10:05:00Z,o-9",
            ",,search,,,2024-03-01T10:06:00Z,sess-2",
        ),
        "events",
    )
    assert run.issues == []
    events = run.events
    assert events["kind"].tolist() == ["view", "cart", "purchase", "search"]
    assert events["quantity"].tolist() == [1, 2, 2, 1]
    assert events["customer"].tolist() == ["C1", "C1", "C1", None]
    assert events["sku"].tolist() == ["A1", "A1", "A1", None]
    assert str(events["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert events["occurred_at"][0] == pd.Timestamp("2024-03-01 10:00", tz="UTC")
    assert events["id"].dtype == np.int64 and (events["id"] > 0).all()
    assert events["id"].is_unique
    assert run.counts["anonymous_events"] == 1


def test_event_bad_rows(csv_import):
    run = csv_import(
        lines(
            EVENTS + ",rating",
            "C1,A1,teleport,1,,2024-03-01,s,",  # row 2
            "C1,A1,view,1.5,,2024-03-01,s,",  # row 3
            "C1,A1,view,-1,,2024-03-01,s,",  # row 4
            "C1,A1,view,1,,yesterday-ish,s,",  # row 5
            "C1,A1,view,1,,,s,",  # row 6
            "C1,,view,1,,2024-03-01,s,",  # row 7
            "C1,A1,rating,1,,2024-03-01,s,7",  # row 8
            "C1,A1,rating,1,,2024-03-01,s,",  # row 9
            "C1,A1,purchase,1,-5,2024-03-01,s,",  # row 10
            "C1,A1,,1,,2024-03-01,s,",  # row 11
            "C1,A1,view,1,,2024-03-01,s,",  # row 12: fine
        ),
        "events",
    )
    assert run.events["_row"].tolist() == [12]
    assert [(i.row, i.column, i.reason) for i in run.issues] == [
        (
            2,
            "kind",
            "unknown event kind (use one of: view, click, cart, purchase, return, rating, "
            "review, search, wishlist)",
        ),
        (3, "quantity", "not an integer"),
        (4, "quantity", "negative quantity"),
        (5, "occurred_at", "unparseable date"),
        (6, "occurred_at", "missing required value"),
        (7, "sku", "missing SKU (only search events may leave it blank)"),
        (8, "rating", "rating outside 1..5"),
        (9, "rating", "rating event without a rating"),
        (10, "value", "negative value"),
        (11, "kind", "missing event kind"),
    ]


def test_negative_purchase_is_a_return(csv_import):
    run = csv_import(
        lines(
            EVENTS,
            "C1,A1,purchase,-2,-30.00,2024-03-01,o-1",
            "C1,A1,refund,1,15.00,2024-03-02,o-2",
        ),
        "events",
    )
    assert run.events[["kind", "quantity", "value"]].values.tolist() == [
        ["return", 2, 30.0],
        ["return", 1, 15.0],
    ]
    assert run.counts["returns"] == 2


def test_missing_kind_column_means_purchase_and_value_from_unit_price(csv_import):
    run = csv_import(
        lines("order_id,date,product,qty,unit_price", "o1,2024-03-01,A1,3,2.55"), "events"
    )
    assert run.events[["kind", "quantity", "value", "source"]].values.tolist() == [
        ["purchase", 3, 7.65, "o1"]
    ]


def test_naive_times_use_the_catalog_time_zone(csv_import):
    run = csv_import(
        lines("customer,sku,occurred_at", "C1,A1,2024-07-01 12:00"),
        "events",
        timezone="Europe/Berlin",
    )
    assert run.events["occurred_at"][0] == pd.Timestamp("2024-07-01 10:00", tz="UTC")


def test_events_without_sku_column_that_are_not_searches_stop_the_import(csv_import):
    with pytest.raises(ImportFileError, match="SKU"):
        csv_import(lines("customer,occurred_at", "C1,2024-03-01"), "events")


def test_event_duplicates_across_chunks(csv_import):
    row = "C1,A1,view,1,,2024-03-01T10:00:00Z,s"
    run = csv_import(
        lines(EVENTS, row, "C2,A1,view,1,,2024-03-01T10:00:00Z,s", row, row), "events", chunk_rows=2
    )
    assert run.events["_row"].tolist() == [2, 3]
    assert run.counts["duplicate_lines"] == 2


# ------------------------------------------------------------------------------ event ids


def _ids(tmp_path, text, catalog_id=1, name="e.csv"):
    path = tmp_path / name
    path.write_text(text)
    info = sniff(path, name=name, max_bytes=10**6)
    cleaner = Cleaner("events", auto_map(info.columns, "events"), CleanOptions(catalog_id))
    return [i for f in iter_frames(path, info, name=name) for i in cleaner.clean(f).events["id"]]


EVENT_ROWS = lines(
    EVENTS,
    "C1,A1,view,1,,2024-03-01T10:00:00Z,s",
    "C1,A1,purchase,1,9.99,2024-03-01T10:05:00Z,o1",
    "C2,A1,purchase,1,9.99,2024-03-01T10:05:00Z,o1",
)


def test_event_ids_are_deterministic(tmp_path):
    first = _ids(tmp_path, EVENT_ROWS)
    assert first == _ids(tmp_path, EVENT_ROWS, name="again.csv")
    assert len(set(first)) == 3
    assert all(0 < i < 2**63 for i in first)


def test_event_ids_depend_on_the_catalog(tmp_path):
    assert set(_ids(tmp_path, EVENT_ROWS, catalog_id=1)).isdisjoint(
        _ids(tmp_path, EVENT_ROWS, catalog_id=2)
    )


def test_event_ids_depend_on_every_key_part(tmp_path):
    base = "C1,A1,purchase,1,9.99,2024-03-01T10:05:00Z,o1"
    variants = [
        "C9,A1,purchase,1,9.99,2024-03-01T10:05:00Z,o1",
        "C1,A9,purchase,1,9.99,2024-03-01T10:05:00Z,o1",
        "C1,A1,cart,1,9.99,2024-03-01T10:05:00Z,o1",
        "C1,A1,purchase,2,9.99,2024-03-01T10:05:00Z,o1",
        "C1,A1,purchase,1,9.98,2024-03-01T10:05:00Z,o1",
        "C1,A1,purchase,1,9.99,2024-03-01T10:05:01Z,o1",
        "C1,A1,purchase,1,9.99,2024-03-01T10:05:00Z,o2",
    ]
    ids = _ids(tmp_path, lines(EVENTS, base, *variants))
    assert len(set(ids)) == 8
    # the same instant written another way is the same event
    same = _ids(tmp_path, lines(EVENTS, "C1,A1,purchase,1,9.990,2024-03-01 11:05:00+01:00,o1"))
    assert same == ids[:1]


def test_explicit_event_id_alone_decides_the_id(tmp_path):
    a = _ids(tmp_path, lines(EVENTS + ",event_id", "C1,A1,view,1,,2024-03-01,s,E-1"))
    b = _ids(tmp_path, lines(EVENTS + ",event_id", "C2,B2,cart,3,5,2024-04-01,t,E-1"), name="b.csv")
    assert a == b


def test_duplicate_explicit_event_id_is_rejected(csv_import):
    run = csv_import(
        lines(
            EVENTS + ",event_id",
            "C1,A1,view,1,,2024-03-01,s,E-1",
            "C1,A1,view,1,,2024-03-01,s,E-1",  # exact repeat: dropped
            "C2,A2,cart,1,,2024-03-02,s,E-1",  # same id, other event: rejected
        ),
        "events",
        chunk_rows=2,
    )
    assert run.events["_row"].tolist() == [2]
    assert run.counts["duplicate_lines"] == 1
    assert [(i.row, i.column, i.reason) for i in run.issues] == [
        (4, "event_id", "duplicate event id 'E-1' (first seen on row 2)")
    ]


# ------------------------------------------------------------------------- online retail

RETAIL = lines(
    UCI,
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",  # 2
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",  # 3 dup
    "536365,post,POSTAGE,1,2010-12-01 08:26:00,18.00,17850,United Kingdom",  # 4 non-product
    "C536379,85123a,WHITE HANGING HEART,-2,2010-12-02 09:41:00,2.95,17850.0,United Kingdom",  # 5
    "536380,22139,,56,2010-12-02 10:00:00,0,,United Kingdom",  # 6 zero price
    "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,11062.06,,United Kingdom",  # 7
    "536381,22139,RETROSPOT TEA SET,1,2010-12-02 11:00:00,4.95,,France",  # 8 anonymous
    "536382,22140,BROKEN,1,2010-12-02 11:00:00,-1.00,12345,France",  # 9 negative price
    "536383,22139,RETRO TEA SET,2,2010-12-03 11:00:00,4.25,12346,France",  # 10
)


def test_online_retail_sample(csv_import):
    run = csv_import(RETAIL, "online_retail", non_product_patterns=NON_PRODUCT)
    assert run.counts == {
        "rows_read": 9,
        "duplicate_lines": 1,
        "returns": 1,
        "non_product_lines": 2,
        "anonymous_events": 1,
        "zero_price_lines": 1,
        "formula_cells": 0,
        "rejected_rows": 1,
    }
    assert run.issues == [Issue(9, "UnitPrice", "-1.00", "negative price")]
    events = run.events
    assert events["_row"].tolist() == [2, 5, 8, 10]
    assert events["kind"].tolist() == ["purchase", "return", "purchase", "purchase"]
    assert events["quantity"].tolist() == [6, 2, 1, 2]
    assert events["value"].tolist() == [15.3, 5.9, 4.95, 8.5]
    assert events["sku"].tolist() == ["85123A", "85123A", "22139", "22139"]
    assert events["customer"].tolist() == ["17850", "17850", None, "12346"]
    assert events["source"].tolist() == ["536365", "C536379", "536381", "536383"]
    assert events["occurred_at"][0] == pd.Timestamp("2010-12-01 08:26", tz="UTC")
    products = run.products.set_index("sku")
    assert products.loc["85123A", "title"] == "WHITE HANGING HEART"
    assert products.loc["22139", ["title", "price"]].tolist() == ["RETRO TEA SET", 4.25]
    assert "POST" not in products.index and "B" not in products.index
    assert run.customers[["external_id", "country"]].values.tolist() == [
        ["17850", "United Kingdom"],
        ["12346", "France"],
    ]


def test_online_retail_counts_do_not_depend_on_chunking(csv_import):
    whole = csv_import(RETAIL, "online_retail", non_product_patterns=NON_PRODUCT)
    small = csv_import(RETAIL, "online_retail", non_product_patterns=NON_PRODUCT, chunk_rows=2)
    assert small.counts == whole.counts
    assert small.events["id"].tolist() == whole.events["id"].tolist()
    # across chunks a SKU keeps its last known title even when a later line has none
    assert (
        small.products.drop_duplicates("sku", keep="last").set_index("sku").loc["22139", "title"]
        == "RETRO TEA SET"
    )


def test_online_retail_without_a_required_column(tmp_path):
    mapping = auto_map(UCI.replace(",UnitPrice", "").split(","), "online_retail")
    with pytest.raises(ImportFileError) as exc:
        Cleaner("online_retail", mapping, CleanOptions(catalog_id=1))
    assert exc.value.column == "UnitPrice"
    assert exc.value.reason == "required column 'UnitPrice' is missing"


# ------------------------------------------------------------------------------- reviews

REVIEWS = lines(
    "row_id,Clothing ID,Age,Title,Review Text,Rating,Recommended IND,Positive Feedback Count,"
    "Division Name,Department Name,Class Name",
    '0,767,33,,"Silky, sexy and comfortable",4,1,0,Initmates,Intimate,Intimates',
    '1,1080,34,Love it!,"Sooo pretty.\r\nHappy I found it",5,1,4,General,Dresses,Dresses',
    "2,1080,60,,,5,1,0,General,Dresses,Dresses",
    "3,1080,61,,,5,1,0,General,Dresses,Dresses",
    "4,1077,50,Some flaws,too small,3,0,0,General,Dresses,,",
    "5,1049,50,Nice,,9,0,0,General,Bottoms,Pants",
)


def test_reviews(csv_import):
    run = csv_import(REVIEWS, "reviews")
    events = run.events
    assert events["sku"].tolist() == ["767", "1080", "1080", "1080", "1077"]
    assert events["kind"].tolist() == ["review", "review", "rating", "rating", "review"]
    assert events["text"].tolist() == [
        "Silky, sexy and comfortable",
        "Love it! Sooo pretty.\r\nHappy I found it",
        "",
        "",
        "Some flaws. too small",
    ]
    assert events["rating"].tolist() == [4, 5, 5, 5, 3]
    assert events["customer"].isna().all()
    assert (events["occurred_at"] == pd.Timestamp(UPLOAD_TIME)).all()
    # two identical anonymous ratings are two ratings, with two ids
    assert events["id"].is_unique
    assert run.counts["duplicate_lines"] == 0
    assert run.counts["anonymous_events"] == 5
    assert [(i.row, i.column, i.reason) for i in run.issues] == [
        (7, "Rating", "rating outside 1..5")
    ]
    products = run.products.set_index("sku")
    assert products.loc["767", ["title", "category"]].tolist() == [
        "Item 767",
        "Intimate > Intimates",
    ]
    assert products.loc["1080", "category"] == "Dresses"  # not "Dresses > Dresses"
    assert products.loc["1077", "category"] == "Dresses"  # no class: department only
    # Age and the other extra columns are never stored
    assert "33" not in set(events.astype(str).values.ravel())
    assert (run.products["attributes"] == {}).all()


def test_reviews_need_a_default_time_without_a_date_column():
    mapping = {"sku": "Clothing ID", "rating": "Rating"}
    with pytest.raises(ValueError, match="default_time"):
        Cleaner("reviews", mapping, CleanOptions(catalog_id=1))


# --------------------------------------------------------------------------- mapping


def test_unmapped_required_field_names_the_column():
    with pytest.raises(ImportFileError) as exc:
        Cleaner("products", {"sku": "code"}, CleanOptions(catalog_id=1))
    assert exc.value.column == "Title"
    assert "required column 'Title' is missing" in exc.value.reason


def test_mapped_column_missing_from_the_file(csv_import):
    with pytest.raises(ImportFileError) as exc:
        csv_import(lines("sku,name", "A,B"), "products", mapping={"sku": "sku", "title": "Title"})
    assert exc.value.column == "Title"
    assert "is not in the file" in exc.value.reason


def test_unknown_field_or_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        Cleaner("orders", {}, CleanOptions(catalog_id=1))
    with pytest.raises(ValueError):
        Cleaner("products", {"sku": "a", "title": "b", "colour": "c"}, CleanOptions(catalog_id=1))
    with pytest.raises(ValueError, match="pattern"):
        Cleaner("online_retail", auto_map(UCI.split(","), "online_retail"),
                CleanOptions(catalog_id=1, non_product_patterns=["(unclosed"]))  # fmt: skip


def test_empty_outputs_have_the_documented_columns(csv_import):
    run = csv_import(lines("sku,title", "A1,Mug"), "products")
    assert run.events.columns.tolist() == [
        "id", "customer", "sku", "kind", "quantity", "value", "rating", "text",
        "occurred_at", "source", "_row",
    ]  # fmt: skip
    assert str(run.events["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert run.customers.columns.tolist()[0] == "external_id"


# ------------------------------------------------------------------ other file formats


def test_json_events(csv_import):
    run = csv_import(
        '[{"user_id": 7, "item_id": "A1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"},'
        ' {"user_id": 7, "item_id": "A1", "event_type": "purchase", "qty": 2,'
        ' "timestamp": "2024-03-01T10:05:00Z", "revenue": 19.5}]',
        "events",
        name="events.json",
    )
    assert run.info.format == "json"
    assert run.events[["customer", "kind", "quantity", "value"]].values.tolist()[1] == [
        "7",
        "purchase",
        2,
        19.5,
    ]
    assert run.events["_row"].tolist() == [1, 2]


def test_xlsx_products_with_formula(tmp_path):
    import openpyxl

    from .conftest import run_import

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["SKU", "Name", "Price"])
    ws.append(["A1", '=CONCAT("M","ug")', 12.5])
    ws.append(["B2", "Plate", "=B2*2"])
    path = tmp_path / "catalog.xlsx"
    wb.save(path)
    run = run_import(path, "products")
    assert run.products[["sku", "title", "price"]].values.tolist() == [
        ["A1", '=CONCAT("M","ug")', 12.5]
    ]
    assert [(i.row, i.column, i.reason, i.action) for i in run.issues] == [
        (2, "Name", "formula-looking cell", "kept as text"),
        (3, "Price", "not a number", "rejected"),
    ]


# ------------------------------------------------------- property: chunking changes nothing

_EVENT_ROW = st.tuples(
    st.sampled_from(["C1", "C2", ""]),
    st.sampled_from(["A1", "B2", ""]),
    st.sampled_from(["view", "purchase", "search", "refund", "bogus"]),
    st.sampled_from(["1", "2", "-1", "x"]),
    st.sampled_from(["", "9.99", "-5"]),
    st.sampled_from(["2024-03-01T10:00:00Z", "2024-03-01 11:00", "later"]),
    st.sampled_from(["o1", "o2"]),
    st.sampled_from(["", "web", "app"]),  # an unmapped column: lines differ, keys do not
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_EVENT_ROW, min_size=1, max_size=25), chunk_rows=st.integers(1, 6))
def test_chunk_size_does_not_change_the_result(rows, chunk_rows):
    text = lines(EVENTS + ",channel", *(",".join(r) for r in rows))
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "events.csv", text)
        try:
            whole = run_import(path, "events", chunk_rows=1000)
        except ImportFileError:
            return  # e.g. every row blank: nothing to compare
        parts = run_import(path, "events", chunk_rows=chunk_rows)
    assert parts.counts == whole.counts
    assert parts.issues == whole.issues
    assert parts.events["id"].tolist() == whole.events["id"].tolist()
    assert parts.events["_row"].tolist() == whole.events["_row"].tolist()
    assert whole.events["id"].is_unique
    accounted = len(whole.events) + whole.counts["duplicate_lines"] + whole.counts["rejected_rows"]
    assert accounted == whole.counts["rows_read"]


# ---------------------------------------------------------------------- consent (C1)


def test_online_retail_customers_have_unknown_consent_not_nan(csv_import):
    run = csv_import(RETAIL, "online_retail", non_product_patterns=NON_PRODUCT)
    consents = run.customers[["consent_email", "consent_sms", "consent_push", "consent_ads"]]
    assert consents.dtypes.tolist() == [object] * 4
    # None (unknown), never NaN: bool(NaN) is True and would grant consent.
    assert all(v is None for v in consents.to_numpy().ravel().tolist())
    assert all(v is None for r in run.customers.to_dict("records") for k, v in r.items()
               if k.startswith("consent_"))  # fmt: skip


def test_customer_consents_are_true_false_or_unknown(csv_import):
    run = csv_import(
        lines(
            "customer_id,consent_email,consent_sms,consent_push,consent_ads",
            "C1,true,false,,yes",
            "C2,,,,",
        ),
        "customers",
        chunk_rows=1,  # C2's chunk has only blanks
    )
    records = run.customers.to_dict("records")
    assert [[r[f"consent_{c}"] for c in ("email", "sms", "push", "ads")] for r in records] == [
        [True, False, None, True],
        [None, None, None, None],
    ]


# -------------------------------------------------------------------------- NUL (I3)


def test_cells_with_a_nul_character_reject_their_row(csv_import):
    run = csv_import(
        '{"sku": "A1", "title": "Mug\\u0000", "colour": "blue"}\n'
        '{"sku": "B2", "title": "Plate", "colour": "wh\\u0000ite"}\n'
        '{"sku": "C3", "title": "Bowl", "colour": "red"}\n',
        "products",
        name="products.jsonl",
    )
    assert run.products["sku"].tolist() == ["C3"]
    assert [(i.row, i.column, i.value, i.reason) for i in run.issues] == [
        (1, "title", "Mug\u2400", "contains a NUL character"),
        (2, "colour", "wh\u2400ite", "contains a NUL character"),
    ]
    assert run.counts["rejected_rows"] == 2


# ------------------------------------------------------------ values too large (I4)


def test_unit_price_times_quantity_over_the_value_column_is_rejected(csv_import):
    run = csv_import(
        lines(
            "sku,quantity,unit_price,occurred_at",
            "A1,2000000000,9999999.99,2024-03-01",  # 2e16
            "A1,100000,9999999.99,2024-03-01",  # 999,999,999,000: fits
            "A1,2,2.50,2024-03-01",
        ),
        "events",
    )
    assert run.events["value"].tolist() == [999_999_999_000.0, 5.0]
    assert [(i.row, i.column, i.reason) for i in run.issues] == [
        (
            2,
            "unit_price",
            "unit price × quantity is too large (the line value must be under 1,000,000,000,000)",
        )
    ]


def test_online_retail_line_value_over_the_value_column_is_rejected(csv_import):
    run = csv_import(
        lines(
            UCI,
            "536365,85123A,HEART,2000000000,2010-12-01 08:26:00,999999.00,17850,United Kingdom",
            "536366,22139,TEA SET,2,2010-12-01 08:28:00,4.25,17850,United Kingdom",
        ),
        "online_retail",
    )
    assert run.events["_row"].tolist() == [3]
    assert [(i.row, i.column) for i in run.issues] == [(2, "UnitPrice")]
    assert "too large" in run.issues[0].reason
    assert run.products["sku"].tolist() == ["22139"]


def test_value_that_rounds_up_to_the_limit_is_too_large(csv_import):
    run = csv_import(
        lines(EVENTS, "C1,A1,purchase,1,999999999999.999,2024-03-01,o", "C1,A1,purchase,1,"
              "999999999999.99,2024-03-01,o2"),
        "events",
    )  # fmt: skip
    assert [(i.row, i.reason) for i in run.issues] == [(2, "number too large")]
    assert run.events["_row"].tolist() == [3]


# ---------------------------------------------------------------------- ratings (I7)


def test_fractional_ratings_are_rejected(csv_import):
    run = csv_import(
        lines(
            "sku,rating,text",
            "A1,3.5,Good",
            "A1,4.0,Fine",
            "A1,5.5,Too much",
            'A1,"4,5",Comma',
        ),
        "reviews",
    )
    assert run.events["rating"].tolist() == [4.0]
    assert [(i.row, i.reason) for i in run.issues] == [
        (2, "rating must be a whole number from 1 to 5"),
        (4, "rating outside 1..5"),
        (5, "rating must be a whole number from 1 to 5"),
    ]


# ------------------------------------------------------------ catalog settings (I12)


@pytest.mark.parametrize(
    ("options", "option", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        ({"timezone": ""}, "timezone", "unknown time zone ''"),
        ({"non_product_patterns": ["POST", "(unclosed"]}, "non_product_patterns", "(unclosed"),
        ({"non_product_patterns": [5]}, "non_product_patterns", "is not text"),
    ],
)
def test_bad_catalog_settings_name_the_option(options, option, message):
    with pytest.raises(CleanOptionError) as exc:
        Cleaner("online_retail", auto_map(UCI.split(","), "online_retail"),
                CleanOptions(catalog_id=1, **options))  # fmt: skip
    assert exc.value.option == option
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)  # still a ValueError for older callers


# ------------------------------------------------------------ day/month order (I6)

DATED = "sku,kind,occurred_at,source"


def _dated(*dates: str) -> str:
    return lines(DATED, *(f"A1,view,{d},s{i}" for i, d in enumerate(dates)))


def _days(run) -> list[str]:
    return [t.strftime("%Y-%m-%d") for t in run.events["occurred_at"]]


def test_a_day_over_12_makes_the_whole_column_day_first(csv_import):
    run = csv_import(_dated("01/02/2024", "13/02/2024 10:00", "03/04/2024"), "events")
    assert _days(run) == ["2024-02-01", "2024-02-13", "2024-04-03"]
    assert run.issues == []
    assert "ambiguous_dates_assumed_month_first" not in run.counts


def test_a_second_part_over_12_makes_the_column_month_first(csv_import):
    run = csv_import(_dated("01/02/2024", "02/13/2024", "03-04-2024"), "events", dayfirst=True)
    assert _days(run) == ["2024-01-02", "2024-02-13", "2024-03-04"]
    assert run.issues == []


def test_dates_that_never_show_their_order_follow_the_option_and_are_counted(csv_import):
    dates = ("01/02/2024", "03/04/2024", "05/05/2024", "2024-06-07")
    us = csv_import(_dated(*dates), "events")
    assert _days(us) == ["2024-01-02", "2024-03-04", "2024-05-05", "2024-06-07"]
    assert us.counts["ambiguous_dates_assumed_month_first"] == 2  # 05/05 reads the same
    eu = csv_import(_dated(*dates), "events", dayfirst=True)
    assert _days(eu) == ["2024-02-01", "2024-04-03", "2024-05-05", "2024-06-07"]
    assert eu.counts["ambiguous_dates_assumed_day_first"] == 2


def test_a_column_mixing_both_orders_rejects_the_dates_that_read_both_ways(csv_import):
    run = csv_import(_dated("01/02/2024", "13/02/2024", "02/14/2024", "05/05/2024"), "events")
    assert _days(run) == ["2024-02-13", "2024-02-14", "2024-05-05"]
    assert [(i.row, i.column, i.value, i.reason) for i in run.issues] == [
        (
            2,
            "occurred_at",
            "01/02/2024",
            "ambiguous mixed day/month order: the column has day/month (row 3) and "
            "month/day (row 4) dates",
        )
    ]


def test_a_later_chunk_may_confirm_the_assumed_order(csv_import):
    run = csv_import(_dated("01/02/2024", "03/04/2024", "02/13/2024"), "events", chunk_rows=2)
    assert _days(run) == ["2024-01-02", "2024-03-04", "2024-02-13"]
    assert "ambiguous_dates_assumed_month_first" not in run.counts


def test_a_later_chunk_contradicting_the_assumed_order_stops_the_import(csv_import):
    with pytest.raises(ImportFileError) as exc:
        csv_import(_dated("01/02/2024", "03/04/2024", "13/02/2024"), "events", chunk_rows=2)
    assert exc.value.column == "occurred_at"
    assert exc.value.reason == (
        "row 4 ('13/02/2024') shows the dates are day/month, but 2 earlier dates such as "
        "row 2 ('01/02/2024') were already read as month/day; write the dates as YYYY-MM-DD"
    )


def test_a_later_chunk_mixing_orders_after_two_way_dates_were_read_stops_the_import(csv_import):
    with pytest.raises(ImportFileError, match="mix day/month order") as exc:
        csv_import(_dated("13/02/2024", "01/02/2024", "02/14/2024"), "events", chunk_rows=2)
    assert "row 3 ('01/02/2024') cannot be read reliably" in exc.value.reason


def test_a_later_chunk_follows_the_order_an_earlier_one_showed(csv_import):
    run = csv_import(_dated("13/02/2024", "14/02/2024", "01/02/2024"), "events", chunk_rows=2)
    assert _days(run) == ["2024-02-13", "2024-02-14", "2024-02-01"]
    assert run.issues == []


def test_online_retail_dates_show_month_first(csv_import):
    run = csv_import(
        lines(
            UCI,
            "536365,85123A,HEART,6,12/01/2010 08:26,2.55,17850,United Kingdom",
            "536366,22139,TEA SET,2,12/13/2010 08:28,4.25,17850,United Kingdom",
        ),
        "online_retail",
        dayfirst=True,  # the file shows otherwise
    )
    assert _days(run) == ["2010-12-01", "2010-12-13"]
