"""Campaign results import: a campaign tool's per-recipient report of an export, read back.

The marketer sends an export (``copygen.services.exports``), then uploads what the tool
reports per recipient. The flow and its checks are the data imports' own
(``marketing.services.imports``): ``results_upload_create`` stores and sniffs the file,
the marketer confirms the column mapping, ``results_import_start`` queues a Job of kind
RESULTS_IMPORT, and ``results_import_run`` (its task) claims it, streams the file through
the pure cleaner (kind "campaign_results": flags, counts, revenue, times, consistency) and
writes everything in one transaction. Rejected rows go to the job's report (file, row,
column, value, reason), exactly as an import's.

**Who is each row.** Against the chosen export only: a draft id finds the recipient sent
that draft (a segment draft went to many: the row then needs a customer id or email), a
customer id finds the recipient with that external id, an email the recipient with that
address (trimmed, ignoring case). Several given must agree. A customer held out in the
brief's control group was sent nothing and is rejected as such; an erased one without
naming them. A variant, export or brief column must match what was sent; a SKU must be the
catalog's. Rows of one recipient are combined (``combine_results``: any yes wins, revenue
adds up, the earliest time is kept).

**What is written**, in one transaction under the catalog's import lock (so a bad file or a
failed, cancelled or killed job changes nothing): one `CampaignResult` per (export,
customer) — a newer report replaces the recipient's older numbers, recipients not in the
file keep theirs — with variant, locale and draft copied from the `ExportRecipient` and the
channel from the export. Clicks and conversions become behaviour events, so profiles and
recommendations learn from them: kind "click", and "purchase" valued at the revenue
(quantity 1), for the row's SKU or else the draft's first product (no product: no event,
counted), at the flag's time, else the send time, else when the export finished; source
``campaign:<export id>``. Their ids hash ``campaign:<export>:<customer pk>:<kind>`` the way
the importer and the API hash an explicit event id, so a re-import stores each once; an
event whose values changed is replaced, one the newer report no longer supports removed.
Once committed, a profile refresh is queued when events changed, and the import is audited
(ids and counts only).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models.functions import Lower, Trim
from django.template.defaultfilters import pluralize

from copygen.models import CampaignResult, ControlMember, Draft, Export, ExportRecipient
from marketing.analytics.importing import (
    Cleaner,
    CleanOptionError,
    CleanOptions,
    ImportFileError,
    Issue,
)
from marketing.analytics.importing.formats import ROW_COLUMN
from marketing.analytics.importing.keys import combine, hash_scalar, hash_strings, to_ids
from marketing.analytics.importing.kinds import RESULT_COLUMNS, combine_results
from marketing.models import AuditEvent, Event, EventKind, Job, Product, Upload
from marketing.permissions import require_perm
from marketing.services.audit import audit
from marketing.services.customers import CUSTOMER_ERASED, customer_suppression
from marketing.services.imports.filejob import (
    FileJobOutcome,
    UploadReader,
    file_job_run,
    lock_catalog,
    refused_values_as_file_errors,
)
from marketing.services.imports.report import IssueWriter
from marketing.services.imports.uploads import (
    UPLOAD_FILE_REMOVED,
    store_upload,
    upload_job_start,
)

logger = logging.getLogger(__name__)

ADD_PERM = "copygen.add_campaignresult"
VIEW_PERM = "copygen.view_campaignresult"
KIND = Upload.Kind.CAMPAIGN_RESULTS
IDENTITIES = ("draft", "customer", "email")  # in the order a row is matched
CONTROL_REASON = "customer is in the control group (held out: nothing was sent)"
TIME_LIMIT_ERROR = (
    "The import reached the workers' time limit (CELERY_TASK_SOFT_TIME_LIMIT) and stopped; "
    "nothing was changed."
)
_RESULT_FIELDS = (
    "brief",
    "draft",
    "variant",
    "locale",
    "channel",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "converted",
    "revenue",
    "sent_at",
    "opened_at",
    "clicked_at",
    "converted_at",
    "upload",
    "updated_at",
)
_EVENT_FIELDS = ("catalog_id", "customer_id", "product_id", "kind", "quantity", "value")
_EVENT_FIELDS += ("occurred_at", "source")
# The cleaner's counts that mean something for results (the rest count products and events).
_CLEANING_SHOWN = (
    "duplicate_lines",
    "formula_cells",
    "ambiguous_dates_assumed_month_first",
    "ambiguous_dates_assumed_day_first",
)


def source_of(export_id: int) -> str:
    """The ``source`` of the events an export's results record (recommendation comparisons
    read it)."""
    return f"campaign:{export_id}"


def result_event_ids(
    *, catalog_id: int, export_id: int, customer_ids: list[int], kind: str
) -> np.ndarray:
    """The primary keys of results events: the importer's and the API's id for the explicit
    event id ``campaign:<export>:<customer pk>:<kind>`` in the catalog (int64 per customer)."""
    keys = np.array([f"{source_of(export_id)}:{c}:{kind}" for c in customer_ids], dtype=object)
    return to_ids(combine([hash_scalar(int(catalog_id)), hash_strings(keys)], len(keys)))


def result_event_id(*, catalog_id: int, export_id: int, customer_id: int, kind: str) -> int:
    """`result_event_ids` of one customer."""
    ids = result_event_ids(
        catalog_id=catalog_id, export_id=export_id, customer_ids=[customer_id], kind=kind
    )
    return int(ids[0])


# ----------------------------------------------------------------------------- start


def _require_importable(export: Export) -> None:
    if export.status != Job.Status.SUCCEEDED:
        raise ValidationError(
            f"Export #{export.pk} has not succeeded, so nothing was sent from it: only a "
            "finished export can take campaign results."
        )


def results_upload_create(*, export: Export, file: UploadedFile, user) -> Upload:
    """Store and sniff a results file for the export (its catalog's upload). Needs
    copygen.add_campaignresult; ValidationError for an export that did not succeed,
    ImportFileError for an empty, oversized or unreadable file."""
    require_perm(user, ADD_PERM)
    _require_importable(export)
    return store_upload(
        catalog=export.catalog, kind=KIND, name=file.name, size=file.size, fileobj=file, user=user
    )


def results_import_start(
    *, export: Export, upload: Upload, mapping: dict[str, str | None], user
) -> Job:
    """Queue the import of an uploaded results file into the export (enqueued on commit);
    a second start of the same upload returns the first job. ValidationError when the
    export did not succeed, the upload is not a results file of its catalog or lost its
    file, or the mapping names columns the file lacks or no draft / customer / email."""
    require_perm(user, ADD_PERM)
    _require_importable(export)
    if upload.kind != KIND or upload.catalog_id != export.catalog_id:
        raise ValidationError("This upload is not a results file of the export's catalog.")
    return upload_job_start(
        upload=upload,
        mapping=mapping,
        user=user,
        job_kind=Job.Kind.RESULTS_IMPORT,
        catalog=export.catalog,
        message=f"Queued: results of export #{export.pk} from {upload.original_name}",
        params={"export_id": export.pk, "brief_id": export.brief_id},
    )


# ----------------------------------------------------------------------------- run


def results_import_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """The job's task: read, check and store the file; safe to call again (a finished job
    returns at once, a re-delivered one starts from scratch: its attempt rolled back)."""
    file_job_run(
        job_id=job_id,
        worker=worker,
        celery_id=celery_id,
        body=_import,
        time_limit_error=TIME_LIMIT_ERROR,
    )


def _import(job: Job, issues_path: Path) -> FileJobOutcome:
    params = job.params or {}
    upload = Upload.objects.select_related("catalog").filter(pk=params.get("upload_id")).first()
    if upload is None:
        raise ImportFileError("the upload was deleted")
    if not upload.file:  # removed by a customer erasure
        raise ImportFileError(UPLOAD_FILE_REMOVED)
    export = (
        Export.objects.select_related("brief", "catalog", "job")
        .filter(pk=params.get("export_id"))
        .first()
    )
    if export is None:
        raise ImportFileError("the export was deleted while the import was queued")
    if export.status != Job.Status.SUCCEEDED:
        raise ImportFileError(f"export #{export.pk} has not succeeded; nothing was sent from it")
    catalog = export.catalog
    reader = UploadReader(job, upload)
    try:
        cleaner = Cleaner(
            KIND,
            params.get("mapping", {}),
            CleanOptions(catalog_id=catalog.pk, timezone=catalog.timezone),
        )
    except CleanOptionError as exc:
        raise ImportFileError(
            f"catalog setting {exc.option!r}: {exc.reason}; correct it on the catalog's page"
        ) from None
    issues = IssueWriter(issues_path, upload.original_name)
    try:
        with (
            refused_values_as_file_errors(f"results job {job.pk}", logger),
            transaction.atomic(),
        ):
            lock_catalog(catalog)
            resolver = _Resolver(export, cleaner.mapping)
            parts: list[pd.DataFrame] = []
            for frame in reader.frames():
                chunk = cleaner.clean(frame)
                resolved, problems = resolver.resolve(chunk.results)
                issues.write(sorted([*chunk.issues, *problems], key=lambda i: i.row))
                if not resolved.empty:
                    parts.append(resolved)
            done = reader.done
            reader.report(done, done, "Saving results", force=True)
            rows = pd.concat(parts, ignore_index=True) if parts else resolver.empty()
            merged, merged_rows = combine_results(rows, "customer_pk")
            results = _write_results(export, upload, resolver, merged)
            events = _write_events(export, resolver, merged)
            counts = dict(cleaner.counts)
            summary = {
                "export_id": export.pk,
                "brief_id": export.brief_id,
                "rows_read": counts.pop("rows_read", done),
                "rejected": len(issues.rejected_rows),
                "kept_as_text": issues.kept,
                "issues": issues.lines,
                "results": results,
                "matched_by": dict(resolver.matched_by),
                "merged_rows": merged_rows,
                "events": events,
                "cleaning": {k: v for k, v in counts.items() if v and k in _CLEANING_SHOWN},
            }
            audit(
                actor=job.created_by,
                action=AuditEvent.Action.RESULTS_IMPORTED,
                obj=export,
                details={
                    "job_id": job.pk,
                    "upload_id": upload.pk,
                    "brief_id": export.brief_id,
                    "rows_read": summary["rows_read"],
                    "rejected": summary["rejected"],
                    "results_created": results["created"],
                    "results_updated": results["updated"],
                    "events_recorded": events["recorded"],
                },
            )
            reader.report(done, done, "Committing", force=True)
    finally:
        issues.close()
    recipients, rows_read = results["recipients"], summary["rows_read"]
    return FileJobOutcome(
        summary=summary,
        message=f"Imported results of {recipients:,} recipient{pluralize(recipients)} "
        f"from {rows_read:,} row{pluralize(rows_read)}",
        events_changed=any(events[k] for k in ("inserted", "replaced", "removed")),
    )


# ----------------------------------------------------------------------------- who


class _Keys:
    """Recipient positions by one key (external id, email, draft id), with how many
    recipients share each key (a segment draft goes to many)."""

    def __init__(self, keys: np.ndarray, positions: np.ndarray) -> None:
        frame = pd.DataFrame({"key": keys, "pos": positions})
        frame = frame[frame["key"].notna() & (frame["key"] != "")]
        first = frame.drop_duplicates("key")
        self.index = pd.Index(first["key"].to_numpy(dtype=object))
        self.positions = first["pos"].to_numpy(dtype=np.int64)
        self.counts = frame.groupby("key", sort=False).size().reindex(self.index).to_numpy()

    def find(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position or -1, how many recipients share the key: 0 when none) per value."""
        at = self.index.get_indexer(np.asarray(values, dtype=object))
        found = at >= 0
        pos = np.where(found, self.positions[np.where(found, at, 0)] if len(at) else 0, -1)
        return pos.astype(np.int64), np.where(found, self.counts[np.where(found, at, 0)], 0)


