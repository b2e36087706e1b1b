"""Customer erasure: remove what Tailor holds about one customer, keep an anonymous row.

`customer_erase` deletes the customer's events (every catalog), profiles and segment
memberships, blanks their personal data and replaces the external id with an erasure token,
all in one transaction, and records an audit entry with counts only. Personal data also
lives outside those tables, and each place is handled:

- Raw upload files (DATA_DIR/uploads): only their import job reads them. Every stored file
  that mentions the customer's external id or email is removed once the erasure commits;
  an upload that was never imported goes entirely (its row too), an imported one keeps its
  row (name, size, columns) without the file. The scan matches whole tokens, ignoring case,
  so it may also remove a file that merely contains the same characters; that costs
  nothing, as imported data lives in the database.
- Upload samples (`Upload.detected["sample"]`, shown on the mapping page): rows that mention
  the customer are dropped.
- Rejected-row reports (DATA_DIR/reports): cells that mention the customer are replaced by
  "[erased]" once the erasure commits; the report keeps its rows and reasons.
- Django admin history (`LogEntry.object_repr`, which is the external id): replaced by the
  token.

Later imports: the token is a keyed hash of the external id (HMAC with SECRET_KEY), so the
erased rows themselves are the suppression list. An import rejects a row whose customer id
hashes to an erased customer's token with the reason "customer was erased", never storing
the id in its report. A new SECRET_KEY ends the suppression of earlier erasures, unless
the old key is listed in Django's SECRET_KEY_FALLBACKS (not settable from the environment
yet).

Concurrency: imports hold a shared advisory lock (ERASURE_LOCK_CLASS) for their whole
transaction; an erasure takes it exclusively without waiting, and refuses while any import
is queued or running (its file may mention the customer and would outlive the erasure).
Profile refreshes write under their catalog's row lock; an erasure takes every catalog's
row lock first, and a refresh that read events before an erasure drops erased customers
when it writes (`customer_erased_ids`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from marketing.csvsafe import safe_cell, unsafe_cell
from marketing.models import (
    AuditEvent,
    Catalog,
    Customer,
    Event,
    Job,
    Profile,
    Segment,
    SegmentMembership,
    Upload,
)
from marketing.permissions import require_perm
from marketing.services.audit import audit

logger = logging.getLogger(__name__)

ERASURE_PERM = "marketing.delete_customer"
ERASED_PREFIX = "erased-"
# Imports hold (ERASURE_LOCK_CLASS, 0) shared for their whole transaction; erasure exclusively.
ERASURE_LOCK_CLASS = 7002
CUSTOMER_ERASED = "customer was erased"
REDACTED = "[erased]"

_TOKEN_SALT = "marketing.services.customers.erasure_token"
_SCAN_BLOCK = 1 << 20  # characters read per step when scanning a file
_WORD = "0-9A-Za-z"

IMPORT_ACTIVE_MESSAGE = (
    "An import is queued or running; its file may mention this customer. "
    "Wait for it to finish (or cancel it), then erase."
)

LOCKED_MESSAGE = "An import is writing, or another customer is being erased; try again in a moment."


class CustomerErasureBusy(ValidationError):
    """The customer cannot be erased now: an import is queued or running."""


@dataclass(frozen=True)
class ErasurePreview:
    """What an erasure would remove, for the confirmation page."""

    events: int
    profiles: int
    memberships: int
    segments: int


@dataclass(frozen=True)
class ErasureResult:
    """What an erasure removed (counts only: the customer's identity is gone)."""

    customer_id: int
    already_erased: bool = False
    events: int = 0
    profiles: int = 0
    memberships: int = 0
    segments: int = 0
    uploads_removed: int = 0
    reports_redacted: int = 0

    @property
    def message(self) -> str:
        if self.already_erased:
            return f"Customer #{self.customer_id} was already erased; nothing changed."
        return (
            f"Customer #{self.customer_id} erased: {self.events:,} events, "
            f"{self.profiles:,} profiles and {self.memberships:,} segment memberships removed; "
            f"{self.uploads_removed:,} uploaded files removed and "
            f"{self.reports_redacted:,} import reports redacted."
        )


# ----------------------------------------------------------------------- tokens, suppression


def erasure_token(external_id: str, *, secret: str | None = None) -> str:
    """The erased customer's new external id: a keyed hash, not reversible without the key."""
    digest = salted_hmac(_TOKEN_SALT, external_id, secret=secret, algorithm="sha256")
    return ERASED_PREFIX + digest.hexdigest()[:40]


def _tokens(external_id: str) -> set[str]:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return {erasure_token(external_id, secret=secret) for secret in secrets}


class Suppression:
    """External ids an import must not bring back: those of erased customers.

    Loaded once per import (the import's shared lock keeps erasures out until it commits).
    `external_id in suppression` is true for an erased customer's former id and for a token.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens = frozenset(tokens)

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def __contains__(self, external_id: object) -> bool:
        if not self.tokens or not isinstance(external_id, str):
            return False
        return external_id in self.tokens or not _tokens(external_id).isdisjoint(self.tokens)


def customer_suppression() -> Suppression:
    return Suppression(
        Customer.objects.filter(erased_at__isnull=False).values_list("external_id", flat=True)
    )


def customer_erased_ids() -> set[int]:
    """Ids of erased customers (few; a profile refresh drops them before it writes)."""
    return set(Customer.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))


# ---------------------------------------------------------------------------------- erasure


def customer_erasure_preview(*, customer: Customer) -> ErasurePreview:
    memberships = SegmentMembership.objects.filter(customer=customer)
    return ErasurePreview(
        events=Event.objects.filter(customer_id=customer.pk).count(),
        profiles=Profile.objects.filter(customer=customer).count(),
        memberships=memberships.count(),
        segments=memberships.values("segment_id").distinct().count(),
    )


def active_imports() -> list[Job]:
    return list(
        Job.objects.filter(kind=Job.Kind.IMPORT, status__in=Job.ACTIVE).select_related("catalog")
    )


def customer_erase(*, user, customer: Customer) -> ErasureResult:
    """Erase a customer's personal data and behaviour; a second call changes nothing.

    Raises CustomerErasureBusy while an import is queued or running, Customer.DoesNotExist
    when the row is gone.
    """
    require_perm(user, ERASURE_PERM)
    if active_imports():
        raise CustomerErasureBusy(IMPORT_ACTIVE_MESSAGE, code="import_active")
    with transaction.atomic():
        _lock_out_imports()
        # A profile refresh writes under its catalog's row lock: wait for those in progress,
        # and make later ones wait for us (they then drop erased customers).
        list(Catalog.objects.select_for_update(no_key=True).order_by("pk").values_list("pk"))
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            return ErasureResult(customer_id=customer.pk, already_erased=True)
        if active_imports():  # queued since the first check
            raise CustomerErasureBusy(IMPORT_ACTIVE_MESSAGE, code="import_active")
        pattern = _mention_pattern([customer.external_id, customer.email])
        token = erasure_token(customer.external_id)

        events, _ = Event.objects.filter(customer_id=customer.pk).delete()
        profiles, _ = Profile.objects.filter(customer=customer).delete()
        memberships = SegmentMembership.objects.filter(customer=customer)
        by_segment = Counter(memberships.values_list("segment_id", flat=True))
        removed, _ = memberships.delete()
        for segment_id, n in by_segment.items():
            Segment.objects.filter(pk=segment_id).update(size=Greatest(F("size") - n, Value(0)))

        _blank(customer, token)
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer), object_id=str(customer.pk)
        ).update(object_repr=token)
        files = _FilePlan.build(pattern)
        result = ErasureResult(
            customer_id=customer.pk,
            events=events,
            profiles=profiles,
            memberships=removed,
            segments=len(by_segment),
            uploads_removed=len(files.imported) + len(files.unimported),
            reports_redacted=len(files.reports) + len(files.unreadable_reports),
        )
        try:
            files.apply_to_rows()
            audit(
                actor=user,
                action=AuditEvent.Action.CUSTOMER_ERASED,
                obj=customer,
                details={
                    "events": events,
                    "profiles": profiles,
                    "memberships": removed,
                    "segments": len(by_segment),
                    "uploads_removed": result.uploads_removed,
                    "reports_redacted": result.reports_redacted,
                },
            )
        except BaseException:
            files.discard()
            raise
        transaction.on_commit(files.apply_to_storage)
    logger.info(
        "customer %s erased by %s (%s events, %s profiles, %s memberships)",
        customer.pk,
        getattr(user, "pk", None),
        events,
        profiles,
        removed,
    )
    return result


def _lock_out_imports() -> None:
    """Take the imports' shared lock exclusively, or refuse at once (an import is writing)."""
    if connection.vendor != "postgresql":
        return  # SQLite: one writer at a time; a writing import holds the database lock
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, 0)", [ERASURE_LOCK_CLASS])
        (locked,) = cur.fetchone()
    if not locked:
        raise CustomerErasureBusy(LOCKED_MESSAGE, code="import_active")


