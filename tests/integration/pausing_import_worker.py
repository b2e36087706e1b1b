"""A Celery worker whose first import pauses inside its transaction at the N-th chunk until the
test lets it go on, so a test can cut the database at a known point (tests only; the product
has no such switch).

    python -m tests.integration.pausing_import_worker -A marketing worker …   (celery's arguments)

Environment: PAUSE_AT_CHUNK=N — when this process cleans its N-th chunk (the earlier chunks are
written, not committed), it creates the file PAUSE_MARKER and waits until the file
PAUSE_RELEASE exists (60 s at most). Later chunks and later attempts do not pause.

`wait_for_release` is the pause itself; the hanging export and drafting workers pause with it
too (their HANG_RELEASE).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

RELEASE_TIMEOUT_S = 60


def wait_for_release(release: Path) -> None:
    """Block until the test creates the file `release`: RELEASE_TIMEOUT_S at most, so a test
    that failed before letting the worker go on does not leave it paused for good."""
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


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
            wait_for_release(release)
        return original(cleaner, frame)

    Cleaner.clean = clean


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    _patch()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
