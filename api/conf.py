"""The API's settings: from Django settings when set there (tests override them), else from
the environment through marketing.env's typed readers (which fail loudly on bad values).

| setting / env var | default | meaning |
| --- | --- | --- |
| API_RATE_READ_PER_MIN | 600 | GET requests per token and minute |
| API_RATE_WRITE_PER_MIN | 60 | POST /events requests per token and minute |
| API_EVENTS_MAX_BYTES | 5 MB | largest body POST /events reads (413 past it) |
| API_EVENTS_MAX_LINES | 10000 | most lines in one POST /events (413 past it) |
| API_PAGE_SIZE_DEFAULT / API_PAGE_SIZE_MAX | 50 / 100 | `limit` of list endpoints |
"""

from __future__ import annotations

from django.conf import settings

from marketing.env import env_int

_DEFAULTS: dict[str, tuple[int, int]] = {  # name -> (default, minimum)
    "API_RATE_READ_PER_MIN": (600, 1),
    "API_RATE_WRITE_PER_MIN": (60, 1),
    "API_EVENTS_MAX_BYTES": (5 * 1024 * 1024, 1),
    "API_EVENTS_MAX_LINES": (10_000, 1),
    "API_PAGE_SIZE_DEFAULT": (50, 1),
    "API_PAGE_SIZE_MAX": (100, 1),
}
_FROM_ENV: dict[str, int] = {}


def check() -> None:
    """Read every variable from the environment now (ImproperlyConfigured on a bad one)."""
    for name, (default, minimum) in _DEFAULTS.items():
        _FROM_ENV[name] = env_int(name, default, minimum=minimum)


def get(name: str) -> int:
    value = getattr(settings, name, None)
    if value is not None:
        return int(value)
    if name not in _FROM_ENV:
        check()
    return _FROM_ENV[name]
