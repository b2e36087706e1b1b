"""The audit log page (/audit/) and its CSV, and the audit entries of imports and catalog
settings: filters, pagination, htmx partials, permissions, no personal data, safe CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from marketing.models import AuditEvent, Catalog, Job
from marketing.services.catalogs import catalog_create, catalog_delete, catalog_update
from marketing.services.customers import customer_erase
from tests.factories import CatalogFactory, CustomerFactory
from tests.integration.import_support import lines, run_inline, succeeded

pytestmark = pytest.mark.django_db

LOG_URL = reverse("marketing:audit-log")
CSV_URL = reverse("marketing:audit-log-csv")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def entry(
    action: str = AuditEvent.Action.SEGMENT_CREATED,
    *,
    user=None,
    username: str = "",
    object_type: str = "marketing.segment",
    object_id: str = "1",
    details: dict | None = None,
    at: dt.datetime | None = None,
) -> AuditEvent:
    event = AuditEvent.objects.create(
        actor=user,
        actor_username=username or (user.get_username() if user else ""),
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details or {},
    )
    if at is not None:  # created_at is auto_now_add: set the time afterwards
        AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
        event.refresh_from_db()
    return event


def row_ids(response) -> list[int]:
    return [row.event.pk for row in response.context["rows"]]


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [LOG_URL, CSV_URL])
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["marketer", "approver", "no_role_user"])
@pytest.mark.parametrize("url", [LOG_URL, CSV_URL])
def test_only_admins_may_read_the_trail(client, request, role, url, admin_user):
    entry(user=admin_user, details={"name": "Secret plans"})
    client.force_login(request.getfixturevalue(role))
    response = client.get(url)
    assert response.status_code == 403
    assert b"Secret plans" not in response.content


@pytest.mark.parametrize("url", [LOG_URL, CSV_URL])
def test_writes_are_refused(client, admin_user, url):
    client.force_login(admin_user)
    assert client.post(url).status_code == 405


def test_nav_links_the_log_for_admins_only(client, admin_user, marketer):
    jobs = reverse("marketing:job-list")
    client.force_login(marketer)
    assert LOG_URL not in client.get(jobs).content.decode()
    client.force_login(admin_user)
    assert f'href="{LOG_URL}"' in client.get(jobs).content.decode()


# --- the page --------------------------------------------------------------------------------


def test_lists_newest_first_with_who_action_object_and_details(client, admin_user, marketer):
    now = timezone.now()
    catalog = CatalogFactory(name="Shop")
    old = entry(
        AuditEvent.Action.CATALOG_CHANGED,
        user=admin_user,
        object_type="marketing.catalog",
        object_id=str(catalog.pk),
        details={"name": "Shop", "changes": {"timezone": {"from": "UTC", "to": "Europe/Berlin"}}},
        at=now - dt.timedelta(days=2),
    )
    new = entry(
        AuditEvent.Action.EXPORT_DOWNLOADED,
        user=marketer,
        object_type="copygen.export",
        object_id="999999",
        details={"brief_id": 4, "preset": "mailchimp", "rows": 120},
        at=now,
    )
    client.force_login(admin_user)
    response = client.get(LOG_URL)
    assert response.status_code == 200
    assert row_ids(response) == [new.pk, old.pk]
    text = response.content.decode()
    assert "Catalog settings changed" in text and "Export downloaded" in text
    assert f'href="{catalog.get_absolute_url()}">Catalog #{catalog.pk}</a>' in text
    assert "Export #999999 <span" in text and "(deleted)" in text  # no such export: no link
    assert "name: Shop · changes: timezone UTC → Europe/Berlin" in text
    assert "brief: 4 · preset: mailchimp · rows: 120" in text
    assert "mary" in text and "alice" in text


def test_filters_by_action_user_object_type_and_dates(client, admin_user, marketer):
    now = timezone.localtime()
    today = now.date()
    a = entry(AuditEvent.Action.DRAFT_APPROVED, user=admin_user, object_type="copygen.draft")
    b = entry(AuditEvent.Action.DRAFT_APPROVED, user=marketer, object_type="copygen.draft")
    c = entry(
        AuditEvent.Action.CUSTOMER_ERASED,
        user=admin_user,
        object_type="marketing.customer",
        at=now - dt.timedelta(days=10),
    )
    d = entry(
        AuditEvent.Action.CATALOG_CREATED,
        user=admin_user,
        object_type="marketing.catalog",
        at=now - dt.timedelta(days=3),
    )
    client.force_login(admin_user)

    def ids(**query) -> set[int]:
        response = client.get(LOG_URL, query)
        assert response.status_code == 200
        assert not response.context["form"].errors
        return set(row_ids(response))

    assert ids() == {a.pk, b.pk, c.pk, d.pk}
    assert ids(action="draft_approved") == {a.pk, b.pk}
    assert ids(user="mary") == {b.pk}
    assert ids(user="alice", action="draft_approved") == {a.pk}
    assert ids(object_type="marketing.customer") == {c.pk}
    # Both ends of the range count whole days.
    three_days_ago = (today - dt.timedelta(days=3)).isoformat()
    assert ids(date_from=three_days_ago) == {a.pk, b.pk, d.pk}
    assert ids(date_to=three_days_ago) == {c.pk, d.pk}
    assert ids(date_from=three_days_ago, date_to=three_days_ago) == {d.pk}
    assert ids(user="someone-deleted") == set()


def test_bad_filters_are_reported_and_ignored(client, admin_user):
    kept = entry(user=admin_user)
    client.force_login(admin_user)
    response = client.get(LOG_URL, {"action": "drop_table", "date_from": "31/02/2024"})
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"action", "date_from"}
    assert "This filter was ignored." in response.content.decode()
    assert row_ids(response) == [kept.pk]

    response = client.get(LOG_URL, {"date_from": "2024-05-02", "date_to": "2024-05-01"})
    assert "The end date is before the start date." in response.content.decode()


def test_htmx_filtering_returns_only_the_log_section(client, admin_user, marketer):
    entry(AuditEvent.Action.BRIEF_CREATED, user=admin_user, details={"name": "Spring sale"})
    entry(AuditEvent.Action.BRIEF_DELETED, user=marketer, details={"name": "Old brief"})
    client.force_login(admin_user)
    response = client.get(LOG_URL, {"user": "mary"}, headers={"HX-Request": "true"})
    text = response.content.decode()
    assert text.lstrip().startswith('<section id="audit-log"')
    assert "<html" not in text and "<form" not in text
    assert "Old brief" in text and "Spring sale" not in text
    # The CSV link follows the filters.
    assert f'href="{CSV_URL}?user=mary"' in text


def test_pages_of_fifty(client, admin_user):
    start = timezone.now() - dt.timedelta(hours=1)
    events = [
        entry(user=admin_user, object_id=str(i), at=start + dt.timedelta(seconds=i))
        for i in range(120)
    ]
    newest_first = [e.pk for e in reversed(events)]
    client.force_login(admin_user)

    first = client.get(LOG_URL)
    assert row_ids(first) == newest_first[:50]
    assert "Page 1 of 3" in first.content.decode()
    assert 'rel="next" href="?page=2"' in first.content.decode()
    assert row_ids(client.get(LOG_URL, {"page": 2})) == newest_first[50:100]
    third = client.get(LOG_URL, {"page": 3}, headers={"HX-Request": "true"})
    assert row_ids(third) == newest_first[100:]
    assert "Older" in third.content.decode() and 'rel="next"' not in third.content.decode()
    beyond = client.get(LOG_URL, {"page": 9})
    assert row_ids(beyond) == [] and "No entries on page 9" in beyond.content.decode()
    assert row_ids(client.get(LOG_URL, {"page": "x"})) == newest_first[:50]


def test_an_erasure_entry_shows_no_personal_data(client, admin_user):
    customer = CustomerFactory(
        external_id="pat-4711", email="pat.smith@example.test", name="Pat Smith", country="Spain"
    )
    customer_erase(user=admin_user, customer=customer)
    client.force_login(admin_user)

    page = client.get(LOG_URL).content.decode()
    exported = "\n".join(",".join(r) for r in csv_rows(client.get(CSV_URL)))

    assert "Customer erased" in page and f"Customer #{customer.pk}" in page
    assert f'href="{customer.get_absolute_url()}"' in page  # the anonymous row stays
    assert "customer_erased" in exported
    for text in (page, exported):
        for pii in ("pat-4711", "pat.smith@example.test", "Pat Smith", "Spain"):
            assert pii.lower() not in text.lower(), pii


# --- CSV -------------------------------------------------------------------------------------


def test_csv_holds_the_filtered_log_and_no_cell_can_run_as_a_formula(client, admin_user):
    entry(
        AuditEvent.Action.SEGMENT_CREATED,
        username='=HYPERLINK("http://evil.test")',
        object_id="-2+3",
        details={"name": "@SUM(A1:A9)"},
    )
    entry(AuditEvent.Action.BRIEF_CREATED, user=admin_user, details={"name": "Not this one"})
    client.force_login(admin_user)

    response = client.get(CSV_URL, {"action": "segment_created"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    header, *rows = csv_rows(response)
    assert header == [
        "time",
        "user",
        "action",
        "action_label",
        "object_type",
        "object_id",
        "summary",
        "details",
    ]
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["user"] == '\'=HYPERLINK("http://evil.test")'
    assert row["object_id"] == "'-2+3"
    assert row["summary"] == "name: @SUM(A1:A9)"
    assert all(not cell.startswith(FORMULA_START) for cell in rows[0])


# --- what gets recorded ----------------------------------------------------------------------


def test_catalog_create_change_and_delete_are_audited(admin_user):
    catalog = catalog_create(
        name="Outlet", currency="eur", default_language="en", timezone="UTC", user=admin_user
    )
    created = AuditEvent.objects.get(action=AuditEvent.Action.CATALOG_CREATED)
    assert (created.actor, created.object_type, created.object_id) == (
        admin_user,
        "marketing.catalog",
        str(catalog.pk),
    )
    assert created.details == {"name": "Outlet", "currency": "EUR", "timezone": "UTC"}

    patterns = list(catalog.non_product_patterns)
    catalog_update(
        catalog=catalog,
        name="Outlet",
        currency="EUR",
        default_language="de",
        timezone="Europe/Berlin",
        non_product_patterns=[*patterns[1:], r"^GIFT"],
        user=admin_user,
    )
    changed = AuditEvent.objects.get(action=AuditEvent.Action.CATALOG_CHANGED)
    assert changed.details == {
        "name": "Outlet",
        "changes": {
            "default_language": {"from": "en", "to": "de"},
            "timezone": {"from": "UTC", "to": "Europe/Berlin"},
            "non_product_patterns": {"added": [r"^GIFT"], "removed": [patterns[0]]},
        },
    }

    # Saving the form unchanged records nothing.
    catalog.refresh_from_db()
    catalog_update(
        catalog=catalog,
        name="Outlet",
        currency="EUR",
        default_language="de",
        timezone="Europe/Berlin",
        non_product_patterns=list(catalog.non_product_patterns),
        user=admin_user,
    )
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CATALOG_CHANGED).count() == 1

    pk = catalog.pk
    catalog_delete(catalog=catalog, user=admin_user)
    deleted = AuditEvent.objects.get(action=AuditEvent.Action.CATALOG_DELETED)
    assert deleted.object_id == str(pk)
    assert deleted.details == {"name": "Outlet", "products": 0, "events": 0, "uploads": 0}


def test_refused_catalog_changes_record_nothing(admin_user, marketer):
    catalog = CatalogFactory(name="Shop")
    with pytest.raises(PermissionDenied):
        catalog_update(
            catalog=catalog,
            name="Mine now",
            currency="EUR",
            default_language="en",
            timezone="UTC",
            non_product_patterns=[],
            user=marketer,
        )
    with pytest.raises(PermissionDenied):
        catalog_delete(catalog=catalog, user=marketer)
    assert not AuditEvent.objects.exists()
    assert Catalog.objects.get(pk=catalog.pk).name == "Shop"


CUSTOMERS = lines(
    "customer_id,email,name",
    "kim-1,kim@example.test,Kim Lee",
    "lou-2,lou@example.test,Lou Park",
    "kim-1,kim@example.test,Kim Lee",
)


def test_a_committed_import_is_audited_with_counts_and_no_personal_data(marketer):
    catalog = CatalogFactory(name="Imports")
    job = succeeded(run_inline(catalog, marketer, "customers", CUSTOMERS))

    event = AuditEvent.objects.get(action=AuditEvent.Action.DATA_IMPORTED)
    assert (event.actor, event.object_type, event.object_id) == (
        marketer,
        "marketing.job",
        str(job.pk),
    )
    assert event.details["catalog_id"] == catalog.pk
    assert event.details["kind"] == "customers"
    assert event.details["customers"]["inserted"] == 2
    assert event.details["rows_read"] == job.result["rows_read"]
    text = str(event.details)
    assert "kim" not in text and "Lou" not in text and "@" not in text


def test_a_failed_import_records_nothing(marketer):
    catalog = CatalogFactory(name="Broken")
    job = run_inline(catalog, marketer, "customers", lines("email", "kim@example.test"))
    assert job.status == Job.Status.FAILED
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DATA_IMPORTED).exists()
