"""Customer erasure: remove what Tailor holds about one customer, keep an anonymous row.

`customer_erase` deletes the customer's events (every catalog), profiles and segment
memberships, blanks their personal data and replaces the external id with an erasure token,
all in one transaction, and records an audit entry with counts only. Personal data also
lives outside those tables, and each place is handled:

- Raw upload files (DATA_DIR/uploads): only their import job reads them. A file whose
  customer-id or email column holds the customer's id or email loses its file; the Upload
  row always stays (name, size, columns), marked ``detected["file_removed"]``, and its
  mapping page says the file must be uploaded again (an import refuses it). The columns are
  the import's mapping, plus what the mapping form proposes (`auto_map`) for a file never
  imported; only whole cells of those columns are compared (trimmed, ignoring case,
  "17850.0" read as "17850", as the importer reads ids), so a short numeric id such as
  "12346" or "1" never matches a quantity, a price or another column. A file that cannot
  be read (or whose stored file is already missing) counts as a match.
- Upload samples (`Upload.detected["sample"]`, shown on the mapping page): rows whose
  id or email column holds the customer are dropped.
- Rejected-row reports (DATA_DIR/reports): in the rows whose ``column`` is a customer-id or
  email column (the job's mapped columns, or the importer's own names "customer",
  "external_id", "email"), a ``value`` equal to the id or email, and a ``reason`` quoting
  it, become "[erased]"; the report keeps its rows. A report that cannot be read is removed.
- Derived copies in other apps (the recommendations app's model files): once the erasure
  commits, the `customer_erased` signal tells them to drop their copy.
- Django admin history (`LogEntry.object_repr`): entries of the customer get the token;
  those of their profiles and memberships (whose text used to name the external id) get a
  text with row ids only, as `Profile`/`SegmentMembership.__str__` now give.

Order of work, and why no file outlives a committed erasure: the files are scanned before
any lock is taken (`customer_erasure_scan`; the admin's bulk action scans once for all the
customers it erases). Files change only through uploads and imports, and imports are
refused while an erasure runs; an upload or report that appeared after the scan is scanned
under the locks. In the erasure's transaction, after every row change and the audit entry,
the redacted reports replace the originals and the matched files are deleted; only then does
it commit. A file that cannot be deleted or replaced (OSError) raises
`CustomerErasureFileError` and rolls the transaction back: the customer is not erased, and
the admin is told to retry. Files deleted before that failure stay deleted and their rows
point at nothing, which an import reports as a removed file and the next erasure blanks.
The same holds if the commit itself fails after the files went. That is simpler than a
durable queue of pending deletions, and never leaves personal data behind a row that says
it is gone.

Later imports: the token is a keyed hash of the external id (HMAC with SECRET_KEY), so the
erased rows themselves are the suppression list. An import rejects a row whose customer id
hashes to an erased customer's token with the reason "customer was erased", never storing
the id in its report. A new SECRET_KEY ends the suppression of earlier erasures, unless
the old key is listed in Django's SECRET_KEY_FALLBACKS (not settable from the environment
yet). `Suppression` prepares the HMAC keys once per import and hashes each distinct id once.

Concurrency: imports hold a shared advisory lock (ERASURE_LOCK_CLASS) for their whole
transaction; an erasure takes it exclusively without waiting, and refuses while any import
is queued or running (its file may mention the customer and would outlive the erasure).
Profile refreshes write under their catalog's row lock; an erasure takes every catalog's
row lock first, without waiting (a refresh saving now: `CustomerErasureBusy`, try again),
and a refresh that read events before an erasure drops erased customers when it writes
(`customer_erased_ids`).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import CharField, F, Q, Value
from django.db.models.functions import Concat, Greatest
from django.dispatch import Signal
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.encoding import force_bytes

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

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# numpy, pandas and the importer's readers are imported where files are scanned: the export
# worker imports this module (customer_erased, customer_erased_ids) and needs none of them.

logger = logging.getLogger(__name__)

# Sent once an erasure has committed (sender: the Customer class), with customer_id and
# catalog_ids (the catalogs they had events or recommendations in). Apps built on this one
# (which it must not import) drop their derived copies of the customer's data here — the
# recommendations app its model files. A receiver that fails is logged; the erasure stands.
customer_erased = Signal()

ERASURE_PERM = "marketing.delete_customer"
ERASED_PREFIX = "erased-"
# Imports hold (ERASURE_LOCK_CLASS, 0) shared for their whole transaction; erasure exclusively.
ERASURE_LOCK_CLASS = 7002
CUSTOMER_ERASED = "customer was erased"
REDACTED = "[erased]"
FILE_REMOVED = "file_removed"  # Upload.detected key: why the stored file is gone

_TOKEN_SALT = "marketing.services.customers.erasure_token"
# Import fields that name a customer, per upload kind (the mapping's keys).
_IDENTITY_FIELDS = {
    Upload.Kind.CUSTOMERS: ("external_id", "email"),
    Upload.Kind.EVENTS: ("customer",),
    Upload.Kind.ONLINE_RETAIL: ("customer",),
    Upload.Kind.CAMPAIGN_RESULTS: ("customer", "email"),
}
# Jobs that read uploaded files (and record their mapping in params).
_FILE_JOB_KINDS = (Job.Kind.IMPORT, Job.Kind.RESULTS_IMPORT)
# What the importer writes in a report's "column" for its own checks (not a file column).
_REPORT_IDENTITY_NAMES = frozenset({"customer", "external_id", "email"})
_SUPPRESSION_CACHE_MAX = 250_000  # ids remembered per import (erased or not)

IMPORT_ACTIVE_MESSAGE = (
    "An import is queued or running; its file may mention this customer. "
    "Wait for it to finish (or cancel it), then erase."
)

LOCKED_MESSAGE = "An import is writing, or another customer is being erased; try again in a moment."
ROWS_LOCKED_MESSAGE = (
    "Customer profiles are being saved, or the customer is being changed; "
    "nothing was erased. Try again in a moment."
)
FILE_ERROR_MESSAGE = (
    "A stored file that mentions this customer could not be removed or redacted ({name}); "
    "nothing was erased. Check the file's permissions, then try again."
)


class CustomerErasureError(ValidationError):
    """The customer was not erased (nothing changed in the database); the message says why."""


class CustomerErasureBusy(CustomerErasureError):
    """The customer cannot be erased now: an import is queued or running, or rows it must
    change are locked (a profile refresh is saving)."""


class CustomerErasureFileError(CustomerErasureError):
    """A file that mentions the customer could not be removed or redacted; rolled back."""


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
    recommendations: int = 0
    drafts: int = 0
    uploads_removed: int = 0
    reports_redacted: int = 0

    @property
    def message(self) -> str:
        if self.already_erased:
            return f"Customer #{self.customer_id} was already erased; nothing changed."
        return (
            f"Customer #{self.customer_id} erased: {self.events:,} events, "
            f"{self.profiles:,} profiles, {self.memberships:,} segment memberships and "
            f"{self.recommendations:,} recommendations and {self.drafts:,} copy drafts removed; "
            f"{self.uploads_removed:,} uploaded files removed and "
            f"{self.reports_redacted:,} import reports redacted."
        )


# ----------------------------------------------------------------------- tokens, suppression


def erasure_token(external_id: str, *, secret: str | None = None) -> str:
    """The erased customer's new external id: a keyed hash, not reversible without the key."""
    digest = salted_hmac(_TOKEN_SALT, external_id, secret=secret, algorithm="sha256")
    return ERASED_PREFIX + digest.hexdigest()[:40]


