"""Reading model runs and recommendations (the pages' only way in).

Runs: `model_run_get`, `model_run_list`, `model_run_current`, `model_run_active`,
`model_run_comparison`. Lists: `customer_recommendations` (a customer's current lists, both
kinds, with products and reasons), `segment_recommendations`. Preview:
`customer_preview` recomputes one customer's lists from the run's artifact — optionally
under other rules — with their history and what the rules removed.

Only the current run of a catalog has stored lists (older runs keep their metrics; see
recommendations.services.runs), so the list selectors read the current run by default — in
the same query as its rows: a run that turns current prunes the previous one's rows right
after, and a reader that first fetched the run, then its rows, could fall in between.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from marketing.models import Catalog, Customer, Event, EventKind, Product, Segment
from recommendations.algorithms.postprocess import BusinessRules
from recommendations.models import ModelRun, Recommendation
from recommendations.services.artifacts import ArtifactMissing, artifact_load
from recommendations.services.rules import rules_for_artifact, rules_validate
from recommendations.services.scoring import Row, customer_lists

# ------------------------------------------------------------------------------ runs


def model_run_get(*, pk: int) -> ModelRun:
    """The run (with catalog, job and creator) or Http404."""
    return get_object_or_404(ModelRun.objects.select_related("catalog", "job", "created_by"), pk=pk)


def model_run_list(*, catalog: Catalog) -> QuerySet[ModelRun]:
    """The catalog's runs, newest first, with job and creator."""
    return (
        ModelRun.objects.filter(catalog=catalog)
        .select_related("job", "created_by")
        .order_by("-created_at", "-pk")
    )


def model_run_current(*, catalog: Catalog) -> ModelRun | None:
    """The run whose lists the catalog shows now, or None before the first success."""
    return ModelRun.objects.filter(catalog=catalog, is_current=True).select_related("job").first()


def model_run_active(*, catalog: Catalog) -> ModelRun | None:
    """The catalog's queued or running run (at most one), with its job."""
    return (
        ModelRun.objects.filter(catalog=catalog, status__in=ModelRun.ACTIVE)
        .select_related("job")
        .first()
    )


@dataclass(frozen=True)
class ModelRow:
    name: str
    selected: bool
    metrics: dict[str, float | None]  # on test: ndcg@10, recall@10, … coverage, novelty
    validation: dict[str, Any]  # metric, score, trials, search_s, failed_trials
    trials: list[dict]  # params, score, fit_s, score_s, error
    fit_s: float | None
    params: dict[str, Any]
    segments: dict[str, dict[str, float | None]]  # per RFM segment: users, ndcg@10, …


@dataclass(frozen=True)
class Comparison:
    """A run's comparison as the results page shows it (empty before training ends)."""

    metric: str
    selected: str
    selection: str  # why: "best validation score" or the fallback's reason
    models: list[ModelRow]  # selected first, then by validation score
    buy_again: list[ModelRow]
    skipped: dict[str, str]
    split: dict[str, Any]
    metric_names: list[str] = field(default_factory=list)


_INFO_KEYS = ("fit_s", "score_s", "params", "validation", "segments", "trials", "buy_again")


def _model_rows(models: dict[str, dict], selected: str) -> list[ModelRow]:
    rows = [
        ModelRow(
            name=name,
            selected=name == selected,
            metrics={k: v for k, v in data.items() if k not in _INFO_KEYS},
            validation=data.get("validation", {}),
            trials=data.get("trials", []),
            fit_s=data.get("fit_s"),
            params=data.get("params", {}),
            segments=data.get("segments", {}),
        )
        for name, data in models.items()
    ]

    def order(row: ModelRow) -> tuple:
        score = row.validation.get("score")
        return (not row.selected, -(score if score is not None else -1.0), row.name)

    return sorted(rows, key=order)


def model_run_comparison(*, run: ModelRun) -> Comparison:
    data = run.comparison or {}
    selected = data.get("selected") or run.selected_algorithm
    models = _model_rows(data.get("models", {}), selected)
    return Comparison(
        metric=data.get("metric", ""),
        selected=selected,
        selection=data.get("selection", ""),
        models=models,
        buy_again=_model_rows(data.get("buy_again_models", {}), ""),
        skipped=data.get("skipped", {}),
        split=run.split_info or {},
        metric_names=list(models[0].metrics) if models else [],
    )


# ----------------------------------------------------------------------------- lists


def _with_products(qs: QuerySet[Recommendation]) -> QuerySet[Recommendation]:
    return qs.select_related("product", "product__derived_category").order_by("kind", "rank")


