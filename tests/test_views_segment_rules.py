"""Rule segment pages: builder (new / edit), live count, save, delete, and who may use them.

mary (marketer) builds segments; avery (approver) only looks; nora has no role; anonymous
users are sent to log in.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketing.models import AuditEvent, EventKind, Job, Segment
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from marketing.services.segments import segment_rule_create
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db

FRANCE = {"op": "and", "rules": [{"field": "country", "operator": "eq", "value": "France"}]}
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def catalog(marketer):
    """anna and ben in France (buyers), cleo in Spain (views only); profiled."""
    catalog = CatalogFactory(name="Shop")
    mug = ProductFactory(catalog=catalog, price=Decimal("10.00"), category="Home > Kitchen")
    start = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    for i, (name, country) in enumerate((("anna", "France"), ("ben", "France"), ("cleo", "Spain"))):
        customer = CustomerFactory(external_id=name, country=country)
        EventFactory(
            catalog=catalog,
            product=mug,
            customer=customer,
            kind=EventKind.VIEW if name == "cleo" else EventKind.PURCHASE,
            value=Decimal("10.00"),
            source=f"O{i}",
            occurred_at=start + dt.timedelta(days=i),
        )
    job = profile_refresh_start(catalog=catalog, user=marketer)
    profile_refresh_run(job_id=job.pk, worker="inline")
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    return catalog


@pytest.fixture
def french(catalog, marketer):
    return segment_rule_create(user=marketer, catalog=catalog, name="French", rule=FRANCE)


def form(name="Buyers", op="and", *conditions, **extra) -> dict:
    """Builder form data: conditions are (field, operator, value) under the root group."""
    data = {"name": name, "description": "", "node": ["0"], "0.type": "group", "0.op": op}
    for i, (field, operator, value) in enumerate(conditions):
        node_id = f"0.{i}"
        data["node"].append(node_id)
        data.update(
            {f"{node_id}.field": field, f"{node_id}.prev": field, f"{node_id}.operator": operator}
        )
        if value is not None:
            data[f"{node_id}.value"] = value
    data.update(extra)
    return data


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def words(response) -> str:
    """What a reader sees: the HTML without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", response.content.decode()))


# --------------------------------------------------------------------------- builder page


def test_new_builder_page(client, catalog, marketer):
    client.force_login(marketer)
    response = client.get(reverse("marketing:segment-create", args=[catalog.pk]))
    assert response.status_code == 200
    body = text(response)
    assert 'id="rule-builder"' in body and 'id="rule-count"' in body
    assert '<optgroup label="Behaviour">' in body
    assert 'name="0.0.field"' in body
    assert re.search(r"\d customers? \(\d+(\.\d)? % of 3 profiled\)", words(response))
    assert '<option value="Home &gt; Kitchen">' in body and '<option value="Home">' in body
    assert reverse("marketing:segment-count", args=[catalog.pk]) in body
    assert "<script>" not in body.split("<body", 1)[1].split("</footer>")[0]  # no inline JS


def test_segment_list_offers_new_rule_segment_to_marketers_only(
    client, catalog, marketer, approver
):
    url = reverse("marketing:segment-list", args=[catalog.pk])
    new = reverse("marketing:segment-create", args=[catalog.pk])
    client.force_login(marketer)
    assert new in client.get(url).content.decode()
    client.force_login(approver)
    response = client.get(url)
    assert response.status_code == 200 and new not in response.content.decode()


# --------------------------------------------------------------------------- live count


