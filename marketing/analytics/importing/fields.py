"""Target fields per import kind, and matching of a file's headers to them.

Matching ignores case, spaces, underscores, hyphens and dots, so "Customer ID",
"customer_id" and "CustomerID" all find the customer field. Aliases are tried in the
order listed, so a file with both "sku" and "id" maps the SKU to "sku".

Campaign results ("campaign_results": a campaign tool's per-recipient report of a Tailor
export) need at least one of draft / customer / email (`REQUIRED_ONE_OF`). Where the
headers come from (only what could be checked is attributed to a tool):

==============  ==========================================================================
Field           Headers matched, and their source
==============  ==========================================================================
draft           tailor_draft_id (Tailor's Klaviyo, HubSpot and Braze presets write it),
                draft_id (Tailor's generic CSV / JSON Lines), draft
variant         tailor_variant (the same presets), variant (generic), variant_id
customer        tailor_customer_id, customer_id (generic), external_id (Braze's CSV
                identifier, as the Braze preset writes it), customer
email           "Email Address" (Mailchimp's audience column, as the Mailchimp preset
                writes it), Email (Klaviyo and HubSpot presets), recipient (HubSpot's
                Email Events API field for the address); $email and email_address are
                common headers
export, brief   tailor_export_id / export_id / export; tailor_brief_id (presets), brief_id
                (generic), brief
sent            sent, "Received Email" (a Klaviyo metric name), received: common headers
delivered       delivered, delivery: common headers
opened          opened, opens, open, "Opened Email" (a Klaviyo metric name), unique_opens
clicked         clicked, clicks, click, "Clicked Email" (a Klaviyo metric name),
                unique_clicks
converted       converted, conversion(s), "Placed Order" (a Klaviyo metric name),
                purchased, ordered, orders
revenue         revenue, "Placed Order Value" (a Klaviyo metric name), order_value,
                conversion_value, value, amount
sent_at …       sent_at / send_time (the Mailchimp API's campaign field) / sent_date;
                opened_at / open_time / first_open; clicked_at / click_time /
                first_click; converted_at / conversion_time / order_date / purchased_at
sku             sku, product_sku, product_id, item_id, stockcode: common headers
==============  ==========================================================================

The Klaviyo metric names were checked as metric names (reports, connectors), not as the
header of a per-recipient export; the opens / clicks counts are read as "more than zero".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("products", "customers", "events", "reviews", "online_retail", "campaign_results")

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

_FLAG_HELP = "yes/no, true/false, 1/0, or a count (opens, clicks): more than 0 is yes."


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
    # A campaign tool's per-recipient report of a Tailor export (copygen.services.results_import).
    "campaign_results": [
        _f(
            "draft",
            "Draft ID",
            "int",
            "tailor_draft_id",
            "draft_id",
            "draft",
            help="Tailor's draft id, as the export wrote it.",
        ),
        _f(
            "variant",
            "Variant",
            "int",
            "tailor_variant",
            "variant",
            "variant_id",
            help="Checked against the variant the export sent.",
        ),
        _f(
            "customer",
            "Customer ID",
            "str",
            "tailor_customer_id",
            "customer_id",
            "customerid",
            "external_id",
            "customer",
            max_length=100,
        ),
        _f(
            "email",
            "Email",
            "email",
            "email_address",
            "email",
            "$email",
            "e-mail",
            "recipient",
            help="Matched to the export's recipients ignoring case.",
            max_length=254,
        ),
        _f("export", "Export ID", "int", "tailor_export_id", "export_id", "export"),
        _f("brief", "Brief ID", "int", "tailor_brief_id", "brief_id", "brief"),
        *(
            _f(name, label, "bool", *aliases, help=help_)
            for name, label, aliases, help_ in (
                (
                    "sent",
                    "Sent",
                    ("sent", "received_email", "received"),
                    _FLAG_HELP + " Blank: yes.",
                ),
                (
                    "delivered",
                    "Delivered",
                    ("delivered", "delivery"),
                    _FLAG_HELP + " Blank: unknown.",
                ),
                (
                    "opened",
                    "Opened",
                    ("opened", "opens", "open", "opened_email", "unique_opens"),
                    _FLAG_HELP,
                ),
                (
                    "clicked",
                    "Clicked",
                    ("clicked", "clicks", "click", "clicked_email", "unique_clicks"),
                    _FLAG_HELP,
                ),
                (
                    "converted",
                    "Converted",
                    (
                        "converted",
                        "conversion",
                        "conversions",
                        "placed_order",
                        "purchased",
                        "ordered",
                        "orders",
                    ),
                    _FLAG_HELP,
                ),
            )
        ),
        _f(
            "revenue",
            "Revenue",
            "decimal",
            "revenue",
            "placed_order_value",
            "order_value",
            "conversion_value",
            "value",
            "amount",
            help="Order value of the conversion; blank: unknown.",
        ),
        _f(
            "sent_at",
            "Sent at",
            "datetime",
            "sent_at",
            "send_time",
            "sent_time",
            "sent_date",
            help="Times without a zone are the catalog's; a recipient's earliest is kept.",
        ),
        _f("opened_at", "Opened at", "datetime", "opened_at", "open_time", "first_open"),
        _f("clicked_at", "Clicked at", "datetime", "clicked_at", "click_time", "first_click"),
        _f(
            "converted_at",
            "Converted at",
            "datetime",
            "converted_at",
            "conversion_time",
            "order_date",
            "ordered_at",
            "purchased_at",
        ),
        _f(
            "sku",
            "SKU",
            "str",
            "sku",
            "product_sku",
            "product_id",
            "item_id",
            "stockcode",
            help="The product clicked or bought; blank: the draft's first product.",
            max_length=100,
        ),
    ],
}

# Kinds that need at least one of these fields mapped (rather than each of them).
REQUIRED_ONE_OF: dict[str, tuple[str, ...]] = {"campaign_results": ("draft", "customer", "email")}

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
    specs = _specs(kind)
    missing = [
        spec.label
        for spec in specs
        if spec.required and (mapping.get(spec.name) or None) not in present
    ]
    group = REQUIRED_ONE_OF.get(kind, ())
    if group and not any((mapping.get(name) or None) in present for name in group):
        missing.append(one_of_label(kind))
    return missing


def one_of_label(kind: str) -> str:
    """The fields of `REQUIRED_ONE_OF` as a message names them: "Draft ID, Customer ID or Email"."""
    labels = {spec.name: spec.label for spec in _specs(kind)}
    names = [labels[name] for name in REQUIRED_ONE_OF.get(kind, ())]
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)