def _blank(customer: Customer, token: str) -> None:
    customer.external_id = token
    customer.email = ""
    customer.name = ""
    customer.country = ""
    customer.language = ""
    customer.consent_email = customer.consent_sms = False
    customer.consent_push = customer.consent_ads = False
    customer.attributes = {}
    customer.erased_at = timezone.now()
    customer.save()


# ------------------------------------------------------------------------- files and samples


def _mention_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    """Any of the values as a whole token (not inside a longer word or number), any case.

    Also matches the forms JSON and XML (XLSX) may store them in.
    """
    forms: set[str] = set()
    for value in values:
        value = (value or "").strip()
        if not value:
            continue
        forms.update(
            {
                value,
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
                xml_escape(value, {'"': "&quot;"}),
            }
        )
    if not forms:
        return None
    alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![{_WORD}])(?:{alternatives})(?![{_WORD}])", re.IGNORECASE)


def _mentions(pattern: re.Pattern[str], value: object) -> bool:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return value is not None and bool(pattern.search(str(value)))


def _stream_mentions(pattern: re.Pattern[str], fh: io.TextIOBase) -> bool:
    tail = ""
    overlap = 2 * len(pattern.pattern)
    while block := fh.read(_SCAN_BLOCK):
        text = tail + block
        if pattern.search(text):
            return True
        tail = text[-overlap:]
    return False