def _token_pads(secret: str) -> tuple:
    """`erasure_token`'s HMAC-SHA256 (RFC 2104) prepared for many ids: the inner and outer
    hashes with the key already absorbed. salted_hmac derives the key (sha256 of salt and
    secret) on every call; here each id costs two hash copies and its own bytes."""
    key = hashlib.sha256(force_bytes(_TOKEN_SALT) + force_bytes(secret)).digest()
    block = key.ljust(hashlib.sha256().block_size, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


class Suppression:
    """External ids an import must not bring back: those of erased customers.

    Loaded once per import (the import's shared lock keeps erasures out until it commits).
    `external_id in suppression` is true for an erased customer's former id and for a token;
    `matches` answers for a whole column. The keyed hashes are prepared once per secret
    (SECRET_KEY and its fallbacks), and each distinct id is hashed once per import.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self.tokens = frozenset(tokens)
        # The tokens' hex digests, to compare a computed digest without building its token.
        self._digests = frozenset(
            t.removeprefix(ERASED_PREFIX) for t in self.tokens if t.startswith(ERASED_PREFIX)
        )
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        self._pads = [_token_pads(secret) for secret in secrets] if self.tokens else []
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def __contains__(self, external_id: object) -> bool:
        if not self.tokens or not isinstance(external_id, str):
            return False
        return self._cached(external_id)

    def _cached(self, external_id: str) -> bool:
        hit = self._known.get(external_id)
        if hit is None:
            hit = self._test(external_id)
            if len(self._known) < _SUPPRESSION_CACHE_MAX:
                self._known[external_id] = hit
        return hit

    def _test(self, external_id: str) -> bool:
        if external_id in self.tokens:
            return True
        message = external_id.encode()
        return any(self._digest(pads, message) in self._digests for pads in self._pads)

    @staticmethod
    def _digest(pads: tuple, message: bytes) -> str:
        inner, outer = pads[0].copy(), pads[1].copy()
        inner.update(message)
        outer.update(inner.digest())
        return outer.hexdigest()[:40]

    def matches(self, external_ids: pd.Series | np.ndarray | list) -> np.ndarray:
        """A boolean per id (in order): which are suppressed. Each distinct id is tested once."""
        import numpy as np
        import pandas as pd

        values = np.asarray(external_ids, dtype=object)
        if not self.tokens or not len(values):
            return np.zeros(len(values), dtype=bool)
        codes, uniques = pd.factorize(values)
        cached = self._cached
        hit = np.fromiter(
            (isinstance(u, str) and cached(u) for u in uniques), dtype=bool, count=len(uniques)
        )
        return np.where(codes >= 0, hit[np.maximum(codes, 0)], False)


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
        Job.objects.filter(kind__in=_FILE_JOB_KINDS, status__in=Job.ACTIVE).select_related(
            "catalog"
        )
    )


def customer_erase(*, user, customer: Customer, scan: ErasureScan | None = None) -> ErasureResult:
    """Erase a customer's personal data and behaviour; a second call changes nothing.

    ``scan`` is a `customer_erasure_scan` that covers this customer (the admin's bulk action
    scans once for all the customers it erases); without one, the files are scanned here,
    before any lock is taken. Raises CustomerErasureBusy while an import is queued or
    running or the rows are locked, CustomerErasureFileError when a file cannot be removed
    (both roll everything back), Customer.DoesNotExist when the row is gone.
    """
    require_perm(user, ERASURE_PERM)
    if active_imports():
        raise CustomerErasureBusy(IMPORT_ACTIVE_MESSAGE, code="import_active")
    if scan is None or scan.needles_of.get(customer.pk) != _needles(customer):
        scan = customer_erasure_scan(customers=[customer])
    with transaction.atomic():
        _lock_out_imports()
        customer = _lock_rows(customer)
        if customer.erased_at is not None:
            return ErasureResult(customer_id=customer.pk, already_erased=True)
        if active_imports():  # queued since the first check
            raise CustomerErasureBusy(IMPORT_ACTIVE_MESSAGE, code="import_active")
        if scan.needles_of.get(customer.pk) != _needles(customer):  # changed since the scan
            scan = customer_erasure_scan(customers=[customer])
        scan.catch_up()  # uploads and reports that appeared since the scan
        old_external_id = customer.external_id
        token = erasure_token(old_external_id)

        # Where derived copies of their data may live (model files): sent on commit.
        catalog_ids = sorted(
            set(Event.objects.filter(customer_id=customer.pk).values_list("catalog_id", flat=True))
            | set(customer.recommendations.values_list("catalog_id", flat=True))
        )
        profile_pks = list(Profile.objects.filter(customer=customer).values_list("pk", flat=True))
        memberships = SegmentMembership.objects.filter(customer=customer)
        membership_pks = list(memberships.values_list("pk", flat=True))
        events, _ = Event.objects.filter(customer_id=customer.pk).delete()
        profiles, _ = Profile.objects.filter(pk__in=profile_pks).delete()
        by_segment = Counter(memberships.values_list("segment_id", flat=True))
        removed, _ = memberships.delete()
        # Recommendation lists computed for them (the reverse relation of the
        # recommendations app, which depends on this one, not the other way round).
        recommendations, _ = customer.recommendations.all().delete()
        # Copy drafted for them (it may carry their first name), with its revisions and
        # reviews: the copy studio's reverse relation, as above.
        drafts = customer.drafts.all().delete()[1].get("copygen.Draft", 0)
        for segment_id, n in by_segment.items():
            Segment.objects.filter(pk=segment_id).update(size=Greatest(F("size") - n, Value(0)))

        _blank(customer, token)
        _rewrite_history(customer, token, old_external_id, profile_pks, membership_pks)
        with _FileWork() as files:
            scan.apply_to_rows(customer.pk, files)
            result = ErasureResult(
                customer_id=customer.pk,
                events=events,
                profiles=profiles,
                memberships=removed,
                segments=len(by_segment),
                recommendations=recommendations,
                drafts=drafts,
                uploads_removed=files.uploads_removed,
                reports_redacted=files.reports_redacted,
            )
            audit(
                actor=user,
                action=AuditEvent.Action.CUSTOMER_ERASED,
                obj=customer,
                details={
                    "events": events,
                    "profiles": profiles,
                    "memberships": removed,
                    "segments": len(by_segment),
                    "recommendations": recommendations,
                    "drafts": drafts,
                    "uploads_removed": result.uploads_removed,
                    "reports_redacted": result.reports_redacted,
                },
            )
            files.apply_to_storage()  # last: a failure here rolls all of the above back
        transaction.on_commit(
            functools.partial(_announce_erasure, customer_id=customer.pk, catalog_ids=catalog_ids)
        )
    logger.info(
        "customer %s erased by %s (%s events, %s profiles, %s memberships)",
        customer.pk,
        getattr(user, "pk", None),
        events,
        profiles,
        removed,
    )
    return result


def _announce_erasure(*, customer_id: int, catalog_ids: list[int]) -> None:
    """Send `customer_erased` (after the commit); a receiver that fails is logged."""
    for receiver, outcome in customer_erased.send_robust(
        sender=Customer, customer_id=customer_id, catalog_ids=catalog_ids
    ):
        if isinstance(outcome, Exception):
            logger.error(
                "after erasing customer %s, %s failed: %s: %s",
                customer_id,
                getattr(receiver, "__qualname__", receiver),
                type(outcome).__name__,
                outcome,
            )


def _lock_out_imports() -> None:
    """Take the imports' shared lock exclusively, or refuse at once (an import is writing)."""
    if connection.vendor != "postgresql":
        return  # SQLite: one writer at a time; a writing import holds the database lock
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, 0)", [ERASURE_LOCK_CLASS])
        (locked,) = cur.fetchone()
    if not locked:
        raise CustomerErasureBusy(LOCKED_MESSAGE, code="import_active")


