"""Briefs: create, change, delete, and start their drafting job.

A brief says what to write (audience, channel, tone, locales, products, brand rules); it
belongs to one catalog for good. Every write needs its permission (add/change/delete_brief),
is audited, and is refused while the brief's drafting job is queued or running (the job
reads the brief as it goes). Bad input raises a ValidationError keyed by field, and nothing
is written. ``brief_draft_start`` checks that the brief's products can be found (a
recommendation run with lists for its audience, or hand-picked products) before it queues a
``Job`` of kind COPY_DRAFT (see copygen.services.drafting).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from copygen.engine.occasions import NAMES as OCCASION_NAMES
from copygen.engine.types import CHANNELS, LOCALES, TONES
from copygen.models import Brief, Draft
from marketing.models import Catalog, Customer, Job, Product, Segment
from marketing.permissions import require_perm
from marketing.services.audit import audit
from marketing.services.jobs import job_create, job_enqueue
from recommendations.models import ModelRun, Recommendation

MAX_VARIANTS = 5
MAX_PRODUCTS_PER_MESSAGE = 3
MAX_SMS_SEGMENTS = 3
MAX_HAND_PICKED = 200
MAX_BANNED_WORDS = 200

# Audit actions (AuditEvent.action values).
BRIEF_CREATED = "brief_created"
BRIEF_CHANGED = "brief_changed"
BRIEF_DELETED = "brief_deleted"
BRIEF_DRAFTING_STARTED = "brief_drafting_started"

FIELDS = (
    "name",
    "audience",
    "segment",
    "channel",
    "tone",
    "locales",
    "customer_language",
    "source",
    "model_run",
    "products",
    "products_per_message",
    "variants",
    "occasion",
    "sms_segments",
    "voice",
    "banned_words",
    "disclaimer",
    "sender",
)
_LENGTHS = {"name": 200, "voice": 300, "disclaimer": 500, "sender": 100}
_DEFAULTS: dict[str, Any] = {
    "audience": Brief.Audience.SEGMENT,
    "tone": "friendly",
    "locales": [],
    "customer_language": False,
    "source": Brief.Source.RECOMMENDATIONS,
    "model_run": None,
    "products": [],
    "products_per_message": 1,
    "variants": 3,
    "occasion": "",
    "sms_segments": 1,
    "voice": "",
    "banned_words": "",
    "disclaimer": "",
    "sender": "",
}


class BriefBusy(ValidationError):
    """The brief's drafting job (``job``) is queued or running."""

    def __init__(self, job: Job, doing: str) -> None:
        super().__init__(
            f"This brief is being drafted (job #{job.pk}, {job.get_status_display().lower()}); "
            f"wait for it to finish or cancel it before you {doing}."
        )
        self.job = job


# ----------------------------------------------------------------------------- validation


def _int_in(value: Any, lo: int, hi: int, what: str) -> int:
    """A whole number (an int, or a string of one) from lo to hi."""
    error = ValidationError(f"{what} must be a whole number from {lo} to {hi}.")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise error
    try:
        number = int(value)
    except ValueError:
        raise error from None
    if not lo <= number <= hi:
        raise error
    return number


