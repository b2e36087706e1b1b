"""A Celery worker whose first export hangs part way, for tests that SIGKILL a worker in the
middle of an export, or cut its database there (tests only; the product has no such switch).

    python -m tests.integration.hanging_export_worker -A marketing worker …   (celery's arguments)

Environment: HANG_EXPORT_AT — "writing": once HANG_EXPORT_ROWS rows are in the temp file
(flushed to disk; the streamed query's transaction is open); "finishing": in the final
transaction, with the recipients written and the file moved into place, just before the job
succeeds (nothing committed). Either way the process writes the path of that file to the
file HANG_MARKER and sleeps until it is killed; with HANG_RELEASE set it pauses instead:
it waits until that file exists (see pausing_import_worker.wait_for_release) and goes on.
Attempts after the release do not pause (the file exists).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.integration.pausing_import_worker import wait_for_release


def _hang(marker: Path, path: str) -> None:
    marker.write_text(path)
    release = os.environ.get("HANG_RELEASE")
    if release:
        wait_for_release(Path(release))
        return
    time.sleep(600)  # the test kills the process long before


def _patch() -> None:
    import django

    django.setup()
    from copygen.models import export_storage
    from copygen.services import exports

    at = os.environ["HANG_EXPORT_AT"]
    marker = Path(os.environ["HANG_MARKER"])
    if at == "writing":
        rows = int(os.environ["HANG_EXPORT_ROWS"])
        open_writer = exports.open_writer

        def hanging_writer(preset, fileobj, **kwargs):
            writer = open_writer(preset, fileobj, **kwargs)
            write, written = writer.write, {"n": 0}

            def write_and_hang(record) -> None:
                write(record)
                written["n"] += 1
                if written["n"] == rows:
                    fileobj.flush()
                    _hang(marker, fileobj.name)

            writer.write = write_and_hang
            return writer

        exports.open_writer = hanging_writer
    elif at == "finishing":
        job_succeed = exports.job_succeed

        def hang_before_success(*, job_id: int, result: dict, **kwargs):
            directory = export_storage().location
            prefix = f"export-{result['export_id']}."
            (placed,) = [f for f in os.listdir(directory) if f.startswith(prefix)]
            _hang(marker, os.path.join(directory, placed))
            return job_succeed(job_id=job_id, result=result, **kwargs)

        exports.job_succeed = hang_before_success
    else:
        raise SystemExit(f"HANG_EXPORT_AT: unknown {at!r}")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    _patch()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
