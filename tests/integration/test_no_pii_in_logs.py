"""No personal data in the logs: every record of a full import → profiles → segment → draft →
approve → export run, at DEBUG from every logger (the web views through the test client, a
real Celery worker on the broker), names no customer by email, name or phone.

Logs leave the application's control (collectors, tickets, support chats) and outlive an
erasure, so the contract is stricter than the formatters' e-mail mask: the raw record (message,
arguments, extras, exception) must not carry the data either, and neither may the lines the
text and JSON formats (LOG_FORMAT) write. The flow includes rows the importer rejects, a failed
login whose username is a customer's address, and Celery's own received/succeeded lines.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import secrets
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse

from copygen.models import Brief, Draft, Export
from marketing.analytics.importing import auto_map
from marketing.celery import app as celery_app
from marketing.logs import ContextFilter, JsonFormatter, TextFormatter
from marketing.models import Customer, Job, Segment, Upload
from tests.factories import CatalogFactory
from tests.integration.conftest import _require_real_services, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Person:
    external_id: str
    email: str
    name: str
    phone: str  # as imported
    phone_digits: str  # the digits a normaliser would keep (E.164 without "+")


PEOPLE = (
    Person(
        "ZQ-1",
        "zebulon.quistgaard@example.org",
        "Zebulon Quistgaard",
        "+44 20 7946 0321",
        "442079460321",
    ),
    Person(
        "PV-2",
        "philippa.vandermeulen@example.net",
        "Philippa Vandermeulen",
        "+49 30 90182077",
        "493090182077",
    ),
    Person(
        "OT-3",
        "octavian.thistlewood@example.com",
        "Octavian Thistlewood",
        "0033 1 44 55 66 77",
        "33144556677",
    ),
)
# A customer row the importer rejects (the address is not one): its data is in the file and
# in the rejection report, never in a log line.
REJECTED = Person(
    "IB-4",
    "ignatius.bramblecote@@example",
    "Ignatius Bramblecote",
    "+44 7700 900123",
    "447700900123",
)

PRODUCTS = """sku,title,category,brand,price,description
OAK-1,Oak Cutting Board,Home > Kitchen,Acme,34.00,A thick oak board with a juice groove. Oiled by hand.
MUG-2,Blue Stoneware Mug,Home > Kitchen,Acme,12.50,A sturdy stoneware mug that keeps tea warm.
KET-3,Copper Kettle,Home > Kitchen,Chef,59.00,A copper kettle for gas and induction hobs.
BAD-4,Broken Price,Home,Acme,-3.00,A product whose price is negative.
"""


def _customers_csv() -> str:
    rows = ["customer_id,email,name,phone,country,language,consent_email,consent_sms"]
    for p in (*PEOPLE, REJECTED):
        rows.append(f"{p.external_id},{p.email},{p.name},{p.phone},United Kingdom,en,yes,yes")
    return "\n".join(rows) + "\n"


def _events_csv() -> str:
    rows = ["customer_id,sku,kind,quantity,value,occurred_at,source"]
    for i, p in enumerate(PEOPLE):
        rows.append(f"{p.external_id},OAK-1,purchase,1,34.00,2024-03-0{i + 1} 10:00:00,O{i}")
        rows.append(f"{p.external_id},MUG-2,purchase,2,25.00,2024-04-0{i + 1} 10:00:00,P{i}")
        rows.append(f"{p.external_id},KET-3,view,,,2024-04-0{i + 1} 11:00:00,V{i}")
    rows.append(f"{REJECTED.external_id},OAK-1,purchase,1,34.00,2024-03-09 10:00:00,X1")  # unknown
    rows.append(f"{PEOPLE[0].external_id},GHOST-9,view,,,2024-03-09 10:00:00,X2")  # unknown SKU
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------- scanning


def needles(people: Iterable[Person]) -> dict[str, str]:
    """What must not appear (lower-cased) → whose and which datum it is."""
    found: dict[str, str] = {}
    for p in people:
        found[p.email.lower()] = f"{p.external_id} email"
        found[p.email.split("@")[0].lower()] = f"{p.external_id} email local part"
        for part in p.name.split():
            found[part.lower()] = f"{p.external_id} name"
        found[p.phone.lower()] = f"{p.external_id} phone"
        found[p.phone_digits] = f"{p.external_id} phone digits"
        found[re.sub(r"\D", "", p.phone)] = f"{p.external_id} phone digits as typed"
    return found


_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, __file__, 1, "", None, None))) | {
    "message",
    "asctime",
}


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Every piece of a record a handler could write: the rendered message, the template and its
    arguments, extras (Django's request, Celery's data), exception and stack text."""
    try:
        yield record.getMessage()
    except Exception:  # a bad template still must not carry data
        yield repr(record.msg)
    yield repr(record.msg)
    yield repr(record.args)
    for key, value in vars(record).items():
        if key in _STANDARD:
            continue
        if isinstance(value, HttpRequest):  # Django's request extra: the formats keep the path
            yield f"{key}={value.method} {value.path}"
        else:
            yield f"{key}={value!r}"
    if record.exc_info and record.exc_info[1] is not None:
        yield "".join(traceback.format_exception(*record.exc_info))
    for text in (record.exc_text, record.stack_info):
        if text:
            yield text


