"""The dashboard on the home page: KPIs, range filtering, profile charts and the htmx partial."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from marketing import selectors_profiles
from marketing.models import Customer, EventKind, Profile
from marketing.services.customers import customer_erase
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from tests.factories import (
    CatalogFactory,
    CustomerFactory,
    EventFactory,
    JobFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

HOME = reverse("marketing:home")


def at(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, 12, tzinfo=dt.UTC)


@pytest.fixture
def shop():
    """anna: orders O1 (30) and O2 (20), returns 5 of O2; ben: O3 (100); cleo views on
    21 Jan 2024 (the last event); eve views in Nov 2023, fred in Jun 2023; dan's order of
    40 in 2022 is outside the default range; gus buys in another catalog."""
    catalog = CatalogFactory(name="A shop")  # sorts first: the default choice
    mug = ProductFactory(catalog=catalog, sku="MUG")
    pan = ProductFactory(catalog=catalog, sku="PAN")
    people = {
        name: CustomerFactory(external_id=name)
        for name in ("anna", "ben", "cleo", "dan", "eve", "fred", "gus")
    }

    def event(name, product, kind, when, value=None, source=""):
        EventFactory(
            catalog=catalog,
            product=product,
            customer=people[name],
            kind=kind,
            value=value,
            source=source,
            occurred_at=when,
        )

    event("anna", mug, EventKind.PURCHASE, at(2024, 1, 1), Decimal("30.00"), "O1")
    event("anna", mug, EventKind.PURCHASE, at(2024, 1, 11), Decimal("20.00"), "O2")
    event("anna", mug, EventKind.RETURN, at(2024, 1, 12), Decimal("5.00"), "O2")
    event("ben", pan, EventKind.PURCHASE, at(2024, 1, 20), Decimal("100.00"), "O3")
    event("cleo", pan, EventKind.VIEW, at(2024, 1, 21))
    event("eve", pan, EventKind.VIEW, at(2023, 11, 1))
    event("fred", pan, EventKind.VIEW, at(2023, 6, 1))
    event("dan", pan, EventKind.PURCHASE, at(2022, 12, 1), Decimal("40.00"), "O0")
    EventFactory(customer=people["gus"], occurred_at=at(2024, 1, 5), value=Decimal("999"))
    return catalog


def refresh(catalog, user):
    job = profile_refresh_start(catalog=catalog, user=user)
    profile_refresh_run(job_id=job.pk, worker="inline")


def test_default_range_is_the_year_up_to_the_last_event(shop):
    assert selectors_profiles.dashboard_default_range(catalog=shop) == (
        dt.date(2023, 1, 22),
        dt.date(2024, 1, 21),
    )


def test_kpis_match_hand_computed_values(shop, marketer, client):
    client.force_login(marketer)
    response = client.get(HOME, {"catalog": shop.pk})
    assert response.status_code == 200
    kpis = response.context["kpis"]
    assert (kpis.customers, kpis.active_30, kpis.active_90) == (5, 3, 4)
    assert kpis.revenue == pytest.approx(145.0)  # 30 + 20 + 100 − 5
    assert kpis.orders == 3
    assert kpis.aov == pytest.approx(50.0)  # 150 / 3
    assert kpis.repeat_rate == pytest.approx(0.5)  # anna of anna and ben
    assert kpis.return_rate == pytest.approx(5 / 150)
    html = response.content.decode()
    assert "145.00 GBP" in html
    assert "50 %" in html  # repeat rate


def test_date_range_changes_the_numbers(shop, marketer, client):
    client.force_login(marketer)
    response = client.get(
        HOME, {"catalog": shop.pk, "date_from": "2024-01-10", "date_to": "2024-01-21"}
    )
    kpis = response.context["kpis"]
    assert (kpis.customers, kpis.orders) == (3, 2)
    assert kpis.revenue == pytest.approx(115.0)
    assert kpis.aov == pytest.approx(60.0)
    assert kpis.repeat_rate == 0
    assert kpis.return_rate == pytest.approx(5 / 120)

    wide = client.get(HOME, {"catalog": shop.pk, "date_from": "2022-01-01"}).context["kpis"]
    assert wide.revenue == pytest.approx(185.0)  # dan's 2022 order is now inside
    assert wide.orders == 4


def test_revenue_trend_is_monthly_net_value(shop):
    months = selectors_profiles.dashboard_revenue_by_month(
        catalog=shop, date_from=dt.date(2022, 1, 1), date_to=dt.date(2024, 1, 31)
    )
    assert [(m.month, m.net) for m in months] == [
        (dt.date(2022, 12, 1), 40.0),
        (dt.date(2024, 1, 1), 145.0),
    ]


def test_bad_input_falls_back_to_defaults(shop, marketer, client):
    client.force_login(marketer)
    response = client.get(
        HOME, {"catalog": "999999", "date_from": "2024-02-01", "date_to": "2024-01-01"}
    )
    assert response.status_code == 200
    assert response.context["catalog"] == shop
    assert response.context["date_to"] == dt.date(2024, 1, 21)
    assert 'role="alert"' in response.content.decode()


def test_without_profiles_it_hints_at_a_refresh(shop, marketer, client):
    client.force_login(marketer)
    html = client.get(HOME).content.decode()
    assert "No profiles yet" in html
    assert "Refresh profiles" in html
    assert "rf-heatmap-fig" not in html


def test_heatmap_cells_match_profiles(shop, marketer, client):
    refresh(shop, marketer)
    client.force_login(marketer)
    response = client.get(HOME, {"catalog": shop.pk})
    cells = response.context["rf_cells"]
    buyers = Profile.objects.filter(catalog=shop, frequency__gt=0)
    for cell in cells:
        assert buyers.filter(r_score=cell.r_score, f_score=cell.f_score).count() == cell.customers
    assert sum(c.customers for c in cells) == buyers.count() == 3  # anna, ben, dan
    z = response.context["heatmap_fig"]["data"][0]["z"]
    assert sum(sum(row) for row in z) == 3
    sizes = response.context["segment_sizes"]
    assert sum(sizes.values()) == Profile.objects.filter(catalog=shop).count()
    html = response.content.decode()
    assert "rf-heatmap-fig" in html and "segments-fig" in html
    assert "No profiles yet" not in html


def test_htmx_gets_only_the_dashboard_section(shop, marketer, client):
    client.force_login(marketer)
    response = client.get(HOME, {"catalog": shop.pk}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="dashboard"')
    assert "Recent jobs" not in html and "<html" not in html
    assert "Vary" in response and "HX-Request" in response["Vary"]


def test_no_catalogs_shows_a_hint(marketer, client):
    client.force_login(marketer)
    assert "No catalogs yet" in client.get(HOME).content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_default_catalog_is_the_latest_profiled_one(shop, marketer, client):
    other = CatalogFactory(name="0 first by name")
    refresh(shop, marketer)
    refresh(other, marketer)  # profiles nobody
    client.force_login(marketer)
    assert client.get(HOME).context["catalog"] == shop


def test_figures_are_cached_until_an_import_refresh_or_erasure_changes_the_data(
    shop, marketer, admin_user, client
):
    """The scans over events are cached under dashboard_version; each way events or profiles
    change (an import job finishing, a refresh, an erasure) shows at once."""
    client.force_login(marketer)

    def revenue() -> float:
        return client.get(HOME, {"catalog": shop.pk}).context["kpis"].revenue

    assert revenue() == pytest.approx(145.0)
    EventFactory(
        catalog=shop,
        product=shop.products.get(sku="MUG"),
        customer=Customer.objects.get(external_id="cleo"),
        kind=EventKind.PURCHASE,
        value=Decimal("10.00"),
        source="O4",
        occurred_at=at(2024, 1, 15),
    )
    assert revenue() == pytest.approx(145.0)  # rows written behind the importer's back
    JobFactory(catalog=shop, finished_at=timezone.now())  # what an import leaves behind
    assert revenue() == pytest.approx(155.0)

    before = selectors_profiles.dashboard_version(catalog=shop)
    refresh(shop, marketer)
    assert selectors_profiles.dashboard_version(catalog=shop) != before
    customer_erase(user=admin_user, customer=Customer.objects.get(external_id="ben"))
    assert revenue() == pytest.approx(55.0)  # ben's order of 100 is gone
