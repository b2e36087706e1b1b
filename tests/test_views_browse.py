"""Browse pages: product list/detail and customer list/detail (read-only for every role)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketing.models import EventKind
from marketing.selectors import product_sales_by_month
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def at(year: int, month: int, day: int = 15, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


def product_skus(response) -> list[str]:
    return [p.sku for p in response.context["products"]]


@pytest.fixture
def catalog():
    return CatalogFactory(name="Kitchen", currency="EUR")


@pytest.fixture
def shelf(catalog):
    """Four products with distinct titles, prices, stock, categories and ages."""
    return {
        "mug": ProductFactory(
            catalog=catalog,
            sku="MUG-1",
            title="Blue mug",
            description="Stoneware",
            category="Home > Kitchen",
            price=Decimal("8.50"),
        ),
        "pan": ProductFactory(
            catalog=catalog,
            sku="PAN-9",
            title="Cast iron pan",
            description="Heavy, lasts forever",
            category="Home > Kitchen",
            price=Decimal("45.00"),
        ),
        "lamp": ProductFactory(
            catalog=catalog,
            sku="LMP-3",
            title="Desk lamp",
            description="Warm light, blue shade",
            category="Home > Lighting",
            price=Decimal("30.00"),
            in_stock=False,
        ),
        "card": ProductFactory(
            catalog=catalog, sku="GFT-2", title="Gift card", category="", price=None
        ),
    }


def list_url(catalog, **params) -> str:
    url = reverse("marketing:product-list", args=[catalog.pk])
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


# --- product_list ------------------------------------------------------------------------------


def test_product_list_shows_only_this_catalogs_products(client, marketer, catalog, shelf):
    ProductFactory(title="Elsewhere")
    client.force_login(marketer)
    response = client.get(list_url(catalog))
    assert response.status_code == 200
    assert response.context["nav"] == "catalogs"
    assert product_skus(response) == ["MUG-1", "PAN-9", "LMP-3", "GFT-2"]  # by title
    assert response.context["page"].total.value == 4
    html = response.content.decode()
    assert "Elsewhere" not in html
    assert shelf["mug"].get_absolute_url() in html
    assert 'id="results"' in html and "<html" in html
    # The category dropdown lists this catalog's categories.
    assert response.context["form"].fields["category"].choices == [
        ("", "All categories"),
        ("Home > Kitchen", "Home > Kitchen"),
        ("Home > Lighting", "Home > Lighting"),
    ]


def test_product_list_requires_login(client, catalog):
    response = client.get(list_url(catalog))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_product_list_of_missing_catalog_is_404(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("marketing:product-list", args=[999])).status_code == 404


def test_product_list_is_read_only(client, marketer, catalog):
    client.force_login(marketer)
    assert client.post(list_url(catalog)).status_code == 405


@pytest.mark.parametrize(
    "q,expected",
    [
        ("pan-9", ["PAN-9"]),  # sku, case-insensitive
        ("MUG", ["MUG-1"]),  # title
        ("blue", ["MUG-1", "LMP-3"]),  # title or description
        ("forever", ["PAN-9"]),  # description
        ("nothing-like-this", []),
    ],
)
def test_product_search(client, marketer, catalog, shelf, q, expected):
    client.force_login(marketer)
    response = client.get(list_url(catalog, q=q))
    assert sorted(product_skus(response)) == sorted(expected)


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"category": "Home > Lighting"}, ["LMP-3"]),
        ({"price_min": "30"}, ["PAN-9", "LMP-3"]),
        ({"price_max": "30"}, ["MUG-1", "LMP-3"]),
        ({"price_min": "9", "price_max": "40"}, ["LMP-3"]),
        ({"in_stock": "yes"}, ["MUG-1", "PAN-9", "GFT-2"]),
        ({"in_stock": "no"}, ["LMP-3"]),
        ({"in_stock": "", "category": ""}, ["MUG-1", "PAN-9", "LMP-3", "GFT-2"]),
        ({"category": "Home > Kitchen", "q": "iron"}, ["PAN-9"]),
    ],
)
def test_product_filters(client, marketer, catalog, shelf, params, expected):
    client.force_login(marketer)
    response = client.get(reverse("marketing:product-list", args=[catalog.pk]), params)
    assert response.status_code == 200
    assert sorted(product_skus(response)) == sorted(expected)
    assert not response.context["form"].errors


@pytest.mark.parametrize(
    "params,message",
    [
        ({"price_min": "abc"}, "Enter a number."),
        ({"price_max": "-5"}, "greater than or equal to 0"),
        ({"price_min": "40", "price_max": "10"}, "Must not be below"),
        ({"category": "No such category"}, "Select a valid choice"),
        ({"in_stock": "maybe"}, "Select a valid choice"),
        ({"sort": "random()"}, "Select a valid choice"),
        ({"price_min": "1e400"}, "Ensure that there are no more than"),
        ({"price_max": "NaN"}, "Enter a number."),
        ({"q": "x" * 300}, "at most 200 characters"),
    ],
)
def test_invalid_filters_show_a_message_and_are_ignored(
    client, marketer, catalog, shelf, params, message
):
    client.force_login(marketer)
    response = client.get(reverse("marketing:product-list", args=[catalog.pk]), params)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert "This filter was ignored." in html
    assert len(product_skus(response)) >= 1


@pytest.mark.parametrize(
    "sort,expected",
    [
        ("title", ["MUG-1", "PAN-9", "LMP-3", "GFT-2"]),
        ("price", ["MUG-1", "LMP-3", "PAN-9", "GFT-2"]),  # unknown price last
        ("-price", ["PAN-9", "LMP-3", "MUG-1", "GFT-2"]),
        ("sku", ["GFT-2", "LMP-3", "MUG-1", "PAN-9"]),
        ("newest", ["GFT-2", "LMP-3", "PAN-9", "MUG-1"]),
    ],
)
def test_product_sort(client, marketer, catalog, shelf, sort, expected):
    client.force_login(marketer)
    response = client.get(list_url(catalog, sort=sort))
    assert product_skus(response) == expected


def test_best_selling_sort_counts_purchase_events_only(client, marketer, catalog, shelf):
    for _ in range(3):
        EventFactory(product=shelf["lamp"])
    EventFactory(product=shelf["pan"])
    EventFactory(product=shelf["pan"])
    EventFactory(product=shelf["mug"], kind=EventKind.VIEW)
    EventFactory(product=shelf["mug"], kind=EventKind.RETURN)
    client.force_login(marketer)
    response = client.get(list_url(catalog, sort="best"))
    assert product_skus(response) == ["LMP-3", "PAN-9", "MUG-1", "GFT-2"]
    assert [p.purchase_count for p in response.context["products"]] == [3, 2, 0, 0]
    assert response.context["page"].total.value == 4
    assert '<th class="num" title="Purchase events">Purchases</th>' in response.content.decode()


def test_only_best_selling_sort_reads_events(client, marketer, catalog, shelf):
    client.force_login(marketer)
    event_table = '"marketing_event"'
    with CaptureQueriesContext(connection) as plain:
        client.get(list_url(catalog, sort="price"))
    assert not any(event_table in q["sql"] for q in plain.captured_queries)
    with CaptureQueriesContext(connection) as best:
        client.get(list_url(catalog, sort="best"))
    touching_events = [q["sql"] for q in best.captured_queries if event_table in q["sql"]]
    # One page query; the count runs without the join.
    assert len(touching_events) == 1
    assert "LIMIT" in touching_events[0]


def test_product_list_query_count_does_not_grow_with_rows(client, marketer, catalog):
    ProductFactory.create_batch(3, catalog=catalog)
    client.force_login(marketer)
    client.get(list_url(catalog))  # the session and caches warm
    with CaptureQueriesContext(connection) as few:
        client.get(list_url(catalog))
    ProductFactory.create_batch(60, catalog=catalog)
    with CaptureQueriesContext(connection) as many:
        client.get(list_url(catalog))
    assert len(many) == len(few)
    # Session, user, the navigation's permission check (user + group permissions), the
    # catalog, the page, its count and the facets.
    assert len(many) <= 10


def test_product_list_paginates_50_per_page(client, marketer, catalog):
    ProductFactory.create_batch(51, catalog=catalog)
    client.force_login(marketer)
    first = client.get(list_url(catalog))
    page = first.context["page"]
    assert len(page.object_list) == 50
    assert page.has_next and not page.has_previous
    assert page.num_pages == 2
    html = first.content.decode()
    # The next link is a real href and an htmx request that pushes the URL.
    assert 'href="?page=2"' in html
    assert 'hx-get="?page=2"' in html
    assert 'hx-push-url="true"' in html

    second = client.get(list_url(catalog, page=2))
    assert len(second.context["products"]) == 1
    assert not second.context["page"].has_next


@pytest.mark.parametrize("page", ["abc", "0", "-3", "", "1.5"])
def test_odd_page_numbers_mean_first_page(client, marketer, catalog, shelf, page):
    client.force_login(marketer)
    response = client.get(list_url(catalog, page=page))
    assert response.status_code == 200
    assert response.context["page"].number == 1


def test_page_past_the_end_says_so(client, marketer, catalog, shelf):
    client.force_login(marketer)
    response = client.get(list_url(catalog, page=9))
    assert response.status_code == 200
    assert "No products on page 9" in response.content.decode()


def test_absurd_page_number_does_not_overflow(client, marketer, catalog, shelf):
    client.force_login(marketer)
    response = client.get(list_url(catalog, page=10**30))
    assert response.status_code == 200
    assert response.context["page"].number == 100_000


def test_pagination_links_keep_the_filters(client, marketer, catalog):
    ProductFactory.create_batch(55, catalog=catalog, category="Bulk")
    client.force_login(marketer)
    response = client.get(list_url(catalog, category="Bulk", sort="sku"))
    assert "?category=Bulk&amp;sort=sku&amp;page=2" in response.content.decode()


def test_htmx_request_gets_only_the_results_section(client, marketer, catalog, shelf):
    client.force_login(marketer)
    response = client.get(list_url(catalog, q="mug"), **HX)
    assert response.status_code == 200
    html = response.content.decode().strip()
    assert html.startswith('<section id="results"')
    assert "<html" not in html and "<form" not in html
    assert "Blue mug" in html and "Cast iron pan" not in html
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_HX_REQUEST": "true", "HTTP_HX_BOOSTED": "true"},
        {"HTTP_HX_REQUEST": "true", "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"},
    ],
)
def test_boosted_and_history_requests_get_the_full_page(client, marketer, catalog, shelf, headers):
    client.force_login(marketer)
    response = client.get(list_url(catalog, q="mug"), **headers)
    html = response.content.decode()
    assert "<html" in html and "<form" in html
    assert 'id="results"' in html


def test_filter_form_drives_htmx_and_works_without_it(client, marketer, catalog):
    client.force_login(marketer)
    html = client.get(list_url(catalog)).content.decode()
    url = reverse("marketing:product-list", args=[catalog.pk])
    assert 'method="get"' in html and f'action="{url}"' in html
    # Back/forward re-render from the server, so the form shows the URL's values.
    assert 'hx-history="false"' in html
    assert f'hx-get="{url}"' in html
    assert 'hx-target="#results"' in html
    assert 'hx-push-url="true"' in html
    assert "delay:" in html


def test_invalid_filter_in_htmx_partial_shows_message(client, marketer, catalog, shelf):
    client.force_login(marketer)
    response = client.get(list_url(catalog, price_min="abc"), **HX)
    assert response.status_code == 200
    assert "Enter a number." in response.content.decode()


# --- product_detail ----------------------------------------------------------------------------


@pytest.fixture
def sold_product(catalog):
    """Sales in Jan and Mar 2024 (none in Feb), one return in Mar, and noise that must not count."""
    product = ProductFactory(
        catalog=catalog,
        sku="TEA-7",
        title="Teapot",
        attributes={"colour": "green", "volume_ml": 900},
    )
    EventFactory(product=product, quantity=2, value=Decimal("20.00"), occurred_at=at(2024, 1, 3))
    EventFactory(product=product, quantity=1, value=Decimal("10.00"), occurred_at=at(2024, 1, 28))
    EventFactory(product=product, quantity=4, value=Decimal("38.00"), occurred_at=at(2024, 3, 9))
    EventFactory(
        product=product,
        kind=EventKind.RETURN,
        quantity=1,
        value=Decimal("10.00"),
        occurred_at=at(2024, 3, 20),
    )
    EventFactory(product=product, kind=EventKind.VIEW, value=None, occurred_at=at(2024, 2, 2))
    EventFactory(quantity=99, occurred_at=at(2024, 1, 5))  # another product
    return product


def test_product_detail_shows_facts_attributes_and_events(client, marketer, sold_product):
    client.force_login(marketer)
    response = client.get(sold_product.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "Teapot" in html and "TEA-7" in html
    assert "colour" in html and "green" in html and "volume_ml" in html
    assert len(response.context["events"]) == 5
    assert response.context["events"][0].occurred_at == at(2024, 3, 20)
    assert 'src="/static/vendor/plotly/plotly.min.js"' in html
    assert 'data-plotly="sales-chart"' in html


def test_product_detail_chart_has_monthly_totals(client, marketer, sold_product):
    client.force_login(marketer)
    response = client.get(sold_product.get_absolute_url())
    html = response.content.decode()
    start = html.index('<script id="sales-chart" type="application/json">')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    fig = json.loads(body)
    traces = {trace["name"]: trace for trace in fig["data"]}
    months = ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert traces["Units sold"]["x"] == months
    assert traces["Units sold"]["y"] == [3, 0, 4]
    assert traces["Revenue"]["y"] == [30.0, 0.0, 38.0]
    assert traces["Units returned"]["y"] == [0, 0, 1]
    assert traces["Refunds"]["y"] == [0.0, 0.0, 10.0]
    sales = response.context["sales"]
    assert sales["units_purchased"] == 7
    assert sales["revenue"] == Decimal("68.00")


def test_sales_months_follow_the_catalog_time_zone(catalog):
    catalog.timezone = "America/New_York"
    catalog.save()
    product = ProductFactory(catalog=catalog)
    # 1 Feb 03:00 UTC is still 31 Jan in New York.
    EventFactory(product=product, quantity=5, occurred_at=dt.datetime(2024, 2, 1, 3, tzinfo=dt.UTC))
    months = product_sales_by_month(product=product)
    assert [(m.month, m.units_purchased) for m in months] == [(dt.date(2024, 1, 1), 5)]


def test_product_detail_without_sales_has_no_chart(client, marketer, catalog):
    product = ProductFactory(catalog=catalog)
    client.force_login(marketer)
    response = client.get(product.get_absolute_url())
    html = response.content.decode()
    assert response.context["fig"] is None
    assert "plotly.min.js" not in html
    assert "No purchases or returns of this product yet" in html


def test_product_detail_requires_login(client, sold_product):
    response = client.get(sold_product.get_absolute_url())
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_product_detail_of_missing_product_is_404(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("marketing:product-detail", args=[999])).status_code == 404


# --- customer_list -----------------------------------------------------------------------------


@pytest.fixture
def people():
    return {
        "ann": CustomerFactory(
            external_id="C-100", name="Ann Lee", email="ann@example.test", country="France"
        ),
        "bo": CustomerFactory(
            external_id="C-200", name="Bo Brown", email="bo@shop.test", country="Germany"
        ),
        "cy": CustomerFactory(
            external_id="X-300", name="Cy Young", email="cy@example.test", country="France"
        ),
    }


def customer_ids(response) -> list[str]:
    return [c.external_id for c in response.context["customers"]]


def test_customer_list(client, approver, people):
    client.force_login(approver)
    response = client.get(reverse("marketing:customer-list"))
    assert response.status_code == 200
    assert response.context["nav"] == "customers"
    assert customer_ids(response) == ["C-100", "C-200", "X-300"]
    assert response.context["form"].fields["country"].choices == [
        ("", "All countries"),
        ("France", "France"),
        ("Germany", "Germany"),
    ]
    assert people["ann"].get_absolute_url() in response.content.decode()


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"q": "c-2"}, ["C-200"]),  # external id
        ({"q": "young"}, ["X-300"]),  # name
        ({"q": "example.test"}, ["C-100", "X-300"]),  # email
        ({"q": "germ"}, ["C-200"]),  # country
        ({"country": "France"}, ["C-100", "X-300"]),
        ({"country": "France", "q": "ann"}, ["C-100"]),
    ],
)
def test_customer_search_and_country_filter(client, marketer, people, params, expected):
    client.force_login(marketer)
    response = client.get(reverse("marketing:customer-list"), params)
    assert customer_ids(response) == expected


def test_customer_list_bad_country_is_reported(client, marketer, people):
    client.force_login(marketer)
    response = client.get(reverse("marketing:customer-list"), {"country": "Atlantis"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert len(customer_ids(response)) == 3


@pytest.fixture
def two_catalogs(people):
    """Ann bought in Kitchen twice, Bo in Garden, Cy nowhere; a guest bought in Kitchen."""
    kitchen = CatalogFactory(name="Kitchen")
    garden = CatalogFactory(name="Garden")
    EventFactory.create_batch(2, product__catalog=kitchen, customer=people["ann"])
    EventFactory(product__catalog=kitchen, customer=None)
    EventFactory(product__catalog=garden, customer=people["bo"])
    return kitchen, garden


def test_customer_list_filters_by_catalog(client, marketer, people, two_catalogs):
    kitchen, garden = two_catalogs
    client.force_login(marketer)
    url = reverse("marketing:customer-list")
    response = client.get(url, {"catalog": kitchen.pk})
    assert customer_ids(response) == ["C-100"]  # once, though Ann has two events there
    assert response.context["page"].total.value == 1
    html = response.content.decode()
    assert "with events in" in html and kitchen.get_absolute_url() in html
    assert customer_ids(client.get(url, {"catalog": garden.pk})) == ["C-200"]
    combined = client.get(url, {"catalog": garden.pk, "country": "France"})
    assert customer_ids(combined) == []
    assert "No customers match" in combined.content.decode()


def test_customer_list_catalog_filter_is_one_query_with_a_semi_join(
    client, marketer, people, two_catalogs
):
    kitchen, _ = two_catalogs
    client.force_login(marketer)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("marketing:customer-list"), {"catalog": kitchen.pk}, **HX)
    listing = [
        q["sql"] for q in queries if q["sql"].lstrip().startswith('SELECT "marketing_customer"')
    ]
    assert len(listing) == 1
    assert "EXISTS" in listing[0] and "DISTINCT" not in listing[0]


def test_customer_list_bad_catalog_is_reported_and_ignored(client, marketer, people):
    client.force_login(marketer)
    response = client.get(reverse("marketing:customer-list"), {"catalog": "999"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert len(customer_ids(response)) == 3


def test_customer_list_paginates_with_htmx(client, marketer):
    CustomerFactory.create_batch(120)
    client.force_login(marketer)
    response = client.get(reverse("marketing:customer-list"), {"page": "3"}, **HX)
    html = response.content.decode().strip()
    assert html.startswith('<section id="results"')
    assert len(response.context["customers"]) == 20
    assert response.context["page"].total.value == 120
    assert 'hx-get="?page=2"' in html and 'href="?page=2"' in html


def test_customer_list_requires_login(client):
    response = client.get(reverse("marketing:customer-list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- customer_detail ---------------------------------------------------------------------------


@pytest.fixture
def shopper(catalog):
    customer = CustomerFactory(
        external_id="C-777",
        name="Dana Smith",
        email="dana@example.test",
        country="Ireland",
        language="en",
        consent_email=True,
        attributes={"gender": "F", "Age": "41", "loyalty_tier": "gold"},
    )
    product = ProductFactory(catalog=catalog, title="Teapot")
    for day in range(1, 31):
        EventFactory(customer=customer, product=product, occurred_at=at(2024, 4, day))
    return customer


def test_customer_detail_shows_facts_and_labels_sensitive_attributes(client, marketer, shopper):
    client.force_login(marketer)
    response = client.get(shopper.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("C-777", "Dana Smith", "dana@example.test", "Ireland"):
        assert text in html
    assert response.context["attributes"] == [("loyalty_tier", "gold")]
    assert response.context["sensitive_attributes"] == [("Age", "41"), ("gender", "F")]
    assert html.count('class="badge sensitive"') == 2
    assert response.context["summary"].purchases == 30


def test_customer_detail_marks_later_sections_as_pending(client, marketer, shopper):
    client.force_login(marketer)
    html = client.get(shopper.get_absolute_url()).content.decode()
    assert "Profile &amp; segments" in html and "profile refresh" in html
    assert "Recommendations" in html and "recommendation run" in html
    assert "Drafts" in html


def test_customer_timeline_paginates_newest_first(client, marketer, shopper):
    client.force_login(marketer)
    first = client.get(shopper.get_absolute_url())
    timeline = first.context["timeline"]
    assert len(timeline.object_list) == 25
    assert timeline.object_list[0].occurred_at == at(2024, 4, 30)
    assert timeline.has_next
    older = client.get(shopper.get_absolute_url(), {"page": "2"}, **HX)
    html = older.content.decode().strip()
    assert html.startswith('<section id="timeline"')
    assert "Profile &amp; segments" not in html
    assert [e.occurred_at.day for e in older.context["timeline"]] == [5, 4, 3, 2, 1]
    assert 'hx-target="#timeline"' in html and 'href="?page=1"' in html


def test_customer_detail_requires_login(client, shopper):
    response = client.get(shopper.get_absolute_url())
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_customer_detail_of_missing_customer_is_404(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("marketing:customer-detail", args=[999])).status_code == 404