@dataclass
class _Resolver:
    """Matches cleaned rows to the export's recipients; rejects the others with a reason
    naming the file's column."""

    export: Export
    mapping: dict[str, str | None]
    matched_by: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        rows = list(
            ExportRecipient.objects.filter(export=self.export)
            .annotate(address=Lower(Trim("customer__email")))
            .values_list(
                "customer_id", "draft_id", "variant", "locale", "customer__external_id", "address"
            )
            .order_by("customer_id")
        )
        columns = ["customer_pk", "draft_id", "variant", "locale", "external_id", "email"]
        recipients = pd.DataFrame.from_records(rows, columns=columns)
        recipients["customer_pk"] = recipients["customer_pk"].astype(np.int64)
        recipients["draft_id"] = recipients["draft_id"].astype("Int64")  # <NA>: draft deleted
        self.recipients = recipients
        self.at = pd.Index(recipients["customer_pk"])  # customer pk -> recipient position
        pos = np.arange(len(recipients))
        self.by_draft = _Keys(_id_texts(recipients["draft_id"]), pos)
        self.by_customer = _Keys(recipients["external_id"].to_numpy(dtype=object), pos)
        self.by_email = _Keys(recipients["email"].to_numpy(dtype=object), pos)
        # Each recipient's identities as rows give them (to check several given agree).
        self.identities = {
            "draft": _id_texts(recipients["draft_id"]),
            "customer": recipients["external_id"].to_numpy(dtype=object),
            "email": recipients["email"].to_numpy(dtype=object),
        }
        self.draft_customers: dict[int, int | None] = {}  # drafts no recipient got -> customer
        control = list(
            ControlMember.objects.filter(brief_id=self.export.brief_id)
            .annotate(address=Lower(Trim("customer__email")))
            .values_list("customer_id", "customer__external_id", "address")
        )
        self.control_pks = {pk for pk, _, _ in control}
        self.control_ids = {ext for _, ext, _ in control}
        self.control_emails = {email for _, _, email in control if email}
        self.suppressed = customer_suppression()
        self.products: dict[str, int] = {}  # SKU -> product pk, filled per chunk
        self.catalog = self.export.catalog

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "customer_pk"])

    def col(self, name: str) -> str:
        return self.mapping.get(name) or name

    def resolve(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, list[Issue]]:
        """The rows that name a recipient (with ``customer_pk``), and issues for the rest."""
        if rows.empty:
            return rows.assign(customer_pk=pd.Series(dtype=np.int64)), []
        n = len(rows)
        draft = _id_texts(rows["draft"])
        customer = rows["customer"].to_numpy(dtype=object)
        email = rows["email"].to_numpy(dtype=object)
        given = {"draft": draft != "", "customer": customer != "", "email": email != ""}
        found = {
            "draft": self.by_draft.find(draft),
            "customer": self.by_customer.find(customer),
            "email": self.by_email.find(email),
        }
        pos = np.full(n, -1, dtype=np.int64)
        via = np.full(n, "", dtype=object)
        for name in IDENTITIES:
            at, count = found[name]
            take = (pos < 0) & given[name] & (count == 1)
            pos[take] = at[take]
            via[take] = name
        values = {"draft": draft, "customer": customer, "email": email}
        reasons: list[list[tuple[str, str, str]]] = [[] for _ in range(n)]
        export_id = self.export.pk
        unmatched = np.flatnonzero(pos < 0)
        self._load_draft_customers({int(d) for d in draft[unmatched].tolist() if d and d.isdigit()})
        for i in unmatched.tolist():
            reasons[i].append(self._unmatched(i, given, found, values))
        # Every identity given must name the recipient found.
        mine = self.identities
        for i in np.flatnonzero(pos >= 0).tolist():
            p = int(pos[i])
            for name in IDENTITIES:
                if given[name][i] and name != via[i] and mine[name][p] != values[name][i]:
                    reasons[i].append(
                        (
                            self.col(name),
                            str(values[name][i]),
                            f"not the recipient that {self.col(via[i])} names",
                        )
                    )
        # What was sent: variant, export and brief.
        variants = self.recipients["variant"].to_numpy(dtype=np.int64)
        sent = {
            "variant": variants[np.maximum(pos, 0)] if len(variants) else np.zeros(n, np.int64),
            "export": np.full(n, export_id),
            "brief": np.full(n, self.export.brief_id),
        }
        checks = (
            ("variant", "variant {v} does not match the variant sent ({sent})"),
            ("export", "row is for export {v}, not export {sent}"),
            ("brief", "row is for brief {v}, not brief {sent}"),
        )
        for name, message in checks:
            given_values = rows[name].to_numpy(dtype=object)
            for i in np.flatnonzero(rows[name].notna().to_numpy() & (pos >= 0)).tolist():
                v, was = int(given_values[i]), int(sent[name][i])
                if v != was:
                    reasons[i].append((self.col(name), str(v), message.format(v=v, sent=was)))
        # Products: the SKU must be the catalog's.
        skus = rows["sku"].to_numpy(dtype=object)
        self._load_products({s for s in skus.tolist() if s})
        for i in np.flatnonzero(skus != "").tolist():
            if skus[i] not in self.products:
                reasons[i].append(
                    (self.col("sku"), str(skus[i]), f"unknown SKU in catalog '{self.catalog.name}'")
                )
        issues: list[Issue] = []
        row_numbers = rows[ROW_COLUMN].to_numpy(dtype=np.int64)
        keep = np.ones(n, dtype=bool)
        for i, found_reasons in enumerate(reasons):
            if found_reasons:
                keep[i] = False
                issues.extend(Issue(int(row_numbers[i]), c, v, r) for c, v, r in found_reasons)
        self.matched_by.update(via[keep].tolist())
        kept = rows.loc[keep].copy()
        kept["customer_pk"] = self.recipients["customer_pk"].to_numpy(dtype=np.int64)[pos[keep]]
        return kept, issues

    def _unmatched(self, i: int, given, found, values) -> tuple[str, str, str]:
        """Why row i names no recipient (no identity it gives names exactly one): the most
        specific identity given, customer id before email before draft."""
        not_sent = f"not a recipient of export {self.export.pk}"
        for name in ("customer", "email", "draft"):
            if not given[name][i]:
                continue
            value = str(values[name][i])
            count = int(found[name][1][i])
            if count > 1:
                other = "customer id" if name == "email" else "customer id or email"
                return (
                    self.col(name),
                    value,
                    f"{count} recipients of export {self.export.pk} share this {name}: "
                    f"map a {other} column to tell them apart",
                )
            if name == "customer" and value not in self.control_ids:
                if self.suppressed.matches([value])[0]:
                    return self.col(name), "", CUSTOMER_ERASED  # never name them
            elif self._in_control(name, value):
                return self.col(name), value, CONTROL_REASON
            return self.col(name), value, not_sent
        return self.col("draft"), "", not_sent

    def _in_control(self, name: str, value: str) -> bool:
        """Whether the customer a row names is held out in the brief's control group."""
        if name == "customer":
            return value in self.control_ids
        if name == "email":
            return value in self.control_emails
        customer = self.draft_customers.get(int(value))
        return customer is not None and customer in self.control_pks

    def _load_draft_customers(self, draft_ids: set[int]) -> None:
        """The customers of the brief's drafts that rows name but no recipient got."""
        missing = sorted(d for d in draft_ids if d not in self.draft_customers)
        self.draft_customers.update(dict.fromkeys(missing))
        for start in range(0, len(missing), 900):  # SQLite's bound-variable limit
            self.draft_customers.update(
                Draft.objects.filter(
                    pk__in=missing[start : start + 900], brief_id=self.export.brief_id
                ).values_list("pk", "customer_id")
            )

    def _load_products(self, skus: set[str]) -> None:
        missing = [s for s in skus if s not in self.products]
        for start in range(0, len(missing), 900):  # SQLite's bound-variable limit
            self.products.update(
                Product.objects.filter(
                    catalog=self.catalog, sku__in=missing[start : start + 900]
                ).values_list("sku", "pk")
            )


