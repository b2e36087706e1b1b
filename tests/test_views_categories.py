"""Categories page, inline rename (htmx and plain), the derived marker on product pages and
the Django admin's rename."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketing.models import AuditEvent, DerivedCategory, Job
from marketing.services.categories import categories_derive
from tests.factories import CatalogFactory, ProductFactory
from tests.test_categories_service import COLOURS, FAMILIES, add_products

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def shop():
    catalog = CatalogFactory(name="Gift shop")
    for family in FAMILIES:
        add_products(catalog, family, COLOURS[:6])
    categories_derive(catalog=catalog)
    return catalog


@pytest.fixture
def mugs(shop):
    return DerivedCategory.objects.get(catalog=shop, products__sku="MUG-0")


def list_url(catalog) -> str:
    return reverse("marketing:category-list", args=[catalog.pk])


def rename_url(category) -> str:
    return reverse("marketing:category-rename", args=[category.pk])


# The list page -------------------------------------------------------------------------------


def test_list_shows_derived_categories_with_terms_counts_and_examples(client, marketer, shop):
    client.force_login(marketer)
    response = client.get(list_url(shop))
    assert response.status_code == 200
    rows = response.context["categories"]
    assert len(rows) == 3
    assert all(row.product_count == 6 and len(row.examples) == 3 for row in rows)
    html = response.content.decode()
    for row in rows:
        assert f'id="category-{row.pk}"' in html
        assert row.terms[0] in html
    assert "CERAMIC COFFEE MUG" in html
    assert "Rename</a>" not in html  # marketers read only


def test_admin_sees_rename_links_and_renamed_from(client, admin_user, shop, mugs):
    auto = mugs.auto_name
    client.force_login(admin_user)
    client.post(rename_url(mugs), {"name": "Mugs"})
    html = client.get(list_url(shop)).content.decode()
    assert f'href="{rename_url(mugs)}"' in html
    assert "renamed from “" + auto + "” by alice" in html


def test_catalog_with_own_categories_lists_them_read_only(client, marketer):
    catalog = CatalogFactory()
    ProductFactory.create_batch(3, catalog=catalog, category="Home > Kitchen")
    ProductFactory(catalog=catalog, category="Garden")
    client.force_login(marketer)
    response = client.get(list_url(catalog))
    assert response.status_code == 200
    assert list(response.context["own_categories"]) == [("Garden", 1), ("Home > Kitchen", 3)]
    assert "needs no derived categories" in response.content.decode()


def test_catalog_page_links_to_categories(client, marketer, shop):
    client.force_login(marketer)
    response = client.get(reverse("marketing:catalog-detail", args=[shop.pk]))
    assert list_url(shop) in response.content.decode()


def test_anonymous_users_go_to_login(client, shop, mugs):
    for url in (list_url(shop), rename_url(mugs)):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_users_without_a_role_get_403(client, no_role_user, shop):
    client.force_login(no_role_user)
    assert client.get(list_url(shop)).status_code == 403


def test_missing_catalog_or_category_is_404(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("marketing:category-list", args=[999999])).status_code == 404
    assert client.get(reverse("marketing:category-rename", args=[999999])).status_code == 404


# Renaming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["marketer", "approver"])
def test_non_admins_get_403_on_rename(client, request, mugs, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(rename_url(mugs)).status_code == 403
    assert client.post(rename_url(mugs), {"name": "Mugs"}).status_code == 403
    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name
    assert not AuditEvent.objects.exists()


def test_rename_without_js_redirects_to_the_list(client, admin_user, shop, mugs):
    client.force_login(admin_user)
    page = client.get(rename_url(mugs))
    assert page.status_code == 200
    assert "<html" in page.content.decode()  # a whole page with the form

    response = client.post(rename_url(mugs), {"name": "Mugs"})
    assert response.status_code == 302
    assert response["Location"] == f"{list_url(shop)}#category-{mugs.pk}"
    mugs.refresh_from_db()
    assert mugs.name == "Mugs"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CATEGORY_RENAMED).count() == 1
    assert Job.objects.filter(kind=Job.Kind.PROFILE_REFRESH, catalog=shop).exists()
    message = str(list(client.get(list_url(shop)).context["messages"])[0])
    assert "profiles and segment descriptions are being refreshed" in message


def test_rename_with_htmx_swaps_the_row(client, admin_user, mugs):
    client.force_login(admin_user)
    form = client.get(rename_url(mugs), **HX)
    html = form.content.decode()
    assert form.status_code == 200 and "<html" not in html
    assert html.strip().startswith(f'<tr id="category-{mugs.pk}">')
    assert 'name="name"' in html and 'hx-post="' + rename_url(mugs) in html

    response = client.post(rename_url(mugs), {"name": "Mugs"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<strong>Mugs</strong>" in html
    assert 'id="messages" class="messages" hx-swap-oob="true"' in html
    assert "HX-Request" in response["Vary"]


def test_htmx_cancel_renders_the_display_row(client, admin_user, shop, mugs):
    client.force_login(admin_user)
    url = reverse("marketing:category-row", args=[mugs.pk])
    response = client.get(url, **HX)
    assert f"<strong>{mugs.name}</strong>" in response.content.decode()
    assert client.get(url)["Location"] == f"{list_url(shop)}#category-{mugs.pk}"


@pytest.mark.parametrize(
    ("name", "error"),
    [("", "This field is required"), ("Home > Mugs", "separates"), ("x" * 301, "at most 300")],
)
def test_invalid_names_re_render_the_form_and_change_nothing(client, admin_user, mugs, name, error):
    client.force_login(admin_user)
    for extra in ({}, HX):
        response = client.post(rename_url(mugs), {"name": name}, **extra)
        assert response.status_code == 200
        assert error in response.content.decode()
    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name
    assert not AuditEvent.objects.exists()
    assert not Job.objects.exists()


def test_duplicate_name_is_a_form_error(client, admin_user, shop, mugs):
    other = DerivedCategory.objects.filter(catalog=shop).exclude(pk=mugs.pk).first()
    client.force_login(admin_user)
    response = client.post(rename_url(mugs), {"name": other.name.lower()}, **HX)
    assert response.status_code == 200
    assert "Another category of this catalog is named" in response.content.decode()
    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name


def test_rename_needs_the_csrf_token(admin_user, mugs):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(rename_url(mugs), {"name": "Mugs"}).status_code == 403
    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name


# Product pages -------------------------------------------------------------------------------


def test_product_pages_show_the_derived_category_with_a_marker(client, marketer, shop, mugs):
    client.force_login(marketer)
    products = reverse("marketing:product-list", args=[shop.pk])
    html = client.get(products).content.decode()
    assert mugs.name in html and 'class="badge derived"' in html

    filtered = client.get(products, {"category": mugs.name})
    assert {p.sku for p in filtered.context["products"]} == {f"MUG-{i}" for i in range(6)}

    mug = mugs.products.first()
    html = client.get(reverse("marketing:product-detail", args=[mug.pk])).content.decode()
    assert mugs.name in html and 'class="badge derived"' in html


def test_product_list_reads_derived_categories_in_the_same_query(client, marketer, shop):
    client.force_login(marketer)
    url = reverse("marketing:product-list", args=[shop.pk])
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    by_pk = '"marketing_derivedcategory"."id" = '
    assert not [q for q in queries.captured_queries if by_pk in q["sql"]]  # no query per row


# Django admin --------------------------------------------------------------------------------


@pytest.fixture
def staff_admin(admin_user):
    admin_user.is_staff = True
    admin_user.save(update_fields=["is_staff"])
    return admin_user


def test_admin_renames_through_the_service(client, staff_admin, mugs):
    client.force_login(staff_admin)
    url = reverse("admin:marketing_derivedcategory_change", args=[mugs.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": "Mugs"})
    assert response.status_code == 302
    mugs.refresh_from_db()
    assert mugs.name == "Mugs" and mugs.renamed_by == staff_admin
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CATEGORY_RENAMED).count() == 1


def test_admin_shows_name_errors_and_offers_no_add_or_delete(client, staff_admin, mugs):
    client.force_login(staff_admin)
    url = reverse("admin:marketing_derivedcategory_change", args=[mugs.pk])
    response = client.post(url, {"name": "A > B"})
    assert response.status_code == 200 and "separates" in response.content.decode()
    assert client.get(reverse("admin:marketing_derivedcategory_add")).status_code == 403
    delete = reverse("admin:marketing_derivedcategory_delete", args=[mugs.pk])
    assert client.get(delete).status_code == 403


def test_admin_shows_a_refusal_after_the_form_passed_and_logs_no_change(
    client, staff_admin, shop, mugs, monkeypatch
):
    """A rename the service refuses after the form's check (another rename took the name
    meanwhile) is an error: no "changed successfully", no admin history entry, no change."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.messages import get_messages

    from marketing.services import categories as category_services

    candles = DerivedCategory.objects.get(catalog=shop, products__sku="CANDLE-0")
    real_rename = category_services.category_rename

    def taken_meanwhile(**kwargs):  # a concurrent rename commits between form and save
        DerivedCategory.objects.filter(pk=candles.pk).update(name="MUGS")
        return real_rename(**kwargs)

    monkeypatch.setattr(category_services, "category_rename", taken_meanwhile)
    client.force_login(staff_admin)
    url = reverse("admin:marketing_derivedcategory_change", args=[mugs.pk])
    response = client.post(url, {"name": "Mugs"})

    assert response.status_code == 302 and response["Location"] == url
    texts = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
    assert texts == [("error", "Another category of this catalog is named “Mugs”.")]
    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name
    assert not LogEntry.objects.exists()
    assert not AuditEvent.objects.exists()
    assert DerivedCategory.objects.get(pk=candles.pk).name == candles.name  # rolled back too


def test_admin_form_checks_a_taken_name_regardless_of_case(client, staff_admin, shop, mugs):
    candles = DerivedCategory.objects.get(catalog=shop, products__sku="CANDLE-0")
    client.force_login(staff_admin)
    url = reverse("admin:marketing_derivedcategory_change", args=[mugs.pk])
    response = client.post(url, {"name": candles.name.swapcase()})
    assert response.status_code == 200
    assert "Another category of this catalog is named" in response.content.decode()