def _pk(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    pk = getattr(value, "pk", value)
    try:
        return int(pk)
    except (TypeError, ValueError):
        return None


def _clean_locales(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("Choose the languages as a list, e.g. en and de.")
    out: list[str] = []
    for code in value:
        code = str(code).strip().lower()
        if code not in LOCALES:
            raise ValidationError(
                f"Tailor cannot write in “{code}”: choose from {', '.join(LOCALES)}."
            )
        if code not in out:
            out.append(code)
    if not out:
        raise ValidationError("Choose at least one language.")
    return out


def _clean_products(catalog: Catalog, value: Any) -> list[Product]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError("Give the hand-picked products as a list.")
    pks: list[int] = []
    for item in value:
        pk = _pk(item)
        if pk is None:
            raise ValidationError(f"“{item}” is not a product.")
        if pk not in pks:
            pks.append(pk)
    if len(pks) > MAX_HAND_PICKED:
        raise ValidationError(f"Pick at most {MAX_HAND_PICKED} products.")
    found = Product.objects.in_bulk(pks)
    missing = [pk for pk in pks if pk not in found or found[pk].catalog_id != catalog.pk]
    if missing:
        raise ValidationError(
            f"{len(missing)} of the hand-picked products are not in catalog “{catalog.name}”."
        )
    return [found[pk] for pk in pks]


def _clean(catalog: Catalog, values: dict[str, Any]) -> dict[str, Any]:
    """The validated field values, or a ValidationError with every problem by field."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}

    def check(field: str, fn) -> None:
        try:
            out[field] = fn(values.get(field))
        except ValidationError as exc:
            errors.setdefault(field, []).extend(exc.messages)

    def text(field: str):
        def clean(value: Any) -> str:
            value = "" if value is None else str(value).strip()
            limit = _LENGTHS.get(field)
            if limit and len(value) > limit:
                raise ValidationError(f"Keep it to {limit} characters (it has {len(value)}).")
            return value

        return clean

    def required_name(value: Any) -> str:
        value = text("name")(value)
        if not value:
            raise ValidationError("Give the brief a name.")
        return value

    def choice(options: Iterable[str], what: str):
        options = list(options)

        def clean(value: Any) -> str:
            if value not in options:
                raise ValidationError(f"Choose {what}: {', '.join(map(str, options))}.")
            return str(value)

        return clean

    def segment(value: Any) -> Segment:
        pk = _pk(value)
        found = Segment.objects.filter(pk=pk).first() if pk is not None else None
        if found is None:
            raise ValidationError("Choose a segment.")
        if found.catalog_id != catalog.pk:
            raise ValidationError(f"Choose a segment of catalog “{catalog.name}”.")
        return found

    def model_run(value: Any) -> ModelRun | None:
        if value in (None, ""):
            return None
        pk = _pk(value)
        found = ModelRun.objects.filter(pk=pk).first() if pk is not None else None
        if found is None or found.catalog_id != catalog.pk:
            raise ValidationError(f"Choose a recommendation run of catalog “{catalog.name}”.")
        if found.status != ModelRun.Status.SUCCEEDED:
            raise ValidationError(f"Recommendation run #{found.pk} has not succeeded.")
        return found

    def occasion(value: Any) -> str:
        value = (value or "").strip()
        if value and value not in OCCASION_NAMES:
            raise ValidationError(f"Unknown occasion “{value}”.")
        return value

    def banned(value: Any) -> str:
        value = text("banned_words")(value)
        lines = [w.strip() for w in value.splitlines() if w.strip()]
        if len(lines) > MAX_BANNED_WORDS:
            raise ValidationError(f"List at most {MAX_BANNED_WORDS} banned words or phrases.")
        long = [w for w in lines if len(w) > 100]
        if long:
            raise ValidationError(f"“{long[0][:40]}…” is too long for a banned phrase.")
        return "\n".join(dict.fromkeys(lines))

    def boolean(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Choose yes or no.")
        return value

    check("name", required_name)
    check("audience", choice(Brief.Audience.values, "the audience"))
    check("segment", segment)
    check("channel", choice(CHANNELS, "a channel"))
    check("tone", choice(TONES, "a tone"))
    check("locales", _clean_locales)
    check("customer_language", boolean)
    check("source", choice(Brief.Source.values, "where the products come from"))
    check("model_run", model_run)
    check("products", lambda v: _clean_products(catalog, v))
    check(
        "products_per_message",
        lambda v: _int_in(v, 1, MAX_PRODUCTS_PER_MESSAGE, "Products per message"),
    )
    check("variants", lambda v: _int_in(v, 1, MAX_VARIANTS, "Variants"))
    check("occasion", occasion)
    check("sms_segments", lambda v: _int_in(v, 1, MAX_SMS_SEGMENTS, "SMS segments"))
    for field in ("voice", "disclaimer", "sender"):
        check(field, text(field))
    check("banned_words", banned)

    if not errors:
        if out["customer_language"] and out["audience"] != Brief.Audience.CUSTOMERS:
            errors["customer_language"] = [
                "Only a brief with one draft per customer can use each customer's language."
            ]
        if out["source"] == Brief.Source.PRODUCTS:
            out["model_run"] = None
            need = out["products_per_message"]
            if len(out["products"]) < need:
                errors["products"] = [
                    f"Pick at least {need} product{'s' if need > 1 else ''} "
                    f"(the products per message)."
                ]
        if out["channel"] != "sms":
            out["sms_segments"] = 1  # only SMS counts segments
    if errors:
        raise ValidationError(errors)
    return out


def brief_values(brief: Brief) -> dict[str, Any]:
    """The brief's current field values, as ``brief_update`` takes them."""
    values = {field: getattr(brief, field) for field in FIELDS if field != "products"}
    values["products"] = list(brief.products.all()) if brief.pk else []
    return values


def _unknown(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise TypeError(f"Unknown brief field(s): {', '.join(unknown)}")


def _active_job(brief: Brief) -> Job | None:
    if brief.job_id is None:
        return None
    job = Job.objects.filter(pk=brief.job_id).first()
    return job if job is not None and job.is_active else None


# ----------------------------------------------------------------------------- writes


@transaction.atomic
def brief_create(*, user, catalog: Catalog, **fields: Any) -> Brief:
    """A new brief of the catalog. Needs copygen.add_brief."""
    require_perm(user, "copygen.add_brief")
    _unknown(fields)
    clean = _clean(catalog, {**_DEFAULTS, **fields})
    products = clean.pop("products")
    brief = Brief.objects.create(catalog=catalog, created_by=user, **clean)
    brief.products.set(products)
    audit(
        actor=user,
        action=BRIEF_CREATED,
        obj=brief,
        details={"name": brief.name, "catalog_id": catalog.pk},
    )
    return brief


@transaction.atomic
def brief_update(*, brief: Brief, user, **fields: Any) -> Brief:
    """Change some of the brief's fields (the catalog stays). Needs copygen.change_brief;
    refused (BriefBusy) while its drafting job is active."""
    require_perm(user, "copygen.change_brief")
    _unknown(fields)
    locked = Brief.objects.select_for_update().filter(pk=brief.pk).first()
    if locked is None:
        raise ValidationError("This brief was deleted.")
    job = _active_job(locked)
    if job is not None:
        raise BriefBusy(job, "change it")
    before = brief_values(locked)
    clean = _clean(locked.catalog, {**before, **fields})
    products = clean.pop("products")
    changed = [f for f, value in clean.items() if before[f] != value]
    if [p.pk for p in products] != [p.pk for p in before["products"]]:
        changed.append("products")
    for field, value in clean.items():
        setattr(locked, field, value)
    locked.save(update_fields=[*clean, "updated_at"])
    if "products" in changed:
        locked.products.set(products)
    if changed:
        audit(
            actor=user,
            action=BRIEF_CHANGED,
            obj=locked,
            details={"name": locked.name, "fields": sorted(changed)},
        )
    return locked


@transaction.atomic
def brief_delete(*, brief: Brief, user) -> dict[str, int]:
    """Delete the brief with all its drafts (approved ones too). Needs copygen.delete_brief;
    refused (BriefBusy) while its drafting job is active. Returns the drafts deleted by
    status."""
    require_perm(user, "copygen.delete_brief")
    locked = Brief.objects.select_for_update().filter(pk=brief.pk).first()
    if locked is None:
        raise ValidationError("This brief was already deleted.")
    job = _active_job(locked)
    if job is not None:
        raise BriefBusy(job, "delete it")
    counts = dict.fromkeys(Draft.Status.values, 0)
    for status in Draft.objects.filter(brief=locked).values_list("status", flat=True):
        counts[status] += 1
    audit(
        actor=user,
        action=BRIEF_DELETED,
        obj=locked,
        details={"name": locked.name, "catalog_id": locked.catalog_id, "drafts": counts},
    )
    locked.delete()
    return counts


# ----------------------------------------------------------------------------- drafting


def brief_run(brief: Brief) -> ModelRun | None:
    """The recommendation run a drafting job of the brief would use: its own or the
    catalog's current one."""
    # Imported here: recommendations.selectors loads numpy, pandas and scipy, and the export
    # worker imports this module for brief_lock only.
    from recommendations.selectors import model_run_current

    if brief.model_run_id is not None:
        return ModelRun.objects.filter(pk=brief.model_run_id).first()
    return model_run_current(catalog=brief.catalog)


def _check_sources(brief: Brief) -> ModelRun | None:
    """The run the job will use (None for hand-picked products), or a ValidationError that
    says what is missing."""
    segment = brief.segment
    if segment is None:
        raise ValidationError(
            "The brief's segment no longer exists (a profile refresh re-creates learned "
            "segments): edit the brief and choose a segment."
        )
    members = Customer.objects.filter(segment_memberships__segment=segment, erased_at__isnull=True)
    if brief.audience == Brief.Audience.CUSTOMERS and not members.exists():
        raise ValidationError(
            f"Segment “{segment.name}” has no customers: refresh the profiles or choose "
            "another segment."
        )
    if brief.source == Brief.Source.PRODUCTS:
        have = brief.products.count()
        if have < brief.products_per_message:
            raise ValidationError(
                f"The brief has {have} hand-picked product{'s' if have != 1 else ''} "
                f"but writes about {brief.products_per_message} per message: pick more."
            )
        return None
    run = brief_run(brief)
    if run is None:
        raise ValidationError(
            "Run recommendations for this catalog first: the brief drafts from them."
        )
    rows = Recommendation.objects.filter(run=run)
    if not rows.exists():
        raise ValidationError(
            f"Recommendation run #{run.pk} no longer has its lists (a newer run replaced "
            "them): edit the brief to use the current run."
        )
    if brief.audience == Brief.Audience.SEGMENT and not rows.filter(segment=segment).exists():
        raise ValidationError(
            f"Recommendation run #{run.pk} has no list for segment “{segment.name}”: run "
            "recommendations again (segments made after a run get their list from the next one)."
        )
    return run


@transaction.atomic
def brief_lock(brief: Brief) -> Brief:
    """The brief re-read under a row lock (inside the caller's transaction), so jobs started
    from it are serialised; ValidationError when it was deleted meanwhile."""
    locked = (
        Brief.objects.select_for_update(of=("self",))
        .select_related("catalog", "segment")
        .filter(pk=brief.pk)
        .first()
    )
    if locked is None:
        raise ValidationError("This brief was deleted.")
    return locked


@transaction.atomic
def brief_draft_start(*, brief: Brief, user) -> Job:
    """Queue the brief's drafting job (enqueued on commit). Needs copygen.change_brief;
    BriefBusy while a drafting job of the brief is active; ValidationError when its
    products cannot be found. One transaction: the brief's lock serialises two starts, and
    a failure half way leaves no queued job that was never sent (it would block the brief)."""
    require_perm(user, "copygen.change_brief")
    locked = brief_lock(brief)
    job = _active_job(locked)
    if job is not None:
        raise BriefBusy(job, "draft again")
    run = _check_sources(locked)
    audience = (
        f"each customer of “{locked.segment.name}”"
        if locked.audience == Brief.Audience.CUSTOMERS
        else f"segment “{locked.segment.name}”"
    )
    job = job_create(
        kind=Job.Kind.COPY_DRAFT,
        user=user,
        catalog=locked.catalog,
        params={"brief_id": locked.pk, "run_id": run.pk if run else None},
        message=f"Queued: draft {locked.get_channel_display().lower()} copy for {audience}",
    )
    locked.job = job
    locked.save(update_fields=["job", "updated_at"])
    audit(
        actor=user,
        action=BRIEF_DRAFTING_STARTED,
        obj=locked,
        details={"name": locked.name, "job_id": job.pk, "run_id": run.pk if run else None},
    )
    job_enqueue(job)
    return job
