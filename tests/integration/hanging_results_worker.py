"""A Celery worker whose campaign results import hangs after writing, before it commits, for
tests that SIGKILL a worker inside the import's transaction (tests only).

    python -m tests.integration.hanging_results_worker -A marketing worker …   (celery's arguments)

Environment: HANG_RESULTS_MARKER — a file the import writes once its rows are written (not
committed); it then sleeps until it is killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _patch() -> None:
    import django

    django.setup()
    from copygen.services import results_import

    marker = Path(os.environ["HANG_RESULTS_MARKER"])
    original = results_import._write_events

    def write_and_hang(*args, **kwargs):
        written = original(*args, **kwargs)
        marker.write_text("written")
        time.sleep(600)  # the test kills the process long before
        return written

    results_import._write_events = write_and_hang


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    _patch()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
