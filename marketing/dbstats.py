"""Fresh planner statistics after bulk writes.

A model run writes millions of recommendation rows, a profile refresh a row per customer, a
drafting job a draft per customer. Until the table is analysed, PostgreSQL plans with the
statistics of its old size: the drafting job's "recommendations of these 500 customers"
walked 500k index entries per chunk (0.7 s) instead of 2,500 (15 ms) on a database without
autovacuum, and even with autovacuum the first minutes after a run plan that way.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection, models, transaction

logger = logging.getLogger(__name__)


def analyze_after_commit(*model_classes: type[models.Model]) -> None:
    """ANALYZE the models' tables once the current transaction commits (at once outside
    one). Not inside the transaction: ANALYZE would hold its lock (which blocks another
    ANALYZE, VACUUM and schema changes on the table) until the commit. PostgreSQL only."""
    if connection.vendor != "postgresql":
        return
    tables = [m._meta.db_table for m in model_classes]
    transaction.on_commit(lambda: analyze_tables(tables))


def analyze_tables(tables: list[str]) -> None:
    """ANALYZE each table now; a failure only costs plan quality, so it is logged."""
    for table in tables:
        try:
            # Its own (sub)transaction: a failure must not poison a caller's transaction.
            with transaction.atomic(), connection.cursor() as cursor:
                # Only our own models' table names are interpolated.
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        except DatabaseError as exc:
            logger.warning("could not analyse %s: %s", table, type(exc).__name__)
