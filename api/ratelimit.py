"""Per-token rate limits: fixed one-minute windows counted in Django's cache.

On Redis (production's cache) a window's counter is one atomic INCR; other caches create it
with ``add`` and bump it with ``incr`` (the embedded file cache may lose a count under heavy
concurrency, which only makes the limit a little lenient). Keys name the token by the start of
its digest (not its row id), so several databases sharing one cache never share counters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

WINDOW_S = 60


@dataclass(frozen=True)
class RateResult:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int  # seconds until the window resets

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.retry_after_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def _now() -> float:
    return time.time()


def _count(cache_key: str) -> int:
    """Add one to the window's counter and return it.

    On Redis one round trip (INCR and EXPIRE in a pipeline; Django's RedisCache stores
    integers as plain Redis integers); other caches use add() then incr().
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        key = backend.make_and_validate_key(cache_key)
        client = backend._cache.get_client(key, write=True)
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_S * 2)
            count, _ = pipe.execute()
        return int(count)
    if cache.add(cache_key, 1, timeout=WINDOW_S * 2):
        return 1
    try:
        return cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=WINDOW_S * 2)
        return 1


def rate_hit(*, key: str, bucket: str, limit: int) -> RateResult:
    """Count one request of ``key`` in ``bucket`` ("read" / "write"); allowed while the
    window's count stays within ``limit``."""
    now = _now()
    window = int(now // WINDOW_S)
    count = _count(f"api:rate:{bucket}:{key}:{window}")
    retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
    return RateResult(
        allowed=count <= limit,
        limit=limit,
        remaining=max(0, limit - count),
        retry_after_s=retry_after,
    )
