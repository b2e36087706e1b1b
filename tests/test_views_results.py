"""Campaign results pages: a brief's results (numbers, charts, htmx partial, empty state,
winner only with evidence, uplift against control), the brief page's results panel, and
the catalog overview.

mary (marketer) and avery (approver) read results; nora has no role; anonymous users are
sent to log in. Rows are created directly (tests/test_results_selectors.py helpers).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from copygen.models import CampaignResult
from copygen.templatetags import campaign_results
from marketing.models import Job
from tests.copygen_factories import BriefFactory
from tests.factories import CatalogFactory, ProductFactory
from tests.test_results_selectors import (
    T0,
    ab_test,
    hold_out,
    make_customers,
    make_export,
    purchase,
    send,
    wilson,
)

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, *args) -> str:
    return reverse(f"copygen:{name}", args=args)


def words(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def figure(response, chart_id: str) -> dict:
    """The plotly figure of a chart's json_script block."""
    html = response.content.decode()
    match = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html)
    assert match, f"no chart {chart_id}"
    return json.loads(match.group(1))


def percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


@pytest.fixture
def brief():
    catalog = CatalogFactory(currency="GBP", name="Shop")
    return BriefFactory(catalog=catalog, channel="email", name="<script>alert(1)</script>")


@pytest.fixture
def tested(brief):
    """Variants 1 and 2 with 30/200 and 50/200 clicks: enough evidence for variant 2."""
    ab_test(brief, clicks=(30, 50), n=200)
    return brief


# ----------------------------------------------------------------------------- access


def page_urls(brief) -> list[str]:
    return [
        url("brief-results", brief.pk),
        url("brief-results-panel", brief.pk),
        url("results-overview"),
    ]


def test_every_page_needs_a_login(client, tested):
    for address in page_urls(tested):
        response = client.get(address)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], address


def test_users_without_the_permission_get_403(client, no_role_user, tested):
    client.force_login(no_role_user)
    for address in page_urls(tested):
        assert client.get(address).status_code == 403, address
    # Reading briefs is not enough: results need copygen.view_campaignresult.
    reader = User.objects.create_user("rita", password="pw-rita")
    reader.user_permissions.add(
        Permission.objects.get(content_type__app_label="copygen", codename="view_brief")
    )
    client.force_login(reader)
    for address in page_urls(tested):
        assert client.get(address).status_code == 403, address


def test_missing_brief_is_404_and_writes_are_refused(client, marketer, tested):
    client.force_login(marketer)
    assert client.get(url("brief-results", 99999)).status_code == 404
    assert client.get(url("brief-results-panel", 99999)).status_code == 404
    assert client.post(url("brief-results", tested.pk)).status_code == 405
    assert client.post(url("results-overview")).status_code == 405
    assert CampaignResult.objects.count() == 400


# ----------------------------------------------------------------------------- brief page


def test_approvers_see_the_numbers_and_the_variant_chart(client, approver, tested):
    client.force_login(approver)
    response = client.get(url("brief-results", tested.pk))
    assert response.status_code == 200
    text = words(response)
    assert "400 results imported from 1 export" in text
    for clicks in (30, 50):
        low, high = wilson(clicks, 200)
        assert f"{percent(clicks / 200)}" in text
        assert f"{percent(low)} to {percent(high)}" in text
    assert "Recipients (sent)" in text
    # Read with the leader first: variant 2 vs 1, +10 points, Holm p 0.012.
    assert "Variant 2 vs Variant 1 +10.0 pts" in text and "0.012" in text
    assert "Variant 1 vs Variant 2" not in text
    assert "none reported" in text  # nobody opened anything: not "0.0%"
    html = response.content.decode()
    assert 'data-chart="variant-rates"' in html
    fig = figure(response, "variant-rates-fig")
    (bars,) = fig["data"]
    assert bars["type"] == "bar" and bars["x"] == ["Variant 1", "Variant 2"]
    assert bars["y"] == pytest.approx([15.0, 25.0])
    assert "vendor/plotly/plotly.min.js" in html and "cdn" not in html.lower()
    # Nothing to import for an approver, no control group: said so.
    assert "Import results" not in text
    assert "no control group" in text