def _lock_rows(customer: Customer) -> Customer:
    """Every catalog's row (a profile refresh writes under it: it then drops erased customers)
    and the customer's, without waiting: we hold the exclusive advisory lock, which imports
    queue behind, so any wait here would hold them up as well."""
    try:
        list(
            Catalog.objects.select_for_update(no_key=True, nowait=True)
            .order_by("pk")
            .values_list("pk")
        )
        return Customer.objects.select_for_update(nowait=True).get(pk=customer.pk)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        raise CustomerErasureBusy(ROWS_LOCKED_MESSAGE, code="rows_locked") from None


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


def _rewrite_history(
    customer: Customer,
    token: str,
    old_external_id: str,
    profile_pks: list[int],
    membership_pks: list[int],
) -> None:
    """Admin history names objects by their text at the time: the customer's becomes the
    token; their profiles' and memberships' (which used to read "<external id> in …", also
    for rows a refresh has since replaced) read "Profile #<pk>" / "Membership #<pk>"."""
    types = ContentType.objects.get_for_models(Customer, Profile, SegmentMembership)
    LogEntry.objects.filter(content_type=types[Customer], object_id=str(customer.pk)).update(
        object_repr=token
    )
    old_text = Q(object_repr__startswith=f"{old_external_id} in ")
    for model, pks, label in (
        (Profile, profile_pks, "Profile #"),
        (SegmentMembership, membership_pks, "Membership #"),
    ):
        LogEntry.objects.filter(content_type=types[model]).filter(
            Q(object_id__in=[str(pk) for pk in pks]) | old_text
        ).update(object_repr=Concat(Value(label), F("object_id"), output_field=CharField()))


