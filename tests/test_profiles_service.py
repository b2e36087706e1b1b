"""The profile refresh service run inline (no broker, no worker): works on SQLite too."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied

from marketing.models import Event, EventKind, Job, Profile, ProfileRun
from marketing.services.profiles import _read_frames, profile_refresh_run, profile_refresh_start
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db


def at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, tzinfo=dt.UTC)


@pytest.fixture
def shop():
    """anna: two orders (30 + 20) and a return of 5; ben: one order of 100; cleo only looks;
    dan bought in another catalog only. The last event is cleo's view on 21 January."""
    catalog = CatalogFactory(name="Shop")
    mug = ProductFactory(catalog=catalog, sku="MUG", price=Decimal("10.00"))
    pan = ProductFactory(catalog=catalog, sku="PAN", price=Decimal("50.00"))
    anna, ben, cleo, dan = (CustomerFactory(external_id=x) for x in ("anna", "ben", "cleo", "dan"))

    def event(customer, product, kind, day, value=None, source="", quantity=1):
        return EventFactory(
            catalog=catalog,
            product=product,
            customer=customer,
            kind=kind,
            quantity=quantity,
            value=value,
            source=source,
            occurred_at=at(day, 12),
        )

    event(anna, mug, EventKind.PURCHASE, 1, Decimal("30.00"), "O1", 3)
    event(anna, mug, EventKind.PURCHASE, 11, Decimal("20.00"), "O2", 2)
    event(anna, mug, EventKind.RETURN, 12, Decimal("5.00"), "O2", 1)
    event(ben, pan, EventKind.PURCHASE, 20, Decimal("100.00"), "O3", 2)
    event(cleo, pan, EventKind.VIEW, 21)
    EventFactory(customer=dan, occurred_at=at(5))  # another catalog
    return catalog, {c.external_id: c for c in (anna, ben, cleo, dan)}


def refresh(catalog, user) -> Job:
    job = profile_refresh_start(catalog=catalog, user=user)
    profile_refresh_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    return job


def test_refresh_computes_rfm_per_customer(shop, marketer):
    catalog, people = shop
    job = refresh(catalog, marketer)

    profiles = {p.customer.external_id: p for p in Profile.objects.filter(catalog=catalog)}
    assert set(profiles) == {"anna", "ben", "cleo"}  # dan has no events here
    anna, ben, cleo = profiles["anna"], profiles["ben"], profiles["cleo"]
    assert (anna.frequency, anna.monetary, anna.recency_days) == (2, 45.0, 10)
    assert (ben.frequency, ben.monetary, ben.recency_days) == (1, 100.0, 1)
    assert anna.return_rate == pytest.approx(1 / 5)
    assert (cleo.frequency, cleo.monetary, cleo.recency_days) == (0, 0.0, None)
    assert cleo.rfm_segment == "No purchases"
    assert cleo.aov is None and cleo.price_band == ""
    assert anna.value_basis and anna.clv_12m is not None

    run = ProfileRun.objects.get(catalog=catalog)
    assert run.job_id == job.pk
    assert run.as_of == at(21, 12)
    assert run.customers == 3
    assert run.quality["available"] is False  # far too little data for the models
    assert job.result["customers"] == 3
    assert job.result["buyers"] == 2
    assert job.result["segments"]["No purchases"] == 1


def test_deriving_categories_is_its_own_progress_step(marketer, monkeypatch):
    """A catalog without categories derives them first: step 1 of 5, not "0 of 4" throughout."""
    from marketing.services import profiles as profile_services

    steps: list[tuple[int, int, str]] = []

    class Recorder:
        def __init__(self, job_id: int) -> None:
            pass

        def __call__(self, done, total, message="", *, force=False):
            steps.append((done, total, message))

    monkeypatch.setattr(profile_services, "ProgressReporter", Recorder)
    catalog = CatalogFactory(name="Plain")
    customer = CustomerFactory()
    titles = ["RED MUG", "BLUE MUG", "RED CANDLE", "BLUE CANDLE", "GREEN MUG", "GREEN CANDLE"]
    for i, title in enumerate(titles):
        product = ProductFactory(catalog=catalog, sku=f"P{i}", title=title, category="")
        EventFactory(
            catalog=catalog, product=product, customer=customer, kind=EventKind.PURCHASE,
            value=Decimal("5.00"), source=f"O{i}", occurred_at=at(i + 1),
        )  # fmt: skip

    job = refresh(catalog, marketer)

    assert {total for _, total, _ in steps} == {5} and job.progress_done == 5
    assert steps[0][:2] == (0, 5) and steps[0][2].startswith("Deriving categories")
    reading = next(s for s in steps if s[2].startswith("Reading events"))
    assert reading[0] == 1 and "categories derived" in reading[2]
    assert [d for d, _, _ in steps] == sorted(d for d, _, _ in steps)  # never backwards
    assert job.result["categories"]["status"] == "derived"


