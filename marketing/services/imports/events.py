"""Events: resolve SKUs and customer ids to row ids, then write the rows this catalog lacks.

PostgreSQL gets COPY (`_PostgresEventWriter`, with a bulk mode for large loads); SQLite, the
embedded mode, gets ORM bulk inserts (`_OrmEventWriter`). Both skip keys the file repeats and
keys already stored, so a re-import inserts nothing.
"""

from __future__ import annotations

import io
from contextlib import ExitStack
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from django.db import connection
from psycopg.copy import QueuedLibpqWriter

from marketing.analytics.importing import Issue
from marketing.models import Catalog, Event
from marketing.services.customers import CUSTOMER_ERASED

from .rows import _CustomerIndex, _ProductIndex

EVENT_COLUMNS = (
    "id",
    "catalog_id",
    "customer_id",
    "product_id",
    "kind",
    "quantity",
    "value",
    "rating",
    "text",
    "occurred_at",
    "source",
)


def _resolve_events(
    events: pd.DataFrame,
    products: _ProductIndex,
    customers: _CustomerIndex,
    catalog: Catalog,
) -> tuple[pd.DataFrame, list[Issue]]:
    """Turn SKUs and external ids into row ids; rows naming unknown ones are rejected."""
    if events.empty:
        return events, []
    issues: list[Issue] = []
    out = events
    sku = out["sku"]
    product_id = products.ids.lookup(sku)
    bad_sku = sku.notna() & product_id.isna()
    cust = out["customer"]
    customers.lookup(cust.dropna().unique())
    customer_id = customers.ids.lookup(cust)
    bad_customer = cust.notna() & customer_id.isna()
    for row, value in zip(out.loc[bad_sku, "_row"], sku[bad_sku], strict=True):
        issues.append(
            Issue(int(row), "sku", str(value), f"unknown SKU in catalog '{catalog.name}'")
        )
    erased = customers.suppressed.matches(cust[bad_customer])  # each distinct id hashed once
    rows = zip(out.loc[bad_customer, "_row"], cust[bad_customer], erased, strict=True)
    for row, value, was_erased in rows:
        if was_erased:  # an erased customer: the report must not name them
            issues.append(Issue(int(row), "customer", "", CUSTOMER_ERASED))
        else:
            issues.append(Issue(int(row), "customer", str(value), "unknown customer"))
    keep = ~(bad_sku | bad_customer)
    out = out.loc[keep].copy()
    out["product_id"] = product_id[keep]
    out["customer_id"] = customer_id[keep]
    out["catalog_id"] = catalog.pk
    return out, issues


def _event_writer(catalog: Catalog, *, expected_rows: int, stream: bool) -> _EventWriter:
    if connection.vendor == "postgresql":
        return _PostgresEventWriter(catalog, expected_rows=expected_rows, stream=stream)
    return _OrmEventWriter(catalog)


