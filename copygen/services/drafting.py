"""The drafting job of a brief: plan the audience in chunks, draft each chunk, finish once.

``brief_draft_start`` (copygen.services.briefs) queues a `Job` of kind COPY_DRAFT; its task
runs ``drafting_run``:

1. **Prepare.** Claim the job, load the catalog's fitted CopyModel (fitted and pickled once
   per catalog data version, see sources.copy_model; "Learning the catalog's copy model"),
   and — once per job, in one transaction — cut the audience into ``DraftChunk`` rows: the
   brief's segment ("segment:<pk>") for a segment brief, or the segment's current members
   that are not erased ("customer:<pk>", by pk) in chunks of COPY_DRAFT_CHUNK_SIZE. The
   brief's ``info`` records the sentiment model's held-out figures, the run and the counts.
2. **Draft.** ``drafting_work`` claims the next chunk not done with ``SELECT … FOR UPDATE
   SKIP LOCKED`` and, in that one transaction, drafts it and replaces its drafts: the
   brief's drafts of those audience items that are not approved are deleted, a (item,
   locale) with an approved draft keeps it and is not drafted again, the new `Draft` rows
   and their first `DraftRevision` are inserted, and the chunk is marked done with its
   counts. A re-delivered task (the worker died: acks_late) finds the plan and goes on
   with the chunks not done; a chunk whose transaction did not commit is simply drafted
   again. With a broker that reaches several workers (not the embedded filesystem broker)
   the job's task also sends COPY_DRAFT_PARALLEL - 1 ``copy_draft_chunks_task``s that run
   the same loop, so several worker processes share the chunks.
3. **Finish.** Whoever finds every chunk done finishes the job, exactly once (the job row is
   locked and must still be running): drafts of the brief that are not approved and were
   not written by this job are deleted (members who left the segment, locales no longer
   asked for), and the job succeeds with the counts. The job's own task waits for chunks
   other workers still hold, so a worker that dies mid-chunk only delays the job.

Cancel is honoured between chunks (one noticed in the middle of a chunk rolls that chunk
back): the chunks done keep their new drafts, the others their previous ones. Progress counts
audience items, also within a chunk (throttled to about one write a second). Per item: a segment brief drafts in each of the brief's locales from the
segment's list of the run; a per-customer brief drafts each customer in their own language
(``customer_language``; else the brief's first locale) or in every brief locale, from their
own "discover" list of the run (falling back to the segment's list), or from the
hand-picked products (the engine keeps the ones closest to the recipient's interests).
Logs and job messages name customers by id only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import re
import time
import traceback
from collections import Counter, defaultdict
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from copygen.engine import checks
from copygen.engine.generate import CopyModel
from copygen.engine.types import Brief as EngineBrief
from copygen.engine.types import FactSheet, Recipient
from copygen.llm import provider_from_settings
from copygen.models import Brief, Draft, DraftChunk, DraftRevision
from copygen.services import sources
from marketing.dbstats import analyze_after_commit
from marketing.models import Customer, Job
from marketing.services.jobs import (
    JobCancelled,
    ProgressReporter,
    job_claim,
    job_fail,
    job_heartbeat,
    job_mark_cancelled,
    job_release,
    job_succeed,
)
from recommendations.models import ModelRun, Recommendation

logger = logging.getLogger(__name__)

NO_RECOMMENDATIONS = "no recommendations for this customer"
NO_PRODUCTS = "none of the brief's products exist any more"
TOP_REASONS = 5
WAIT_S = 0.5  # the job's task, waiting for chunks other workers hold
_AUDIENCE_KEY = re.compile(r"\b(?:customer|segment):\d+\b")


class DraftingError(Exception):
    """An expected reason the job cannot go on; the job fails with this message."""


def drafting_extra_tasks() -> int:
    """Chunk tasks the job's task sends besides itself: none with the embedded filesystem
    broker (one worker), else COPY_DRAFT_PARALLEL - 1."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return 0
    return max(int(settings.COPY_DRAFT_PARALLEL) - 1, 0)


