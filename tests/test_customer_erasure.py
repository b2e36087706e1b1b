"""Customer erasure: the service, the confirmation page, the Django admin action, and what
later imports, exports, reports and logs show of the erased customer (nothing).

Users: alice (admin, may erase), mary (marketer) and avery (approver) may not.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.forms.models import model_to_dict
from django.urls import reverse

from marketing.models import (
    AuditEvent,
    Customer,
    Event,
    EventKind,
    Job,
    Profile,
    Segment,
    SegmentMembership,
    Upload,
)
from marketing.services import customers as customer_services
from marketing.services import profiles as profile_services
from marketing.services.customers import (
    Suppression,
    _report_reader,
    customer_erase,
    erasure_token,
)
from marketing.services.imports import import_start, upload_create
from marketing.services.imports import run as imports_run
from marketing.services.profiles import profile_refresh_run, profile_refresh_start
from recommendations.models import ModelRun, Recommendation
from tests.factories import CatalogFactory, CustomerFactory, EventFactory, ProductFactory
from tests.integration.import_support import lines, report_rows, run_inline, succeeded

pytestmark = pytest.mark.django_db

PII = ("anna-77", "anna.schmidt@example.test", "Anna Schmidt")


def at(day: int) -> dt.datetime:
    return dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=day)


def refresh(catalog, user) -> None:
    job = profile_refresh_start(catalog=catalog, user=user)
    profile_refresh_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.status, job.error)


@pytest.fixture
def shop(marketer):
    """Two catalogs; anna buys in both, ben and cleo in the first. Profiles and segments built."""
    first, second = CatalogFactory(name="Shop"), CatalogFactory(name="Outlet")
    anna = CustomerFactory(
        external_id="anna-77",
        email="anna.schmidt@example.test",
        name="Anna Schmidt",
        country="Germany",
        language="de",
        consent_email=True,
        consent_ads=True,
        attributes={"age": "41", "tier": "gold"},
    )
    ben = CustomerFactory(external_id="ben-12", email="ben@example.test", name="Ben Jones")
    cleo = CustomerFactory(external_id="cleo-5", email="cleo@example.test", country="France")
    for catalog in (first, second):
        mug = ProductFactory(catalog=catalog, sku="MUG", price=Decimal("10.00"))
        buyers = [(anna, 1), (anna, 9), (ben, 4)] if catalog is first else [(anna, 3)]
        buyers += [(cleo, 6)] if catalog is first else []
        for i, (who, day) in enumerate(buyers):
            EventFactory(
                catalog=catalog,
                product=mug,
                customer=who,
                kind=EventKind.PURCHASE,
                value=Decimal(10 + i),
                source=f"{who.external_id}-{i}",
                occurred_at=at(day),
            )
        refresh(catalog, marketer)
    return {"first": first, "second": second, "anna": anna, "ben": ben, "cleo": cleo}


def others(shop) -> dict:
    """Everything stored about the customers who are not erased."""
    ids = [shop["ben"].pk, shop["cleo"].pk]
    return {
        "customers": list(Customer.objects.filter(pk__in=ids).order_by("pk").values()),
        "events": list(Event.objects.filter(customer_id__in=ids).order_by("id").values()),
        "profiles": list(
            Profile.objects.filter(customer_id__in=ids).order_by("pk").values("pk", "monetary")
        ),
        "memberships": list(
            SegmentMembership.objects.filter(customer_id__in=ids)
            .order_by("pk")
            .values_list("segment_id", "customer_id")
        ),
    }


def assert_no_pii(text: str) -> None:
    for value in PII:
        assert value.lower() not in text.lower(), value


# --- the service ----------------------------------------------------------------------------


def test_erase_removes_behaviour_blanks_personal_data_and_keeps_others(shop, admin_user):
    anna = shop["anna"]
    segments_before = {s.pk: s.size for s in Segment.objects.all()}
    anna_segments = set(
        SegmentMembership.objects.filter(customer=anna).values_list("segment_id", flat=True)
    )
    assert anna_segments and Profile.objects.filter(customer=anna).count() == 2
    untouched = others(shop)

    result = customer_erase(user=admin_user, customer=anna)

    assert (result.events, result.profiles, result.segments) == (3, 2, len(anna_segments))
    assert result.memberships == len(anna_segments)
    assert not Event.objects.filter(customer_id=anna.pk).exists()
    assert not Profile.objects.filter(customer=anna).exists()
    assert not SegmentMembership.objects.filter(customer=anna).exists()
    anna.refresh_from_db()
    assert anna.erased_at is not None
    assert anna.external_id == erasure_token("anna-77")
    assert anna.external_id.startswith("erased-") and "anna" not in anna.external_id
    assert (anna.email, anna.name, anna.country, anna.language, anna.attributes) == (
        "",
        "",
        "",
        "",
        {},
    )
    assert not any([anna.consent_email, anna.consent_sms, anna.consent_push, anna.consent_ads])
    for segment in Segment.objects.all():
        expected = segments_before[segment.pk] - (segment.pk in anna_segments)
        assert segment.size == expected == segment.memberships.count()
    assert others(shop) == untouched


def test_audit_entry_has_counts_and_no_personal_data(shop, admin_user):
    customer_erase(user=admin_user, customer=shop["anna"])

    entry = AuditEvent.objects.get(action=AuditEvent.Action.CUSTOMER_ERASED)
    assert (entry.actor, entry.actor_username) == (admin_user, "alice")
    assert (entry.object_type, entry.object_id) == ("marketing.customer", str(shop["anna"].pk))
    assert entry.details["events"] == 3 and entry.details["profiles"] == 2
    assert_no_pii(json.dumps(model_to_dict(entry), default=str) + str(entry))


def test_erasing_twice_is_a_no_op(shop, admin_user):
    customer_erase(user=admin_user, customer=shop["anna"])
    anna = Customer.objects.get(pk=shop["anna"].pk)
    before = model_to_dict(anna)

    result = customer_erase(user=admin_user, customer=anna)

    assert result.already_erased
    assert "already erased" in result.message
    assert model_to_dict(Customer.objects.get(pk=anna.pk)) == before
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CUSTOMER_ERASED).count() == 1


@pytest.mark.parametrize("user_fixture", ["marketer", "approver", "no_role_user"])
def test_service_requires_the_erasure_permission(shop, request, user_fixture):
    untouched = model_to_dict(shop["anna"])
    with pytest.raises(PermissionDenied):
        customer_erase(user=request.getfixturevalue(user_fixture), customer=shop["anna"])
    assert model_to_dict(Customer.objects.get(pk=shop["anna"].pk)) == untouched
    assert Event.objects.filter(customer_id=shop["anna"].pk).count() == 3
    assert not AuditEvent.objects.exists()


def test_refuses_while_an_import_is_queued(shop, admin_user):
    Job.objects.create(kind=Job.Kind.IMPORT, status=Job.Status.QUEUED, catalog=shop["first"])
    with pytest.raises(customer_services.CustomerErasureBusy):
        customer_erase(user=admin_user, customer=shop["anna"])
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None
    assert Event.objects.filter(customer_id=shop["anna"].pk).count() == 3


def raw_connection() -> psycopg.Connection:
    """A second database session, outside the test's transaction (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
    )


