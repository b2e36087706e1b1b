"""POST /api/v1/events: JSON Lines intake with per-line errors, idempotency by event id (shared
with file imports), limits, the import lock, and the incremental profile update."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal

import numpy as np
import psycopg
import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api.models import Scope
from api.services import events as events_service
from api.services.tokens import token_create
from marketing.analytics.importing import auto_map
from marketing.analytics.importing.keys import combine, hash_scalar, hash_strings, to_ids
from marketing.models import Event, Profile, ProfileRun, SegmentMembership
from marketing.services.imports import import_run, import_start, upload_create
from tests.copygen_factories import SegmentFactory
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory
from tests.roles import role_group

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _api_roles(db):
    for role in ("admin", "marketer"):
        role_group(role).permissions.add(
            Permission.objects.get(content_type__app_label="api", codename="use_api")
        )


@pytest.fixture
def shop():
    catalog = CatalogFactory(name="Shop", currency="GBP")
    return {
        "catalog": catalog,
        "mug": ProductFactory(catalog=catalog, sku="MUG-1", price=Decimal("12.50")),
        "pan": ProductFactory(catalog=catalog, sku="PAN-2"),
        "anna": CustomerFactory(external_id="anna-1", email="anna@example.test"),
        "ben": CustomerFactory(external_id="ben-2"),
    }


@pytest.fixture
def secret(marketer, shop) -> str:
    return token_create(
        user=marketer, name="Shop sync", scopes=[Scope.EVENTS_WRITE], catalog=shop["catalog"]
    ).secret


def event(event_id: str, **fields) -> dict:
    return {
        "event_id": event_id,
        "customer_id": "anna-1",
        "sku": "MUG-1",
        "kind": "purchase",
        "occurred_at": T0.isoformat(),
        "quantity": 1,
        "value": 12.5,
        **fields,
    }


def body(*lines) -> bytes:
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


def post(secret: str, data: bytes, content_type: str = "application/x-ndjson"):
    return Client().post(
        reverse("api:events"), data=data, content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )  # fmt: skip


def importer_id(catalog, event_id: str) -> int:
    """The primary key a file import with an event-id column gives this event."""
    keys = combine(
        [hash_scalar(int(catalog.pk)), hash_strings(np.array([event_id], dtype=object))], 1
    )
    return int(to_ids(keys)[0])


def test_good_lines_are_stored_with_the_importers_ids(secret, shop):
    response = post(
        secret,
        body(
            event("o-1"),
            event("v-1", kind="view", quantity=None, value=None, customer_id="ben-2"),
            event("s-1", kind="search", sku=None, customer_id=None, text="teapot"),
            event("r-1", quantity=-1, value=12.5),  # a negative purchase is a return
        ),
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "lines": 4,
        "accepted": 4,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
        "errors_truncated": False,
        "profiles": {"updated": 0, "pending": 2},
    }
    stored = {e.pk: e for e in Event.objects.all()}
    purchase = stored[importer_id(shop["catalog"], "o-1")]
    assert (purchase.customer, purchase.product, purchase.kind) == (
        shop["anna"],
        shop["mug"],
        "purchase",
    )
    assert purchase.value == Decimal("12.50") and purchase.occurred_at == T0
    search = stored[importer_id(shop["catalog"], "s-1")]
    assert search.customer is None and search.product is None and search.text == "teapot"
    assert stored[importer_id(shop["catalog"], "r-1")].kind == "return"
    assert stored[importer_id(shop["catalog"], "r-1")].quantity == 1


def test_bad_lines_come_back_per_line_and_the_good_ones_are_kept(secret, shop):
    erased = CustomerFactory(external_id="gone-9", erased_at=timezone.now())
    response = post(
        secret,
        body(
            event("ok-1"),
            "{broken",
            event("k-1", kind="teleport"),
            event("c-1", customer_id="nobody"),
            event("p-1", sku="GHOST"),
            event("v-1", kind="view", sku=None),
            event("t-1", occurred_at="2024-05-01 12:00"),
            event("e-1", customer_id=erased.external_id),
            event("x-1", rating=7),
            event("ok-2", kind="cart"),
        ),
    )
    assert response.status_code == 200
    result = response.json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 0, 8)
    assert [(e["line"], e["field"]) for e in result["errors"]] == [
        (2, None),
        (3, "kind"),
        (4, "customer_id"),
        (5, "sku"),
        (6, "sku"),
        (7, "occurred_at"),
        (8, "customer_id"),
        (9, "rating"),
    ]
    reasons = {e["line"]: e["error"] for e in result["errors"]}
    assert reasons[3].startswith("unknown event kind")
    assert reasons[4] == "unknown customer"
    assert reasons[5] == "unknown SKU in catalog 'Shop'"
    assert reasons[6] == "missing SKU (only search events may leave it blank)"
    assert reasons[8] == "customer was erased"  # without naming them
    assert "gone-9" not in response.content.decode() and "nobody" not in response.content.decode()
    assert Event.objects.count() == 2


def test_posting_twice_stores_once(secret, shop):
    data = body(event("o-1"), event("o-2", sku="PAN-2"))
    assert post(secret, data).json()["accepted"] == 2
    again = post(secret, data).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 2, 0)
    assert Event.objects.count() == 2


def test_repeats_within_one_body_are_duplicates(secret, shop):
    result = post(
        secret,
        body(event("o-1"), event("o-1"), event("o-1", value=99)),  # same id: the first wins
    ).json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (1, 2, 0)
    assert Event.objects.get().value == Decimal("12.50")


def test_an_event_imported_from_a_file_is_not_stored_again(secret, shop, marketer):
    csv = (
        b"event_id,customer_id,sku,kind,quantity,value,occurred_at\n"
        b"o-1,anna-1,MUG-1,purchase,1,12.50,2024-05-01T12:00:00Z\n"
    )
    upload = upload_create(
        catalog=shop["catalog"], kind="events", file=SimpleUploadedFile("e.csv", csv), user=marketer
    )
    job = import_start(
        upload=upload, mapping=auto_map(upload.detected["columns"], "events"), user=marketer
    )
    import_run(job_id=job.pk)
    assert Event.objects.count() == 1
    result = post(secret, body(event("o-1"), event("o-2"))).json()
    assert (result["accepted"], result["duplicates"]) == (1, 1)
    assert Event.objects.count() == 2


def test_lines_name_their_catalog_when_the_token_has_none(marketer, shop):
    other = CatalogFactory(name="Other")
    ProductFactory(catalog=other, sku="MUG-1")
    secret = token_create(
        user=marketer, name="All", scopes=[Scope.EVENTS_WRITE], catalog=None
    ).secret
    result = post(
        secret,
        body(
            event("a", catalog=shop["catalog"].pk),
            event("a", catalog=other.pk),  # the same id in another catalog is another event
            event("b"),
            event("c", catalog=999999),
        ),
    ).json()
    assert result["accepted"] == 2
    assert [(e["line"], e["field"], e["error"]) for e in result["errors"]] == [
        (3, "catalog", "missing required value (the token is not limited to one)"),
        (4, "catalog", "unknown catalog"),
    ]
    assert set(Event.objects.values_list("catalog_id", flat=True)) == {shop["catalog"].pk, other.pk}


def test_limits_and_formats(secret, shop, settings):
    assert post(secret, body(event("a")), content_type="application/json").status_code == 415
    assert post(secret, b"\xff\xfe\x00", content_type="application/x-ndjson").status_code == 400
    settings.API_EVENTS_MAX_LINES = 2
    response = post(secret, body(event("a"), event("b"), event("c")))
    assert response.status_code == 413 and "at most 2 events" in response.json()["message"]
    settings.API_EVENTS_MAX_LINES = 100
    settings.API_EVENTS_MAX_BYTES = 100
    response = post(secret, body(event("a"), event("b")))
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert not Event.objects.exists()


def test_a_running_import_makes_the_intake_wait_then_answer_503(secret, shop, monkeypatch):
    monkeypatch.setattr(events_service, "LOCK_WAIT_S", 0.2)
    params = connection.get_connection_params()
    with psycopg.connect(
        dbname=connection.settings_dict["NAME"],
        **{k: v for k, v in params.items() if k in ("host", "port", "user", "password")},
    ) as other:
        other.execute("SELECT pg_advisory_lock(7001, %s)", [shop["catalog"].pk])
        response = post(secret, body(event("a")))
    assert response.status_code == 503
    assert response["Retry-After"] == "60" and response.json()["error"] == "busy"
    assert not Event.objects.exists()
    assert post(secret, body(event("a"))).json()["accepted"] == 1  # lock released


def test_profiles_of_the_customers_are_updated_at_once(secret, shop):
    catalog, anna = shop["catalog"], shop["anna"]
    run = ProfileRun.objects.create(catalog=catalog, as_of=T0 - dt.timedelta(days=10))
    Event.objects.create(
        id=1, catalog=catalog, customer=anna, product=shop["mug"], kind="purchase",
        quantity=2, value=Decimal("25.00"), occurred_at=T0 - dt.timedelta(days=30), source="O1",
    )  # fmt: skip
    profile = Profile.objects.create(
        catalog=catalog, customer=anna, run=run, events=1, frequency=1, monetary=25.0,
        purchase_value=25.0, purchased_units=2, recency_days=20, rfm_segment="Loyal",
        r_score=3, f_score=4, m_score=4, fm_score=4, clv_12m=80.0,
        first_seen=T0 - dt.timedelta(days=30), last_seen=T0 - dt.timedelta(days=30),
        first_purchase=T0 - dt.timedelta(days=30), last_purchase=T0 - dt.timedelta(days=30),
    )  # fmt: skip
    segment = SegmentFactory(catalog=catalog)
    SegmentMembership.objects.create(segment=segment, customer=anna, monetary=25.0)
    result = post(
        secret,
        body(
            event("o-2", value=10, source="O2"),
            event(
                "o-2b",
                sku="PAN-2",
                value=5,
                source="O2",
                occurred_at=(T0 + dt.timedelta(minutes=1)).isoformat(),
            ),
            event(
                "r-1",
                kind="return",
                value=12.5,
                occurred_at=(T0 + dt.timedelta(days=1)).isoformat(),
            ),
            event(
                "v-1", kind="view", value=None, occurred_at=(T0 + dt.timedelta(days=2)).isoformat()
            ),
            event("b-1", customer_id="ben-2"),  # ben has no profile yet
        ),
    ).json()
    assert result["profiles"] == {"updated": 1, "pending": 1}
    profile.refresh_from_db()
    assert profile.events == 5
    assert profile.frequency == 2  # O1, and O2 (two lines)
    assert profile.purchase_value == 40.0 and profile.return_value == 12.5
    assert profile.monetary == 27.5
    assert profile.purchased_units == 4 and profile.returned_units == 1
    assert profile.aov == 20.0
    assert profile.return_rate == 0.25 and profile.return_rate_value == 12.5 / 40
    assert profile.last_purchase == T0 + dt.timedelta(minutes=1)
    assert profile.last_seen == T0 + dt.timedelta(days=2)
    assert profile.first_seen == T0 - dt.timedelta(days=30)
    assert profile.recency_days == 0  # bought after the run's reference date
    assert (profile.rfm_segment, profile.r_score, profile.clv_12m) == ("Loyal", 3, 80.0)  # kept
    assert SegmentMembership.objects.get(segment=segment).monetary == 27.5


def test_orders_without_a_source_are_counted_per_day_in_the_catalogs_zone(secret, shop):
    catalog = shop["catalog"]
    catalog.timezone = "America/New_York"
    catalog.save()
    run = ProfileRun.objects.create(catalog=catalog, as_of=T0)
    profile = Profile.objects.create(
        catalog=catalog, customer=shop["anna"], run=run, rfm_segment="New"
    )
    # 01:00 and 03:00 UTC on May 2 are both May 1 evening in New York: one order
    post(
        secret,
        body(
            event("a", occurred_at="2024-05-02T01:00:00Z"),
            event("b", occurred_at="2024-05-02T03:00:00Z"),
            event("c", occurred_at="2024-05-02T15:00:00Z"),
        ),
    )
    profile.refresh_from_db()
    assert profile.frequency == 2


def test_nothing_personal_is_logged(secret, shop, caplog):
    with caplog.at_level(logging.DEBUG):
        post(secret, body(event("secret-event-7"), event("x", customer_id="nobody-42")))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "anna-1" not in text and "nobody-42" not in text and "secret-event-7" not in text


def test_the_incremental_update_agrees_with_a_full_refresh(marketer):
    """After events arrive through the API, the fields it updates equal what a full refresh
    computes from the same events (recency aside: the refresh moves its reference date)."""
    from api.services.profiles import FIELDS
    from tests.recommendation_support import END, profiles_refresh, shop_create

    shop = shop_create(name="Agree", customers=12)
    shop.catalog.timezone = "Europe/Berlin"
    shop.catalog.save()
    profiles_refresh(shop.catalog, marketer)
    secret = token_create(
        user=marketer, name="x", scopes=[Scope.EVENTS_WRITE], catalog=shop.catalog
    ).secret
    sku = shop.products[3].sku
    lines = []
    for i, customer in enumerate(shop.customers[:6]):
        when = END + dt.timedelta(hours=3 + i)
        lines += [
            event(f"p{i}", customer_id=customer.external_id, sku=sku, occurred_at=when.isoformat(),
                  value=7.25, quantity=2, source=f"API-{i}" if i % 2 else None),
            event(f"q{i}", customer_id=customer.external_id, sku=sku, value=3,
                  occurred_at=(when + dt.timedelta(minutes=5)).isoformat()),
            event(f"r{i}", customer_id=customer.external_id, sku=sku, kind="return", value=7.25,
                  occurred_at=(when + dt.timedelta(days=1)).isoformat()),
            event(f"v{i}", customer_id=customer.external_id, sku=sku, kind="view", value=None,
                  occurred_at=(when + dt.timedelta(days=2)).isoformat()),
        ]  # fmt: skip
    result = post(secret, body(*lines)).json()
    assert result["accepted"] == 24 and result["profiles"] == {"updated": 6, "pending": 0}
    fields = [f for f in FIELDS if f != "recency_days"]
    incremental = {
        p["customer_id"]: p
        for p in Profile.objects.filter(catalog=shop.catalog).values("customer_id", *fields)
    }
    profiles_refresh(shop.catalog, marketer)
    full = {
        p["customer_id"]: p
        for p in Profile.objects.filter(catalog=shop.catalog).values("customer_id", *fields)
    }
    assert full.keys() == incremental.keys()
    for customer_id, row in full.items():
        for name in fields:
            mine, theirs = incremental[customer_id][name], row[name]
            if isinstance(theirs, float):
                theirs = pytest.approx(theirs)
            assert mine == theirs, (customer_id, name)