# ----------------------------------------------------------------------------- context


@dataclasses.dataclass
class _Context:
    """What every chunk of one job needs, built once per task."""

    job_id: int
    brief: Brief
    model: CopyModel
    run_id: int | None
    provider: Any = None
    report: ProgressReporter | None = None  # progress within a chunk (throttled)
    total: int = 0
    _briefs: dict = dataclasses.field(default_factory=dict)
    _sheets: dict = dataclasses.field(default_factory=dict)
    _segment_products: list[int] | None = None

    def engine_brief(self, locale: str, country: str) -> EngineBrief:
        key = (locale, country)
        if key not in self._briefs:
            self._briefs[key] = sources.engine_brief(self.brief, locale, country=country)
        return self._briefs[key]

    def sheets(self, product_ids: list[int]) -> list[FactSheet]:
        """Fact sheets in the order given: the ones the model was fitted on (same catalog
        data version; their selling points are mined already), else read now."""
        missing = [
            pid
            for pid in product_ids
            if pid not in self._sheets and str(pid) not in self.model.sheets
        ]
        if missing:
            read = sources.product_sheets(self.brief.catalog, missing)
            self._sheets.update({int(s.product_id): s for s in read})
        out = []
        for pid in product_ids:
            sheet = self._sheets.get(pid) or self.model.sheets.get(str(pid))
            if sheet is not None:
                out.append(sheet)
        return out

    def segment_products(self) -> list[int]:
        """The segment's list of the run (best first), or []."""
        if self._segment_products is None:
            self._segment_products = []
            if self.run_id is not None and self.brief.segment_id is not None:
                self._segment_products = list(
                    Recommendation.objects.filter(
                        run_id=self.run_id,
                        segment_id=self.brief.segment_id,
                        kind=Recommendation.Kind.DISCOVER,
                    )
                    .order_by("rank")
                    .values_list("product_id", flat=True)[: _top(self.brief)]
                )
        return self._segment_products


def _top(brief: Brief) -> int:
    """Recommended products handed to the engine per item (it keeps products_per_message)."""
    return max(5, brief.products_per_message * 2)


def _context(job: Job, brief: Brief) -> _Context:
    try:
        provider = provider_from_settings()
    except ImproperlyConfigured as exc:
        raise DraftingError(f"The LLM provider is not configured correctly: {exc}") from None
    model = sources.copy_model(brief.catalog)
    return _Context(
        job_id=job.pk,
        brief=brief,
        model=model,
        run_id=(job.params or {}).get("run_id"),
        provider=provider,
    )


def _brief_of(job: Job) -> Brief | None:
    brief_id = (job.params or {}).get("brief_id")
    return (
        Brief.objects.filter(pk=brief_id).select_related("catalog", "segment").first()
        if brief_id
        else None
    )


# ----------------------------------------------------------------------------- run


def drafting_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """The drafting job's task: prepare (once), draft chunks, finish; safe to call again."""
    job = job_claim(job_id=job_id, worker=worker, celery_id=celery_id)
    if job is None:
        return
    brief = _brief_of(job)
    if brief is None:
        job_fail(job_id=job.pk, error="The brief was deleted before its drafting job ran.")
        return
    try:
        with job_heartbeat(job.pk):
            report = ProgressReporter(job.pk, monotonic=True)
            report(0, job.progress_total, "Learning the catalog's copy model", force=True)
            ctx = _context(job, brief)
            _plan(ctx, job)
            _send_helpers(job.pk)
            drafting_work(ctx, report=report, wait=True)
    except JobCancelled:
        _end_cancelled(job.pk)
    except DraftingError as exc:
        job_fail(job_id=job.pk, error=str(exc))
    except SoftTimeLimitExceeded:
        job_fail(job_id=job.pk, error=TIME_LIMIT_ERROR)
    except OperationalError:
        # Transient database trouble: the task retries; make the job claimable again.
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        _log_unexpected(job.pk, exc)
        job_fail(job_id=job.pk, error=_unexpected(exc))


