"""Rule segment services: create / update / delete with permissions, validation, audit, and
materialisation (on save and by every profile refresh)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from marketing.models import (
    AuditEvent,
    DerivedCategory,
    EventKind,
    Job,
    Profile,
    Segment,
    SegmentMembership,
)
from marketing.selectors_segments import catalog_rule_categories, segment_rule_preview
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from marketing.services.segments import (
    segment_rule_create,
    segment_rule_delete,
    segment_rule_update,
    segments_refresh_rules,
)
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db

FRANCE = {"op": "and", "rules": [{"field": "country", "operator": "eq", "value": "france"}]}
BUYERS = {"field": "frequency", "operator": "gte", "value": "1"}


def at(day: int) -> dt.datetime:
    return dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=day)


def refresh(catalog, user) -> Job:
    job = profile_refresh_start(catalog=catalog, user=user)
    profile_refresh_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)
    return job


@pytest.fixture
def shop():
    """anna (France, 2 orders: 50), ben (France, 1 order: 100), cleo (Spain, views only)."""
    catalog = CatalogFactory(name="Shop")
    mug = ProductFactory(catalog=catalog, sku="MUG", price=Decimal("10.00"), category="Kitchen")
    people = {
        name: CustomerFactory(external_id=name, country=country)
        for name, country in (("anna", "France"), ("ben", "France"), ("cleo", "Spain"))
    }
    for name, day, value in (("anna", 1, 30), ("anna", 11, 20), ("ben", 20, 100)):
        EventFactory(
            catalog=catalog,
            product=mug,
            customer=people[name],
            kind=EventKind.PURCHASE,
            value=Decimal(value),
            source=f"{name}-{day}",
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
def profiled(shop, marketer):
    catalog, people = shop
    refresh(catalog, marketer)
    return catalog, people


def members(segment) -> set[str]:
    return set(segment.memberships.values_list("customer__external_id", flat=True))


# --------------------------------------------------------------------------- create


def test_create_fills_the_segment_and_audits(profiled, marketer):
    catalog, _ = profiled
    segment = segment_rule_create(
        user=marketer, catalog=catalog, name="  French buyers ", description="FR", rule=FRANCE
    )
    segment.refresh_from_db()
    assert (segment.kind, segment.name, segment.description) == ("rule", "French buyers", "FR")
    assert segment.rule == FRANCE
    assert segment.created_by == marketer
    assert members(segment) == {"anna", "ben"}
    assert segment.size == 2
    assert segment.revenue_share == pytest.approx(1.0)  # all revenue is French
    assert segment.refreshed_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEGMENT_CREATED)
    assert (event.actor, event.object_type, event.object_id) == (
        marketer,
        "marketing.segment",
        str(segment.pk),
    )
    assert event.details == {"name": "French buyers"}


def test_create_stores_the_normalised_rule(profiled, marketer):
    catalog, _ = profiled
    segment = segment_rule_create(user=marketer, catalog=catalog, name="Buyers", rule=BUYERS)
    assert segment.rule == {
        "op": "and",
        "rules": [{"field": "frequency", "operator": "gte", "value": 1}],
    }
    assert members(segment) == {"anna", "ben"}


def test_revenue_share_of_a_part(profiled, marketer):
    catalog, _ = profiled
    rule = {"field": "monetary", "operator": "gte", "value": 100}
    segment = segment_rule_create(user=marketer, catalog=catalog, name="Big", rule=rule)
    assert members(segment) == {"ben"}
    assert segment.revenue_share == pytest.approx(100 / 150)


def test_empty_segment(profiled, marketer):
    catalog, _ = profiled
    rule = {"field": "country", "operator": "eq", "value": "Japan"}
    segment = segment_rule_create(user=marketer, catalog=catalog, name="Nobody", rule=rule)
    assert segment.size == 0
    assert segment.revenue_share == 0
    assert not segment.memberships.exists()


def test_rule_without_conditions_holds_every_profile(profiled, marketer):
    catalog, _ = profiled
    segment = segment_rule_create(user=marketer, catalog=catalog, name="All", rule={})
    assert members(segment) == {"anna", "ben", "cleo"}


def test_catalog_without_profiles_saves_an_empty_segment(shop, marketer):
    catalog, _ = shop
    segment = segment_rule_create(user=marketer, catalog=catalog, name="Later", rule=FRANCE)
    assert segment.pk and segment.size == 0
    assert segment_rule_preview(catalog=catalog, rule=FRANCE).profiled == 0


@pytest.mark.parametrize("user_fixture", ["approver", "no_role_user"])
def test_create_requires_permission(profiled, request, user_fixture):
    catalog, _ = profiled
    user = request.getfixturevalue(user_fixture)
    with pytest.raises(PermissionDenied):
        segment_rule_create(user=user, catalog=catalog, name="X", rule=FRANCE)
    assert not Segment.objects.filter(kind=Segment.Kind.RULE).exists()
    assert not AuditEvent.objects.exists()


def test_invalid_rule_lists_every_problem_with_its_path(profiled, marketer):
    catalog, _ = profiled
    rule = {
        "op": "and",
        "rules": [
            {"field": "country", "operator": "eq", "value": "FR"},
            {"field": "churn_probability", "operator": "gte", "value": 70},
            {"op": "or", "rules": [{"field": "frequency", "operator": "bigger", "value": 1}]},
        ],
    }
    with pytest.raises(ValidationError) as caught:
        segment_rule_create(user=marketer, catalog=catalog, name="Bad", rule=rule)
    errors = caught.value.error_dict["rule"]
    assert [e.params["path"] for e in errors] == ["rules[1]", "rules[2].rules[0]"]
    assert "share between 0 and 1 (0.7 = 70 %)" in errors[0].messages[0]
    assert not Segment.objects.filter(kind=Segment.Kind.RULE).exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("name", "message"), [("", "Give the segment a name"), ("x" * 201, "200 characters")]
)
def test_name_is_required_and_bounded(profiled, marketer, name, message):
    catalog, _ = profiled
    with pytest.raises(ValidationError) as caught:
        segment_rule_create(user=marketer, catalog=catalog, name=name, rule=FRANCE)
    assert message in caught.value.message_dict["name"][0]


def test_duplicate_name_is_a_validation_error(profiled, marketer):
    catalog, _ = profiled
    segment_rule_create(user=marketer, catalog=catalog, name="French", rule=FRANCE)
    with pytest.raises(ValidationError) as caught:
        segment_rule_create(user=marketer, catalog=catalog, name=" French ", rule=BUYERS)
    assert "already has a rule segment named “French”" in caught.value.message_dict["name"][0]
    assert Segment.objects.filter(kind=Segment.Kind.RULE).count() == 1
    # Another catalog, or an RFM segment of the same name, does not clash.
    segment_rule_create(user=marketer, catalog=CatalogFactory(), name="French", rule=FRANCE)
    rfm_name = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RFM).first().name
    segment_rule_create(user=marketer, catalog=catalog, name=rfm_name, rule=FRANCE)


# --------------------------------------------------------------------------- update / delete


@pytest.fixture
def french(profiled, marketer):
    catalog, _ = profiled
    return segment_rule_create(user=marketer, catalog=catalog, name="French", rule=FRANCE)


def test_update_refills_and_audits(french, marketer):
    rule = {"field": "country", "operator": "eq", "value": "Spain"}
    segment = segment_rule_update(
        user=marketer, segment=french, name="Spanish", description="ES", rule=rule
    )
    segment.refresh_from_db()
    assert (segment.name, segment.description, segment.size) == ("Spanish", "ES", 1)
    assert members(segment) == {"cleo"}
    assert segment.revenue_share == 0
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEGMENT_CHANGED)
    assert event.details == {"name": "Spanish"} and event.object_id == str(segment.pk)


def test_update_keeps_its_own_name_but_not_anothers(french, marketer):
    catalog = french.catalog
    segment_rule_update(user=marketer, segment=french, name="French", rule=BUYERS)
    other = segment_rule_create(user=marketer, catalog=catalog, name="Other", rule=BUYERS)
    with pytest.raises(ValidationError) as caught:
        segment_rule_update(user=marketer, segment=other, name="French", rule=BUYERS)
    assert "name" in caught.value.message_dict
    other.refresh_from_db()
    assert other.name == "Other"


def test_invalid_update_changes_nothing(french, marketer):
    bad = {"field": "recency_days", "operator": "lt", "value": "soon"}
    with pytest.raises(ValidationError):
        segment_rule_update(user=marketer, segment=french, name="Renamed", rule=bad)
    french.refresh_from_db()
    assert (french.name, french.rule, members(french)) == ("French", FRANCE, {"anna", "ben"})


def test_update_and_delete_require_permission(french, approver):
    with pytest.raises(PermissionDenied):
        segment_rule_update(user=approver, segment=french, name="Mine", rule=BUYERS)
    with pytest.raises(PermissionDenied):
        segment_rule_delete(user=approver, segment=french)
    french.refresh_from_db()
    assert french.name == "French"


def test_delete_removes_members_and_audits(french, marketer):
    pk = french.pk
    segment_rule_delete(user=marketer, segment=french)
    assert not Segment.objects.filter(pk=pk).exists()
    assert not SegmentMembership.objects.filter(segment_id=pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEGMENT_DELETED)
    assert (event.object_id, event.details) == (str(pk), {"name": "French"})


@pytest.mark.django_db(transaction=True)
def test_delete_waits_for_the_catalog_lock_a_refresh_holds(french, marketer):
    """A refresh rewrites every rule segment under the catalog's row lock: a delete waits for
    it, so the refresh never inserts members of a segment deleted under its feet."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite has one writer at a time)")
    db = connection.settings_dict
    refresh_ = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"],
        password=db["PASSWORD"] or None,
    )  # fmt: skip
    try:
        refresh_.execute(
            "SELECT 1 FROM marketing_catalog WHERE id = %s FOR UPDATE", [french.catalog_id]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        with pytest.raises(OperationalError):
            segment_rule_delete(user=marketer, segment=french)
        assert Segment.objects.filter(pk=french.pk).exists()
    finally:
        refresh_.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    segment_rule_delete(user=marketer, segment=french)
    assert not Segment.objects.filter(pk=french.pk).exists()


def test_materialise_runs_the_rule_once_and_the_total_once_per_refresh(profiled, marketer):
    catalog, _ = profiled
    for name, rule in (("French", FRANCE), ("Buyers", BUYERS), ("French too", FRANCE)):
        segment_rule_create(user=marketer, catalog=catalog, name=name, rule=rule)
    with CaptureQueriesContext(connection) as queries:
        assert segments_refresh_rules(catalog=catalog) == 3
    sql = [q["sql"] for q in queries]
    rule_runs = [q for q in sql if 'LOWER(TRIM("marketing_customer"."country"))' in q]
    assert len(rule_runs) == 2  # the two French segments, each once (INSERT … SELECT)
    assert all(q.lstrip().startswith("INSERT") for q in rule_runs)
    totals = [q for q in sql if 'SUM("marketing_profile"."monetary")' in q]
    catalog_totals = [q for q in totals if "marketing_segmentmembership" not in q]
    assert len(catalog_totals) == 1  # the catalog's revenue, once for all three
    french = Segment.objects.get(catalog=catalog, name="French")
    assert (french.size, members(french)) == (2, {"anna", "ben"})
    assert french.revenue_share == pytest.approx(150 / 150)


def test_a_rule_that_matches_nobody_by_construction_saves_an_empty_segment(profiled, marketer):
    catalog, _ = profiled
    nobody = {"field": "recency_days", "operator": "in", "value": [4.5]}  # never an integer
    segment = segment_rule_create(user=marketer, catalog=catalog, name="Nobody", rule=nobody)
    assert (segment.size, segment.revenue_share) == (0, 0.0)


def test_rfm_segments_are_not_edited_or_deleted_here(profiled, marketer):
    catalog, _ = profiled
    rfm = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RFM).first()
    with pytest.raises(ValidationError):
        segment_rule_update(user=marketer, segment=rfm, name="X", rule=FRANCE)
    with pytest.raises(ValidationError):
        segment_rule_delete(user=marketer, segment=rfm)
    assert Segment.objects.filter(pk=rfm.pk).exists()


