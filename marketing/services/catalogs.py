"""Catalog writes: create, update and delete, each in one transaction.

Names are unique regardless of case. The database enforces exact uniqueness; the
case-insensitive check here catches the rest, and an IntegrityError from a concurrent
create comes back as the same ValidationError a form shows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from marketing.models import Catalog, Event, Product, Upload
from marketing.selectors import catalog_name_taken

logger = logging.getLogger(__name__)

_EDITABLE = ("name", "currency", "default_language", "timezone", "non_product_patterns")


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
    user: AbstractBaseUser | None = None,
) -> Catalog:
    """Create a catalog; without patterns it gets the default non-product SKU patterns."""
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
    user: AbstractBaseUser | None = None,
) -> Catalog:
    """Rename or reconfigure a catalog. Patterns apply to future imports only."""
    name = name.strip()
    _check(name=name, non_product_patterns=non_product_patterns, exclude_pk=catalog.pk)
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
    logger.info("catalog %s updated by %s", catalog.pk, getattr(user, "pk", None))
    return catalog


@transaction.atomic
def catalog_delete(*, catalog: Catalog, user: AbstractBaseUser | None = None) -> CatalogDeleted:
    """Delete a catalog with its products, events and uploads; customers and jobs stay.

    Events go first in one set-based DELETE (their catalog index makes it cheap), so the
    cascade from products finds nothing left to collect row by row. Uploaded files are
    removed from storage only once the transaction has committed.
    """
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
