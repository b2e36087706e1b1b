"""A small shop for the drafting tests: products with descriptions and reviews, customers
in several languages who bought in "their" category, a rule segment, and a succeeded
recommendation run whose lists are written directly (customer and segment rows), so each
test knows exactly which products each customer was recommended."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from marketing.models import Catalog, Customer, Event, EventKind, Product, Segment
from marketing.models import SegmentMembership as Membership
from recommendations.models import ModelRun, Recommendation
from tests.factories import CatalogFactory

WHEN = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
PRODUCTS = [
    # (title, category, price, description, attributes)
    (
        "Oak Cutting Board",
        "Home > Kitchen",
        "34.00",
        "A thick oak board with a juice groove. Oiled by hand and easy to clean.",
        {"material": "oak"},
    ),
    (
        "Blue Stoneware Mug",
        "Home > Kitchen",
        "12.50",
        "A sturdy stoneware mug that keeps tea warm. Safe in the dishwasher.",
        {"material": "stoneware", "colour": "blue"},
    ),
    (
        "Copper Kettle",
        "Home > Kitchen",
        "59.00",
        "A copper kettle for gas and induction hobs. It whistles when the water boils.",
        {"material": "copper"},
    ),
    (
        "Linen Tea Towel",
        "Home > Kitchen",
        "9.00",
        "Soft linen tea towel that dries glasses without lint.",
        {"material": "linen"},
    ),
    (
        "Cotton Bath Towel",
        "Home > Bath",
        "22.00",
        "A thick cotton towel that absorbs water fast and stays soft after washing.",
        {"material": "cotton"},
    ),
    (
        "Bamboo Bath Mat",
        "Home > Bath",
        "18.00",
        "A bamboo mat that dries quickly and resists mould.",
        {"material": "bamboo"},
    ),
    (
        "Lavender Soap",
        "Home > Bath",
        "6.50",
        "Hand-made soap with lavender oil. Gentle on dry skin.",
        {"scent": "lavender"},
    ),
    (
        "Wooden Bath Brush",
        "Home > Bath",
        "14.00",
        "A long-handled brush with natural bristles for your back.",
        {"material": "beech"},
    ),
    (
        "Garden Kneeler",
        "Garden",
        "24.00",
        "A padded kneeler that turns into a seat. Folds flat for storage.",
        {"colour": "green"},
    ),
    (
        "Steel Trowel",
        "Garden",
        "11.00",
        "A stainless steel trowel with an ash handle. Strong enough for clay soil.",
        {"material": "steel"},
    ),
    (
        "Watering Can",
        "Garden",
        "27.00",
        "A galvanised watering can that holds nine litres, with a brass rose.",
        {"material": "galvanised steel"},
    ),
    (
        "Seed Tray Set",
        "Garden",
        "15.00",
        "Six sturdy seed trays with clear lids that keep seedlings warm.",
        {"pieces": "6"},
    ),
]
FIRST_NAMES = ["Anna", "Ben", "Chloé", "Diego", "Li", "Inês", "Sam", "Olivia", "Jonas", "Mia"]
LANGUAGES = ["en", "de", "fr", "es", "zh", "pt", "", "en-GB", "de-AT", "en"]
COUNTRIES = ["United Kingdom", "Germany", "France", "Spain", "China", "Portugal", "", "UK", "AT"]
REVIEWS = [
    (5, "Lovely board, really solid and easy to clean."),
    (5, "Great mug, keeps my tea hot for ages."),
    (4, "Nice kettle, looks beautiful on the hob."),
    (1, "The handle broke after a week, very disappointed."),
    (2, "Smaller than I expected and the colour faded."),
]


@dataclass
class CopyShop:
    catalog: Catalog
    products: list[Product]
    customers: list[Customer]
    segment: Segment
    run: ModelRun
    # customer pk -> recommended product pks (rank order); the segment's list
    recommended: dict[int, list[int]] = field(default_factory=dict)
    segment_list: list[int] = field(default_factory=list)

    def member(self, customer: Customer) -> None:
        Membership.objects.get_or_create(segment=self.segment, customer=customer)

    def members(self) -> list[Customer]:
        return list(
            Customer.objects.filter(segment_memberships__segment=self.segment).order_by("pk")
        )


def copy_shop_create(
    *,
    name: str = "Copy shop",
    customers: int = 9,
    without_list: int = 1,
    product_titles: dict[int, str] | None = None,
) -> CopyShop:
    """The shop: 12 products in three categories; ``customers`` members of the rule segment
    "Regulars" (languages, countries and first names from LANGUAGES, COUNTRIES, FIRST_NAMES),
    each bought three products of category c % 3; a current run recommends each customer
    five products of that category and the next one (ranked), except the last
    ``without_list`` customers, who have no list of their own; the segment's list is the
    first five products."""
    catalog = CatalogFactory(name=name, currency="GBP")
    titles = product_titles or {}
    products = Product.objects.bulk_create(
        Product(
            catalog=catalog,
            sku=f"{name[:2].upper()}-{i:02d}",
            title=titles.get(i, title),
            category=category,
            price=Decimal(price),
            description=description,
            attributes=attributes,
        )
        for i, (title, category, price, description, attributes) in enumerate(PRODUCTS)
    )
    people = Customer.objects.bulk_create(
        Customer(
            external_id=f"{name}-{c:03d}",
            name=f"{FIRST_NAMES[c % len(FIRST_NAMES)]} Lastname",
            email=f"person{c}@example.test",
            language=LANGUAGES[c % len(LANGUAGES)],
            country=COUNTRIES[c % len(COUNTRIES)],
        )
        for c in range(customers)
    )
    base = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    events = []
    for c, customer in enumerate(people):
        home = c % 3
        for j in range(3):
            product = products[4 * home + j]
            events.append(
                Event(
                    id=base + len(events) + 1,
                    catalog=catalog,
                    customer=customer,
                    product=product,
                    kind=EventKind.PURCHASE,
                    quantity=1,
                    value=product.price,
                    occurred_at=WHEN - dt.timedelta(days=10 * j + c),
                )
            )
    for i, (stars, text) in enumerate(REVIEWS):
        events.append(
            Event(
                id=base + len(events) + 1,
                catalog=catalog,
                customer=people[i % len(people)],
                product=products[i % 3],
                kind=EventKind.REVIEW,
                rating=stars,
                text=text,
                occurred_at=WHEN,
            )
        )
    Event.objects.bulk_create(events)
    segment = Segment.objects.create(catalog=catalog, name="Regulars", kind=Segment.Kind.RULE)
    Membership.objects.bulk_create(Membership(segment=segment, customer=p) for p in people)
    Segment.objects.filter(pk=segment.pk).update(size=len(people))
    segment.refresh_from_db()
    run = ModelRun.objects.create(
        catalog=catalog,
        status=ModelRun.Status.SUCCEEDED,
        is_current=True,
        selected_algorithm="popular",
        finished_at=timezone.now(),
    )
    shop = CopyShop(catalog, products, people, segment, run)
    rows = []
    for c, customer in enumerate(people[: len(people) - without_list]):
        home = c % 3
        picks = [products[4 * home + 3], *(products[4 * ((home + 1) % 3) + j] for j in range(4))]
        shop.recommended[customer.pk] = [p.pk for p in picks]
        rows += [
            Recommendation(
                run=run,
                catalog=catalog,
                customer=customer,
                product=p,
                rank=rank,
                score=1.0 / rank,
                reason_kind="popular",
                reason_text="Popular this month",
            )
            for rank, p in enumerate(picks, start=1)
        ]
    shop.segment_list = [p.pk for p in products[:5]]
    rows += [
        Recommendation(
            run=run,
            catalog=catalog,
            segment=segment,
            product=products[pk_index],
            rank=rank,
            score=1.0 / rank,
            reason_kind="popular_segment",
            reason_text="Popular with Regulars",
        )
        for rank, pk_index in enumerate(range(5), start=1)
    ]
    Recommendation.objects.bulk_create(rows)
    return shop
