"""`make run`: migrate, load the demo, then run the web server and a Celery worker together.

Embedded mode needs no server: SQLite and a filesystem broker live in DATA_DIR. A worker that
dies is restarted (a few times a minute at most); when the web server dies, everything stops
with a non-zero exit. Ctrl-C stops both processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# A worker may die this many times within WORKER_RESTART_WINDOW_S; one more death ends the run.
WORKER_MAX_RESTARTS = 5
WORKER_RESTART_WINDOW_S = 60.0
WORKER_BACKOFF_S = (1, 2, 4, 8, 15)


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


def start_worker() -> subprocess.Popen:
    # CELERY_SKIP_CHECKS: a worker that runs Django's system checks at start imports every
    # view and the science libraries (about 252 MB instead of 59 MB before its first job).
    # `manage.py migrate` above has run the checks already.
    return subprocess.Popen(
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
        env={**os.environ, "CELERY_SKIP_CHECKS": "1"},
    )


def start_web(host: str, port: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "manage.py", "runserver", f"{host}:{port}", "--noreload"], cwd=ROOT
    )


def say(text: str) -> None:
    print(f"[run] {text}", file=sys.stderr, flush=True)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def supervise(
    start_web: Callable[[], subprocess.Popen],
    start_worker: Callable[[], subprocess.Popen],
    *,
    poll_s: float = 0.5,
    max_restarts: int = WORKER_MAX_RESTARTS,
    window_s: float = WORKER_RESTART_WINDOW_S,
    backoff_s: tuple[float, ...] = WORKER_BACKOFF_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run both processes until Ctrl-C (0), the web server dies (1) or the worker keeps dying (1).

    Without a worker, jobs would wait forever while the site looks fine, so a dead worker is
    restarted after a growing pause. Too many deaths in a minute stop everything instead.
    """
    web = start_web()
    worker = start_worker()
    deaths: deque[float] = deque()
    restart_at: float | None = None
    try:
        while True:
            if (code := web.poll()) is not None:
                say(f"the web server exited (code {code}); stopping the worker")
                return 1
            now = clock()
            if restart_at is None and (code := worker.poll()) is not None:
                deaths.append(now)
                while deaths and deaths[0] < now - window_s:
                    deaths.popleft()
                if len(deaths) > max_restarts:
                    say(
                        f"the Celery worker exited (code {code}) {len(deaths)} times within "
                        f"{window_s:.0f}s; stopping. Its log above says why."
                    )
                    return 1
                pause = backoff_s[min(len(deaths), len(backoff_s)) - 1]
                say(f"the Celery worker exited (code {code}); restarting it in {pause:g}s")
                restart_at = now + pause
            if restart_at is not None and now >= restart_at:
                worker = start_worker()
                restart_at = None
            sleep(poll_s)
    except KeyboardInterrupt:
        return 0
    finally:
        stop([web, worker])


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # `kill <pid>` stops the children as Ctrl-C does


def main() -> int:
    # The data dir holds the SQLite database (customer data), uploads and the secret key:
    # everything this run creates is private to its user.
    os.umask(0o077)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("seed_demo")
    print(
        f"\nTailor is running at http://{host}:{port}/  (Ctrl-C stops the web server and the worker)\n",
        flush=True,
    )
    return supervise(lambda: start_web(host, port), start_worker)


if __name__ == "__main__":
    sys.exit(main())
