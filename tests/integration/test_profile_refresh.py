"""Profile refresh with the real worker on PostgreSQL: queued by an import, run on demand.

mary (marketer) imports and refreshes; nora (no role) may not; anonymous users must sign in.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from marketing.models import Event, Job, Profile, ProfileRun
from tests.factories import CatalogFactory
from tests.integration.import_support import CUSTOMERS, PRODUCTS, finished, lines, run, succeeded

pytestmark = pytest.mark.django_db(transaction=True)

# C1: orders of 25.00 and 12.50, the last 10 days 3 hours before the last event (as_of);
# C2: one order of 39.90, 6 days before it.
ORDERS = lines(
    "customer_id,sku,kind,quantity,value,occurred_at,source",
    "C1,MUG-1,purchase,2,25.00,2024-03-01 10:05:00,O1",
    "C1,MUG-1,purchase,1,12.50,2024-03-11 09:00:00,O2",
    "C2,PAN-2,purchase,1,39.90,2024-03-15 12:00:00,O3",
    "C2,PAN-2,view,,,2024-03-20 12:00:00,S1",
    "C1,MUG-1,view,,,2024-03-21 12:00:00,S2",
)


def refresh_jobs(catalog):
    return Job.objects.filter(kind=Job.Kind.PROFILE_REFRESH, catalog=catalog)


@pytest.fixture
def imported(celery_worker, marketer):
    """A catalog whose events import succeeded, and the refresh job it queued (finished)."""
    catalog = CatalogFactory(name="Shop")
    succeeded(run(catalog, marketer, "products", PRODUCTS))
    succeeded(run(catalog, marketer, "customers", CUSTOMERS))
    assert not refresh_jobs(catalog).exists()  # no events yet: nothing to refresh
    succeeded(run(catalog, marketer, "events", ORDERS))
    job = refresh_jobs(catalog).get()
    assert job.created_by == marketer
    return catalog, succeeded(finished(job))


def by_customer(catalog) -> dict[str, Profile]:
    return {
        p.customer.external_id: p
        for p in Profile.objects.filter(catalog=catalog).select_related("customer")
    }


def test_import_queues_a_refresh_that_computes_profiles(imported):
    catalog, job = imported
    profiles = by_customer(catalog)
    assert set(profiles) == {"C1", "C2"}
    c1, c2 = profiles["C1"], profiles["C2"]
    assert (c1.frequency, c1.monetary, c1.recency_days) == (2, 37.5, 10)
    assert (c2.frequency, c2.monetary, c2.recency_days) == (1, pytest.approx(39.9), 6)
    assert c1.aov == pytest.approx(18.75)
    assert c1.rfm_segment and c2.rfm_segment
    run_ = ProfileRun.objects.get(catalog=catalog)
    assert run_.job_id == job.pk
    assert run_.as_of == dt.datetime(2024, 3, 21, 12, tzinfo=dt.UTC)
    assert job.result["customers"] == 2
    assert job.result["buyers"] == 2
    assert sum(job.result["segments"].values()) == 2


def test_refresh_endpoint_reruns_and_replaces(imported, client, marketer):
    catalog, first = imported
    before = sorted(Profile.objects.values_list("customer_id", "frequency", "monetary"))
    client.force_login(marketer)
    response = client.post(reverse("marketing:profile-refresh", args=[catalog.pk]))
    job = refresh_jobs(catalog).exclude(pk=first.pk).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("marketing:job-detail", args=[job.pk])
    succeeded(finished(job))
    after = sorted(Profile.objects.values_list("customer_id", "frequency", "monetary"))
    assert after == before  # same profiles, no duplicates
    assert Profile.objects.count() == 2
    latest = ProfileRun.objects.get(job=job)
    assert set(Profile.objects.values_list("run_id", flat=True)) == {latest.pk}


def test_a_second_import_refreshes_again(imported, marketer):
    catalog, first = imported
    more = lines(
        "customer_id,sku,kind,quantity,value,occurred_at,source",
        "C2,MUG-1,purchase,1,12.50,2024-03-22 12:00:00,O4",
    )
    succeeded(run(catalog, marketer, "events", more))
    job = succeeded(finished(refresh_jobs(catalog).exclude(pk=first.pk).get()))
    c2 = by_customer(catalog)["C2"]
    assert (c2.frequency, c2.recency_days) == (2, 0)
    assert c2.monetary == pytest.approx(52.4)
    assert job.result["events"] == Event.objects.filter(catalog=catalog).count()


def test_refresh_endpoint_requires_login(client):
    catalog = CatalogFactory()
    url = reverse("marketing:profile-refresh", args=[catalog.pk])
    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not refresh_jobs(catalog).exists()


def test_refresh_endpoint_requires_permission(client, no_role_user):
    catalog = CatalogFactory()
    client.force_login(no_role_user)
    response = client.post(reverse("marketing:profile-refresh", args=[catalog.pk]))
    assert response.status_code == 403
    assert not refresh_jobs(catalog).exists()


def test_refresh_endpoint_rejects_get(client, marketer):
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = client.get(reverse("marketing:profile-refresh", args=[catalog.pk]))
    assert response.status_code == 405
    assert not refresh_jobs(catalog).exists()


def test_refresh_endpoint_404_for_missing_catalog(client, marketer):
    client.force_login(marketer)
    response = client.post(reverse("marketing:profile-refresh", args=[999_999]))
    assert response.status_code == 404
