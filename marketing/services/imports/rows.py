"""Products and customers: upsert by natural key, counting inserted / updated / unchanged.

Both kinds follow one rule set (`_RecordIndex`): new keys are bulk-created, known keys get the
chunk's non-empty mapped values and attributes merged in (`_merge_record`), and each key is
classified the first time this job touches it (`_KeyStatus`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Model, QuerySet
from django.utils import timezone

from marketing.analytics.importing import Issue
from marketing.analytics.importing.chunk import CUSTOMER_COLUMNS, PRODUCT_COLUMNS
from marketing.analytics.importing.formats import ROW_COLUMN
from marketing.models import Catalog, Customer, Product, Upload
from marketing.services.customers import CUSTOMER_ERASED, customer_suppression


def _updatable(columns: Iterable[str], key: str) -> tuple[str, ...]:
    """The core's output columns an import may write onto a stored row: all but the natural
    key, the attributes dict (merged, not overwritten) and the source row number."""
    return tuple(c for c in columns if c not in (key, "attributes", ROW_COLUMN))


PRODUCT_FIELDS = _updatable(PRODUCT_COLUMNS, "sku")
CUSTOMER_FIELDS = _updatable(CUSTOMER_COLUMNS, "external_id")


@dataclass
class _KeyStatus:
    """First classification of each key touched by this job (inserted / updated / unchanged)."""

    status: dict[str, str] = field(default_factory=dict)

    def mark(self, key: str, what: str) -> None:
        before = self.status.get(key)
        if before is None or (before == "unchanged" and what == "updated"):
            self.status[key] = what

    def counts(self) -> dict[str, int]:
        out = {"inserted": 0, "updated": 0, "unchanged": 0}
        for what in self.status.values():
            out[what] += 1
        return out


def _mapped(mapping: dict, names: Iterable[str], kind: str) -> list[str]:
    if kind == Upload.Kind.ONLINE_RETAIL:
        return [n for n in names if n in ("title", "price", "country")]
    if kind == Upload.Kind.REVIEWS:
        return []  # reviews only create missing products; they never overwrite catalog data
    return [n for n in names if mapping.get(n) or (n == "name" and mapping.get("first_name"))]


def _is_true(value) -> bool:
    """Only a real True grants consent: None (unknown) and NaN (what pandas makes of None in
    some frames, and which bool() reads as True) do not."""
    return isinstance(value, bool | np.bool_) and bool(value)


def _clean_value(name: str, value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if name == "price":
        return Decimal(str(round(float(value), 2)))
    return value


def _merge_record(
    obj: Model, record: dict, fields: Iterable[str], max_lengths: Mapping[str, int]
) -> bool:
    """Copy a record's non-empty values of fields, and its attributes, onto a stored row.

    Returns whether anything changed. Attributes merge key by key, so a file that names some
    of them keeps the others.
    """
    dirty = False
    for name in fields:
        value = _clean_value(name, record.get(name))
        if value is None or value == "":
            continue  # an empty cell never blanks stored data
        if name.startswith("consent_"):
            if not isinstance(value, bool | np.bool_):
                continue  # consent changes only on a real yes or no
            value = bool(value)
        if name in max_lengths:
            value = str(value)[: max_lengths[name]]
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            dirty = True
    attrs = record.get("attributes") or {}
    if attrs and any(obj.attributes.get(k) != v for k, v in attrs.items()):
        obj.attributes = {**obj.attributes, **attrs}
        dirty = True
    return dirty


class _IdMap(dict):
    """Natural key → row id, with a cached pandas Index for vectorised lookups.

    `Series.map(dict)` rebuilds a Series from the whole dict on every call; a chunk of 100k
    events against 100k customers then costs more than parsing it.
    """

    _index: pd.Index | None = None
    _ids: np.ndarray | None = None
    _size = -1

    def lookup(self, keys: pd.Series) -> pd.Series:
        """Row ids for keys (Int64, <NA> for unknown or missing keys)."""
        if self._size != len(self):  # entries are only ever added
            self._index = pd.Index(list(self.keys()), dtype=object)
            self._ids = np.fromiter(self.values(), dtype=np.int64, count=len(self))
            self._size = len(self)
        pos = self._index.get_indexer(keys.to_numpy(dtype=object))
        found = pos >= 0
        ids = np.where(found, self._ids[np.where(found, pos, 0)] if len(self) else 0, 0)
        return pd.Series(pd.arrays.IntegerArray(ids, ~found), index=keys.index)


class _RecordIndex(ABC):
    """Natural key → row id for one model, kept in step with the rows this job writes.

    A subclass names the model and its key field, loads `ids`, builds new rows (`_build`)
    and selects the stored rows for known keys (`_stored`).
    """

    model: ClassVar[type[Model]]
    key: ClassVar[str]
    max_lengths: ClassVar[Mapping[str, int]] = {}  # applied to values merged into stored rows
    fields: list[str]
    ids: _IdMap

    def lookup(self, keys: Iterable[str]) -> None:  # noqa: B027 (optional hook)
        """Add the ids of stored keys that `ids` does not hold yet (nothing if it holds all)."""

    def upsert(self, frame: pd.DataFrame, status: _KeyStatus) -> None:
        if frame.empty:
            return
        key = self.key
        records = frame.to_dict("records")
        self.lookup(r[key] for r in records)
        new = [r for r in records if r[key] not in self.ids]
        known = {r[key]: r for r in records if r[key] in self.ids}
        if new:
            objs = [self._build(r) for r in new]
            self.model.objects.bulk_create(objs, batch_size=2000)
            for obj in objs:
                self.ids[getattr(obj, key)] = obj.pk
                status.mark(getattr(obj, key), "inserted")
        if known:
            self._update(known, status)

    def _update(self, known: dict[str, dict], status: _KeyStatus) -> None:
        changed: list[Model] = []
        keys = list(known)
        stored = (
            obj
            for start in range(0, len(keys), 900)  # SQLite's bound-variable limit
            for obj in self._stored(keys[start : start + 900])
        )
        for obj in stored:
            key = getattr(obj, self.key)
            if _merge_record(obj, known[key], self.fields, self.max_lengths):
                obj.updated_at = timezone.now()
                changed.append(obj)
                status.mark(key, "updated")
            else:
                status.mark(key, "unchanged")
        if changed:
            self.model.objects.bulk_update(
                changed, [*self.fields, "attributes", "updated_at"], batch_size=1000
            )

    @abstractmethod
    def _build(self, r: dict) -> Model:
        """A new, unsaved row from a cleaned record."""

    @abstractmethod
    def _stored(self, keys: list[str]) -> QuerySet:
        """The stored rows for these keys."""


class _ProductIndex(_RecordIndex):
    """SKU → product id for one catalog, kept in step with the rows this job writes."""

    model = Product
    key = "sku"
    max_lengths = {"title": 500}

    def __init__(self, catalog: Catalog, *, kind: str, mapping: dict) -> None:
        self.catalog = catalog
        self.fields = _mapped(mapping, PRODUCT_FIELDS, kind)
        self.ids = _IdMap(Product.objects.filter(catalog=catalog).values_list("sku", "pk"))

    def _build(self, r: dict) -> Product:
        price = _clean_value("price", r.get("price"))
        in_stock = _clean_value("in_stock", r.get("in_stock"))
        return Product(
            catalog=self.catalog,
            sku=r["sku"],
            title=(r.get("title") or r["sku"])[:500],
            description=r.get("description") or "",
            category=(r.get("category") or "")[:300],
            brand=(r.get("brand") or "")[:200],
            price=price,
            url=r.get("url") or "",
            image_url=r.get("image_url") or "",
            in_stock=True if in_stock is None else bool(in_stock),
            attributes=r.get("attributes") or {},
        )

    def _stored(self, keys: list[str]) -> QuerySet:
        return Product.objects.filter(catalog=self.catalog, sku__in=keys)


class _CustomerIndex(_RecordIndex):
    """External id → customer id, loaded lazily per chunk so big customer tables stay out of RAM.

    Erased customers are never matched, updated or created again: their rows are dropped
    (`suppressed`); a customers file reports them as rejected, without the id.
    """

    model = Customer
    key = "external_id"

    def __init__(self, *, kind: str, mapping: dict) -> None:
        self.fields = _mapped(mapping, CUSTOMER_FIELDS, kind)
        self.ids = _IdMap()
        self.complete = False
        self.kind = kind
        self.suppressed = customer_suppression()
        self._issues: list[Issue] = []

    def upsert(self, frame: pd.DataFrame, status: _KeyStatus) -> None:
        if self.suppressed and not frame.empty:
            keys = frame[self.key]
            self.lookup(keys)
            # Known (live) customers are never suppressed; the rest are hashed once per id.
            erased = self.ids.lookup(keys).isna().to_numpy()
            erased[erased] = self.suppressed.matches(keys.to_numpy(dtype=object)[erased])
            erased = pd.Series(erased, index=frame.index)
            if erased.any():
                if self.kind == Upload.Kind.CUSTOMERS:  # other kinds reject the events instead
                    self._issues.extend(
                        Issue(int(row), "external_id", "", CUSTOMER_ERASED)
                        for row in frame.loc[erased, ROW_COLUMN]
                    )
                frame = frame.loc[~erased]
        super().upsert(frame, status)

    def take_issues(self) -> list[Issue]:
        issues, self._issues = self._issues, []
        return issues

    def preload_all(self) -> None:
        """Load every customer's id at once, so a streaming COPY needs no lookups later."""
        self.ids = _IdMap(
            Customer.objects.filter(erased_at__isnull=True)
            .values_list("external_id", "pk")
            .iterator(chunk_size=50_000)
        )
        self.complete = True

    def lookup(self, external_ids: Iterable[str]) -> None:
        if self.complete:
            return
        missing = [e for e in set(external_ids) if e not in self.ids]
        if not missing:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                # One array parameter: far cheaper to bind than an IN list of 50k strings.
                cur.execute(
                    f"SELECT external_id, id FROM {Customer._meta.db_table} "
                    "WHERE external_id = ANY(%s) AND erased_at IS NULL",
                    [missing],
                )
                self.ids.update(cur.fetchall())
            return
        for start in range(0, len(missing), 900):  # SQLite's bound-variable limit
            part = missing[start : start + 900]
            self.ids.update(
                Customer.objects.filter(external_id__in=part, erased_at__isnull=True).values_list(
                    "external_id", "pk"
                )
            )

    def _build(self, r: dict) -> Customer:
        def flag(name: str) -> bool:
            return _is_true(r.get(name))  # blank or unknown: no consent

        return Customer(
            external_id=r["external_id"],
            email=r.get("email") or "",
            name=(r.get("name") or "")[:200],
            country=(r.get("country") or "")[:100],
            language=(r.get("language") or "")[:8],
            consent_email=flag("consent_email"),
            consent_sms=flag("consent_sms"),
            consent_push=flag("consent_push"),
            consent_ads=flag("consent_ads"),
            attributes=r.get("attributes") or {},
        )

    def _stored(self, keys: list[str]) -> QuerySet:
        return Customer.objects.filter(external_id__in=keys)
