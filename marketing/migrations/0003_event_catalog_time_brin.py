"""Events by catalog and time: BRIN on PostgreSQL, B-tree elsewhere.

A B-tree on (catalog_id, occurred_at) costs as much to maintain as the primary key on bulk
loads (one catalog is one long run of equal keys); a BRIN index is a few pages and keeps up
with time-ordered loads for free, which is what dashboards' date-range scans need.
"""

from django.db import migrations

NAME = "event_catalog_time"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {NAME} ON marketing_event USING brin (catalog_id, occurred_at)"
        )
    else:
        schema_editor.execute(f"CREATE INDEX {NAME} ON marketing_event (catalog_id, occurred_at)")


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")


class Migration(migrations.Migration):
    dependencies = [("marketing", "0002_roles")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RemoveIndex(model_name="event", name=NAME),
                migrations.RunPython(create, drop),
            ],
            state_operations=[migrations.RemoveIndex(model_name="event", name=NAME)],
        )
    ]
