"""GET /health/: is the database, the job queue and a worker there? For load balancers and
uptime monitors, so public; it names no host, user or setting.

200 while the database answers ("ok", or "degraded" when the broker is unreachable or no
worker beat within HEARTBEAT_STALE_S: pages work, jobs wait); 503 when it does not ("down").
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu import Connection

from marketing.services.heartbeats import worker_heartbeats

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 2.0


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def database_check() -> dict[str, Any]:
    start = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("health: database unreachable (%s)", type(exc).__name__)
        return {"ok": False, "latency_ms": None, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": _elapsed_ms(start)}


def broker_check() -> dict[str, Any]:
    """Connect to the broker once (no retries) within BROKER_TIMEOUT_S.

    The answer names the transport only: the URL may hold a password.
    """
    url = settings.CELERY_BROKER_URL
    transport = url.split("://", 1)[0] or "unknown"
    start = time.perf_counter()
    if transport == "filesystem":
        # Embedded mode: the "broker" is a folder in DATA_DIR that web and worker share.
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", "")
        ok = bool(folder) and os.access(folder, os.W_OK)
        return {
            "ok": ok,
            "latency_ms": _elapsed_ms(start),
            "transport": "filesystem",
            "embedded": True,
        }
    options = {"socket_timeout": BROKER_TIMEOUT_S, "socket_connect_timeout": BROKER_TIMEOUT_S}
    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT_S, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, interval_start=0, timeout=BROKER_TIMEOUT_S)
    except Exception as exc:  # kombu and its clients raise many types for one outage
        logger.warning("health: broker unreachable (%s)", type(exc).__name__)
        return {
            "ok": False,
            "latency_ms": None,
            "transport": transport,
            "error": type(exc).__name__,
        }
    return {"ok": True, "latency_ms": _elapsed_ms(start), "transport": transport}


def workers_check() -> list[dict[str, Any]] | None:
    """Workers that beat lately, or None when the cache holding the beats cannot be read."""
    try:
        beats = worker_heartbeats()
    except Exception as exc:
        logger.warning("health: worker heartbeats unreadable (%s)", type(exc).__name__)
        return None
    return [{"name": b.name, "last_heartbeat_s": b.last_heartbeat_s, "ok": b.alive} for b in beats]


@login_not_required
@require_safe
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    database = database_check()
    broker = broker_check()
    workers = workers_check()
    if not database["ok"]:
        status = "down"
    elif broker["ok"] and workers and any(w["ok"] for w in workers):
        status = "ok"
    else:
        status = "degraded"
    body = {"status": status, "database": database, "broker": broker, "workers": workers or []}
    if workers is None:
        body["workers_error"] = "heartbeats unreadable"
    return JsonResponse(body, status=503 if status == "down" else 200)