def test_refuses_at_once_while_an_import_is_writing(shop, admin_user):
    """An import holds the shared erasure lock for its whole transaction: no waiting."""
    importer = raw_connection()
    try:
        with importer.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock_shared(%s, 0)",
                [customer_services.ERASURE_LOCK_CLASS],
            )
        with pytest.raises(customer_services.CustomerErasureBusy):
            customer_erase(user=admin_user, customer=shop["anna"])
    finally:
        importer.close()
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None


def test_imports_take_the_erasure_lock_shared(shop):
    imports_run.lock_catalog(shop["first"])  # what an import does first, in its transaction
    other = raw_connection()
    try:
        with other.cursor() as cur:
            lock = customer_services.ERASURE_LOCK_CLASS
            cur.execute("SELECT pg_try_advisory_xact_lock(%s, 0)", [lock])
            assert cur.fetchone() == (False,)  # an erasure cannot start
            cur.execute("SELECT pg_try_advisory_xact_lock_shared(%s, 0)", [lock])
            assert cur.fetchone() == (True,)  # another import can
    finally:
        other.close()


def test_logs_name_no_personal_data(shop, admin_user, client, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(admin_user)
    url = reverse("marketing:customer-erase", args=[shop["anna"].pk])
    client.get(url)
    client.post(url, {"confirmation": "anna-77"})
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is not None
    assert any("erased" in r.getMessage() for r in caplog.records)
    assert_no_pii(caplog.text)


def test_admin_history_of_profiles_and_memberships_no_longer_names_the_customer(shop, admin_user):
    anna, ben = shop["anna"], shop["ben"]
    profile = Profile.objects.filter(customer=anna).first()
    membership = SegmentMembership.objects.filter(customer=anna).first()
    assert "anna" not in str(profile) and "anna" not in str(membership)  # pks only now
    types = {m: ContentType.objects.get_for_model(m) for m in (Profile, SegmentMembership)}

    def entry(model, object_id, text):
        return LogEntry.objects.create(
            user=admin_user,
            content_type=types[model],
            object_id=str(object_id),
            object_repr=text,
            action_flag=CHANGE,
        )

    entries = [
        entry(Profile, profile.pk, "anna-77 in Shop"),  # the text __str__ gave before
        entry(Profile, 999_999, "anna-77 in Outlet"),  # a profile a refresh since replaced
        entry(SegmentMembership, membership.pk, "anna-77 in Champions (RFM)"),
    ]
    bens = entry(Profile, Profile.objects.filter(customer=ben).first().pk, "ben-12 in Shop")

    customer_erase(user=admin_user, customer=anna)

    for e in entries:
        e.refresh_from_db()
        assert "anna" not in e.object_repr and e.object_id in e.object_repr, e.object_repr
    assert LogEntry.objects.get(pk=bens.pk).object_repr == "ben-12 in Shop"


def test_admin_history_no_longer_names_the_customer(shop, admin_user):
    anna = shop["anna"]
    LogEntry.objects.create(
        user=admin_user,
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=str(anna.pk),
        object_repr=str(anna),
        action_flag=CHANGE,
    )
    customer_erase(user=admin_user, customer=anna)
    entry = LogEntry.objects.get()
    assert entry.object_repr == erasure_token("anna-77")


def test_a_refresh_that_read_events_before_the_erasure_writes_no_profile(
    shop, admin_user, marketer, monkeypatch
):
    """The refresh reads, the erasure commits, then the refresh writes: the erased customer
    gets no profile and no membership from the stale read."""
    real = profile_services._read_frames

    def read_then_erase(catalog):
        frames = real(catalog)
        customer_erase(user=admin_user, customer=Customer.objects.get(pk=shop["anna"].pk))
        return frames

    monkeypatch.setattr(profile_services, "_read_frames", read_then_erase)
    refresh(shop["first"], marketer)

    assert not Profile.objects.filter(customer_id=shop["anna"].pk).exists()
    assert not SegmentMembership.objects.filter(customer_id=shop["anna"].pk).exists()
    assert Profile.objects.filter(catalog=shop["first"]).count() == 2  # ben and cleo


# --- files: uploads, samples, reports, and later imports ------------------------------------

CUSTOMERS_FILE = lines(
    "customer_id,email,name,country",
    "anna-77,anna.schmidt@example.test,Anna Schmidt,Germany",
    "ben-12,ben@example.test,Ben Jones,United Kingdom",
)
PRODUCTS_FILE = lines("sku,title,price", "MUG,Mug,10", "PAN,Pan,20")
EVENTS_FILE = lines(
    "customer_id,sku,kind,quantity,value,occurred_at,source",
    "anna-77,MUG,purchase,1,10,2024-03-01 10:00:00,O1",
    "ben-12,PAN,purchase,1,20,2024-03-02 10:00:00,O2",
)


def test_upload_files_samples_and_reports_lose_the_customer(admin_user, marketer):
    catalog = CatalogFactory(name="Files")
    products = succeeded(run_inline(catalog, marketer, "products", PRODUCTS_FILE))
    early = succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "early.csv"))
    assert {r["value"] for r in report_rows(early.report_file.read())} == {"anna-77", "ben-12"}
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE))
    succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "late.csv"))
    pending = upload_create(
        catalog=catalog,
        kind="customers",
        file=SimpleUploadedFile("pending.csv", CUSTOMERS_FILE),
        user=marketer,
    )
    unrelated = upload_create(
        catalog=catalog,
        kind="customers",
        file=SimpleUploadedFile("other.csv", lines("customer_id,email", "anna-770,x@y.test")),
        user=marketer,
    )
    paths = {u.original_name: Path(u.file.path) for u in Upload.objects.all()}
    assert pending.detected["sample"] and unrelated.detected["sample"]
    anna = Customer.objects.get(external_id="anna-77")

    result = customer_erase(user=admin_user, customer=anna)  # files change before it commits

    assert (result.events, result.uploads_removed, result.reports_redacted) == (1, 4, 1)
    kept = {u.original_name: u for u in Upload.objects.all()}
    assert set(kept) == {
        "products.csv",
        "early.csv",
        "customers.csv",
        "late.csv",
        "pending.csv",  # never imported: the row stays too, marked, and must be uploaded again
        "other.csv",
    }
    for name in ("early.csv", "customers.csv", "late.csv", "pending.csv"):
        assert not kept[name].file  # the row stays, the file goes
        assert kept[name].detected["file_removed"] == "customer erasure"
    # "anna-770" is someone else: whole ids only.
    assert {name for name, path in paths.items() if path.exists()} == {"products.csv", "other.csv"}
    for upload in Upload.objects.exclude(pk=unrelated.pk):
        assert_no_pii(json.dumps(upload.detected))
    assert Upload.objects.get(pk=unrelated.pk).detected == unrelated.detected
    early.refresh_from_db()
    rows = report_rows(early.report_file.read())
    assert [r["value"] for r in rows] == ["[erased]", "ben-12"]
    assert [r["reason"] for r in rows] == ["unknown customer"] * 2
    products.refresh_from_db()
    assert products.report_file  # reports without the customer are left alone


