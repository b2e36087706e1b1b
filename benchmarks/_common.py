"""What the database benchmarks share: their own database, setting Django up, the load."""

from __future__ import annotations

import os
from urllib.parse import urlparse


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` unless it exists."""
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
    import django

    django.setup()


def bench_url(url: str, database: str | None, suffix: str) -> str:
    """``url`` pointing at the benchmark's own database: ``database``, else the name in
    ``url`` plus ``suffix`` (``_bench_load``), so a benchmark never fills the app's."""
    parts = urlparse(url)
    name = database or parts.path.lstrip("/") + suffix
    return parts._replace(path="/" + name).geturl()


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages, for the figures' context."""
    return [round(x, 2) for x in os.getloadavg()]