# --------------------------------------------------------------------------- refresh


def test_profile_refresh_refills_rule_segments(shop, marketer):
    catalog, people = shop
    segment = segment_rule_create(user=marketer, catalog=catalog, name="French", rule=FRANCE)
    assert segment.size == 0  # no profiles yet
    job = refresh(catalog, marketer)
    segment.refresh_from_db()
    assert job.result["segment_sets"]["rule"] == 1
    assert segment.size == 2 and members(segment) == {"anna", "ben"}
    # New behaviour moves people in and out at the next refresh.
    people["cleo"].country = "France"
    people["cleo"].save()
    refresh(catalog, marketer)
    segment.refresh_from_db()
    assert members(segment) == {"anna", "ben", "cleo"}
    assert SegmentMembership.objects.filter(segment=segment).count() == 3


def test_segments_refresh_rules_counts_and_refills(french, marketer):
    catalog = french.catalog
    Profile.objects.filter(catalog=catalog, customer__external_id="ben").delete()
    assert segments_refresh_rules(catalog=catalog) == 1
    french.refresh_from_db()
    assert members(french) == {"anna"} and french.size == 1


def test_an_invalid_stored_rule_empties_its_segment_but_not_the_refresh(french, marketer):
    bad = {"op": "and", "rules": [{"field": "shoe_size", "operator": "eq", "value": 42}]}
    Segment.objects.filter(pk=french.pk).update(rule=bad)
    job = refresh(french.catalog, marketer)
    french.refresh_from_db()
    assert job.result["segment_sets"]["rule"] == 1
    assert french.size == 0 and not french.memberships.exists()


def test_preview_counts_and_shares(profiled):
    catalog, _ = profiled
    preview = segment_rule_preview(catalog=catalog, rule=FRANCE)
    assert (preview.count, preview.profiled) == (2, 3)
    assert preview.percent == pytest.approx(200 / 3)


def test_category_suggestions_include_parents_and_derived_names(db):
    catalog = CatalogFactory()
    ProductFactory(catalog=catalog, category="Home > Kitchen > Knives")
    ProductFactory(catalog=catalog, category="Garden")
    ProductFactory(catalog=catalog, category="")
    derived = DerivedCategory.objects.create(catalog=catalog, name="Lamps", auto_name="lamps")
    ProductFactory(catalog=catalog, category="", derived_category=derived)
    assert catalog_rule_categories(catalog=catalog) == [
        "Garden",
        "Home",
        "Home > Kitchen",
        "Home > Kitchen > Knives",
        "Lamps",
    ]
