"""Imports: store an upload, then (in a job) parse, clean, validate and write it in one transaction.

The pure work (formats, mapping, cleaning, event keys) lives in marketing.analytics.importing;
this package translates its frames into rows. Everything a job writes happens inside one
transaction, so a failed, cancelled or killed import leaves the database as it was, and the
natural keys (SKU per catalog, customer external id, event hash) make a re-import change nothing.

- `uploads`: store and sniff a file, start the job (`upload_create`, `import_start`).
- `run`: the job itself (`import_run`), one transaction from first chunk to commit.
- `filejob`: the job skeleton every file import shares (`file_job_run`: claim, heartbeat,
  final state, report), with the catalog's import lock; the campaign results import uses it too.
- `rows`: product and customer upserts by natural key.
- `events`: resolve references and write events (COPY on PostgreSQL, ORM on SQLite).
- `report`: the rejected-rows CSV attached to the job.

The names below stay importable from here as before. To monkeypatch a module-level name, patch
it in the module that uses it (e.g. `imports.run.lock_catalog`): rebinding it here changes
nothing for that code. Class attributes (`_PostgresEventWriter.BULK_MIN_ROWS`) can be patched
through either path.
"""

from marketing.analytics.importing import Cleaner

from .events import EVENT_COLUMNS, _PostgresEventWriter
from .filejob import lock_catalog
from .report import REPORT_HEADER
from .rows import CUSTOMER_FIELDS, PRODUCT_FIELDS
from .run import import_run
from .uploads import import_start, upload_create, upload_from_path

__all__ = [
    "CUSTOMER_FIELDS",
    "EVENT_COLUMNS",
    "PRODUCT_FIELDS",
    "REPORT_HEADER",
    "Cleaner",
    "_PostgresEventWriter",
    "import_run",
    "import_start",
    "lock_catalog",
    "upload_create",
    "upload_from_path",
]
