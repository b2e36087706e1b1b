"""The upload page: a file over IMPORT_MAX_BYTES is refused while it arrives, never stored.

Roles: mary (marketer) imports; nora (no role) may not. The limit is made small per test
(the `settings` fixture), so a few hundred kilobytes stand in for a file over 200 MB.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.test import Client
from django.urls import reverse

from marketing.models import Upload
from marketing.uploads import MULTIPART_OVERHEAD, too_big_message
from marketing.views import imports as import_views
from tests.factories import CatalogFactory

pytestmark = pytest.mark.django_db

LIMIT = 50 * 1024  # "50.0 KB"
DEFAULT_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]


class CountingHandler(FileUploadHandler):
    """Stands for the handlers that store an upload: counts the file bytes they are given."""

    received = 0

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        type(self).received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        type(self).received += len(raw_data)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def csv_of(size: int) -> bytes:
    """A products CSV of exactly `size` bytes."""
    head = b"sku,title\n"
    row = b"S0000001,A product title long enough\n"
    body = head + row * ((size - len(head)) // len(row) + 1)
    return body[:size]


def post_file(client, catalog, content: bytes, name: str = "big.csv", kind: str = "products"):
    return client.post(
        reverse("marketing:upload-create", args=[catalog.pk]),
        {"kind": kind, "file": SimpleUploadedFile(name, content, content_type="text/csv")},
    )


def stored_files(settings) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


@pytest.fixture
def small_limit(settings):
    settings.IMPORT_MAX_BYTES = LIMIT
    settings.FILE_UPLOAD_HANDLERS = ["tests.test_views_imports.CountingHandler", *DEFAULT_HANDLERS]
    CountingHandler.received = 0
    return LIMIT


@pytest.fixture
def no_service(monkeypatch):
    """The upload service must not even be called for a refused file."""

    def fail(**kwargs):
        raise AssertionError("the upload service was called with a refused file")

    monkeypatch.setattr(import_views.import_services, "upload_create", fail)


# --- happy path --------------------------------------------------------------------------------


def test_upload_within_the_limit_is_stored_and_goes_to_mapping(
    client, marketer, small_limit, settings
):
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = post_file(client, catalog, csv_of(LIMIT), name="exact.csv")
    upload = Upload.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("marketing:upload-mapping", args=[upload.pk])
    assert (upload.original_name, upload.size, upload.catalog) == ("exact.csv", LIMIT, catalog)
    assert CountingHandler.received == LIMIT
    assert len(stored_files(settings)) == 1


def test_upload_page_renders(client, marketer):
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = client.get(reverse("marketing:upload-create", args=[catalog.pk]))
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.content.decode()


# --- over the limit ----------------------------------------------------------------------------


def test_file_far_over_the_limit_is_refused_before_any_byte_is_stored(
    client, marketer, small_limit, no_service, settings
):
    """Content-Length already tells: the storing handlers never see a byte."""
    catalog = CatalogFactory()
    client.force_login(marketer)
    content = csv_of(4 * LIMIT + MULTIPART_OVERHEAD)
    response = post_file(client, catalog, content, kind="events")

    assert response.status_code == 200
    body = response.content.decode()
    assert "big.csv: file is 0.3 MB, over the 50.0 KB limit" in body
    assert 'value="events" selected' in body  # the chosen kind is kept
    assert CountingHandler.received == 0
    assert not Upload.objects.exists()
    assert not stored_files(settings)


def test_file_just_over_the_limit_is_refused_as_it_arrives(
    client, marketer, small_limit, no_service, settings
):
    """Within the multipart slack only counting tells: it stops at the limit."""
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = post_file(client, catalog, csv_of(LIMIT + 1000), name="edge.csv")

    assert response.status_code == 200
    assert "edge.csv: file is over the 50.0 KB limit" in response.content.decode()
    assert CountingHandler.received <= LIMIT
    assert not Upload.objects.exists()
    assert not stored_files(settings)


def test_limit_also_holds_when_the_handler_is_installed_in_settings(
    client, marketer, small_limit, no_service, settings
):
    """With marketing.uploads.ImportSizeLimitHandler in FILE_UPLOAD_HANDLERS (anywhere), the
    view moves that one first instead of adding a second."""
    settings.FILE_UPLOAD_HANDLERS = [
        "tests.test_views_imports.CountingHandler",
        *DEFAULT_HANDLERS,
        "marketing.uploads.ImportSizeLimitHandler",
    ]
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = post_file(client, catalog, csv_of(LIMIT + 1000))
    assert "big.csv: file is over the 50.0 KB limit" in response.content.decode()
    assert CountingHandler.received <= LIMIT
    assert not Upload.objects.exists()


def test_message_names_size_and_limit_like_the_import_service():
    limit = 200 * 2**20
    assert too_big_message(name="orders.csv", limit=limit, size=int(250.4 * 2**20)) == (
        "orders.csv: file is 250.4 MB, over the 200.0 MB limit"
    )
    assert too_big_message(name="", limit=limit) == "file is over the 200.0 MB limit"


# --- who may upload ----------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_login_and_nothing_is_stored(client, small_limit, settings):
    catalog = CatalogFactory()
    response = post_file(client, catalog, csv_of(100))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert not Upload.objects.exists()
    assert CountingHandler.received == 0


def test_user_without_import_permission_gets_403_and_the_body_is_not_read(
    client, no_role_user, small_limit, settings
):
    catalog = CatalogFactory()
    client.force_login(no_role_user)
    response = post_file(client, catalog, csv_of(100))
    assert response.status_code == 403
    assert not Upload.objects.exists()
    assert CountingHandler.received == 0
    assert not stored_files(settings)


def test_upload_into_missing_catalog_is_404(client, marketer):
    client.force_login(marketer)
    response = client.post(reverse("marketing:upload-create", args=[999]), {"kind": "products"})
    assert response.status_code == 404


def test_csrf_is_still_checked(marketer, small_limit):
    """The view is csrf_exempt only so it can add the handler; the check runs inside."""
    catalog = CatalogFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    url = reverse("marketing:upload-create", args=[catalog.pk])
    forged = client.post(
        url, {"kind": "products", "file": SimpleUploadedFile("a.csv", csv_of(100))}
    )
    assert forged.status_code == 403
    assert not Upload.objects.exists()

    client.get(url)
    token = client.cookies["csrftoken"].value
    genuine = client.post(
        url,
        {
            "csrfmiddlewaretoken": token,
            "kind": "products",
            "file": SimpleUploadedFile("a.csv", csv_of(100)),
        },
    )
    assert genuine.status_code == 302
    assert Upload.objects.count() == 1


# --- bad input ---------------------------------------------------------------------------------


def test_empty_file_is_refused_by_the_form(client, marketer, settings):
    catalog = CatalogFactory()
    client.force_login(marketer)
    response = post_file(client, catalog, b"", name="empty.csv")
    assert response.status_code == 200
    assert "The submitted file is empty." in response.content.decode()
    assert not Upload.objects.exists()
    assert not stored_files(settings)
