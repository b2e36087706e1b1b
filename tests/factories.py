"""factory_boy factories for the shared domain."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory

from marketing.models import Catalog, Customer, Event, EventKind, Job, Product


class CatalogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Catalog

    name = factory.Sequence(lambda n: f"Catalog {n}")
    currency = "GBP"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    catalog = factory.SubFactory(CatalogFactory)
    sku = factory.Sequence(lambda n: f"SKU{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    category = "Home > Kitchen"
    price = Decimal("9.99")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"C{n:06d}")
    country = "United Kingdom"


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    id = factory.Sequence(lambda n: n + 1)
    catalog = factory.LazyAttribute(lambda o: o.product.catalog)
    product = factory.SubFactory(ProductFactory)
    customer = factory.SubFactory(CustomerFactory)
    kind = EventKind.PURCHASE
    quantity = 1
    value = Decimal("9.99")
    occurred_at = factory.Sequence(
        lambda n: dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n)
    )


class JobFactory(factory.django.DjangoModelFactory):
    """A finished import job of a catalog (catalog pages show the latest ones)."""

    class Meta:
        model = Job

    kind = Job.Kind.IMPORT
    status = Job.Status.SUCCEEDED
    catalog = factory.SubFactory(CatalogFactory)
    message = "Imported"
