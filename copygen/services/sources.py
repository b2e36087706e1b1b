"""From the database to the copy engine's inputs: fact sheets, recipients, briefs, checks.

Everything the engine may say about a product comes from here (`product_sheets`), so the
fidelity check of a draft — at drafting time and at every edit — compares the text with
the products' current data. The catalog-wide parts (the fitted `CopyModel`, the index of
every product title and attribute value the fidelity check uses) are built once per
catalog *data version* and cached: in this process, and the CopyModel also on disk under
DATA_DIR/copygen so that every worker of a drafting job loads the same fit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import pickle
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from babel import Locale
from django.conf import settings
from django.db.models import Avg, Count, Max, Q
from django.utils import timezone

from copygen.engine import checks
from copygen.engine import generate as generate_module
from copygen.engine.facts import fact_sheet
from copygen.engine.generate import CopyModel
from copygen.engine.occasions import occasion_by_key
from copygen.engine.types import LOCALES, BrandRules, CheckResult, FactSheet, Occasion, Recipient
from copygen.engine.types import Brief as EngineBrief
from copygen.engine.types import Variant as EngineVariant
from copygen.models import Brief, Draft
from marketing.models import (
    Catalog,
    Customer,
    Event,
    EventKind,
    Product,
    Profile,
    Segment,
    effective_category,
)

logger = logging.getLogger(__name__)

MAX_REVIEWS_PER_PRODUCT = 40  # newest rated reviews read per product for its fact sheet
MAX_SENTIMENT_REVIEWS = 20_000  # rated reviews the sentiment model trains on
RECENT_TITLES = 3  # recently bought product titles among a recipient's interests


# ----------------------------------------------------------------------------- versions


def catalog_version(catalog: Catalog) -> str:
    """Changes whenever a product or a review of the catalog changes (cache key)."""
    products = Product.objects.filter(catalog=catalog).aggregate(
        n=Count("pk"), last=Max("updated_at")
    )
    reviews = Event.objects.filter(
        catalog=catalog, kind__in=(EventKind.REVIEW, EventKind.RATING)
    ).aggregate(n=Count("pk"), last=Max("pk"))
    raw = f"{catalog.pk}:{catalog.currency}:{products}:{reviews}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- fact sheets


def _stock_quantity(attributes: dict[str, Any]) -> int | None:
    for key in ("stock_quantity", "stock", "inventory"):
        value = attributes.get(key)
        if value in (None, ""):
            continue
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None
    return None


def _reviews_by_product(catalog: Catalog, product_ids: Iterable[int] | None) -> dict:
    """{product pk: (reviews [{id, text, rating}] newest first, mean stars, count)}."""
    rated = Event.objects.filter(
        catalog=catalog, kind__in=(EventKind.REVIEW, EventKind.RATING), product__isnull=False
    )
    if product_ids is not None:
        rated = rated.filter(product_id__in=list(product_ids))
    stats = {
        row["product_id"]: (row["mean"], row["n"])
        for row in rated.filter(rating__isnull=False)
        .values("product_id")
        .annotate(mean=Avg("rating"), n=Count("pk"))
    }
    texts: dict[int, list[dict]] = defaultdict(list)
    rows = (
        rated.exclude(text="")
        .order_by("product_id", "-occurred_at", "-pk")
        .values_list("pk", "product_id", "text", "rating")
    )
    for pk, product_id, text, rating in rows.iterator(chunk_size=5000):
        bucket = texts[product_id]
        if len(bucket) < MAX_REVIEWS_PER_PRODUCT:
            bucket.append({"id": pk, "text": text, "rating": rating})
    ids = set(stats) | set(texts)
    return {pid: (texts.get(pid, []), *stats.get(pid, (None, 0))) for pid in ids}


def _sheets(catalog: Catalog, products: Iterable[dict]) -> dict[int, FactSheet]:
    products = list(products)
    reviews = _reviews_by_product(catalog, [p["pk"] for p in products])
    out: dict[int, FactSheet] = {}
    for p in products:
        texts, mean, count = reviews.get(p["pk"], ([], None, 0))
        attributes = p["attributes"] if isinstance(p["attributes"], dict) else {}
        out[p["pk"]] = fact_sheet(
            {
                "id": str(p["pk"]),
                "title": p["title"],
                "brand": p["brand"],
                "category": p["category_name"],
                "price": p["price"],
                "description": p["description"],
                "attributes": attributes,
                "url": p["url"],
                "in_stock": p["in_stock"],
            },
            currency=catalog.currency,
            reviews=texts,
            rating=None if mean is None else round(float(mean), 1),
            review_count=count or len(texts),
            stock_quantity=_stock_quantity(attributes),
        )
    return out


_PRODUCT_VALUES = (
    "pk",
    "title",
    "brand",
    "price",
    "description",
    "attributes",
    "url",
    "in_stock",
    "category_name",
)


def product_sheets(catalog: Catalog, product_ids: Sequence[int]) -> list[FactSheet]:
    """The fact sheets of these products of the catalog, in the order given (missing
    products — deleted since — are left out). FactSheet.product_id is the product's pk."""
    rows = (
        Product.objects.filter(catalog=catalog, pk__in=list(product_ids))
        .annotate(category_name=effective_category())
        .values(*_PRODUCT_VALUES)
    )
    sheets = _sheets(catalog, rows)
    return [sheets[pid] for pid in product_ids if pid in sheets]


