"""Derived categories: when a catalog gets them, storing, re-deriving with renames kept,
idempotence, renaming (permission, validation, audit, refresh) and what profiles see."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import psycopg
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from marketing.analytics.categories import UNCATEGORISED
from marketing.models import (
    AuditEvent,
    DerivedCategory,
    Event,
    EventKind,
    Job,
    Product,
    Profile,
    Segment,
    effective_category,
)
from marketing.services.catalogs import IMPORT_LOCK_CLASS
from marketing.services.categories import (
    categories_derive,
    categories_derive_needed,
    category_rename,
)
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from marketing.services.segments import segment_rule_create
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db

COLOURS = ["RED", "BLUE", "GREEN", "PINK", "WHITE", "BLACK", "IVORY", "GREY"]
FAMILIES = {
    "mug": "CERAMIC COFFEE MUG",
    "candle": "SCENTED PILLAR CANDLE",
    "bag": "CANVAS TOTE BAG",
}
WRITES = ("INSERT", "UPDATE", "DELETE")


def add_products(catalog, family: str, colours: list[str], *, start: int = 0) -> list[Product]:
    return [
        ProductFactory(
            catalog=catalog,
            sku=f"{family.upper()}-{start + i}",
            title=f"{colour} {FAMILIES[family]}",
            category="",
        )
        for i, colour in enumerate(colours)
    ]


@pytest.fixture
def shop():
    """18 products in three families (6 each) without categories: three clear clusters."""
    catalog = CatalogFactory(name="Gift shop")
    products = {family: add_products(catalog, family, COLOURS[:6]) for family in FAMILIES}
    return catalog, products


def category_of(product: Product) -> DerivedCategory:
    product.refresh_from_db()
    return product.derived_category


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(WRITES)]


def test_derivation_stores_categories_and_assigns_every_product(shop):
    catalog, products = shop
    result = categories_derive(catalog=catalog)

    assert result.status == "derived"
    assert (result.categories, result.products, result.created) == (3, 18, 3)
    assert not Product.objects.filter(catalog=catalog, derived_category__isnull=True).exists()
    stored = DerivedCategory.objects.filter(catalog=catalog)
    assert stored.count() == 3
    for family, members in products.items():
        (category,) = {category_of(p) for p in members}
        assert category.size == 6
        assert category.name == category.auto_name
        assert category.renamed_at is None
        assert any(word.lower() in category.terms[:3] for word in FAMILIES[family].split())
        assert not any(colour.lower() in category.name.lower() for colour in COLOURS)


def test_same_catalog_same_names_deterministic(shop):
    catalog, _ = shop
    categories_derive(catalog=catalog)
    first = sorted(DerivedCategory.objects.values_list("name", flat=True))
    categories_derive(catalog=catalog, force=True)
    assert sorted(DerivedCategory.objects.values_list("name", flat=True)) == first


def test_catalog_with_own_categories_gets_none():
    catalog = CatalogFactory()
    ProductFactory.create_batch(10, catalog=catalog, category="Home > Kitchen")
    assert not categories_derive_needed(catalog=catalog)
    assert categories_derive(catalog=catalog).status == "not_needed"
    assert not DerivedCategory.objects.filter(catalog=catalog).exists()


def test_derived_categories_are_cleared_once_the_catalog_has_its_own(shop):
    catalog, products = shop
    categories_derive(catalog=catalog)
    Product.objects.filter(catalog=catalog).update(category="Gifts")

    assert categories_derive_needed(catalog=catalog)
    assert categories_derive(catalog=catalog).status == "cleared"
    assert not DerivedCategory.objects.filter(catalog=catalog).exists()
    assert not Product.objects.filter(derived_category__isnull=False).exists()


def test_a_tiny_share_of_own_categories_still_derives_for_the_rest(shop):
    catalog, products = shop
    # 1 of 21 products (< 5 %) has a category: it keeps it, the 20 others get derived ones.
    add_products(catalog, "mug", COLOURS[6:8], start=6)
    own = ProductFactory(catalog=catalog, sku="OWN", title="GARDEN HOSE", category="Garden")

    result = categories_derive(catalog=catalog)

    assert result.status == "derived"
    assert result.products == 20
    own.refresh_from_db()
    assert own.derived_category is None
    assert Product.objects.annotate(c=effective_category()).get(pk=own.pk).c == "Garden"


def test_products_without_shared_words_are_uncategorised(shop):
    catalog, _ = shop
    lonely = ProductFactory(catalog=catalog, sku="X", title="ZEPPELIN", category="")
    categories_derive(catalog=catalog)
    assert category_of(lonely).name == UNCATEGORISED
    assert category_of(lonely).terms == []


def test_too_few_products_derive_nothing_and_say_why():
    catalog = CatalogFactory()
    add_products(catalog, "mug", COLOURS[:2])
    result = categories_derive(catalog=catalog)
    assert result.status == "unavailable"
    assert "at least 4" in result.reason
    assert not DerivedCategory.objects.filter(catalog=catalog).exists()


def test_second_run_writes_nothing(shop):
    catalog, _ = shop
    categories_derive(catalog=catalog)
    assert not categories_derive_needed(catalog=catalog)

    with CaptureQueriesContext(connection) as queries:
        result = categories_derive(catalog=catalog)

    assert result.status == "unchanged"
    assert writes(queries.captured_queries) == []


def test_new_or_changed_products_trigger_a_rederivation(shop):
    catalog, products = shop
    categories_derive(catalog=catalog)
    product = products["bag"][0]
    product.title = "RED CANVAS TOTE BAG LARGE"
    product.save()
    assert categories_derive_needed(catalog=catalog)
    categories_derive(catalog=catalog)
    assert not categories_derive_needed(catalog=catalog)

    add_products(catalog, "candle", ["ORANGE"], start=6)
    assert categories_derive_needed(catalog=catalog)


def test_forced_rederivation_of_unchanged_products_keeps_every_row(shop):
    catalog, _ = shop
    categories_derive(catalog=catalog)
    before = dict(DerivedCategory.objects.values_list("pk", "name"))

    result = categories_derive(catalog=catalog, force=True)

    assert (result.created, result.deleted, result.products_changed) == (0, 0, 0)
    assert dict(DerivedCategory.objects.values_list("pk", "name")) == before


def test_rename_survives_rederivation_after_new_products_arrive(shop, admin_user):
    catalog, products = shop
    categories_derive(catalog=catalog)
    mugs = category_of(products["mug"][0])
    candles = category_of(products["candle"][0])
    category_rename(user=admin_user, category=mugs, name="Mugs")

    new_mugs = add_products(catalog, "mug", COLOURS[6:8], start=6)
    new_bags = add_products(catalog, "bag", COLOURS[6:8], start=6)
    assert categories_derive_needed(catalog=catalog)
    result = categories_derive(catalog=catalog)

    assert (result.status, result.mode) == ("derived", "incremental")  # 4 of 22 are new
    assert result.renamed_kept == 1
    assert (result.created, result.deleted, result.products_changed) == (0, 0, 4)
    renamed = category_of(new_mugs[0])
    assert renamed.pk == mugs.pk
    assert renamed.name == "Mugs"
    assert renamed.renamed_by == admin_user
    assert renamed.size == 8
    assert category_of(products["mug"][0]).pk == mugs.pk
    assert category_of(products["candle"][0]).pk == candles.pk  # unrenamed ones keep pk too
    assert category_of(new_bags[0]).size == 8
    assert not Product.objects.filter(catalog=catalog, derived_category__isnull=True).exists()


def test_rename_survives_a_full_rederivation_when_its_products_stay_together(shop, admin_user):
    catalog, products = shop
    categories_derive(catalog=catalog)
    mugs = category_of(products["mug"][0])
    category_rename(user=admin_user, category=mugs, name="Mugs")
    add_products(catalog, "mug", COLOURS[6:8], start=6)

    result = categories_derive(catalog=catalog, force=True)

    assert result.mode == "full"
    assert result.renamed_kept == 1
    renamed = category_of(products["mug"][0])
    assert (renamed.pk, renamed.name, renamed.size) == (mugs.pk, "Mugs", 8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_many_new_products_cluster_again(shop):
    catalog, products = shop
    categories_derive(catalog=catalog)
    for family in FAMILIES:  # 6 more per family (same titles): half the catalog is new
        add_products(catalog, family, COLOURS[:6], start=10)
    result = categories_derive(catalog=catalog)
    assert result.mode == "full"
    assert (result.categories, result.products, result.created, result.deleted) == (3, 36, 0, 0)


def test_a_new_product_without_shared_words_becomes_uncategorised(shop):
    catalog, _ = shop
    categories_derive(catalog=catalog)
    lonely = ProductFactory(catalog=catalog, sku="X", title="ZEPPELIN", category="")
    result = categories_derive(catalog=catalog)
    assert (result.mode, result.created) == ("incremental", 1)
    assert category_of(lonely).name == UNCATEGORISED
    assert not categories_derive_needed(catalog=catalog)


def test_a_renamed_name_wins_a_clash_with_a_new_cluster_name(shop, admin_user):
    catalog, products = shop
    categories_derive(catalog=catalog)
    mugs = category_of(products["mug"][0])
    candles = category_of(products["candle"][0])
    candle_name = candles.name
    # The mugs are renamed to the candles' automatic name, and the candles (not renamed)
    # would get that name again from the clustering: the rename wins, the candles get "(2)".
    category_rename(user=admin_user, category=candles, name="Candles")
    category_rename(user=admin_user, category=mugs, name=candle_name)
    DerivedCategory.objects.filter(pk=candles.pk).update(renamed_at=None, name="Candles")

    categories_derive(catalog=catalog, force=True)

    assert category_of(products["mug"][0]).name == candle_name
    assert category_of(products["candle"][0]).name == f"{candle_name} (2)"


def test_unmatched_old_categories_are_removed(shop):
    catalog, products = shop
    categories_derive(catalog=catalog)
    bags = category_of(products["bag"][0])
    Product.objects.filter(derived_category=bags).delete()

    result = categories_derive(catalog=catalog, force=True)

    assert not DerivedCategory.objects.filter(pk=bags.pk).exists()
    assert result.deleted == 1
    assert DerivedCategory.objects.filter(catalog=catalog).count() == result.categories


def test_derivation_skips_while_an_import_holds_the_catalog_lock(shop):
    if connection.vendor != "postgresql":
        pytest.skip("the import's catalog lock is a PostgreSQL advisory lock")
    catalog, _ = shop
    db = connection.settings_dict
    params = {"dbname": db["NAME"], "user": db["USER"], "host": db["HOST"], "port": db["PORT"]}
    with psycopg.connect(**params, password=db["PASSWORD"] or None, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [IMPORT_LOCK_CLASS, catalog.pk])
        assert categories_derive(catalog=catalog).status == "busy"
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [IMPORT_LOCK_CLASS, catalog.pk])
    assert categories_derive(catalog=catalog).status == "derived"


# Renaming ------------------------------------------------------------------------------------


@pytest.fixture
def mugs(shop):
    catalog, products = shop
    categories_derive(catalog=catalog)
    return category_of(products["mug"][0])


@pytest.mark.parametrize("role", ["marketer", "approver", "no_role_user"])
def test_only_admins_rename(request, mugs, role):
    user = request.getfixturevalue(role)
    with pytest.raises(PermissionDenied):
        category_rename(user=user, category=mugs, name="Mugs")
    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name
    assert not AuditEvent.objects.exists()


def test_rename_audits_and_queues_a_profile_refresh(mugs, admin_user):
    old = mugs.name
    renamed = category_rename(user=admin_user, category=mugs, name="  Coffee   mugs ")

    mugs.refresh_from_db()
    assert mugs.name == "Coffee mugs"
    assert mugs.renamed_by == admin_user and mugs.renamed_at is not None
    event = AuditEvent.objects.get()
    assert event.action == AuditEvent.Action.CATEGORY_RENAMED
    assert event.actor == admin_user
    assert (event.object_type, event.object_id) == ("marketing.derivedcategory", str(mugs.pk))
    assert event.details["old_name"] == old and event.details["new_name"] == "Coffee mugs"
    job = renamed.refresh_job
    assert job.kind == Job.Kind.PROFILE_REFRESH and job.catalog_id == mugs.catalog_id
    assert job.status == Job.Status.QUEUED


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("   ", "Enter a name"),
        ("x" * 301, "at most 300"),
        ("Home > Mugs", "separates"),
        ("Mugs\x00", "control"),
    ],
)
def test_rename_rejects_bad_names(mugs, admin_user, name, message):
    with pytest.raises(ValidationError, match=message):
        category_rename(user=admin_user, category=mugs, name=name)
    mugs.refresh_from_db()
    assert mugs.renamed_at is None
    assert not AuditEvent.objects.exists()


def test_rename_rejects_a_name_taken_in_the_catalog_regardless_of_case(shop, mugs, admin_user):
    catalog, products = shop
    candles = category_of(products["candle"][0])
    with pytest.raises(ValidationError, match="Another category"):
        category_rename(user=admin_user, category=mugs, name=candles.name.upper())
    # Another catalog's names do not count.
    other = CatalogFactory()
    DerivedCategory.objects.create(catalog=other, name="Mugs", auto_name="Mugs")
    category_rename(user=admin_user, category=mugs, name="Mugs")


def rule_segment(catalog, user, name: str, values) -> Segment:
    operator = "in" if isinstance(values, list) else "eq"
    rule = {"field": "bought_category", "operator": operator, "value": values}
    return segment_rule_create(user=user, catalog=catalog, name=name, rule=rule)


def test_rule_segments_follow_a_renamed_category(shop, mugs, admin_user):
    catalog, products = shop
    candles = category_of(products["candle"][0])
    old = mugs.name
    naming = rule_segment(catalog, admin_user, "Mug buyers", old.upper())
    below = rule_segment(catalog, admin_user, "Below", [f"{old} > Big", candles.name])
    contains = {"field": "bought_category", "operator": "contains", "value": old}
    other = segment_rule_create(user=admin_user, catalog=catalog, name="Other", rule=contains)
    AuditEvent.objects.all().delete()

    category_rename(user=admin_user, category=mugs, name="Coffee mugs")

    naming.refresh_from_db()
    below.refresh_from_db()
    other.refresh_from_db()
    assert naming.rule["rules"][0]["value"] == "Coffee mugs"
    assert below.rule["rules"][0]["value"] == ["Coffee mugs > Big", candles.name]
    assert other.rule["rules"][0]["value"] == old  # a substring test stays as typed
    changes = AuditEvent.objects.filter(action=AuditEvent.Action.SEGMENT_CHANGED)
    assert sorted(int(e.object_id) for e in changes) == sorted([naming.pk, below.pk])
    assert all(e.actor == admin_user for e in changes)
    assert changes.first().details["renamed_categories"] == {old: "Coffee mugs"}
    renamed = AuditEvent.objects.get(action=AuditEvent.Action.CATEGORY_RENAMED)
    assert sorted(renamed.details["rule_segments"]) == sorted([naming.pk, below.pk])


def test_rule_segments_follow_a_name_a_rederivation_changes(shop, mugs, admin_user):
    """A category a re-derivation keeps (same products) but names anew: rules follow it."""
    catalog, _ = shop
    DerivedCategory.objects.filter(pk=mugs.pk).update(name="Old mug name")  # an older run's
    segment = rule_segment(catalog, admin_user, "Mug buyers", "old mug name")
    AuditEvent.objects.all().delete()

    categories_derive(catalog=catalog, force=True)

    mugs.refresh_from_db()
    assert mugs.name == mugs.auto_name != "Old mug name"
    segment.refresh_from_db()
    assert segment.rule["rules"][0]["value"] == mugs.name
    change = AuditEvent.objects.get(action=AuditEvent.Action.SEGMENT_CHANGED)
    assert change.actor is None and change.object_id == str(segment.pk)


@pytest.mark.django_db(transaction=True)
def test_concurrent_renames_to_case_variants_cannot_both_commit(shop, admin_user):
    """Two renames to "Mugs" and "mugs" at once: the second waits for the first (the
    catalog's row lock), then its case-insensitive check sees the name taken."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite has one writer at a time)")
    catalog, products = shop
    categories_derive(catalog=catalog)
    mugs, candles = category_of(products["mug"][0]), category_of(products["candle"][0])
    db = connection.settings_dict
    first = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"],
        password=db["PASSWORD"] or None,
    )  # fmt: skip
    outcome: list = []

    def second_rename():
        try:
            category_rename(user=admin_user, category=mugs, name="mugs")
            outcome.append("renamed")
        except ValidationError as exc:
            outcome.append(exc.messages)
        finally:
            connections.close_all()

    try:
        # The first rename, as the service does it, not yet committed.
        first.execute(
            "SELECT 1 FROM marketing_catalog WHERE id = %s FOR NO KEY UPDATE", [catalog.pk]
        )
        first.execute(
            "UPDATE marketing_derivedcategory SET name = 'Mugs' WHERE id = %s", [candles.pk]
        )
        thread = threading.Thread(target=second_rename)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), f"the second rename did not wait: {outcome}"
        first.commit()
        thread.join(timeout=10)
    finally:
        first.close()
    assert outcome == [["Another category of this catalog is named “mugs”."]]
    names = [
        n.casefold()
        for n in DerivedCategory.objects.filter(catalog=catalog).values_list("name", flat=True)
    ]
    assert len(names) == len(set(names))


