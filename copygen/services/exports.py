"""Exports: a brief's approved copy as a file a campaign tool imports, written by a job.

``export_create`` (needs copygen.add_export) checks the request — a preset that takes the
brief's channel (`copygen.exporting.preset_for`), a control share of 0-50 %, approved drafts
to export, no other export of the brief running — records an `Export`, audits it and queues
a `Job` of kind COPY_EXPORT; its task runs ``export_run``:

1. **Who.** Per-customer briefs: the brief's approved drafts of customers who are still in
   the brief's segment, read with one query ordered by customer and streamed
   (``.iterator(chunk_size=…)``), grouped per customer. Segment briefs: the approved
   segment drafts (a few) for each member of the segment, members streamed the same way.
   Erased customers never; customers without the consent of the channel the file feeds are
   left out and counted (email → consent_email, sms → consent_sms, push → consent_push,
   google_ads / meta_ads → consent_ads, product_text → none). Google and Meta audience lists
   go to an ad platform whatever the brief's channel, so they need consent_ads.
2. **Which copy.** One row per customer: in their language when an approved draft is in it,
   else in the first of the brief's languages that has one. Without a split, the best ranked
   approved variant (the lowest number: 1 unless 1 is not approved). With
   ``split_variants`` (an A/B test), every approved variant of that language is used: each
   customer gets one, drawn by a seeded hash of (seed, customer), so the groups are about
   equal and the same customer gets the same variant in every export of the brief. Each row
   written is recorded as an `ExportRecipient` (export, draft, customer, variant, locale):
   campaign results join back to the draft and variant through it. Audience presets (Google,
   Meta) carry no copy, so they take no split; being one row per customer, they are
   de-duplicated per customer by construction.
3. **Control group.** Drawn once per brief: the first export that asks for one (share > 0
   and succeeded) fixes its share; the seed is the brief's (every export of a brief gets the
   seed of its first export). A consenting customer is in the control group when a seeded
   hash of (seed, customer) falls below the share — independent of everyone else, so about
   share × audience are held out, the exact number is recorded, and a customer keeps their
   place in every later export: the same people stay held out (customers recorded earlier
   as `ControlMember`s are held out whatever later exports ask), newcomers are drawn by the
   same rule. Held-out customers are recorded (`ControlMember`, with the export that first
   held them out) and never written to a file.
4. **Write.** Each row goes through the preset (`Preset.render`: limits, identifiers, never a
   silent cut: a row that does not fit is left out with a warning naming draft, column and
   reason) into a temp file in DATA_DIR/exports, streamed: memory holds one batch of rows,
   a bounded product cache and the ids of the rows written (for the recipients' COPY),
   never the list of drafts. A file over the target's upload limit gets a warning (it is
   not cut). Progress is reported about once a second; cancel stops at the next report and
   keeps nothing.
5. **Finish**, in one transaction: this export's recipient and control rows are replaced
   (delete + COPY / bulk insert) — the recipients are also the drafts' export marks
   (``draft.export_recipients``; updating every draft row would cost more than the file) —
   the temp file is renamed over the export's file, the counts are saved and the job
   succeeds. A re-delivered task (the worker died) starts again from scratch
   and overwrites the file; an attempt that lost its job to another worker writes nothing.
   What a killed attempt left on disk (its temp file, or the file it moved in place before
   its commit) is deleted when the next attempt starts, or when the job ends without one
   (given up, cancelled).

Erasure (`exports_forget_customer`, on `customer_erased` once an erasure commits): the
customer's control-group rows and recipient rows go, warnings naming them are dropped, and
every export file that holds them is deleted (not regenerated: a file may already have been
uploaded somewhere, and a regenerated one would silently differ; the export's page says
why the file is gone and the marketer exports again). If that hook fails, the download
checks again and refuses (deleting the file) while any of its recipients is erased. Deleting
an export (with its brief or catalog) deletes its file once the deletion commits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import hashlib
import itertools
import json
import logging
import operator
import os
import re
import secrets
import traceback
import uuid
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import IO, Any, NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import BooleanField, Exists, F, Func, OuterRef, TextField, Value
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.text import slugify

from copygen.engine.facts import format_price
from copygen.engine.types import LOCALES
from copygen.exporting import PRESETS, ExportProduct, ExportRow, Preset, open_writer, preset_for
from copygen.exporting.presets.base import language_code
from copygen.exporting.rows import CODES
from copygen.models import (
    CHANNEL_CONSENT,
    Brief,
    CampaignResult,
    ControlMember,
    Draft,
    Export,
    ExportRecipient,
    export_storage,
)
from copygen.services.briefs import brief_lock
from marketing.models import AuditEvent, Customer, Job, Product, SegmentMembership
from marketing.permissions import require_perm
from marketing.services.audit import audit
from marketing.services.customers import customer_erased, customer_erased_ids
from marketing.services.jobs import (
    JobCancelled,
    ProgressReporter,
    job_claim,
    job_create,
    job_enqueue,
    job_fail,
    job_heartbeat,
    job_mark_cancelled,
    job_release,
    job_succeed,
)

logger = logging.getLogger(__name__)

ADD_PERM = "copygen.add_export"
DOWNLOAD_PERM = "copygen.download_export"
MAX_CONTROL_SHARE = 50
CHUNK_SIZE = 2_000  # rows fetched per round trip of the streamed query
BATCH = 500  # customers whose products are resolved with one query
PRODUCT_CACHE = 20_000  # (product, locale) entries kept
INSERT_BATCH = 5_000

FORMAT_EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "json": ".json"}
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "json": "application/json",
}

# What each preset is, in a line (the export form shows it next to the choice).
PRESET_HELP = {
    "mailchimp": "Mailchimp contact import (CSV): email, first and last name, subject, "
    "preheader, the body over BODY_1…BODY_10 merge fields, call to action, three product "
    "slots and tags. At most 255 bytes per field.",
    "klaviyo": "Klaviyo list upload (CSV): email (email copy) or phone number (SMS copy) with "
    "the copy and products as tailor_* profile properties. Files up to 50 MB.",
    "hubspot": "HubSpot contacts import (CSV): email, name and phone with the copy as "
    "tailor_* contact properties (create them first).",
    "braze_csv": "Braze user import (CSV) by external id: default attributes plus the copy as "
    "tailor_* custom attributes (255 characters each; long text over numbered ones).",
    "braze_json": "Braze /users/track body (JSON) with the same attributes; send the objects "
    "75 per request.",
    "google_customer_match": "Google Ads Customer Match list (CSV): SHA-256 hashed email, "
    "phone and name with country and zip. No copy; customers need the ads consent.",
    "meta_custom_audience": "Meta custom audience list (CSV): hashed email, phone, name, zip "
    "and country. No copy; customers need the ads consent.",
    "generic_csv": "Tailor's own CSV: customer id, the copy's fields, products, brief and "
    "draft ids. No other personal data.",
    "generic_jsonl": "Tailor's own JSON Lines: the same fields as the generic CSV, one object "
    "per line with real lists and numbers.",
}

# Reasons a customer of the audience got no row (Export.skipped keys), with the preset's own.
SKIP_LABELS = {
    "no_consent": "no consent for the channel",
    "not_in_segment": "no longer in the brief's segment",
    **CODES,
}
FILE_TOO_LARGE = "file_too_large"
WARNING_LABELS = {**CODES, FILE_TOO_LARGE: "the file is larger than the target accepts"}

ERASED_FILE_REMOVED = (
    "A customer in this file was erased, so the file was deleted. Export again for a file "
    "without them."
)
_PHONE_KEYS = ("phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "cell")
_PHONE_KEYS += ("cellphone", "telephone", "tel")
_ZIP_KEYS = ("zip", "zipcode", "postcode", "postalcode", "plz")
_KEY_CLEAN = re.compile(r"[^a-z0-9]")


class ExportError(Exception):
    """An expected reason the job cannot go on; the job fails with this message."""


# ----------------------------------------------------------------------------- choices


def export_presets_for(channel: str) -> list[Preset]:
    """The presets that take copy of ``channel``, in PRESETS order."""
    return [p for p in PRESETS.values() if channel in p.channels]


def consent_field(preset: Preset, channel: str) -> str | None:
    """The Customer field a row needs: ads for audience lists, else the channel's."""
    if preset.audience:
        return "consent_ads"
    return CHANNEL_CONSENT.get(channel)