# ------------------------------------------------------------------------- files and samples


def _needles(customer: Customer) -> frozenset[str]:
    """The customer's id and email as file cells are compared (see `_normalise`)."""
    return frozenset(v for v in map(_normalise, (customer.external_id, customer.email)) if v)


def _normalise(value: object) -> str:
    """A cell as ids are compared: trimmed, case-folded, "17850.0" read as "17850"."""
    text = "" if value is None else str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text.casefold()


def _normalise_many(values: np.ndarray) -> pd.Series:
    import pandas as pd

    text = pd.Series(values, dtype=object).fillna("").astype(str).str.strip()
    return text.str.replace(r"^(\d+)\.0$", r"\1", regex=True).str.casefold()


def _identity_columns(kind: str | None, columns: list[str], mapping: dict | None) -> set[str]:
    """The file's columns that hold a customer id or email: the import's mapping, plus what
    the mapping form proposes for the file (it may not have been mapped yet)."""
    from marketing.analytics.importing import KINDS, auto_map

    fields = _IDENTITY_FIELDS.get(kind, ()) if kind else ("external_id", "email", "customer")
    guessed = auto_map(columns, kind) if kind in KINDS and columns else {}
    found = set()
    for source in (mapping or {}, guessed):
        for name in fields:
            column = source.get(name)
            if column and (not columns or column in columns):
                found.add(column)
    return found


