"""Write a realistic campaign report for an export, to try the results import without a tool.

    python manage.py campaign_results_demo --export 12 [--seed 7] [--out report.csv]

One row per recipient of the export, in the layout a campaign tool's per-recipient export
has: "Email Address" (or customer_id when a recipient has no address), tailor_variant, the
opens and clicks as counts, "Placed Order", "Revenue", "Send Time" and "First Click". Every
tool differs in its columns; the import's mapping step recognises these. The rates differ by
variant (variant 1 does a little better), so the results page has something to compare.
Same export and seed, same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from copygen.models import Export, ExportRecipient

# Per variant: chance to open, to click once opened, to buy once clicked.
RATES = {1: (0.42, 0.30, 0.22), 2: (0.36, 0.24, 0.18), 3: (0.33, 0.20, 0.15)}
DEFAULT_RATES = (0.30, 0.18, 0.12)
_UTC = "%Y-%m-%dT%H:%M:%SZ"


def demo_report(recipients: pd.DataFrame, *, seed: int, sent_at: dt.datetime) -> pd.DataFrame:
    """The report for ``recipients`` (columns external_id, email, variant); pure."""
    rng = np.random.default_rng(seed)
    n = len(recipients)
    rates = np.array([RATES.get(int(v), DEFAULT_RATES) for v in recipients["variant"]])
    rates = rates.reshape(n, 3)
    opened = rng.random(n) < rates[:, 0]
    clicked = opened & (rng.random(n) < rates[:, 1])
    bought = clicked & (rng.random(n) < rates[:, 2])
    opens = np.where(opened, rng.integers(1, 6, n), 0)
    clicks = np.where(clicked, rng.integers(1, 4, n), 0)
    revenue = np.where(bought, np.round(rng.gamma(3.0, 15.0, n) + 5, 2), np.nan)
    minutes = rng.integers(5, 72 * 60, n)
    sent_at = sent_at.astimezone(dt.UTC)
    first_click = [
        (sent_at + dt.timedelta(minutes=int(m))).strftime(_UTC) if c else ""
        for m, c in zip(minutes, clicked, strict=True)
    ]
    email = recipients["email"].fillna("").to_numpy(dtype=object)
    frame = pd.DataFrame(
        {
            "Email Address": email,
            "customer_id": np.where(email == "", recipients["external_id"], ""),
            "tailor_variant": recipients["variant"].to_numpy(),
            "Opens": opens,
            "Clicks": clicks,
            "Placed Order": np.where(bought, "yes", "no"),
            "Revenue": [f"{v:.2f}" if v == v else "" for v in revenue],
            "Send Time": sent_at.strftime(_UTC),
            "First Click": first_click,
        }
    )
    if not (frame["customer_id"] != "").any():
        frame = frame.drop(columns="customer_id")
    return frame


class Command(BaseCommand):
    help = "Write a realistic per-recipient campaign report (CSV) for an export."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--export", type=int, required=True, help="the export's id")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--out", type=Path, default=None, help="default: stdout")

    def handle(self, *args, export: int, seed: int, out: Path | None, **options) -> None:
        found = Export.objects.filter(pk=export).first()
        if found is None or not found.finished_at:
            raise CommandError(f"export #{export} does not exist or has not finished")
        recipients = pd.DataFrame.from_records(
            ExportRecipient.objects.filter(export=found)
            .order_by("customer_id")
            .values_list("customer__external_id", "customer__email", "variant"),
            columns=["external_id", "email", "variant"],
        )
        text = demo_report(recipients, seed=seed, sent_at=found.finished_at).to_csv(index=False)
        if out is None:
            self.stdout.write(text, ending="")
        else:
            out.write_text(text, encoding="utf-8")
            self.stdout.write(f"wrote {len(recipients):,} rows to {out}")
