"""API read latency: a page of 100 approved drafts, p50 / p95 / max over 300 requests.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tailor_bench \\
        .venv/bin/python benchmarks/api.py [--drafts 10000] [--requests 300] [--redis URL]

Works in its own database (DATABASE_URL's name plus ``_bench_api``, or ``--database``),
created and migrated if missing. ``measure_api`` seeds a catalog "API benchmark" there once
(reused by later runs of at least the same size): ``--drafts`` customers, each with one
approved email draft about 3 of 200 products, all in one brief, and consenting to email. A
marketer-role user gets a fresh token (content:read) per run.

What is timed: ``GET /api/v1/briefs/<id>/content?limit=100`` through Django's test
``Client`` in this process, following each page's ``next`` URL and starting again at the
first page after the last, so the requests cover every depth of the list. The Client runs the
whole Django stack (middleware, URL routing, token lookup, the user's permission check, the
rate-limit counter in the cache, the view's queries, JSON encoding) but no network and no
WSGI server: it is the server time the application controls. ``--warmup`` requests first
(default 10), then ``--requests`` timed ones (``perf_counter`` around ``client.get``); every
answer must be 200 with 100 rows. The rate limit is raised for the run (``API_RATE_READ_PER_MIN``)
so that it counts but never refuses. With ``--redis URL`` the cache (and so the rate-limit
counter) is Redis, as in production; otherwise the configured cache (a file cache in
DATA_DIR by default).

``export.py`` (or any script that already called ``django.setup()`` on a migrated database)
can call ``measure_api(drafts=..., requests=...)``: it seeds its own catalog in that
database. Import it as ``from benchmarks.api import measure_api`` with the project root on
sys.path (``import api`` is the Django app).

Prints p50, p95 and max (wall clock), the CPU time this process spent per request (p50 /
p95: the Python side without PostgreSQL's and Redis's own time, and without waiting for a
core, which on a busy machine is most of the difference), the queries of one request and
the load average before and after. The last line is JSON {"api_p95_ms", "api_p50_ms",
"api_max_ms", "api_cpu_p50_ms", "api_cpu_p95_ms", "requests", "page_size", "drafts",
"queries_per_request", "cache", "load_avg_before", "load_avg"}; the same goes to
``--json``. Target: p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts benchmarks/ first on sys.path, where this file would shadow the
# Django app `api`: take it off, and import the shared helpers as benchmarks._common.
_HERE = str(Path(__file__).resolve().parent)
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CATALOG_NAME = "API benchmark"
BRIEF_NAME = "API benchmark brief"
BENCH_USER = "bench-api-marketer"
PRODUCTS = 200
PRODUCTS_PER_DRAFT = 3
PAGE_SIZE = 100


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def seed(drafts: int):
    """The benchmark's brief with at least ``drafts`` approved drafts (created once)."""
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from copygen.models import Brief, Draft
    from marketing.models import Catalog, Customer, Product, Segment

    catalog, _ = Catalog.objects.get_or_create(name=CATALOG_NAME, defaults={"currency": "EUR"})
    segment, _ = Segment.objects.get_or_create(
        catalog=catalog, kind=Segment.Kind.RULE, name="API benchmark segment"
    )
    brief, _ = Brief.objects.get_or_create(
        catalog=catalog,
        name=BRIEF_NAME,
        defaults={"segment": segment, "channel": "email", "locales": ["en"]},
    )
    have = Draft.objects.filter(brief=brief, status=Draft.Status.APPROVED).count()
    if have >= drafts:
        print(f"reusing {have:,} approved drafts", flush=True)
        return brief
    start = time.perf_counter()
    with transaction.atomic():
        if Product.objects.filter(catalog=catalog).count() < PRODUCTS:
            Product.objects.filter(catalog=catalog).delete()
            Product.objects.bulk_create(
                Product(
                    catalog=catalog,
                    sku=f"APIB-{i:04d}",
                    title=f"Benchmark product {i}",
                    price=Decimal(5 + i % 50),
                    url=f"https://shop.example/p/{i}",
                    image_url=f"https://shop.example/p/{i}.jpg",
                )
                for i in range(PRODUCTS)
            )
        product_ids = list(
            Product.objects.filter(catalog=catalog).order_by("pk").values_list("pk", flat=True)
        )
        Draft.objects.filter(brief=brief).delete()
        existing = set(
            Customer.objects.filter(external_id__startswith="apib-").values_list(
                "external_id", flat=True
            )
        )
        Customer.objects.bulk_create(
            (
                Customer(external_id=f"apib-{i:07d}", consent_email=True)
                for i in range(drafts)
                if f"apib-{i:07d}" not in existing
            ),
            batch_size=5000,
        )
        customers = list(
            Customer.objects.filter(external_id__startswith="apib-")
            .order_by("external_id")
            .values_list("pk", flat=True)[:drafts]
        )
        fields = {
            "subject": "Something new for you",
            "preheader": "Three products picked for you from this week's new arrivals.",
            "body": "Hi there,\n\nWe picked these for you. Take a look.\n\nSee you soon.",
            "cta": "Shop now",
        }
        now = timezone.now()
        Draft.objects.bulk_create(
            (
                Draft(
                    brief=brief,
                    catalog=catalog,
                    audience_key=f"customer:{pk}",
                    customer_id=pk,
                    locale="en",
                    variant=1,
                    channel="email",
                    tone="friendly",
                    fields=fields,
                    product_ids=[
                        product_ids[(i * 7 + j) % len(product_ids)]
                        for j in range(PRODUCTS_PER_DRAFT)
                    ],
                    status=Draft.Status.APPROVED,
                    reviewed_at=now,
                )
                for i, pk in enumerate(customers)
            ),
            batch_size=2000,
        )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {len(customers):,} approved drafts in {time.perf_counter() - start:.1f} s")
    return brief


