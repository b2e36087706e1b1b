"""The page that explains the profile models, and the configurable sensitive-attribute list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from marketing.models import EventKind, ProfileRun
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

AS_OF = dt.datetime(2024, 6, 30, tzinfo=dt.UTC)
QUALITY = {
    "available": True,
    "reason": "",
    "cutoff": "2024-01-01T00:00:00+00:00",
    "horizon_days": 180,
    "train_customers": 812,
    "test_customers": 271,
    "clv_mae": 61.25,
    "clv_rmse": 140.5,
    "baseline": "value in the previous period",
    "baseline_mae": 70.0,
    "baseline_rmse": 170.25,
    "mean_baseline_mae": 99.5,
    "mean_baseline_rmse": 201.0,
    "predicted_total": 15000.0,
    "actual_total": 10000.0,
    "churn_auc": 0.7412,
    "churn_auc_recency": 0.6631,
    "churn_brier": 0.181,
    "churn_baseline_brier": 0.21,
    "churn_rate": 0.42,
}


@pytest.fixture
def catalog(db):
    return CatalogFactory(name="Shop", currency="EUR")


def _run(catalog, quality, *, used=("recency_days", "frequency")):
    return ProfileRun.objects.create(
        catalog=catalog,
        as_of=AS_OF,
        horizon_days=quality.get("horizon_days", 0),
        quality=quality,
        features={"used": list(used), "dropped_sensitive": ["attributes.gender"]},
        customers=1083,
    )


def test_page_shows_measured_quality_against_baselines(catalog, marketer, client):
    _run(catalog, QUALITY)
    client.force_login(marketer)
    response = client.get(f"/catalogs/{catalog.pk}/models/")
    html = response.content.decode()
    assert response.status_code == 200
    # CLV against both naive baselines, from the stored hold-out figures.
    for figure in ("61.25", "70.00", "99.50", "140.50", "170.25"):
        assert figure in html
    assert "812 customers and scored on 271" in html
    assert "12% better" in html
    # Predictions summed to 150 % of the actual: the page warns about the bias.
    assert "150% of what they spent" in html
    assert "expects more than happened" in html
    # Churn: AUC against recency alone, Brier against the base rate.
    assert "0.74" in html and "0.66" in html
    assert "0.181" in html and "0.210" in html
    assert 'data-plotly="clv-quality-fig"' in html
    assert 'data-plotly="churn-quality-fig"' in html
    # The features and the sensitive list (defaults) are stated.
    assert "recency_days, frequency" in html
    assert "gender, age, date_of_birth, ethnicity, religion" in html
    assert "attributes.gender" in html
    # The documented RFM rules.
    assert "Can&#x27;t lose them" in html and "At risk" in html


def test_page_says_why_quality_is_missing(catalog, marketer, client):
    _run(catalog, {"available": False, "reason": "fewer than 50 buyers at the cut-off"})
    client.force_login(marketer)
    html = client.get(f"/catalogs/{catalog.pk}/models/").content.decode()
    assert "Not measured: fewer than 50 buyers at the cut-off" in html
    assert "clv-quality-fig" not in html and "churn-quality-fig" not in html


def test_page_before_any_refresh(catalog, marketer, client):
    client.force_login(marketer)
    response = client.get(f"/catalogs/{catalog.pk}/models/")
    assert response.status_code == 200
    assert "has not been profiled yet" in response.content.decode()


def test_page_needs_login_and_the_customer_permission(catalog, no_role_user, client):
    assert client.get(f"/catalogs/{catalog.pk}/models/").status_code == 302
    client.force_login(no_role_user)
    assert client.get(f"/catalogs/{catalog.pk}/models/").status_code == 403
    assert client.get("/catalogs/999999/models/").status_code == 404


def test_configured_sensitive_list_is_dropped_and_shown(catalog, marketer, client, settings):
    settings.SENSITIVE_ATTRIBUTES = ("loyalty_tier",)
    mug = ProductFactory(catalog=catalog, sku="MUG", category="Kitchen")
    for i in range(6):
        customer = CustomerFactory(external_id=f"c{i}", attributes={"loyalty_tier": str(i % 3)})
        EventFactory(
            catalog=catalog,
            product=mug,
            customer=customer,
            kind=EventKind.PURCHASE,
            value=Decimal("10.00"),
            source=f"O{i}",
            occurred_at=AS_OF - dt.timedelta(days=i),
        )
    job = profile_refresh_start(catalog=catalog, user=marketer)
    profile_refresh_run(job_id=job.pk, worker="inline")
    run = ProfileRun.objects.get(catalog=catalog)
    assert any("loyalty_tier" in name for name in run.features["dropped_sensitive"])
    client.force_login(marketer)
    html = client.get(f"/catalogs/{catalog.pk}/models/").content.decode()
    assert "Never used:</strong> loyalty_tier" in html
    segments_html = client.get(f"/catalogs/{catalog.pk}/segments/").content.decode()
    assert "never used for them: loyalty_tier" in segments_html
