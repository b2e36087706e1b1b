"""Derived categories: named clusters of product text for catalogs that have no categories.

`categories_derive` decides whether a catalog needs them, runs the pure core
(`marketing.analytics.categories.derive_categories`) on the title and description of every
product without its own category, and stores the result: one `DerivedCategory` per cluster
and `Product.derived_category` on each product. The profile refresh calls it before it reads
its frames, and reads `effective_category()` (own category, else derived name), so profiles,
top categories, learned segments and rules see the derived names.

When a catalog needs them: fewer than ``DERIVE_BELOW_SHARE`` (5 %) of its products have
their own category. The few that do keep theirs; all others get a derived one. A catalog at or
above the share has categories: its derived ones (if any) are removed.

When it runs again: only when a product without its own category has no derived category
yet (new products), when a product changed since the last derivation (``updated_at`` after
the stamp below), or when forced. Otherwise it reads a few counts and writes nothing.

How it runs again: when at most ``INCREMENTAL_MAX_SHARE`` (20 %) of those products are new or
changed (and the catalog has not grown enough to want a different number of categories), it
does not cluster again: unchanged products keep their category, and new or changed ones join
the category whose texts are closest (`marketing.analytics.category_assign`). k-means on short
titles is unstable; re-clustering after 2 % new products left only ~60 % of the Online
Retail categories recognisable, and an admin's name would go with the rest. Otherwise (or when
forced) it clusters everything again, matching old to new as described next.

The stamp: every derivation sets ``created_at`` of all the catalog's derived categories to the
moment it started reading, so "changed since" compares ``Product.updated_at`` with it (no
schema change needed; ``created_at`` thus means "derived at").

Admin renames survive a full re-derivation when their category does: each new cluster is matched to the old category with
which it shares the most products, if their Jaccard similarity is at least ``MATCH_JACCARD``
(greedy, best pairs first; ties by old pk, then by new cluster order). A matched category
keeps its pk, and its name too when an admin renamed it; unmatched old categories are
deleted; unmatched clusters become new categories. Name clashes (a renamed category's name
equal to a new cluster's name) go to the renamed one; the other gets " (2)", " (3)"… in
cluster order (largest first), so the outcome is deterministic for a seed.

Rule segments name categories by text (``bought_category``): when a category keeps its pk
under a new name (an admin's rename, or a re-derivation that renames a matched category),
the rules that named the old name (ignoring case, or as a path prefix) are rewritten in the
same transaction and the change is audited, so such a segment does not silently empty.

Products whose text shares no word with another product's land in "Uncategorised" (a
derived category too, so every product without its own category has one). Catalogs with
fewer than four products that have text get no derived categories at all (the core's
``available`` is false; the reason is returned).

On PostgreSQL the derivation runs in one transaction that first tries the advisory lock an
import holds: if an import into the catalog is writing, it skips (the next refresh derives),
so it never reads half an import and never waits behind one.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from marketing.analytics.categories import (
    DEFAULT_STOP_WORDS,
    UNCATEGORISED,
    default_k,
    derive_categories,
)
from marketing.analytics.categories import DerivedCategory as Cluster
from marketing.analytics.category_assign import assign_categories
from marketing.models import AuditEvent, Catalog, DerivedCategory, Job, Product
from marketing.permissions import require_perm
from marketing.services.audit import audit
from marketing.services.catalogs import IMPORT_LOCK_CLASS
from marketing.services.segments import segment_rules_rename_categories

logger = logging.getLogger(__name__)

DERIVE_BELOW_SHARE = 0.05  # catalogs where fewer products than this have a category
MATCH_JACCARD = 0.5  # a new cluster inherits an old category's pk (and rename) from here
INCREMENTAL_MAX_SHARE = 0.2  # up to this share of new/changed products: place, not recluster
SEED = 0
NAME_MAX = 300
PATH_SEPARATOR = " > "
UPDATE_BATCH = 900  # ids per UPDATE … WHERE id IN (…): below SQLite's variable limit
PARKED = "\u2063parked-"  # a name no admin types (invisible separator), held during a swap

# Pattern and style words of gift and homeware catalogs ("RETROSPOT LUNCH BAG"), stop words on
# top of the core's colours and sizes: they cut across product types, so clusters named after
# them ("Retrospot · Vintage") would group by decoration instead of by what the product is.
# Tuned on the UCI Online Retail titles (see the README's "Derived categories").
_STYLES = """design designs vintage retro retrospot polkadot polka dot dots spotty spot spots
floral paisley regency french english antique charlotte classic traditional style size"""
STYLE_WORDS = frozenset(_STYLES.split())
STOP_WORDS = DEFAULT_STOP_WORDS | STYLE_WORDS

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CategoriesDerived:
    """What `categories_derive` did (JSON-safe through `as_json`)."""

    status: str  # derived | unchanged | cleared | not_needed | unavailable | busy
    mode: str = ""  # derived: "full" (clustered again) or "incremental" (new products placed)
    categories: int = 0  # derived categories the catalog has now
    products: int = 0  # products with a derived category now
    created: int = 0
    deleted: int = 0
    renamed_kept: int = 0  # categories that keep an admin-chosen name through this run
    products_changed: int = 0  # products whose derived category changed
    seconds: float = 0.0
    reason: str = ""

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def summary(self) -> str:
        if self.status == "derived":
            return (
                f"{self.categories} categories derived for {self.products:,} products "
                f"in {self.seconds:.1f} s"
            )
        if self.status == "cleared":
            return "derived categories removed (the catalog has its own)"
        return self.reason or self.status.replace("_", " ")


def categories_derive_needed(*, catalog: Catalog) -> bool:
    """Whether `categories_derive` would write anything (cheap: a few indexed queries)."""
    return _plan(catalog) not in ("unchanged", "not_needed")


def _plan(catalog: Catalog) -> str:
    """derive | clear | unchanged | not_needed."""
    products = Product.objects.filter(catalog=catalog)
    counts = products.aggregate(total=Count("pk"), own=Count("pk", filter=~Q(category="")))
    total, own = counts["total"], counts["own"]
    has_derived = DerivedCategory.objects.filter(catalog=catalog).exists()
    if total == 0 or own >= DERIVE_BELOW_SHARE * total:
        if has_derived or products.filter(derived_category__isnull=False).exists():
            return "clear"
        return "not_needed"
    lacking = products.filter(category="")
    if lacking.filter(derived_category__isnull=True).exists():
        return "derive"
    stamp = DerivedCategory.objects.filter(catalog=catalog).aggregate(at=Max("created_at"))["at"]
    if stamp is None or products.filter(updated_at__gt=stamp).exists():
        return "derive"
    if products.exclude(category="").filter(derived_category__isnull=False).exists():
        return "derive"
    return "unchanged"


def categories_derive(
    *,
    catalog: Catalog,
    force: bool = False,
    seed: int = SEED,
    on_progress: Progress | None = None,
) -> CategoriesDerived:
    """Derive (or re-derive, or clear) the catalog's categories when needed; see the module.

    ``force`` re-derives even when nothing changed (renames are kept all the same).
    """
    started = time.perf_counter()
    with transaction.atomic():
        if not _try_import_lock(catalog.pk):
            return CategoriesDerived(
                status="busy", reason="an import into the catalog is writing; derived later"
            )
        plan = _plan(catalog)
        if plan == "derive" or (force and plan == "unchanged"):
            result = _derive(catalog, force=force, seed=seed, on_progress=on_progress)
        elif plan == "clear":
            _clear(catalog)
            result = CategoriesDerived(status="cleared")
        else:
            result = CategoriesDerived(status=plan)
    result = dataclasses.replace(result, seconds=round(time.perf_counter() - started, 3))
    if result.status not in ("unchanged", "not_needed"):
        logger.info(
            "catalog %s categories: %s (%s categories, %s products, %.1f s)",
            catalog.pk,
            result.status,
            result.categories,
            result.products,
            result.seconds,
        )
    return result


def _try_import_lock(catalog_pk: int) -> bool:
    """Take the import's advisory lock for this transaction, unless an import holds it."""
    if connection.vendor != "postgresql":
        return True  # SQLite: one writer at a time, and IMMEDIATE transactions take it first
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [IMPORT_LOCK_CLASS, catalog_pk])
        return bool(cur.fetchone()[0])


