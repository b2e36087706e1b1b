"""`make run`: migrate, load the demo, then run the web server and a Celery worker together.

Embedded mode needs no server: SQLite and a filesystem broker live in DATA_DIR. Ctrl-C stops
both processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("seed_demo")
    worker = subprocess.Popen(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "marketing",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            "tailor@%h",
        ],
        cwd=ROOT,
    )
    web = subprocess.Popen([PY, "manage.py", "runserver", f"{host}:{port}", "--noreload"], cwd=ROOT)
    print(
        f"\nTailor is running at http://{host}:{port}/  (Ctrl-C stops the web server and the worker)\n",
        flush=True,
    )
    procs = [web, worker]
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