class _AllCustomers:
    """A file that cannot be read: it counts as mentioning every customer."""


ANY = _AllCustomers()
Hits = set[int] | _AllCustomers


def _hits_in(values: np.ndarray, needles: dict[str, set[int]]) -> set[int]:
    import pandas as pd

    uniques = pd.unique(values)
    normalised = _normalise_many(uniques)
    found = normalised[normalised.isin(list(needles))]
    return {pk for value in found for pk in needles[value]}


def _upload_hits(upload: Upload, mapping: dict | None, needles: dict[str, set[int]]) -> Hits:
    """Which customers' id or email the stored file holds in its identity columns."""
    from marketing.analytics.importing import iter_frames, sniff

    detected = upload.detected or {}
    columns = _identity_columns(upload.kind, list(detected.get("columns") or []), mapping)
    if not columns:
        return set()
    try:
        path = upload.file.path
        info = sniff(path, name=upload.original_name, max_bytes=settings.IMPORT_MAX_BYTES)
        hits: set[int] = set()
        for frame in iter_frames(
            path, info, name=upload.original_name, chunk_rows=settings.IMPORT_CHUNK_ROWS
        ):
            for column in columns & set(frame.columns):
                hits |= _hits_in(frame[column].to_numpy(dtype=object), needles)
        return hits
    except FileNotFoundError:
        logger.warning("upload %s has no stored file any more; it is blanked", upload.pk)
        return ANY
    except Exception as exc:  # a file the importer cannot read either: err on privacy's side
        logger.warning(
            "upload %s cannot be scanned (%s); it is removed", upload.pk, type(exc).__name__
        )
        return ANY