@dataclasses.dataclass(frozen=True)
class ControlGroup:
    """A brief's control group: its share (percent), seed and the export that fixed it."""

    share: int
    seed: int
    export_id: int | None


def brief_seed(brief: Brief) -> int | None:
    """The seed of the brief's first export (every later export uses it)."""
    return Export.objects.filter(brief=brief).order_by("pk").values_list("seed", flat=True).first()


def brief_control_group(brief: Brief) -> ControlGroup | None:
    """The control group the brief's first succeeded export with a share fixed, or None."""
    first = (
        Export.objects.filter(brief=brief, control_share__gt=0, job__status=Job.Status.SUCCEEDED)
        .order_by("pk")
        .only("pk", "control_share", "seed")
        .first()
    )
    if first is None:
        return None
    return ControlGroup(share=first.control_share, seed=first.seed, export_id=first.pk)


def _active_export(brief: Brief) -> Export | None:
    return (
        Export.objects.filter(brief=brief, job__status__in=Job.ACTIVE)
        .select_related("job")
        .order_by("-pk")
        .first()
    )


def _approved(brief: Brief):
    drafts = Draft.objects.filter(brief=brief, status=Draft.Status.APPROVED)
    if brief.audience == Brief.Audience.SEGMENT:
        return drafts.filter(customer__isnull=True, audience_key=f"segment:{brief.segment_id}")
    return drafts.filter(customer__isnull=False)


# ----------------------------------------------------------------------------- create


def _clean_share(value: Any) -> int:
    error = ValidationError(
        f"The control group is a whole percentage from 0 to {MAX_CONTROL_SHARE}."
    )
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error
    try:
        share = int(value)
    except ValueError:
        raise error from None
    if not 0 <= share <= MAX_CONTROL_SHARE:
        raise error
    return share