@dataclass(frozen=True)
class CustomerLists:
    """A customer's lists of one run; `reason_products` maps the cited product ids."""

    run: ModelRun | None
    discover: list[Recommendation]
    buy_again: list[Recommendation]
    reason_products: dict[int, Product]


def _reason_products(rows: list[Recommendation]) -> dict[int, Product]:
    ids = {pid for row in rows for pid in row.reason_product_ids or []}
    return Product.objects.in_bulk(ids) if ids else {}


def customer_recommendations(
    *, catalog: Catalog, customer: Customer, run: ModelRun | None = None
) -> CustomerLists:
    """The customer's "discover" and "buy_again" lists of the current run (or ``run``),
    best first, each row with its product, reason text, reason kind and cited products.
    The current run's rows are read in one query through ``is_current`` (see the module
    docstring); ``run`` is the run they belong to."""
    if customer.erased_at is not None:
        return CustomerLists(run or model_run_current(catalog=catalog), [], [], {})
    if run is not None:
        rows = list(_with_products(Recommendation.objects.filter(run=run, customer=customer)))
    else:
        current = Recommendation.objects.filter(
            run__catalog=catalog, run__is_current=True, customer=customer
        )
        rows = list(_with_products(current))
        # The run once, not joined to every row: its comparison alone is ~50 KB of JSON that
        # each row would fetch and decode again.
        run = (
            ModelRun.objects.select_related("job").get(pk=rows[0].run_id)
            if rows
            else model_run_current(catalog=catalog)
        )
        for row in rows:
            row.run = run
    return CustomerLists(
        run,
        [r for r in rows if r.kind == Recommendation.Kind.DISCOVER],
        [r for r in rows if r.kind == Recommendation.Kind.BUY_AGAIN],
        _reason_products(rows),
    )


def segment_recommendations(
    *, segment: Segment, run: ModelRun | None = None
) -> list[Recommendation]:
    """The segment's list of the current run of its catalog (or ``run``), best first; the
    current run's rows in one query (see the module docstring)."""
    if run is not None:
        return list(_with_products(Recommendation.objects.filter(run=run, segment=segment)))
    current = Recommendation.objects.filter(
        run__catalog_id=segment.catalog_id, run__is_current=True, segment=segment
    )
    return list(_with_products(current))


def run_segment_lists(*, run: ModelRun) -> QuerySet[Segment]:
    """The segments with a list in ``run``, each with its rows prefetched."""
    rows = _with_products(Recommendation.objects.filter(run=run, segment__isnull=False))
    return (
        Segment.objects.filter(recommendations__run=run)
        .distinct()
        .order_by("kind", "name")
        .prefetch_related(Prefetch("recommendations", queryset=rows, to_attr="run_rows"))
    )


# --------------------------------------------------------------------------- preview


@dataclass(frozen=True)
class HistoryItem:
    product: Product
    purchases: int
    last_purchase: dt.datetime


@dataclass(frozen=True)
class PreviewItem:
    product: Product
    rank: int
    score: float
    reason_kind: str
    reason_text: str
    reason_products: list[Product]


@dataclass(frozen=True)
class RemovedItem:
    product: Product
    rule: str  # out_of_stock, category, price, exclude_bought, bury, diversity, displaced


@dataclass(frozen=True)
class CustomerPreview:
    """One customer under a run's model (and the given rules), computed now.

    known: the customer was in the run's data (else the lists are the fallback's).
    rules: the rules used, canonical JSON (product ids).
    """

    run: ModelRun
    customer: Customer
    known: bool
    rules: dict[str, Any]
    history: list[HistoryItem]
    discover: list[PreviewItem]
    buy_again: list[PreviewItem]
    removed: list[RemovedItem]


def customer_history(*, catalog: Catalog, customer: Customer, limit: int = 50) -> list[HistoryItem]:
    """What the customer bought in the catalog: products by purchase count, then recency."""
    rows = (
        Event.objects.filter(
            catalog=catalog, customer=customer, kind=EventKind.PURCHASE, quantity__gt=0
        )
        .exclude(product__isnull=True)
        .values("product_id")
        .annotate(n=Count("pk"), last=Max("occurred_at"))
        .order_by("-n", "-last")[:limit]
    )
    rows = list(rows)
    products = Product.objects.in_bulk([r["product_id"] for r in rows])
    return [
        HistoryItem(products[r["product_id"]], r["n"], r["last"])
        for r in rows
        if r["product_id"] in products
    ]


