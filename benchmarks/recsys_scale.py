"""Recommender scale: our ALS vs. the `implicit` library on synthetic shop data.

    .venv/bin/python benchmarks/recsys_scale.py --customers 100000 --products 20000 \\
        --events 1000000 --factors 64 --iterations 15 --k 20 --seed 7

Generates (or reuses) the synthetic data of `marketing.analytics.synthetic` in --work, turns
the events into a customer × product matrix (weights: view 1, cart 2, purchase 4; returns
left out), then in one process: fits our `recommendations.algorithms.mf.ALS` and computes
the top-k for every customer with the products they bought excluded, and does the same with
`implicit.cpu.als.AlternatingLeastSquares` (conjugate gradient, same factors, iterations,
regularization and alpha; our confidence="proportional" is implicit's c = α·r, so both fit
the same model). implicit runs with BLAS single-threaded, as it asks; it is C++ with OpenMP.
With --bpr it also times a BPR fit (default parameters).
The last line printed is JSON: {"fit_s", "score_s", "implicit_fit_s", "implicit_score_s",
"ratio_vs_implicit", "peak_rss_mb", …}; ratio = our fit + score time over implicit's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from marketing.analytics.synthetic import generate  # noqa: E402
from recommendations.algorithms.base import Dataset  # noqa: E402
from recommendations.algorithms.mf import ALS, BPR, worker_count  # noqa: E402

KIND_WEIGHTS = {"view": 1.0, "cart": 2.0, "purchase": 4.0}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load(data_dir: Path) -> tuple[Dataset, sparse.csr_matrix]:
    """The training Dataset (every customer and product) and the bought matrix."""
    customers = pd.read_csv(data_dir / "customers.csv", usecols=["customer_id"])["customer_id"]
    products = pd.read_csv(data_dir / "products.csv", usecols=["sku"])["sku"]
    events = pd.read_csv(
        data_dir / "events.csv",
        usecols=["customer_id", "sku", "kind", "occurred_at"],
        dtype={"kind": "category"},
    )
    events = events[events["kind"].isin(list(KIND_WEIGHTS))]
    frame = pd.DataFrame(
        {
            "user_id": events["customer_id"].to_numpy(),
            "item_id": events["sku"].to_numpy(),
            "timestamp": events["occurred_at"].to_numpy(),
            "weight": events["kind"].map(KIND_WEIGHTS).astype(np.float32).to_numpy(),
        }
    )
    data = Dataset.from_interactions(frame, user_ids=customers.to_numpy(), item_ids=products)
    bought = events["kind"].to_numpy() == "purchase"
    users = pd.Index(data.user_ids).get_indexer(events["customer_id"].to_numpy()[bought])
    items = pd.Index(data.item_ids).get_indexer(events["sku"].to_numpy()[bought])
    bought_matrix = sparse.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)), shape=data.matrix.shape
    )
    bought_matrix.sum_duplicates()
    return data, bought_matrix


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of list a's items that are also in list b (row by row)."""
    shared = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
    return float(shared.any(axis=2).sum() / max((a >= 0).sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--regularization", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-implicit", action="store_true")
    parser.add_argument("--bpr", action="store_true", help="also time BPR (default params)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/recsys_scale.json")
    parser.add_argument("--work", type=Path, default=ROOT / "var/bench")
    args = parser.parse_args()

    data_dir = (
        args.work / f"synthetic-{args.customers}c-{args.products}p-{args.events}e-s{args.seed}"
    )
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
    started = time.perf_counter()
    data, bought = load(data_dir)
    print(
        f"data: {data.n_users} customers × {data.n_items} products, {data.matrix.nnz} "
        f"customer×product pairs, {bought.nnz} bought pairs "
        f"(loaded in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    users = np.arange(data.n_users)
    load_before = os.getloadavg()

    model = ALS(
        seed=args.seed,
        factors=args.factors,
        iterations=args.iterations,
        regularization=args.regularization,
        alpha=args.alpha,
        confidence="proportional",
    )
    started = time.perf_counter()
    model.fit(data)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    ours = model.recommend(users, args.k, exclude=bought)
    score_s = time.perf_counter() - started
    ours_rss = peak_rss_mb()
    print(f"ours: fit {fit_s:.2f} s, top-{args.k} for all {score_s:.2f} s", flush=True)
    leaked = (
        ours.items[np.repeat(users, np.diff(bought.indptr)), :]
        == np.asarray(bought.indices)[:, None]
    )
    assert not leaked.any(), "a bought product was recommended"

    figures = {
        "customers": data.n_users,
        "products": data.n_items,
        "pairs": int(data.matrix.nnz),
        "factors": args.factors,
        "iterations": args.iterations,
        "k": args.k,
        "threads": worker_count(),
        "fit_s": round(fit_s, 3),
        "score_s": round(score_s, 3),
    }
    if not args.skip_implicit:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            peer = AlternatingLeastSquares(
                factors=args.factors,
                iterations=args.iterations,
                regularization=args.regularization,
                alpha=args.alpha,
                use_cg=True,
                random_state=args.seed,
            )
            started = time.perf_counter()
            peer.fit(data.matrix, show_progress=False)
            implicit_fit_s = time.perf_counter() - started
            started = time.perf_counter()
            theirs, _ = peer.recommend(users, bought, N=args.k, filter_already_liked_items=True)
            implicit_score_s = time.perf_counter() - started
        print(
            f"implicit: fit {implicit_fit_s:.2f} s, top-{args.k} for all {implicit_score_s:.2f} s",
            flush=True,
        )
        active = np.flatnonzero(np.diff(data.matrix.indptr) > 0)
        figures |= {
            "implicit_fit_s": round(implicit_fit_s, 3),
            "implicit_score_s": round(implicit_score_s, 3),
            "ratio_vs_implicit": round((fit_s + score_s) / (implicit_fit_s + implicit_score_s), 3),
            "overlap_with_implicit": round(overlap(ours.items[active], theirs[active]), 3),
        }
    if args.bpr:
        started = time.perf_counter()
        BPR(seed=args.seed, factors=args.factors).fit(data)
        figures["bpr_fit_s"] = round(time.perf_counter() - started, 3)
        print(f"bpr: fit {figures['bpr_fit_s']:.2f} s ({BPR.defaults})", flush=True)
    figures |= {
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_ours_mb": round(ours_rss, 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