def test_a_later_import_cannot_bring_the_customer_back(admin_user, marketer):
    catalog = CatalogFactory(name="Again")
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS_FILE))
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE))
    anna = Customer.objects.get(external_id="anna-77")
    customer_erase(user=admin_user, customer=anna)

    again = succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE, "again.csv"))
    events = succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "events2.csv"))
    token = succeeded(
        run_inline(
            catalog,
            marketer,
            "customers",
            lines("customer_id,email", f"{erasure_token('anna-77')},anna.schmidt@example.test"),
            "token.csv",
        )
    )

    assert not Customer.objects.filter(external_id="anna-77").exists()
    assert Customer.objects.get(pk=anna.pk).email == ""
    assert again.result["rejected"] == 1 and again.result["customers"]["unchanged"] == 1
    assert token.result["rejected"] == 1
    assert events.result["rejected"] == 1 and events.result["events"]["inserted"] == 1
    assert not Event.objects.filter(customer_id=anna.pk).exists()
    for job in (again, events, token):
        rows = report_rows(job.report_file.read())
        assert [r["reason"] for r in rows] == ["customer was erased"]
        assert_no_pii(json.dumps(rows))


EVENTS_HEADER = "customer_id,sku,kind,quantity,value,occurred_at,source"


def test_short_numeric_ids_leave_unrelated_uploads_and_reports_alone(admin_user, marketer):
    """UCI-style ids ("12346", "1") also occur as SKUs, quantities, prices and order numbers:
    only the customer-id and email columns count."""
    shop, other = CatalogFactory(name="Shop"), CatalogFactory(name="Other")
    succeeded(
        run_inline(
            shop, marketer, "products", lines("sku,title,price", "12346,Widget,1", "1,Tiny,12346")
        )
    )
    succeeded(
        run_inline(
            shop,
            marketer,
            "customers",
            lines(
                "customer_id,email",
                "12346,u12346@example.test",
                "1,one@example.test",
                "777,s@x.test",
            ),
        )
    )
    succeeded(
        run_inline(
            shop,
            marketer,
            "events",
            lines(
                EVENTS_HEADER,
                "12346,12346,purchase,1,12346,2024-03-01 10:00:00,O1",
                "1,1,purchase,1,1,2024-03-01 11:00:00,O2",
            ),
            "mine.csv",
        )
    )
    theirs = lines(
        EVENTS_HEADER,
        "777,12346,purchase,1,12346,2024-03-02 10:00:00,12346",
        "777,1,purchase,12346,1,2024-03-02 11:00:00,1",
    )
    succeeded(run_inline(shop, marketer, "events", theirs, "theirs.csv"))
    succeeded(
        run_inline(other, marketer, "products", lines("sku,title,price", "A,Apple,1"), "apples.csv")
    )
    reported = succeeded(
        run_inline(
            other,
            marketer,
            "events",
            lines(
                EVENTS_HEADER,
                "777,12346,purchase,1,1,2024-03-03 10:00:00,1",
                "777,A,view,1,,2024-03-03 11:00:00,S",
            ),
            "reported.csv",
        )
    )
    report_before = reported.report_file.read()
    assert [r["value"] for r in report_rows(report_before)] == ["12346"]  # an unknown SKU
    pending = upload_create(  # someone else's upload, never imported
        catalog=shop, kind="events", file=SimpleUploadedFile("pending.csv", theirs), user=admin_user
    )
    untouched = {
        u.original_name: (u.file.name, u.detected)
        for u in Upload.objects.exclude(original_name__in=["customers.csv", "mine.csv"])
    }

    result = customer_erase(user=admin_user, customer=Customer.objects.get(external_id="12346"))
    assert (result.uploads_removed, result.reports_redacted) == (2, 0)
    result = customer_erase(user=admin_user, customer=Customer.objects.get(external_id="1"))
    assert (result.uploads_removed, result.reports_redacted) == (0, 0)  # already blank

    for name in ("customers.csv", "mine.csv"):
        upload = Upload.objects.get(original_name=name)
        assert not upload.file and upload.detected["file_removed"] == "customer erasure"
    now = {u.original_name: (u.file.name, u.detected) for u in Upload.objects.exclude(file="")}
    assert now == untouched
    assert all(Path(u.file.path).exists() for u in Upload.objects.exclude(file=""))
    assert Upload.objects.filter(pk=pending.pk).exists()
    reported.refresh_from_db()
    assert reported.report_file.read() == report_before