def catalog_sheets(catalog: Catalog) -> list[FactSheet]:
    """Every product's fact sheet (what the CopyModel is fitted on)."""
    rows = (
        Product.objects.filter(catalog=catalog)
        .annotate(category_name=effective_category())
        .order_by("pk")
        .values(*_PRODUCT_VALUES)
    )
    return list(_sheets(catalog, rows).values())


def catalog_reviews(catalog: Catalog) -> list[tuple[str, float]]:
    """(text, stars) of the catalog's rated reviews: the sentiment model's training data."""
    rows = (
        Event.objects.filter(catalog=catalog, rating__isnull=False)
        .filter(kind__in=(EventKind.REVIEW, EventKind.RATING))
        .exclude(text="")
        .order_by("-pk")
        .values_list("text", "rating")[:MAX_SENTIMENT_REVIEWS]
    )
    return [(text, float(rating)) for text, rating in rows]


# ----------------------------------------------------------------------------- models


@dataclass(frozen=True)
class CheckIndex:
    """What the fidelity check needs beyond a draft's own products: every title and
    attribute value of the catalog, so a draft cannot name a product it is not about."""

    version: str
    titles: checks.PhraseIndex
    attributes: checks.PhraseIndex | None


_lock = threading.Lock()
_check_indexes: dict[int, CheckIndex] = {}
_index_built: dict[int, float] = {}
_copy_models: dict[int, tuple[str, CopyModel]] = {}


def check_index(catalog: Catalog, *, version: str | None = None) -> CheckIndex:
    """The catalog's CheckIndex, rebuilt when its data version changed.

    Without ``version`` an index younger than COPY_CHECK_INDEX_TTL_S is used as it is: the
    live checks run while someone types, and reading the version counts the catalog's
    reviews. A draft's own products are always read fresh (``product_sheets``); only the
    list of *other* titles may lag by that long."""
    cached = _check_indexes.get(catalog.pk)
    if (
        version is None
        and cached is not None
        and time.monotonic() - _index_built.get(catalog.pk, 0.0) < settings.COPY_CHECK_INDEX_TTL_S
    ):
        return cached
    version = version or catalog_version(catalog)
    if cached is not None and cached.version == version:
        _index_built[catalog.pk] = time.monotonic()
        return cached
    titles: list[str] = []
    attrs: dict[str, set[str]] = defaultdict(set)
    for title, attributes in Product.objects.filter(catalog=catalog).values_list(
        "title", "attributes"
    ):
        titles.append(title)
        for key, value in (attributes or {}).items():
            if value not in (None, "") and not isinstance(value, (dict, list)):
                attrs[str(key)].add(str(value).strip())
    index = CheckIndex(
        version,
        checks.PhraseIndex(titles),
        checks.attribute_index(attrs) if attrs else None,
    )
    with _lock:
        _check_indexes[catalog.pk] = index
        _index_built[catalog.pk] = time.monotonic()
    return index


