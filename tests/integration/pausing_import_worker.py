"""A Celery worker whose first import pauses inside its transaction at the N-th chunk until the
test lets it go on, so a test can cut the database at a known point (tests only; the product
has no such switch).

    python -m tests.integration.pausing_import_worker -A marketing worker …   (celery's arguments)

Environment: PAUSE_AT_CHUNK=N — when this process cleans its N-th chunk (the earlier chunks are
written, not committed), it creates the file PAUSE_MARKER and waits until the file
PAUSE_RELEASE exists (60 s at most). Later chunks and later attempts do not pause.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _patch() -> None:
    import django

    django.setup()
    from marketing.analytics.importing import Cleaner

    at = int(os.environ["PAUSE_AT_CHUNK"])
    marker, release = Path(os.environ["PAUSE_MARKER"]), Path(os.environ["PAUSE_RELEASE"])
    original = Cleaner.clean
    cleaned = {"n": 0}

    def clean(cleaner, frame):
        cleaned["n"] += 1
        if cleaned["n"] == at:
            marker.touch()
            deadline = time.monotonic() + 60
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return original(cleaner, frame)

    Cleaner.clean = clean


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    _patch()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
