"""Import speed: N synthetic events through the real import service vs. a bare COPY.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tailor_bench \\
        .venv/bin/python benchmarks/import_events.py --rows 1000000

Creates the database if it is missing and migrates it, generates synthetic data
(100k customers, 20k products by default), imports products and customers (set-up, timed
apart), then times the events import through `marketing.services.imports.import_run` — the
same code the UI's job runs: parse, validate, clean, deduplicate, store — in a child process
whose peak RSS is measured. Then it loads the same file with psql's COPY into a bare scratch
table with no indexes (the physical limit). The last line printed is JSON:
{"rows", "seconds", "rows_per_s", "copy_rows_per_s", "ratio_vs_copy", "peak_rss_mb", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import django_setup, ensure_database  # noqa: E402 (benchmarks/ is on sys.path)


def import_file(catalog_name: str, kind: str, path: Path) -> dict:
    """Run one import job in this process and return its result with the time it took."""
    from django.contrib.auth.models import User

    from marketing.analytics.importing import auto_map
    from marketing.models import Catalog, Job
    from marketing.services.imports import import_run, upload_from_path
    from marketing.services.jobs import job_create, worker_name

    user, _ = User.objects.get_or_create(username="benchmark", defaults={"is_superuser": True})
    catalog = Catalog.objects.get(name=catalog_name)
    upload = upload_from_path(catalog=catalog, kind=kind, path=path, user=user)
    job = job_create(
        kind=Job.Kind.IMPORT,
        user=user,
        catalog=catalog,
        params={
            "upload_id": upload.pk,
            "mapping": auto_map(upload.detected["columns"], kind),
            "file": path.name,
        },
    )
    start = time.perf_counter()
    import_run(job_id=job.pk, worker=worker_name())
    seconds = time.perf_counter() - start
    job.refresh_from_db()
    if job.status != Job.Status.SUCCEEDED:
        raise SystemExit(f"import of {path.name} {job.status}: {job.error}")
    upload.file.delete(save=False)
    return {"seconds": seconds, "result": job.result}


def child_main(catalog_name: str, kind: str, path: str) -> None:
    django_setup()
    out = import_file(catalog_name, kind, Path(path))
    print("CHILD " + json.dumps(out))


def copy_baseline(url: str, path: Path) -> float:
    ddl = (
        "DROP TABLE IF EXISTS bench_copy_scratch; "
        "CREATE TABLE bench_copy_scratch (customer_id text, sku text, kind text, quantity int, "
        "value numeric, occurred_at timestamp, source text);"
    )
    subprocess.run(["psql", url, "-q", "-c", ddl], check=True)
    start = time.perf_counter()
    subprocess.run(
        [
            "psql",
            url,
            "-q",
            "-c",
            f"\\copy bench_copy_scratch FROM '{path}' WITH (FORMAT csv, HEADER)",
        ],
        check=True,
    )
    seconds = time.perf_counter() - start
    subprocess.run(["psql", url, "-q", "-c", "DROP TABLE bench_copy_scratch"], check=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/import_events.json")
    parser.add_argument("--work", type=Path, default=ROOT / "var/bench")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (it is created if missing).")
    ensure_database(url)
    os.environ.setdefault("DATA_DIR", str(args.work / "data"))
    os.environ.setdefault("IMPORT_MAX_BYTES", str(4 * 1024**3))
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from marketing.analytics.synthetic import generate
    from marketing.models import Catalog, Event, Product

    data_dir = args.work / f"synthetic-{args.customers}c-{args.products}p-{args.rows}e-s{args.seed}"
    events_csv = data_dir / "events.csv"
    if not events_csv.exists():
        print(f"generating synthetic data in {data_dir} …", flush=True)
        generate(
            data_dir,
            customers=args.customers,
            products=args.products,
            events=args.rows,
            seed=args.seed,
            gzip_events=False,
        )

    catalog_name = f"Benchmark s{args.seed}"
    catalog, _ = Catalog.objects.get_or_create(name=catalog_name, defaults={"currency": "EUR"})
    # Start from an empty catalog so the timed run inserts every event.
    Event.objects.filter(catalog=catalog)._raw_delete(Event.objects.db)
    Product.objects.filter(catalog=catalog).delete()
    # Earlier runs' deleted rows would otherwise be scanned by every index rebuild.
    from django.db import connection as conn

    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE marketing_event")

    setup = {}
    for kind, name in (("products", "products.csv"), ("customers", "customers.csv")):
        out = import_file(catalog_name, kind, data_dir / name)
        setup[f"{kind}_s"] = round(out["seconds"], 2)
        print(f"set-up: {kind} imported in {out['seconds']:.1f} s", flush=True)

    from django.db import connection

    connection.close()

    def timed_child() -> dict:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", catalog_name, "events", str(events_csv)],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit("events import failed")
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("CHILD "))
        return json.loads(line[len("CHILD ") :])

    first = timed_child()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    events = first["result"]["events"]
    print(f"events import: {first['seconds']:.2f} s, {events}", flush=True)
    again = timed_child()
    print(f"re-import of the same file: {again['seconds']:.2f} s, {again['result']['events']}")

    copy_s = copy_baseline(url, events_csv)
    print(f"bare COPY into a scratch table: {copy_s:.2f} s", flush=True)

    rows = args.rows
    figures = {
        "rows": rows,
        "seconds": round(first["seconds"], 3),
        "rows_per_s": round(rows / first["seconds"]),
        "copy_rows_per_s": round(rows / copy_s),
        "ratio_vs_copy": round(copy_s / first["seconds"], 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "copy_seconds": round(copy_s, 3),
        "reimport_seconds": round(again["seconds"], 3),
        "events_inserted": events["inserted"],
        "events_unchanged_on_reimport": again["result"]["events"]["unchanged"],
        **setup,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_main(*sys.argv[2:])
    else:
        main()
