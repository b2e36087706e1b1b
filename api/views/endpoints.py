"""The JSON endpoints: thin views over api.selectors and api.services (see api.schema)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from api import conf
from api import selectors as s
from api.auth import ApiError, api_view
from api.intake import BodyError
from api.models import ApiToken, Scope
from api.pagination import paginate
from api.schema import DOCUMENT
from api.services.events import IntakeBusy, events_ingest

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


def _filters(request: HttpRequest) -> dict[str, str]:
    return {name: request.GET.get(name, "") for name in ("channel", "locale")}


def _page(request: HttpRequest, source: s.ContentSource, *, keys: tuple[str, ...], what: str):
    """A page of the source; 404 when it is empty because its object does not exist (or is
    outside the token's catalog)."""
    page = paginate(request, source.drafts, keys=keys)
    if not page.rows and not source.exists():
        raise ApiError(404, "not_found", f"No such {what}.")
    return page


def _content_page(request: HttpRequest, source: s.ContentSource, what: str) -> JsonResponse:
    page = _page(request, source, keys=s.CONTENT_KEYS, what=what)
    rows = s.content_rows(page.rows)
    return JsonResponse({"results": rows, "next": page.next_url, "limit": page.limit})


@api_view(scope=None)
def openapi(request: HttpRequest, token: None) -> JsonResponse:
    return JsonResponse(DOCUMENT, json_dumps_params={"indent": 1})


@api_view(scope=Scope.CONTENT_READ)
def brief_content(request: HttpRequest, token: ApiToken, brief_id: int) -> JsonResponse:
    source = s.content_for_brief(token=token, brief_id=brief_id, filters=_filters(request))
    return _content_page(request, source, "brief")


@api_view(scope=Scope.CONTENT_READ)
def segment_content(request: HttpRequest, token: ApiToken, segment_id: int) -> JsonResponse:
    source = s.content_for_segment(token=token, segment_id=segment_id, filters=_filters(request))
    return _content_page(request, source, "segment")


@api_view(scope=Scope.CONTENT_READ)
def customer_content(request: HttpRequest, token: ApiToken, external_id: str) -> JsonResponse:
    source = s.content_for_customer(token=token, external_id=external_id, filters=_filters(request))
    return _content_page(request, source, "customer")


@api_view(scope=Scope.RECOMMENDATIONS_READ)
def customer_recommendations(
    request: HttpRequest, token: ApiToken, external_id: str
) -> JsonResponse:
    source = s.recommendations_for_customer(
        token=token, external_id=external_id, kind=request.GET.get("kind") or None
    )
    page = _page(request, source, keys=s.RECOMMENDATION_KEYS, what="customer")
    return JsonResponse(
        {"results": s.recommendation_rows(page.rows), "next": page.next_url, "limit": page.limit}
    )


@api_view(scope=Scope.EVENTS_WRITE, methods=("POST",), bucket="write")
def events(request: HttpRequest, token: ApiToken) -> JsonResponse:
    if request.content_type not in NDJSON_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send JSON Lines with 'Content-Type: application/x-ndjson' (one event per line).",
        )
    max_bytes = conf.get("API_EVENTS_MAX_BYTES")
    too_large = ApiError(
        413,
        "too_large",
        f"The body is larger than {max_bytes:,} bytes; send the events in smaller batches.",
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_bytes:
        raise too_large
    body = request.read(max_bytes + 1)  # not request.body: no copy of an oversized upload
    if len(body) > max_bytes:
        raise too_large
    try:
        result = events_ingest(token=token, body=body, max_lines=conf.get("API_EVENTS_MAX_LINES"))
    except BodyError as exc:
        code = "too_large" if exc.status == 413 else "bad_request"
        raise ApiError(exc.status, code, str(exc)) from None
    except IntakeBusy:
        raise ApiError(
            503,
            "busy",
            "An import into this catalog is running; retry in a minute.",
            headers={"Retry-After": "60"},
        ) from None
    return JsonResponse(result.as_json())


@api_view(scope=None, methods=("GET", "POST", "PUT", "PATCH", "DELETE"))
def not_found(request: HttpRequest, token: None, path: str = "") -> JsonResponse:
    raise ApiError(404, "not_found", "No such endpoint; see /api/v1/openapi.json.")
