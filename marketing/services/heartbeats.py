"""Worker heartbeats: each Celery worker says "alive" in the cache every 30 s.

Jobs carry a heartbeat of their own (`Job.heartbeat_at`), but only while one runs, and not at
all on SQLite; an idle worker and a dead one look the same there. So every worker process
starts a daemon thread when it is ready (`marketing.signals`) that writes the time under its
name to the Django cache, the store web and workers already share for job progress (a file
cache in DATA_DIR in embedded mode, Redis in production), and removes it on a warm shutdown.
A thread rather than a Celery timer: the embedded worker runs the solo pool, whose event loop
is blocked while a task runs, and a busy worker must not look dead. No beat scheduler needed.

On PostgreSQL the same thread also sweeps, every `JOB_STALE_AFTER_S`, for jobs whose worker
died on another machine (their job heartbeat went stale) and queues them again.

A worker that died stops beating; its entry stays for `HEARTBEAT_KEEP_S`, growing older, so
the health endpoint shows which worker went quiet and when.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import close_old_connections

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 30.0
# Three missed beats: the worker is presumed dead (or cut off from the cache).
HEARTBEAT_STALE_S = 3 * HEARTBEAT_EVERY_S
# How long a silent worker stays listed before its entry expires.
HEARTBEAT_KEEP_S = 3600

_INDEX_KEY = "workers:heartbeat-index"


def _key(name: str) -> str:
    return f"workers:heartbeat:{name}"


@dataclass(frozen=True)
class WorkerBeat:
    name: str
    last_heartbeat_s: float

    @property
    def alive(self) -> bool:
        return self.last_heartbeat_s <= HEARTBEAT_STALE_S


def worker_heartbeat_beat(*, name: str, now: float | None = None) -> None:
    """Record one beat of worker ``name`` and keep it in the index of known workers.

    Each worker owns its own key, so concurrent beats never overwrite each other. The index
    is a read-modify-write shared by all workers: a name lost to a race comes back with that
    worker's next beat, and names whose entry expired are dropped here.
    """
    cache.set(_key(name), time.time() if now is None else now, timeout=HEARTBEAT_KEEP_S)
    names = list(cache.get(_INDEX_KEY) or [])
    present = cache.get_many([_key(n) for n in names]) if names else {}
    keep = [n for n in names if _key(n) in present]
    if name not in keep:
        keep.append(name)
    if keep != names:
        cache.set(_INDEX_KEY, keep, timeout=None)


def worker_heartbeat_forget(*, name: str) -> None:
    """Remove a worker that stops on purpose (warm shutdown) from the list."""
    cache.delete(_key(name))
    names = list(cache.get(_INDEX_KEY) or [])
    if name in names:
        names.remove(name)
        cache.set(_INDEX_KEY, names, timeout=None)


def worker_heartbeats(*, now: float | None = None) -> list[WorkerBeat]:
    """Every worker that beat within HEARTBEAT_KEEP_S, freshest first."""
    names = list(cache.get(_INDEX_KEY) or [])
    if not names:
        return []
    beats = cache.get_many([_key(n) for n in names])
    now = time.time() if now is None else now
    found = [
        WorkerBeat(name=n, last_heartbeat_s=round(max(0.0, now - beats[_key(n)]), 1))
        for n in names
        if isinstance(beats.get(_key(n)), int | float)
    ]
    return sorted(found, key=lambda beat: (beat.last_heartbeat_s, beat.name))


class _Beater:
    """The thread that beats for this process; one per process. With ``sweep``, it also calls
    that every ``sweep_every_s`` (the first time one interval after start)."""

    def __init__(
        self,
        name: str,
        every_s: float,
        sweep: Callable[[], object] | None = None,
        sweep_every_s: float = 0.0,
    ) -> None:
        self.name = name
        self.every_s = every_s
        self.sweep = sweep
        self.sweep_every_s = sweep_every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.run, daemon=True, name=f"worker-heartbeat-{name}"
        )

    def run(self) -> None:
        next_sweep = time.monotonic() + self.sweep_every_s
        while True:
            try:
                worker_heartbeat_beat(name=self.name)
            except Exception as exc:  # a cache that is down must not kill the thread
                logger.warning("worker heartbeat not written: %s", type(exc).__name__)
            if self.sweep is not None and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.sweep_every_s
                try:
                    self.sweep()
                except Exception as exc:  # nor a database that is down
                    logger.warning("lost-job sweep failed: %s", type(exc).__name__)
                finally:
                    close_old_connections()
            if self.stop.wait(min(self.every_s, self.sweep_every_s or self.every_s)):
                return


_lock = threading.Lock()
_beater: _Beater | None = None


def worker_heartbeat_start(
    *,
    name: str,
    every_s: float = HEARTBEAT_EVERY_S,
    sweep: Callable[[], object] | None = None,
    sweep_every_s: float = 0.0,
) -> None:
    """Start beating for this process as ``name`` (a second call changes nothing).

    ``sweep`` runs in the same thread every ``sweep_every_s``: the worker's periodic look for
    jobs whose worker died elsewhere (see `marketing.signals`), so a lost machine's job does
    not wait for some worker to start.
    """
    global _beater
    with _lock:
        if _beater is not None and _beater.thread.is_alive():
            return
        _beater = _Beater(name, every_s, sweep, sweep_every_s if sweep else 0.0)
        _beater.thread.start()


def worker_heartbeat_stop() -> None:
    """Stop beating and leave the list (warm shutdown); nothing to do when not started."""
    global _beater
    with _lock:
        beater, _beater = _beater, None
    if beater is None:
        return
    beater.stop.set()
    beater.thread.join(timeout=5)
    try:
        worker_heartbeat_forget(name=beater.name)
    except Exception as exc:
        logger.warning("worker heartbeat not removed: %s", type(exc).__name__)