def _clear(catalog: Catalog) -> None:
    Product.objects.filter(catalog=catalog, derived_category__isnull=False).update(
        derived_category=None
    )
    DerivedCategory.objects.filter(catalog=catalog).delete()


def _derive(
    catalog: Catalog, *, force: bool, seed: int, on_progress: Progress | None
) -> CategoriesDerived:
    stamp = timezone.now()
    # Locked, so a rename committing meanwhile cannot be overwritten by a stale read.
    old = {c.pk: c for c in DerivedCategory.objects.select_for_update().filter(catalog=catalog)}
    rows = Product.objects.filter(catalog=catalog).values_list(
        "id", "category", "title", "description", "derived_category_id", "updated_at"
    )
    frame = pd.DataFrame.from_records(
        list(rows.iterator(chunk_size=5000)),
        columns=["product_id", "category", "title", "description", "current", "updated_at"],
    )
    frame["current"] = pd.to_numeric(frame["current"])  # float, NaN for none
    lacking = frame[frame["category"] == ""]
    previous = max((c.created_at for c in old.values()), default=None)
    fresh = lacking["current"].isna()
    if previous is not None:
        fresh |= pd.to_datetime(lacking["updated_at"], utc=True) > pd.Timestamp(previous)
    real = sum(1 for c in old.values() if c.auto_name != UNCATEGORISED)
    incremental = (
        not force
        and real > 0
        and fresh.sum() <= INCREMENTAL_MAX_SHARE * len(lacking)
        and abs(default_k(len(lacking)) - real) <= max(1, round(0.25 * real))
    )
    if incremental:
        return _assign(catalog, old, frame, lacking, fresh, stamp)
    return _recluster(catalog, old, frame, lacking, stamp, seed=seed, on_progress=on_progress)


