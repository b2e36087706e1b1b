"""Copy drafting at scale: a one-per-customer email brief for 100k customers, on real workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tailor_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python benchmarks/copy_scale.py --customers 165000 --events 1650000

Works in its own database (DATABASE_URL's name plus ``_bench_copy``, or ``--database``),
created if missing and migrated. Set-up, reused by a later run with the same sizes and not
part of the figure:

1. synthetic shop data (``marketing.analytics.synthetic``) loaded through the importer's
   COPY path (the loader of ``benchmarks/profiles.py``); about two thirds of synthetic
   customers have events, so 165k customers give ~104k profiled ones;
2. a profile refresh, then a rule segment "Bench: every profiled customer";
3. a recommendation run of the catalog (RP3β, the product's own job service, inline) so each
   customer has their own list — the brief drafts from it.

Measured: ``--workers`` Celery worker processes (``celery -A marketing worker``, prefork with
one child each, as deployed: one per core) are started on the broker; a brief (audience:
one draft per customer of the segment; channel email; tone friendly; one locale; one
variant; products per message 1) is created through the services and its drafting job is
enqueued; ``seconds`` runs from the enqueue until the job has succeeded, so it covers
fitting/loading the catalog's copy model, planning the chunks, generating, checking and
writing every draft with its first revision. ``peak_rss_mb`` is the largest resident set of
any one worker process (parent and children sampled every 0.25 s with psutil);
``peak_rss_total_mb`` their sum at its highest.

The last line printed is JSON: {"drafts", "seconds", "peak_rss_mb", …}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import bench_url, django_setup, ensure_database, loadavg  # noqa: E402

SEGMENT_NAME = "Bench: every profiled customer"
TARGET_S = 300


def prepare(args, catalog_name: str) -> dict:
    """Data, profiles, the segment and a current recommendation run (each unless present)."""
    import profiles as profiles_bench  # benchmarks/profiles.py: the synthetic loader
    from django.conf import settings

    from marketing.models import Catalog, Profile, Segment
    from marketing.services import segments
    from recommendations.models import ModelRun
    from recommendations.services.runs import model_run_fail, model_run_run, model_run_start

    figures: dict = {}
    figures["load"] = profiles_bench.load(args, catalog_name)
    catalog = Catalog.objects.get(name=catalog_name)
    user = profiles_bench.bench_user()
    fresh = not figures["load"].get("reused")
    if fresh or not Profile.objects.filter(catalog=catalog).exists():
        start = time.perf_counter()
        profiles_bench.run_refresh(catalog, user)
        figures["profile_refresh_s"] = round(time.perf_counter() - start, 1)
        print(f"set-up: profiles in {figures['profile_refresh_s']} s", flush=True)
    segment = Segment.objects.filter(catalog=catalog, name=SEGMENT_NAME).first()
    if segment is None or fresh:
        if segment is not None:
            segment.delete()
        rule = {"op": "and", "rules": [{"field": "frequency", "operator": "gte", "value": 0}]}
        segment = segments.segment_rule_create(
            user=user, catalog=catalog, name=SEGMENT_NAME, rule=rule
        )
    if fresh or not ModelRun.objects.filter(catalog=catalog, is_current=True).exists():
        # Scored here in this process: no worker runs during the set-up.
        settings.RECOMMENDATION_SCORING = "inline"
        for stale in ModelRun.objects.filter(catalog=catalog, status__in=ModelRun.ACTIVE):
            model_run_fail(run_id=stale.pk, error="An earlier benchmark set-up was stopped.")
        start = time.perf_counter()
        run = model_run_start(catalog=catalog, user=user, algorithms=["rp3beta"], budget_s=30)
        model_run_run(job_id=run.job_id, worker="benchmark")
        run.refresh_from_db()
        if not run.is_current:
            raise SystemExit(f"recommendation run {run.status}: {run.job.error}")
        figures["model_run_s"] = round(time.perf_counter() - start, 1)
        print(f"set-up: recommendations in {figures['model_run_s']} s", flush=True)
    segment.refresh_from_db()
    figures["segment_size"] = segment.size
    return figures


def start_workers(n: int, log_dir: Path) -> list[subprocess.Popen]:
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(n):
        log = (log_dir / f"worker{i}.log").open("w")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "marketing",
                    "worker",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"bench{i}@%h",
                ],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


class RssSampler(threading.Thread):
    """Highest RSS of any one worker process (with its children) and of all together."""

    def __init__(self, procs: list[subprocess.Popen]) -> None:
        super().__init__(daemon=True)
        self.procs = [psutil.Process(p.pid) for p in procs]
        self.peak_one = 0.0
        self.peak_total = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            total = 0.0
            for proc in self.procs:
                try:
                    family = [proc, *proc.children(recursive=True)]
                    for member in family:
                        rss = member.memory_info().rss / 1024**2
                        self.peak_one = max(self.peak_one, rss)
                        total += rss
                except psutil.NoSuchProcess:
                    continue
            self.peak_total = max(self.peak_total, total)


def draft(args, catalog_name: str) -> dict:
    import profiles as profiles_bench
    from django.db import transaction

    from copygen.models import Brief
    from copygen.services.briefs import brief_create, brief_draft_start
    from marketing.celery import app as celery_app
    from marketing.models import Catalog, Job, Segment

    catalog = Catalog.objects.get(name=catalog_name)
    segment = Segment.objects.get(catalog=catalog, name=SEGMENT_NAME)
    user = profiles_bench.bench_user()
    Brief.objects.filter(catalog=catalog).delete()
    brief = brief_create(
        user=user,
        catalog=catalog,
        name="Bench: one email per customer",
        audience=Brief.Audience.CUSTOMERS,
        segment=segment,
        channel="email",
        tone="friendly",
        locales=[args.locale],
        source=Brief.Source.RECOMMENDATIONS,
        products_per_message=1,
        variants=1,
    )
    celery_app.control.purge()
    procs = start_workers(args.workers, args.work / "logs")
    sampler = RssSampler(procs)
    sampler.start()
    try:
        time.sleep(args.worker_start_s)  # workers ready before the clock starts
        with transaction.atomic():
            job = brief_draft_start(brief=brief, user=user)
        start = time.perf_counter()
        last = ""
        while True:
            job.refresh_from_db()
            if job.status not in Job.ACTIVE:
                break
            line = f"{job.percent:3d} % {job.message}"
            if line != last:
                print(f"  {time.perf_counter() - start:6.1f} s {line}", flush=True)
                last = line
            if time.perf_counter() - start > args.timeout_s:
                raise SystemExit(f"drafting did not finish within {args.timeout_s} s")
            time.sleep(0.5)
        seconds = time.perf_counter() - start
    finally:
        sampler.stop.set()
        sampler.join()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"drafting job {job.status}: {job.error}")
    drafts = brief.drafts.count()
    return {
        "drafts": drafts,
        "seconds": round(seconds, 1),
        "drafts_per_s": round(drafts / seconds, 1),
        "peak_rss_mb": round(sampler.peak_one),
        "peak_rss_total_mb": round(sampler.peak_total),
        "passing": brief.drafts.filter(passes=True).count(),
        "job_result": job.result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=165_000)
    parser.add_argument("--events", type=int, default=1_650_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--locale", default="en")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one per core)")
    parser.add_argument("--worker-start-s", type=float, default=8.0)
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--database", help="database name (default: DATABASE_URL's + _bench_copy)")
    parser.add_argument("--reload", action="store_true", help="load the data even if present")
    parser.add_argument("--setup-only", action="store_true", help="prepare the data and stop")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/copy_scale.json")
    parser.add_argument("--work", type=Path, default=ROOT / "var/bench")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the database is derived).")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis://", "amqp://")):
        raise SystemExit("Set CELERY_BROKER_URL to Redis or RabbitMQ (real workers draft).")
    url = bench_url(url, args.database, "_bench_copy")
    os.environ["DATABASE_URL"] = url
    ensure_database(url)
    os.environ.setdefault("DATA_DIR", str(args.work / "data"))
    os.environ.setdefault("IMPORT_MAX_BYTES", str(4 * 1024**3))
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"database {urlparse(url).path.lstrip('/')}, load average {loadavg()}", flush=True)

    catalog_name = f"Copy benchmark s{args.seed}"
    setup = prepare(args, catalog_name)
    print(f"set-up: {setup}", flush=True)
    if args.setup_only:
        return
    load_before = loadavg()
    figures = draft(args, catalog_name)
    result = {
        "drafts": figures["drafts"],
        "seconds": figures["seconds"],
        "peak_rss_mb": figures["peak_rss_mb"],
        "peak_rss_total_mb": figures["peak_rss_total_mb"],
        "drafts_per_s": figures["drafts_per_s"],
        "passing": figures["passing"],
        "target_s": TARGET_S,
        "meets_target": figures["seconds"] <= TARGET_S and figures["drafts"] >= 100_000,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": loadavg(),
        "setup": setup,
    }
    print(
        f"drafted {result['drafts']:,} drafts in {result['seconds']} s "
        f"({result['drafts_per_s']}/s; {result['passing']:,} pass every check); "
        f"peak RSS {result['peak_rss_mb']} MB per worker, {result['peak_rss_total_mb']} MB total",
        flush=True,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