def test_a_removed_upload_asks_for_the_file_again(client, admin_user, marketer):
    catalog = CatalogFactory(name="Again")
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE))
    pending = upload_create(
        catalog=catalog,
        kind="customers",
        file=SimpleUploadedFile("pending.csv", CUSTOMERS_FILE),
        user=marketer,
    )
    customer_erase(user=admin_user, customer=Customer.objects.get(external_id="anna-77"))
    pending.refresh_from_db()
    assert Upload.objects.filter(pk=pending.pk).exists() and not pending.file
    assert [row["customer_id"] for row in pending.detected["sample"]] == ["ben-12"]

    client.force_login(marketer)
    url = reverse("marketing:upload-mapping", args=[pending.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Upload the file again" in page.content.decode()
    jobs = Job.objects.count()
    response = client.post(url, {"external_id": "customer_id", "email": "email"})
    assert response.status_code == 200 and Job.objects.count() == jobs
    with pytest.raises(ValidationError, match="uploaded again|Upload the file again"):
        import_start(upload=pending, mapping={"external_id": "customer_id"}, user=marketer)


@pytest.mark.parametrize("failing", ["delete", "replace"])
def test_a_file_that_cannot_be_changed_aborts_the_erasure(
    admin_user, marketer, monkeypatch, failing
):
    """Files are removed (and reports replaced) before the erasure commits: a failure rolls
    the erasure back, so no row ever says a file is gone while it is still there."""
    catalog = CatalogFactory(name="Locked")
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS_FILE))
    early = succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "early.csv"))
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE))
    succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "late.csv"))
    anna = Customer.objects.get(external_id="anna-77")
    files = {u.pk: Path(u.file.path) for u in Upload.objects.all()}
    report_before = early.report_file.read()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    if failing == "delete":
        monkeypatch.setattr(FileSystemStorage, "delete", refuse)
    else:
        monkeypatch.setattr(customer_services.os, "replace", refuse)
    with pytest.raises(ValidationError, match="could not be removed or redacted"):
        customer_erase(user=admin_user, customer=anna)

    anna.refresh_from_db()
    assert anna.erased_at is None and anna.external_id == "anna-77"
    assert Event.objects.filter(customer_id=anna.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CUSTOMER_ERASED).exists()
    assert all(Upload.objects.get(pk=pk).file for pk in files)
    early.refresh_from_db()
    if failing == "replace":
        assert early.report_file.read() == report_before
    else:  # reports are replaced first: a redacted report is harmless on a rollback
        assert [r["value"] for r in report_rows(early.report_file.read())] == ["[erased]", "ben-12"]
    assert not list(Path(early.report_file.path).parent.glob(".erasing-*"))  # no stray copy
    monkeypatch.undo()

    result = customer_erase(user=admin_user, customer=anna)  # once the file can go, it goes
    redacted_before = failing == "delete"  # the first attempt's report change stayed
    assert (result.uploads_removed, result.reports_redacted) == (3, 0 if redacted_before else 1)
    assert sum(not path.exists() for path in files.values()) == 3


