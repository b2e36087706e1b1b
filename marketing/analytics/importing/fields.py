"""Target fields per import kind, and matching of a file's headers to them.

Matching ignores case, spaces, underscores, hyphens and dots, so "Customer ID",
"customer_id" and "CustomerID" all find the customer field. Aliases are tried in the
order listed, so a file with both "sku" and "id" maps the SKU to "sku".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("products", "customers", "events", "reviews", "online_retail")

EVENT_KINDS = (
    "view",
    "click",
    "cart",
    "purchase",
    "return",
    "rating",
    "review",
    "search",
    "wishlist",
)


# Numeric ranges the database columns can hold (see marketing.models).
PRICE_LIMIT = 1e10  # Product.price: 12 digits, 2 decimals
VALUE_LIMIT = 1e12  # Event.value: 14 digits, 2 decimals
QUANTITY_LIMIT = 2**31 - 1  # Event.quantity: integer


@dataclass(frozen=True)
class FieldSpec:
    """One target field of an import kind, as the mapping form shows it."""

    name: str
    label: str
    required: bool
    type: str  # "str", "decimal", "int", "bool", "datetime", "email", "url", "kind"
    aliases: tuple[str, ...]
    help: str = ""
    max_length: int | None = None  # database column width; longer values are rejected


def _f(
    name: str,
    label: str,
    type_: str = "str",
    *aliases: str,
    required: bool = False,
    help: str = "",
    max_length: int | None = None,
) -> FieldSpec:
    return FieldSpec(name, label, required, type_, aliases, help, max_length)


_CONSENT = {
    "email": ("email_consent", "email_opt_in", "optin_email", "accepts_marketing", "newsletter"),
    "sms": ("sms_consent", "sms_opt_in", "optin_sms", "accepts_sms"),
    "push": ("push_consent", "push_opt_in", "optin_push"),
    "ads": ("ads_consent", "ad_consent", "ads_opt_in", "optin_ads", "personalized_ads"),
}

# Product-code headers shared by product and event files (earlier names match first).
_SKU = ("sku", "stockcode", "stock_code", "product_id", "item_id")

_WHEN = (
    "occurred_at",
    "timestamp",
    "event_time",
    "date",
    "datetime",
    "time",
    "invoicedate",
    "created_at",
    "event_date",
    "order_date",
    "ts",
)

FIELDS: dict[str, list[FieldSpec]] = {
    "products": [
        _f(
            "sku",
            "SKU",
            "str",
            *_SKU,
            "id",
            "code",
            "clothing id",
            "article_number",
            "item_number",
            "product_code",
            required=True,
            help="Your product code; unique per catalog.",
            max_length=100,
        ),
        _f(
            "title",
            "Title",
            "str",
            "title",
            "name",
            "product_name",
            "product_title",
            "item_name",
            required=True,
            max_length=500,
        ),
        _f("description", "Description", "str", "description", "desc", "long_description"),
        _f(
            "category",
            "Category",
            "str",
            "category",
            "category_path",
            "categories",
            "product_type",
            "product_category",
            help='A path such as "Home > Kitchen".',
            max_length=300,
        ),
        _f("brand", "Brand", "str", "brand", "vendor", "manufacturer", max_length=200),
        _f(
            "price",
            "Price",
            "decimal",
            "price",
            "unit_price",
            "unitprice",
            "sale_price",
            "regular_price",
        ),
        _f("url", "Product URL", "url", "url", "link", "product_url", "page_url", max_length=1000),
        _f(
            "image_url",
            "Image URL",
            "url",
            "image_url",
            "image",
            "image_link",
            "img",
            "picture",
            "thumbnail",
            max_length=1000,
        ),
        _f(
            "in_stock",
            "In stock",
            "bool",
            "in_stock",
            "instock",
            "available",
            "availability",
            "is_available",
            "stock",
            help="yes/no, true/false, 1/0, in stock/out of stock, or a stock count.",
        ),
    ],
    "customers": [
        _f(
            "external_id",
            "Customer ID",
            "str",
            "customer_id",
            "customerid",
            "customer",
            "client_id",
            "user_id",
            "external_id",
            "id",
            "customer_number",
            required=True,
            help="Your id for the customer; events refer to it.",
            max_length=100,
        ),
        _f("email", "Email", "email", "email", "e-mail", "email_address", "mail", max_length=254),
        _f("name", "Name", "str", "name", "full_name", "customer_name", max_length=200),
        _f("first_name", "First name", "str", "first_name", "firstname", "given_name", "forename"),
        _f("last_name", "Last name", "str", "last_name", "lastname", "surname", "family_name"),
        _f("country", "Country", "str", "country", "country_code", max_length=100),
        _f(
            "language",
            "Language",
            "str",
            "language",
            "lang",
            "locale",
            "preferred_language",
            help='A code such as "en" or "de-AT".',
            max_length=8,
        ),
        *(
            _f(f"consent_{ch}", f"Consent: {ch}", "bool", f"consent_{ch}", *more)
            for ch, more in _CONSENT.items()
        ),
    ],
    "events": [
        _f(
            "occurred_at",
            "Time",
            "datetime",
            *_WHEN,
            required=True,
            help="Naive times are read in the catalog's time zone.",
        ),
        _f(
            "kind",
            "Event kind",
            "kind",
            "kind",
            "event",
            "event_type",
            "type",
            "action",
            help="Missing column: every row is a purchase.",
        ),
        _f(
            "customer",
            "Customer ID",
            "str",
            "customer_id",
            "customerid",
            "user_id",
            "customer",
            "client_id",
            "visitor_id",
            help="Blank: an anonymous (guest) event.",
            max_length=100,
        ),
        _f(
            "sku",
            "SKU",
            "str",
            *_SKU,
            "product",
            "item",
            help="May be blank only for searches.",
            max_length=100,
        ),
        _f("quantity", "Quantity", "int", "quantity", "qty", "units"),
        _f(
            "value",
            "Line value",
            "decimal",
            "value",
            "revenue",
            "amount",
            "total",
            "line_total",
            "sales",
        ),
        _f(
            "unit_price",
            "Unit price",
            "decimal",
            "unit_price",
            "unitprice",
            "price",
            "item_price",
            help="Used for the value (price × quantity) when there is no value column.",
        ),
        _f("rating", "Rating (1–5)", "decimal", "rating", "stars", "score"),
        _f(
            "text",
            "Text",
            "str",
            "text",
            "review",
            "review_text",
            "comment",
            "query",
            "search_term",
        ),
        _f(
            "source",
            "Source reference",
            "str",
            "source",
            "order_id",
            "invoice",
            "invoiceno",
            "invoice_no",
            "session_id",
            "order_number",
            help="Order, invoice or session reference.",
            max_length=100,
        ),
        _f(
            "event_id",
            "Event ID",
            "str",
            "event_id",
            help="Your unique id per event; re-imports then update nothing twice.",
        ),
    ],
    "reviews": [
        _f(
            "sku",
            "SKU",
            "str",
            "clothing_id",
            "sku",
            "product_id",
            "item_id",
            "stockcode",
            "product",
            required=True,
            max_length=100,
        ),
        _f("rating", "Rating (1–5)", "decimal", "rating", "stars", "score", required=True),
        _f("title", "Review title", "str", "title", "review_title", "summary", "headline"),
        _f(
            "text",
            "Review text",
            "str",
            "review_text",
            "text",
            "review",
            "body",
            "comment",
            "content",
        ),
        _f(
            "occurred_at",
            "Time",
            "datetime",
            *_WHEN,
            "review_date",
            help="Missing: the upload time.",
        ),
        _f("department", "Department", "str", "department_name", "department"),
        _f("class_name", "Class", "str", "class_name", "class", "subcategory"),
        _f(
            "category",
            "Category",
            "str",
            "category",
            "category_path",
            help="Used when there are no department/class columns.",
        ),
        _f("source", "Review ID", "str", "review_id", max_length=100),
    ],
    # The fixed UCI "Online Retail" invoice layout (I and II): one file, three tables.
    "online_retail": [
        _f("source", "InvoiceNo", "str", "InvoiceNo", "Invoice", required=True, max_length=100),
        _f("sku", "StockCode", "str", "StockCode", required=True, max_length=100),
        _f("title", "Description", "str", "Description", max_length=500),
        _f("quantity", "Quantity", "int", "Quantity", required=True),
        _f("occurred_at", "InvoiceDate", "datetime", "InvoiceDate", required=True),
        _f("unit_price", "UnitPrice", "decimal", "UnitPrice", "Price", required=True),
        _f("customer", "CustomerID", "str", "CustomerID", "Customer ID", max_length=100),
        _f("country", "Country", "str", "Country", max_length=100),
    ],
}

_NOISE = re.compile(r"[\s_\-.]+")


def normalize_header(name: str) -> str:
    """The matching form of a header: lower case without spaces, _, - or dots."""
    return _NOISE.sub("", name.strip().lower())


def _specs(kind: str) -> list[FieldSpec]:
    try:
        return FIELDS[kind]
    except KeyError:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {KINDS}") from None


def auto_map(columns: list[str], kind: str) -> dict[str, str | None]:
    """Best guess of target field -> source column, so most files need no manual mapping.

    Each column is used at most once; fields are filled in FIELDS order and each tries its
    aliases in order, so the more specific fields listed first win a contested column.
    """
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(normalize_header(col), col)
    used: set[str] = set()
    mapping: dict[str, str | None] = {}
    for spec in _specs(kind):
        mapping[spec.name] = None
        for alias in spec.aliases:
            col = by_norm.get(normalize_header(alias))
            if col is not None and col not in used:
                mapping[spec.name] = col
                used.add(col)
                break
    return mapping


def missing_required(mapping: dict[str, str | None], kind: str, columns: list[str]) -> list[str]:
    """Labels of required fields not mapped to a column the file has (form and service check)."""
    present = set(columns)
    return [
        spec.label
        for spec in _specs(kind)
        if spec.required and (mapping.get(spec.name) or None) not in present
    ]
