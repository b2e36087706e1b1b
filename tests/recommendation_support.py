"""A small synthetic shop for model-run tests, and checks shared by the service and the
integration tests (every list honours the rules; reasons cite real history)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from marketing.models import Catalog, Customer, Event, EventKind, Product
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from recommendations.models import ModelRun, Recommendation
from tests.factories import CatalogFactory

END = dt.datetime(2024, 6, 30, 12, tzinfo=dt.UTC)
CATEGORIES = ("Home > Kitchen", "Home > Bath", "Garden")


@dataclass
class Shop:
    catalog: Catalog
    products: list[Product]
    customers: list[Customer]
    viewer: Customer  # only views: the model has no history for them


def shop_create(*, name: str = "Shop", customers: int = 36, seed: int = 5) -> Shop:
    """30 products in three categories (10 each, prices 5-50; products 5 and 25 out of
    stock) and ``customers`` buyers who mostly buy in "their" category (customer % 3) on
    two to four days within the 120 days before END, plus one customer who only views."""
    rng = np.random.default_rng(seed)
    catalog = CatalogFactory(name=name)
    products = Product.objects.bulk_create(
        Product(
            catalog=catalog,
            sku=f"{name[:3].upper()}-{i:03d}",
            title=f"{CATEGORIES[i // 10].split(' > ')[-1]} item {i}",
            category=CATEGORIES[i // 10],
            price=Decimal(5 + 5 * (i % 10)),
            in_stock=i not in (5, 25),
        )
        for i in range(30)
    )
    people = Customer.objects.bulk_create(
        Customer(external_id=f"{name}-C{c:03d}", country="United Kingdom")
        for c in range(customers + 1)
    )
    buyers, viewer = people[:-1], people[-1]
    base = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    events = []
    for c, customer in enumerate(buyers):
        home = c % 3
        for day_no in range(int(rng.integers(2, 5))):
            day = END - dt.timedelta(days=int(rng.integers(0, 120)), hours=day_no)
            for _ in range(int(rng.integers(1, 4))):
                cat = home if rng.random() < 0.85 else int(rng.integers(3))
                product = products[10 * cat + int(rng.integers(10))]
                events.append((customer, product, EventKind.PURCHASE, day, f"O{c}-{day_no}"))
    events.append((viewer, products[0], EventKind.VIEW, END - dt.timedelta(days=1), ""))
    Event.objects.bulk_create(
        Event(
            id=base + n + 1,
            catalog=catalog,
            customer=customer,
            product=product,
            kind=kind,
            quantity=1,
            value=product.price,
            occurred_at=when,
            source=source,
        )
        for n, (customer, product, kind, when, source) in enumerate(events)
    )
    return Shop(catalog, products, list(buyers), viewer)


def profiles_refresh(catalog: Catalog, user) -> None:
    """Profiles, RFM segments and their members, computed in this process."""
    job = profile_refresh_start(catalog=catalog, user=user)
    profile_refresh_run(job_id=job.pk, worker="inline")


def bought(catalog: Catalog) -> dict[int, set[int]]:
    """Product ids each customer purchased in the catalog."""
    out: dict[int, set[int]] = {}
    rows = Event.objects.filter(catalog=catalog, kind=EventKind.PURCHASE).values_list(
        "customer_id", "product_id"
    )
    for customer_id, product_id in rows:
        out.setdefault(customer_id, set()).add(product_id)
    return out


def assert_lists_honour_rules(run: ModelRun, *, top_n: int) -> None:
    """Every customer of the catalog has a full discover list without bought or out-of-stock
    products, ranks 1..n without duplicates; buy-again lists hold only their purchases; every
    cited product is one the customer bought, and its title is in the reason."""
    history = bought(run.catalog)
    rows = list(
        Recommendation.objects.filter(run=run, customer__isnull=False).select_related("product")
    )
    titles = dict(Product.objects.filter(catalog=run.catalog).values_list("pk", "title"))
    by_list: dict[tuple[int, str], list[Recommendation]] = {}
    for row in rows:
        by_list.setdefault((row.customer_id, row.kind), []).append(row)
    customers = set(Event.objects.filter(catalog=run.catalog).values_list("customer_id", flat=True))
    for customer_id in customers:
        discover = by_list.get((customer_id, Recommendation.Kind.DISCOVER), [])
        assert len(discover) == top_n, (customer_id, len(discover))
    for (customer_id, kind), items in by_list.items():
        ranks = sorted(r.rank for r in items)
        assert ranks == list(range(1, len(items) + 1))
        assert len({r.product_id for r in items}) == len(items)
        mine = history.get(customer_id, set())
        for row in items:
            assert row.product.in_stock, row
            assert row.reason_text
            if kind == Recommendation.Kind.DISCOVER:
                assert row.product_id not in mine
            else:
                assert row.product_id in mine
                assert row.reason_kind == "buy_again"
            assert set(row.reason_product_ids) <= mine
            if row.reason_kind == "bought_together":
                assert row.reason_product_ids
                for pid in row.reason_product_ids:
                    assert titles[pid] in row.reason_text