@lru_cache(maxsize=1)
def engine_fingerprint() -> str:
    """Changes with the engine's code: a model pickled by other code (an older release
    whose classes had other attributes) is fitted again rather than loaded."""
    digest = hashlib.sha256()
    for path in sorted(Path(generate_module.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _model_path(catalog: Catalog, version: str) -> Path:
    name = f"catalog-{catalog.pk}-{version}-{engine_fingerprint()}.pkl"
    return Path(settings.DATA_DIR) / "copygen" / name


def copy_model(catalog: Catalog, *, version: str | None = None, on_progress=None) -> CopyModel:
    """The catalog's fitted CopyModel (selling points, sentiment model, word vectors).

    Fitting takes seconds (it trains on the catalog's own reviews and text), so the fit is
    kept per data version: in this process, and pickled on disk for the other workers of a
    drafting job. Older versions' files of the catalog are removed when a new one is saved.
    """
    version = version or catalog_version(catalog)
    cached = _copy_models.get(catalog.pk)
    if cached is not None and cached[0] == version:
        return cached[1]
    path = _model_path(catalog, version)
    model: CopyModel | None = None
    if path.exists():
        try:
            with path.open("rb") as fh:
                model = pickle.load(fh)  # noqa: S301 - our own file under DATA_DIR
        except Exception:
            logger.warning("copy model file of catalog %s unreadable; refitting", catalog.pk)
            model = None
    if model is None:
        model = CopyModel(
            catalog_sheets(catalog), reviews=catalog_reviews(catalog), on_progress=on_progress
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        for old in path.parent.glob(f"catalog-{catalog.pk}-*.pkl"):
            if old != path:
                old.unlink(missing_ok=True)
    with _lock:
        _copy_models[catalog.pk] = (version, model)
    return model


def sentiment_report(model: CopyModel) -> dict[str, Any]:
    """The sentiment model's held-out figures as JSON (shown where the drafts use it)."""
    report = getattr(model.sentiment, "report", None)
    if report is None:
        return {}
    return {
        k: (round(v, 3) if isinstance(v, float) else v)
        for k, v in vars(report).items()
        if isinstance(v, (int, float, str))
    }


# ----------------------------------------------------------------------------- recipients


@lru_cache(maxsize=1)
def _country_codes() -> dict[str, str]:
    """Country name (English, casefolded) or code → ISO 3166 alpha-2."""
    out: dict[str, str] = {}
    for code, name in Locale("en").territories.items():
        if len(code) == 2 and code.isalpha():
            out[name.casefold()] = code
            out[code.casefold()] = code
    out.update({"uk": "GB", "eire": "IE", "usa": "US", "rsa": "ZA", "czech republic": "CZ"})
    return out


def country_code(country: str) -> str:
    """ISO alpha-2 of a country as customers' files spell it ("United Kingdom", "DE"), or ""."""
    return _country_codes().get((country or "").strip().casefold(), "")


def customer_locale(language: str, fallback: str) -> str:
    """The customer's language when the engine writes it ("de-AT" → "de"), else fallback."""
    code = (language or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LOCALES else fallback


def first_name(name: str) -> str:
    """The first word of a name: the only personal data copy may carry."""
    parts = (name or "").strip().split()
    return parts[0][:40] if parts else ""


def interest_name(category: str) -> str:
    """How copy may name a category: the leaf of a path ("Home > Kitchen" → "Kitchen"), the
    leading term of a derived category ("Cake cases · Fairy · Tier" → "Cake cases")."""
    leaf = str(category).split(">")[-1]
    return leaf.split("·")[0].strip()


def category_names(top_categories: Any) -> list[str]:
    """The names of a profile's top categories ([{"name", "share"}, …]; plain names too),
    as copy may say them (``interest_name``)."""
    names = []
    for item in top_categories or []:
        name = item.get("name") if isinstance(item, dict) else item
        name = interest_name(name) if name else ""
        if name and name not in names:
            names.append(name)
    return names


class _CustomerRow(NamedTuple):
    """What ``customer_recipients`` reads of a customer (and hands to ``locale_for``)."""

    pk: int
    name: str
    country: str
    language: str


def customer_recipients(
    catalog: Catalog, customer_ids: Sequence[int], *, locale_for=None
) -> dict[int, Recipient]:
    """Recipients for customers: first name, interests (their profile's top categories,
    then what they bought most recently), RFM segment and country. ``locale_for(customer)``
    picks each one's locale (default "en"); it is given the customer's pk, name, country
    and language (attributes as on Customer)."""
    customers = [
        _CustomerRow(*row)
        for row in Customer.objects.filter(
            pk__in=list(customer_ids), erased_at__isnull=True
        ).values_list("pk", "name", "country", "language")
    ]
    profiles = {
        customer_id: (top_categories, rfm_segment)
        for customer_id, top_categories, rfm_segment in Profile.objects.filter(
            catalog=catalog, customer_id__in=list(customer_ids)
        ).values_list("customer_id", "top_categories", "rfm_segment")
    }
    recent: dict[int, list[str]] = defaultdict(list)
    rows = (
        Event.objects.filter(
            catalog=catalog, customer_id__in=list(customer_ids), kind=EventKind.PURCHASE
        )
        .order_by("customer_id", "-occurred_at", "-pk")
        .values_list("customer_id", "product__title")
    )
    for cid, title in rows.iterator(chunk_size=10_000):
        bucket = recent[cid]
        if title and len(bucket) < RECENT_TITLES and title not in bucket:
            bucket.append(title)
    out: dict[int, Recipient] = {}
    for c in customers:
        profile = profiles.get(c.pk)
        categories = category_names(profile[0] if profile else [])
        out[c.pk] = Recipient(
            key=f"customer:{c.pk}",
            locale=locale_for(c) if locale_for else "en",
            first_name=first_name(c.name),
            interests=tuple(dict.fromkeys([*categories, *recent.get(c.pk, [])])),
            segment=profile[1] if profile else "",
            country=country_code(c.country),
        )
    return out


def segment_recipient(segment: Segment, locale: str) -> Recipient:
    """The segment as one recipient: its members' most common top categories."""
    counts: Counter[str] = Counter()
    members = Profile.objects.filter(
        catalog_id=segment.catalog_id, customer__segment_memberships__segment=segment
    ).values_list("top_categories", flat=True)
    for categories in members.iterator(chunk_size=10_000):
        counts.update(category_names(categories)[:3])
    countries = Counter(
        country_code(c)
        for c in Customer.objects.filter(segment_memberships__segment=segment).values_list(
            "country", flat=True
        )[:5000]
    )
    countries.pop("", None)
    return Recipient(
        key=f"segment:{segment.pk}",
        locale=locale,
        interests=tuple(name for name, _ in counts.most_common(5)),
        segment=segment.name,
        country=countries.most_common(1)[0][0] if countries else "",
    )


# ----------------------------------------------------------------------------- briefs


def engine_brief(
    brief: Brief, locale: str, *, country: str = "", today: dt.date | None = None
) -> EngineBrief:
    """The engine's Brief for one locale (and recipient country, for the occasion's date)."""
    occasion: Occasion | None = None
    if brief.occasion:
        day = today or timezone.localdate()
        occasion = occasion_by_key(brief.occasion, country, day, locale=locale)
        if occasion is None and not country:
            # No country: the occasion as most shops keep it (its Western or Chinese date).
            for fallback in ("US", "CN", "IN"):
                occasion = occasion_by_key(brief.occasion, fallback, day, locale=locale)
                if occasion is not None:
                    break
    return EngineBrief(
        channel=brief.channel,
        tone=brief.tone,
        locale=locale,
        variants=brief.variants,
        products_per_message=brief.products_per_message,
        occasion=occasion,
        brand=BrandRules(
            voice=tuple(brief.voice_list),
            banned_words=tuple(brief.banned_list),
            disclaimer=brief.disclaimer.strip(),
            sender=brief.sender.strip(),
        ),
        sms_segments=brief.sms_segments,
    )


# ----------------------------------------------------------------------------- checks


def draft_recipient(draft: Draft) -> Recipient:
    if draft.customer_id is not None:
        found = customer_recipients(draft.catalog, [draft.customer_id])
        if draft.customer_id in found:
            r = found[draft.customer_id]
            return Recipient(
                key=r.key,
                locale=draft.locale,
                first_name=r.first_name,
                interests=r.interests,
                segment=r.segment,
                country=r.country,
            )
    return Recipient(key=draft.audience_key, locale=draft.locale)


def check_fields(
    draft: Draft, fields: dict[str, Any], *, source: str = "edit"
) -> list[CheckResult]:
    """Every check of the engine on ``fields`` as the text of ``draft`` (its channel,
    locale, products and brief) against the products' current data."""
    catalog = draft.catalog
    index = check_index(catalog)
    sheets = product_sheets(catalog, [int(p) for p in draft.product_ids])
    recipient = draft_recipient(draft)
    brief = engine_brief(draft.brief, draft.locale, country=recipient.country)
    variant = EngineVariant(
        channel=draft.channel,
        locale=draft.locale,
        tone=draft.tone,
        fields=fields,
        product_ids=tuple(s.product_id for s in sheets),
        recipient_key=draft.audience_key,
        source=source,
    )
    return checks.check_variant(
        variant,
        sheets,
        brief,
        recipient=recipient,
        known_titles=index.titles,
        known_attributes=index.attributes,
    )


def summarize(results: Iterable[CheckResult]) -> tuple[list[dict], bool, str]:
    """(failures as JSON, passes = no blocking error, ",name,…," of the failing checks)."""
    failures = [
        {
            "check": r.check,
            "field": r.field,
            "message": r.message,
            "severity": r.severity,
        }
        for r in results
        if not r.ok
    ]
    passes = not any(f["severity"] == "error" for f in failures)
    names = sorted({f["check"] for f in failures})
    return failures, passes, ("," + ",".join(names) + ",") if names else ""


def segment_members(segment: Segment) -> Q:
    """Customers of the segment (filter for Customer querysets)."""
    return Q(segment_memberships__segment=segment, erased_at__isnull=True)