@transaction.atomic
def export_create(
    *,
    user,
    brief: Brief,
    preset: str,
    excel_bom: bool = False,
    control_share: int = 0,
    split_variants: bool = False,
) -> Export:
    """Queue an export of the brief's approved copy (enqueued on commit). Needs
    copygen.add_export; ValidationError (keyed by field where one is at fault) when the
    preset does not take the brief's channel, the share is outside 0-50, there is nothing
    approved to export, or another export of the brief is still running. A brief whose
    control group is fixed keeps it: the export records that share, whatever was asked."""
    require_perm(user, ADD_PERM)
    locked = brief_lock(brief)
    errors: dict[str, list[str]] = {}
    chosen: Preset | None = None
    try:
        chosen = preset_for(str(preset), channel=locked.channel)
    except ValueError as exc:
        errors["preset"] = [str(exc)]
    try:
        share = _clean_share(control_share)
    except ValidationError as exc:
        errors["control_share"] = exc.messages
        share = 0
    if not isinstance(excel_bom, bool) or not isinstance(split_variants, bool):
        raise ValidationError("Choose yes or no for the Excel BOM and the variant split.")
    if chosen is not None and split_variants and chosen.audience:
        errors["split_variants"] = [
            f"{chosen.label} lists carry no copy, so there is nothing to split: export "
            "without a split."
        ]
    if chosen is not None and excel_bom and chosen.format != "csv":
        excel_bom = False  # the BOM is for spreadsheets reading CSV; JSON has none
    if errors:
        raise ValidationError(errors)
    assert chosen is not None
    if locked.segment_id is None:
        raise ValidationError(
            "The brief's segment no longer exists: edit the brief and choose a segment "
            "before exporting."
        )
    if not _approved(locked).exists():
        raise ValidationError(
            "Nothing to export: approve drafts of this brief first (only approved copy is "
            "exported)."
        )
    active = _active_export(locked)
    if active is not None:
        raise ValidationError(
            f"Export #{active.pk} of this brief is still {active.job.get_status_display().lower()}"
            "; wait for it to finish or cancel it."
        )
    group = brief_control_group(locked)
    if group is not None:
        share = group.share
    seed = brief_seed(locked)
    if seed is None:
        seed = secrets.randbits(62)
    export = Export.objects.create(
        catalog=locked.catalog,
        brief=locked,
        preset=chosen.key,
        channel=locked.channel,
        excel_bom=excel_bom,
        control_share=share,
        split_variants=split_variants,
        seed=seed,
        created_by=user,
    )
    job = job_create(
        kind=Job.Kind.COPY_EXPORT,
        user=user,
        catalog=locked.catalog,
        params={"export_id": export.pk, "brief_id": locked.pk},
        message=f"Queued: export “{locked.name}” for {chosen.label}",
    )
    export.job = job
    export.save(update_fields=["job"])
    audit(
        actor=user,
        action=AuditEvent.Action.EXPORT_CREATED,
        obj=export,
        details={
            "brief_id": locked.pk,
            "preset": chosen.key,
            "control_share": share,
            "split_variants": split_variants,
            "job_id": job.pk,
        },
    )
    job_enqueue(job)
    return export


# ----------------------------------------------------------------------------- run


def export_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """The export job's task: write the file and record what was written; safe to call
    again (a finished job returns at once, a re-delivered one starts from scratch)."""
    job = job_claim(job_id=job_id, worker=worker, celery_id=celery_id)
    if job is None:
        ended = Export.objects.filter(job_id=job_id).exclude(job__status__in=Job.ACTIVE).first()
        if ended is not None:  # given up, cancelled or done; not while another worker runs it
            _stray_files_delete(ended)
            _end(ended)
        return
    export_id = (job.params or {}).get("export_id")
    export = (
        Export.objects.select_related("brief", "brief__segment", "catalog", "job")
        .filter(pk=export_id)
        .first()
    )
    if export is None:
        job_fail(job_id=job.pk, error="The export was deleted before its job ran.")
        return
    _stray_files_delete(export)  # this attempt owns the job: earlier ones are gone
    try:
        with job_heartbeat(job.pk):
            _export_write(export, job, worker)
    except JobCancelled:
        _end(export, cancelled=True)
    except ExportError as exc:
        job_fail(job_id=job.pk, error=str(exc))
        _end(export)
    except SoftTimeLimitExceeded:
        job_fail(job_id=job.pk, error=TIME_LIMIT_ERROR)
        _end(export)
    except OperationalError:
        # Transient database trouble: the task retries; make the job claimable again.
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
        # The type and the traceback only: messages may quote customer data.
        logger.error("export job %s failed: %s\n%s", job.pk, type(exc).__name__, frames)
        job_fail(
            job_id=job.pk,
            error=f"Unexpected error ({type(exc).__name__}); no file was written.",
        )
        _end(export)


TIME_LIMIT_ERROR = (
    "The export reached the workers' time limit (CELERY_TASK_SOFT_TIME_LIMIT) and stopped; "
    "no file was written."
)


def _stray_files_delete(export: Export) -> None:
    """Delete what killed attempts at this export left in the directory: temp files, and a
    file moved into place by an attempt killed before its commit. They hold personal data
    and nothing else would ever delete them; the file the export records stays."""
    directory = export_storage().location
    keep = os.path.basename(export.file.name) if export.file else None
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for stray in names:
        if stray.startswith(f"export-{export.pk}.") and stray != keep:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, stray))


