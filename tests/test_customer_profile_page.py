"""The profile section of the customer page, and the words for the run's quality."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.template.defaultfilters import floatformat

from marketing.models import EventKind, Profile
from marketing.profile_display import quality_text
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory


def at(day: int) -> dt.datetime:
    return dt.datetime(2024, 1, day, 12, tzinfo=dt.UTC)


@pytest.fixture
def shop(db, marketer):
    catalog = CatalogFactory(name="Shop")
    mug = ProductFactory(catalog=catalog, sku="MUG", category="Home > Kitchen")
    anna, ben, cleo = (CustomerFactory(external_id=x) for x in ("anna", "ben", "cleo"))
    for customer, kind, day, value, source in [
        (anna, EventKind.PURCHASE, 1, "30.00", "O1"),
        (anna, EventKind.PURCHASE, 11, "20.00", "O2"),
        (anna, EventKind.RETURN, 12, "5.00", "O2"),
        (ben, EventKind.PURCHASE, 20, "100.00", "O3"),
    ]:
        EventFactory(
            catalog=catalog,
            product=mug,
            customer=customer,
            kind=kind,
            value=Decimal(value),
            source=source,
            occurred_at=at(day),
        )
    job = profile_refresh_start(catalog=catalog, user=marketer)
    profile_refresh_run(job_id=job.pk, worker="inline")
    return catalog, anna, cleo


def test_profile_shows_segment_value_churn_and_quality(shop, marketer, client):
    catalog, anna, _ = shop
    profile = Profile.objects.select_related("run").get(catalog=catalog, customer=anna)
    client.force_login(marketer)
    response = client.get(anna.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="profile-{catalog.pk}"' in html
    assert profile.rfm_segment in html
    assert f"{floatformat(profile.clv_12m, '2g')} GBP" in html
    assert f"within {profile.run.horizon_days} days" in html
    if profile.churn_probability is not None:
        assert f"{round(profile.churn_probability * 100)} %" in html
    assert f"not available: {profile.run.quality['reason']}" in html
    assert "Home &gt; Kitchen (100 %)" in html
    assert f'id="spend-fig-{catalog.pk}"' in html
    assert "Nothing computed yet" not in html
    # Recommendations of the profile's catalog: none until a run (tests/test_views_recommendations).
    assert f"No recommendation run in {catalog.name} yet" in html and "No drafts yet" in html


def test_no_profile_keeps_the_placeholder(shop, marketer, client):
    _, _, cleo = shop  # no events, so no profile
    client.force_login(marketer)
    html = client.get(cleo.get_absolute_url()).content.decode()
    assert "Nothing computed yet" in html
    assert 'class="card profile"' not in html
    assert "Churn probability" not in html


def test_anonymous_is_sent_to_login(shop, client):
    _, anna, _ = shop
    assert client.get(anna.get_absolute_url()).status_code == 302


def test_quality_text_when_measured():
    text = quality_text(
        {
            "available": True,
            "clv_mae": 80.0,
            "baseline_mae": 100.0,
            "baseline": "value in the previous period",
            "churn_auc": 0.74,
        }
    )
    assert "80.00" in text["clv"] and "100.00" in text["clv"] and "20% better" in text["clv"]
    assert text["churn"].startswith("AUC 0.74")


def test_quality_text_when_unavailable():
    assert quality_text({"available": False, "reason": "only 20 days of history"}) == {
        "clv": "not available: only 20 days of history",
        "churn": "not available: only 20 days of history",
    }


def test_profile_lists_the_customers_segments(shop, marketer, client):
    catalog, anna, _ = shop
    profile = Profile.objects.get(catalog=catalog, customer=anna)
    client.force_login(marketer)
    html = client.get(anna.get_absolute_url()).content.decode()
    rfm = catalog.segments.get(kind="rfm", name=profile.rfm_segment)
    assert f'Member of: <a href="{rfm.get_absolute_url()}">' in html
