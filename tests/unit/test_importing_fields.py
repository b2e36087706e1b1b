import pytest

from marketing.analytics.importing import FIELDS, auto_map, missing_required
from marketing.analytics.importing.fields import REQUIRED_ONE_OF

SYNTHETIC = {
    "products": "sku,title,description,category,brand,price,in_stock,url,image_url",
    "customers": (
        "customer_id,email,name,country,language,consent_email,consent_sms,consent_push,"
        "consent_ads,gender,age"
    ),
    "events": "customer_id,sku,kind,quantity,value,occurred_at,source",
}


@pytest.mark.parametrize("kind", ["products", "customers", "events"])
def test_synthetic_generator_headers_map_completely(kind):
    columns = SYNTHETIC[kind].split(",")
    mapping = auto_map(columns, kind)
    used = {c for c in mapping.values() if c}
    unmapped = set(columns) - used
    # Everything lands in a field except the customer extras that belong in attributes.
    assert unmapped == ({"gender", "age"} if kind == "customers" else set())
    assert missing_required(mapping, kind, columns) == []


def test_synthetic_fields_land_in_the_right_place():
    events = auto_map(SYNTHETIC["events"].split(","), "events")
    assert events["customer"] == "customer_id"
    assert events["occurred_at"] == "occurred_at"
    assert events["source"] == "source"
    customers = auto_map(SYNTHETIC["customers"].split(","), "customers")
    assert customers["external_id"] == "customer_id"
    assert customers["consent_ads"] == "consent_ads"
    products = auto_map(SYNTHETIC["products"].split(","), "products")
    assert products["in_stock"] == "in_stock"
    assert products["image_url"] == "image_url"


@pytest.mark.parametrize("header", ["Customer ID", "customer-id", "CUSTOMERID", " customer_id "])
def test_matching_ignores_case_spaces_underscores_and_hyphens(header):
    assert auto_map([header, "Date"], "events")["customer"] == header


def test_products_description_is_never_used_as_title():
    mapping = auto_map(["StockCode", "Description", "UnitPrice"], "products")
    assert mapping["sku"] == "StockCode"
    assert mapping["description"] == "Description"
    assert mapping["title"] is None
    assert mapping["price"] == "UnitPrice"
    assert missing_required(mapping, "products", ["StockCode", "Description"]) == ["Title"]


def test_earlier_alias_wins_and_a_column_is_used_once():
    mapping = auto_map(["id", "sku", "name"], "products")
    assert mapping["sku"] == "sku"  # "sku" is listed before "id"
    assert mapping["title"] == "name"
    events = auto_map(["timestamp", "product", "type", "qty", "revenue", "price"], "events")
    assert events == {
        "occurred_at": "timestamp",
        "kind": "type",
        "customer": None,
        "sku": "product",
        "quantity": "qty",
        "value": "revenue",
        "unit_price": "price",
        "rating": None,
        "text": None,
        "source": None,
        "event_id": None,
    }


def test_online_retail_layouts():
    uci = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    mapping = auto_map(uci.split(","), "online_retail")
    assert mapping == {
        "source": "InvoiceNo",
        "sku": "StockCode",
        "title": "Description",
        "quantity": "Quantity",
        "occurred_at": "InvoiceDate",
        "unit_price": "UnitPrice",
        "customer": "CustomerID",
        "country": "Country",
    }
    ii = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
    mapping = auto_map(ii.split(","), "online_retail")
    assert mapping["source"] == "Invoice"
    assert mapping["unit_price"] == "Price"
    assert mapping["customer"] == "Customer ID"


def test_reviews_layout_drops_age_and_other_columns():
    columns = [
        "row_id",
        "Clothing ID",
        "Age",
        "Title",
        "Review Text",
        "Rating",
        "Recommended IND",
        "Positive Feedback Count",
        "Division Name",
        "Department Name",
        "Class Name",
    ]
    mapping = auto_map(columns, "reviews")
    assert mapping["sku"] == "Clothing ID"
    assert mapping["rating"] == "Rating"
    assert mapping["title"] == "Title"
    assert mapping["text"] == "Review Text"
    assert mapping["department"] == "Department Name"
    assert mapping["class_name"] == "Class Name"
    assert "Age" not in mapping.values()


def test_missing_required_checks_the_column_exists():
    mapping = {"external_id": "id"}
    assert missing_required(mapping, "customers", ["id"]) == []
    assert missing_required(mapping, "customers", ["other"]) == ["Customer ID"]
    assert missing_required({}, "events", ["x"]) == ["Time"]


def test_every_kind_has_required_fields_and_known_types():
    types = {"str", "decimal", "int", "bool", "datetime", "email", "url", "kind"}
    for kind, specs in FIELDS.items():
        # Campaign results need one identity column of several, not one fixed column.
        assert any(s.required for s in specs) or REQUIRED_ONE_OF.get(kind), kind
        assert {s.type for s in specs} <= types
        assert len({s.name for s in specs}) == len(specs)


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown import kind"):
        auto_map(["a"], "orders")