def test_count_endpoint_returns_the_count_fragment(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-count", args=[catalog.pk])
    response = client.post(url, form("x", "and", ("country", "eq", "france")), **HX)
    assert response.status_code == 200
    assert text(response).lstrip().startswith('<div id="rule-count"')
    assert "2 customers (66.7 % of 3 profiled)" in words(response)
    response = client.post(
        url,
        form("x", "or", ("country", "eq", "spain"), ("frequency", "gte", "1")),
        **HX,
    )
    assert "3 customers (100 % of 3 profiled)" in words(response)


def test_count_endpoint_explains_problems_by_condition(client, catalog, marketer):
    client.force_login(marketer)
    data = form("x", "and", ("country", "eq", "FR"), ("churn_probability", "gte", "70"))
    response = client.post(reverse("marketing:segment-count", args=[catalog.pk]), data, **HX)
    assert response.status_code == 200
    assert (
        "Condition 2: churn probability is a share between 0 and 1 (0.7 = 70 %), got &#x27;70&#x27;"
        in text(response)
    )


def activity_form(min_count: str, **extra) -> dict:
    data = form("Active", "and", ("events_in_last_days", "gte", None), **extra)
    data.update({"0.0.kind": "any", "0.0.days": "30", "0.0.min_count": min_count})
    return data


def test_oversized_min_count_is_explained_not_a_500(client, catalog, marketer):
    """1e30 would become an OFFSET the database refuses: the rule says why instead."""
    client.force_login(marketer)
    url = reverse("marketing:segment-count", args=[catalog.pk])
    response = client.post(url, activity_form("1e30"), **HX)
    assert response.status_code == 200
    assert "the number of events must be a whole number from 1 to 1,000,000" in text(response)
    create = reverse("marketing:segment-create", args=[catalog.pk])
    response = client.post(create, activity_form("1e30", action="add:0"), **HX)  # builder
    assert response.status_code == 200 and "from 1 to 1,000,000" in text(response)
    response = client.post(create, activity_form("1e30", save="1"))
    assert response.status_code == 200 and "The segment was not saved" in text(response)
    assert not Segment.objects.filter(kind=Segment.Kind.RULE).exists()
    response = client.post(url, activity_form("1000000"), **HX)
    assert "0 customers" in words(response)


def test_builder_actions_count_once_and_leave_the_category_list_alone(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    data = form("x", "and", ("country", "eq", "France"), action="add:0")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, data, **HX)
    assert response.status_code == 200 and "2 customers" in words(response)
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert len(counts) == 1, counts  # profiled and matching customers in one query
    assert not [q["sql"] for q in queries if '"marketing_product"' in q["sql"]]
    assert 'id="rule-categories"' not in response.content.decode()  # it stays on the page
    page = client.get(url)
    body = text(page)
    builder = body[body.index('<section id="rule-builder"') : body.index("</section>")]
    assert '<datalist id="rule-categories">' in body
    assert '<datalist id="rule-categories">' not in builder  # outside the swapped partial
    assert '<option value="Home &gt; Kitchen">' in body


def test_count_without_profiles_says_when_it_fills(client, marketer):
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = client.post(
        reverse("marketing:segment-count", args=[catalog.pk]), form("x", "and"), **HX
    )
    assert "fills after the first profile refresh" in text(response)


def test_count_needs_post_and_a_builder_permission(client, catalog, approver, marketer):
    url = reverse("marketing:segment-count", args=[catalog.pk])
    client.force_login(marketer)
    assert client.get(url).status_code == 405
    client.force_login(approver)
    assert client.post(url, form(), **HX).status_code == 403


def test_htmx_posts_need_the_csrf_token_from_the_page(catalog, marketer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    page = client.get(reverse("marketing:segment-create", args=[catalog.pk]))
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page.content.decode())
    assert token, "base.html sends the CSRF token with every htmx request"
    url = reverse("marketing:segment-count", args=[catalog.pk])
    assert client.post(url, form(), **HX).status_code == 403
    assert client.post(url, form(), HTTP_X_CSRFTOKEN=token.group(1), **HX).status_code == 200


# --------------------------------------------------------------------------- structural edits


def test_add_condition_returns_the_builder_fragment(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    response = client.post(url, form("x", "and", ("country", "eq", "France"), action="add:0"), **HX)
    assert response.status_code == 200
    body = text(response)
    assert body.lstrip().startswith('<section id="rule-builder"')
    assert 'name="0.1.field"' in body and "Condition 2" in body
    assert 'value="France"' in body
    assert not Segment.objects.filter(kind=Segment.Kind.RULE).exists()


def test_add_group_and_remove(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    body = text(client.post(url, form("x", "and", ("country", "eq", "F"), action="group:0"), **HX))
    assert 'name="0.1.type" value="group"' in body and 'name="0.1.0.field"' in body
    body = text(
        client.post(url, form("x", "and", ("country", "eq", "F"), action="remove:0.0"), **HX)
    )
    assert 'name="0.0.field"' not in body
    assert "No conditions: everyone in the catalog" in body


def test_field_change_rerenders_with_the_fields_operators(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    data = form("x", "and", ("consent_email", "lte", "30"))
    data["0.0.prev"] = "recency_days"
    body = text(client.post(url, data, **HX))
    assert '<option value="is_true" selected>is given</option>' in body
    assert 'name="0.0.value"' not in body  # bools take no value


def test_structural_post_without_htmx_renders_the_whole_page(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    response = client.post(url, form("x", "and", ("country", "eq", "F"), action="add:0"))
    assert response.status_code == 200
    assert "<html" in response.content.decode() and "Condition 2" in text(response)


# --------------------------------------------------------------------------- save


def test_save_creates_the_segment_and_shows_it(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    data = form("French", "and", ("country", "eq", " france "), save="1")
    response = client.post(url, data)
    segment = Segment.objects.get(kind=Segment.Kind.RULE)
    assert response.status_code == 302 and response["Location"] == segment.get_absolute_url()
    assert segment.size == 2 and segment.name == "French"
    page = client.get(response["Location"])
    body = text(page)
    assert "saved: 2 customers" in body
    assert "country = &#x27;france&#x27;" in body  # the rule in words
    assert reverse("marketing:segment-update", args=[segment.pk]) in body
    assert reverse("marketing:segment-delete", args=[segment.pk]) in body
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SEGMENT_CREATED).count() == 1


def test_invalid_save_shows_errors_and_keeps_nothing(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    data = form("", "and", ("country", "eq", "FR"), ("churn_probability", "gte", "70"), save="1")
    response = client.post(url, data)
    assert response.status_code == 200
    body = text(response)
    assert "The segment was not saved" in body
    assert "Give the segment a name." in body
    assert "Condition 2: churn probability is a share between 0 and 1" in body
    assert 'class="rule-condition invalid" id="rule-node-0-1"' in body
    assert 'value="70"' in body  # what was typed stays
    assert not Segment.objects.filter(kind=Segment.Kind.RULE).exists()


def test_duplicate_name_is_a_form_error(client, french, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[french.catalog_id])
    response = client.post(url, form("French", "and", ("frequency", "gte", "1"), save="1"))
    assert response.status_code == 200
    assert "already has a rule segment named “French”" in response.content.decode()
    assert Segment.objects.filter(kind=Segment.Kind.RULE).count() == 1


def test_empty_segment_page(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    response = client.post(url, form("Nobody", "and", ("country", "eq", "Japan"), save="1"))
    page = client.get(response["Location"])
    assert page.status_code == 200
    body = words(page)
    assert "saved: 0 customers" in body and "This segment has no members." in body
    assert "No members." in body  # no chart


def test_saving_without_profiles_says_it_fills_later(client, marketer):
    catalog = CatalogFactory()
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    response = client.post(
        url, form("Later", "and", ("frequency", "gte", "1"), save="1"), follow=True
    )
    body = text(response)
    assert "no profiles yet; it fills after the first profile refresh" in body
    assert "This catalog has no profiles yet, so the segment is empty." in body
    assert "This segment has no members." in body


# --------------------------------------------------------------------------- edit / delete


def test_edit_page_shows_the_stored_rule(client, french, marketer):
    client.force_login(marketer)
    response = client.get(reverse("marketing:segment-update", args=[french.pk]))
    assert response.status_code == 200
    body = text(response)
    assert 'value="French"' in body
    assert '<option value="country" selected>Country</option>' in body
    assert 'name="0.0.value" value="France"' in body
    assert "2 customers (66.7 % of 3 profiled)" in words(response)


def test_edit_saves_changes(client, french, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-update", args=[french.pk])
    response = client.post(url, form("Spanish", "and", ("country", "eq", "Spain"), save="1"))
    assert response.status_code == 302
    french.refresh_from_db()
    assert (french.name, french.size) == ("Spanish", 1)
    assert french.rule["rules"][0]["value"] == "Spain"


def test_delete_confirms_then_deletes(client, french, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-delete", args=[french.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Delete “French”?" in page.content.decode()
    response = client.post(url)
    assert response["Location"] == reverse("marketing:segment-list", args=[french.catalog_id])
    assert not Segment.objects.filter(pk=french.pk).exists()


@pytest.mark.parametrize("name", ["segment-update", "segment-delete"])
def test_approver_may_not_change_or_delete(client, french, approver, name):
    client.force_login(approver)
    url = reverse(f"marketing:{name}", args=[french.pk])
    assert client.get(url).status_code == 403
    data = form("Mine", "and", ("frequency", "gte", "1"), save="1")
    assert client.post(url, data).status_code == 403
    french.refresh_from_db()
    assert french.name == "French"
    assert not AuditEvent.objects.exclude(action=AuditEvent.Action.SEGMENT_CREATED).exists()


def test_approver_may_not_create(client, catalog, approver):
    client.force_login(approver)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, form("Mine", "and", save="1")).status_code == 403
    assert not Segment.objects.filter(kind=Segment.Kind.RULE).exists()


def test_approver_sees_the_rule_but_no_edit_buttons(client, french, approver):
    client.force_login(approver)
    body = text(client.get(french.get_absolute_url()))
    assert "country = &#x27;France&#x27;" in body
    assert reverse("marketing:segment-update", args=[french.pk]) not in body


@pytest.mark.parametrize("name", ["segment-update", "segment-delete"])
def test_rfm_segments_cannot_be_edited_or_deleted(client, catalog, marketer, name):
    rfm = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RFM).first()
    client.force_login(marketer)
    assert client.get(reverse(f"marketing:{name}", args=[rfm.pk])).status_code == 404
    assert client.post(reverse(f"marketing:{name}", args=[rfm.pk])).status_code == 404


def test_missing_objects_are_404(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("marketing:segment-create", args=[999999])).status_code == 404
    assert client.get(reverse("marketing:segment-update", args=[999999])).status_code == 404
    assert client.post(reverse("marketing:segment-count", args=[999999])).status_code == 404


def test_every_builder_url_requires_login(client, french):
    urls = [
        reverse("marketing:segment-create", args=[french.catalog_id]),
        reverse("marketing:segment-count", args=[french.catalog_id]),
        reverse("marketing:segment-update", args=[french.pk]),
        reverse("marketing:segment-delete", args=[french.pk]),
    ]
    for url in urls:
        response = client.post(url, form("Mine", save="1"))
        assert response.status_code == 302 and reverse("login") in response["Location"], url
    french.refresh_from_db()
    assert french.name == "French"


def test_no_role_user_gets_403(client, french, no_role_user):
    client.force_login(no_role_user)
    assert (
        client.get(reverse("marketing:segment-create", args=[french.catalog_id])).status_code == 403
    )
    assert (
        client.post(reverse("marketing:segment-count", args=[french.catalog_id])).status_code == 403
    )


def test_names_and_values_are_escaped(client, catalog, marketer):
    client.force_login(marketer)
    url = reverse("marketing:segment-create", args=[catalog.pk])
    response = client.post(
        url,
        form("<b>x</b>", "and", ("country", "eq", '<img src=x onerror="alert(1)">'), save="1"),
        follow=True,
    )
    body = response.content.decode()
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body
    assert "<img src=x" not in body