def leaks(texts: Iterable[str], forbidden: dict[str, str]) -> list[str]:
    """Each forbidden value found in the texts, with the text it was found in (shortened)."""
    found = []
    for text in texts:
        lowered = text.lower()
        for needle, what in forbidden.items():
            if needle in lowered:
                found.append(f"{what} ({needle!r}) in: {text[:400]!r}")
    return found


class CaptureAll(logging.Handler):
    """Keeps every record, and what the text and JSON formats make of it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.addFilter(ContextFilter())
        self._text = TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for formatter in (self._text, self._json):
            try:
                self.lines.append(formatter.format(record))
            except Exception as exc:  # a record a format cannot write is a finding too
                self.lines.append(f"FORMAT FAILED {type(exc).__name__}: {record.msg!r}")


@pytest.fixture
def capture() -> Iterator[CaptureAll]:
    """Every logger at DEBUG, propagating to a root handler, for the duration of the test."""
    handler = CaptureAll()
    root = logging.getLogger()
    saved_root = root.level
    saved: dict[str, tuple[int, bool, bool]] = {}

    def open_all() -> None:
        if handler not in root.handlers:  # the worker's django.setup() re-applies LOGGING
            root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                saved.setdefault(name, (logger.level, logger.propagate, logger.disabled))
                logger.setLevel(logging.NOTSET)
                logger.propagate = True
                logger.disabled = False

    open_all()
    handler.open_all = open_all  # type: ignore[attr-defined]  # again after the worker starts
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for name, (level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


@pytest.fixture
def debug_worker(transactional_db, capture) -> Iterator[object]:
    """A real worker thread (as the `celery_worker` fixture) started at DEBUG, so Celery's own
    received / succeeded lines (task arguments and results) are logged and captured."""
    _require_real_services()
    from celery.contrib.testing.worker import start_worker

    celery_app.control.purge()
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="DEBUG"
    ) as worker:
        capture.open_all()  # starting the worker configured logging again
        yield worker


# ----------------------------------------------------------------------------- the flow


def _login(username: str, password: str) -> Client:
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 302, response.content[:500]
    return client


def _import(client: Client, catalog, kind: str, content: str, name: str) -> Job:
    response = client.post(
        reverse("marketing:upload-create", args=[catalog.pk]),
        {"kind": kind, "file": SimpleUploadedFile(name, content.encode(), "text/csv")},
    )
    assert response.status_code == 302, response.content[:500]
    up = Upload.objects.get(original_name=name, catalog=catalog)
    assert client.get(response["Location"]).status_code == 200  # the mapping page
    mapping = {k: v or "" for k, v in auto_map(up.detected["columns"], kind).items()}
    response = client.post(response["Location"], mapping)
    assert response.status_code == 302, response.content[:500]
    return _finished(Job.objects.get(params__upload_id=up.pk))


def _finished(job: Job) -> Job:
    wait_for(
        lambda: Job.objects.filter(pk=job.pk).exclude(status__in=Job.ACTIVE).exists(),
        timeout=120,
        what=f"{job.kind} job {job.pk} to finish",
    )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, (job.kind, job.status, job.error)
    return job


def _all_jobs_done() -> None:
    wait_for(
        lambda: not Job.objects.filter(status__in=Job.ACTIVE).exists(),
        timeout=120,
        what="every job to finish",
    )


def _run_the_flow(marketer, approver, settings, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path / "data"
    settings.COPY_DRAFT_CHUNK_SIZE = 2  # two chunks: the helper task drafts too
    settings.COPY_DRAFT_PARALLEL = 2
    catalog = CatalogFactory(name="Kitchen shop", currency="GBP")

    # A failed login whose username is a customer's address (axes and auth log failures).
    # (From an address of its own: the lock-out counters outlive the test in the file cache.)
    bad = Client().post(
        reverse("login"),
        {"username": PEOPLE[0].email, "password": "wrong password"},
        REMOTE_ADDR=f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(256)}",
    )
    assert bad.status_code == 200 and bad.context["form"].errors

    mary = _login("mary", "pw-mary")
    products = _import(mary, catalog, "products", PRODUCTS, "products.csv")
    assert products.result["rejected"] == 1
    customers = _import(mary, catalog, "customers", _customers_csv(), "customers.csv")
    assert customers.result["rejected"] == 1
    assert Customer.objects.filter(name=PEOPLE[0].name, email=PEOPLE[0].email).exists()
    assert not Customer.objects.filter(external_id=REJECTED.external_id).exists()
    events = _import(mary, catalog, "events", _events_csv(), "events.csv")
    assert events.result["rejected"] == 2
    report = mary.get(reverse("marketing:job-report", args=[customers.pk]))
    assert (
        report.status_code == 200 and REJECTED.email in b"".join(report.streaming_content).decode()
    )
    _all_jobs_done()  # the refresh the events import queued

    # Browsing and searching by a customer's address and name.
    for query in (PEOPLE[1].email, PEOPLE[2].name):
        page = mary.get(reverse("marketing:customer-list"), {"q": query})
        assert page.status_code == 200
    zebulon = Customer.objects.get(external_id=PEOPLE[0].external_id)
    assert mary.get(reverse("marketing:customer-detail", args=[zebulon.pk])).status_code == 200
    missing = reverse("marketing:customer-detail", args=[zebulon.pk + 1000])
    assert mary.get(missing, {"q": PEOPLE[0].email}).status_code == 404  # django.request logs it

    response = mary.post(reverse("marketing:profile-refresh", args=[catalog.pk]))
    assert response.status_code == 302
    _all_jobs_done()

    # A rule segment of the buyers, then a per-customer email brief drafted at once.
    response = mary.post(
        reverse("marketing:segment-create", args=[catalog.pk]),
        {
            "name": "Buyers",
            "description": "",
            "node": ["0", "0.0"],
            "0.type": "group",
            "0.op": "and",
            "0.0.field": "frequency",
            "0.0.prev": "frequency",
            "0.0.operator": "gte",
            "0.0.value": "1",
            "save": "1",
        },
    )
    assert response.status_code == 302, response.content[:500]
    segment = Segment.objects.get(catalog=catalog, name="Buyers")
    assert segment.memberships.count() == len(PEOPLE)

    response = mary.post(
        f"{reverse('copygen:brief-create')}?catalog={catalog.pk}",
        {
            "name": "Spring email",
            "audience": "customers",
            "segment": segment.pk,
            "channel": "email",
            "tone": "friendly",
            "locales": ["en"],
            "source": "products",
            "model_run": "",
            "products": "OAK-1\nKET-3",
            "products_per_message": 1,
            "variants": 1,
            "occasion": "",
            "sms_segments": 1,
            "voice": "",
            "banned_words": "",
            "disclaimer": "",
            "sender": "Kitchen shop",
            "draft": "1",
        },
    )
    assert response.status_code == 302, response.content[:500]
    brief = Brief.objects.get(catalog=catalog, name="Spring email")
    _finished(brief.job)
    drafts = Draft.objects.filter(brief=brief)
    assert drafts.count() == len(PEOPLE)

    avery = _login("avery", "pw-avery")
    first, *others = drafts.order_by("pk")
    response = avery.post(
        reverse("copygen:draft-bulk-approve"), {"ids": [d.pk for d in others], "brief": brief.pk}
    )
    assert response.status_code == 302
    response = avery.post(
        reverse("copygen:draft-review", args=[first.pk]), {"action": "approve", "comment": "ok"}
    )
    assert response.status_code == 302
    assert drafts.filter(status=Draft.Status.APPROVED).count() == len(PEOPLE)
    page = avery.get(reverse("copygen:draft-detail", args=[first.pk]))
    assert page.status_code == 200

    # Export (HubSpot: email, name and phone in the file) and download it.
    response = mary.post(
        reverse("copygen:export-create", args=[brief.pk]), {"preset": "hubspot", "control_share": 0}
    )
    assert response.status_code == 302, response.content[:500]
    export = Export.objects.get(brief=brief)
    _finished(export.job)
    download = mary.get(reverse("copygen:export-download", args=[export.pk]))
    assert download.status_code == 200
    body = b"".join(download.streaming_content).decode("utf-8-sig")
    # The data went where it belongs: the file, and the copy itself ("Hey Zebulon, …").
    (row,) = [r for r in csv.DictReader(io.StringIO(body)) if r["Email"] == PEOPLE[0].email]
    assert row["Phone Number"] == f"+{PEOPLE[0].phone_digits}"
    assert PEOPLE[0].name.split()[0] in row["tailor_email_body"] + row["tailor_email_subject"]
    _all_jobs_done()


def test_a_full_run_logs_no_customer_data(
    marketer, approver, settings, tmp_path, capture, debug_worker
):
    _run_the_flow(marketer, approver, settings, tmp_path)

    records = capture.records
    names = {r.name for r in records}
    # The capture saw the web requests, the jobs in the worker and Celery itself.
    assert any(n.startswith("celery") for n in names), sorted(names)
    received = [r for r in records if r.name == "celery.worker.strategy"]
    assert received and all(isinstance(r.args, dict) for r in received)
    for r in received:  # task arguments are job ids (ints) only
        assert re.fullmatch(r"[\[(]\d+,?[\])]", r.args["args"]), r.args
    succeeded = [r for r in records if r.name == "celery.app.trace" and "succeeded" in r.msg]
    assert succeeded and {r.args["return_value"] for r in succeeded} == {"None"}  # no results
    assert any(r.name.startswith("axes") for r in records), sorted(names)
    assert any(r.name == "django.request" and r.levelno == logging.WARNING for r in records)
    assert capture in logging.getLogger().handlers  # nothing took the capture away midway
    json_lines = [line for line in capture.lines if line.startswith("{")]
    assert json_lines and all(json.loads(line)["message"] is not None for line in json_lines)

    forbidden = needles((*PEOPLE, REJECTED))
    found = [leak for r in records for leak in leaks(record_texts(r), forbidden)]
    found += leaks(capture.lines, forbidden)
    assert not found, "\n".join(dict.fromkeys(found))


# ----------------------------------------------------------------------------- the scanner


def test_the_scan_finds_a_name_an_address_and_a_phone(capture):
    """The check above can fail: data logged in any part of a record is found."""
    log = logging.getLogger("marketing.services.somewhere")
    forbidden = needles(PEOPLE)

    log.info("drafted for %s", PEOPLE[0].name)
    log.debug("plain", extra={"customer": {"phone": PEOPLE[1].phone}})
    try:
        raise ValueError(f"Key (email)=({PEOPLE[2].email}) already exists")
    except ValueError:
        log.exception("job %s failed", 7)
    log.info("rows: %r", [{"name": "x", "tel": PEOPLE[1].phone_digits}])
    log.info("nothing personal in job %s", 8)

    by_record = [leaks(record_texts(r), forbidden) for r in capture.records[-5:]]
    assert [bool(found) for found in by_record] == [True, True, True, True, False]
    assert "ZQ-1 name" in by_record[0][0]
    assert any("PV-2 phone" in f for f in by_record[1])
    assert any("OT-3 email" in f for f in by_record[2])
    # The formats mask the address but not the name: the raw record is what is checked.
    assert leaks(capture.lines, forbidden)


def test_a_missing_template_variable_logs_no_template_context(capture):
    """Django logs a missing variable at DEBUG with the whole context in its traceback; the
    project's filter on django.template keeps the message and drops the context."""
    from django.template import Context, Template

    person = PEOPLE[0]
    Template("{{ customer.nickname }}{{ nothing.here }}").render(
        Context({"customer": {"name": person.name, "email": person.email}})
    )

    records = [r for r in capture.records if r.name == "django.template"]
    assert records and "Exception while resolving variable" in records[-1].getMessage()
    found = [f for r in records for f in leaks(record_texts(r), needles([person]))]
    assert not found, found