def drafting_chunks_run(*, job_id: int, worker: str = "") -> None:
    """A helper task: draft chunks of a running job until none is free; finish the job if
    it drafted the last one. A job that ended (or is not running yet) is left alone."""
    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).first()
    if job is None:
        return
    brief = _brief_of(job)
    if brief is None or not DraftChunk.objects.filter(job_id=job_id, done=False).exists():
        return
    try:
        with job_heartbeat(job.pk):
            ctx = _context(job, brief)
            drafting_work(ctx, report=ProgressReporter(job.pk, monotonic=True), wait=False)
    except JobCancelled:
        _end_cancelled(job.pk)
    except DraftingError as exc:
        job_fail(job_id=job.pk, error=str(exc))
    except SoftTimeLimitExceeded:
        job_fail(job_id=job.pk, error=TIME_LIMIT_ERROR)
    except OperationalError:
        raise  # the task retries
    except Exception as exc:
        _log_unexpected(job.pk, exc)
        job_fail(job_id=job.pk, error=_unexpected(exc))


TIME_LIMIT_ERROR = (
    "The job reached the workers' time limit (CELERY_TASK_SOFT_TIME_LIMIT) and stopped. The "
    "customers drafted so far have their new drafts; the others keep their previous ones."
)


def _unexpected(exc: BaseException) -> str:
    return (
        f"Unexpected error ({type(exc).__name__}). The customers drafted so far have their "
        "new drafts; the others keep their previous ones."
    )


def _log_unexpected(job_id: int, exc: BaseException) -> None:
    # The type and the traceback only: messages may quote data.
    frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    logger.error("drafting job %s failed: %s\n%s", job_id, type(exc).__name__, frames)


def _send_helpers(job_id: int) -> None:
    from copygen.tasks import copy_draft_chunks_task  # tasks import services

    pending = DraftChunk.objects.filter(job_id=job_id, done=False).count()
    for _ in range(min(drafting_extra_tasks(), max(pending - 1, 0))):
        copy_draft_chunks_task.delay(job_id)


# ----------------------------------------------------------------------------- plan