def _in_sorted(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Membership of ids in a sorted int64 array (binary search; no hashing of either side)."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    # Searching in sorted order walks the haystack forwards: far fewer cache misses than
    # random probes with hash-valued keys.
    order = np.argsort(ids, kind="stable")
    needles = ids[order]
    pos = np.searchsorted(sorted_ids, needles)
    pos[pos >= len(sorted_ids)] = 0
    found = np.empty(len(ids), dtype=bool)
    found[order] = sorted_ids[pos] == needles
    return found


class _EventWriter:
    streaming = False

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.seen = np.empty(0, dtype=np.int64)  # sorted keys this file already produced
        self.inserted = 0
        self.unchanged = 0

    def _new_in_file(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop events whose key this file already produced (same natural key twice)."""
        ids = frame["id"].to_numpy(dtype=np.int64)
        first = ~pd.Series(ids).duplicated().to_numpy() & ~_in_sorted(self.seen, ids)
        self.seen = np.sort(np.concatenate([self.seen, ids[first]]))
        return frame.loc[first]

    def finish(self) -> dict[str, int]:
        return {"inserted": self.inserted, "unchanged": self.unchanged}

    def __enter__(self) -> _EventWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        return None


class _PostgresEventWriter(_EventWriter):
    """COPY straight into the events table, skipping keys already stored.

    Imports into a catalog are serialized by an advisory lock, so checking which keys exist
    and then copying the rest cannot race with another import of the same rows. Rows are
    written once (no staging table, no INSERT … SELECT, no per-row FK triggers).

    A load that is large next to the table (BULK_MIN_ROWS and at least half the table) runs
    in bulk mode: the table is locked, its indexes dropped, the rows copied, and the indexes
    rebuilt by sorting — several times cheaper than growing four B-trees row by row, whose
    random inserts also flood the WAL with full-page images. It all happens inside the
    import's transaction, so a failure restores the indexes with everything else. Readers of
    events wait for the lock during such a load; small, incremental loads never take it.
    """

    BULK_MIN_ROWS = 100_000
    TABLE = "marketing_event"

    def __init__(self, catalog: Catalog, *, expected_rows: int, stream: bool = False) -> None:
        super().__init__(catalog)
        with connection.cursor() as cur:
            cur.execute("SET LOCAL TimeZone = 'UTC'")  # _event_csv writes naive UTC times
        self.copy_stack = ExitStack()
        self.copy = None
        self.bulk = False
        self.want_bulk = False
        self.existing: np.ndarray | None = None
        self.rebuild: list[str] = []
        if expected_rows >= self.BULK_MIN_ROWS:
            with connection.cursor() as cur:
                cur.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [self.TABLE])
                table_rows = max(float(cur.fetchone()[0]), 0.0)
            if expected_rows >= 0.5 * table_rows:
                self.want_bulk = True
                # Keys of this catalog already stored (event ids hash the catalog id, so no
                # other catalog can hold them): deduplication then needs no index at all.
                self.existing = _stored_event_ids(self.catalog.pk)
                # One COPY for the whole file: the server ingests chunk N while Python
                # parses chunk N+1. Only when nothing else must be queried meanwhile.
                self.streaming = stream

    def _enter_bulk_mode(self) -> None:
        """Lock the table and drop its indexes; finish() rebuilds them. Entered lazily, so a
        re-import that adds nothing never touches the indexes."""
        with connection.cursor() as cur:
            cur.execute(f"LOCK TABLE {self.TABLE} IN ACCESS EXCLUSIVE MODE")
            cur.execute(
                """
                SELECT c.conname, pg_get_constraintdef(c.oid)
                FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
                WHERE t.relname = %s AND c.contype IN ('p', 'u')
                """,
                [self.TABLE],
            )
            constraints = cur.fetchall()
            cur.execute(
                """
                SELECT i.indexname, i.indexdef FROM pg_indexes i
                WHERE i.tablename = %s AND NOT EXISTS (
                    SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
                """,
                [self.TABLE],
            )
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            for name, _ in constraints:
                cur.execute(f'ALTER TABLE {self.TABLE} DROP CONSTRAINT "{name}"')
        self.rebuild = [
            f'ALTER TABLE {self.TABLE} ADD CONSTRAINT "{name}" {definition}'
            for name, definition in constraints
        ] + [definition for _, definition in indexes]
        self.bulk = True

    def _drop_existing(self, frame: pd.DataFrame) -> pd.DataFrame:
        ids = frame["id"].to_numpy(dtype=np.int64)
        if self.existing is not None:
            stored = _in_sorted(self.existing, ids)
        else:
            with connection.cursor() as cur:
                # One array literal is far cheaper for the driver than 100k bound integers.
                cur.execute(
                    f"SELECT id FROM {self.TABLE} WHERE id = ANY(%s::bigint[])",
                    ["{" + ",".join(map(str, ids.tolist())) + "}"],
                )
                found = np.fromiter((r[0] for r in cur.fetchall()), dtype=np.int64)
            stored = np.isin(ids, found)
        self.unchanged += int(stored.sum())
        return frame.loc[~stored]

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = self._drop_existing(self._new_in_file(frame))
        if frame.empty:
            return
        if self.want_bulk and not self.bulk:
            self._enter_bulk_mode()
        # Bulk mode rebuilds every index afterwards, so rows go in time order, which keeps the
        # BRIN time index sharp; otherwise key order fills the primary key page by page.
        frame = frame.sort_values("occurred_at" if self.bulk else "id", kind="stable")
        data = _event_csv(frame)
        if self.streaming:
            if self.copy is None:
                self.copy = self._open_copy(self.copy_stack)
            self.copy.write(data)
        else:
            with ExitStack() as stack:
                self._open_copy(stack).write(data)
        self.inserted += len(frame)

    def _open_copy(self, stack: ExitStack):
        cur = stack.enter_context(connection.cursor())
        columns = ", ".join(EVENT_COLUMNS)
        # A queued writer sends from its own thread, so Python prepares the next chunk while
        # the server ingests this one (both cores busy instead of taking turns). The raw
        # psycopg cursor takes the writer; Django's debug wrapper (DEBUG=1) would not.
        raw = cur.cursor
        return stack.enter_context(
            raw.copy(
                f"COPY {self.TABLE} ({columns}) FROM STDIN "
                "WITH (FORMAT csv, FORCE_NOT_NULL (kind, text, source))",
                writer=QueuedLibpqWriter(raw),
            )
        )

    def __exit__(self, *exc_info) -> None:
        # Ends an open COPY; with an exception, psycopg aborts it and the transaction rolls back.
        self.copy_stack.__exit__(*exc_info)

    def finish(self) -> dict[str, int]:
        self.copy_stack.close()
        self.copy = None
        if self.bulk:
            with connection.cursor() as cur:
                cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                for statement in self.rebuild:
                    cur.execute(statement)
                cur.execute(f"ANALYZE {self.TABLE}")
        return super().finish()


def _stored_event_ids(catalog_id: int) -> np.ndarray:
    """All event ids of a catalog, sorted: one bytea of big-endian int64s (1M ids in ~0.2 s)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT string_agg(int8send(id), ''::bytea) FROM marketing_event WHERE catalog_id = %s",
            [catalog_id],
        )
        data = cur.fetchone()[0]
    if not data:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.frombuffer(bytes(data), dtype=">i8").astype(np.int64))


def _event_csv(frame: pd.DataFrame) -> bytes:
    """The rows as CSV for COPY, written by Arrow's C++ writer (about 8x pandas.to_csv).

    Nulls come out as unquoted empty fields (NULL to COPY); strings are quoted, so an empty
    string stays an empty string.
    """
    occurred = frame["occurred_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    rating = frame["rating"] if "rating" in frame else pd.Series(np.nan, index=frame.index)
    columns = {
        "id": pa.array(frame["id"].to_numpy(dtype=np.int64)),
        "catalog_id": pa.array(frame["catalog_id"].to_numpy(dtype=np.int64)),
        "customer_id": pa.array(frame["customer_id"].astype("Int64")),
        "product_id": pa.array(frame["product_id"].astype("Int64")),
        "kind": pa.array(frame["kind"].astype(object), type=pa.string()),
        "quantity": pa.array(frame["quantity"].to_numpy(dtype=np.int64)),
        "value": pa.array(frame["value"].astype(float).round(2), from_pandas=True),
        "rating": pa.array(pd.to_numeric(rating).round().astype("Int64")),
        "text": pa.array(frame["text"].astype(object), type=pa.string()),
        # Naive UTC (the transaction's TimeZone is set to UTC): Arrow formats naive
        # timestamps ten times faster than zoned ones.
        "occurred_at": pa.array(occurred.astype("datetime64[s]")),
        "source": pa.array(frame["source"].astype(object), type=pa.string()),
    }
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


class _OrmEventWriter(_EventWriter):
    """SQLite (embedded mode): bulk inserts that ignore keys already stored."""

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = self._new_in_file(frame)
        ids = frame["id"].tolist()
        existing: set[int] = set()
        for start in range(0, len(ids), 900):
            existing.update(
                Event.objects.filter(pk__in=ids[start : start + 900]).values_list("pk", flat=True)
            )
        objs = []
        for r in frame.itertuples(index=False):
            if r.id in existing:
                continue
            objs.append(
                Event(
                    id=int(r.id),
                    catalog_id=self.catalog.pk,
                    customer_id=None if pd.isna(r.customer_id) else int(r.customer_id),
                    product_id=None if pd.isna(r.product_id) else int(r.product_id),
                    kind=r.kind,
                    quantity=int(r.quantity),
                    value=None if pd.isna(r.value) else Decimal(str(round(float(r.value), 2))),
                    rating=None if pd.isna(r.rating) else int(r.rating),
                    text=r.text or "",
                    occurred_at=_to_datetime(r.occurred_at),
                    source=r.source or "",
                )
            )
        Event.objects.bulk_create(objs, batch_size=2000)
        self.inserted += len(objs)
        self.unchanged += len(existing)


def _to_datetime(value) -> datetime:
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
