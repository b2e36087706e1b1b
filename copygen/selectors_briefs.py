"""Reads of the brief pages: one brief, the list with its drafts' counts, the catalogs to
choose from. (The drafts' own reads are in copygen.selectors.)"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from copygen.models import Brief, Draft
from marketing.models import Catalog


def brief_get(*, pk: int) -> Brief:
    """The brief with its catalog, segment, run, job and author, or Http404."""
    return get_object_or_404(
        Brief.objects.select_related("catalog", "segment", "model_run", "job", "created_by"),
        pk=pk,
    )


def brief_list(*, catalog: Catalog | None = None) -> QuerySet[Brief]:
    """Briefs (of the catalog, or all), newest first, with their last job and the counts of
    their drafts: ``n_drafts``, ``n_pending``, ``n_approved``, ``n_rejected``, ``n_blocked``
    (at least one blocking check)."""
    qs = Brief.objects.select_related("catalog", "segment", "job", "created_by").annotate(
        n_drafts=Count("drafts"),
        n_pending=Count("drafts", filter=Q(drafts__status=Draft.Status.PENDING)),
        n_approved=Count("drafts", filter=Q(drafts__status=Draft.Status.APPROVED)),
        n_rejected=Count("drafts", filter=Q(drafts__status=Draft.Status.REJECTED)),
        n_blocked=Count("drafts", filter=Q(drafts__passes=False)),
    )
    if catalog is not None:
        qs = qs.filter(catalog=catalog)
    return qs.order_by("-created_at", "-pk")


def brief_catalogs() -> list[Catalog]:
    """Every catalog, by name (briefs are made per catalog)."""
    return list(Catalog.objects.order_by("name"))


def brief_hand_picked(*, brief: Brief) -> list:
    """The brief's hand-picked products by SKU."""
    return list(brief.products.order_by("sku").only("pk", "sku", "title", "price", "catalog_id"))
