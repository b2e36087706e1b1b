"""Our recommenders vs. the public libraries `implicit` and `cornac`, side by side.

    .venv/bin/python benchmarks/recsys_vs_peers.py \\
        --dataset ../shared/datasets/uci_online_retail/online_retail.csv.gz --split lastday
    .venv/bin/python benchmarks/recsys_vs_peers.py --synthetic \\
        --customers 20000 --products 5000 --events 1000000

One run, one split, one protocol for everybody: `recommendations.evaluation.tuning.compare`
(outer split, validation carved from train, a time-budgeted random search per algorithm on
validation with the same --budget-s and seed for every algorithm, refit on train, test
metrics). The peers are wrapped as `Recommender`s here, not in the product:

* implicit_als  — `implicit.cpu.als.AlternatingLeastSquares` (factors, regularization, alpha,
  iterations);
* implicit_bm25 — `implicit.nearest_neighbours.BM25Recommender` (K, K1, B);
* cornac_ease   — `cornac.models.EASE` (lamb, posB).

Each peer's search starts from the library's own defaults and also chooses its input
(`values`: the summed weights as given, or binary), as a user of the library would. The
implicit models make their top-k lists with the library's batch `recommend(…,
filter_already_liked_items=True)`, so their speed is their own; cornac_ease scores a block
of users with the library's `EASE.score` (U[users]·B) and shares our top-k with exclusion.

"ours_best" / "peer_best" are the models the product's automatic choice (`select_best`)
takes in each group, from VALIDATION only, never test: the one-standard-error rule — the
cheapest model (validation fit + scoring seconds, "val cost_s") whose validation ndcg@k is
within one standard error of the group's best (paired over the same validation customers);
their test ndcg@k are compared (ratio = ours / peer). Fit + top-k
time: after the comparison, the two selected models are refitted on the outer train and make
the top-2k lists of every test user again, alternately, --repeats times; the medians are
"ours_fit_score_s" / "peer_fit_score_s" (the machine is shared, one measurement is noisy; the
table also shows each model's single fit_s / score_s from the comparison).

Threads: every model gets the same budget, --threads (default: the CPUs this process may
use). The process is pinned to that many CPUs, BLAS/OpenMP pools are capped at it, implicit
runs with num_threads=--threads and single-threaded BLAS during its fit (as it asks), our
ALS/BPR use one worker per CPU with BLAS single-threaded, EASE-like models (ours and cornac)
use BLAS with --threads.

Data: --dataset takes the UCI Online Retail invoice file (detected by its header, or
--format online_retail; item titles/prices and customer countries come along) or a plain
interactions CSV `user_id,item_id,timestamp[,weight][,basket]` (+ --items for item
features). --synthetic generates shop data (`marketing.analytics.synthetic`, reused from
--work) and benchmarks its purchases the way the product trains on them (weight 1, basket =
order), with the product file as item features.

Prints the data, a line per algorithm as it finishes, the full table, and as last line JSON:
{"dataset", "ours_best", "ours_ndcg10", "peer_best", "peer_ndcg10", "ratio",
"ours_fit_score_s", "peer_fit_score_s", …}; the whole report goes to --json.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommendations.algorithms.base import Dataset, Progress, Recommender, TopK  # noqa: E402
from recommendations.evaluation import io  # noqa: E402
from recommendations.evaluation.scoring import score_lists  # noqa: E402
from recommendations.evaluation.splits import SPLITS, make_split, split_frame  # noqa: E402
from recommendations.evaluation.tuning import Comparison, ModelResult, compare, select_best  # noqa: E402

try:
    from cornac.data import Dataset as CornacDataset
    from cornac.models import EASE as CornacEASE
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import BM25Recommender
except ImportError as error:  # pragma: no cover - depends on the environment
    raise SystemExit(f"{error}: install the peers with pip install -e '.[bench]'") from None


# implicit's BM25 hands its own COO weighting to its kNN and warns about the conversion.
warnings.filterwarnings("ignore", message="Method expects CSR input")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ----------------------------------------------------------------------------- the peers


def peer_input(matrix: sparse.csr_matrix, values: str) -> sparse.csr_matrix:
    """The users×items matrix a peer is fitted on: the summed weights, or binary."""
    out = sparse.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    if values == "binary":
        out.data[:] = 1.0
    elif values != "count":
        raise ValueError(f"values must be 'count' or 'binary', not {values!r}")
    return out


class Peer(Recommender):
    """A public library's model behind our interface (benchmark only)."""

    threads: ClassVar[int] = 1  # set by main() from --threads, the same for every model
    library: ClassVar[str] = ""
    matrix: sparse.csr_matrix


