"""Reads for the categories page: derived categories with examples, or a catalog's own ones."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.shortcuts import get_object_or_404

from marketing.models import Catalog, DerivedCategory, Product
from marketing.services.categories import DERIVE_BELOW_SHARE


@dataclass(frozen=True)
class CategoryOverview:
    """What the page shows: which kind of categories the catalog uses, and counts."""

    products: int
    with_own: int  # products with their own category
    without_category: int  # products with neither their own nor a derived category
    derived: bool  # the catalog uses derived categories (fewer than 5 % have their own)


def category_overview(*, catalog: Catalog) -> CategoryOverview:
    counts = Product.objects.filter(catalog=catalog).aggregate(
        products=Count("pk"),
        with_own=Count("pk", filter=~Q(category="")),
        without=Count("pk", filter=Q(category="", derived_category__isnull=True)),
    )
    products, with_own = counts["products"], counts["with_own"]
    return CategoryOverview(
        products=products,
        with_own=with_own,
        without_category=counts["without"],
        derived=products > 0 and with_own < DERIVE_BELOW_SHARE * products,
    )


def derived_category_list(*, catalog: Catalog, examples: int = 3) -> list[DerivedCategory]:
    """The catalog's derived categories, largest first, each with ``product_count`` (live)
    and ``examples``: up to ``examples`` (pk, title) pairs, alphabetically."""
    categories = list(
        DerivedCategory.objects.filter(catalog=catalog)
        .select_related("renamed_by")
        .annotate(product_count=Count("products"))
        .order_by("-product_count", "name")
    )
    sample = (
        Product.objects.filter(catalog=catalog, derived_category__isnull=False)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=F("derived_category_id"),
                order_by=[F("title").asc(), F("pk").asc()],
            )
        )
        .filter(rank__lte=examples)
        .order_by("derived_category_id", "rank")
        .values_list("derived_category_id", "pk", "title")
    )
    by_category: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for category_id, pk, title in sample:
        by_category[category_id].append((pk, title))
    for category in categories:
        category.examples = by_category.get(category.pk, [])
    return categories


def derived_category_get(*, pk: int) -> DerivedCategory:
    """The derived category with its catalog, or Http404."""
    return get_object_or_404(DerivedCategory.objects.select_related("catalog", "renamed_by"), pk=pk)


def derived_category_row(*, category: DerivedCategory, examples: int = 3) -> DerivedCategory:
    """One category as `derived_category_list` gives it (for re-rendering its row)."""
    category.product_count = category.products.count()
    category.examples = list(
        category.products.order_by("title", "pk").values_list("pk", "title")[:examples]
    )
    return category


def own_category_counts(*, catalog: Catalog) -> QuerySet:
    """(category, products) of the catalog's own categories, by path."""
    return (
        Product.objects.filter(catalog=catalog)
        .exclude(category="")
        .values_list("category")
        .annotate(n=Count("pk"))
        .order_by("category")
    )