def _audience_keys(brief: Brief) -> list[str]:
    if brief.audience == Brief.Audience.SEGMENT:
        return [f"segment:{brief.segment_id}"]
    members = (
        Customer.objects.filter(segment_memberships__segment_id=brief.segment_id)
        .filter(erased_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [f"customer:{pk}" for pk in members.iterator(chunk_size=10_000)]


def _plan(ctx: _Context, job: Job) -> None:
    """Cut the audience into chunks, once per job; record what the job uses in the brief."""
    brief = ctx.brief
    if DraftChunk.objects.filter(job_id=job.pk).exists():
        return  # a re-delivered task: the plan stands
    if brief.segment_id is None:
        raise DraftingError(
            "The brief's segment no longer exists: edit the brief and choose a segment."
        )
    if brief.source == Brief.Source.RECOMMENDATIONS:
        run = ModelRun.objects.filter(pk=ctx.run_id).first() if ctx.run_id else None
        if run is None or not Recommendation.objects.filter(run=run).exists():
            raise DraftingError(
                "The recommendation run this job was to use was replaced while the job "
                "waited: draft again (it uses the current run)."
            )
    keys = _audience_keys(brief)
    if not keys:
        raise DraftingError(f"Segment “{brief.segment.name}” has no customers now.")
    size = settings.COPY_DRAFT_CHUNK_SIZE
    chunks = [keys[i : i + size] for i in range(0, len(keys), size)]
    info = {
        "job_id": job.pk,
        "run_id": ctx.run_id,
        "audience": len(keys),
        "chunks": len(chunks),
        "sentiment": sources.sentiment_report(ctx.model),
        "products": len(ctx.model.sheets),
        "llm": ctx.provider is not None,
    }
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None or locked.status != Job.Status.RUNNING:
            raise JobCancelled()  # ended meanwhile (cancelled, failed by a stale takeover)
        if DraftChunk.objects.filter(job_id=job.pk).exists():
            return
        # Earlier jobs' plans are history nobody reads (one active job per brief).
        DraftChunk.objects.filter(brief_id=brief.pk).exclude(job_id=job.pk).delete()
        DraftChunk.objects.bulk_create(
            DraftChunk(job_id=job.pk, brief=brief, index=i, keys=part, size=len(part))
            for i, part in enumerate(chunks)
        )
        locked.params = {**(locked.params or {}), "audience": len(keys), "chunks": len(chunks)}
        locked.progress_total = len(keys)
        locked.save(update_fields=["params", "progress_total"])
        # The last finished job's result stays until this one replaces it.
        previous = Brief.objects.filter(pk=brief.pk).values_list("info", flat=True).first()
        if (previous or {}).get("result"):
            info["result"] = previous["result"]
        Brief.objects.filter(pk=brief.pk).update(info=info)
    brief.info = info


# ----------------------------------------------------------------------------- work

DRAFTED, BUSY, NONE_LEFT, ENDED = "drafted", "busy", "none-left", "ended"


def drafting_work(ctx: _Context, *, report: ProgressReporter, wait: bool) -> None:
    """Draft chunks until none is left, then finish the job. ``wait``: when other workers
    hold the last chunks, wait for them (the job's own task) instead of returning."""
    total = Job.objects.filter(pk=ctx.job_id).values_list("progress_total", flat=True).first()
    ctx.report, ctx.total = report, total or 0
    while True:
        outcome = _draft_next(ctx)
        if outcome == ENDED:
            return
        if outcome == NONE_LEFT:
            _finish(ctx)
            return
        done = _items_done(ctx.job_id)
        if outcome == BUSY:
            if not wait:
                return
            report(done, total or 0, _progress_text(ctx, done, total))
            time.sleep(WAIT_S)
            continue
        # Between chunks: progress, heartbeat, and JobCancelled when a cancel was asked for.
        report(done, total or 0, _progress_text(ctx, done, total), force=True)


def _items_done(job_id: int) -> int:
    done = DraftChunk.objects.filter(job_id=job_id, done=True).aggregate(n=Sum("size"))["n"]
    return int(done or 0)


def _progress_text(ctx: _Context, done: int, total: int | None) -> str:
    if ctx.brief.audience == Brief.Audience.SEGMENT:
        return "Drafting the segment's copy"
    # No running count here: several workers report at once, each from its own count, and
    # the text would go backwards; the bar shows progress_done, which never does.
    return f"Drafting copy for {total or 0:,} customers"


def _draft_next(ctx: _Context) -> str:
    with transaction.atomic():
        chunk = (
            DraftChunk.objects.select_for_update(skip_locked=True)
            .filter(job_id=ctx.job_id, done=False)
            .order_by("index")
            .first()
        )
        if chunk is None:
            if DraftChunk.objects.filter(job_id=ctx.job_id, done=False).exists():
                return BUSY
            return NONE_LEFT
        if not Job.objects.filter(pk=ctx.job_id, status=Job.Status.RUNNING).exists():
            return ENDED
        _draft_chunk(ctx, chunk)
    return DRAFTED


@dataclasses.dataclass
class _Item:
    key: str
    recipient: Recipient
    locales: list[str]
    products: list[int]
    customer_id: int | None = None
    segment_id: int | None = None
    reason: str = ""  # why it has no products


def _customers_to_draft(ids: list[int]) -> set[int]:
    """The chunk's customers that are not erased, locked FOR KEY SHARE until the chunk
    commits (an erasure, FOR UPDATE NOWAIT on the customer, then asks to try again; one
    that committed first leaves its customer out)."""
    if connection.vendor != "postgresql":  # one writer at a time
        return set(
            Customer.objects.filter(pk__in=ids, erased_at__isnull=True).values_list("pk", flat=True)
        )
    with connection.cursor() as cursor:
        # Only our own table name is interpolated.
        cursor.execute(
            f"SELECT id FROM {Customer._meta.db_table} "
            "WHERE id = ANY(%s) AND erased_at IS NULL FOR KEY SHARE",
            [ids],
        )
        return {row[0] for row in cursor.fetchall()}


def _items(ctx: _Context, chunk: DraftChunk) -> list[_Item]:
    brief = ctx.brief
    hand_picked = (
        list(brief.products.order_by("pk").values_list("pk", flat=True))
        if brief.source == Brief.Source.PRODUCTS
        else None
    )
    if brief.audience == Brief.Audience.SEGMENT:
        segment = brief.segment
        products = hand_picked if hand_picked is not None else ctx.segment_products()
        return [
            _Item(
                key=f"segment:{segment.pk}",
                recipient=sources.segment_recipient(segment, brief.locales[0]),
                locales=list(brief.locales),
                products=products,
                segment_id=segment.pk,
                reason="" if products else "no recommendations for this segment",
            )
        ]
    ids = [int(key.split(":", 1)[1]) for key in chunk.keys]
    allowed = _customers_to_draft(ids)
    ids = [pk for pk in ids if pk in allowed]
    fallback = brief.locales[0]
    own_language = brief.customer_language

    def locale_for(customer: Customer) -> str:
        return sources.customer_locale(customer.language, fallback) if own_language else fallback

    recipients = sources.customer_recipients(brief.catalog, ids, locale_for=locale_for)
    lists: dict[int, list[int]] = defaultdict(list)
    if hand_picked is None and ctx.run_id is not None:
        rows = (
            Recommendation.objects.filter(
                run_id=ctx.run_id,
                customer_id__in=ids,
                kind=Recommendation.Kind.DISCOVER,
                rank__lte=_top(brief),
            )
            .order_by("customer_id", "rank")
            .values_list("customer_id", "product_id")
        )
        for customer_id, product_id in rows:
            lists[customer_id].append(product_id)
    items = []
    for pk in ids:
        recipient = recipients.get(pk)
        if recipient is None:
            continue
        products = hand_picked if hand_picked is not None else lists.get(pk) or []
        if not products and hand_picked is None:
            products = ctx.segment_products()
        items.append(
            _Item(
                key=f"customer:{pk}",
                recipient=recipient,
                locales=[recipient.locale] if own_language else list(brief.locales),
                products=products,
                customer_id=pk,
                reason="" if products else NO_RECOMMENDATIONS,
            )
        )
    return items


def _reason(text: str) -> str:
    """A dropped reason without the audience item's key, so equal reasons count together."""
    return _AUDIENCE_KEY.sub("the item", text).strip()[:200]


def _draft_chunk(ctx: _Context, chunk: DraftChunk) -> None:
    """Draft one chunk and replace its drafts (inside the caller's transaction)."""
    brief = ctx.brief
    keys = list(chunk.keys)
    # Lock the chunk's drafts: an approval now waits for this transaction (and then finds
    # its draft replaced) instead of racing the delete below.
    existing = list(
        Draft.objects.select_for_update()
        .filter(brief_id=brief.pk, audience_key__in=keys)
        .values_list("pk", "audience_key", "locale", "status")
    )
    approved = {(key, locale) for _, key, locale, status in existing if status == "approved"}
    replace = [pk for pk, _, _, status in existing if status != Draft.Status.APPROVED]

    reasons: Counter[str] = Counter()
    drafts: list[dict[str, Any]] = []  # Draft rows by attname
    dropped = kept = failing = warnings = 0
    items_drafted: set[str] = set()
    locales_used: set[str] = set()
    before = _items_done(ctx.job_id) if ctx.report else 0
    for n, item in enumerate(_items(ctx, chunk)):
        if ctx.report is not None and n:
            # Throttled to about once a second; JobCancelled here rolls the chunk back.
            done = before + n
            ctx.report(done, ctx.total, _progress_text(ctx, done, ctx.total))
        sheets = ctx.sheets(item.products) if item.products else []
        for locale in item.locales:
            if (item.key, locale) in approved:
                kept += 1
                continue
            if not sheets:
                dropped += 1
                reasons[item.reason or NO_PRODUCTS] += 1
                continue
            recipient = dataclasses.replace(item.recipient, locale=locale)
            engine_brief = ctx.engine_brief(locale, recipient.country)
            generation = ctx.model.generate_detailed(
                recipient, sheets, engine_brief, provider=ctx.provider
            )
            for text in generation.dropped:
                reasons[_reason(text)] += 1
            if not generation.variants:
                dropped += 1
                continue
            by_id = {s.product_id: s for s in sheets}
            stored = generation.checks if len(generation.checks) == len(generation.variants) else []
            for number, variant in enumerate(generation.variants, start=1):
                results = stored[number - 1] if stored else None
                if results is None:
                    results = checks.check_variant(
                        variant,
                        [by_id[p] for p in variant.product_ids if p in by_id],
                        engine_brief,
                        recipient=recipient,
                        known_titles=ctx.model.titles,
                        known_attributes=ctx.model.attributes,
                    )
                found, passes, names = sources.summarize(results)
                failing += not passes
                warnings += bool(names) and passes
                drafts.append(
                    {
                        "brief_id": brief.pk,
                        "catalog_id": brief.catalog_id,
                        "job_id": ctx.job_id,
                        "audience_key": item.key,
                        "customer_id": item.customer_id,
                        "segment_id": item.segment_id,
                        "locale": locale,
                        "variant": number,
                        "channel": brief.channel,
                        "tone": variant.tone,
                        "fields": variant.fields,
                        "product_ids": [int(p) for p in variant.product_ids],
                        "frames": list(variant.frames),
                        "notes": list(dict.fromkeys([*variant.notes, *generation.notes])),
                        "score": float(variant.score),
                        "source": variant.source,
                        "checks": found,
                        "passes": passes,
                        "failing": names,
                        "revision": 1,
                    }
                )
            items_drafted.add(item.key)
            locales_used.add(locale)

    if replace:
        Draft.objects.filter(pk__in=replace).delete()
    created = _store_drafts(drafts)
    DraftChunk.objects.filter(pk=chunk.pk).update(
        done=True,
        drafts=created,
        dropped=dropped,
        report={
            "items": len(items_drafted),
            "locales": sorted(locales_used),
            "reasons": dict(reasons),
            "kept": kept,
            "failing": failing,
            "warnings": warnings,
        },
        finished_at=timezone.now(),
    )


def _store_drafts(rows: list[dict[str, Any]]) -> int:
    """Insert the chunk's drafts (``Draft`` values by attname; the other fields take their
    defaults) with their first revision; returns how many.

    On PostgreSQL with COPY (ids drawn from the table's sequence first, so the revisions
    can point at them): several times faster than bulk_create's INSERT of JSON arrays,
    which is most of the database's share of drafting. Elsewhere bulk_create."""
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        created = Draft.objects.bulk_create([Draft(**row) for row in rows], batch_size=1000)
        DraftRevision.objects.bulk_create(
            (
                DraftRevision(
                    draft_id=d.pk,
                    number=1,
                    fields=d.fields,
                    source=d.source,
                    passes=d.passes,
                    failing=d.failing,
                )
                for d in created
            ),
            batch_size=1000,
        )
        return len(created)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [Draft._meta.db_table, Draft._meta.pk.column, len(rows)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        for row, pk in zip(rows, ids, strict=True):
            row["id"] = pk
        _copy_rows(cursor, Draft, rows)
        _copy_rows(
            cursor,
            DraftRevision,
            [
                {
                    "draft_id": row["id"],
                    "number": 1,
                    "fields": row["fields"],
                    "source": row["source"],
                    "passes": row["passes"],
                    "failing": row["failing"],
                }
                for row in rows
            ],
        )
    return len(rows)


def _copy_rows(cursor, model, rows: list[dict[str, Any]]) -> None:
    """COPY ``rows`` (values by attname) into ``model``'s table on PostgreSQL: every
    concrete field is written, those not given with their default (auto_now fields: now);
    an id only when given."""
    from psycopg import sql

    now = timezone.now()
    plan = []  # (column, attname, default, is_json)
    for f in model._meta.concrete_fields:
        if f.primary_key and f.attname not in rows[0]:
            continue
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            default = now
        else:
            default = f.get_default()
            if isinstance(default, enum.Enum):  # a TextChoices default: its value
                default = default.value
        encoder = getattr(f, "encoder", None) if f.get_internal_type() == "JSONField" else False
        plan.append((f.column, f.attname, default, encoder))
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(model._meta.db_table),
        sql.SQL(", ").join(sql.Identifier(column) for column, _, _, _ in plan),
    )
    dumps = json.dumps
    with cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [
                    row.get(attname, default)
                    if encoder is False
                    else dumps(row.get(attname, default), cls=encoder)
                    for _, attname, default, encoder in plan
                ]
            )


# ----------------------------------------------------------------------------- end


def _finish(ctx: _Context) -> None:
    """Succeed the job once every chunk is done (exactly once: the job row is locked)."""
    brief = ctx.brief
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=ctx.job_id).first()
        if job is None or job.status != Job.Status.RUNNING:
            return
        chunks = list(DraftChunk.objects.filter(job_id=job.pk))
        if any(not c.done for c in chunks):
            return
        # Members who left the segment, locales no longer asked for: their old drafts go
        # (approved ones stay, locked).
        _, deleted = (
            Draft.objects.filter(brief_id=brief.pk)
            .exclude(status=Draft.Status.APPROVED)
            .exclude(job_id=job.pk)
            .delete()
        )
        removed = deleted.get(Draft._meta.label, 0)
        reasons: Counter[str] = Counter()
        locales: set[str] = set()
        totals = Counter()
        for c in chunks:
            report = c.report or {}
            reasons.update(report.get("reasons") or {})
            locales.update(report.get("locales") or [])
            for key in ("items", "kept", "failing", "warnings"):
                totals[key] += int(report.get(key) or 0)
        drafts = sum(c.drafts for c in chunks)
        audience = sum(c.size for c in chunks)
        result = {
            "drafts": drafts,
            "audience": totals["items"],
            "audience_planned": audience,
            "dropped": sum(c.dropped for c in chunks),
            "dropped_reasons": [[r, n] for r, n in reasons.most_common(TOP_REASONS)],
            "failing": totals["failing"],
            "warnings": totals["warnings"],
            "kept_approved": totals["kept"],
            "removed": removed,
            "locales": sorted(locales),
            "run_id": ctx.run_id,
            "chunks": len(chunks),
        }
        job_succeed(
            job_id=job.pk,
            result=result,
            message=_summary(brief, drafts, totals["items"], len(locales)),
            done=audience,
        )
        info = Brief.objects.filter(pk=brief.pk).values_list("info", flat=True).first() or {}
        Brief.objects.filter(pk=brief.pk).update(
            info={**info, "result": result, "finished_at": timezone.now().isoformat()}
        )
        analyze_after_commit(Draft, DraftRevision)


def _summary(brief: Brief, drafts: int, items: int, n_locales: int) -> str:
    languages = f"{n_locales} language{'s' if n_locales != 1 else ''}"
    noun = "draft" if drafts == 1 else "drafts"
    if brief.audience == Brief.Audience.SEGMENT:
        name = brief.segment.name if brief.segment else "the segment"
        return f"Drafted {drafts:,} {noun} for segment “{name}” in {languages}"
    who = "customer" if items == 1 else "customers"
    return f"Drafted {drafts:,} {noun} for {items:,} {who} in {languages}"


def _end_cancelled(job_id: int) -> None:
    """End a job whose cancel was asked for; the chunks done keep their drafts."""
    done = _items_done(job_id)
    total = Job.objects.filter(pk=job_id).values_list("progress_total", flat=True).first() or 0
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or not job.is_active:
            return
        job_mark_cancelled(job_id=job_id)
        Job.objects.filter(pk=job_id).update(
            message=(
                f"Cancelled after drafting {done:,} of {total:,}: those have their new "
                "drafts, the others keep their previous ones"
            )[:500]
        )
