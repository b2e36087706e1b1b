"""Compare the registered recommenders offline on an interactions file (no database).

    python manage.py evaluate_recommenders --interactions events.csv.gz --split lastday \\
        --budget-s 30 --json out.json
    python manage.py evaluate_recommenders --train train.csv --test test.csv --items items.csv
    python manage.py evaluate_recommenders --interactions online_retail.csv.gz \\
        --format online_retail --algorithms popular,popular_recent --json out.json

Files are CSV or CSV.gz with user_id,item_id,timestamp[,weight]; ``--format online_retail``
reads the UCI invoice layout instead. The protocol (splits, tuning on validation only,
metrics) is recommendations.evaluation.tuning.compare; this command only parses arguments,
prints a table and writes the JSON report.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from recommendations.algorithms.registry import ALGORITHMS
from recommendations.evaluation import io
from recommendations.evaluation.splits import SPLITS
from recommendations.evaluation.tuning import Comparison, compare

# What reading a bad file raises: missing or unreadable (OSError), not CSV or a bad value
# (ValueError, incl. pandas' parser errors and UnicodeDecodeError), a truncated .gz
# (EOFError, zlib.error), a column of the wrong shape (KeyError, TypeError).
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error)

COLUMNS = ("ndcg@{k}", "recall@{k2}", "map@{k}", "hr@{k}", "precision@{k}", "coverage@{k}")
BEYOND = ("novelty@{k}", "diversity@{k}", "pop_pct@{k}")


def _cutoff(text: str) -> float | str:
    try:
        value = float(text)
    except ValueError:
        return text
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("a quantile must be between 0 and 1 (or give a date)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


class Command(BaseCommand):
    help = "Tune and compare recommenders on an interactions file; print a table, write JSON."
    # Reads and writes files only: no database, so it runs anywhere the code does.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--interactions", type=Path, help="all interactions, to be split")
        source.add_argument("--train", type=Path, help="training interactions (with --test)")
        parser.add_argument("--test", type=Path, help="test interactions (with --train)")
        parser.add_argument("--format", choices=("csv", "online_retail"), default="csv")
        parser.add_argument("--split", choices=SPLITS, default="lastday")
        parser.add_argument(
            "--cutoff",
            type=_cutoff,
            help="--split global: a quantile of the timestamps (default 0.9) or a date",
        )
        parser.add_argument("--items", type=Path, help="item_id plus feature columns")
        parser.add_argument("--k", type=_positive, default=10, help="list length (10)")
        parser.add_argument(
            "--budget-s", type=float, default=30.0, help="tuning seconds per algorithm (30)"
        )
        parser.add_argument("--max-trials", type=_positive, help="tuning trials per algorithm")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--algorithms", help=f"comma-separated (default all: {','.join(ALGORITHMS)})"
        )
        parser.add_argument(
            "--buy-again", action="store_true", help="also score lists on repeat purchases"
        )
        parser.add_argument("--json", type=Path, dest="json_out", help="write the report here")

    def handle(self, *args, **opts) -> None:
        if opts["train"] is not None and opts["test"] is None:
            raise CommandError("--train needs --test")
        if opts["interactions"] is not None and opts["test"] is not None:
            raise CommandError("--test goes with --train, not with --interactions")
        algorithms = self._algorithms(opts["algorithms"])
        started = time.perf_counter()
        data = self._read(opts["interactions"] or opts["train"], opts)
        test = self._read(opts["test"], opts).frame if opts["test"] else None
        items = data.item_features
        if opts["items"] is not None:
            try:
                items = io.read_items(opts["items"])
            except READ_ERRORS as error:
                raise CommandError(f"{opts['items']}: {error}") from None
        self.stderr.write(
            f"read {len(data.frame):,} interactions"
            + (f" + {len(test):,} test" if test is not None else "")
            + f" in {time.perf_counter() - started:.1f}s"
        )
        result = compare(
            algorithms,
            data.frame,
            split=opts["split"],
            test=test,
            cutoff=opts["cutoff"],
            budget_s=opts["budget_s"],
            k=opts["k"],
            seed=opts["seed"],
            max_trials=opts["max_trials"],
            item_features=items,
            user_features=data.user_features,
            buy_again=opts["buy_again"],
            on_progress=lambda done, total: self.stderr.write(f"  {done}/{total} algorithms"),
        )
        elapsed = time.perf_counter() - started
        self._print(result, opts["k"], elapsed)
        if opts["json_out"] is not None:
            report = {**result.to_dict(), "elapsed_s": round(elapsed, 2), "k": opts["k"]}
            opts["json_out"].parent.mkdir(parents=True, exist_ok=True)
            opts["json_out"].write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
            self.stdout.write(f"wrote {opts['json_out']}")

    def _algorithms(self, names: str | None) -> dict:
        if not names:
            return dict(ALGORITHMS)
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in ALGORITHMS]
        if unknown:
            raise CommandError(
                f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(ALGORITHMS)}"
            )
        return {n: ALGORITHMS[n] for n in chosen}

    def _read(self, path: Path, opts) -> io.Interactions:
        try:
            if opts["format"] == "online_retail":
                from marketing.models import DEFAULT_NON_PRODUCT_PATTERNS

                return io.read_online_retail(
                    path, non_product_patterns=DEFAULT_NON_PRODUCT_PATTERNS
                )
            return io.Interactions(io.read_interactions(path))
        except READ_ERRORS as error:
            raise CommandError(f"{path}: {error}") from None

    def _print(self, result: Comparison, k: int, elapsed: float) -> None:
        info = result.info
        self.stdout.write(
            f"split {result.split}: {info['users']:,} users × {info['items']:,} items in train, "
            f"{info['scored_users']:,} users scored on {info['targets']:,} new-item targets "
            f"({info['repeat_targets']:,} repeat targets of {info['repeat_users']:,} users); "
            f"validation scores {result.validation_info['scored_users']:,} users"
            + (f"; cutoff {info['cutoff']}" if "cutoff" in info else "")
        )
        names = [c.format(k=k, k2=2 * k) for c in COLUMNS + BEYOND]
        header = ["model", *names, "fit_s", "score_s", "trials", "params"]
        rows = []
        for name, model in result.models.items():
            cells = [name]
            cells += [_fmt(model.metrics.get(c)) for c in names]
            cells += [f"{model.fit_s:.2f}", f"{model.score_s:.2f}", str(len(model.search.trials))]
            cells.append(_params(model.params))
            rows.append(cells)
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            line = "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            self.stdout.write(line.rstrip())
        for name, reason in result.skipped.items():
            self.stdout.write(f"skipped {name}: {reason}")
        for name, model in result.models.items():
            if model.buy_again:
                self.stdout.write(f"buy-again {name}: {_summary(model.buy_again, k)}")
        for name, model in result.repeat_models.items():
            self.stdout.write(
                f"buy-again {name} (tuned on repeat purchases): {_summary(model.metrics, k)}"
                f"; fit {model.fit_s:.2f}s, score {model.score_s:.2f}s; {_params(model.params)}"
            )
        if result.buy_again_reference:
            self.stdout.write(
                f"buy-again history_frequency: {_summary(result.buy_again_reference, k)}"
            )
        self.stdout.write(
            f"best on test ({result.metric}): {result.best}; "
            f"selected on validation: {result.to_dict()['selected']}; {elapsed:.1f}s in all"
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def _params(params: dict) -> str:
    parts = []
    for name, value in params.items():
        parts.append(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts) or "-"


def _summary(values: dict[str, float], k: int) -> str:
    keys = (f"ndcg@{k}", f"recall@{k}", f"hr@{k}", f"map@{k}")
    return ", ".join(f"{key} {_fmt(values.get(key))}" for key in keys)