class ImplicitPeer(Peer):
    """implicit makes its own top-k lists, filtering the user's training items."""

    model: Any

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        *,
        exclude: sparse.csr_matrix | None | bool = True,
        allowed: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> TopK:
        if exclude is not True or allowed is not None:  # not what the library offers
            return super().recommend(
                users, k, exclude=exclude, allowed=allowed, block_size=block_size
            )
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        ids, scores = self.model.recommend(
            users, self.matrix[users], N=k, filter_already_liked_items=True
        )
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        scores[ids < 0] = -np.inf
        return TopK(ids, scores)


class ImplicitALS(ImplicitPeer):
    name = "implicit_als"
    library = "implicit"
    defaults: ClassVar[dict[str, Any]] = {
        "factors": 100,
        "regularization": 0.01,
        "alpha": 1.0,
        "iterations": 15,
        "values": "count",
    }
    space: ClassVar[dict[str, Any]] = {
        "factors": [32, 64, 128, 256],
        "regularization": ("log", 1e-3, 100.0),
        "alpha": ("log", 0.1, 100.0),
        "iterations": ("int", 5, 30),
        "values": ["count", "binary"],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        self.matrix = peer_input(data.matrix, p["values"])
        with threadpool_limits(1, "blas"):  # implicit asks for it (checked at construction)
            self.model = AlternatingLeastSquares(
                factors=int(p["factors"]),
                regularization=float(p["regularization"]),
                alpha=float(p["alpha"]),
                iterations=int(p["iterations"]),
                num_threads=self.threads,
                random_state=self.seed,
            )
            self.model.fit(self.matrix, show_progress=False)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return self.model.user_factors[users] @ self.model.item_factors.T


class ImplicitBM25(ImplicitPeer):
    name = "implicit_bm25"
    library = "implicit"
    defaults: ClassVar[dict[str, Any]] = {"K": 20, "K1": 1.2, "B": 0.75, "values": "count"}
    space: ClassVar[dict[str, Any]] = {
        "K": [10, 20, 50, 100, 200, 500, 1000],
        "K1": ("log", 0.1, 20.0),
        "B": ("float", 0.0, 1.0),
        "values": ["count", "binary"],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        self.matrix = peer_input(data.matrix, p["values"])
        self.model = BM25Recommender(
            K=int(p["K"]), K1=float(p["K1"]), B=float(p["B"]), num_threads=self.threads
        )
        self.model.fit(self.matrix, show_progress=False)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        return (self.matrix[users] @ self.model.similarity).toarray()


class CornacEASEPeer(Peer):
    name = "cornac_ease"
    library = "cornac"
    defaults: ClassVar[dict[str, Any]] = {"lamb": 500.0, "posB": True, "values": "count"}
    space: ClassVar[dict[str, Any]] = {
        "lamb": ("log", 1.0, 10_000.0),
        "posB": [True, False],
        "values": ["count", "binary"],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        self.matrix = peer_input(data.matrix, p["values"])
        coo = self.matrix.tocoo()
        train_set = CornacDataset(
            num_users=data.n_users,
            num_items=data.n_items,
            uid_map={u: u for u in range(data.n_users)},
            iid_map={i: i for i in range(data.n_items)},
            uir_tuple=(coo.row, coo.col, coo.data),
            seed=self.seed,
        )
        self.model = CornacEASE(
            lamb=float(p["lamb"]), posB=bool(p["posB"]), verbose=False, seed=self.seed
        )
        self.model.fit(train_set)

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        # EASE.score(user) is U[user]·B for one user; the same product for a block of users.
        return np.asarray(self.model.U[users] @ self.model.B, dtype=np.float32)


PEERS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (ImplicitALS, ImplicitBM25, CornacEASEPeer)
}


# ----------------------------------------------------------------------------- data


def detect_format(path: Path) -> str:
    """ "online_retail" when the header has the UCI invoice columns, else "csv"."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
        header = {c.strip() for c in handle.readline().split(",")}
    return "online_retail" if {"InvoiceNo", "StockCode", "CustomerID"} <= header else "csv"


def synthetic_dataset(args: argparse.Namespace) -> tuple[Path, Path]:
    """Generate (or reuse) synthetic shop data; write its purchases as an interactions CSV
    (weight 1, basket = order, as the product trains) and its products as an items file."""
    from marketing.analytics.synthetic import generate

    name = f"synthetic-{args.customers}c-{args.products}p-{args.events}e-s{args.seed}"
    data_dir = args.work / name
    interactions, items = data_dir / "interactions.csv", data_dir / "items.csv"
    if interactions.exists() and items.exists():
        return interactions, items
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
    events = pd.read_csv(
        data_dir / "events.csv",
        usecols=["customer_id", "sku", "kind", "quantity", "occurred_at", "source"],
        dtype={"customer_id": str, "sku": str, "source": str},
    )
    bought = events[(events["kind"] == "purchase") & (events["quantity"] > 0)]
    pd.DataFrame(
        {
            "user_id": bought["customer_id"],
            "item_id": bought["sku"],
            "timestamp": bought["occurred_at"],
            "weight": 1.0,
            "basket": bought["source"],
        }
    ).to_csv(interactions, index=False)
    products = pd.read_csv(data_dir / "products.csv", dtype={"sku": str})
    products = products.rename(columns={"sku": "item_id"})
    columns = ["item_id", "title", "description", "category", "brand", "price"]
    products[[c for c in columns if c in products]].to_csv(items, index=False)
    return interactions, items


def load(args: argparse.Namespace) -> tuple[str, io.Interactions]:
    """(dataset label, interactions with whatever features the file has)."""
    if args.synthetic:
        path, items_path = synthetic_dataset(args)
        label = path.parent.name
    else:
        path, items_path, label = args.dataset, args.items, str(args.dataset)
    fmt = detect_format(path) if args.format == "auto" else args.format
    if fmt == "online_retail":
        data = io.read_online_retail(path)
    else:
        data = io.Interactions(io.read_interactions(path))
    if items_path is not None:
        data = io.Interactions(data.frame, io.read_items(items_path), data.user_features)
    return label, data


def slug(label: str) -> str:
    name = Path(label).name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# ----------------------------------------------------------------------------- timing


def time_fit_score(
    cls: type[Recommender], params: dict[str, Any], outer, users: np.ndarray, k: int, seed: int
) -> tuple[float, float, float]:
    """(fit s, top-2k s, test ndcg@k) of one refit on the outer train, as compare() times
    its final models (lists of length 2k, for recall@2k)."""
    gc.collect()
    started = time.perf_counter()
    model = cls(seed=seed, **params).fit(outer.train)
    fitted = time.perf_counter()
    top = model.recommend(users, 2 * k)
    scored = time.perf_counter()
    ndcg = score_lists(top.items, outer, users, k_values=(k,), beyond=False).metrics[f"ndcg@{k}"]
    return fitted - started, scored - fitted, ndcg


def head_to_head(
    chosen: dict[str, tuple[type[Recommender], ModelResult]],
    outer,
    *,
    k: int,
    seed: int,
    repeats: int,
) -> dict[str, dict[str, Any]]:
    """Refit and list the selected models alternately ``repeats`` times; medians."""
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in chosen}
    users = outer.users
    for _ in range(repeats):
        for name, (cls, result) in chosen.items():
            runs[name].append(time_fit_score(cls, result.params, outer, users, k, seed))
    out = {}
    for name, values in runs.items():
        out[name] = {
            "fit_s": statistics.median(v[0] for v in values),
            "score_s": statistics.median(v[1] for v in values),
            "fit_score_s": statistics.median(v[0] + v[1] for v in values),
            "all_fit_score_s": [round(v[0] + v[1], 3) for v in values],
            "ndcg": values[-1][2],
        }
    return out


# ----------------------------------------------------------------------------- report


def table(result: Comparison, groups: dict[str, str], k: int, marked: set[str]) -> list[str]:
    ndcg, recall = f"ndcg@{k}", f"recall@{2 * k}"
    head = (
        f"{'':1} {'model':<20} {'group':<5} {'val ' + ndcg:>12} {'val cost_s':>10} "
        f"{'test ' + ndcg:>13} {recall:>9} {'fit_s':>7} {'score_s':>7} {'trials':>6}  params"
    )
    lines = [head, "-" * len(head)]
    rows = sorted(result.models.values(), key=lambda m: -m.search.best_score)
    for m in rows:
        params = ", ".join(f"{n}={_short(v)}" for n, v in m.params.items())
        lines.append(
            f"{'*' if m.name in marked else '':1} {m.name:<20} {groups[m.name]:<5} "
            f"{m.search.best_score:>12.4f} {m.search.cost_s:>10.2f} "
            f"{m.metrics.get(ndcg, float('nan')):>13.4f} "
            f"{m.metrics.get(recall, float('nan')):>9.4f} {m.fit_s:>7.2f} {m.score_s:>7.2f} "
            f"{len(m.search.trials):>6}  {params}"
        )
    for name, reason in result.skipped.items():
        lines.append(f"  {name:<20} {groups.get(name, ''):<5} skipped: {reason}")
    return lines


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def ours_default(algorithms: dict[str, type[Recommender]]) -> dict[str, type[Recommender]]:
    """Every registered model that recommends new items (buy-again models are scored on
    repeat purchases and cannot be compared on this task)."""
    return {n: c for n, c in algorithms.items() if not c.recommends_seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="UCI invoice file or interactions CSV")
    source.add_argument("--synthetic", action="store_true", help="generate shop data instead")
    parser.add_argument("--format", choices=("auto", "csv", "online_retail"), default="auto")
    parser.add_argument("--items", type=Path, help="item features (item_id,title,…) for a CSV")
    parser.add_argument("--split", choices=SPLITS, default="lastday")
    parser.add_argument("--cutoff", type=float, help="--split global: quantile (default 0.9)")
    parser.add_argument("--algorithms", help="ours, comma-separated (default: all but buy-again)")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--budget-s", type=float, default=120.0, help="tuning s per algorithm")
    parser.add_argument("--max-tuning-users", type=int, help="validation users sampled")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="threads per model (default: all CPUs)")
    parser.add_argument("--repeats", type=int, default=3, help="head-to-head timing repeats")
    parser.add_argument("--customers", type=int, default=20_000, help="--synthetic")
    parser.add_argument("--products", type=int, default=5_000, help="--synthetic")
    parser.add_argument("--events", type=int, default=1_000_000, help="--synthetic")
    parser.add_argument("--work", type=Path, default=ROOT / "var/bench")
    parser.add_argument("--json", type=Path, help="default benchmarks/results/<name>.json")
    args = parser.parse_args()

    from recommendations.algorithms.registry import ALGORITHMS

    if args.algorithms:
        names = [n.strip() for n in args.algorithms.split(",") if n.strip()]
        unknown = [n for n in names if n not in ALGORITHMS]
        if unknown:
            parser.error(f"unknown algorithm(s) {unknown}; known: {', '.join(ALGORITHMS)}")
        ours = {n: ALGORITHMS[n] for n in names}
    else:
        ours = ours_default(ALGORITHMS)
    peer_names = [n.strip() for n in args.peers.split(",") if n.strip()]
    if not peer_names or any(n not in PEERS for n in peer_names):
        parser.error(f"--peers: choose from {', '.join(PEERS)}")
    peers = {n: PEERS[n] for n in peer_names}

    cpus = sorted(os.sched_getaffinity(0))
    threads = args.threads or len(cpus)
    if not 1 <= threads <= len(cpus):
        parser.error(f"--threads must be between 1 and {len(cpus)}")
    os.sched_setaffinity(0, cpus[:threads])
    Peer.threads = threads

    started = time.perf_counter()
    label, data = load(args)
    frame = data.frame
    print(
        f"data: {label}: {len(frame):,} interactions, {frame['user_id'].nunique():,} users, "
        f"{frame['item_id'].nunique():,} items (read in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    print(
        f"split {args.split}, budget {args.budget_s:g} s per algorithm, seed {args.seed}, "
        f"{threads} thread(s) per model; ours: {', '.join(ours)}; peers: {', '.join(peers)}",
        flush=True,
    )
    groups = {**dict.fromkeys(ours, "ours"), **dict.fromkeys(peers, "peer")}
    order = list(ours) + list(peers)
    load_before = os.getloadavg()
    clock = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"  [{done}/{total}] {order[done - 1]} done at {time.perf_counter() - clock:.0f} s")

    with threadpool_limits(threads):
        result = compare(
            {**ours, **peers},
            frame,
            split=args.split,
            cutoff=args.cutoff,
            budget_s=args.budget_s,
            k=args.k,
            seed=args.seed,
            max_tuning_users=args.max_tuning_users,
            item_features=data.item_features,
            user_features=data.user_features,
            on_progress=progress,
        )
        ours_best = select_best([m for n, m in result.models.items() if groups[n] == "ours"])
        peer_best = select_best([m for n, m in result.models.items() if groups[n] == "peer"])
        if ours_best is None or peer_best is None:
            raise SystemExit(f"nothing to compare: ours {ours_best}, peer {peer_best}")
        # The same outer split compare() used (deterministic), for the head-to-head timing.
        train, test = split_frame(frame, args.split, args.cutoff)
        outer = make_split(
            train,
            test,
            name=args.split,
            item_features=data.item_features,
            user_features=data.user_features,
        )
        classes = {**ours, **peers}
        timing = head_to_head(
            {n: (classes[n], result.models[n]) for n in (ours_best, peer_best)},
            outer,
            k=args.k,
            seed=args.seed,
            repeats=args.repeats,
        )
    load_after = os.getloadavg()

    ndcg = f"ndcg@{args.k}"
    best_test = {
        group: max(
            (m for n, m in result.models.items() if groups[n] == group),
            key=lambda m: m.metrics.get(ndcg, -1.0),
        ).name
        for group in ("ours", "peer")
    }
    print()
    print("\n".join(table(result, groups, args.k, {ours_best, peer_best})))
    print(
        f"(* = selected on validation, one-SE rule; best on test: ours {best_test['ours']}, "
        f"peer {best_test['peer']})"
    )
    for name in (ours_best, peer_best):
        t = timing[name]
        print(
            f"head-to-head {name}: fit {t['fit_s']:.2f} s + top-{2 * args.k} {t['score_s']:.2f} s"
            f" = {t['fit_score_s']:.2f} s (median of {args.repeats}: {t['all_fit_score_s']}); "
            f"test {ndcg} {t['ndcg']:.4f}"
        )
    ours_ndcg = result.models[ours_best].metrics[ndcg]
    peer_ndcg = result.models[peer_best].metrics[ndcg]
    summary = {
        "dataset": label,
        "ours_best": ours_best,
        "ours_ndcg10": round(ours_ndcg, 4),
        "peer_best": peer_best,
        "peer_ndcg10": round(peer_ndcg, 4),
        "ratio": round(ours_ndcg / peer_ndcg, 3) if peer_ndcg > 0 else None,
        "ours_fit_score_s": round(timing[ours_best]["fit_score_s"], 3),
        "peer_fit_score_s": round(timing[peer_best]["fit_score_s"], 3),
        "split": args.split,
        "budget_s": args.budget_s,
        "threads": threads,
        "seed": args.seed,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    report = {
        **summary,
        "groups": groups,
        "best_on_test": best_test,
        "head_to_head": timing,
        "comparison": result.to_dict(),
    }
    out = args.json or ROOT / f"benchmarks/results/recsys_vs_peers-{slug(label)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