def test_a_report_with_a_cell_over_the_csv_limit_is_redacted_not_removed(admin_user, marketer):
    catalog = CatalogFactory(name="Huge")
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS_FILE))
    early = succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "early.csv"))
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE))
    huge = "x" * (csv.field_size_limit() + 10)
    with open(early.report_file.path, "a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerow(["early.csv", 9, "note", huge, "too long", "kept as text"])
    limit = csv.field_size_limit()

    result = customer_erase(user=admin_user, customer=Customer.objects.get(external_id="anna-77"))

    assert result.reports_redacted == 1
    early.refresh_from_db()
    assert early.report_file  # still there
    with _report_reader(Path(early.report_file.path)) as rows:
        values = [row[3] for row in list(rows)[1:]]
    assert values == ["[erased]", "ben-12", huge]
    assert csv.field_size_limit() == limit  # restored


def test_suppression_hashes_each_distinct_id_once_with_every_secret(settings, monkeypatch):
    settings.SECRET_KEY_FALLBACKS = ["an-older-secret"]
    tokens = [erasure_token("anna-77"), erasure_token("ben-12", secret="an-older-secret")]
    suppression = Suppression(tokens)
    digests = []
    real = Suppression._digest
    monkeypatch.setattr(
        Suppression,
        "_digest",
        staticmethod(lambda pads, v: digests.append(v.decode()) or real(pads, v)),
    )
    ids = ["anna-77", "ben-12", "cleo", None, tokens[0]] * 1000

    assert suppression.matches(ids).tolist() == [True, True, False, False, True] * 1000
    assert sorted(digests) == ["anna-77", "ben-12", "ben-12", "cleo", "cleo"]
    assert "ben-12" in suppression and "cleo" not in suppression
    assert len(digests) == 5  # remembered
    assert not Suppression([]).matches(ids).any()


# --- the confirmation page ------------------------------------------------------------------


def erase_url(customer) -> str:
    return reverse("marketing:customer-erase", args=[customer.pk])


def test_page_shows_what_goes_and_what_stays(client, admin_user, shop):
    client.force_login(admin_user)
    response = client.get(erase_url(shop["anna"]))
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview.events, preview.profiles) == (3, 2)
    text = response.content.decode()
    assert "What stays" in text and "audit entry" in text
    assert 'name="csrfmiddlewaretoken"' in text


