"""Catalog pages: list, create, detail, update, delete.

Roles: alice (admin) may write; mary (marketer), avery (approver) and nora (no role) only read.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketing.models import DEFAULT_NON_PRODUCT_PATTERNS, Catalog, Customer, Event, Job, Product
from marketing.selectors import ApproxCount, catalog_overview, count_bounded
from marketing.services.catalogs import (
    IMPORT_ACTIVE_MESSAGE,
    CatalogBusy,
    catalog_create,
    catalog_delete,
    catalog_update,
)
from tests.factories import (
    CatalogFactory,
    CustomerFactory,
    EventFactory,
    JobFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db


def _form_data(**overrides) -> dict:
    data = {
        "name": "Garden Shop",
        "currency": "gbp",
        "default_language": "en-GB",
        "timezone": "Europe/London",
        "non_product_patterns": "^POST$\n\n^GIFT_\n^POST$\n",
    }
    data.update(overrides)
    return data


@pytest.fixture
def filled_catalog():
    """A catalog with 2 products, 3 events by 2 customers (plus a guest) and one import."""
    catalog = CatalogFactory(name="Home Goods")
    mug, pan = ProductFactory.create_batch(2, catalog=catalog)
    anna, ben = CustomerFactory.create_batch(2)
    EventFactory(product=mug, customer=anna)
    EventFactory(product=mug, customer=ben)
    EventFactory(product=pan, customer=anna)
    EventFactory(product=pan, customer=None)
    JobFactory(catalog=catalog)
    return catalog


# --- catalog_list ------------------------------------------------------------------------------


def test_list_shows_catalogs_with_counts(client, marketer, filled_catalog):
    CatalogFactory(name="Empty Shop")
    client.force_login(marketer)
    response = client.get(reverse("marketing:catalog-list"))
    assert response.status_code == 200
    assert response.context["nav"] == "catalogs"
    rows = {row.catalog.name: row for row in response.context["rows"]}
    home = rows["Home Goods"]
    assert home.catalog.product_count == 2
    assert home.customers == ApproxCount(2)
    assert home.events == ApproxCount(4)
    assert home.catalog.last_import_at is not None
    assert rows["Empty Shop"].catalog.product_count == 0
    assert rows["Empty Shop"].catalog.last_import_at is None
    html = response.content.decode()
    assert reverse("marketing:catalog-detail", args=[filled_catalog.pk]) in html
    assert "Never" in html


def test_list_offers_new_catalog_only_to_admins(client, admin_user, marketer):
    url = reverse("marketing:catalog-create")
    client.force_login(admin_user)
    assert url in client.get(reverse("marketing:catalog-list")).content.decode()
    client.force_login(marketer)
    assert url not in client.get(reverse("marketing:catalog-list")).content.decode()


def test_list_is_readable_without_a_role(client, no_role_user, filled_catalog):
    client.force_login(no_role_user)
    response = client.get(reverse("marketing:catalog-list"))
    assert response.status_code == 200
    assert "Home Goods" in response.content.decode()


@pytest.mark.parametrize(
    "name,args",
    [
        ("marketing:catalog-list", []),
        ("marketing:catalog-create", []),
        ("marketing:catalog-detail", [1]),
        ("marketing:catalog-update", [1]),
        ("marketing:catalog-delete", [1]),
    ],
)
def test_pages_require_login(client, name, args):
    url = reverse(name, args=args)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert "next=" in response.url


def test_anonymous_post_changes_nothing(client):
    catalog = CatalogFactory(name="Keep")
    client.post(reverse("marketing:catalog-create"), _form_data())
    client.post(reverse("marketing:catalog-update", args=[catalog.pk]), _form_data(name="X"))
    client.post(reverse("marketing:catalog-delete", args=[catalog.pk]))
    assert list(Catalog.objects.values_list("name", flat=True)) == ["Keep"]


# --- catalog_create ----------------------------------------------------------------------------


def test_create_form_starts_with_default_patterns(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("marketing:catalog-create"))
    assert response.status_code == 200
    assert "^BANK CHARGES$" in response.content.decode()


def test_admin_creates_catalog(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("marketing:catalog-create"), _form_data())
    catalog = Catalog.objects.get()
    assert response.status_code == 302
    assert response.url == catalog.get_absolute_url()
    assert catalog.name == "Garden Shop"
    assert catalog.currency == "GBP"
    assert catalog.default_language == "en-GB"
    assert catalog.timezone == "Europe/London"
    # Blank lines and repeats dropped, order kept.
    assert catalog.non_product_patterns == ["^POST$", "^GIFT_"]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("user_fixture", ["marketer", "approver", "no_role_user"])
def test_create_requires_admin(client, request, method, user_fixture):
    client.force_login(request.getfixturevalue(user_fixture))
    response = getattr(client, method)(reverse("marketing:catalog-create"), _form_data())
    assert response.status_code == 403
    assert not Catalog.objects.exists()


@pytest.mark.parametrize("taken", ["Garden Shop", "garden shop", "  GARDEN SHOP "])
def test_create_rejects_duplicate_name(client, admin_user, taken):
    CatalogFactory(name="Garden Shop", currency="EUR")
    client.force_login(admin_user)
    response = client.post(reverse("marketing:catalog-create"), _form_data(name=taken))
    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].errors["name"])
    assert Catalog.objects.count() == 1
    assert Catalog.objects.get().currency == "EUR"


def test_create_rejects_invalid_regex_and_names_the_line(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("marketing:catalog-create"),
        _form_data(non_product_patterns="^POST$\n[unclosed\n(a"),
    )
    assert response.status_code == 200
    errors = response.context["form"].errors["non_product_patterns"]
    assert any("Line 2" in e and "[unclosed" in e for e in errors)
    assert any("Line 3" in e for e in errors)
    assert not Catalog.objects.exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("currency", "EU"),
        ("currency", "E1R"),
        ("default_language", "English!"),
        ("timezone", "Mars/Olympus"),
        ("name", "   "),
    ],
)
def test_create_rejects_bad_settings(client, admin_user, field, value):
    client.force_login(admin_user)
    response = client.post(reverse("marketing:catalog-create"), _form_data(**{field: value}))
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not Catalog.objects.exists()


def test_service_rejects_duplicates_and_bad_patterns_itself(admin_user):
    CatalogFactory(name="Shop")
    common = {"currency": "EUR", "default_language": "en", "timezone": "UTC"}
    with pytest.raises(ValidationError):
        catalog_create(name="SHOP", **common, user=admin_user)
    with pytest.raises(ValidationError):
        catalog_create(name="Other", non_product_patterns=["(x"], **common, user=admin_user)
    assert Catalog.objects.count() == 1


def test_service_create_without_patterns_uses_defaults(admin_user):
    catalog = catalog_create(
        name="Fresh", currency="usd", default_language="en", timezone="UTC", user=admin_user
    )
    assert catalog.currency == "USD"
    assert catalog.non_product_patterns == DEFAULT_NON_PRODUCT_PATTERNS


# --- catalog_detail ----------------------------------------------------------------------------


def test_detail_shows_facts_counts_links_and_jobs(client, marketer, filled_catalog):
    other_job = JobFactory(message="Other catalog's job")
    client.force_login(marketer)
    response = client.get(filled_catalog.get_absolute_url())
    assert response.status_code == 200
    stats = response.context["stats"]
    assert stats.products == ApproxCount(2)
    assert stats.customers == ApproxCount(2)
    assert stats.events == ApproxCount(4)
    assert stats.first_event_at <= stats.last_event_at
    html = response.content.decode()
    assert reverse("marketing:product-list", args=[filled_catalog.pk]) in html
    assert reverse("marketing:upload-create", args=[filled_catalog.pk]) in html
    jobs = list(response.context["jobs"])
    assert len(jobs) == 1 and jobs[0].catalog == filled_catalog
    assert other_job.get_absolute_url() not in html
    # Marketers import but do not edit or delete catalogs.
    assert reverse("marketing:catalog-update", args=[filled_catalog.pk]) not in html
    assert reverse("marketing:catalog-delete", args=[filled_catalog.pk]) not in html


def test_detail_offers_edit_and_delete_to_admins(client, admin_user, filled_catalog):
    client.force_login(admin_user)
    html = client.get(filled_catalog.get_absolute_url()).content.decode()
    assert reverse("marketing:catalog-update", args=[filled_catalog.pk]) in html
    assert reverse("marketing:catalog-delete", args=[filled_catalog.pk]) in html


def test_detail_of_missing_catalog_is_404(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("marketing:catalog-detail", args=[999])).status_code == 404


# --- catalog_update ----------------------------------------------------------------------------


def test_admin_updates_catalog(client, admin_user):
    catalog = CatalogFactory(name="Old name")
    client.force_login(admin_user)
    url = reverse("marketing:catalog-update", args=[catalog.pk])
    form_html = client.get(url).content.decode()
    assert "Old name" in form_html and "^DCGS" in form_html
    response = client.post(
        url, _form_data(name="New name", currency="usd", non_product_patterns="^FEE\n^SHIP$")
    )
    assert response.status_code == 302
    catalog.refresh_from_db()
    assert catalog.name == "New name"
    assert catalog.currency == "USD"
    assert catalog.non_product_patterns == ["^FEE", "^SHIP$"]


def test_update_keeps_own_name(client, admin_user):
    catalog = CatalogFactory(name="Same")
    client.force_login(admin_user)
    url = reverse("marketing:catalog-update", args=[catalog.pk])
    response = client.post(url, _form_data(name="same", non_product_patterns=""))
    assert response.status_code == 302
    catalog.refresh_from_db()
    assert catalog.name == "same"
    assert catalog.non_product_patterns == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_update_requires_admin(client, marketer, method):
    catalog = CatalogFactory(name="Untouched", currency="GBP")
    client.force_login(marketer)
    url = reverse("marketing:catalog-update", args=[catalog.pk])
    response = getattr(client, method)(url, _form_data(name="Hacked", currency="USD"))
    assert response.status_code == 403
    catalog.refresh_from_db()
    assert (catalog.name, catalog.currency) == ("Untouched", "GBP")


def test_update_rejects_invalid_regex_and_keeps_data(client, admin_user):
    catalog = CatalogFactory(name="Shop", non_product_patterns=["^POST$"])
    client.force_login(admin_user)
    url = reverse("marketing:catalog-update", args=[catalog.pk])
    response = client.post(url, _form_data(name="Renamed", non_product_patterns="*bad"))
    assert response.status_code == 200
    assert "not a valid regular expression" in response.content.decode()
    catalog.refresh_from_db()
    assert catalog.name == "Shop"
    assert catalog.non_product_patterns == ["^POST$"]


def test_update_rejects_duplicate_name_and_keeps_data(client, admin_user):
    CatalogFactory(name="Taken")
    catalog = CatalogFactory(name="Mine")
    client.force_login(admin_user)
    url = reverse("marketing:catalog-update", args=[catalog.pk])
    response = client.post(url, _form_data(name="TAKEN"))
    assert response.status_code == 200
    assert "already exists" in str(response.context["form"].errors["name"])
    catalog.refresh_from_db()
    assert catalog.name == "Mine"


def test_update_of_missing_catalog_is_404(client, admin_user):
    client.force_login(admin_user)
    url = reverse("marketing:catalog-update", args=[999])
    assert client.get(url).status_code == 404
    assert client.post(url, _form_data()).status_code == 404


def test_service_update_rejects_bad_pattern(admin_user):
    catalog = CatalogFactory(name="Shop", non_product_patterns=["^A"])
    with pytest.raises(ValidationError):
        catalog_update(
            catalog=catalog,
            name="Shop",
            currency="EUR",
            default_language="en",
            timezone="UTC",
            non_product_patterns=["^A", "+"],
            user=admin_user,
        )
    catalog.refresh_from_db()
    assert catalog.non_product_patterns == ["^A"]


# --- catalog_delete ----------------------------------------------------------------------------


def test_delete_confirmation_shows_what_goes_and_deletes_nothing(
    client, admin_user, filled_catalog
):
    client.force_login(admin_user)
    response = client.get(reverse("marketing:catalog-delete", args=[filled_catalog.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Delete “Home Goods”?" in html
    assert "<strong>2</strong> products" in html
    assert "<strong>4</strong> behaviour events" in html
    assert "cannot be undone" in html
    assert Catalog.objects.filter(pk=filled_catalog.pk).exists()
    assert Event.objects.count() == 4


def test_admin_deletes_catalog_with_its_data(client, admin_user, filled_catalog):
    other = CatalogFactory(name="Other")
    other_event = EventFactory(product=ProductFactory(catalog=other))
    job = Job.objects.get(catalog=filled_catalog)
    client.force_login(admin_user)
    response = client.post(reverse("marketing:catalog-delete", args=[filled_catalog.pk]))
    assert response.status_code == 302
    assert response.url == reverse("marketing:catalog-list")
    assert not Catalog.objects.filter(pk=filled_catalog.pk).exists()
    assert not Product.objects.filter(catalog_id=filled_catalog.pk).exists()
    assert not Event.objects.filter(catalog_id=filled_catalog.pk).exists()
    # Customers are shared between catalogs; jobs stay as history.
    assert Customer.objects.count() == 3
    job.refresh_from_db()
    assert job.catalog is None
    assert Event.objects.filter(pk=other_event.pk).exists()
    follow = client.get(response.url)
    assert "deleted with 2 products and 4 events" in follow.content.decode()


@pytest.mark.parametrize("method", ["get", "post"])
def test_delete_requires_admin(client, marketer, filled_catalog, method):
    client.force_login(marketer)
    response = getattr(client, method)(
        reverse("marketing:catalog-delete", args=[filled_catalog.pk])
    )
    assert response.status_code == 403
    assert Catalog.objects.filter(pk=filled_catalog.pk).exists()
    assert Product.objects.filter(catalog=filled_catalog).count() == 2
    assert Event.objects.filter(catalog=filled_catalog).count() == 4


def test_delete_of_missing_catalog_is_404(client, admin_user):
    client.force_login(admin_user)
    url = reverse("marketing:catalog-delete", args=[999])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.RUNNING])
def test_delete_is_refused_while_an_import_is_active(client, admin_user, filled_catalog, status):
    job = JobFactory(catalog=filled_catalog, status=status, message="Queued: events.csv")
    client.force_login(admin_user)
    url = reverse("marketing:catalog-delete", args=[filled_catalog.pk])

    page = client.get(url).content.decode()
    assert job.get_absolute_url() in page
    assert "disabled" in page

    response = client.post(url)
    assert response.status_code == 200
    assert IMPORT_ACTIVE_MESSAGE in response.content.decode()
    assert Catalog.objects.filter(pk=filled_catalog.pk).exists()
    assert Product.objects.filter(catalog=filled_catalog).count() == 2
    assert Event.objects.filter(catalog=filled_catalog).count() == 4


def test_finished_imports_do_not_block_a_delete(client, admin_user, filled_catalog):
    for status in (Job.Status.FAILED, Job.Status.CANCELLED):
        JobFactory(catalog=filled_catalog, status=status)
    JobFactory(status=Job.Status.RUNNING)  # another catalog's import
    client.force_login(admin_user)
    response = client.post(reverse("marketing:catalog-delete", args=[filled_catalog.pk]))
    assert response.status_code == 302
    assert not Catalog.objects.filter(pk=filled_catalog.pk).exists()


def test_service_delete_refuses_while_an_import_is_queued(admin_user, filled_catalog):
    JobFactory(catalog=filled_catalog, status=Job.Status.QUEUED)
    with pytest.raises(CatalogBusy) as info:
        catalog_delete(catalog=filled_catalog, user=admin_user)
    assert info.value.messages == [IMPORT_ACTIVE_MESSAGE]
    assert Event.objects.filter(catalog=filled_catalog).count() == 4


# --- services check permissions themselves ---------------------------------------------------


_SETTINGS = {"currency": "EUR", "default_language": "en", "timezone": "UTC"}


@pytest.mark.parametrize("user_fixture", ["marketer", "approver", "no_role_user", None])
def test_services_refuse_users_without_the_permission(request, filled_catalog, user_fixture):
    user = request.getfixturevalue(user_fixture) if user_fixture else AnonymousUser()
    with pytest.raises(PermissionDenied):
        catalog_create(name="New", **_SETTINGS, user=user)
    with pytest.raises(PermissionDenied):
        catalog_update(
            catalog=filled_catalog, name="Hacked", **_SETTINGS, non_product_patterns=[], user=user
        )
    with pytest.raises(PermissionDenied):
        catalog_delete(catalog=filled_catalog, user=user)
    assert list(Catalog.objects.values_list("name", flat=True)) == ["Home Goods"]
    assert Event.objects.filter(catalog=filled_catalog).count() == 4


def test_services_accept_a_user_with_the_permission(admin_user):
    catalog = catalog_create(name="New", **_SETTINGS, user=admin_user)
    catalog_update(
        catalog=catalog, name="Renamed", **_SETTINGS, non_product_patterns=[], user=admin_user
    )
    assert catalog_delete(catalog=catalog, user=admin_user).name == "Renamed"
    assert not Catalog.objects.exists()


# --- bounded counts ----------------------------------------------------------------------------


def test_detail_links_customer_card_to_the_catalogs_customers(client, marketer, filled_catalog):
    client.force_login(marketer)
    html = client.get(filled_catalog.get_absolute_url()).content.decode()
    assert f"{reverse('marketing:customer-list')}?catalog={filled_catalog.pk}" in html


def test_overview_reads_a_bounded_number_of_events(filled_catalog):
    """Past `scan` events the customer count is no longer exact, and no query reads them all."""
    with CaptureQueriesContext(connection) as queries:
        rows = catalog_overview(scan=2)
    (row,) = rows
    assert not row.customers.exact
    if connection.vendor == "sqlite":  # a lower bound: the customers among 2 of the events
        assert 1 <= row.customers.value <= 2
        assert str(row.customers).endswith("+")
    event_queries = [q["sql"] for q in queries if '"marketing_event"' in q["sql"]]
    assert event_queries
    for sql in event_queries:
        assert sql.startswith("EXPLAIN") or "LIMIT" in sql, sql


def test_overview_counts_small_catalogs_exactly(filled_catalog):
    (row,) = catalog_overview(scan=4)
    assert row.customers == ApproxCount(2)
    assert row.events == ApproxCount(4)


def test_count_bounded_stops_at_the_cap():
    catalog = CatalogFactory()
    product = ProductFactory(catalog=catalog)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    Event.objects.bulk_create(
        Event(id=i, catalog=catalog, product=product, kind="view", occurred_at=start)
        for i in range(1, 8)
    )
    events = Event.objects.filter(catalog=catalog)
    assert count_bounded(events, cap=10) == ApproxCount(7)
    capped = count_bounded(events, cap=5)
    assert (capped.value, capped.exact) == (5, False)
    assert str(capped) == "5+"
    assert str(ApproxCount(1234)) == "1,234"
    assert str(ApproxCount(2_400_000, exact=False, estimated=True)) == "≈ 2.4 million"
