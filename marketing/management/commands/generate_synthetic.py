"""Write a synthetic shop (products, customers, events) for scale tests and benchmarks.

    python manage.py generate_synthetic --customers 100000 --products 20000 \\
        --events 1000000 --seed 42

The files land in DATA_DIR/synthetic/<N>c-<M>p-<K>e-s<S>/ unless --out says otherwise, in
the layouts the importer maps without help. Same arguments, same bytes. The generator
itself is marketing.analytics.synthetic (pure, no Django), documented there.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketing.analytics.synthetic import generate


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


class Command(BaseCommand):
    help = "Generate synthetic products.csv, customers.csv and events.csv.gz (deterministic)."
    # Writes files only: no database, models or URLs, so it runs even while they are broken.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--customers", type=_count, required=True)
        parser.add_argument("--products", type=_count, required=True)
        parser.add_argument("--events", type=_count, required=True, help="exact row count")
        parser.add_argument("--seed", type=_count, required=True)
        parser.add_argument(
            "--out", type=Path, help="folder (default: DATA_DIR/synthetic/<N>c-<M>p-<K>e-s<S>)"
        )
        parser.add_argument("--days", type=_count, default=365, help="window length (365)")
        parser.add_argument(
            "--start", type=_day, help="first day, YYYY-MM-DD (default 2024-01-01, fixed)"
        )
        parser.add_argument(
            "--no-gzip", action="store_true", help="write events.csv instead of events.csv.gz"
        )

    def handle(self, *args: object, **opts: object) -> None:
        customers, products, events, seed = (
            opts["customers"],
            opts["products"],
            opts["events"],
            opts["seed"],
        )
        out = opts["out"] or (
            Path(settings.DATA_DIR) / "synthetic" / f"{customers}c-{products}p-{events}e-s{seed}"
        )
        self.stdout.write(
            f"Generating {customers:,} customers, {products:,} products, {events:,} events "
            f"(seed {seed}) into {out}"
        )
        began = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if total:
                self.stdout.write(f"  events {done:,} / {total:,} ({100 * done // total} %)")

        try:
            result = generate(
                Path(out),
                customers=customers,
                products=products,
                events=events,
                seed=seed,
                start=opts["start"],
                days=opts["days"],
                gzip_events=not opts["no_gzip"],
                on_progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        seconds = time.perf_counter() - began
        kinds = ", ".join(f"{k} {n:,}" for k, n in result["kinds"].items())
        self.stdout.write(f"Events by kind: {kinds}; {result['orders']:,} orders.")
        for key in ("products", "customers", "events"):
            path = result[f"{key}_path"]
            self.stdout.write(f"{path}  ({result[key]:,} rows, {path.stat().st_size:,} bytes)")
        self.stdout.write(self.style.SUCCESS(f"Done in {seconds:.1f} s."))