def test_wrong_confirmation_erases_nothing(client, admin_user, shop):
    client.force_login(admin_user)
    response = client.post(erase_url(shop["anna"]), {"confirmation": "anna-7"})
    assert response.status_code == 200
    assert "nothing was erased" in response.content.decode()
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None
    assert Event.objects.filter(customer_id=shop["anna"].pk).count() == 3
    assert not AuditEvent.objects.exists()


def test_missing_confirmation_erases_nothing(client, admin_user, shop):
    client.force_login(admin_user)
    response = client.post(erase_url(shop["anna"]), {})
    assert response.status_code == 200
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None


def test_confirmed_post_erases_and_says_so_without_personal_data(client, admin_user, shop):
    client.force_login(admin_user)
    response = client.post(erase_url(shop["anna"]), {"confirmation": "anna-77"}, follow=True)
    assert response.redirect_chain[-1][0] == shop["anna"].get_absolute_url()
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is not None
    text = response.content.decode()
    assert "Erased customer" in text and "3 events" in text
    assert_no_pii(text)


def test_posting_again_is_a_no_op(client, admin_user, shop):
    client.force_login(admin_user)
    client.post(erase_url(shop["anna"]), {"confirmation": "anna-77"})
    response = client.post(erase_url(shop["anna"]), {"confirmation": "anna-77"}, follow=True)
    assert "already erased" in response.content.decode()
    assert AuditEvent.objects.count() == 1


@pytest.mark.parametrize("user_fixture", ["marketer", "approver"])
def test_others_get_403_on_get_and_post(client, request, shop, user_fixture):
    client.force_login(request.getfixturevalue(user_fixture))
    assert client.get(erase_url(shop["anna"])).status_code == 403
    assert client.post(erase_url(shop["anna"]), {"confirmation": "anna-77"}).status_code == 403
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None


def test_anonymous_is_sent_to_login(client, shop):
    response = client.post(erase_url(shop["anna"]), {"confirmation": "anna-77"})
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None


def test_missing_customer_is_404(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("marketing:customer-erase", args=[999999])).status_code == 404


def test_page_refuses_while_an_import_is_queued(client, admin_user, shop):
    Job.objects.create(kind=Job.Kind.IMPORT, status=Job.Status.QUEUED, catalog=shop["first"])
    client.force_login(admin_user)
    assert "cannot be erased" in client.get(erase_url(shop["anna"])).content.decode()
    response = client.post(erase_url(shop["anna"]), {"confirmation": "anna-77"})
    assert response.status_code == 200
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None


def test_erase_button_only_for_those_who_may_erase(client, admin_user, marketer, shop):
    url = shop["anna"].get_absolute_url()
    client.force_login(admin_user)
    assert erase_url(shop["anna"]) in client.get(url).content.decode()
    client.force_login(marketer)
    assert erase_url(shop["anna"]) not in client.get(url).content.decode()


# --- exports and pages afterwards -----------------------------------------------------------