def test_renaming_back_to_the_automatic_name_undoes_the_rename(mugs, admin_user):
    auto = mugs.auto_name
    category_rename(user=admin_user, category=mugs, name="Mugs")
    category_rename(user=admin_user, category=mugs, name=auto)
    mugs.refresh_from_db()
    assert (mugs.name, mugs.renamed_at, mugs.renamed_by) == (auto, None, None)


# What profiles and queries see ---------------------------------------------------------------


def test_profile_refresh_derives_categories_and_profiles_use_them(shop, marketer):
    catalog, products = shop
    anna, ben = CustomerFactory(external_id="anna"), CustomerFactory(external_id="ben")
    start = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    for i, product in enumerate(products["mug"][:3]):
        EventFactory(
            catalog=catalog,
            product=product,
            customer=anna,
            kind=EventKind.PURCHASE,
            value=Decimal("10.00"),
            source=f"A{i}",
            occurred_at=start + dt.timedelta(days=i),
        )
    EventFactory(
        catalog=catalog,
        product=products["candle"][0],
        customer=ben,
        kind=EventKind.PURCHASE,
        value=Decimal("30.00"),
        source="B1",
        occurred_at=start,
    )

    job = profile_refresh_start(catalog=catalog, user=marketer)
    profile_refresh_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["categories"]["status"] == "derived"
    assert job.result["categories"]["categories"] == 3
    mug_name = category_of(products["mug"][0]).name
    candle_name = category_of(products["candle"][0]).name
    profiles = {p.customer.external_id: p for p in Profile.objects.filter(catalog=catalog)}
    assert profiles["anna"].top_category == mug_name
    assert profiles["anna"].top_categories[0]["name"] == mug_name
    assert profiles["ben"].top_category == candle_name

    # A second refresh has nothing to derive.
    again = profile_refresh_start(catalog=catalog, user=marketer)
    profile_refresh_run(job_id=again.pk, worker="inline")
    again.refresh_from_db()
    assert again.result["categories"] is None


def test_effective_category_prefers_the_own_category_then_the_derived_one(shop, mugs):
    catalog, products = shop
    own = ProductFactory(catalog=catalog, sku="OWN", category="Garden")
    bare = ProductFactory(catalog=CatalogFactory(), sku="BARE", category="")
    names = dict(Product.objects.annotate(c=effective_category()).values_list("pk", "c"))
    assert names[products["mug"][0].pk] == mugs.name
    assert names[own.pk] == "Garden"
    assert names[bare.pk] == ""

    # Through a relation, as rules on bought categories read it from events.
    customer = CustomerFactory()
    EventFactory(catalog=catalog, product=products["mug"][1], customer=customer)
    bought = Event.objects.filter(customer=customer).annotate(c=effective_category("product__"))
    assert list(bought.values_list("c", flat=True)) == [mugs.name]
