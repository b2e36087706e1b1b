"""What the API reads: tokens, approved content and recommendations, as JSON-ready dicts.

Every read is limited to the token's catalog when it has one; a brief or segment outside it,
or a customer with neither copy nor events in it, is "not found" (so a catalog token cannot
even learn that it exists). Content is
approved drafts only, and a draft written for one customer only while that customer consents
to the draft's channel (as exports do) and is not erased. Customers appear by external id;
their email, name and other details never leave through the API.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from api.auth import ApiError
from api.models import ApiToken
from copygen.models import CHANNEL_CONSENT, Brief, Draft
from marketing.models import Customer, Event, Product, Segment
from recommendations.models import Recommendation

CONTENT_KEYS = ("id",)
RECOMMENDATION_KEYS = ("catalog_id", "-kind", "rank")  # discover before buy_again, best first


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


# ------------------------------------------------------------------------------- tokens


def token_list(*, user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("catalog").order_by("-created_at")


def token_get_for_user(*, user, pk: int) -> ApiToken:
    """The user's own token (404 for anyone else's)."""
    token = ApiToken.objects.filter(user=user, pk=pk).first()
    if token is None:
        raise _not_found("token")
    return token


# ------------------------------------------------------------------------------ content


def _consenting() -> Q:
    """Segment drafts, and customer drafts whose customer consents to the channel."""
    consents = Q(channel__in=[c for c, consent in CHANNEL_CONSENT.items() if consent is None])
    for channel, consent in CHANNEL_CONSENT.items():
        if consent is not None:
            consents |= Q(channel=channel, **{f"customer__{consent}": True})
    return Q(customer__isnull=True) | (Q(customer__erased_at__isnull=True) & consents)


# A page is read in one query as plain values (no model instances: 100 drafts with their
# relations would build hundreds of objects), joined to everything a row shows except its
# products; whether the brief, segment or customer exists is asked only when a page is empty
# (a page with drafts proves it, within the token's catalog). Fewer round trips matter most
# when the machine is busy.
DRAFT_VALUES = (
    "id",
    "brief_id",
    "catalog_id",
    "channel",
    "tone",
    "locale",
    "variant",
    "fields",
    "product_ids",
    "revision",
    "reviewed_at",
    "customer_id",
    "segment_id",
    "segment__name",
    "customer__external_id",
    "brief__name",
    "brief__segment_id",
    "brief__segment__name",
    "catalog__currency",
)


@dataclass(frozen=True)
class ContentSource:
    """The drafts to page through, and how to tell "empty" from "not found"."""

    drafts: QuerySet
    exists: Callable[[], bool]


# The querysets every request starts from, built once: Django spends more time building a
# filter with joins (the consent condition, the values' relations) than PostgreSQL spends
# running it. Never evaluated themselves; each request chains (clones) them.
@functools.cache
def _approved_base() -> QuerySet:
    return (
        Draft.objects.filter(status=Draft.Status.APPROVED)
        .filter(_consenting())
        .values(*DRAFT_VALUES)
    )


def _approved_drafts(token: ApiToken, request_filters: dict[str, str]) -> QuerySet:
    qs = _approved_base()
    if token.catalog_id is not None:
        qs = qs.filter(catalog_id=token.catalog_id)
    for name in ("channel", "locale"):
        if request_filters.get(name):
            qs = qs.filter(**{name: request_filters[name]})
    return qs


def _in_scope(token: ApiToken, model, pk: int) -> bool:
    qs = model.objects.filter(pk=pk)
    if token.catalog_id is not None:
        qs = qs.filter(catalog_id=token.catalog_id)
    return qs.exists()


def content_for_brief(*, token: ApiToken, brief_id: int, filters: dict[str, str]) -> ContentSource:
    return ContentSource(
        _approved_drafts(token, filters).filter(brief_id=brief_id),
        lambda: _in_scope(token, Brief, brief_id),
    )


def content_for_segment(
    *, token: ApiToken, segment_id: int, filters: dict[str, str]
) -> ContentSource:
    """Drafts written for the segment, and per-customer drafts of briefs aimed at it."""
    briefs = Brief.objects.filter(segment_id=segment_id).values("pk")
    drafts = _approved_drafts(token, filters).filter(
        Q(segment_id=segment_id) | Q(customer__isnull=False, brief_id__in=briefs)
    )
    return ContentSource(drafts, lambda: _in_scope(token, Segment, segment_id))


def customer_exists(*, token: ApiToken, external_id: str) -> bool:
    """The customer exists, is not erased and (for a catalog token) has events there."""
    qs = Customer.objects.filter(external_id=external_id, erased_at__isnull=True)
    if token.catalog_id is not None:
        in_catalog = Event.objects.filter(catalog_id=token.catalog_id, customer_id=OuterRef("pk"))
        qs = qs.filter(Exists(in_catalog))
    return qs.exists()


def content_for_customer(
    *, token: ApiToken, external_id: str, filters: dict[str, str]
) -> ContentSource:
    drafts = _approved_drafts(token, filters).filter(customer__external_id=external_id)
    return ContentSource(drafts, lambda: customer_exists(token=token, external_id=external_id))


def _pk_in(ids: list[int]) -> Q:
    """``pk IN ids``; on PostgreSQL as ``= ANY('{1,2,…}'::bigint[])``: one text parameter
    instead of hundreds the driver would adapt one by one."""
    if connection.vendor != "postgresql":
        return Q(pk__in=ids)
    literal = "{" + ",".join(str(int(i)) for i in ids) + "}"
    return Q(
        RawSQL(f'"{Product._meta.db_table}"."id" = ANY(%s::bigint[])', (literal,), BooleanField())
    )


def _price(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


@functools.cache
def _product_base() -> QuerySet:
    return Product.objects.order_by().values_list("id", "sku", "title", "url", "price", "image_url")


def content_rows(drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's drafts as JSON, with their products (one query for the page)."""
    if not drafts:
        return []
    wanted = {pid for d in drafts for pid in d["product_ids"] if isinstance(pid, int)}
    products = {}
    if wanted:
        rows = _product_base().filter(_pk_in(sorted(wanted)))
        products = {
            pk: {"sku": sku, "title": title, "url": url, "price": _price(price), "image_url": img}
            for pk, sku, title, url, price, img in rows
        }
    out = []
    for d in drafts:
        if d["segment_id"]:
            segment = {"id": d["segment_id"], "name": d["segment__name"]}
        elif d["customer_id"] and d["brief__segment_id"]:
            segment = {"id": d["brief__segment_id"], "name": d["brief__segment__name"]}
        else:
            segment = None
        currency = d["catalog__currency"]
        out.append(
            {
                "id": d["id"],
                "brief_id": d["brief_id"],
                "brief_name": d["brief__name"],
                "catalog_id": d["catalog_id"],
                "channel": d["channel"],
                "tone": d["tone"],
                "locale": d["locale"],
                "variant": d["variant"],
                "revision": d["revision"],
                "approved_at": d["reviewed_at"].isoformat() if d["reviewed_at"] else None,
                "fields": d["fields"],
                "products": [
                    {**products[pid], "currency": currency}
                    for pid in d["product_ids"]
                    if pid in products
                ],
                "customer": d["customer__external_id"] if d["customer_id"] else None,
                "segment": segment,
            }
        )
    return out


