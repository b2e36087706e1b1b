"""Fuzzing imports end to end: generated nasty files go through the upload page, the mapping
page and the import job (run inline), and the pages answer.

For every file: the upload page answers 200 (the file refused, with its message) or redirects
to the mapping page; an import ends succeeded, or failed with a message (never "Unexpected
error"); a failed import leaves products, customers and events exactly as they were; the job's
page, status fragment and report answer 200. The Django test client re-raises any exception
a view lets through, so a 500 fails the test with its traceback.
"""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketing.analytics.importing import FIELDS, auto_map
from marketing.models import Customer, Event, Job, Product, Upload
from marketing.services.imports import import_run
from tests.factories import CatalogFactory, CustomerFactory, ProductFactory
from tests.integration.import_support import lines
from tests.unit.test_fuzz_importing import (
    EXAMPLES,
    csv_files,
    forced_mapping,
    json_files,
    kind_files,
    mixed_encoding_files,
    note_outcome,
    workbooks,
)

pytestmark = pytest.mark.django_db

KINDS = ["products", "customers", "events", "reviews", "online_retail"]
UNEXPECTED = "Unexpected error"


@pytest.fixture
def shop(client, marketer):
    """A catalog with one product and one customer, so events can land; mary logged in."""
    catalog = CatalogFactory()
    ProductFactory(catalog=catalog, sku="A1", title="Mug")
    CustomerFactory(external_id="C1")
    client.force_login(marketer)
    return catalog


def _stored() -> dict[str, list]:
    """Products, customers and events as stored, every column (an update shows too)."""
    return {
        "products": list(Product.objects.order_by("pk").values()),
        "customers": list(Customer.objects.order_by("pk").values()),
        "events": list(Event.objects.order_by("pk").values()),
    }


def _assert_page(response, *, status: int = 200) -> str:
    assert response.status_code == status, response.status_code
    body = response.content.decode("utf-8", errors="replace")
    assert "Traceback" not in body and UNEXPECTED not in body
    return body


def import_through_the_web(client, catalog, content: bytes, name: str, kind: str, *, seed=None):
    """Upload, map (automatic, or every field forced onto some column), run the job inline.

    Returns the finished job, or None when the file or the mapping was refused on its page.
    """
    before = _stored()
    uploads = Upload.objects.count()
    response = client.post(
        reverse("marketing:upload-create", args=[catalog.pk]),
        {"kind": kind, "file": _file(content, name)},
    )
    if response.status_code == 200:  # refused: the page says why, nothing stored
        body = _assert_page(response)
        assert 'class="error" role="alert"' in body or "errorlist" in body  # an empty file
        assert Upload.objects.count() == uploads
        assert _stored() == before
        return None
    assert response.status_code == 302, response.status_code
    upload = Upload.objects.latest("pk")
    assert response["Location"] == reverse("marketing:upload-mapping", args=[upload.pk])
    _assert_page(client.get(response["Location"]))

    columns = upload.detected["columns"]
    mapping = auto_map(columns, kind) if seed is None else forced_mapping(kind, columns, seed)
    form = {spec.name: mapping.get(spec.name) or "" for spec in FIELDS[kind]}
    response = client.post(response["Location"], form)
    if response.status_code == 200:  # the mapping lacks a required field: said on the page
        body = _assert_page(response)
        assert 'class="error" role="alert"' in body or "errorlist" in body
        assert not Job.objects.filter(params__upload_id=upload.pk).exists()
        return None
    job = Job.objects.get(kind=Job.Kind.IMPORT, params__upload_id=upload.pk)
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()

    import_run(job_id=job.pk, worker="inline")
    job.refresh_from_db()
    assert job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED), job.status
    if job.status == Job.Status.FAILED:
        assert job.error and not job.error.startswith(UNEXPECTED), job.error
        assert "Traceback" not in job.error and "Traceback" not in job.message
        # The database refusing a value means the cleaner let it through (a gap to close).
        assert "the database could not store" not in job.error, job.error
        assert _stored() == before, "a failed import changed the data"
    else:
        result = job.result
        assert result["rows_read"] >= result["rejected"] >= 0
    _assert_page(client.get(reverse("marketing:job-detail", args=[job.pk])))
    _assert_page(client.get(reverse("marketing:job-status", args=[job.pk])))
    if job.report_file:
        report = client.get(reverse("marketing:job-report", args=[job.pk]))
        assert report.status_code == 200
        b"".join(report.streaming_content).decode("utf-8")  # the report is valid UTF-8
    return job


