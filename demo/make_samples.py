"""Make the demo samples shipped in demo/ from the full public datasets.

Tailor's users do not have the full files, so the demo ships small samples. Rows are
copied byte for byte from the source (same header, same quoting, same order), because
the demo must show the real quirks the importer deals with: cancellations, postage and
fee lines, zero prices, missing descriptions, exact duplicates, multi-line reviews.

Usage (deterministic: the same inputs and seed give the same bytes):

    .venv/bin/python demo/make_samples.py \\
        --retail /path/to/uci_online_retail/online_retail.csv.gz \\
        --reviews /path/to/womens_clothing_reviews/womens_clothing_ecommerce_reviews.csv.gz

Online Retail: every row of a random set of customers (non-UK customers weighted up, and
every country keeps a few customers), plus the same share of the anonymous (no CustomerID)
invoices, whole invoices only. If a quirk the importer must handle is then missing,
the smallest source invoice that shows it is added. Reviews: a uniform random sample.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RETAIL_OUT = "online_retail_sample.csv.gz"
REVIEWS_OUT = "clothing_reviews_sample.csv.gz"

# Quirks the demo must show. Each is a predicate over the string-typed source frame; if
# the sample lacks it, the smallest invoice that has it is added.
RETAIL_QUIRKS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "cancellation (C invoice)": lambda d: d.InvoiceNo.str.startswith("C"),
    "bad-debt adjustment (A invoice)": lambda d: d.InvoiceNo.str.startswith("A"),
    "zero price": lambda d: d.UnitPrice.astype(float) == 0,
    "negative price": lambda d: d.UnitPrice.astype(float) < 0,
    "missing description": lambda d: d.Description == "",
    "stock adjustment (negative quantity, no C)": lambda d: (
        (d.Quantity.astype(int) < 0) & ~d.InvoiceNo.str.startswith("C")
    ),
    "exact duplicate line": lambda d: d.duplicated(keep=False),
    "anonymous cancellation": lambda d: d.InvoiceNo.str.startswith("C") & (d.CustomerID == ""),
    **{
        f"code {code}": (lambda c: lambda d: d.StockCode == c)(code)
        for code in [
            "POST",
            "DOT",
            "M",
            "m",
            "D",
            "C2",
            "S",
            "B",
            "CRUK",
            "PADS",
            "BANK CHARGES",
            "AMAZONFEE",
        ]
    },
    "code DCGS…": lambda d: d.StockCode.str.startswith("DCGS"),
    "code gift_…": lambda d: d.StockCode.str.startswith("gift_"),
}


def read_records(path: Path) -> tuple[str, list[str]]:
    """Return the header line and every CSV record as its exact source text.

    A record may span several physical lines (quoted fields with embedded newlines), so
    lines are joined until the double quotes balance. Nothing is re-encoded.
    """
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        header = f.readline()
        records: list[str] = []
        pending = ""
        for line in f:
            pending += line
            if pending.count('"') % 2 == 0:
                records.append(pending)
                pending = ""
    if pending:
        raise ValueError(f"{path}: unbalanced quotes at end of file")
    return header, records


def read_frame(path: Path, records: list[str]) -> pd.DataFrame:
    """Parse the file with pandas (all strings) and check it lines up with the raw records."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if len(frame) != len(records):
        raise ValueError(f"{path}: pandas read {len(frame)} rows, raw split {len(records)}")
    first = frame.iloc[:, 0].to_numpy()
    raw_first = np.array([r.split(",", 1)[0] for r in records], dtype=object)
    if not (first == raw_first).all():
        raise ValueError(f"{path}: raw records and parsed rows do not line up")
    return frame


