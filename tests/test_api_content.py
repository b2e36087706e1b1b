"""Read endpoints: approved content per brief, segment and customer, and a customer's
recommendations. Pagination, the token's catalog, consent, what never leaves (PII, pending
drafts, other catalogs), and the query count of a full page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from api.models import Scope
from api.services.tokens import token_create
from copygen.models import Draft
from marketing.models import Event, EventKind
from recommendations.models import ModelRun, Recommendation
from tests.copygen_factories import PASSING_FIELDS, BriefFactory, SegmentFactory
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory
from tests.roles import role_group

pytestmark = pytest.mark.django_db

READ = [Scope.CONTENT_READ, Scope.RECOMMENDATIONS_READ]


@pytest.fixture(autouse=True)
def _api_roles(db):
    for role in ("admin", "marketer"):
        role_group(role).permissions.add(
            Permission.objects.get(content_type__app_label="api", codename="use_api")
        )


def secret_for(user, scopes=READ, catalog=None) -> str:
    return token_create(user=user, name="Tool", scopes=list(scopes), catalog=catalog).secret


def get(url: str, secret: str, **params):
    return Client().get(url, params, HTTP_AUTHORIZATION=f"Bearer {secret}")


def approved(brief, *, customer=None, segment=None, variant=1, products=(), status=None, **kw):
    audience = f"customer:{customer.pk}" if customer else f"segment:{segment.pk}"
    channel = kw.pop("channel", brief.channel)
    return Draft.objects.create(
        brief=brief,
        catalog=brief.catalog,
        audience_key=audience,
        customer=customer,
        segment=segment,
        locale=kw.pop("locale", "en"),
        variant=variant,
        channel=channel,
        tone="friendly",
        fields=PASSING_FIELDS[channel],
        product_ids=[p.pk for p in products],
        status=status or Draft.Status.APPROVED,
        reviewed_at=timezone.now(),
        **kw,
    )


@pytest.fixture
def shop():
    catalog = CatalogFactory(name="Shop", currency="GBP")
    other = CatalogFactory(name="Other")
    mug = ProductFactory(
        catalog=catalog,
        sku="MUG-1",
        title="Blue Mug",
        price=Decimal("12.50"),
        url="https://shop.test/mug",
        image_url="https://shop.test/mug.jpg",
    )
    loyal = SegmentFactory(catalog=catalog, name="Loyal")
    anna = CustomerFactory(
        external_id="anna-1", email="anna@example.test", name="Anna Smith", consent_email=True
    )
    ben = CustomerFactory(external_id="ben-2", email="ben@example.test", consent_email=False)
    Event.objects.create(
        id=1, catalog=catalog, customer=anna, product=mug, kind=EventKind.VIEW,
        occurred_at=timezone.now(),
    )  # fmt: skip
    email = BriefFactory(catalog=catalog, name="Spring", segment=loyal, channel="email")
    sms = BriefFactory(catalog=catalog, name="Win-back", segment=loyal, channel="sms")
    other_brief = BriefFactory(catalog=other, channel="email")
    return {
        "catalog": catalog,
        "other": other,
        "mug": mug,
        "loyal": loyal,
        "anna": anna,
        "ben": ben,
        "email": email,
        "sms": sms,
        "other_brief": other_brief,
        "anna_draft": approved(email, customer=anna, products=[mug]),
        "ben_draft": approved(email, customer=ben, products=[mug]),  # no email consent
        "pending": approved(email, customer=anna, variant=2, status=Draft.Status.PENDING),
        "segment_draft": approved(sms, segment=loyal, products=[mug]),
        "elsewhere": approved(other_brief, customer=anna, products=[]),
    }


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_brief_content_is_approved_consented_copy_with_products(marketer, shop):
    secret = secret_for(marketer)
    response = get(reverse("api:brief-content", args=[shop["email"].pk]), secret)
    assert ids(response) == [shop["anna_draft"].pk]  # not pending, not ben (no consent)
    row = response.json()["results"][0]
    assert row == {
        "id": shop["anna_draft"].pk,
        "brief_id": shop["email"].pk,
        "brief_name": "Spring",
        "catalog_id": shop["catalog"].pk,
        "channel": "email",
        "tone": "friendly",
        "locale": "en",
        "variant": 1,
        "revision": 1,
        "approved_at": row["approved_at"],
        "fields": PASSING_FIELDS["email"],
        "products": [
            {
                "sku": "MUG-1",
                "title": "Blue Mug",
                "url": "https://shop.test/mug",
                "price": "12.50",
                "currency": "GBP",
                "image_url": "https://shop.test/mug.jpg",
            }
        ],
        "customer": "anna-1",
        "segment": {"id": shop["loyal"].pk, "name": "Loyal"},
    }


def test_no_personal_data_leaves_through_content(marketer, shop):
    secret = secret_for(marketer)
    for url in (
        reverse("api:brief-content", args=[shop["email"].pk]),
        reverse("api:segment-content", args=[shop["loyal"].pk]),
        reverse("api:customer-content", args=["anna-1"]),
    ):
        text = get(url, secret).content.decode()
        assert "anna@example.test" not in text and "Anna Smith" not in text
        assert "ben@example.test" not in text


def test_segment_content_holds_segment_and_customer_copy(marketer, shop):
    secret = secret_for(marketer)
    response = get(reverse("api:segment-content", args=[shop["loyal"].pk]), secret)
    assert ids(response) == [shop["anna_draft"].pk, shop["segment_draft"].pk]
    segment_row = response.json()["results"][1]
    assert segment_row["customer"] is None and segment_row["channel"] == "sms"
    only_sms = get(reverse("api:segment-content", args=[shop["loyal"].pk]), secret, channel="sms")
    assert ids(only_sms) == [shop["segment_draft"].pk]


def test_customer_content_spans_catalogs_unless_the_token_has_one(marketer, shop):
    url = reverse("api:customer-content", args=["anna-1"])
    assert ids(get(url, secret_for(marketer))) == [shop["anna_draft"].pk, shop["elsewhere"].pk]
    limited = secret_for(marketer, catalog=shop["catalog"])
    assert ids(get(url, limited)) == [shop["anna_draft"].pk]


def test_a_catalog_token_sees_nothing_of_other_catalogs(marketer, shop):
    secret = secret_for(marketer, catalog=shop["other"])
    assert get(reverse("api:brief-content", args=[shop["email"].pk]), secret).status_code == 404
    assert get(reverse("api:segment-content", args=[shop["loyal"].pk]), secret).status_code == 404
    # only the copy written for anna in "Other"
    customer_url = reverse("api:customer-content", args=["anna-1"])
    assert ids(get(customer_url, secret)) == [shop["elsewhere"].pk]
    # ben has neither copy nor events in "Other": he does not exist for this token
    assert get(reverse("api:customer-content", args=["ben-2"]), secret).status_code == 404
    assert get(reverse("api:customer-recommendations", args=["anna-1"]), secret).status_code == 404
    shop_token = secret_for(marketer, catalog=shop["catalog"])
    response = get(reverse("api:customer-content", args=["ben-2"]), shop_token)
    assert response.status_code == 404  # no events in "Shop" either, and no consented copy
    Event.objects.create(
        id=2, catalog=shop["catalog"], customer=shop["ben"], product=shop["mug"],
        kind=EventKind.VIEW, occurred_at=timezone.now(),
    )  # fmt: skip
    assert ids(get(reverse("api:customer-content", args=["ben-2"]), shop_token)) == []


def test_missing_erased_and_unknown_objects_are_404(marketer, shop):
    secret = secret_for(marketer)
    assert get(reverse("api:brief-content", args=[999999]), secret).status_code == 404
    assert get(reverse("api:customer-content", args=["nobody"]), secret).status_code == 404
    shop["anna"].erased_at = timezone.now()
    shop["anna"].save()
    response = get(reverse("api:customer-content", args=["anna-1"]), secret)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_external_ids_with_slashes_and_spaces_work(marketer, shop):
    odd = CustomerFactory(external_id="shop/42 a", consent_email=True)
    draft = approved(shop["email"], customer=odd)
    url = reverse("api:customer-content", args=["shop/42 a"])
    assert ids(get(url, secret_for(marketer))) == [draft.pk]


def test_content_needs_the_content_scope(marketer, shop):
    secret = secret_for(marketer, scopes=[Scope.RECOMMENDATIONS_READ])
    response = get(reverse("api:brief-content", args=[shop["email"].pk]), secret)
    assert response.status_code == 403


# ---------------------------------------------------------------------------- pagination


@pytest.fixture
def many(shop):
    customers = [CustomerFactory(external_id=f"P{i:04d}", consent_email=True) for i in range(130)]
    products = [ProductFactory(catalog=shop["catalog"]) for _ in range(3)]
    brief = BriefFactory(catalog=shop["catalog"], channel="email", segment=shop["loyal"])
    Draft.objects.bulk_create(
        Draft(
            brief=brief,
            catalog=shop["catalog"],
            audience_key=f"customer:{c.pk}",
            customer=c,
            locale="en",
            variant=1,
            channel="email",
            tone="friendly",
            fields=PASSING_FIELDS["email"],
            product_ids=[p.pk for p in products],
            status=Draft.Status.APPROVED,
        )
        for c in customers
    )
    return brief


def test_pages_follow_next_until_every_draft_was_seen_once(marketer, many):
    secret = secret_for(marketer)
    url = reverse("api:brief-content", args=[many.pk])
    first = get(url, secret, limit=60)
    seen = ids(first)
    assert len(seen) == 60 and first.json()["limit"] == 60
    next_url = first.json()["next"]
    assert next_url.startswith("http://testserver/api/v1/briefs/") and "limit=60" in next_url
    pages = 1
    while next_url:
        page = Client().get(next_url, HTTP_AUTHORIZATION=f"Bearer {secret}")
        seen += ids(page)
        next_url = page.json()["next"]
        pages += 1
    assert pages == 3 and len(seen) == 130
    assert seen == sorted(seen) and len(set(seen)) == 130
    default = get(url, secret)
    assert len(ids(default)) == 50


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"cursor": "garbage!"},
        {"cursor": "WzFd"[:2]},
    ],
)
def test_bad_paging_parameters_get_400(marketer, many, params):
    response = get(reverse("api:brief-content", args=[many.pk]), secret_for(marketer), **params)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_a_page_of_100_takes_a_few_queries(marketer, many, django_assert_max_num_queries):
    secret = secret_for(marketer)
    url = reverse("api:brief-content", args=[many.pk])
    get(url, secret)  # records last use (a write at most once a minute)
    # token and user, the user's permissions, page, products
    with django_assert_max_num_queries(4):
        response = get(url, secret, limit=100)
    assert len(ids(response)) == 100
    assert all(len(row["products"]) == 3 for row in response.json()["results"])


# ----------------------------------------------------------------------- recommendations


def _recommend(catalog, customer, products, *, current=True):
    run = ModelRun.objects.create(
        catalog=catalog, status=ModelRun.Status.SUCCEEDED, is_current=current
    )
    rows = []
    for kind, chosen in (("discover", products), ("buy_again", products[:1])):
        for rank, product in enumerate(chosen, start=1):
            rows.append(
                Recommendation(
                    run=run,
                    catalog=catalog,
                    customer=customer,
                    kind=kind,
                    product=product,
                    rank=rank,
                    score=1.0 / rank,
                    reason_kind="popular",
                    reason_text=f"Popular with Loyal customers: {rank}",
                )
            )
    Recommendation.objects.bulk_create(reversed(rows))  # ids in no useful order
    return run


def test_recommendations_of_the_current_run_in_rank_order(marketer, shop):
    products = [shop["mug"], *(ProductFactory(catalog=shop["catalog"]) for _ in range(4))]
    _recommend(shop["catalog"], shop["anna"], products[::-1], current=False)  # old run
    run = _recommend(shop["catalog"], shop["anna"], products)
    secret = secret_for(marketer)
    url = reverse("api:customer-recommendations", args=["anna-1"])
    response = get(url, secret)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["kind"], r["rank"]) for r in rows] == [
        *(("discover", i) for i in range(1, 6)),
        ("buy_again", 1),
    ]
    assert rows[0] == {
        "catalog_id": shop["catalog"].pk,
        "run_id": run.pk,
        "kind": "discover",
        "rank": 1,
        "score": 1.0,
        "sku": "MUG-1",
        "title": "Blue Mug",
        "url": "https://shop.test/mug",
        "price": "12.50",
        "currency": "GBP",
        "image_url": "https://shop.test/mug.jpg",
        "reason": "Popular with Loyal customers: 1",
        "reason_kind": "popular",
    }
    paged = get(url, secret, limit=4)
    second = Client().get(paged.json()["next"], HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [(r["kind"], r["rank"]) for r in second.json()["results"]] == [
        ("discover", 5),
        ("buy_again", 1),
    ]
    buy_again = get(url, secret, kind="buy_again")
    assert [r["kind"] for r in buy_again.json()["results"]] == ["buy_again"]
    assert get(url, secret, kind="everything").status_code == 400


def test_recommendations_need_their_scope_and_the_users_permission(marketer, shop):
    url = reverse("api:customer-recommendations", args=["anna-1"])
    content_only = secret_for(marketer, scopes=[Scope.CONTENT_READ])
    assert get(url, content_only).status_code == 403
    secret = secret_for(marketer)
    marketer.groups.remove(role_group("marketer"))
    assert get(url, secret).status_code == 403