def _sample_rows_kept(upload: Upload, mapping: dict | None, needles: frozenset[str]) -> list | None:
    """The sample without rows naming the customer, or None when nothing is dropped."""
    detected = upload.detected or {}
    sample = detected.get("sample") or []
    columns = _identity_columns(upload.kind, list(detected.get("columns") or []), mapping)
    kept = [
        row
        for row in sample
        if not any(_normalise(row.get(column)) in needles for column in columns)
    ]
    return None if len(kept) == len(sample) else kept


def _sample_hits(upload: Upload, mapping: dict | None, needles: dict[str, set[int]]) -> set[int]:
    detected = upload.detected or {}
    columns = _identity_columns(upload.kind, list(detected.get("columns") or []), mapping)
    hits: set[int] = set()
    for row in detected.get("sample") or []:
        for column in columns:
            hits |= needles.get(_normalise(row.get(column)), set())
    return hits


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")  # what a report's reason quotes


_CSV_LIMIT_LOCK = threading.Lock()
_EXTRA_SEPARATORS = re.compile(r"[,;\t|]")


@contextlib.contextmanager
def _report_reader(path: Path) -> Iterator[Iterator[list[str]]]:
    """A csv reader of the report that accepts cells as long as the file itself.

    csv refuses cells over `csv.field_size_limit` (128 KiB) with csv.Error; the limit is
    process-wide, so it is raised for this reader only (under a lock) and then restored.
    """
    with _CSV_LIMIT_LOCK:
        previous = csv.field_size_limit()
        csv.field_size_limit(max(previous, path.stat().st_size + 1))
        try:
            with path.open(encoding="utf-8", errors="replace", newline="") as src:
                yield csv.reader(src)
        finally:
            csv.field_size_limit(previous)


class _Report:
    """One job's rejected-rows report (columns "file", "row", "column", "value", "reason",
    "action"): which customers its identity cells name, and a redacted copy."""

    def __init__(self, job: Job, columns: set[str]) -> None:
        self.job = job
        self.path = Path(job.report_file.path)
        self.columns = columns | _REPORT_IDENTITY_NAMES

    def _cells(self, header: list[str]):
        """A function: row -> [(index, values it names)] for the cells that may name one."""
        at = {name: i for i, name in enumerate(header)}
        column, value, reason = at.get("column"), at.get("value"), at.get("reason")

        def named(row: list[str]) -> list[tuple[int, list[str]]]:
            if column is None or column >= len(row):
                return []
            where = unsafe_cell(row[column])
            out = []
            if value is not None and value < len(row):
                text = unsafe_cell(row[value])
                if where in self.columns:  # a customer-id or email cell: the whole value
                    out.append((value, [_normalise(text)]))
                elif where == "":  # cells beyond the header ("more values than …")
                    out.append((value, [_normalise(p) for p in _EXTRA_SEPARATORS.split(text)]))
            if where in self.columns and reason is not None and reason < len(row):
                quoted = _QUOTED.findall(unsafe_cell(row[reason]))  # "… id 'anna-77' (…)"
                out.append((reason, [_normalise(a or b) for a, b in quoted]))
            return out

        return named

    def hits(self, needles: dict[str, set[int]]) -> Hits:
        found: set[int] = set()
        try:
            with _report_reader(self.path) as rows:
                named = self._cells(next(rows, []))
                for row in rows:
                    for _, values in named(row):
                        for value in values:
                            found |= needles.get(value, set())
        except FileNotFoundError:
            return set()
        except (OSError, csv.Error):
            logger.warning("report of job %s cannot be read; it is removed", self.job.pk)
            return ANY
        return found

    def redacted_copy(self, needles: frozenset[str]) -> Path | None | _AllCustomers:
        """A redacted copy next to the report (None if nothing matched, ANY if unreadable)."""
        try:
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".erasing-", suffix=".csv")
        except OSError:
            return ANY if self.path.exists() else None
        copy, changed = Path(name), False
        try:
            with (
                os.fdopen(fd, "w", encoding="utf-8", newline="") as dst,
                _report_reader(self.path) as rows,
            ):
                writer = csv.writer(dst)
                header = next(rows, [])
                writer.writerow(header)
                named = self._cells(header)
                for row in rows:
                    for i, values in named(row):
                        if any(value in needles for value in values):
                            row[i] = safe_cell(REDACTED)
                            changed = True
                    writer.writerow(row)
        except FileNotFoundError:
            changed = False
        except (OSError, csv.Error):
            logger.warning("report of job %s cannot be redacted; it is removed", self.job.pk)
            copy.unlink(missing_ok=True)
            return ANY
        if not changed:
            copy.unlink(missing_ok=True)
            return None
        return copy


