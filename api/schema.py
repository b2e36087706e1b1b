"""The OpenAPI 3.1 document of the API, served at /api/v1/openapi.json.

Written by hand as data; tests check it against the real answers (every documented path is
routed, every key of every answer is documented, and only documented keys appear).
"""

from __future__ import annotations

from typing import Any

from api.intake import FIELDS as EVENT_FIELDS
from api.models import Scope

VERSION = "1.0.0"


def _nullable(type_: str, **extra: Any) -> dict[str, Any]:
    return {"type": [type_, "null"], **extra}


def _obj(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return _obj(
        {
            "results": {"type": "array", "items": _ref(item)},
            "next": _nullable("string", format="uri", description="The next page, or null"),
            "limit": {"type": "integer"},
        }
    )


SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {
            "error": {
                "type": "string",
                "description": "Stable code: unauthorized, insufficient_scope, forbidden, "
                "not_found, bad_request, rate_limited, too_large, unsupported_media_type, "
                "method_not_allowed, busy",
            },
            "message": {"type": "string", "description": "What went wrong, for people"},
        }
    ),
    "Product": _obj(
        {
            "sku": {"type": "string"},
            "title": {"type": "string"},
            "url": {"type": "string"},
            "price": _nullable("string", description='Decimal with 2 places, e.g. "12.50"'),
            "currency": {"type": "string", "description": "ISO 4217 code of the catalog"},
            "image_url": {"type": "string"},
        }
    ),
    "SegmentRef": _obj({"id": {"type": "integer"}, "name": {"type": "string"}}),
    "Content": _obj(
        {
            "id": {"type": "integer", "description": "Draft id"},
            "brief_id": {"type": "integer"},
            "brief_name": {"type": "string"},
            "catalog_id": {"type": "integer"},
            "channel": {
                "type": "string",
                "enum": ["email", "sms", "push", "google_ads", "meta_ads", "product_text"],
            },
            "tone": {"type": "string"},
            "locale": {"type": "string"},
            "variant": {"type": "integer", "description": "1 = best ranked"},
            "revision": {"type": "integer"},
            "approved_at": _nullable("string", format="date-time"),
            "fields": {
                "type": "object",
                "description": "The copy per channel field (email: subject, preheader, body, "
                "cta; sms: text; push: title, body; google_ads: headlines[], descriptions[]; "
                "meta_ads: primary_text, headline, description; product_text: short, long)",
                "additionalProperties": {
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                },
            },
            "products": {"type": "array", "items": _ref("Product")},
            "customer": _nullable(
                "string", description="External id of the customer; null for segment copy"
            ),
            "segment": {"anyOf": [_ref("SegmentRef"), {"type": "null"}]},
        }
    ),
    "ContentPage": _page("Content"),
    "Recommendation": _obj(
        {
            "catalog_id": {"type": "integer"},
            "run_id": {"type": "integer", "description": "The model run the list comes from"},
            "kind": {"type": "string", "enum": ["discover", "buy_again"]},
            "rank": {"type": "integer", "description": "1 = first"},
            "score": {"type": "number"},
            "sku": {"type": "string"},
            "title": {"type": "string"},
            "url": {"type": "string"},
            "price": _nullable("string"),
            "currency": {"type": "string"},
            "image_url": {"type": "string"},
            "reason": {"type": "string", "description": "Why, in words"},
            "reason_kind": {"type": "string"},
        }
    ),
    "RecommendationPage": _page("Recommendation"),
    "LineError": _obj(
        {
            "line": {"type": "integer", "description": "Line number in the body, from 1"},
            "field": _nullable("string", description="null: the whole line"),
            "error": {"type": "string"},
        }
    ),
    "IntakeResult": _obj(
        {
            "lines": {"type": "integer", "description": "Non-blank lines read"},
            "accepted": {"type": "integer", "description": "Events stored now"},
            "duplicates": {
                "type": "integer",
                "description": "Events already stored (same event id) or repeated in the body",
            },
            "rejected": {"type": "integer", "description": "Lines with at least one error"},
            "errors": {"type": "array", "items": _ref("LineError")},
            "errors_truncated": {"type": "boolean", "description": "Only the first 1,000 shown"},
            "profiles": _obj(
                {
                    "updated": {"type": "integer"},
                    "pending": {
                        "type": "integer",
                        "description": "Customers without a profile in the catalog yet: "
                        "the next full refresh makes it",
                    },
                }
            ),
        }
    ),
    "Event": {
        "type": "object",
        "description": "One line of the JSON Lines body.",
        "properties": {
            name: {
                "type": {
                    "quantity": "integer",
                    "value": "number",
                    "rating": "number",
                    "catalog": "integer",
                }.get(name, "string"),
                "description": text,
            }
            | ({"format": "date-time"} if name == "occurred_at" else {})
            for name, text in EVENT_FIELDS.items()
        },
        "required": ["event_id", "kind", "occurred_at"],
        "additionalProperties": False,
    },
}