def test_exports_and_pages_show_nothing_of_them_afterwards(client, admin_user, marketer, shop):
    customer_erase(user=admin_user, customer=shop["anna"])
    client.force_login(marketer)
    for segment in Segment.objects.all():
        response = client.get(reverse("marketing:segment-members-csv", args=[segment.pk]))
        body = b"".join(response.streaming_content).decode()
        ids = {row[0] for row in list(csv.reader(io.StringIO(body)))[1:]}
        assert shop["anna"].external_id not in ids
        assert not any(i.startswith("erased-") for i in ids)
        assert_no_pii(body)
    listing = client.get(reverse("marketing:customer-list")).content.decode()
    assert "ben-12" in listing and "erased-" not in listing
    assert_no_pii(listing)
    assert_no_pii(client.get(reverse("marketing:customer-list"), {"q": "anna"}).content.decode())
    detail = client.get(shop["anna"].get_absolute_url())
    assert detail.status_code == 200 and "Erased customer" in detail.content.decode()
    assert_no_pii(detail.content.decode())


# --- Django admin ---------------------------------------------------------------------------


@pytest.fixture
def staff_admin(admin_user):
    admin_user.is_staff = True
    admin_user.save(update_fields=["is_staff"])
    return admin_user


def test_admin_action_confirms_then_erases_through_the_service(client, staff_admin, shop):
    client.force_login(staff_admin)
    url = reverse("admin:marketing_customer_changelist")
    data = {"action": "erase_selected", "_selected_action": [shop["anna"].pk, shop["ben"].pk]}

    confirm = client.post(url, data)
    assert confirm.status_code == 200
    assert "Yes, erase them" in confirm.content.decode()
    assert not Customer.objects.filter(erased_at__isnull=False).exists()

    response = client.post(url, {**data, "post": "yes"})
    assert response.status_code == 302
    assert Customer.objects.filter(erased_at__isnull=False).count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CUSTOMER_ERASED).count() == 2
    assert Customer.objects.get(pk=shop["cleo"].pk).erased_at is None


def test_admin_action_scans_the_files_once_before_any_lock(
    client, staff_admin, marketer, monkeypatch
):
    catalog = CatalogFactory(name="Bulk")
    succeeded(run_inline(catalog, marketer, "products", PRODUCTS_FILE))
    succeeded(run_inline(catalog, marketer, "events", EVENTS_FILE, "early.csv"))  # a report
    succeeded(
        run_inline(catalog, marketer, "products", lines("sku,title,price", "X,Y,-1"), "bad.csv")
    )
    succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS_FILE))
    people = list(Customer.objects.filter(external_id__in=["anna-77", "ben-12"]))
    scanned, copies = [], []
    real_hits, real_mkstemp = customer_services._upload_hits, customer_services.tempfile.mkstemp

    def spy_hits(upload, mapping, needles):
        if connection.vendor == "postgresql":  # no erasure holds its exclusive lock yet
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
                    " AND mode = 'ExclusiveLock' AND pid = pg_backend_pid()",
                    [customer_services.ERASURE_LOCK_CLASS],
                )
                assert cursor.fetchone() == (0,)
        scanned.append(upload.original_name)
        return real_hits(upload, mapping, needles)

    def spy_mkstemp(*args, **kwargs):
        copies.append(kwargs.get("dir"))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(customer_services, "_upload_hits", spy_hits)
    monkeypatch.setattr(customer_services.tempfile, "mkstemp", spy_mkstemp)
    client.force_login(staff_admin)
    url = reverse("admin:marketing_customer_changelist")
    data = {"action": "erase_selected", "_selected_action": [c.pk for c in people], "post": "yes"}
    response = client.post(url, data, follow=True)

    assert Customer.objects.filter(erased_at__isnull=False).count() == 2
    assert sorted(scanned) == ["bad.csv", "customers.csv", "early.csv", "products.csv"]  # once
    assert len(copies) == 2  # the events report, once per customer; never the products ones
    levels = [m.level_tag for m in response.context["messages"]]
    assert levels == ["success"]


def test_admin_action_warns_when_it_stops_early(client, staff_admin, shop):
    Job.objects.create(kind=Job.Kind.IMPORT, status=Job.Status.QUEUED, catalog=shop["first"])
    client.force_login(staff_admin)
    url = reverse("admin:marketing_customer_changelist")
    data = {"action": "erase_selected", "_selected_action": [shop["anna"].pk], "post": "yes"}
    response = client.post(url, data, follow=True)
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert [level for level, _ in messages] == ["error", "warning"]
    assert "Erased 0 customer(s); the others were not erased." in messages[1][1]
    assert Customer.objects.get(pk=shop["anna"].pk).erased_at is None