class _FileWork:
    """What one erasure does to files: planned while its transaction changes the rows, done
    (`apply_to_storage`) as the transaction's last step, so a failure rolls the rows back.
    Leftover redacted copies are removed on the way out, whatever happened."""

    def __init__(self) -> None:
        self.deletes: list[tuple[object, str]] = []
        self.replaces: list[tuple[Path, Path]] = []
        self.uploads_removed = 0
        self.reports_redacted = 0

    def __enter__(self) -> _FileWork:
        return self

    def __exit__(self, *exc) -> None:
        for copy, _ in self.replaces:
            copy.unlink(missing_ok=True)

    def apply_to_storage(self) -> None:
        for copy, report in self.replaces:
            try:
                os.replace(copy, report)
            except OSError as exc:
                raise _file_error(report.name) from exc
        for storage, name in self.deletes:
            try:
                storage.delete(name)  # a file already gone is fine
            except OSError as exc:
                raise _file_error(Path(name).name) from exc


def _file_error(name: str) -> CustomerErasureFileError:
    logger.warning("erasure could not change a stored file; rolled back")
    return CustomerErasureFileError(FILE_ERROR_MESSAGE.format(name=name), code="file_error")


@dataclass
class ErasureScan:
    """Which stored files and samples name which customers, found before an erasure locks.

    Built by `customer_erasure_scan`; `customer_erase` catches up with files that appeared
    since (under its locks) and applies the part that concerns its customer.
    """

    needles: dict[str, set[int]]  # normalised id or email -> customers it belongs to
    needles_of: dict[int, frozenset[str]]
    mappings: dict[int, dict] = field(default_factory=dict)  # upload pk -> import mapping
    uploads: dict[int, tuple[str, Hits]] = field(default_factory=dict)  # pk -> (file, hits)
    samples: dict[int, set[int]] = field(default_factory=dict)  # upload pk -> customers
    # job pk -> (report file, hits, the report's customer-id and email column names)
    reports: dict[int, tuple[str, Hits, set[str]]] = field(default_factory=dict)

    def scan_upload(self, upload: Upload) -> None:
        mapping = self.mappings.get(upload.pk)
        if upload.file:
            self.uploads[upload.pk] = (
                upload.file.name,
                _upload_hits(upload, mapping, self.needles),
            )
        self.samples[upload.pk] = _sample_hits(upload, mapping, self.needles)

    def scan_report(self, job: Job, uploads: dict[int, Upload]) -> None:
        upload_id = (job.params or {}).get("upload_id")
        upload = uploads.get(upload_id)
        columns = _identity_columns(
            upload.kind if upload else None,
            list((upload.detected or {}).get("columns") or []) if upload else [],
            (job.params or {}).get("mapping"),
        )
        hits = _Report(job, columns).hits(self.needles)
        self.reports[job.pk] = (job.report_file.name, hits, columns)

    def catch_up(self) -> None:
        """Scan what changed since: uploads and reports new or with another file."""
        if not self.needles:
            return
        self.mappings.update(_import_mappings())
        uploads = {u.pk: u for u in Upload.objects.all()}
        for upload in uploads.values():
            scanned = self.uploads.get(upload.pk)
            if upload.pk not in self.samples or (
                upload.file and (scanned is None or scanned[0] != upload.file.name)
            ):
                self.scan_upload(upload)
        for job in _reported_jobs():
            scanned = self.reports.get(job.pk)
            if scanned is None or scanned[0] != job.report_file.name:
                self.scan_report(job, uploads)

    def apply_to_rows(self, customer_pk: int, work: _FileWork) -> None:
        """Blank the files, samples and reports naming the customer (rows now, files later)."""
        needles = self.needles_of[customer_pk]

        def concerns(hits: Hits) -> bool:
            return hits is ANY or customer_pk in hits

        blank = {pk for pk, (_, hits) in self.uploads.items() if concerns(hits)}
        sampled = {pk for pk, hits in self.samples.items() if customer_pk in hits}
        for upload in Upload.objects.filter(pk__in=blank | sampled).order_by("pk"):
            detected = dict(upload.detected or {})
            kept = _sample_rows_kept(upload, self.mappings.get(upload.pk), needles)
            if kept is not None:
                detected["sample"] = kept
            fields = ["detected"]
            if (
                upload.pk in blank
                and upload.file
                and upload.file.name == self.uploads[upload.pk][0]
            ):
                work.deletes.append((upload.file.storage, upload.file.name))
                work.uploads_removed += 1
                upload.file = ""
                detected[FILE_REMOVED] = "customer erasure"
                fields.append("file")
            if fields != ["detected"] or kept is not None:
                upload.detected = detected
                upload.save(update_fields=fields)
        matched = [pk for pk, (_, hits, _) in self.reports.items() if concerns(hits)]
        for job in Job.objects.filter(pk__in=matched).exclude(report_file="").order_by("pk"):
            name, hits, columns = self.reports[job.pk]
            if job.report_file.name != name:
                continue
            # Copied only now, and only a report that names the customer (or is unreadable).
            copy = ANY if hits is ANY else _Report(job, columns).redacted_copy(needles)
            if copy is None:
                continue
            work.reports_redacted += 1
            if copy is ANY:
                work.deletes.append((job.report_file.storage, job.report_file.name))
                Job.objects.filter(pk=job.pk).update(report_file="")
            else:
                work.replaces.append((copy, Path(job.report_file.path)))


