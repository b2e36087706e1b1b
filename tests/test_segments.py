"""Segments built by a profile refresh (run inline, works on SQLite) and the segment pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from marketing import selectors_segments
from marketing.models import EventKind, Job, Profile, Segment, SegmentMembership
from marketing.selectors_segments import segment_member_page
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from marketing.services.segments import segments_refresh_learned
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2024, 1, 1, hour, tzinfo=dt.UTC) + dt.timedelta(days=day)


def refresh(catalog, user) -> Job:
    job = profile_refresh_start(catalog=catalog, user=user)
    profile_refresh_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    return job


@pytest.fixture
def shop():
    """Three buyers (one with a formula-looking id) and one browser."""
    catalog = CatalogFactory(name="Shop")
    mug = ProductFactory(catalog=catalog, sku="MUG", price=Decimal("10.00"), category="Kitchen")
    people = {
        x: CustomerFactory(external_id=x, email=f"{x.strip('=+')}@example.test", country=c)
        for x, c in (("anna", "France"), ("=cmd|calc", "Spain"), ("ben", "France"), ("cleo", ""))
    }
    orders = {"anna": [(1, 30), (11, 20)], "=cmd|calc": [(5, 100)], "ben": [(20, 10)]}
    for name, lines in orders.items():
        for i, (day, value) in enumerate(lines):
            EventFactory(
                catalog=catalog,
                product=mug,
                customer=people[name],
                kind=EventKind.PURCHASE,
                quantity=1,
                value=Decimal(value),
                source=f"{name}-{i}",
                occurred_at=at(day),
            )
    EventFactory(
        catalog=catalog,
        product=mug,
        customer=people["cleo"],
        kind=EventKind.VIEW,
        occurred_at=at(21),
    )
    return catalog, people


@pytest.fixture
def refreshed(shop, marketer):
    catalog, people = shop
    job = refresh(catalog, marketer)
    return catalog, people, job


def test_refresh_materialises_rfm_segments(refreshed):
    catalog, _, job = refreshed
    rfm = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RFM)
    names = set(Profile.objects.filter(catalog=catalog).values_list("rfm_segment", flat=True))
    assert set(rfm.values_list("name", flat=True)) == names
    assert "No purchases" in names
    total = sum(Profile.objects.filter(catalog=catalog).values_list("monetary", flat=True))
    for segment in rfm:
        members = Profile.objects.filter(catalog=catalog, rfm_segment=segment.name)
        assert segment.size == members.count()
        assert set(segment.memberships.values_list("customer_id", flat=True)) == set(
            members.values_list("customer_id", flat=True)
        )
        revenue = sum(p.monetary for p in members)
        assert segment.revenue_share == pytest.approx(revenue / total)
        assert segment.refreshed_at is not None
    assert SegmentMembership.objects.filter(segment__in=rfm).count() == 4
    assert job.result["segment_sets"]["rfm"] == rfm.count()


def test_rerun_replaces_segments_without_duplicates(refreshed, marketer):
    catalog, _, _ = refreshed
    before = list(
        Segment.objects.filter(catalog=catalog).values_list("kind", "name", "size").order_by("name")
    )
    memberships = SegmentMembership.objects.filter(segment__catalog=catalog).count()
    refresh(catalog, marketer)
    after = list(
        Segment.objects.filter(catalog=catalog).values_list("kind", "name", "size").order_by("name")
    )
    assert after == before
    assert SegmentMembership.objects.filter(segment__catalog=catalog).count() == memberships


def test_learned_segments_skipped_with_reason_on_tiny_data(refreshed):
    catalog, _, job = refreshed
    assert not Segment.objects.filter(catalog=catalog, kind=Segment.Kind.LEARNED).exists()
    assert job.result["segment_sets"]["learned"] == 0
    assert "customers with purchases" in job.result["segment_sets"]["learned_skipped"]


def test_learned_segments_created_with_descriptions(marketer):
    catalog = CatalogFactory(name="Big")
    cheap = ProductFactory(catalog=catalog, price=Decimal("5.00"), category="Garden")
    dear = ProductFactory(catalog=catalog, price=Decimal("200.00"), category="Kitchen")
    for i in range(45):
        customer = CustomerFactory()
        product, value = (cheap, 5 + i % 3) if i % 3 else (dear, 200 + 10 * (i % 5))
        for n in range(1 + i % 4):
            EventFactory(
                catalog=catalog,
                product=product,
                customer=customer,
                kind=EventKind.PURCHASE,
                quantity=1,
                value=Decimal(value),
                source=f"O{i}-{n}",
                occurred_at=at(n * 20 + i % 7),
            )
    job = refresh(catalog, marketer)
    learned = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.LEARNED)
    assert job.result["segment_sets"]["learned"] == learned.count() >= 3
    assert job.result["segment_sets"]["learned_skipped"] == ""
    assert all(s.name.startswith("Cluster ") and s.description for s in learned)
    assert sum(s.size for s in learned) == 45
    assert SegmentMembership.objects.filter(segment__in=learned).count() == 45
    # Every member carries its profile's spend (the member table's sort key).
    spend = dict(Profile.objects.filter(catalog=catalog).values_list("customer_id", "monetary"))
    for membership in SegmentMembership.objects.filter(segment__catalog=catalog):
        assert membership.monetary == pytest.approx(spend[membership.customer_id])
    # The member table lists the biggest spenders first, page by page, total = size.
    biggest = max(learned, key=lambda s: s.size)
    first = segment_member_page(segment=biggest, page=1, per_page=4)
    second = segment_member_page(segment=biggest, page=2, per_page=4)
    shown = [p.monetary for p in [*first, *second]]
    assert shown == sorted(shown, reverse=True) and len(shown) == min(8, biggest.size)
    assert first.total.value == biggest.size and first.has_next
    # Running the learned step again (seeded) gives the same segments.
    sizes = sorted(learned.values_list("name", "size"))
    segments_refresh_learned(catalog=catalog)
    assert sorted(learned.values_list("name", "size")) == sizes


# --------------------------------------------------------------------------- pages


def test_segment_list_groups_by_kind(client, refreshed, marketer):
    catalog, _, _ = refreshed
    client.force_login(marketer)
    response = client.get(reverse("marketing:segment-list", args=[catalog.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "RFM segments" in body
    assert "No purchases" in body
    assert "gender" in body  # says which attributes are never used


def test_segment_detail_shows_stats_chart_and_members(client, refreshed, marketer):
    catalog, people, _ = refreshed
    segment = Segment.objects.get(catalog=catalog, kind=Segment.Kind.RFM, name="No purchases")
    client.force_login(marketer)
    response = client.get(reverse("marketing:segment-detail", args=[segment.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert people["cleo"].get_absolute_url() in body
    assert 'id="segment-chart"' in body
    assert "ethnicity" in body


def test_segment_detail_members_partial_for_htmx(client, refreshed, marketer):
    catalog, _, _ = refreshed
    segment = Segment.objects.filter(catalog=catalog).first()
    client.force_login(marketer)
    response = client.get(
        reverse("marketing:segment-detail", args=[segment.pk]) + "?page=2", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="members"')
    assert "Back to the first page" in body


@pytest.mark.parametrize("name", ["segment-detail", "segment-members-csv"])
def test_segment_pages_require_login(client, refreshed, name):
    segment = Segment.objects.first()
    response = client.get(reverse(f"marketing:{name}", args=[segment.pk]))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_segment_list_requires_login(client, refreshed):
    catalog, _, _ = refreshed
    response = client.get(reverse("marketing:segment-list", args=[catalog.pk]))
    assert response.status_code == 302


@pytest.mark.parametrize("name", ["segment-detail", "segment-members-csv"])
def test_segment_pages_require_permission(client, refreshed, no_role_user, name):
    segment = Segment.objects.first()
    client.force_login(no_role_user)
    assert client.get(reverse(f"marketing:{name}", args=[segment.pk])).status_code == 403


def test_segment_list_requires_permission(client, refreshed, no_role_user):
    catalog, _, _ = refreshed
    client.force_login(no_role_user)
    response = client.get(reverse("marketing:segment-list", args=[catalog.pk]))
    assert response.status_code == 403


@pytest.mark.parametrize("name", ["segment-list", "segment-detail", "segment-members-csv"])
def test_missing_is_404(client, db, marketer, name):
    client.force_login(marketer)
    assert client.get(reverse(f"marketing:{name}", args=[999_999])).status_code == 404


def test_members_csv_has_members_without_pii_and_is_formula_safe(client, refreshed, marketer):
    catalog, people, _ = refreshed
    client.force_login(marketer)
    customers = [people["anna"], people["=cmd|calc"], people["ben"]]
    segment_ids = set(
        SegmentMembership.objects.filter(
            segment__kind=Segment.Kind.RFM, customer__in=customers
        ).values_list("segment_id", flat=True)
    )
    rows = []
    for pk in segment_ids:
        response = client.get(reverse("marketing:segment-members-csv", args=[pk]))
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        text = b"".join(response.streaming_content).decode()
        assert "@example.test" not in text
        reader = list(csv.reader(io.StringIO(text)))
        assert reader[0][0] == "external_id"
        assert "email" not in reader[0] and "name" not in reader[0]
        rows += reader[1:]
    ids = {row[0] for row in rows}
    assert ids == {"anna", "'=cmd|calc", "ben"}


def test_refresh_computes_every_segments_statistics_ahead_of_the_pages(
    refreshed, monkeypatch, client, marketer
):
    def recompute(segment):
        raise AssertionError(f"statistics of {segment} computed on view")

    monkeypatch.setattr(selectors_segments, "_segment_stats", recompute)
    segments = list(Segment.objects.filter(catalog=refreshed[0]))
    assert segments
    client.force_login(marketer)
    for segment in segments:
        assert client.get(segment.get_absolute_url()).status_code == 200