def _error(description: str, *, retry: bool = False, challenge: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    headers = {}
    if retry:
        headers["Retry-After"] = {"schema": {"type": "integer"}, "description": "Seconds"}
    if challenge:
        headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
    if headers:
        response["headers"] = headers
    return response


_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests per minute"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "Seconds"},
}
_COMMON_ERRORS = {
    "401": _error("Missing, unknown or revoked token, or its user is inactive", challenge=True),
    "403": _error("The token lacks the scope, or its user lost the permission", challenge=True),
    "429": _error("Rate limit reached", retry=True),
}
_PAGING = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string"},
        "description": "From the previous page's `next` URL",
    },
]
_CONTENT_FILTERS = [
    {"name": "channel", "in": "query", "schema": {"type": "string"}},
    {"name": "locale", "in": "query", "schema": {"type": "string"}},
]


def _content_get(summary: str, param: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": "Approved drafts only, ordered by id. A draft for one customer "
            "appears while the customer consents to its channel (email, SMS, push; ads for "
            "Google and Meta ads) and is not erased. Customers appear by external id only.",
            "security": [{"bearerAuth": [Scope.CONTENT_READ.value]}],
            "parameters": [param, *_CONTENT_FILTERS, *_PAGING],
            "responses": {
                "200": {
                    "description": "A page of content",
                    "headers": _RATE_HEADERS,
                    "content": {"application/json": {"schema": _ref("ContentPage")}},
                },
                "400": _error("Bad limit or cursor"),
                **_COMMON_ERRORS,
                "404": _error("No such object (or outside the token's catalog)"),
            },
        }
    }


_EXTERNAL_ID = {
    "name": "external_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The customer's external id (percent-encoded)",
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Tailor API",
        "version": VERSION,
        "description": "Read approved campaign copy and recommendations; send behaviour "
        "events. Authenticate with a personal token (Tailor → API tokens) sent as "
        "`Authorization: Bearer tlr_…`. Every list is paginated by cursor.",
    },
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
    "paths": {
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document"}},
            }
        },
        "/briefs/{brief_id}/content": _content_get(
            "Approved content of a brief",
            {"name": "brief_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        ),
        "/segments/{segment_id}/content": _content_get(
            "Approved content for a segment (its own drafts and per-customer drafts of briefs "
            "aimed at it)",
            {"name": "segment_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        ),
        "/customers/{external_id}/content": _content_get(
            "Approved content written for one customer", _EXTERNAL_ID
        ),
        "/customers/{external_id}/recommendations": {
            "get": {
                "summary": "A customer's recommendations",
                "description": "From each catalog's current model run (the token's catalog "
                "only), ordered by catalog, then discover before buy_again, then rank.",
                "security": [{"bearerAuth": [Scope.RECOMMENDATIONS_READ.value]}],
                "parameters": [
                    _EXTERNAL_ID,
                    {
                        "name": "kind",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["discover", "buy_again"]},
                    },
                    *_PAGING,
                ],
                "responses": {
                    "200": {
                        "description": "A page of recommendations",
                        "headers": _RATE_HEADERS,
                        "content": {"application/json": {"schema": _ref("RecommendationPage")}},
                    },
                    "400": _error("Bad kind, limit or cursor"),
                    **_COMMON_ERRORS,
                    "404": _error("No such customer (or none in the token's catalog)"),
                },
            }
        },
        "/events": {
            "post": {
                "summary": "Send behaviour events (JSON Lines)",
                "description": "One JSON object per line (`Content-Type: application/x-ndjson`), "
                "at most 10,000 lines and 5 MB (both configurable). Good lines are stored and "
                "bad ones listed (partial acceptance, always 200 when the body could be read). "
                "Idempotent by event_id per catalog: an event already stored (posted before, "
                "or imported from a file with the same event id) counts as a duplicate. "
                "Unknown customers and SKUs are rejected as in a file import. The affected "
                "customers' profiles are updated at once (recency, frequency, spend, last "
                "seen…); scores and predictions follow at the next full refresh.",
                "security": [{"bearerAuth": [Scope.EVENTS_WRITE.value]}],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-ndjson": {"schema": _ref("Event")}},
                },
                "responses": {
                    "200": {
                        "description": "What was stored, and the errors per line",
                        "headers": _RATE_HEADERS,
                        "content": {"application/json": {"schema": _ref("IntakeResult")}},
                    },
                    "400": _error("Body not UTF-8 or empty"),
                    **_COMMON_ERRORS,
                    "413": _error("Body or line count over the limit"),
                    "415": _error("Content-Type is not application/x-ndjson"),
                    "503": _error("An import into the catalog is running; retry", retry=True),
                },
            }
        },
    },
}