def _end(export: Export, *, cancelled: bool = False) -> None:
    if cancelled:
        with transaction.atomic():
            job = Job.objects.select_for_update().filter(pk=export.job_id).first()
            if job is not None and job.is_active:
                job_mark_cancelled(job_id=job.pk)
                Job.objects.filter(pk=job.pk).update(message="Cancelled; no file was written")
    Export.objects.filter(pk=export.pk, finished_at__isnull=True).update(finished_at=timezone.now())


class _Customer(NamedTuple):  # built per streamed row: a tuple (given positionally) is cheapest
    pk: int
    external_id: str
    email: str
    name: str
    country: str
    language: str
    attributes: dict
    consents: bool
    in_segment: bool
    control_recorded: bool


class _Draft(NamedTuple):
    pk: int
    locale: str
    variant: int
    channel: str
    fields: dict
    product_ids: tuple[int, ...]


@dataclasses.dataclass
class _Tally:
    """What the job counts while it writes; becomes the Export's fields."""

    audience: int = 0
    written: int = 0
    control: int = 0
    control_new: array = dataclasses.field(default_factory=lambda: array("q"))
    skipped: Counter = dataclasses.field(default_factory=Counter)
    warning_counts: Counter = dataclasses.field(default_factory=Counter)
    warnings: list = dataclasses.field(default_factory=list)
    variants: Counter = dataclasses.field(default_factory=Counter)
    locales: Counter = dataclasses.field(default_factory=Counter)
    # The rows written, for the recipients' COPY: 8 + 8 + 2 + 1 bytes per row.
    draft_ids: array = dataclasses.field(default_factory=lambda: array("q"))
    customer_ids: array = dataclasses.field(default_factory=lambda: array("q"))
    variant_nos: array = dataclasses.field(default_factory=lambda: array("h"))
    locale_nos: array = dataclasses.field(default_factory=lambda: array("b"))


def unit_hash(seed: int, purpose: str, customer_pk: int) -> float:
    """A number in [0, 1) fixed by (seed, purpose, customer): the seeded draw of the control
    group and the variant split, the same in every process and every export of a brief."""
    digest = hashlib.blake2b(f"{seed}:{purpose}:{customer_pk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _attribute(attributes: dict, keys: tuple[str, ...]) -> str:
    """An imported extra column (the customers importer keeps them under their own header):
    the first whose header, lower-cased without punctuation, is one of ``keys`` (by their
    order) and has a value."""
    if not attributes:
        return ""
    for header in _candidates(tuple(attributes), keys):
        value = attributes[header]
        if value not in (None, ""):
            return str(value)
    return ""


@functools.lru_cache(maxsize=1024)
def _candidates(headers: tuple, keys: tuple[str, ...]) -> tuple:
    """The headers `_attribute` tries, best first: by the rank of their clean name in
    ``keys``, then in their own order. Customers share a few sets of headers, so this runs
    once per set rather than per row."""
    rank = {key: i for i, key in enumerate(keys)}
    ranked = []
    for position, header in enumerate(headers):
        clean = _KEY_CLEAN.sub("", str(header).lower())
        if clean in rank:
            ranked.append((rank[clean], position, header))
    return tuple(header for _, _, header in sorted(ranked))


class _Products:
    """ExportProducts by (product pk, locale): an LRU of PRODUCT_CACHE entries, filled a
    batch of rows at a time with one query for what is missing."""

    def __init__(self, catalog) -> None:
        self.catalog = catalog
        self.cache: OrderedDict[tuple[int, str], ExportProduct] = OrderedDict()
        self.batch: dict[tuple[int, str], ExportProduct] = {}

    def prefetch(self, drafts: Iterable[_Draft]) -> None:
        self.batch = {}
        missing: set[tuple[int, str]] = set()
        for draft in drafts:
            for pid in draft.product_ids:
                key = (pid, draft.locale)
                product = self.cache.get(key)
                if product is None:
                    missing.add(key)
                else:
                    self.cache.move_to_end(key)
                    self.batch[key] = product
        if not missing:
            return
        rows = {
            row[0]: row
            for row in Product.objects.filter(
                catalog_id=self.catalog.pk, pk__in={pid for pid, _ in missing}
            ).values_list("pk", "sku", "title", "url", "price", "image_url")
        }
        for key in missing:
            row = rows.get(key[0])
            if row is None:
                continue  # deleted since drafting
            _, sku, title, url, price, image = row
            price_text = (
                format_price(price, self.catalog.currency, key[1]) if price is not None else ""
            )
            product = ExportProduct(
                sku=sku, title=title, url=url or "", price=price_text, image_url=image or ""
            )
            self.batch[key] = product
            self.cache[key] = product
        while len(self.cache) > PRODUCT_CACHE:
            self.cache.popitem(last=False)

    def get(self, draft: _Draft) -> tuple[ExportProduct, ...]:
        """The draft's products in its order (deleted ones left out); after `prefetch`."""
        keys = ((pid, draft.locale) for pid in draft.product_ids)
        return tuple(self.batch[key] for key in keys if key in self.batch)


def _draft(
    pk: int, locale: str, variant: int, channel: str, fields: Any, product_ids: Any
) -> _Draft:
    try:
        ids = tuple(map(int, product_ids or ()))
    except (TypeError, ValueError):
        ids = tuple(int(p) for p in product_ids if str(p).lstrip("-").isdigit())
    return _Draft(pk, locale, variant, channel, fields or {}, ids)


_CUSTOMER_FIELDS = ("external_id", "email", "name", "country", "language")


class _JsonArrayText(Func):
    """JSON columns as the text of one JSON array: a streamed row costs one ``json.loads``
    instead of one per column, each through Django's converters (100k rows: 0.4-0.6 s less
    CPU, and less wall time although PostgreSQL builds the array). SQLite keeps JSON as
    text, which JSON() turns back into values (JSON_ARRAY would hold them as strings)."""

    function = "JSONB_BUILD_ARRAY"
    template = "(%(function)s(%(expressions)s))::text"
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra_context):
        clone = self.copy()
        clone.set_source_expressions(
            [Func(e, function="JSON") for e in self.get_source_expressions()]
        )
        return clone.as_sql(
            compiler,
            connection,
            function="JSON_ARRAY",
            template="%(function)s(%(expressions)s)",
            **extra_context,
        )