@pytest.mark.django_db(transaction=True)
def test_refuses_at_once_while_a_profile_refresh_holds_a_catalog(admin_user):
    """The erasure holds the exclusive lock imports queue behind: it must not wait."""
    catalog = CatalogFactory(name="Saving")
    anna = CustomerFactory(external_id="anna-77")
    refreshing = raw_connection()
    try:
        refreshing.execute("SELECT 1 FROM marketing_catalog WHERE id = %s FOR UPDATE", [catalog.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")  # so a waiting erasure fails the test
        started = time.monotonic()
        with pytest.raises(customer_services.CustomerErasureBusy, match="profiles are being saved"):
            customer_erase(user=admin_user, customer=anna)
        assert time.monotonic() - started < 2
    finally:
        refreshing.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert Customer.objects.get(pk=anna.pk).erased_at is None
    assert customer_erase(user=admin_user, customer=anna).events == 0  # free again: erased


def test_admin_offers_no_plain_delete(client, staff_admin, shop):
    client.force_login(staff_admin)
    changelist = client.get(reverse("admin:marketing_customer_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    assert "erase_selected" in changelist.content.decode()
    delete = reverse("admin:marketing_customer_delete", args=[shop["anna"].pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Customer.objects.filter(pk=shop["anna"].pk).exists()


def test_admin_cannot_type_data_back_into_an_erased_customer(client, staff_admin, shop):
    customer_erase(user=staff_admin, customer=shop["anna"])
    client.force_login(staff_admin)
    url = reverse("admin:marketing_customer_change", args=[shop["anna"].pk])
    client.post(url, {"external_id": "anna-77", "email": "anna.schmidt@example.test"})
    assert Customer.objects.get(pk=shop["anna"].pk).email == ""


def test_audit_trail_is_read_only_in_the_admin(client, staff_admin, shop):
    customer_erase(user=staff_admin, customer=shop["anna"])
    entry = AuditEvent.objects.get()
    client.force_login(staff_admin)
    listing = client.get(reverse("admin:marketing_auditevent_changelist"))
    assert listing.status_code == 200 and "Customer erased" in listing.content.decode()
    assert client.get(reverse("admin:marketing_auditevent_add")).status_code == 403
    assert (
        client.post(reverse("admin:marketing_auditevent_delete", args=[entry.pk]), {"post": "yes"})
    ).status_code == 403
    assert AuditEvent.objects.filter(pk=entry.pk).exists()


def test_erasure_removes_their_recommendations_and_keeps_others(shop, admin_user):
    catalog, anna, ben = shop["first"], shop["anna"], shop["ben"]
    mug = catalog.products.get(sku="MUG")
    run = ModelRun.objects.create(catalog=catalog)
    for who in (anna, ben):
        Recommendation.objects.create(
            run=run,
            catalog=catalog,
            customer=who,
            product=mug,
            rank=1,
            score=1.0,
            reason_kind="popular",
            reason_text="A best seller",
        )
    result = customer_erase(user=admin_user, customer=anna)
    assert result.recommendations == 1
    assert not Recommendation.objects.filter(customer=anna).exists()
    assert Recommendation.objects.filter(customer=ben).count() == 1
    entry = AuditEvent.objects.get(action=AuditEvent.Action.CUSTOMER_ERASED)
    assert entry.details["recommendations"] == 1


def test_erasure_removes_their_copy_drafts_with_revisions_and_keeps_others(admin_user, approver):
    from copygen.models import Draft, DraftReview, DraftRevision
    from copygen.services.drafts import draft_approve
    from tests.copygen_factories import draft_make

    anna = CustomerFactory(name="Anna Example")
    ben = CustomerFactory(name="Ben Example")
    mine = draft_make(customer=anna)
    draft_approve(draft=mine, user=approver)  # approved copy goes too: it names her
    theirs = draft_make(brief=mine.brief, customer=ben)
    result = customer_erase(user=admin_user, customer=anna)
    assert result.drafts == 1
    assert "1 copy drafts removed" in result.message
    assert not Draft.objects.filter(customer=anna).exists()
    assert not DraftRevision.objects.filter(draft_id=mine.pk).exists()
    assert not DraftReview.objects.filter(draft_id=mine.pk).exists()
    assert Draft.objects.filter(pk=theirs.pk).exists()
    entry = AuditEvent.objects.get(action=AuditEvent.Action.CUSTOMER_ERASED)
    assert entry.details["drafts"] == 1