def _file_mentions(pattern: re.Pattern[str], upload: Upload) -> bool:
    """Whether the stored file mentions the customer; a file that cannot be read counts."""
    detected = upload.detected or {}
    try:
        path = upload.file.path
        if detected.get("format") == "xlsx" or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as book:
                for name in book.namelist():
                    with book.open(name) as member:
                        text = io.TextIOWrapper(member, encoding="utf-8", errors="replace")
                        if _stream_mentions(pattern, text):
                            return True
            return False
        encoding = detected.get("encoding") or "utf-8"
        with open(path, encoding=encoding, errors="replace", newline="") as fh:
            return _stream_mentions(pattern, fh)
    except FileNotFoundError:
        return False
    except (OSError, LookupError, zipfile.BadZipFile, RuntimeError):
        logger.warning("upload %s cannot be scanned; it is removed", upload.pk)
        return True


# Report columns that may quote file data; "row" and "action" are ours.
_REPORT_DATA_COLUMNS = ("file", "column", "value", "reason")


_UNREADABLE = Path()


def _redacted_report(pattern: re.Pattern[str], job: Job) -> Path | None:
    """A redacted copy of the job's report (a temporary file), None if nothing matched, or
    _UNREADABLE when the report cannot be read (it is then removed)."""
    try:
        source = Path(job.report_file.path)
        fd, name = tempfile.mkstemp(dir=source.parent, prefix=".erasing-", suffix=".csv")
    except (FileNotFoundError, NotADirectoryError):
        return None
    copy, changed = Path(name), False
    try:
        with (
            source.open(encoding="utf-8", errors="replace", newline="") as src,
            os.fdopen(fd, "w", encoding="utf-8", newline="") as dst,
        ):
            reader, writer = csv.reader(src), csv.writer(dst)
            header = next(reader, [])
            writer.writerow(header)
            data = [i for i, name in enumerate(header) if name in _REPORT_DATA_COLUMNS]
            for row in reader:
                for i in data:
                    if i < len(row) and _mentions(pattern, unsafe_cell(row[i])):
                        row[i] = safe_cell(REDACTED)
                        changed = True
                writer.writerow(row)
    except FileNotFoundError:
        pass
    except (OSError, csv.Error):
        logger.warning("report of job %s cannot be redacted; it is removed", job.pk)
        copy.unlink(missing_ok=True)
        return _UNREADABLE
    if not changed:
        copy.unlink(missing_ok=True)
        return None
    return copy


@dataclass
class _FilePlan:
    """The files and upload rows an erasure touches: rows change in its transaction, files
    only once it has committed."""

    pattern: re.Pattern[str] | None
    remove_files: list[tuple[object, str]] = field(default_factory=list)
    unimported: list[int] = field(default_factory=list)
    imported: list[int] = field(default_factory=list)
    reports: list[tuple[Path, Path]] = field(default_factory=list)
    unreadable_reports: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, pattern: re.Pattern[str] | None) -> _FilePlan:
        plan = cls(pattern)
        if pattern is None:
            return plan
        imported = set(
            Job.objects.filter(kind=Job.Kind.IMPORT).values_list("params__upload_id", flat=True)
        )
        for upload in Upload.objects.exclude(file="").order_by("pk"):
            if _file_mentions(pattern, upload):
                plan.remove_files.append((upload.file.storage, upload.file.name))
                (plan.imported if upload.pk in imported else plan.unimported).append(upload.pk)
        for job in Job.objects.exclude(report_file="").only("pk", "report_file").order_by("pk"):
            redacted = _redacted_report(pattern, job)
            if redacted is _UNREADABLE:
                plan.unreadable_reports.append(job.pk)
                plan.remove_files.append((job.report_file.storage, job.report_file.name))
            elif redacted is not None:
                plan.reports.append((redacted, Path(job.report_file.path)))
        return plan

    def apply_to_rows(self) -> None:
        Upload.objects.filter(pk__in=self.unimported).delete()
        Upload.objects.filter(pk__in=self.imported).update(file="")
        Job.objects.filter(pk__in=self.unreadable_reports).update(report_file="")
        if self.pattern is None:
            return
        for upload in Upload.objects.only("pk", "detected"):
            sample = (upload.detected or {}).get("sample") or []
            kept = [row for row in sample if not _mentions(self.pattern, row)]
            if len(kept) != len(sample):
                upload.detected = {**upload.detected, "sample": kept}
                upload.save(update_fields=["detected"])

    def apply_to_storage(self) -> None:
        for storage, name in self.remove_files:
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not remove the file %s", name)
        for redacted, report in self.reports:
            try:
                os.replace(redacted, report)
            except OSError:
                logger.warning("could not redact the report %s", report.name)

    def discard(self) -> None:
        for redacted, _ in self.reports:
            redacted.unlink(missing_ok=True)