def _held_earlier(export: Export):
    """Control members of the brief recorded by other exports (a re-run of this export
    draws its own again: same seed, same share, same customers)."""
    return ControlMember.objects.filter(brief_id=export.brief_id).exclude(export_id=export.pk)


def _customer_groups(export: Export, consent: str | None) -> Iterator[tuple[_Customer, list]]:
    """(customer, their approved drafts) of a per-customer brief, streamed by customer."""
    brief = export.brief
    in_segment = Exists(
        SegmentMembership.objects.filter(
            segment_id=brief.segment_id, customer_id=OuterRef("customer_id")
        )
    )
    recorded = Exists(_held_earlier(export).filter(customer_id=OuterRef("customer_id")))
    rows = (
        _approved(brief)
        .filter(customer__erased_at__isnull=True)
        .annotate(
            consents=F(f"customer__{consent}")
            if consent
            else Value(True, output_field=BooleanField()),
            in_segment=in_segment,
            control_recorded=recorded,
            json=_JsonArrayText(F("fields"), F("product_ids"), F("customer__attributes")),
        )
        .order_by("customer_id", "locale", "variant")
        .values_list(
            "customer_id",
            *(f"customer__{f}" for f in _CUSTOMER_FIELDS),
            "consents",
            "in_segment",
            "control_recorded",
            "pk",
            "locale",
            "variant",
            "channel",
            "json",
        )
    )
    for customer_pk, group in itertools.groupby(
        rows.iterator(chunk_size=CHUNK_SIZE), key=operator.itemgetter(0)
    ):
        drafts = []
        for row in group:
            fields, product_ids, attributes = json.loads(row[13])
            drafts.append(_draft(*row[9:13], fields, product_ids))
        # Every row of the group holds the same customer's columns: the last one's serve.
        yield (
            _Customer(customer_pk, *row[1:6], attributes, bool(row[6]), bool(row[7]), bool(row[8])),
            drafts,
        )


def _segment_groups(
    export: Export, consent: str | None, drafts: list[_Draft]
) -> Iterator[tuple[_Customer, list]]:
    """(member, the segment's approved drafts) of a segment brief, members streamed."""
    brief = export.brief
    recorded = Exists(_held_earlier(export).filter(customer_id=OuterRef("pk")))
    members = (
        Customer.objects.filter(
            segment_memberships__segment_id=brief.segment_id, erased_at__isnull=True
        )
        .annotate(
            consents=F(consent) if consent else Value(True, output_field=BooleanField()),
            control_recorded=recorded,
        )
        .order_by("pk")
        .values_list("pk", *_CUSTOMER_FIELDS, "attributes", "consents", "control_recorded")
    )
    for row in members.iterator(chunk_size=CHUNK_SIZE):
        yield (
            _Customer(row[0], *row[1:7], bool(row[7]), True, bool(row[8])),
            drafts,
        )


def _choose(
    customer: _Customer, drafts: list[_Draft], brief: Brief, split: bool, seed: int
) -> _Draft:
    """The customer's row: their language if approved in it, else the brief's first
    language that is; the best ranked variant, or a seeded pick among them for a split."""
    if len(drafts) == 1:
        return drafts[0]
    locales = {d.locale for d in drafts}
    own = language_code(customer.language)
    if own in locales:
        locale = own
    else:
        locale = next((c for c in brief.locales if c in locales), None) or min(locales)
    candidates = sorted((d for d in drafts if d.locale == locale), key=lambda d: d.variant)
    if not split or len(candidates) == 1:
        return candidates[0]
    index = int(unit_hash(seed, "variant", customer.pk) * len(candidates))
    return candidates[min(index, len(candidates) - 1)]


def _export_row(
    customer: _Customer,
    draft: _Draft,
    products: tuple[ExportProduct, ...],
    *,
    brief: Brief,
    segment: str,
    exported_at: str,
) -> ExportRow:
    return ExportRow(
        customer_id=customer.external_id,
        channel=draft.channel,
        fields=draft.fields,
        draft_id=draft.pk,
        brief_id=brief.pk,
        email=customer.email or "",
        name=customer.name or "",
        phone=_attribute(customer.attributes, _PHONE_KEYS),
        country=customer.country or "",
        zip=_attribute(customer.attributes, _ZIP_KEYS),
        language=customer.language or "",
        products=products,
        segment=segment,
        brief_name=brief.name,
        variant=draft.variant,
        locale=draft.locale,
        exported_at=exported_at,
    )


