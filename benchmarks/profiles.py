"""Profiles at scale: the refresh job, a refresh of all segments, and the pages that read them.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tailor_bench \\
        .venv/bin/python benchmarks/profiles.py --customers 100000 --events 1000000

Works in its own database: DATABASE_URL's name plus ``_bench_profiles`` (or ``--database``),
created if missing and migrated. Loads synthetic data (``marketing.analytics.synthetic``;
20k products by default) into one catalog through the importer's COPY path, each file in a
child process like ``benchmarks/import_events.py``; a later run with the same sizes reuses
the loaded data (``--reload`` loads again). Loading time is reported, not a target.

Then it measures, in this process:

- ``profile_refresh_s``: ``profile_refresh_run`` on a created job, end to end (claim, read
  events, profiles, CLV/churn models, save, RFM + learned + rule segments inside the same
  transaction, job success). When the service has rule segments, 3 are created through
  ``segment_rule_create`` before it (a profile/customer rule, a prediction/consent rule and
  an event rule), so the refresh and the segment refresh fill them too. The split (read, profiles, models, save, segments, finish) comes
  from wrapping the job's progress reporter and segment calls for this run only; the
  service is not changed for it.
- ``segment_refresh_s``: every segment of the catalog refreshed on its own in one
  transaction: ``segments_refresh_rfm`` + ``segments_refresh_learned``, plus
  ``segments_refresh_rules`` when the service has it.
- ``page_p95_ms``: server time of four pages. Django's test ``Client`` in this process,
  logged in as a user with the marketer role, sends GET requests through the full
  middleware stack, URL routing, the view, its queries and template rendering; the time
  is ``perf_counter`` around ``client.get`` (no network, no WSGI server, so it is the part
  of a response time the app controls; the database connection setting is the app's own,
  DB_CONN_MAX_AGE). Each page gets ``--warmup`` requests, then ``--requests`` (≥ 30) timed
  ones rotating over different URLs: dashboard = home with the catalog selected (default
  range), customers = the customer list (pages 1.., alternately filtered by country and
  by the catalog), profile = customer pages of randomly drawn profiled customers (seeded),
  segment = the detail pages of all the catalog's segments in turn. Every response must be
  200. Printed: p50, p95 and max per page, the query count of one request, and the first
  warm-up request (``first_ms``: the dashboard's cache is cold then, right after the refresh).

Peak RSS is this process's high-water mark after the refresh (it loads nothing else big).
Load averages (1/5/15 min) are recorded before the refresh and at the end, because other
work on the machine slows every figure. The last line printed is JSON: {"customers",
"events", "profile_refresh_s", "segment_refresh_s", "page_p95_ms": {"dashboard",
"customers", "profile", "segment"}, ...}; the same goes to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import bench_url, django_setup, ensure_database, loadavg  # noqa: E402 (benchmarks/ is on sys.path)

IMPORT_SCRIPT = ROOT / "benchmarks/import_events.py"
PAGES = ("dashboard", "customers", "profile", "segment")
BENCH_USER = "bench-marketer"


# Loading ---------------------------------------------------------------------------------


def import_child(catalog_name: str, kind: str, path: Path) -> dict:
    """One import job through the real service, in a child process (import_events' --child)."""
    proc = subprocess.run(
        [sys.executable, str(IMPORT_SCRIPT), "--child", catalog_name, kind, str(path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{kind} import failed")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD "))
    return json.loads(line[len("CHILD ") :])


def load(args, catalog_name: str) -> dict:
    """The synthetic catalog, loaded unless the database already holds it at this size."""
    from django.db import connection

    from marketing.analytics.synthetic import generate
    from marketing.models import Catalog, Customer, Event, Product

    catalog, _ = Catalog.objects.get_or_create(name=catalog_name, defaults={"currency": "EUR"})
    have = {
        "products": Product.objects.filter(catalog=catalog).count(),
        "events": Event.objects.filter(catalog=catalog).count(),
        "customers": Customer.objects.count(),
    }
    if (
        not args.reload
        and have["products"] == args.products
        and have["events"] == args.events
        and have["customers"] >= args.customers
    ):
        print(f"reusing loaded data: {have}", flush=True)
        return {"reused": True}

    size = f"{args.customers}c-{args.products}p-{args.events}e-s{args.seed}"
    data_dir = args.work / f"synthetic-{size}"
    if not (data_dir / "events.csv").exists():
        print(f"generating synthetic data in {data_dir} …", flush=True)
        generate(
            data_dir,
            customers=args.customers,
            products=args.products,
            events=args.events,
            seed=args.seed,
            gzip_events=False,
        )
    Event.objects.filter(catalog=catalog)._raw_delete(Event.objects.db)
    Product.objects.filter(catalog=catalog).delete()
    connection.close()  # the children import; this process only waits
    figures: dict = {"reused": False}
    for kind, name in (("products", "products.csv"), ("customers", "customers.csv")):
        out = import_child(catalog_name, kind, data_dir / name)
        figures[f"{kind}_s"] = round(out["seconds"], 2)
        print(f"load: {kind} in {out['seconds']:.1f} s", flush=True)
    out = import_child(catalog_name, "events", data_dir / "events.csv")
    figures["events_s"] = round(out["seconds"], 2)
    figures["events"] = out["result"]["events"]
    print(f"load: events in {out['seconds']:.1f} s {out['result']['events']}", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return figures


# The refresh job -------------------------------------------------------------------------


@contextlib.contextmanager
def refresh_timers(marks: dict[str, float]):
    """Record when the job reports each step and how long its segment calls take.

    Wraps names inside marketing.services.profiles for the duration only (a benchmark's
    stopwatch, not a change of the service).
    """
    from marketing.services import profiles as service

    base = service.ProgressReporter

    class TimedReporter(base):
        def __call__(self, done, total, message="", *, force=False):
            if force:  # the last forced report of a step starts its work
                marks[f"step{done}"] = time.perf_counter()
            return super().__call__(done, total, message, force=force)

    def timed(name, func):
        def wrapper(*args, **kwargs):
            marks.setdefault("segments_start", time.perf_counter())
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                marks[f"segments.{name}"] = time.perf_counter() - start
                marks["segments_end"] = time.perf_counter()

        return wrapper

    originals = {"ProgressReporter": base}
    for name in dir(service):
        if name.startswith("segments_refresh_") and callable(getattr(service, name)):
            originals[name] = getattr(service, name)
    try:
        service.ProgressReporter = TimedReporter
        for name, func in originals.items():
            if name != "ProgressReporter":
                setattr(service, name, timed(name.removeprefix("segments_refresh_"), func))
        yield
    finally:
        for name, func in originals.items():
            setattr(service, name, func)


def run_refresh(catalog, user) -> dict:
    from marketing.models import Job
    from marketing.services.jobs import job_create
    from marketing.services.profiles import profile_refresh_run

    job = job_create(kind=Job.Kind.PROFILE_REFRESH, user=user, catalog=catalog, params={})
    marks: dict[str, float] = {}
    with refresh_timers(marks):
        start = time.perf_counter()
        profile_refresh_run(job_id=job.pk, worker="benchmark")
        end = time.perf_counter()
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"profile refresh {job.status}: {job.error}")
    split = {}
    with contextlib.suppress(KeyError):
        seg_start = marks.get("segments_start", end)
        seg_end = marks.get("segments_end", seg_start)
        split = {
            "start": marks["step1"] - start,  # category derivation, when needed
            "read": marks["step2"] - marks["step1"],
            "profiles": marks["step3"] - marks["step2"],
            "models": marks["step4"] - marks["step3"],
            "save": seg_start - marks["step4"],
            "segments": seg_end - seg_start,
            "finish": end - seg_end,
        }
        split.update({k: v for k, v in marks.items() if k.startswith("segments.")})
    return {
        "seconds": end - start,
        "split": {k: round(v, 2) for k, v in split.items()},
        "result": job.result,
    }


# Segments --------------------------------------------------------------------------------

# Rule segments for the refresh of all segments (created when the service has them): a
# profile + customer rule, a prediction + consent rule, and a behaviour rule over events.
RULE_SEGMENTS = [
    (
        "Bench: big spenders in Germany",
        {
            "op": "and",
            "rules": [
                {"field": "monetary", "operator": "gte", "value": 300},
                {"field": "country", "operator": "eq", "value": "germany"},
            ],
        },
    ),
    (
        "Bench: likely to churn, email allowed",
        {
            "op": "and",
            "rules": [
                {"field": "churn_probability", "operator": "gte", "value": 0.7},
                {"field": "consent_email", "operator": "is_true", "value": None},
            ],
        },
    ),
    (
        "Bench: recent Home buyers",
        {
            "op": "and",
            "rules": [
                {"field": "bought_category", "operator": "eq", "value": "Home"},
                {
                    "field": "events_in_last_days",
                    "operator": "gte",
                    "value": {"kind": "purchase", "days": 90, "min_count": 1},
                },
            ],
        },
    ),
]


def create_rule_segments(catalog, user) -> str:
    """(Re)create the benchmark's rule segments through the service; returns what was done."""
    from marketing.models import Segment
    from marketing.services import segments

    create = getattr(segments, "segment_rule_create", None)
    if create is None:
        return "segments_refresh_rules exists, segment_rule_create does not: no rule segments"
    Segment.objects.filter(
        catalog=catalog, kind=Segment.Kind.RULE, name__startswith="Bench:"
    ).delete()
    start = time.perf_counter()
    for name, rule in RULE_SEGMENTS:
        create(user=user, catalog=catalog, name=name, rule=rule)
    seconds = time.perf_counter() - start
    return f"{len(RULE_SEGMENTS)} rule segments created in {seconds:.1f} s"


def run_segment_refresh(catalog) -> dict:
    from django.db import transaction

    from marketing.models import ProfileRun
    from marketing.services import segments

    run = ProfileRun.objects.filter(catalog=catalog).order_by("-created_at", "-pk").first()
    parts = [
        ("rfm", lambda: segments.segments_refresh_rfm(catalog=catalog, run=run)),
        ("learned", lambda: segments.segments_refresh_learned(catalog=catalog)),
    ]
    if hasattr(segments, "segments_refresh_rules"):
        parts.append(("rules", lambda: segments.segments_refresh_rules(catalog=catalog)))
    split = {}
    start = time.perf_counter()
    with transaction.atomic():
        for name, call in parts:
            t = time.perf_counter()
            call()
            split[name] = round(time.perf_counter() - t, 2)
    seconds = time.perf_counter() - start
    split["commit"] = round(seconds - sum(split.values()), 2)  # deferred FK checks included
    # As the refresh job does: segment statistics are computed once, not on first view.
    from marketing.selectors_segments import segment_stats_warm

    t = time.perf_counter()
    segment_stats_warm(catalog=catalog)
    return {"seconds": seconds, "split": split, "stats_s": round(time.perf_counter() - t, 2)}


# Pages -----------------------------------------------------------------------------------


def page_urls(catalog, n: int, seed: int) -> dict[str, list[str]]:
    """n different URLs per page (cycled when there are fewer)."""
    from django.urls import reverse

    from marketing.models import Customer, Profile, Segment

    rng = np.random.default_rng(seed)
    countries = list(
        Customer.objects.exclude(country="").order_by().values_list("country", flat=True).distinct()
    )
    customer_list = reverse("marketing:customer-list")
    customers = []
    for i in range(n):
        query = {"page": i // 3 + 1}
        if i % 3 == 1:
            query["country"] = countries[i % len(countries)]
        elif i % 3 == 2:
            query["catalog"] = catalog.pk
        customers.append(f"{customer_list}?{urlencode(query)}")
    profiled = np.array(
        Profile.objects.filter(catalog=catalog).values_list("customer_id", flat=True)
    )
    picked = rng.choice(profiled, size=min(n, len(profiled)), replace=False)
    segments = list(
        Segment.objects.filter(catalog=catalog)
        .order_by("kind", "name")
        .values_list("pk", flat=True)
    )
    return {
        "dashboard": [f"{reverse('marketing:home')}?catalog={catalog.pk}"],
        "customers": customers,
        "profile": [reverse("marketing:customer-detail", args=[int(pk)]) for pk in picked],
        "segment": [reverse("marketing:segment-detail", args=[pk]) for pk in segments],
    }


def time_pages(user, urls: dict[str, list[str]], *, warmup: int, requests: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    out = {}
    for page in PAGES:
        pool = urls[page]
        if not pool:
            out[page] = None
            continue

        def get(url: str) -> float:
            start = time.perf_counter()
            response = client.get(url)
            ms = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                raise SystemExit(f"GET {url}: {response.status_code}")
            return ms

        # Warm-up goes through URLs from the end of the pool; timed requests start at its head.
        first = [get(pool[-1 - i % len(pool)]) for i in range(warmup)]
        ms = np.array([get(pool[i % len(pool)]) for i in range(requests)])
        with CaptureQueriesContext(connection) as queries:
            get(pool[0])
        out[page] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "max_ms": round(float(ms.max()), 1),
            "first_ms": round(first[0], 1) if first else None,
            "requests": requests,
            "distinct_urls": min(len(pool), requests),
            "queries": len(queries),
        }
        print(
            f"page {page:9}: p50 {out[page]['p50_ms']:7.1f} ms  p95 {out[page]['p95_ms']:7.1f} ms"
            f"  max {out[page]['max_ms']:7.1f} ms  first {out[page]['first_ms']} ms"
            f"  ({requests} requests over"
            f" {out[page]['distinct_urls']} URLs, {len(queries)} queries each)",
            flush=True,
        )
    return out


def bench_user():
    from django.contrib.auth.models import Group, User

    user, _ = User.objects.get_or_create(username=BENCH_USER)
    user.groups.set([Group.objects.get(name="marketer")])
    return user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database", help="database name (default: DATABASE_URL's + _bench_profiles)"
    )
    parser.add_argument("--reload", action="store_true", help="load the data even if present")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page (>= 30)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/profiles.json")
    parser.add_argument("--work", type=Path, default=ROOT / "var/bench")
    args = parser.parse_args()
    if args.requests < 30:
        parser.error("--requests must be at least 30 for a p95")

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the database is derived).")
    url = bench_url(url, args.database, "_bench_profiles")
    os.environ["DATABASE_URL"] = url
    ensure_database(url)
    os.environ.setdefault("DATA_DIR", str(args.work / "data"))
    os.environ.setdefault("IMPORT_MAX_BYTES", str(4 * 1024**3))
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database {urlparse(url).path.lstrip('/')}, load average {loadavg()}", flush=True)

    from marketing.models import Catalog

    catalog_name = f"Profiles benchmark s{args.seed}"
    loading = load(args, catalog_name)
    catalog = Catalog.objects.get(name=catalog_name)
    user = bench_user()

    from marketing.services import segments as segment_service

    rules = "segments_refresh_rules not in the service yet"
    if hasattr(segment_service, "segments_refresh_rules"):
        rules = create_rule_segments(catalog, user)
        print(f"rule segments: {rules}", flush=True)

    load_before = loadavg()
    refresh = run_refresh(catalog, user)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"profile refresh: {refresh['seconds']:.1f} s {refresh['split']}"
        f" ({refresh['result']['customers']:,} profiles, peak RSS {peak_rss_mb:.0f} MB)",
        flush=True,
    )

    segment_refresh = run_segment_refresh(catalog)
    print(
        f"segment refresh: {segment_refresh['seconds']:.1f} s {segment_refresh['split']} ({rules});"
        f" statistics cached in {segment_refresh['stats_s']:.1f} s",
        flush=True,
    )

    urls = page_urls(catalog, args.requests, args.seed)
    pages = time_pages(user, urls, warmup=args.warmup, requests=args.requests)

    figures = {
        "customers": args.customers,
        "events": args.events,
        "profile_refresh_s": round(refresh["seconds"], 2),
        "segment_refresh_s": round(segment_refresh["seconds"], 2),
        "page_p95_ms": {page: pages[page] and pages[page]["p95_ms"] for page in PAGES},
        "products": args.products,
        "profiles": refresh["result"]["customers"],
        "profile_refresh_split_s": refresh["split"],
        "segment_refresh_split_s": segment_refresh["split"],
        "segment_stats_s": segment_refresh["stats_s"],
        "rule_segments": rules,
        "pages": pages,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "load": loading,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "cpus": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
