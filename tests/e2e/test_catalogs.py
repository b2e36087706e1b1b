"""Deleting a catalog: admins only, through the confirmation page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from marketing.models import Catalog, Product
from tests.e2e.conftest import log_out, login
from tests.factories import CatalogFactory, ProductFactory

pytestmark = pytest.mark.e2e


def test_marketer_cannot_delete_catalog(page, marketer, admin_user):
    catalog = CatalogFactory(name="Garden Shop")
    ProductFactory.create_batch(2, catalog=catalog)

    login(page, "mary", "pw-mary")
    page.goto(f"/catalogs/{catalog.pk}/")
    expect(page.get_by_role("link", name="Delete…")).to_have_count(0)
    response = page.goto(f"/catalogs/{catalog.pk}/delete/")
    assert response is not None and response.status == 403
    assert Catalog.objects.filter(pk=catalog.pk).exists()
    assert Product.objects.filter(catalog=catalog).count() == 2
    page.goto("/catalogs/")
    log_out(page)

    login(page, "alice", "pw-alice")
    page.goto(f"/catalogs/{catalog.pk}/")
    page.get_by_role("link", name="Delete…").click()
    page.wait_for_url(re.compile(rf"/catalogs/{catalog.pk}/delete/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete “Garden Shop”?")
    expect(page.locator(".consequences").first).to_contain_text("2 products")
    page.get_by_role("button", name="Delete catalog and its data").click()

    page.wait_for_url(re.compile(r"/catalogs/$"))
    expect(page.locator("#messages")).to_contain_text("Catalog “Garden Shop” deleted")
    expect(page.locator(f"#catalog-{catalog.pk}")).to_have_count(0)
    assert not Catalog.objects.filter(pk=catalog.pk).exists()
    assert not Product.objects.filter(catalog_id=catalog.pk).exists()
