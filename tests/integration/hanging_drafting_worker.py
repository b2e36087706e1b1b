"""A Celery worker whose N-th drafting chunk hangs inside its transaction, for tests that
SIGKILL a worker in the middle of a drafting job, or cut its database there (tests only;
the product has no such switch).

    python -m tests.integration.hanging_drafting_worker -A marketing worker …   (celery's arguments)

Environment: HANG_AT_CHUNK=N — the N-th chunk this process drafts writes its drafts (not
committed), writes the chunk's index to the file HANG_MARKER and sleeps until it is killed;
with HANG_RELEASE set it pauses instead: it waits until that file exists (see
pausing_import_worker.wait_for_release) and goes on. Later chunks do not pause.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.integration.pausing_import_worker import wait_for_release


def _patch() -> None:
    import django

    django.setup()
    from copygen.services import drafting

    at = int(os.environ["HANG_AT_CHUNK"])
    marker = Path(os.environ["HANG_MARKER"])
    release = os.environ.get("HANG_RELEASE")
    original = drafting._draft_chunk
    drafted = {"n": 0}

    def draft_chunk(ctx, chunk):
        original(ctx, chunk)
        drafted["n"] += 1
        if drafted["n"] == at:
            marker.write_text(str(chunk.index))
            if release:
                wait_for_release(Path(release))
                return
            time.sleep(600)  # the test kills the process long before

    drafting._draft_chunk = draft_chunk


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    _patch()
    from celery.__main__ import main

    sys.argv = ["celery", *sys.argv[1:]]
    main()
