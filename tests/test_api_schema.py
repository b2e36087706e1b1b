"""The OpenAPI document against the real API: every documented path is routed, every routed
endpoint is documented, and real answers (successes and errors) hold exactly the documented
keys with the documented types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone

from api import urls as api_urls
from api.models import Scope
from api.schema import DOCUMENT
from api.services.tokens import token_create
from copygen.models import Draft
from marketing.models import Event
from recommendations.models import ModelRun, Recommendation
from tests.copygen_factories import PASSING_FIELDS, BriefFactory, SegmentFactory
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory
from tests.roles import role_group

pytestmark = pytest.mark.django_db

SAMPLE_PARAMS = {"{brief_id}": "1", "{segment_id}": "1", "{external_id}": "C-1"}
PAGES = {"token-list", "token-create", "token-revoke", "not-found"}
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _resolve_ref(schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = DOCUMENT["components"]["schemas"][name]
    return schema


def violations(value: Any, schema: dict, where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the JSON Schema subset the document uses)."""
    schema = _resolve_ref(schema)
    if "anyOf" in schema:
        if any(not violations(value, option, where) for option in schema["anyOf"]):
            return []
        return [f"{where}: matches none of anyOf"]
    problems = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        ok = any(
            isinstance(value, JSON_TYPES[t])
            and not (t in ("integer", "number") and isinstance(value, bool))
            for t in types
        )
        if not ok:
            return [f"{where}: {type(value).__name__} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing documented key {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                problems += violations(item, properties[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: undocumented key {key!r}")
            elif isinstance(extra, dict):
                problems += violations(item, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += violations(item, schema["items"], f"{where}[{i}]")
    return problems


def response_schema(path: str, method: str, status: int) -> dict:
    operation = DOCUMENT["paths"][path][method]
    documented = operation["responses"]
    assert str(status) in documented, f"{method.upper()} {path} does not document {status}"
    return documented[str(status)]["content"]["application/json"]["schema"]


def assert_documented(response, path: str, method: str = "get") -> dict:
    data = response.json()
    schema = response_schema(path, method, response.status_code)
    assert violations(data, schema) == [], json.dumps(data, indent=1)[:2000]
    return data


def test_the_document_is_served_as_json():
    response = Client().get(reverse("api:openapi"))
    assert response.status_code == 200
    assert response.json()["openapi"] == "3.1.0"
    assert response.json() == json.loads(json.dumps(DOCUMENT))


def test_every_documented_path_is_routed_and_every_route_documented():
    documented = set()
    for path, operations in DOCUMENT["paths"].items():
        url = "/api/v1" + path
        for placeholder, sample in SAMPLE_PARAMS.items():
            url = url.replace(placeholder, sample)
        match = resolve(url)
        assert match.url_name != "not-found", path
        documented.add(match.url_name)
        for method in operations:
            assert method in ("get", "post")
    routed = {p.name for p in api_urls.urlpatterns} - PAGES
    assert routed == documented


def test_every_ref_points_at_a_schema():
    text = json.dumps(DOCUMENT)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in DOCUMENT["components"]["schemas"], name


@pytest.fixture
def world(marketer):
    for role in ("admin", "marketer"):
        role_group(role).permissions.add(
            Permission.objects.get(content_type__app_label="api", codename="use_api")
        )
    catalog = CatalogFactory(name="Shop", currency="GBP")
    mug = ProductFactory(catalog=catalog, sku="MUG-1", url="https://shop.test/m", price=None)
    segment = SegmentFactory(catalog=catalog)
    customer = CustomerFactory(external_id="C-1", consent_email=True, consent_sms=True)
    Event.objects.create(
        id=5,
        catalog=catalog,
        customer=customer,
        product=mug,
        kind="view",
        occurred_at=timezone.now(),
    )
    brief = BriefFactory(catalog=catalog, segment=segment, channel="email")
    ads = BriefFactory(catalog=catalog, segment=segment, channel="google_ads")
    for b, who in ((brief, {"customer": customer}), (ads, {"segment": segment})):
        key = f"customer:{customer.pk}" if "customer" in who else f"segment:{segment.pk}"
        for variant in (1, 2):
            Draft.objects.create(
                brief=b, catalog=catalog, audience_key=key, locale="en", variant=variant,
                channel=b.channel, tone="friendly", fields=PASSING_FIELDS[b.channel],
                product_ids=[mug.pk, 999999], status=Draft.Status.APPROVED,
                reviewed_at=timezone.now() if variant == 1 else None, **who,
            )  # fmt: skip
    run = ModelRun.objects.create(catalog=catalog, status="succeeded", is_current=True)
    for kind in ("discover", "buy_again"):
        Recommendation.objects.create(
            run=run, catalog=catalog, customer=customer, kind=kind, product=mug, rank=1,
            score=0.5, reason_kind="popular", reason_text="Popular now",
        )  # fmt: skip
    secret = token_create(user=marketer, name="All", scopes=list(Scope.values), catalog=None).secret
    return {"brief": brief, "segment": segment, "secret": secret, "catalog": catalog}


def test_content_and_recommendation_answers_match_the_document(world):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
    cases = [
        (f"/api/v1/briefs/{world['brief'].pk}/content?limit=1", "/briefs/{brief_id}/content"),
        (f"/api/v1/segments/{world['segment'].pk}/content", "/segments/{segment_id}/content"),
        ("/api/v1/customers/C-1/content", "/customers/{external_id}/content"),
        ("/api/v1/customers/C-1/recommendations", "/customers/{external_id}/recommendations"),
    ]
    for url, path in cases:
        data = assert_documented(client.get(url), path)
        assert data["results"], url
    data = assert_documented(client.get(cases[0][0]), cases[0][1])
    assert data["next"] and data["results"][0]["segment"] and data["results"][0]["products"]
    segment_rows = client.get(cases[1][0]).json()["results"]
    assert any(r["customer"] is None and r["segment"] for r in segment_rows)
    assert any(isinstance(r["fields"].get("headlines"), list) for r in segment_rows)


def test_error_answers_match_the_document(world, settings):
    client = Client()
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {world['secret']}"}
    content = "/briefs/{brief_id}/content"
    assert_documented(client.get("/api/v1/briefs/1/content"), content)  # 401
    assert_documented(client.get("/api/v1/briefs/999999/content", **bearer), content)  # 404
    assert_documented(client.get("/api/v1/briefs/1/content?limit=0", **bearer), content)  # 400
    settings.API_RATE_READ_PER_MIN = 1
    client.get("/api/v1/customers/C-1/recommendations", **bearer)
    limited = client.get("/api/v1/customers/C-1/recommendations", **bearer)
    if limited.status_code == 200:  # the first request was the last of a minute window
        limited = client.get("/api/v1/customers/C-1/recommendations", **bearer)
    assert limited.status_code == 429
    assert_documented(limited, "/customers/{external_id}/recommendations")


def test_event_intake_answers_match_the_document(world, settings):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
    catalog = world["catalog"].pk
    lines = [
        {"event_id": "1", "customer_id": "C-1", "sku": "MUG-1", "kind": "view",
         "occurred_at": "2024-01-01T00:00:00Z", "catalog": catalog},
        {"event_id": "2", "kind": "nope", "occurred_at": "2024-01-01T00:00:00Z", "catalog": catalog},
        "not json",
    ]  # fmt: skip
    payload = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()
    response = client.post("/api/v1/events", payload, content_type="application/x-ndjson")
    data = assert_documented(response, "/events", "post")
    assert data["accepted"] == 1 and len(data["errors"]) == 2
    assert_documented(
        client.post("/api/v1/events", payload, content_type="text/csv"), "/events", "post"
    )  # 415
    settings.API_EVENTS_MAX_LINES = 1
    assert_documented(
        client.post("/api/v1/events", payload, content_type="application/x-ndjson"),
        "/events",
        "post",
    )  # 413
    event_schema = DOCUMENT["components"]["schemas"]["Event"]
    assert violations(lines[0], event_schema) == []