def _file(content: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


# ---------------------------------------------------------------------------- generated files

FILES = st.one_of(
    csv_files(),
    json_files(),
    mixed_encoding_files(),
    workbooks(),
    st.tuples(st.binary(min_size=1, max_size=300), st.sampled_from(["x.csv", "x.json", "x"])),
)


@settings(
    max_examples=EXAMPLES or 15,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data(), kind=st.sampled_from(KINDS), seed=st.one_of(st.none(), st.integers(0, 3)))
def test_generated_files_end_cleanly(client, shop, data, kind, seed):
    # Mostly files shaped like the kind (their imports run), else anything at all.
    file = data.draw(st.one_of(kind_files(kind), kind_files(kind), FILES))
    job = import_through_the_web(client, shop, file[0], file[1], kind, seed=seed)
    if job is None:
        note_outcome("refused on a page")
    else:
        note_outcome(f"import {job.status}: {job.error[:50]}")


# ---------------------------------------------------------------------------- chosen files


def test_a_lone_surrogate_in_json_rejects_its_row_and_the_report_downloads(client, shop):
    """json.loads turns "\\ud800" into a lone surrogate, which no database, page or CSV
    encoder takes (it was "Unexpected error (UnicodeEncodeError)"): the row is rejected
    naming the column, the rest imports."""
    good = [f'{{"sku": "G{i}", "title": "Good {i}"}}' for i in range(6)]  # the sampled rows
    bad = [
        '{"sku": "B2", "title": "Plate \\ud800"}',
        '{"sku": "C3", "title": "Bowl", "colour": "\\udc80red"}',
    ]
    content = ("[" + ", ".join([*good, *bad, '{"sku": "D4", "title": "Cup"}']) + "]").encode()
    job = import_through_the_web(client, shop, content, "products.json", "products")
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["rejected"] == 2
    skus = set(Product.objects.values_list("sku", flat=True))
    assert skus == {"A1", "D4", *(f"G{i}" for i in range(6))}
    report = client.get(reverse("marketing:job-report", args=[job.pk]))
    text = b"".join(report.streaming_content).decode("utf-8")
    assert "Plate \ufffd" in text and "\ufffdred" in text
    assert text.count("lone surrogate") == 2


def test_a_lone_surrogate_in_the_sampled_rows_shows_as_a_replacement_character(client, shop):
    """The upload stores a sample of the first rows (JSON in PostgreSQL, which refuses a
    lone surrogate: the upload page answered 500)."""
    response = client.post(
        reverse("marketing:upload-create", args=[shop.pk]),
        {"kind": "products", "file": _file(b'[{"sku": "B2", "title": "x\\ud800"}]', "p.json")},
    )
    assert response.status_code == 302
    upload = Upload.objects.get()
    assert upload.detected["sample"] == [{"sku": "B2", "title": "x\ufffd"}]
    assert "x\ufffd" in _assert_page(client.get(response["Location"]))


def test_a_lone_surrogate_in_a_json_field_name_is_refused_on_upload(client, shop):
    page = client.post(
        reverse("marketing:upload-create", args=[shop.pk]),
        {"kind": "products", "file": _file(b'[{"sku": "B2", "\\ud800": "x"}]', "p.json")},
    )
    assert "is not valid text" in _assert_page(page)
    assert not Upload.objects.exists()


def test_a_workbook_whose_sheet_xml_is_broken_is_refused_on_upload(client, shop):
    wb = openpyxl.Workbook()
    wb.active.append(["sku", "title"])
    wb.active.append(["B2", "Plate \uffff"])  # openpyxl writes it; no XML parser reads it
    buffer = io.BytesIO()
    wb.save(buffer)
    page = client.post(
        reverse("marketing:upload-create", args=[shop.pk]),
        {"kind": "products", "file": _file(buffer.getvalue(), "p.xlsx")},
    )
    assert "cannot read the workbook" in _assert_page(page)
    assert not Upload.objects.exists()


def test_a_quote_never_closed_after_many_rows_fails_and_writes_nothing(client, shop, settings):
    """The file breaks past what the upload page sniffed, after several chunks were already
    written inside the import's transaction: all of them roll back."""
    settings.IMPORT_CHUNK_ROWS = 50
    rows = [f"S{i:05d},Product {i}" for i in range(4000)]
    content = lines("sku,title", *rows, 'S99999,"never closed')
    assert len(content) > 64 * 1024  # beyond the sniffed head
    job = import_through_the_web(client, shop, content, "products.csv", "products")
    assert job.status == Job.Status.FAILED
    assert "never closed" in job.error
    assert list(Product.objects.values_list("sku", flat=True)) == ["A1"]


def test_dates_that_change_their_order_mid_file_fail_and_write_nothing(client, shop, settings):
    """01/02/2024 is read month first until 13/02/2024 (only day first) shows up in a later
    chunk: the earlier events cannot be taken back, so the import fails whole."""
    settings.IMPORT_CHUNK_ROWS = 2
    content = lines(
        "customer_id,sku,kind,occurred_at",
        "C1,A1,view,01/02/2024 10:00",
        "C1,A1,cart,01/03/2024 10:00",
        "C1,A1,purchase,13/02/2024 10:00",
    )
    before = Event.objects.count()
    job = import_through_the_web(client, shop, content, "events.csv", "events")
    assert job.status == Job.Status.FAILED
    assert "YYYY-MM-DD" in job.error
    assert Event.objects.count() == before


NASTY = {
    "utf16-bom-formula": (
        'sku,title\r\nB2,=HYPERLINK("http://evil.test")\r\n'.encode("utf-16"),
        "p.csv",
        "products",
    ),
    "utf16-no-bom-rtl": (
        "customer_id,email\nC2,\u200f\u202eevil@example.test\n".encode("utf-16-le"),
        "c.csv",
        "customers",
    ),
    "utf8-with-latin1-bytes": (b"sku,title\nB2,caf\xe9 \xc3\xa9\n", "p.csv", "products"),
    "one-megabyte-cell": (
        ("sku,title,note\nB2,Plate," + "x" * (1024 * 1024) + "\n").encode(),
        "p.csv",
        "products",
    ),
    "json-nul": (
        json.dumps([{"sku": "B2", "title": "Plate\u0000"}, {"sku": "C3", "title": "Cup"}]).encode(),
        "p.json",
        "products",
    ),
    "retail-overflowing-numbers": (
        b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        b"1,A1,Mug,1e308,2024-01-01,9e307,C1,UK\n1,A1,Mug,2,2024-01-01,2.5,C1,UK\n",
        "r.csv",
        "online_retail",
    ),
}


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("case", NASTY)
def test_chosen_nasty_files_end_cleanly(client, shop, case):
    content, name, kind = NASTY[case]
    import_through_the_web(client, shop, content, name, kind)