def test_profiles_are_analysed_after_the_refresh_commits(
    shop, marketer, django_capture_on_commit_callbacks
):
    """ANALYZE inside the refresh's transaction would hold its lock until the commit."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("the embedded database is not analysed")
    catalog, _ = shop
    with (
        django_capture_on_commit_callbacks() as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        refresh(catalog, marketer)
    assert not [q["sql"] for q in queries if "ANALYZE" in q["sql"].upper()]
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    assert 'ANALYZE "marketing_profile"' in [q["sql"] for q in queries]


def test_rerun_replaces_profiles(shop, marketer):
    catalog, _ = shop
    refresh(catalog, marketer)
    first = set(Profile.objects.values_list("customer_id", "frequency", "monetary"))
    refresh(catalog, marketer)
    assert set(Profile.objects.values_list("customer_id", "frequency", "monetary")) == first
    assert Profile.objects.count() == 3
    latest = ProfileRun.objects.order_by("-pk").first()
    assert set(Profile.objects.values_list("run_id", flat=True)) == {latest.pk}


def test_running_a_job_twice_changes_nothing(shop, marketer):
    catalog, _ = shop
    job = refresh(catalog, marketer)
    profile_refresh_run(job_id=job.pk, worker="inline")  # already succeeded: not claimed
    assert ProfileRun.objects.count() == 1


def test_one_active_refresh_per_catalog(shop, marketer):
    catalog, _ = shop
    first = profile_refresh_start(catalog=catalog, user=marketer)
    assert profile_refresh_start(catalog=catalog, user=marketer) == first
    assert Job.objects.filter(kind=Job.Kind.PROFILE_REFRESH).count() == 1


def test_start_requires_permission(shop, no_role_user):
    catalog, _ = shop
    with pytest.raises(PermissionDenied):
        profile_refresh_start(catalog=catalog, user=no_role_user)
    job = profile_refresh_start(catalog=catalog, user=no_role_user, triggered_by_import=True)
    assert job.kind == Job.Kind.PROFILE_REFRESH


def test_catalog_without_events_gets_an_empty_run(marketer):
    catalog = CatalogFactory()
    job = refresh(catalog, marketer)
    assert job.result["customers"] == 0
    assert not Profile.objects.exists()
    assert ProfileRun.objects.get(catalog=catalog).customers == 0


def test_deleted_catalog_fails_the_job(shop, marketer):
    catalog, _ = shop
    job = profile_refresh_start(catalog=catalog, user=marketer)
    catalog.delete()
    profile_refresh_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "deleted" in job.error


def test_job_page_shows_the_refresh_summary(shop, marketer, client):
    catalog, _ = shop
    job = refresh(catalog, marketer)
    client.force_login(marketer)
    html = client.get(job.get_absolute_url()).content.decode()
    assert "Customers profiled" in html
    assert "No purchases" in html
    assert "Rows read" not in html


def test_catalog_page_offers_refresh_to_importers(shop, marketer, no_role_user, client):
    catalog, _ = shop
    url = f'action="/catalogs/{catalog.pk}/profiles/refresh/"'
    client.force_login(marketer)
    assert url in client.get(catalog.get_absolute_url()).content.decode()
    client.force_login(no_role_user)
    assert url not in client.get(catalog.get_absolute_url()).content.decode()


def test_frames_read_with_copy_equal_the_orm_rows():
    """COPY + Arrow (PostgreSQL) gives the values the ORM gives, odd text and NULLs included."""
    catalog = CatalogFactory()
    mug = ProductFactory(catalog=catalog)
    eva = CustomerFactory(country="Österreich", attributes={"tier": 'gold, "VIP"\nnew'})
    for source, value, product in (
        ('O,1 "quoted"\nline', Decimal("0.10"), mug),
        ("", None, None),
        ("O2", Decimal("123456789.99"), mug),
    ):
        EventFactory(catalog=catalog, product=product, customer=eva, source=source, value=value)
    EventFactory(catalog=catalog, product=mug, customer=None)  # anonymous: not read

    events, _, customers = _read_frames(catalog)
    rows = list(
        Event.objects.filter(catalog=catalog, customer__isnull=False).order_by("-occurred_at")
    )
    expected = pd.DataFrame(
        {
            "customer_id": pd.Series([e.customer_id for e in rows], dtype="int64"),
            "product_id": pd.array([e.product_id for e in rows], dtype="Int64"),
            "kind": [e.kind for e in rows],
            "quantity": pd.Series([e.quantity for e in rows], dtype="int64"),
            "value": [float(e.value) if e.value is not None else float("nan") for e in rows],
            "occurred_at": pd.to_datetime([e.occurred_at for e in rows], utc=True).astype(
                "datetime64[ns, UTC]"
            ),
            "source": [e.source for e in rows],
        }
    )
    pd.testing.assert_frame_equal(events, expected, check_exact=True)
    assert customers.to_dict("records") == [
        {
            "customer_id": eva.pk,
            "country": "Österreich",
            "language": eva.language,
            "consent_email": eva.consent_email,
            "consent_sms": eva.consent_sms,
            "consent_push": eva.consent_push,
            "consent_ads": eva.consent_ads,
            "attributes": {"tier": 'gold, "VIP"\nnew'},
        }
    ]