def _audience_total(export: Export) -> int:
    brief = export.brief
    if brief.audience == Brief.Audience.SEGMENT:
        return SegmentMembership.objects.filter(segment_id=brief.segment_id).count()
    drafts = _approved(brief).filter(customer__erased_at__isnull=True)
    return drafts.values("customer_id").distinct().count()


def _export_write(export: Export, job: Job, worker: str) -> None:
    brief = export.brief
    if brief.segment_id is None:
        raise ExportError(
            "The brief's segment no longer exists: choose a segment and export again."
        )
    try:
        preset = preset_for(export.preset, channel=brief.channel)
    except ValueError as exc:
        raise ExportError(f"This export cannot be written: {exc}.") from None
    consent = consent_field(preset, brief.channel)
    group = brief_control_group(brief)
    if group is not None and group.export_id != export.pk:
        share = group.share  # fixed by an earlier export of the brief
    else:
        share = export.control_share
    seed = export.seed
    if brief.audience == Brief.Audience.SEGMENT:
        segment_drafts = [
            _draft(*r)
            for r in _approved(brief)
            .order_by("locale", "variant")
            .values_list("pk", "locale", "variant", "channel", "fields", "product_ids")
        ]
        if not segment_drafts:
            raise ExportError("The brief has no approved drafts any more; nothing was exported.")
        groups = _segment_groups(export, consent, segment_drafts)
    else:
        groups = _customer_groups(export, consent)

    total = _audience_total(export)
    report = ProgressReporter(job.pk)
    report(0, total, "Writing the file", force=True)
    storage = export_storage()
    extension = FORMAT_EXTENSIONS[preset.format]
    name = f"export-{export.pk}{extension}"
    os.makedirs(storage.location, exist_ok=True)
    temp = storage.path(f"{name}.part-{uuid.uuid4().hex}")
    # The time the marketer asked for it: a re-run writes the same bytes.
    exported_at = (export.created_at or timezone.now()).replace(microsecond=0).isoformat()
    segment_name = brief.segment.name if brief.segment else ""
    products = _Products(export.catalog)
    tally = _Tally()
    # PostgreSQL streams a query through a server-side cursor inside a transaction; outside
    # one it is WITH HOLD and materialised first (40 % slower for 100k drafts). SQLite
    # streams in autocommit, so an export never holds its only write lock while it writes.
    snapshot = transaction.atomic() if connection.vendor == "postgresql" else nullcontext()
    # Rows in flight outlive young collections, so a full collection comes every ~20k rows,
    # and each walked every object the process held before (190k with the science modules
    # imported: 0.5 s of a 100k-row export). Frozen, those are skipped until the export
    # ends; whatever the export itself leaves is collected as always.
    gc.freeze()
    try:
        with snapshot:
            if connection.vendor == "postgresql":
                # The streamed query's cost estimate passes jit_above_cost, and compiling it
                # took 0.4-0.6 s of a 100k-row export for nothing: each row is read once.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL jit = off")
            with open(temp, "wb", buffering=1 << 20) as fh:
                bytes_written = _write_rows(
                    fh,
                    preset,
                    export,
                    groups,
                    tally,
                    products,
                    report=report,
                    total=total,
                    share=share,
                    seed=seed,
                    segment=segment_name,
                    exported_at=exported_at,
                )
                fh.flush()
                os.fsync(fh.fileno())
            report(total, total, "Recording the recipients", force=True)
            _finish(
                export,
                job,
                worker,
                preset=preset,
                temp=temp,
                name=name,
                size=bytes_written,
                tally=tally,
                share=share,
                group=group,
            )
    finally:
        gc.unfreeze()
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)


def _write_rows(
    fh: IO[bytes],
    preset: Preset,
    export: Export,
    groups: Iterator[tuple[_Customer, list]],
    tally: _Tally,
    products: _Products,
    *,
    report: ProgressReporter,
    total: int,
    share: int,
    seed: int,
    segment: str,
    exported_at: str,
) -> int:
    brief = export.brief
    split = export.split_variants
    threshold = share / 100
    locale_index = {code: i for i, code in enumerate(LOCALES)}
    done = 0
    with open_writer(preset, fh, excel_bom=export.excel_bom) as writer:
        for batch in _batched(groups, BATCH):
            chosen: list[tuple[_Customer, _Draft]] = []
            for customer, drafts in batch:
                done += 1
                tally.audience += 1
                if not customer.in_segment:
                    tally.skipped["not_in_segment"] += 1
                elif not customer.consents:
                    tally.skipped["no_consent"] += 1
                elif customer.control_recorded:
                    tally.control += 1
                elif threshold and unit_hash(seed, "control", customer.pk) < threshold:
                    tally.control += 1
                    tally.control_new.append(customer.pk)
                else:
                    chosen.append((customer, _choose(customer, drafts, brief, split, seed)))
            products.prefetch(d for _, d in chosen)
            for customer, draft in chosen:
                row = _export_row(
                    customer,
                    draft,
                    products.get(draft),
                    brief=brief,
                    segment=segment,
                    exported_at=exported_at,
                )
                result = preset.render(row)
                for warning in result.warnings:
                    tally.warning_counts[warning.code] += 1
                    if warning.row_skipped:
                        tally.skipped[warning.code] += 1
                    if len(tally.warnings) < Export.WARNINGS_KEPT:
                        tally.warnings.append(
                            {
                                "draft_id": warning.draft_id,
                                "customer_pk": customer.pk,
                                "customer": warning.customer_id,
                                "column": warning.column,
                                "reason": warning.reason,
                                "code": warning.code,
                                "skipped": warning.row_skipped,
                            }
                        )
                if result.record is None:
                    continue
                writer.write(result.record)
                tally.written += 1
                tally.variants[draft.variant] += 1
                tally.locales[draft.locale] += 1
                tally.draft_ids.append(draft.pk)
                tally.customer_ids.append(customer.pk)
                tally.variant_nos.append(draft.variant)
                tally.locale_nos.append(locale_index.get(draft.locale, -1))
            report(done, max(total, done), f"Writing the file: {tally.written:,} rows")
    return writer.bytes_written