def test_the_winner_is_highlighted_only_with_evidence(client, marketer, brief):
    ab_test(brief, clicks=(30, 34), n=200)
    client.force_login(marketer)
    response = client.get(url("brief-results", brief.pk))
    text = words(response)
    assert "Suggested winner" not in text and 'class="selected"' not in response.content.decode()
    assert "No winner yet:" in text  # the reason is shown either way

    more = BriefFactory(catalog=brief.catalog)
    ab_test(more, clicks=(30, 50), n=200)
    response = client.get(url("brief-results", more.pk))
    html = response.content.decode()
    assert "Suggested winner: Variant 2" in words(response)
    assert re.search(r'<tr class="selected">\s*<td>Variant 2', html)
    assert "Variant 2: click rate 25.0% vs 15.0%" in words(response)


def test_metric_and_slice_swap_the_analysis_with_htmx(client, marketer, tested):
    export = make_export(tested, finished_at=T0 + dt.timedelta(days=1))
    send(export, make_customers(20, "DE"), variant=1, locale="de", opened=True)
    client.force_login(marketer)
    address = url("brief-results", tested.pk) + "?metric=open&slice=locale"
    partial = client.get(address, **HX)
    html = partial.content.decode()
    assert partial.status_code == 200
    assert html.lstrip().startswith('<div id="results-analysis"')
    assert "<html" not in html and 'id="results-controls"' not in html
    assert "German" in words(partial) and "English" in words(partial)
    assert "<strong>Open rate</strong>" in html
    fig = figure(partial, "variant-rates-fig")
    assert {t["name"] for t in fig["data"]} == {"Variant 1", "Variant 2"}
    assert partial["Vary"] and "HX-Request" in partial["Vary"]

    # The same URL without htmx is the whole page, with the choices selected.
    page = client.get(address).content.decode()
    assert 'id="results-controls"' in page and 'hx-get="' in page
    assert '<option value="open" selected>' in page and '<option value="locale" selected>' in page


@pytest.mark.parametrize(
    "query", ["?metric=revenue&slice=country", "?metric=&slice=", "?slice=%3Cb%3E"]
)
def test_unknown_choices_fall_back_to_the_defaults(client, marketer, tested, query):
    client.force_login(marketer)
    response = client.get(url("brief-results", tested.pk) + query)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="click" selected>' in html and '<option value="all" selected>' in html
    assert "<b>" not in html


def test_brief_names_are_escaped(client, marketer, tested):
    client.force_login(marketer)
    for address in (url("brief-results", tested.pk), url("results-overview")):
        html = client.get(address).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, address
        assert "<script>alert(1)</script>" not in html, address


def test_without_results_the_page_says_how_to_get_them(client, marketer, approver, brief):
    client.force_login(marketer)
    response = client.get(url("brief-results", brief.pk))
    text = words(response)
    assert response.status_code == 200 and "No results imported yet" in text
    assert 'data-chart="variant-rates"' not in response.content.decode()
    # No export yet: a marketer is sent to export first; an approver gets the steps only.
    assert f'href="{url("export-create", brief.pk)}"' in response.content.decode()
    client.force_login(approver)
    assert (
        url("export-create", brief.pk)
        not in client.get(url("brief-results", brief.pk)).content.decode()
    )

    export = make_export(brief)
    failed = make_export(brief, finished_at=T0 + dt.timedelta(days=1))
    Job.objects.filter(pk=failed.job_id).update(status=Job.Status.FAILED)
    client.force_login(marketer)
    html = client.get(url("brief-results", brief.pk)).content.decode()
    target = url("results-import", export.pk)
    assert f'href="{target}"' in html and f"Import results of export #{export.pk}" in html
    assert url("results-import", failed.pk) not in html  # it wrote no file: nothing was sent
    # Approvers may not import: they read the steps, without the button.
    client.force_login(approver)
    html = client.get(url("brief-results", brief.pk)).content.decode()
    assert "No results imported yet" in html and target not in html


def test_uplift_against_control_from_store_purchases(client, marketer, brief):
    product = ProductFactory(catalog=brief.catalog)
    export = make_export(brief)
    treated, held = make_customers(200), make_customers(200, "C")
    send(export, treated, results=False)
    hold_out(export, held)
    for c in treated[:40]:
        purchase(c, product, T0 + dt.timedelta(days=1), "30.00")
    for c in held[:10]:
        purchase(c, product, T0 + dt.timedelta(days=2), "30.00")
    client.force_login(marketer)
    response = client.get(url("brief-results", brief.pk))
    text = words(response)
    assert "No results imported yet" in text  # the campaign tool has nothing yet...
    assert "Uplift against the control group" in text  # ...but purchases are measured
    assert "from store purchases" in text and "within 14 days" in text
    assert "purchases from 1 Mar 2024, 09:00 to 15 Mar 2024, 09:00" in text
    assert "(200 sent, 200 held out)" in text
    assert "Variant 1 vs Control" in text
    assert "20.0%" in text and "5.0%" in text  # 40/200 vs 10/200
    assert "Suggested winner: Variant 1" in text
    assert "6.00" in text and "1.50" in text  # revenue per person: 1200/200, 300/200
    fig = figure(response, "uplift-rates-fig")
    assert fig["data"][0]["x"] == ["Variant 1", "Control"]
    assert 'data-chart="uplift-rates"' in response.content.decode()