def _id_texts(ids: pd.Series) -> np.ndarray:
    """Whole-number ids (Int64, <NA> for none) as text ("" for none), for key lookups."""
    return np.array(["" if pd.isna(v) else str(int(v)) for v in ids.tolist()], dtype=object)


# ----------------------------------------------------------------------------- write


def _decimal(value: float) -> Decimal | None:
    return None if pd.isna(value) else Decimal(f"{float(value):.2f}")


def _when(value) -> Any:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _write_results(
    export: Export, upload: Upload, resolver: _Resolver, merged: pd.DataFrame
) -> dict[str, int]:
    """Upsert one CampaignResult per recipient in the file; others keep theirs."""
    if merged.empty:
        return {"recipients": 0, "created": 0, "updated": 0}
    sent = resolver.recipients.iloc[resolver.at.get_indexer(merged["customer_pk"])]
    drafts = sent["draft_id"].to_numpy(dtype=object)
    variants = sent["variant"].to_numpy(dtype=np.int64)
    locales = sent["locale"].to_numpy(dtype=object)
    pks = merged["customer_pk"].to_numpy(dtype=np.int64).tolist()
    existing: set[int] = set()
    for start in range(0, len(pks), 900):
        existing.update(
            CampaignResult.objects.filter(
                export=export, customer_id__in=pks[start : start + 900]
            ).values_list("customer_id", flat=True)
        )
    objs = []
    for i, r in enumerate(merged.itertuples(index=False)):
        objs.append(
            CampaignResult(
                export=export,
                brief_id=export.brief_id,
                customer_id=int(r.customer_pk),
                draft_id=None if pd.isna(drafts[i]) else int(drafts[i]),
                variant=int(variants[i]),
                locale=locales[i],
                channel=export.channel,
                sent=bool(r.sent),
                delivered=None
                if r.delivered is None or pd.isna(r.delivered)
                else bool(r.delivered),
                opened=bool(r.opened),
                clicked=bool(r.clicked),
                converted=bool(r.converted),
                revenue=_decimal(r.revenue),
                sent_at=_when(r.sent_at),
                opened_at=_when(r.opened_at),
                clicked_at=_when(r.clicked_at),
                converted_at=_when(r.converted_at),
                upload=upload,
            )
        )
    CampaignResult.objects.bulk_create(
        objs,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["export", "customer"],
        update_fields=list(_RESULT_FIELDS),
    )
    return {
        "recipients": len(objs),
        "created": len(objs) - len(existing),
        "updated": len(existing),
    }