def _import_mappings() -> dict[int, dict]:
    """Upload pk -> the mapping its import job used (uploads never imported have none)."""
    mappings: dict[int, dict] = {}
    jobs = Job.objects.filter(kind__in=_FILE_JOB_KINDS).values_list("params", flat=True)
    for params in jobs.iterator(chunk_size=2000):
        upload_id = (params or {}).get("upload_id")
        if isinstance(upload_id, int):
            mappings[upload_id] = (params or {}).get("mapping") or {}
    return mappings


def _reported_jobs():
    return Job.objects.exclude(report_file="").only("pk", "params", "report_file").order_by("pk")


def customer_erasure_scan(*, customers: Iterable[Customer]) -> ErasureScan:
    """Read every stored upload and report once, noting which of the customers each names.

    Takes no lock and writes nothing: call it before `customer_erase` (several erasures can
    share one scan). Upload files are read column by column through the import core, and
    only their customer-id and email columns are compared; reports are read as CSV.
    """
    needles: dict[str, set[int]] = {}
    needles_of: dict[int, frozenset[str]] = {}
    for customer in customers:
        needles_of[customer.pk] = _needles(customer)
        for value in needles_of[customer.pk]:
            needles.setdefault(value, set()).add(customer.pk)
    scan = ErasureScan(needles=needles, needles_of=needles_of, mappings=_import_mappings())
    if not needles:
        return scan
    uploads = {u.pk: u for u in Upload.objects.order_by("pk")}
    for upload in uploads.values():
        scan.scan_upload(upload)
    for job in _reported_jobs():
        scan.scan_report(job, uploads)
    return scan
