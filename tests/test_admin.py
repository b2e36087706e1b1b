"""Django admin: catalogs keep the catalog pages' rules; non-superusers cannot raise their rights.

Users: root (superuser); alice (admin role) made staff, as an operator would to let her manage
accounts in the admin; mary (marketer, no staff).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from marketing.models import Catalog, Event, Job, Product
from marketing.services import catalogs as catalog_services
from tests.factories import CatalogFactory, EventFactory, JobFactory, ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser("root", "root@example.test", "pw-root")


@pytest.fixture
def staff_admin(admin_user) -> User:
    admin_user.is_staff = True
    admin_user.save(update_fields=["is_staff"])
    return admin_user


@pytest.fixture
def spy(monkeypatch):
    """Records which catalog services the admin called."""
    calls: list[str] = []
    for name in ("catalog_create", "catalog_update", "catalog_delete"):
        real = getattr(catalog_services, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(catalog_services, name, wrapper)
    return calls


def _catalog_data(**overrides) -> dict:
    data = {
        "name": "Garden Shop",
        "currency": "eur",
        "default_language": "en",
        "timezone": "Europe/Berlin",
        "non_product_patterns": "^POST$\r\n\r\n^GIFT_",
    }
    data.update(overrides)
    return data


# --- catalogs: validation ----------------------------------------------------------------------


def test_admin_adds_a_catalog_through_the_service(client, root, spy):
    client.force_login(root)
    response = client.post(reverse("admin:marketing_catalog_add"), _catalog_data())
    catalog = Catalog.objects.get()
    assert response.status_code == 302
    assert spy == ["catalog_create"]
    assert (catalog.name, catalog.currency, catalog.timezone) == (
        "Garden Shop",
        "EUR",
        "Europe/Berlin",
    )
    assert catalog.non_product_patterns == ["^POST$", "^GIFT_"]


def test_admin_add_form_offers_the_default_patterns_one_per_line(client, root):
    client.force_login(root)
    html = client.get(reverse("admin:marketing_catalog_add")).content.decode()
    assert "^BANK CHARGES$\n" in html
    assert '["' not in html  # not the JSON list


@pytest.mark.parametrize(
    "field,value,error",
    [
        ("name", "GARDEN shop", "already exists"),
        ("currency", "<b>", "three-letter ISO 4217 code"),
        ("timezone", "Mars/Base", "Select a valid choice"),
        ("non_product_patterns", "^OK$\r\n[unclosed", "not a valid regular expression"),
        ("default_language", "English!", "language code"),
    ],
)
def test_admin_add_rejects_what_the_catalog_pages_reject(client, root, spy, field, value, error):
    CatalogFactory(name="Garden Shop", currency="GBP")
    client.force_login(root)
    response = client.post(
        reverse("admin:marketing_catalog_add"),
        _catalog_data(**{"name": "Other", field: value}),
    )
    assert response.status_code == 200
    assert error in str(response.context["adminform"].form.errors[field])
    assert list(Catalog.objects.values_list("name", flat=True)) == ["Garden Shop"]
    assert spy == []


def test_admin_change_shows_patterns_as_lines_and_saves_through_the_service(client, root, spy):
    catalog = CatalogFactory(name="Shop", non_product_patterns=["^A", "^B"])
    client.force_login(root)
    url = reverse("admin:marketing_catalog_change", args=[catalog.pk])
    assert "^A\n^B</textarea>" in client.get(url).content.decode()

    response = client.post(url, _catalog_data(name="shop", non_product_patterns="^FEE"))
    assert response.status_code == 302
    assert spy == ["catalog_update"]
    catalog.refresh_from_db()
    assert (catalog.name, catalog.currency, catalog.non_product_patterns) == (
        "shop",
        "EUR",
        ["^FEE"],
    )


def test_admin_change_rejects_a_case_only_duplicate_and_keeps_data(client, root):
    CatalogFactory(name="Taken")
    catalog = CatalogFactory(name="Mine", currency="GBP")
    client.force_login(root)
    url = reverse("admin:marketing_catalog_change", args=[catalog.pk])
    response = client.post(url, _catalog_data(name="tAKEN", currency="usd"))
    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors["name"])
    catalog.refresh_from_db()
    assert (catalog.name, catalog.currency) == ("Mine", "GBP")


# --- catalogs: delete --------------------------------------------------------------------------


@pytest.fixture
def stocked():
    catalog = CatalogFactory(name="Stocked")
    EventFactory.create_batch(3, product=ProductFactory(catalog=catalog))
    return catalog


def test_admin_deletes_a_catalog_through_the_service(client, root, stocked, spy):
    client.force_login(root)
    url = reverse("admin:marketing_catalog_delete", args=[stocked.pk])
    assert "3 events" in client.get(url).content.decode()
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert spy == ["catalog_delete"]
    assert not Catalog.objects.exists()
    assert not Event.objects.exists() and not Product.objects.exists()


def test_admin_refuses_to_delete_a_catalog_with_an_active_import(client, root, stocked, spy):
    job = JobFactory(catalog=stocked, status=Job.Status.RUNNING)
    client.force_login(root)
    url = reverse("admin:marketing_catalog_delete", args=[stocked.pk])
    page = client.get(url).content.decode()
    assert "Cannot delete" in page and f"{job} into “Stocked” is running" in page
    client.post(url, {"post": "yes"})
    assert spy == []
    assert Catalog.objects.filter(pk=stocked.pk).exists()
    assert Event.objects.filter(catalog=stocked).count() == 3


def test_admin_shows_the_service_refusal_when_an_import_starts_after_the_check(
    client, root, stocked, monkeypatch
):
    """get_deleted_objects saw no job; the service, holding the locks, sees one."""

    def busy(**kwargs):
        raise catalog_services.CatalogBusy(catalog_services.IMPORT_ACTIVE_MESSAGE)

    monkeypatch.setattr(catalog_services, "catalog_delete", busy)
    client.force_login(root)
    response = client.post(
        reverse("admin:marketing_catalog_delete", args=[stocked.pk]), {"post": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert catalog_services.IMPORT_ACTIVE_MESSAGE in response.content.decode()
    assert Catalog.objects.filter(pk=stocked.pk).exists()


def test_admin_bulk_delete_refuses_catalogs_with_active_imports(client, root, stocked):
    idle = CatalogFactory(name="Idle")
    JobFactory(catalog=stocked, status=Job.Status.QUEUED)
    client.force_login(root)
    response = client.post(
        reverse("admin:marketing_catalog_changelist"),
        {"action": "delete_selected", "_selected_action": [stocked.pk, idle.pk], "post": "yes"},
    )
    assert response.status_code == 200
    assert "Cannot delete" in response.content.decode()
    assert Catalog.objects.count() == 2
    assert Event.objects.filter(catalog=stocked).count() == 3


# --- users -------------------------------------------------------------------------------------


def _user_data(user: User, **overrides) -> dict:
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": user.email,
        "is_active": "on",
        "is_staff": "on" if user.is_staff else "",
        "groups": [g.pk for g in user.groups.all()],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2024-01-01",
        "date_joined_1": "00:00:00",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


def test_non_superuser_cannot_make_themselves_superuser(client, staff_admin):
    client.force_login(staff_admin)
    url = reverse("admin:auth_user_change", args=[staff_admin.pk])
    page = client.get(url)
    assert page.status_code == 200
    fields = page.context["adminform"].form.fields
    assert "is_superuser" not in fields and "user_permissions" not in fields

    perm = Permission.objects.get(codename="delete_user")
    response = client.post(
        url,
        _user_data(staff_admin, first_name="Alice", is_superuser="on", user_permissions=[perm.pk]),
    )
    assert response.status_code == 302
    staff_admin.refresh_from_db()
    assert staff_admin.first_name == "Alice"  # the rest of the form still saves
    assert not staff_admin.is_superuser
    assert not staff_admin.user_permissions.exists()


def test_non_superuser_cannot_change_or_delete_a_superuser(client, staff_admin, root):
    client.force_login(staff_admin)
    change = reverse("admin:auth_user_change", args=[root.pk])
    assert client.get(change).context["has_change_permission"] is False  # view only
    assert client.post(change, _user_data(root, email="evil@example.test")).status_code == 403
    password = reverse("admin:auth_user_password_change", args=[root.pk])
    assert client.post(password, {"password1": "x", "password2": "x"}).status_code == 403
    delete = reverse("admin:auth_user_delete", args=[root.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [root.pk], "post": "yes"},
    )
    assert bulk.status_code == 403
    root.refresh_from_db()
    assert root.email == "root@example.test" and root.check_password("pw-root")


def test_non_superuser_still_manages_ordinary_accounts(client, staff_admin, marketer):
    client.force_login(staff_admin)
    url = reverse("admin:auth_user_change", args=[marketer.pk])
    response = client.post(url, _user_data(marketer, last_name="Marketer"))
    assert response.status_code == 302
    marketer.refresh_from_db()
    assert marketer.last_name == "Marketer"


def test_superuser_keeps_full_control(client, root, staff_admin):
    client.force_login(root)
    url = reverse("admin:auth_user_change", args=[staff_admin.pk])
    response = client.post(url, _user_data(staff_admin, is_superuser="on"))
    assert response.status_code == 302
    staff_admin.refresh_from_db()
    assert staff_admin.is_superuser


@pytest.mark.parametrize("user_fixture", ["marketer", "admin_user"])
def test_admin_site_needs_staff(client, request, user_fixture):
    """Role users who are not staff (the default) do not get into the admin at all."""
    client.force_login(request.getfixturevalue(user_fixture))
    response = client.get(reverse("admin:marketing_catalog_changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("admin:auth_user_changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- segments: deleted through the app's service (audited), never here ---------------------


def test_admin_cannot_delete_segments_or_memberships(client, root, marketer):
    from marketing.models import AuditEvent, Segment, SegmentMembership
    from marketing.services.segments import segment_rule_create
    from tests.factories import CustomerFactory

    catalog = CatalogFactory(name="Segmented")
    segment = segment_rule_create(
        user=marketer, catalog=catalog, name="Everyone", rule={"op": "and", "rules": []}
    )
    membership = SegmentMembership.objects.create(segment=segment, customer=CustomerFactory())
    client.force_login(root)
    for model, obj in (("segment", segment), ("segmentmembership", membership)):
        delete = reverse(f"admin:marketing_{model}_delete", args=[obj.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
        changelist = client.get(reverse(f"admin:marketing_{model}_changelist"))
        assert "delete_selected" not in changelist.content.decode()
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert SegmentMembership.objects.filter(pk=membership.pk).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SEGMENT_DELETED).exists()
