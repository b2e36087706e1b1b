"""Customer search on PostgreSQL: trigram indexes for the list's free-text search.

The customer list matches ``q`` anywhere in the external id, name, email or country
(``icontains``: ``UPPER(col::text) LIKE UPPER('%q%')``). Without an index that is two
sequential scans of the whole table per search (rows and count): ~200 ms at 165k customers,
in parallel workers that take the CPU other requests need. One GIN trigram index per column
on exactly that expression lets PostgreSQL answer with a BitmapOr of the four (queries of
three characters or more). pg_trgm ships with PostgreSQL and is a trusted extension (13+),
so the database's owner may create it. SQLite keeps scanning: nothing to do there.
"""

from django.db import migrations

COLUMNS = ("external_id", "name", "email", "country")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS customer_{column}_trgm ON marketing_customer "
            f"USING gin (upper({column}::text) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS customer_{column}_trgm")


class Migration(migrations.Migration):
    dependencies = [("marketing", "0014_event_review_index")]

    operations = [migrations.RunPython(create, drop)]