# ---------------------------------------------------------------------- recommendations


def recommendations_for_customer(
    *, token: ApiToken, external_id: str, kind: str | None
) -> ContentSource:
    """The customer's lists of each catalog's current model run (the token's catalog only)."""
    qs = Recommendation.objects.filter(
        customer__external_id=external_id,
        customer__erased_at__isnull=True,
        run__is_current=True,
    )
    if token.catalog_id is not None:
        qs = qs.filter(catalog_id=token.catalog_id)
    if kind:
        if kind not in Recommendation.Kind.values:
            raise ApiError(400, "bad_request", "kind must be discover or buy_again.")
        qs = qs.filter(kind=kind)
    rows = qs.values(
        "catalog_id",
        "run_id",
        "kind",
        "rank",
        "score",
        "reason_kind",
        "reason_text",
        "catalog__currency",
        "product__sku",
        "product__title",
        "product__url",
        "product__price",
        "product__image_url",
    )
    return ContentSource(rows, lambda: customer_exists(token=token, external_id=external_id))


def recommendation_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "catalog_id": r["catalog_id"],
            "run_id": r["run_id"],
            "kind": r["kind"],
            "rank": r["rank"],
            "score": r["score"],
            "sku": r["product__sku"],
            "title": r["product__title"],
            "url": r["product__url"],
            "price": _price(r["product__price"]),
            "currency": r["catalog__currency"],
            "image_url": r["product__image_url"],
            "reason": r["reason_text"],
            "reason_kind": r["reason_kind"],
        }
        for r in rows
    ]
