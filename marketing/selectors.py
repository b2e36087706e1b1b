"""Reads. Each selector decides its own select_related in one place."""

from __future__ import annotations

from django.db.models import QuerySet

from marketing.models import Catalog, Customer, Event, Job, Product


def totals() -> dict[str, int]:
    return {
        "catalogs": Catalog.objects.count(),
        "products": Product.objects.count(),
        "customers": Customer.objects.count(),
        "events": Event.objects.count(),
    }


def job_list(*, limit: int | None = None, catalog: Catalog | None = None) -> QuerySet[Job]:
    qs = Job.objects.select_related("created_by", "catalog")
    if catalog is not None:
        qs = qs.filter(catalog=catalog)
    return qs[:limit] if limit else qs
