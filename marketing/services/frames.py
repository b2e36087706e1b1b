"""Reading query results into pandas fast: the shared reader of the jobs that analyse data
(profile refresh, learned segments, recommendation runs)."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.csv as pacsv
from django.db import connection
from django.db.models import QuerySet


def query_frame(rows: QuerySet, columns: list[str], types: dict) -> pd.DataFrame:
    """A values_list queryset's rows as a frame (columns still to be typed by the caller).

    On PostgreSQL the query's own SQL (filters and ordering included) runs as
    `COPY (…) TO STDOUT` in CSV and Arrow parses it: about 1 s for 1M events, where ORM
    tuples took 9 s. Elsewhere, ORM tuples. `types` are Arrow types for the CSV columns.
    """
    if connection.vendor != "postgresql":
        return pd.DataFrame.from_records(list(rows.iterator(chunk_size=10_000)), columns=columns)
    sql, params = rows.query.sql_with_params()
    buffer = io.BytesIO()
    statement = f"COPY ({sql}) TO STDOUT (FORMAT csv)"
    with connection.cursor() as cursor, cursor.cursor.copy(statement, params) as copy:
        for block in copy:
            buffer.write(block)
    if not buffer.tell():  # no rows: Arrow refuses an empty file; same frame as the ORM's
        return pd.DataFrame.from_records([], columns=columns)
    table = pacsv.read_csv(
        io.BytesIO(buffer.getbuffer()),
        read_options=pacsv.ReadOptions(column_names=columns),
        # Quoted values may hold line breaks; NULL (unquoted empty) and "" both become "".
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types, true_values=["t"], false_values=["f"]
        ),
    )
    return table.to_pandas()
