"""Keyset (cursor) pagination: ``?limit=`` (1..API_PAGE_SIZE_MAX) and an opaque ``?cursor=``.

A page is the first ``limit`` rows after the cursor in a stable order (unique keys, the
last one ascending or descending); ``next`` is the URL of the following page, or null. The
cursor is the last row's key values (base64 of JSON), so a page costs one index range scan
however deep it is, and rows inserted meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.http import urlencode

from api import conf
from api.auth import ApiError


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_url: str | None
    limit: int


def page_limit(request: HttpRequest) -> int:
    raw = request.GET.get("limit")
    maximum = conf.get("API_PAGE_SIZE_MAX")
    if raw is None or raw == "":
        return min(conf.get("API_PAGE_SIZE_DEFAULT"), maximum)
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be a whole number.") from None
    if not 1 <= limit <= maximum:
        raise ApiError(400, "bad_request", f"limit must be between 1 and {maximum}.")
    return limit


def _encode(values: list[Any]) -> str:
    text = json.dumps(values, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str, keys: tuple[str, ...]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != len(keys)
        or not all(isinstance(v, int | str) and not isinstance(v, bool) for v in values)
    ):
        raise ApiError(400, "bad_request", "cursor is not valid: use the 'next' URL as given.")
    return values


def _after(keys: tuple[str, ...], values: list[Any]) -> Q:
    """Rows strictly after ``values`` in the order of ``keys`` ("-name" = descending)."""
    condition = Q()
    equal = Q()
    for key, value in zip(keys, values, strict=True):
        name = key.lstrip("-")
        lookup = "lt" if key.startswith("-") else "gt"
        condition |= equal & Q(**{f"{name}__{lookup}": value})
        equal &= Q(**{name: value})
    return condition


def paginate(request: HttpRequest, queryset: QuerySet, *, keys: tuple[str, ...]) -> Page:
    """One page of ``queryset`` (of ``values()`` dicts that hold the keys) ordered by
    ``keys`` (which together must be unique)."""
    limit = page_limit(request)
    cursor = request.GET.get("cursor")
    if cursor:
        queryset = queryset.filter(_after(keys, _decode(cursor, keys)))
    rows = list(queryset.order_by(*keys)[: limit + 1])
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        values = [last[key.lstrip("-")] for key in keys]
        params = {k: v for k, v in request.GET.items() if k != "cursor"}
        params["cursor"] = _encode(values)
        next_url = request.build_absolute_uri(f"{request.path}?{urlencode(params)}")
    return Page(rows=rows, next_url=next_url, limit=limit)
