"""A Celery worker whose N-th customer batch hangs inside its transaction, for tests that
SIGKILL a worker in the middle of scoring (tests only; the product has no such switch).

    python -m tests.integration.hanging_worker -A marketing worker …   (celery's arguments)

Environment: HANG_AT_BATCH=N — the N-th batch this process scores writes its rows (not
committed), writes its index to the file HANG_MARKER and sleeps until it is killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _patch() -> None:
    import django

    django.setup()
    from recommendations.services import runs

    at = int(os.environ["HANG_AT_BATCH"])
    marker = Path(os.environ["HANG_MARKER"])
    original = runs._score_batch
    write = runs.recommendations_write
    scored = {"n": 0}

    def score_batch(run, index, worker):
        scored["n"] += 1
        if scored["n"] != at:
            return original(run, index, worker)

        def write_and_hang(**kwargs):
            written = write(**kwargs)
            marker.write_text(str(index))
            time.sleep(600)  # the test kills the process long before
            return written

        runs.recommendations_write = write_and_hang
        return original(run, index, worker)

    runs._score_batch = score_batch


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    _patch()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