def customer_preview(
    *, run: ModelRun, customer: Customer, rules: dict[str, Any] | None = None
) -> CustomerPreview:
    """Recompute the customer's lists from the run's artifact under ``rules`` (default: the
    run's own), with their history and what the rules removed. Raises ValidationError for
    bad rules (also diversity, mmr_lambda < 1, with an artifact stored without its item
    similarity: building it takes too long for a page), and ArtifactMissing when the run's
    model file is gone (only the current and active runs keep one, and an erasure retires
    it). This process keeps only this artifact cached."""
    clean = run.rules if rules is None else rules_validate(catalog=run.catalog, data=rules)
    artifact = artifact_load(run.pk, max_cached=1)
    business: BusinessRules = rules_for_artifact(clean, artifact.item_index())
    if business.mmr_lambda < 1.0 and artifact.similarity(build=False) is None:
        raise ValidationError(
            {
                "mmr_lambda": "This run's model was stored without the item similarity that "
                "diversity needs: preview with diversity 1 (off), or start a new run."
            }
        )
    user = int(artifact.user_index(np.array([customer.pk]))[0])
    history = customer_history(catalog=run.catalog, customer=customer)
    if user < 0:
        return CustomerPreview(run, customer, False, clean, history, [], [], [])
    lists = customer_lists(artifact, [user], business)
    product_ids = {row.product_id for row in lists.rows}
    product_ids |= {pid for row in lists.rows for pid in row.reason_product_ids}
    removed_ids = [(int(artifact.product_ids[i]), rule) for i, rule in lists.discover.removed[0]]
    product_ids |= {pid for pid, _ in removed_ids}
    products = Product.objects.select_related("derived_category").in_bulk(product_ids)

    def item(row: Row) -> PreviewItem:
        return PreviewItem(
            products[row.product_id],
            row.rank,
            row.score,
            row.reason_kind,
            row.reason_text,
            [products[p] for p in row.reason_product_ids if p in products],
        )

    present = [row for row in lists.rows if row.product_id in products]
    return CustomerPreview(
        run=run,
        customer=customer,
        known=True,
        rules=clean,
        history=history,
        discover=[item(r) for r in present if r.kind == Recommendation.Kind.DISCOVER],
        buy_again=[item(r) for r in present if r.kind == Recommendation.Kind.BUY_AGAIN],
        removed=[RemovedItem(products[p], rule) for p, rule in removed_ids if p in products],
    )


__all__ = [
    "ArtifactMissing",
    "Comparison",
    "CustomerLists",
    "CustomerPreview",
    "customer_history",
    "customer_preview",
    "customer_recommendations",
    "model_run_active",
    "model_run_comparison",
    "model_run_current",
    "model_run_get",
    "model_run_list",
    "run_segment_lists",
    "segment_recommendations",
]


# ------------------------------------------------------------------ pages (UI helpers)


def products_by_sku(*, catalog: Catalog, skus: list[str]) -> dict[str, Product]:
    """The catalog's products with these SKUs (exact match), by SKU; unknown SKUs are absent."""
    if not skus:
        return {}
    return {p.sku: p for p in Product.objects.filter(catalog=catalog, sku__in=set(skus))}


def rule_products(*, catalog: Catalog, rules: dict[str, Any]) -> dict[int, Product]:
    """The products that a run's rules name (boost, bury, pin), by id."""
    ids: set[int] = set()
    for key in (rules or {}).get("boost") or {}:
        ids.add(int(key))
    for name in ("bury", "pin"):
        ids.update(int(p) for p in (rules or {}).get(name) or [])
    return Product.objects.filter(catalog=catalog).in_bulk(ids) if ids else {}


def preview_customer_search(*, catalog: Catalog, q: str, limit: int = 10) -> list[Customer]:
    """Customers with events in the catalog whose external id contains ``q`` (not erased),
    exact matches first; nothing for an empty query."""
    q = q.strip()
    if not q:
        return []
    from django.db.models import Exists, OuterRef

    has_events = Exists(Event.objects.filter(catalog=catalog, customer=OuterRef("pk")))
    customers = Customer.objects.filter(has_events, erased_at__isnull=True).only(
        "pk", "external_id"
    )
    exact = list(customers.filter(external_id__iexact=q)[:1])
    rest = customers.filter(external_id__icontains=q).exclude(pk__in=[c.pk for c in exact])
    return exact + list(rest.order_by("external_id")[: limit - len(exact)])