def _assign(
    catalog: Catalog,
    old: dict[int, DerivedCategory],
    frame: pd.DataFrame,
    lacking: pd.DataFrame,
    fresh: pd.Series,
    stamp,
) -> CategoriesDerived:
    """Keep every unchanged product's category; new and changed ones join the nearest."""
    uncategorised = next((c for c in old.values() if c.auto_name == UNCATEGORISED), None)
    kept = lacking[~fresh]
    labels = kept.set_index("product_id")["current"].astype("int64")
    if uncategorised is not None:  # tried again: similar products may have arrived
        labels = labels[labels != uncategorised.pk]
    guess = assign_categories(
        lacking[["product_id", "title", "description"]], labels, stop_words=STOP_WORDS
    )
    created = 0
    if guess.isna().any() and uncategorised is None:
        taken = {c.name.casefold() for c in old.values()}
        uncategorised = DerivedCategory.objects.create(
            catalog=catalog, name=_unique(UNCATEGORISED, taken), auto_name=UNCATEGORISED
        )
        old[uncategorised.pk] = uncategorised
        created = 1
    if uncategorised is not None:
        guess = guess.where(guess.notna(), uncategorised.pk)
    target = pd.concat([labels, guess.astype("int64")])
    moved = _move_products(frame, target)

    sizes = target.value_counts()
    empty = [pk for pk in old if pk not in sizes.index]
    DerivedCategory.objects.filter(pk__in=empty).delete()
    for pk, category in old.items():
        if pk not in empty and category.size != int(sizes[pk]):
            category.size = int(sizes[pk])
            category.save(update_fields=["size"])
    DerivedCategory.objects.filter(catalog=catalog).update(created_at=stamp)
    stray = _release_own(catalog)
    remaining = [c for pk, c in old.items() if pk not in empty]
    return CategoriesDerived(
        status="derived",
        mode="incremental",
        categories=len(remaining),
        products=int(target.size),
        created=created,
        deleted=len(empty),
        renamed_kept=sum(1 for c in remaining if c.renamed_at is not None),
        products_changed=moved + stray,
    )