def bench_secret() -> str:
    from django.contrib.auth.models import Group, User

    from api.models import Scope
    from api.services.tokens import token_create

    user, _ = User.objects.get_or_create(username=BENCH_USER)
    user.groups.add(Group.objects.get(name="marketer"))
    return token_create(
        user=user, name="benchmark", scopes=[Scope.CONTENT_READ], catalog=None
    ).secret


def measure_api(*, drafts: int = 10_000, requests: int = 300, warmup: int = 10) -> dict:
    """Seed (once) and time ``requests`` GETs of a page of 100; Django must be set up."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    brief = seed(drafts)
    secret = bench_secret()
    settings.API_RATE_READ_PER_MIN = 10 * (requests + warmup) + 1000  # counted, never refused
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    first = reverse("api:brief-content", args=[brief.pk]) + f"?limit={PAGE_SIZE}"
    url = first

    cpu: list[float] = []

    def fetch() -> float:
        nonlocal url
        start, start_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        elapsed = (time.perf_counter() - start) * 1000
        cpu.append((time.process_time() - start_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: {response.status_code} {response.content[:300]!r}")
        data = response.json()
        if len(data["results"]) != PAGE_SIZE and data["next"]:
            raise SystemExit(f"GET {url}: {len(data['results'])} rows")
        url = data["next"] or first
        if url.startswith("http://testserver"):
            url = url.removeprefix("http://testserver")
        return elapsed

    load_before = [round(x, 2) for x in os.getloadavg()]
    for _ in range(warmup):
        fetch()
    cpu.clear()
    timings = [fetch() for _ in range(requests)]
    cpu_ms = list(cpu)
    with CaptureQueriesContext(connection) as queries:
        fetch()
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return {
        "api_p95_ms": round(_percentile(timings, 0.95), 2),
        "api_p50_ms": round(statistics.median(timings), 2),
        "api_max_ms": round(max(timings), 2),
        "api_cpu_p50_ms": round(statistics.median(cpu_ms), 2),
        "api_cpu_p95_ms": round(_percentile(cpu_ms, 0.95), 2),
        "requests": requests,
        "page_size": PAGE_SIZE,
        "drafts": drafts,
        "queries_per_request": len(queries),
        "cache": cache,
        "load_avg_before": load_before,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--database", help="database name (default: DATABASE_URL's + _bench_api)")
    parser.add_argument("--redis", help="use this Redis URL as the cache (rate-limit counters)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/api.json")
    args = parser.parse_args()
    if args.drafts < PAGE_SIZE:
        parser.error(f"--drafts must be at least {PAGE_SIZE}")

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the database is derived).")
    from benchmarks._common import bench_url

    url = bench_url(url, args.database, "_bench_api")
    name = urlparse(url).path.lstrip("/")
    os.environ["DATABASE_URL"] = url
    if args.redis:
        os.environ["CACHE_BACKEND"] = "django.core.cache.backends.redis.RedisCache"
        os.environ["CACHE_LOCATION"] = args.redis
    os.environ.setdefault("DATA_DIR", str(ROOT / "var/bench/data"))
    from benchmarks._common import django_setup, ensure_database

    ensure_database(url)
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database {name}, load average {os.getloadavg()}", flush=True)
    result = measure_api(drafts=args.drafts, requests=args.requests, warmup=args.warmup)
    print(
        f"GET a page of {result['page_size']} ({result['queries_per_request']} queries): "
        f"p50 {result['api_p50_ms']} ms, p95 {result['api_p95_ms']} ms, "
        f"max {result['api_max_ms']} ms over {result['requests']} requests "
        f"(cache: {result['cache']}); this process's CPU per request p50 "
        f"{result['api_cpu_p50_ms']} ms, p95 {result['api_cpu_p95_ms']} ms; load average "
        f"{result['load_avg_before']} → {result['load_avg']}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