# ----------------------------------------------------------------------------- panel


def test_the_brief_page_loads_the_results_panel(client, approver, tested):
    client.force_login(approver)
    page = client.get(tested.get_absolute_url()).content.decode()
    assert f'hx-get="{url("brief-results-panel", tested.pk)}"' in page
    assert f'href="{url("brief-results", tested.pk)}"' in page  # works without JS

    panel = client.get(url("brief-results-panel", tested.pk), **HX)
    text = words(panel)
    assert panel.status_code == 200
    assert "400 Results imported" in text and "1 Export with results" in text
    assert "Latest import" in text


def test_the_panel_without_results(client, marketer, brief):
    make_export(brief)
    client.force_login(marketer)
    text = words(client.get(url("brief-results-panel", brief.pk), **HX))
    assert "No results imported yet" in text and "import results of export" in text


# ----------------------------------------------------------------------------- overview


def test_overview_per_channel_and_per_brief(client, approver, tested):
    sms = BriefFactory(catalog=tested.catalog, channel="sms", name="Texts")
    send(
        make_export(sms),
        make_customers(100, "T"),
        delivered=lambda i: i < 80,
        clicked=lambda i: i < 8,
        revenue=lambda i: Decimal("20.00") if i < 2 else None,
    )
    CatalogFactory(name="Empty catalog")
    client.force_login(approver)
    response = client.get(url("results-overview"))
    assert response.status_code == 200
    text = words(response)
    assert "Per channel" in text and "500 results" in text
    low, high = wilson(80, 400)
    assert f"20.0% {percent(low)} to {percent(high)}" in text  # email: 80 clicks of 400
    assert "10.0%" in text and "80 delivered" in text  # sms: 8 of 80 delivered
    assert "0.50" in text  # sms revenue per recipient 40/80
    html = response.content.decode()
    assert f'href="{url("brief-results", tested.pk)}"' in html
    assert f'href="{url("brief-results", sms.pk)}"' in html
    assert 'data-chart="channel-rates"' in html
    assert [t["x"] for t in figure(response, "channel-rates-fig")["data"]][0] == ["Email", "SMS"]


def test_overview_catalog_choice_partial_and_empty_state(client, marketer, tested):
    empty = CatalogFactory(name="Empty catalog")
    client.force_login(marketer)
    partial = client.get(url("results-overview") + f"?catalog={empty.pk}", **HX)
    assert partial.content.decode().lstrip().startswith('<div id="results-overview"')
    assert "No results yet for Empty catalog" in words(partial)
    # An unknown catalog falls back to the one with the latest results.
    page = client.get(url("results-overview") + "?catalog=nope")
    assert "Per channel" in words(page) and f'<option value="{tested.catalog.pk}" selected>' in (
        page.content.decode()
    )


def test_the_copy_studio_links_to_the_overview(client, marketer):
    client.force_login(marketer)
    html = client.get(url("brief-list")).content.decode()
    assert f'href="{url("results-overview")}"' in html


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("pct", 0.153, "15.3%"),
        ("pct", 0.004, "0.40%"),
        ("pct", float("nan"), "—"),
        ("pct", None, "—"),
        ("pts", -0.1, "−10.0 pts"),
        ("pts", 0.0004, "+0.04 pts"),
        ("pvalue", 0.0004, "<0.001"),
        ("pvalue", 0.0124, "0.012"),
        ("prob", 0.9996, ">99.9%"),
        ("prob", 0.85, "85%"),
        ("prob", float("nan"), "—"),
        ("money", 1234.5, "1,234.50"),
        ("signed_pct", -0.271, "−27.1%"),
    ],
)
def test_display_filters(name, value, shown):
    assert getattr(campaign_results, name)(value) == shown