def _recluster(
    catalog: Catalog,
    old: dict[int, DerivedCategory],
    frame: pd.DataFrame,
    lacking: pd.DataFrame,
    stamp,
    *,
    seed: int,
    on_progress: Progress | None,
) -> CategoriesDerived:
    """Cluster all texts again; matched old categories keep their pk and admin names."""
    names_before = {pk: cat.name for pk, cat in old.items()}
    result = derive_categories(
        lacking[["product_id", "title", "description"]],
        seed=seed,
        stop_words=STOP_WORDS,
        on_progress=on_progress,
    )
    if not result.available:
        _clear(catalog)
        return CategoriesDerived(status="unavailable", reason=result.reason)

    new = result.categories  # product id -> cluster name
    current = frame.set_index("product_id")["current"].dropna().astype("int64")
    clusters = list(result.clusters)
    if (new == UNCATEGORISED).any():  # products without a usable word: a category too
        clusters.append(Cluster(UNCATEGORISED, int((new == UNCATEGORISED).sum()), ()))
    matches = {name: old[pk] for name, pk in _match(current, new).items()}
    names = _final_names(clusters, matches)

    # Categories: delete unmatched old ones, update matched ones in place, create the rest.
    kept_pks = {cat.pk for cat in matches.values()}
    deleted = [pk for pk in old if pk not in kept_pks]
    if deleted:
        DerivedCategory.objects.filter(pk__in=deleted).delete()  # SET_NULL on its products
    category_of: dict[str, DerivedCategory] = {}
    updates: list[tuple[DerivedCategory, list[str]]] = []
    create: list[DerivedCategory] = []
    for cluster in clusters:
        values = {
            "name": names[cluster.name],
            "auto_name": cluster.name,
            "terms": list(cluster.terms),
            "size": cluster.size,
        }
        cat = matches.get(cluster.name)
        if cat is None:
            cat = DerivedCategory(catalog=catalog, **values)
            create.append(cat)
        else:
            changed = [f for f, v in values.items() if getattr(cat, f) != v]
            for field, value in values.items():
                setattr(cat, field, value)
            if cat.renamed_at is not None and cat.name == cat.auto_name:
                # The clustering now calls it what the admin did: no longer a rename.
                cat.renamed_at, cat.renamed_by = None, None
                changed += ["renamed_at", "renamed_by"]
            if changed:
                updates.append((cat, changed))
        category_of[cluster.name] = cat
    # Names are unique per catalog: park every changing name first, so a swap cannot clash.
    for cat, changed in updates:
        if "name" in changed:
            DerivedCategory.objects.filter(pk=cat.pk).update(name=f"{PARKED}{cat.pk}")
    for cat, changed in updates:
        cat.save(update_fields=changed)
    # Rule segments naming a category that keeps its pk under a new name follow it.
    segment_rules_rename_categories(
        catalog_id=catalog.pk,
        renames={names_before[c.pk]: c.name for c, changed in updates if "name" in changed},
        reason="derived category renamed by a new derivation",
    )
    DerivedCategory.objects.bulk_create(create)
    DerivedCategory.objects.filter(catalog=catalog).update(created_at=stamp)

    target = new.map({name: cat.pk for name, cat in category_of.items()}).astype("int64")
    moved = _move_products(frame, target)
    stray = _release_own(catalog)
    return CategoriesDerived(
        status="derived",
        mode="full",
        categories=len(clusters),
        products=int(target.size),
        created=len(create),
        deleted=len(deleted),
        renamed_kept=sum(1 for cat in matches.values() if cat.renamed_at is not None),
        products_changed=moved + stray,
    )


def _move_products(frame: pd.DataFrame, target: pd.Series) -> int:
    """Point products at their categories (product id -> category pk): one UPDATE per
    category and batch of ids, only for products whose category changes."""
    current = frame.set_index("product_id")["current"]
    before = current.reindex(target.index).fillna(-1).astype("int64")
    moved = target[before.ne(target)]
    for pk, ids in moved.groupby(moved).groups.items():
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), UPDATE_BATCH):
            Product.objects.filter(pk__in=ids[start : start + UPDATE_BATCH]).update(
                derived_category_id=int(pk)
            )
    return int(moved.size)


def _release_own(catalog: Catalog) -> int:
    """Products that got their own category since the last derivation leave the derived one."""
    return (
        Product.objects.filter(catalog=catalog, derived_category__isnull=False)
        .exclude(category="")
        .update(derived_category=None)
    )


