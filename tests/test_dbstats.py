"""Planner statistics after bulk writes (marketing/dbstats.py)."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketing.dbstats import analyze_after_commit, analyze_tables
from marketing.models import Customer, Event

pytestmark = pytest.mark.django_db


def _analyses(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].upper().startswith("ANALYZE")]


def test_tables_are_analysed_once_the_transaction_commits(django_capture_on_commit_callbacks):
    if connection.vendor != "postgresql":
        pytest.skip("the embedded database is not analysed")
    with (
        django_capture_on_commit_callbacks() as callbacks,
        CaptureQueriesContext(connection) as queries,
    ):
        analyze_after_commit(Customer, Event)
    assert _analyses(queries) == []  # not inside the transaction: it would hold the lock
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    assert _analyses(queries) == ['ANALYZE "marketing_customer"', 'ANALYZE "marketing_event"']


def test_a_failed_analysis_is_logged_and_the_next_table_still_analysed(caplog):
    if connection.vendor != "postgresql":
        pytest.skip("the embedded database is not analysed")
    with (
        caplog.at_level(logging.WARNING, logger="marketing.dbstats"),
        CaptureQueriesContext(connection) as queries,
    ):
        analyze_tables(["no_such_table", "marketing_customer"])
    assert "could not analyse no_such_table: ProgrammingError" in caplog.text
    assert 'ANALYZE "marketing_customer"' in _analyses(queries)