def _write_events(export: Export, resolver: _Resolver, merged: pd.DataFrame) -> dict[str, int]:
    """Clicks and conversions of the recipients in the file as events (see the module
    docstring): inserted, replaced when their values changed, removed when the newer report
    no longer shows them."""
    counts = {"recorded": 0, "inserted": 0, "replaced": 0, "unchanged": 0, "removed": 0}
    counts["without_product"] = 0
    if merged.empty:
        return counts
    catalog_id = export.catalog_id
    sent = resolver.recipients.iloc[resolver.at.get_indexer(merged["customer_pk"])]
    drafts = [None if pd.isna(d) else int(d) for d in sent["draft_id"].to_numpy(dtype=object)]
    draft_products = _draft_products(export, [d for d in drafts if d is not None])
    fallback = export.finished_at
    customers = merged["customer_pk"].to_numpy(dtype=np.int64).tolist()
    ids = {
        kind: result_event_ids(
            catalog_id=catalog_id, export_id=export.pk, customer_ids=customers, kind=kind
        ).tolist()
        for kind in (EventKind.CLICK, EventKind.PURCHASE)
    }
    candidates = ids[EventKind.CLICK] + ids[EventKind.PURCHASE]
    wanted: dict[int, Event] = {}
    for i, r in enumerate(merged.itertuples(index=False)):
        customer_pk = customers[i]
        for kind, happened, when in (
            (EventKind.CLICK, r.clicked, r.clicked_at),
            (EventKind.PURCHASE, r.converted, r.converted_at),
        ):
            pk = ids[kind][i]
            if not happened:
                continue
            if r.sku:
                product_id = resolver.products[r.sku]
            else:
                product_id = draft_products.get(drafts[i]) if drafts[i] is not None else None
            if product_id is None:
                counts["without_product"] += 1
                continue
            occurred = _when(when) or _when(r.sent_at) or fallback
            wanted[pk] = Event(
                id=pk,
                catalog_id=catalog_id,
                customer_id=customer_pk,
                product_id=product_id,
                kind=kind,
                quantity=1,
                value=_decimal(r.revenue) if kind == EventKind.PURCHASE else None,
                occurred_at=occurred,
                source=source_of(export.pk),
            )
    stored: dict[int, tuple] = {}
    for start in range(0, len(candidates), 900):
        for row in Event.objects.filter(pk__in=candidates[start : start + 900]).values_list(
            "pk", *_EVENT_FIELDS
        ):
            stored[row[0]] = row[1:]
    stale = [pk for pk in stored if pk not in wanted]
    changed = [pk for pk, ev in wanted.items() if pk in stored and stored[pk] != _facts(ev)]
    new = [pk for pk in wanted if pk not in stored]
    gone = stale + changed
    for start in range(0, len(gone), 900):
        Event.objects.filter(pk__in=gone[start : start + 900]).delete()
    Event.objects.bulk_create([wanted[pk] for pk in new + changed], batch_size=2000)
    counts.update(
        inserted=len(new),
        replaced=len(changed),
        removed=len(stale),
        unchanged=len(wanted) - len(new) - len(changed),
        recorded=len(new) + len(changed),
    )
    return counts


def _facts(event: Event) -> tuple:
    """An unsaved event's values as `_EVENT_FIELDS` reads them back."""
    return tuple(getattr(event, name) for name in _EVENT_FIELDS)


def _draft_products(export: Export, draft_ids: list[int]) -> dict[int, int]:
    """Draft id -> its first product, when the draft and that product still exist."""
    firsts: dict[int, int] = {}
    unique = sorted(set(draft_ids))
    for start in range(0, len(unique), 900):
        for pk, products in Draft.objects.filter(pk__in=unique[start : start + 900]).values_list(
            "pk", "product_ids"
        ):
            if products:
                firsts[pk] = int(products[0])
    alive = set()
    values = sorted(set(firsts.values()))
    for start in range(0, len(values), 900):
        alive.update(
            Product.objects.filter(
                catalog_id=export.catalog_id, pk__in=values[start : start + 900]
            ).values_list("pk", flat=True)
        )
    return {draft: product for draft, product in firsts.items() if product in alive}