def _batched(items: Iterator, n: int) -> Iterator[list]:
    while batch := list(itertools.islice(items, n)):
        yield batch


def _finish(
    export: Export,
    job: Job,
    worker: str,
    *,
    preset: Preset,
    temp: str,
    name: str,
    size: int,
    tally: _Tally,
    share: int,
    group: ControlGroup | None,
) -> None:
    """Replace this export's rows, mark the drafts, move the file in place, succeed: one
    transaction. An attempt that lost its job (cancelled, taken over) writes nothing."""
    warnings = list(tally.warnings)
    counts = dict(tally.warning_counts)
    if preset.max_file_bytes is not None and size > preset.max_file_bytes:
        warnings.insert(
            0,
            {
                "draft_id": None,
                "customer_pk": None,
                "customer": "",
                "column": "",
                "reason": f"The file is {_size(size)} but {preset.label} takes at most "
                f"{_size(preset.max_file_bytes)} per upload: split it, or export a smaller "
                "segment. Tailor did not cut it.",
                "code": FILE_TOO_LARGE,
                "skipped": False,
            },
        )
        counts[FILE_TOO_LARGE] = 1
    skipped_total = sum(tally.skipped.values())
    now = timezone.now()
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None or locked.status != Job.Status.RUNNING or locked.worker != worker:
            if locked is not None and locked.cancel_requested:
                raise JobCancelled()
            logger.info("export job %s: this attempt no longer owns the job", job.pk)
            return
        if locked.cancel_requested:
            raise JobCancelled()
        Brief.objects.select_for_update().filter(pk=export.brief_id).first()
        if share and group is None and brief_control_group(export.brief) is not None:
            raise ExportError(
                "Another export fixed this brief's control group while this one ran; export "
                "again so the same customers are held out."
            )
        ExportRecipient.objects.filter(export_id=export.pk).delete()
        ControlMember.objects.filter(export_id=export.pk).delete()
        _recipients_insert(export, tally)
        ControlMember.objects.bulk_create(
            (
                ControlMember(export_id=export.pk, brief_id=export.brief_id, customer_id=pk)
                for pk in tally.control_new
            ),
            batch_size=INSERT_BATCH,
            ignore_conflicts=True,
        )
        erased = customer_erased_ids()
        if (
            erased
            and ExportRecipient.objects.filter(export_id=export.pk, customer_id__in=erased).exists()
        ):
            raise ExportError(
                "A customer of this export was erased while it ran; export again (the file "
                "was not kept)."
            )
        storage = export_storage()
        os.replace(temp, storage.path(name))
        for stale in _parts_of(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)
        summary = {
            "audience": tally.audience,
            "variants": {str(k): v for k, v in sorted(tally.variants.items())},
            "locales": dict(sorted(tally.locales.items())),
            "control_share": share,
            "control_new": len(tally.control_new),
            "control_from_export": group.export_id if group else export.pk,
            "consent": consent_field(preset, export.brief.channel),
        }
        Export.objects.filter(pk=export.pk).update(
            file=name,
            file_name=_download_name(export, preset),
            file_size=size,
            file_removed="",
            rows_written=tally.written,
            rows_skipped=skipped_total,
            control_size=tally.control,
            control_share=share,
            skipped=dict(tally.skipped),
            warnings=warnings,
            warning_counts=counts,
            summary=summary,
            finished_at=now,
        )
        message = f"Exported {tally.written:,} row{'s' * (tally.written != 1)}"
        if skipped_total:
            message += f"; {skipped_total:,} left out"
        if tally.control:
            message += f"; {tally.control:,} held out as the control group"
        job_succeed(
            job_id=job.pk,
            result={
                "export_id": export.pk,
                "rows": tally.written,
                "skipped": skipped_total,
                "control": tally.control,
            },
            message=message,
            done=tally.audience,
        )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    if n < 1024**2:
        return f"{n / 1024:,.1f} KB"
    return f"{n / 1024**2:,.1f} MB"


def _parts_of(name: str) -> list[str]:
    """Temp files of earlier attempts at this export (their workers died)."""
    directory = export_storage().location
    prefix = f"{name}.part-"
    try:
        return [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(prefix)]
    except FileNotFoundError:
        return []


