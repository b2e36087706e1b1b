"""Catalog writes: create, update and delete, each in one transaction.

Names are unique regardless of case. The database enforces exact uniqueness; the
case-insensitive check here catches the rest, and an IntegrityError from a concurrent
create comes back as the same ValidationError a form shows.

Every service checks the user's permission itself, whichever interface (page, admin, shell)
calls it. A delete waits for a running import and refuses while one is queued or running:
events have no database foreign keys, so an import that wrote into a deleted catalog would
leave orphan rows behind.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from marketing.models import AuditEvent, Catalog, Event, Job, Product, Upload
from marketing.permissions import require_perm
from marketing.selectors import catalog_name_taken
from marketing.services.audit import audit

logger = logging.getLogger(__name__)

_EDITABLE = ("name", "currency", "default_language", "timezone", "non_product_patterns")

# The advisory lock class an import holds for its whole transaction (imports.filejob.lock_catalog);
# the second key is the catalog's id.
IMPORT_LOCK_CLASS = 7001

IMPORT_ACTIVE_MESSAGE = (
    "An import into this catalog is queued or running; cancel it or wait for it to finish."
)


class CatalogBusy(ValidationError):
    """The catalog cannot be deleted now: an import into it is queued or running."""


@dataclass(frozen=True)
class CatalogDeleted:
    """What a delete removed, for the confirmation message."""

    name: str
    products: int
    events: int
    uploads: int


def _check(*, name: str, non_product_patterns: list[str], exclude_pk: int | None = None) -> None:
    """Rules that must hold whichever interface calls the service."""
    if catalog_name_taken(name=name, exclude_pk=exclude_pk):
        raise ValidationError({"name": f"A catalog named “{name}” already exists."})
    for pattern in non_product_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValidationError(
                {"non_product_patterns": f"“{pattern}” is not a valid regular expression: {exc}"}
            ) from exc


@transaction.atomic
def catalog_create(
    *,
    name: str,
    currency: str,
    default_language: str,
    timezone: str,
    non_product_patterns: list[str] | None = None,
    user: AbstractBaseUser | AnonymousUser,
) -> Catalog:
    """Create a catalog; without patterns it gets the default non-product SKU patterns."""
    require_perm(user, "marketing.add_catalog")
    name = name.strip()
    catalog = Catalog(
        name=name, currency=currency.upper(), default_language=default_language, timezone=timezone
    )
    if non_product_patterns is not None:
        catalog.non_product_patterns = list(non_product_patterns)
    _check(name=name, non_product_patterns=catalog.non_product_patterns)
    try:
        with transaction.atomic():
            catalog.save()
    except IntegrityError as exc:
        raise ValidationError({"name": f"A catalog named “{name}” already exists."}) from exc
    audit(
        actor=user,
        action=AuditEvent.Action.CATALOG_CREATED,
        obj=catalog,
        details={"name": name, "currency": catalog.currency, "timezone": timezone},
    )
    logger.info("catalog %s created by %s", catalog.pk, getattr(user, "pk", None))
    return catalog


@transaction.atomic
def catalog_update(
    *,
    catalog: Catalog,
    name: str,
    currency: str,
    default_language: str,
    timezone: str,
    non_product_patterns: list[str],
    user: AbstractBaseUser | AnonymousUser,
) -> Catalog:
    """Rename or reconfigure a catalog. Patterns apply to future imports only."""
    require_perm(user, "marketing.change_catalog")
    name = name.strip()
    _check(name=name, non_product_patterns=non_product_patterns, exclude_pk=catalog.pk)
    before = {field: getattr(catalog, field) for field in _EDITABLE}
    catalog.name = name
    catalog.currency = currency.upper()
    catalog.default_language = default_language
    catalog.timezone = timezone
    catalog.non_product_patterns = list(non_product_patterns)
    try:
        with transaction.atomic():
            catalog.save(update_fields=[*_EDITABLE, "updated_at"])
    except IntegrityError as exc:
        raise ValidationError({"name": f"A catalog named “{name}” already exists."}) from exc
    changes = _changes(before, catalog)
    if changes:
        audit(
            actor=user,
            action=AuditEvent.Action.CATALOG_CHANGED,
            obj=catalog,
            details={"name": name, "changes": changes},
        )
    logger.info("catalog %s updated by %s", catalog.pk, getattr(user, "pk", None))
    return catalog


def _changes(before: dict, catalog: Catalog) -> dict:
    """What an update changed, for the audit trail: old and new value of each setting, and
    the non-product patterns added and removed (settings an admin typed, never customer data)."""
    changes: dict = {}
    for field in _EDITABLE:
        old, new = before[field], getattr(catalog, field)
        if old == new:
            continue
        if field == "non_product_patterns":
            old, new = _patterns(old), _patterns(new)
            changes[field] = {
                "added": [p for p in new if p not in old],
                "removed": [p for p in old if p not in new],
            }
        else:
            changes[field] = {"from": old, "to": new}
    return changes


@transaction.atomic
def catalog_delete(*, catalog: Catalog, user: AbstractBaseUser | AnonymousUser) -> CatalogDeleted:
    """Delete a catalog with its products, events and uploads; customers and jobs stay.

    Raises CatalogBusy while an import into the catalog is queued or running. The order of
    locks matters: first the import's advisory lock (so a running import finishes, or has
    not started writing), then the catalog row FOR UPDATE (so no new upload or job can
    reference it until this commits: their foreign keys wait for the row), and only then the
    check for active jobs, which nothing can change any more before the commit.

    Events go first in one set-based DELETE (their catalog index makes it cheap), so the
    cascade from products finds nothing left to collect row by row. Uploaded files are
    removed from storage only once the transaction has committed.
    """
    require_perm(user, "marketing.delete_catalog")
    _lock_against_imports(catalog.pk)
    catalog = Catalog.objects.select_for_update().get(pk=catalog.pk)
    if Job.objects.filter(catalog=catalog, kind=Job.Kind.IMPORT, status__in=Job.ACTIVE).exists():
        raise CatalogBusy(IMPORT_ACTIVE_MESSAGE, code="import_active")
    name, pk = catalog.name, catalog.pk
    files = [
        (upload.file.storage, upload.file.name)
        for upload in Upload.objects.filter(catalog=catalog).only("file")
        if upload.file
    ]
    events, _ = Event.objects.filter(catalog=catalog).delete()
    _, by_model = Product.objects.filter(catalog=catalog).delete()
    products = by_model.get(Product._meta.label, 0)
    _, by_model = Upload.objects.filter(catalog=catalog).delete()
    uploads = by_model.get(Upload._meta.label, 0)
    audit(
        actor=user,
        action=AuditEvent.Action.CATALOG_DELETED,
        obj=catalog,
        details={"name": name, "products": products, "events": events, "uploads": uploads},
    )
    catalog.delete()

    def remove_files() -> None:
        for storage, file_name in files:
            try:
                storage.delete(file_name)
            except OSError:
                logger.warning("could not remove upload file %s", file_name)

    transaction.on_commit(remove_files)
    logger.info(
        "catalog %s deleted by %s (%s products, %s events)",
        pk,
        getattr(user, "pk", None),
        products,
        events,
    )
    return CatalogDeleted(name=name, products=products, events=events, uploads=uploads)


def _patterns(value) -> list[str]:
    """Older rows may hold one pattern as a plain string (the importer accepts both)."""
    return [value] if isinstance(value, str) else list(value or [])


def _lock_against_imports(catalog_pk: int) -> None:
    """Wait for the advisory lock an import into the catalog holds until it commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [IMPORT_LOCK_CLASS, catalog_pk])
    # SQLite: one writer at a time already; an import's transaction holds the write lock.