def write_gzip(path: Path, header: str, records: Iterator[str] | list[str]) -> None:
    """Write text as gzip with no timestamp or name in the header, so reruns are identical."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(header.encode("utf-8"))
        for record in records:
            gz.write(record.encode("utf-8"))


def sample_retail(
    frame: pd.DataFrame,
    *,
    customers: int,
    per_country: int,
    abroad_weight: float,
    seed: int,
) -> tuple[np.ndarray, dict[str, object]]:
    """Choose row positions for the Online Retail sample; returns them (sorted) and notes."""
    rng = np.random.default_rng(seed)
    known = frame[frame.CustomerID != ""]
    # A few customers appear under two countries; use the one most of their rows carry.
    home = (
        known.groupby(["CustomerID", "Country"]).size().sort_values(ascending=False, kind="stable")
    )
    home = home.reset_index().drop_duplicates("CustomerID").set_index("CustomerID").Country
    home = home.sort_index()
    ids = home.index.to_numpy()
    countries = home.to_numpy()
    # Weighted sampling without replacement (Efraimidis-Spirakis keys u ** (1 / w)):
    # customers outside the UK count `abroad_weight` times, so Germany, France, Spain…
    # have enough customers for per-country views; UK still dominates, as in the source.
    weights = np.where(countries == "United Kingdom", 1.0, abroad_weight)
    keys = rng.random(len(ids)) ** (1.0 / weights)
    ranked = pd.DataFrame({"id": ids, "country": countries, "key": keys})
    ranked = ranked.sort_values("key", ascending=False, kind="stable")

    chosen: set[str] = set()
    for country, group in ranked.groupby("country", sort=True):
        if country != "United Kingdom":  # every country keeps a few customers
            chosen.update(group.id.iloc[:per_country])
    for cid in ranked.id:
        if len(chosen) >= customers:
            break
        chosen.add(cid)

    invoice_customer = frame.groupby("InvoiceNo", sort=True).CustomerID.first()
    anonymous = invoice_customer[invoice_customer == ""].index.to_numpy()
    share = len(chosen) / len(ids)
    n_anon = round(share * len(anonymous))
    anon_chosen = set(rng.choice(anonymous, size=n_anon, replace=False).tolist())

    keep = frame.CustomerID.isin(chosen) | frame.InvoiceNo.isin(anon_chosen)
    invoice_sizes = frame.groupby("InvoiceNo", sort=False).size()
    added: dict[str, str] = {}
    for name, predicate in RETAIL_QUIRKS.items():
        hits = predicate(frame)
        if (hits & keep).any():
            continue
        candidates = invoice_sizes.loc[frame.InvoiceNo[hits].unique()]
        invoice = candidates.sort_values(kind="stable").index[0]
        added[name] = invoice
        keep |= frame.InvoiceNo == invoice

    rows = np.flatnonzero(keep.to_numpy())
    sample = frame.iloc[rows]
    notes: dict[str, object] = {
        "rows": len(rows),
        "customers": sample.CustomerID[sample.CustomerID != ""].nunique(),
        "anonymous invoices": sample.InvoiceNo[sample.CustomerID == ""].nunique(),
        "invoices": sample.InvoiceNo.nunique(),
        "countries": sample.Country.nunique(),
        "non-UK customers": sample[
            (sample.CustomerID != "") & (sample.Country != "United Kingdom")
        ].CustomerID.nunique(),
        "quirk invoices added": added,
        "quirk rows": {name: int(pred(sample).sum()) for name, pred in RETAIL_QUIRKS.items()},
    }
    return rows, notes


def sample_reviews(frame: pd.DataFrame, *, size: int, seed: int) -> np.ndarray:
    """Uniform random rows (sorted back into source order)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(frame), size=min(size, len(frame)), replace=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--retail", type=Path, required=True, help="online_retail.csv.gz")
    parser.add_argument("--reviews", type=Path, required=True, help="womens_clothing…csv.gz")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: demo/)")
    parser.add_argument("--seed", type=int, default=352)
    parser.add_argument("--customers", type=int, default=700)
    parser.add_argument("--per-country", type=int, default=3)
    parser.add_argument("--abroad-weight", type=float, default=3.0)
    parser.add_argument("--review-rows", type=int, default=3000)
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    header, records = read_records(args.retail)
    frame = read_frame(args.retail, records)
    rows, notes = sample_retail(
        frame,
        customers=args.customers,
        per_country=args.per_country,
        abroad_weight=args.abroad_weight,
        seed=args.seed,
    )
    write_gzip(out / RETAIL_OUT, header, (records[i] for i in rows))
    sys.stdout.write(f"{out / RETAIL_OUT}: {(out / RETAIL_OUT).stat().st_size:,} bytes\n")
    for key, value in notes.items():
        sys.stdout.write(f"  {key}: {value}\n")

    header, records = read_records(args.reviews)
    frame = read_frame(args.reviews, records)
    rows = sample_reviews(frame, size=args.review_rows, seed=args.seed)
    write_gzip(out / REVIEWS_OUT, header, (records[i] for i in rows))
    sample = frame.iloc[rows]
    sys.stdout.write(f"{out / REVIEWS_OUT}: {(out / REVIEWS_OUT).stat().st_size:,} bytes\n")
    sys.stdout.write(f"  rows: {len(rows)}\n")
    sys.stdout.write(f"  ratings: {sample.Rating.value_counts().sort_index().to_dict()}\n")
    sys.stdout.write(f"  products: {sample['Clothing ID'].nunique()}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