def _recipients_insert(export: Export, tally: _Tally) -> None:
    """One COPY on PostgreSQL (100k rows in a fraction of a second), batches elsewhere."""
    rows = zip(
        tally.draft_ids, tally.customer_ids, tally.variant_nos, tally.locale_nos, strict=True
    )
    if connection.vendor != "postgresql":
        for batch in _batched(iter(rows), INSERT_BATCH):
            ExportRecipient.objects.bulk_create(
                ExportRecipient(
                    export_id=export.pk,
                    draft_id=d,
                    customer_id=c,
                    variant=v,
                    locale=LOCALES[loc] if loc >= 0 else "",
                )
                for d, c, v, loc in batch
            )
        return
    table = ExportRecipient._meta.db_table
    # Only our own table and column names are interpolated.
    statement = f"COPY {table} (export_id, draft_id, customer_id, variant, locale) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for d, c, v, loc in rows:
            copy.write_row((export.pk, d, c, v, LOCALES[loc] if loc >= 0 else ""))


def _download_name(export: Export, preset: Preset) -> str:
    slug = slugify(export.brief.name)[:60] or f"brief-{export.brief_id}"
    day = timezone.localdate(export.created_at or timezone.now()).isoformat()
    return (
        f"{slug}-{preset.key.replace('_', '-')}-{day}-{export.pk}{FORMAT_EXTENSIONS[preset.format]}"
    )


# ----------------------------------------------------------------------------- download


@dataclasses.dataclass
class ExportFile:
    fileobj: IO[bytes]
    filename: str
    content_type: str


def export_file_open(*, export: Export, user) -> ExportFile:
    """The export's file for a download, audited. Needs copygen.download_export;
    ValidationError when there is no file (not finished, failed, or removed by an erasure —
    also when one of its recipients turns out erased now: the file is deleted first)."""
    require_perm(user, DOWNLOAD_PERM)
    if export.status != Job.Status.SUCCEEDED:
        raise ValidationError("This export has no file: it has not finished successfully.")
    erased = customer_erased_ids()
    if erased:
        hit = list(
            ExportRecipient.objects.filter(export_id=export.pk, customer_id__in=erased)
            .values_list("customer_id", flat=True)
            .distinct()
        )
        for customer_id in hit:
            exports_forget_customer(customer_id=customer_id)
        if hit:
            export.refresh_from_db()
    if not export.file:
        raise ValidationError(export.file_removed or "This export's file is gone.")
    try:
        fileobj = export.file.open("rb")
    except OSError as exc:
        logger.warning("file of export %s cannot be opened: %s", export.pk, type(exc).__name__)
        raise ValidationError(
            "The file is missing from the data directory (workers and web must share "
            "DATA_DIR); export again."
        ) from exc
    preset = PRESETS.get(export.preset)
    audit(
        actor=user,
        action=AuditEvent.Action.EXPORT_DOWNLOADED,
        obj=export,
        details={"brief_id": export.brief_id, "preset": export.preset, "rows": export.rows_written},
    )
    return ExportFile(
        fileobj=fileobj,
        filename=export.file_name or os.path.basename(export.file.name),
        content_type=CONTENT_TYPES[preset.format] if preset else "application/octet-stream",
    )


# ----------------------------------------------------------------------------- erasure


def exports_forget_customer(*, customer_id: int) -> int:
    """After a customer's erasure: delete every export file that holds them, their
    recipient, control-group and campaign-result rows, and the warnings that name them. Returns the files
    deleted. Files go before the transaction commits: a file that cannot be deleted rolls
    the rows back (and the download keeps refusing the file)."""
    removed = 0
    with transaction.atomic():
        export_ids = set(
            ExportRecipient.objects.filter(customer_id=customer_id).values_list(
                "export_id", flat=True
            )
        )
        storage = export_storage()
        deletes: list[str] = []
        for export in Export.objects.select_for_update().filter(pk__in=export_ids):
            if export.file:
                deletes.append(export.file.name)
                removed += 1
            Export.objects.filter(pk=export.pk).update(file="", file_removed=ERASED_FILE_REMOVED)
        ExportRecipient.objects.filter(customer_id=customer_id).delete()
        ControlMember.objects.filter(customer_id=customer_id).delete()
        CampaignResult.objects.filter(customer_id=customer_id).delete()
        for export in Export.objects.exclude(warnings=[]).only("pk", "warnings").iterator():
            kept = [w for w in export.warnings if w.get("customer_pk") != customer_id]
            if len(kept) != len(export.warnings):
                Export.objects.filter(pk=export.pk).update(warnings=kept)
        for name in deletes:
            storage.delete(name)  # a file already gone is fine
    if removed:
        logger.info("erasure of customer %s removed %s export file(s)", customer_id, removed)
    return removed


@receiver(customer_erased, dispatch_uid="copygen.exports_forget_customer")
def _forget_erased_customer(sender, *, customer_id: int, **_: Any) -> None:
    exports_forget_customer(customer_id=customer_id)


@receiver(post_delete, sender=Export, dispatch_uid="copygen.export_file_delete")
def _delete_file_with_export(sender, instance: Export, **_: Any) -> None:
    """An export deleted (with its brief or catalog) takes its file once that commits."""
    name = instance.file.name if instance.file else ""
    if name:
        transaction.on_commit(lambda: export_storage().delete(name))
