"""Customer profiles: a job that recomputes a catalog's RFM profiles, CLV and churn.

`profile_refresh_start` queues the job (one active refresh per catalog); `profile_refresh_run`
reads the catalog's events, products and customers into frames, runs the pure core
(marketing.analytics.profiles and .clv) and replaces the catalog's profiles in one
transaction, so a failed, cancelled or killed refresh leaves the previous profiles in place
and a rerun simply replaces them again.

Derived categories come first, as their own progress step, and commit on their own
(`categories_derive` runs its own transaction before the refresh reads anything). That is
acceptable because a derivation is complete by itself: products, category names and the rule
segments that follow a renamed category change together, and the next refresh finds it
"unchanged" and does not redo it. Until the refresh commits, profiles and segment members
still carry the names they were computed with, exactly as after any rename; a failed or
cancelled refresh leaves the derivation in place for the next one. Holding the derivation
inside the refresh's transaction instead would keep the categories locked for the whole
(minutes-long) read and model fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import traceback

import pandas as pd
import pyarrow as pa
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import JSONField, Max
from django.utils import timezone

from marketing.analytics.clv import ValueModelQuality, fit_value_models
from marketing.analytics.profiles import (
    CONSENT_COLUMNS,
    compute_profiles,
    prepare_events,
    profile_records,
)
from marketing.dbstats import analyze_after_commit
from marketing.models import (
    Catalog,
    Customer,
    Event,
    Job,
    Product,
    Profile,
    ProfileRun,
    effective_category,
)
from marketing.permissions import require_perm
from marketing.selectors_segments import segment_stats_warm
from marketing.services.categories import categories_derive, categories_derive_needed
from marketing.services.customers import customer_erased_ids
from marketing.services.frames import query_frame
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
from marketing.services.segments import (
    segments_refresh_learned,
    segments_refresh_rfm,
    segments_refresh_rules,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 2000
CATALOG_DELETED = "the catalog was deleted before its profiles could be refreshed"

_EVENT_COLUMNS = ["customer_id", "product_id", "kind", "quantity", "value", "occurred_at", "source"]
_PRODUCT_COLUMNS = ["product_id", "category", "brand", "price"]
_CUSTOMER_COLUMNS = ["customer_id", "country", "language", *CONSENT_COLUMNS, "attributes"]
# Arrow types of the same columns as COPY writes them (CSV text); see marketing.services.frames.query_frame.
_EVENT_TYPES = {
    "customer_id": pa.int64(),
    "product_id": pa.int64(),
    "kind": pa.string(),
    "quantity": pa.int64(),
    "value": pa.float64(),
    "occurred_at": pa.timestamp("us", tz="UTC"),
    "source": pa.string(),
}
_CUSTOMER_TYPES = {
    "customer_id": pa.int64(),
    "country": pa.string(),
    "language": pa.string(),
    **dict.fromkeys(CONSENT_COLUMNS, pa.bool_()),
    "attributes": pa.string(),
}
# Profile fields filled from the core's records (plus the predictions), by model field name.
_PROFILE_FIELDS = [
    f.name
    for f in Profile._meta.concrete_fields
    if f.name not in ("id", "catalog", "customer", "run")
]
# The steps reported as progress: categories, reading, profiles, models, saving.
_STEPS = 5


class ProfileRefreshError(Exception):
    """An expected reason the refresh cannot run; the job fails with this message."""


def profile_refresh_start(*, catalog: Catalog, user, triggered_by_import: bool = False) -> Job:
    """Queue a profile refresh for the catalog, or return the one already waiting.

    triggered_by_import: the system queues it after an import that wrote events; no
    permission check then (the import itself was checked). A refresh already running may
    have read the data before that import committed, so only a queued one is reused.
    """
    if not triggered_by_import:
        require_perm(user, "marketing.import_data")
    reusable = Job.ACTIVE if not triggered_by_import else (Job.Status.QUEUED,)
    with transaction.atomic():
        # Serialize concurrent starts for one catalog (a double-clicked button).
        Catalog.objects.select_for_update().filter(pk=catalog.pk).exists()
        existing = (
            Job.objects.filter(
                kind=Job.Kind.PROFILE_REFRESH,
                catalog=catalog,
                status__in=reusable,
                cancel_requested=False,
            )
            .order_by("created_at")
            .first()
        )
        if existing is not None:
            return existing
        job = job_create(
            kind=Job.Kind.PROFILE_REFRESH,
            user=user,
            catalog=catalog,
            params={"triggered_by_import": triggered_by_import},
            message="Queued: refresh customer profiles",
        )
        job_enqueue(job)
    return job


def profile_refresh_run(*, job_id: int, worker: str = "", celery_id: str = "") -> None:
    """Run one refresh job end to end; safe to call again for the same job (idempotent)."""
    job = job_claim(job_id=job_id, worker=worker, celery_id=celery_id)
    if job is None:
        return
    try:
        with job_heartbeat(job.pk):
            result = _refresh(job)
    except JobCancelled:
        job_mark_cancelled(job_id=job.pk)
    except ProfileRefreshError as exc:
        job_fail(job_id=job.pk, error=str(exc))
    except OperationalError:
        # Transient database trouble: let the task retry; make the job claimable again.
        with contextlib.suppress(OperationalError):
            job_release(job_id=job.pk)
        raise
    except Exception as exc:
        frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
        logger.error("profile refresh job %s failed: %s\n%s", job.pk, type(exc).__name__, frames)
        job_fail(
            job_id=job.pk, error=f"Unexpected error ({type(exc).__name__}); nothing was changed."
        )
    else:
        job_succeed(
            job_id=job.pk,
            result=result,
            done=_STEPS,
            message=f"Profiled {result['customers']:,} customers ({result['buyers']:,} buyers)",
        )


def _refresh(job: Job) -> dict:
    catalog = Catalog.objects.filter(pk=job.catalog_id).first() if job.catalog_id else None
    if catalog is None:
        raise ProfileRefreshError(CATALOG_DELETED)
    report = ProgressReporter(job.pk)
    categories = None
    if categories_derive_needed(catalog=catalog):  # before reading: frames use the names
        report(0, _STEPS, "Deriving categories", force=True)
        categories = categories_derive(  # commits on its own (see the module docstring)
            catalog=catalog,
            on_progress=lambda d, t: report(0, _STEPS, f"Deriving categories ({d}/{t})"),
        )
    summary = f" ({categories.summary})" if categories else ""
    report(1, _STEPS, f"Reading events{summary}", force=True)
    events, products, customers = _read_frames(catalog)
    last_event = Event.objects.filter(catalog=catalog).aggregate(last=Max("occurred_at"))["last"]
    as_of = pd.Timestamp(last_event or timezone.now()).tz_convert("UTC")
    tz = catalog.timezone or "UTC"

    if events.empty:
        frame = pd.DataFrame(columns=_PROFILE_FIELDS)
        segment_counts: dict[str, int] = {}
        buyers = horizon_days = 0
        quality: dict = {"available": False, "reason": "no events with a known customer"}
        features: dict = {"used": [], "dropped_sensitive": []}
    else:
        report(2, _STEPS, "Computing profiles", force=True)
        prepared = prepare_events(events, products, customers, timezone=tz)
        profiles = compute_profiles(
            events,
            products,
            customers,
            as_of=as_of,
            timezone=tz,
            prepared=prepared,
            sensitive=settings.SENSITIVE_ATTRIBUTES,
        )
        report(3, _STEPS, "Fitting value and churn models", force=True)
        models = fit_value_models(
            events,
            products,
            customers,
            as_of=as_of,
            timezone=tz,
            prepared=prepared,
            sensitive=settings.SENSITIVE_ATTRIBUTES,
        )
        predictions = models.predictions[["clv_12m", "churn_probability", "basis"]].rename(
            columns={"basis": "value_basis"}
        )
        frame = profiles.profiles.join(predictions, how="left")
        segment_counts = {k: v for k, v in profiles.population.segment_counts.items() if v}
        buyers = profiles.population.buyers
        horizon_days = models.horizon_days
        quality = _quality_json(models.quality)
        features = {
            "used": list(models.features.used),
            "dropped_sensitive": sorted(
                set(models.features.dropped_sensitive) | set(profiles.dropped_sensitive)
            ),
        }

    report(4, _STEPS, "Saving profiles", force=True)
    records = profile_records(frame) if len(frame) else []
    with transaction.atomic():
        # The row lock makes a concurrent catalog delete wait for us (or us see it gone).
        if not Catalog.objects.select_for_update().filter(pk=catalog.pk).exists():
            raise ProfileRefreshError(CATALOG_DELETED)
        # A customer erased since we read the events gets no profile (an erasure takes this
        # row lock before it deletes, so it either finished before this point or waits for us).
        if erased := customer_erased_ids():
            records = [r for r in records if int(r["customer_id"]) not in erased]
        Profile.objects.filter(catalog=catalog).delete()
        run = ProfileRun.objects.create(
            catalog=catalog,
            job_id=job.pk,
            as_of=as_of.to_pydatetime(),
            horizon_days=horizon_days,
            quality=quality,
            features=features,
            segment_counts=segment_counts,
            customers=len(records),
        )
        _profiles_insert(catalog, run, records)
        # Segments are rebuilt with the profiles, so they never describe replaced ones.
        segment_sets = {
            "rfm": segments_refresh_rfm(catalog=catalog, run=run),
            **segments_refresh_learned(catalog=catalog),
            "rule": segments_refresh_rules(catalog=catalog),
        }
    # Segment pages read their statistics from the cache: compute them once now (after
    # the commit and its ANALYZE) rather than on each segment's first view.
    segment_stats_warm(catalog=catalog)
    return {
        "run_id": run.pk,
        "as_of": as_of.isoformat(),
        "customers": len(records),
        "buyers": int(buyers),
        "events": len(events),
        "segments": segment_counts,
        "segment_sets": segment_sets,
        "categories": categories.as_json() if categories else None,
        "horizon_days": horizon_days,
        "quality": {
            k: quality.get(k)
            for k in ("available", "reason", "clv_mae", "baseline_mae", "churn_auc")
        },
    }


def _profile_fields(record: dict) -> dict:
    fields = {name: record.get(name) for name in _PROFILE_FIELDS}
    for name in ("rfm_segment", "top_category", "categories_basis", "top_brand", "price_band"):
        fields[name] = fields[name] or ""
    fields["value_basis"] = fields["value_basis"] or ""
    fields["top_categories"] = fields["top_categories"] or []
    fields["favourite_brands"] = fields["favourite_brands"] or []
    return fields


def _profile(catalog: Catalog, run: ProfileRun, record: dict) -> Profile:
    fields = _profile_fields(record)
    return Profile(catalog=catalog, run=run, customer_id=int(record["customer_id"]), **fields)


def _profiles_insert(catalog: Catalog, run: ProfileRun, records: list[dict]) -> None:
    """Insert the run's profiles: one COPY on PostgreSQL, bulk_create batches elsewhere.

    COPY takes about 3 s for 60k profiles where bulk_create took 11 s. Values go in as the
    ORM would send them: the records are plain Python (see `profile_records`), and JSON
    fields as json.dumps text with the field's encoder. The table is analysed once the
    refresh commits, so the segment pages that join the new profiles get plans for their
    real size; ANALYZE inside the transaction would hold its lock (which blocks another
    ANALYZE, VACUUM and schema changes on the table) until the commit.
    """
    if connection.vendor != "postgresql":
        for start in range(0, len(records), BATCH_SIZE):
            Profile.objects.bulk_create(
                _profile(catalog, run, record) for record in records[start : start + BATCH_SIZE]
            )
        return
    fields = [Profile._meta.get_field(name) for name in _PROFILE_FIELDS]
    json_fields = [(i, f.encoder) for i, f in enumerate(fields) if isinstance(f, JSONField)]
    columns = ", ".join(["catalog_id", "run_id", "customer_id", *(f.column for f in fields)])
    table = Profile._meta.db_table
    # Only our own table and column names are interpolated.
    statement = f"COPY {table} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for record in records:
            values = list(_profile_fields(record).values())
            for i, encoder in json_fields:
                values[i] = json.dumps(values[i], cls=encoder)
            copy.write_row([catalog.pk, run.pk, int(record["customer_id"]), *values])
    analyze_after_commit(Profile)


def _read_frames(catalog: Catalog) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The catalog's events (known customers only), products and those customers, as frames."""
    event_rows = Event.objects.filter(catalog=catalog, customer__isnull=False).values_list(
        *_EVENT_COLUMNS
    )
    events = query_frame(event_rows, _EVENT_COLUMNS, _EVENT_TYPES)
    events["customer_id"] = events["customer_id"].astype("int64")
    events["product_id"] = events["product_id"].astype("Int64")
    events["quantity"] = events["quantity"].astype("int64")
    events["value"] = pd.to_numeric(events["value"], errors="coerce").astype("float64")
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    events["kind"] = events["kind"].astype(str)
    events["source"] = events["source"].fillna("").astype(str)

    product_rows = (
        Product.objects.filter(catalog=catalog)
        .annotate(effective=effective_category())  # own category, else the derived one
        .values_list("id", "effective", "brand", "price")
    )
    products = pd.DataFrame.from_records(list(product_rows), columns=_PRODUCT_COLUMNS)
    products["product_id"] = products["product_id"].astype("int64")
    products["price"] = pd.to_numeric(products["price"], errors="coerce").astype("float64")

    # Customers are shared between catalogs: only those with events here get a profile.
    with_events = Event.objects.filter(catalog=catalog, customer__isnull=False).values(
        "customer_id"
    )
    customer_rows = Customer.objects.filter(pk__in=with_events).values_list(
        "id", "country", "language", *CONSENT_COLUMNS, "attributes"
    )
    customers = query_frame(customer_rows, _CUSTOMER_COLUMNS, _CUSTOMER_TYPES)
    if connection.vendor == "postgresql":  # COPY gives the JSON text; the ORM decodes it
        customers["attributes"] = [json.loads(text) for text in customers["attributes"]]
    customers["customer_id"] = customers["customer_id"].astype("int64")
    for column in CONSENT_COLUMNS:
        customers[column] = customers[column].astype(bool)
    return events, products, customers


def _quality_json(quality: ValueModelQuality) -> dict:
    """The quality dataclass as JSON: timestamps as ISO strings, NaN as null."""
    out = {}
    for key, value in dataclasses.asdict(quality).items():
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        elif hasattr(value, "item"):  # numpy scalars
            value = value.item()
        out[key] = value
    return out
