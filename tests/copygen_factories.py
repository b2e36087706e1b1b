"""Factories for the copy studio's review: a brief for a segment, and drafts written as the
drafting job writes them (revision 1 with its checks computed for real against the products'
current data through `copygen.services.sources`).

`draft_make(...)` is the one-call helper: it builds the catalog, product, customer, segment
and brief it is not given, stores the draft with its first revision, and runs the checks.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory

from copygen.models import Brief, Draft, DraftRevision
from copygen.services import sources
from marketing.models import Segment, SegmentMembership
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory

# Texts that pass every check for a product titled "Blue Mug" priced £12.50 (GBP catalog).
PASSING_FIELDS: dict[str, dict[str, Any]] = {
    "email": {
        "subject": "Meet the Blue Mug",
        "preheader": "A sturdy mug for your morning coffee, now in our shop for you.",
        "body": "Hi there,\n\nThe Blue Mug keeps your tea warm. It costs £12.50 and it is "
        "easy to clean. We think you will like it.\n\nSee you soon.",
        "cta": "Shop the mug",
    },
    "sms": {"text": "The Blue Mug is here for £12.50. It keeps your tea warm. Take a look."},
    "push": {"title": "Meet the Blue Mug", "body": "It keeps your tea warm and costs £12.50."},
    "google_ads": {
        "headlines": ["Meet the Blue Mug", "Warm tea all morning", "Easy to clean"],
        "descriptions": [
            "The Blue Mug keeps your tea warm for longer.",
            "A sturdy mug that is easy to clean.",
        ],
    },
    "meta_ads": {
        "primary_text": "The Blue Mug keeps your tea warm. It is sturdy and easy to clean.",
        "headline": "Meet the Blue Mug",
        "description": "",
    },
    "product_text": {
        "short": "A sturdy mug that keeps your tea warm.",
        "long": "The Blue Mug keeps your tea warm. It is sturdy and easy to clean. It is a "
        "good mug for every day.",
    },
}


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    catalog = factory.SubFactory(CatalogFactory)
    name = factory.Sequence(lambda n: f"Segment {n}")
    kind = Segment.Kind.RULE


class BriefFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brief

    catalog = factory.SubFactory(CatalogFactory)
    name = factory.Sequence(lambda n: f"Brief {n}")
    segment = factory.SubFactory(SegmentFactory, catalog=factory.SelfAttribute("..catalog"))
    audience = Brief.Audience.CUSTOMERS
    channel = "email"
    tone = "friendly"
    locales = factory.LazyFunction(lambda: ["en"])
    variants = 3


def mug(catalog, **kwargs):
    """The product the PASSING_FIELDS texts are about."""
    return ProductFactory(
        catalog=catalog,
        **{"title": "Blue Mug", "price": Decimal("12.50"), "category": "Home > Kitchen", **kwargs},
    )


def draft_recheck(draft: Draft) -> Draft:
    """Store the checks of the draft's current text (as the drafting job does)."""
    failures, passes, failing = sources.summarize(
        sources.check_fields(draft, draft.fields, source=draft.source)
    )
    draft.checks, draft.passes, draft.failing = failures, passes, failing
    draft.save(update_fields=["checks", "passes", "failing", "updated_at"])
    DraftRevision.objects.filter(draft=draft, number=draft.revision).update(
        passes=passes, failing=failing
    )
    return draft


def draft_make(
    *,
    brief: Brief | None = None,
    customer=None,
    segment: Segment | None = None,
    products=None,
    channel: str | None = None,
    locale: str = "en",
    variant: int | None = None,
    fields: dict[str, Any] | None = None,
    status: str = Draft.Status.PENDING,
    **extra: Any,
) -> Draft:
    """A draft for a customer (default: a new one in the brief's segment) or, with
    ``segment=``, for a segment; revision 1 from the template source, checks computed."""
    if brief is None:
        catalog = products[0].catalog if products else CatalogFactory(currency="GBP")
        brief = BriefFactory(catalog=catalog, channel=channel or "email")
    catalog = brief.catalog
    channel = channel or brief.channel
    if products is None:
        products = [catalog.products.filter(title="Blue Mug").first() or mug(catalog)]
    if segment is None and customer is None:
        customer = CustomerFactory()
    if customer is not None:
        SegmentMembership.objects.get_or_create(segment=brief.segment, customer=customer)
        audience_key = f"customer:{customer.pk}"
    else:
        audience_key = f"segment:{segment.pk}"
    if variant is None:
        variant = (
            Draft.objects.filter(brief=brief, audience_key=audience_key, locale=locale).count() + 1
        )
    draft = Draft.objects.create(
        brief=brief,
        catalog=catalog,
        audience_key=audience_key,
        customer=customer,
        segment=segment if customer is None else None,
        locale=locale,
        variant=variant,
        channel=channel,
        tone=brief.tone,
        fields=dict(fields if fields is not None else PASSING_FIELDS[channel]),
        product_ids=[p.pk for p in products],
        status=status,
        **extra,
    )
    DraftRevision.objects.create(
        draft=draft, number=1, fields=draft.fields, source=draft.source, author=None
    )
    return draft_recheck(draft)