def _final_names(clusters: list[Cluster], matches: dict[str, DerivedCategory]) -> dict[str, str]:
    """Cluster name -> stored name: renamed categories keep theirs, the others take the
    cluster's name, made unique (regardless of case) in cluster order."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for cluster in clusters:
        cat = matches.get(cluster.name)
        if cat is not None and cat.renamed_at is not None:
            names[cluster.name] = cat.name
            taken.add(cat.name.casefold())
    for cluster in clusters:
        if cluster.name not in names:
            names[cluster.name] = _unique(cluster.name, taken)
            taken.add(names[cluster.name].casefold())
    return names


def _match(current: pd.Series, new: pd.Series) -> dict[str, int]:
    """New cluster name -> old category pk, greedily by Jaccard similarity ≥ MATCH_JACCARD."""
    if current.empty or new.empty:
        return {}
    old_sizes = current.value_counts()
    new_sizes = new.value_counts()
    both = pd.DataFrame({"old": current.reindex(new.index), "new": new}).dropna()
    both["old"] = both["old"].astype("int64")
    overlap = both.groupby(["old", "new"]).size()
    pairs = []
    for (old_pk, name), shared in overlap.items():
        union = old_sizes[old_pk] + new_sizes[name] - shared
        pairs.append((-shared / union, -shared, int(old_pk), str(name)))
    pairs.sort()
    matched: dict[str, int] = {}
    used: set[int] = set()
    for neg_jaccard, _, old_pk, name in pairs:
        if -neg_jaccard < MATCH_JACCARD:
            break
        if name in matched or old_pk in used:
            continue
        matched[name] = old_pk
        used.add(old_pk)
    return matched


def _unique(name: str, taken: set[str]) -> str:
    candidate, suffix = name[:NAME_MAX], 2
    while candidate.casefold() in taken:
        tail = f" ({suffix})"
        candidate = name[: NAME_MAX - len(tail)] + tail
        suffix += 1
    return candidate


# Renaming ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryRenamed:
    category: DerivedCategory
    old_name: str
    refresh_job: Job | None  # the profile refresh that carries the new name into profiles


def category_name_clean(name: str) -> str:
    """The name as stored (whitespace trimmed and collapsed), or a ValidationError."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Enter a name."})
    if len(name) > NAME_MAX:
        raise ValidationError({"name": f"Use at most {NAME_MAX} characters ({len(name)} now)."})
    if PATH_SEPARATOR in name:
        raise ValidationError(
            {"name": "“ > ” separates the levels of a category path; use another character."}
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise ValidationError({"name": "Remove the control or invisible characters."})
    return name


def category_name_check(*, category: DerivedCategory, name: str) -> str:
    """The name as `category_rename` would store it, or a ValidationError ({"name": …}) when
    it is malformed or another category of the catalog has it (regardless of case).

    Forms call it to show the error on the field; the rename calls it again under the
    catalog's lock, where the answer holds until it commits.
    """
    name = category_name_clean(name)
    taken = (
        DerivedCategory.objects.filter(catalog_id=category.catalog_id, name__iexact=name)
        .exclude(pk=category.pk)
        .exists()
    )
    if taken:
        raise ValidationError({"name": f"Another category of this catalog is named “{name}”."})
    return name


@transaction.atomic
def category_rename(*, user, category: DerivedCategory, name: str) -> CategoryRenamed:
    """Rename a derived category, record it in the audit trail and queue a profile refresh.

    Renaming it to the name the clustering gave it (``auto_name``) undoes the rename, so
    later derivations name it again. Raises ValidationError for a bad or taken name (unique
    per catalog, regardless of case) and when the category was removed meanwhile. Rule
    segments whose ``bought_category`` names the old name follow the new one (audited).

    Renames in one catalog take its row lock (FOR NO KEY UPDATE: rows that reference the
    catalog can still be inserted) before the case-insensitive check, so two renames to
    "Mugs" and "mugs" run one after the other and the second is refused; a derivation locks
    the categories themselves, and picks names unique regardless of case.
    """
    require_perm(user, "marketing.change_derivedcategory")
    name = category_name_clean(name)
    Catalog.objects.select_for_update(no_key=True).filter(pk=category.catalog_id).exists()
    # Only the category's row: its default ordering joins the catalog, whose row a plain
    # FOR UPDATE would lock again, and more strongly, as a side effect.
    locked = (
        DerivedCategory.objects.select_for_update(of=("self",))
        .filter(pk=category.pk)
        .order_by()
        .first()
    )
    if locked is None:
        raise ValidationError(
            {"name": "This category no longer exists: a new derivation replaced it. Reload."}
        )
    old_name = locked.name
    if name == old_name:
        return CategoryRenamed(category=locked, old_name=old_name, refresh_job=None)
    name = category_name_check(category=locked, name=name)
    locked.name = name
    if name == locked.auto_name:
        locked.renamed_by, locked.renamed_at = None, None
    else:
        locked.renamed_by, locked.renamed_at = user, timezone.now()
    try:
        with transaction.atomic():
            locked.save(update_fields=["name", "renamed_by", "renamed_at"])
    except IntegrityError as exc:  # a concurrent rename took the name first
        raise ValidationError(
            {"name": f"Another category of this catalog is named “{name}”."}
        ) from exc
    segments = segment_rules_rename_categories(
        catalog_id=locked.catalog_id,
        renames={old_name: name},
        user=user,
        reason="derived category renamed",
    )
    audit(
        actor=user,
        action=AuditEvent.Action.CATEGORY_RENAMED,
        obj=locked,
        details={
            "catalog_id": locked.catalog_id,
            "old_name": old_name,
            "new_name": name,
            "auto_name": locked.auto_name,
            "products": locked.size,
            "rule_segments": segments,
        },
    )
    # Profiles and learned segments store category names: refresh them with the new one.
    from marketing.services.profiles import profile_refresh_start  # it imports this module

    job = profile_refresh_start(catalog=locked.catalog, user=user, triggered_by_import=True)
    logger.info("derived category %s renamed by %s", locked.pk, getattr(user, "pk", None))
    return CategoryRenamed(category=locked, old_name=old_name, refresh_job=job)
