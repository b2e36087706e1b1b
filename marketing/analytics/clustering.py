"""Learned segments: k-means on standardised behaviour, each cluster described in words.

Input is the profiles frame from `compute_profiles` (optionally with ``clv_12m`` /
``churn_probability`` joined on, which are ignored here). Only customers with at least one
purchase are clustered; the others get label -1 ("no purchases yet"), because recency,
spend and basket size do not exist for them.

Features (`segment_feature_names` lists them for the UI):

- ``log_recency`` = log1p(recency_days), ``log_frequency`` = log1p(frequency),
  ``log_monetary`` = log1p(max(monetary, 0)), ``log_aov`` = log1p(aov),
  ``return_rate`` (units), ``log_price_ratio`` = log(price_ratio) (0 = the category
  median when unknown);
- ``share:<category>``: the customer's share of purchase value in each of the
  ``top_categories`` categories with the most buyers (from the profile's top-3 list, so a
  category outside a customer's top 3 counts as 0); the block is down-weighted to count
  like two features together, so a 6-category catalog does not drown RFM;
- optional numeric customer attributes (``attributes=("loyalty_points",)``) — sensitive
  ones are removed by `sensitive.strip_sensitive` and listed in
  ``features.dropped_sensitive``, never used.

Each column is standardised (z-scores clipped to ±4 so a handful of wholesalers do not
become their own clusters). k is chosen in ``k_range`` by the silhouette score on a
seeded sample; clusters are numbered by size (0 = largest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from .sensitive import (
    FeatureReport,
    feature_report,
    is_sensitive,
    normalise_name,
    strip_sensitive,
)

Progress = Callable[[int, int], None]

BEHAVIOUR_FEATURES = (
    "log_recency",
    "log_frequency",
    "log_monetary",
    "log_aov",
    "return_rate",
    "log_price_ratio",
)
Z_CLIP = 4.0
MIN_PHRASE_Z = 0.3  # a centre this many SDs from the population mean earns a phrase
MIN_CUSTOMERS = 30


@dataclass(frozen=True)
class Cluster:
    label: int
    size: int
    share: float  # of clustered customers
    description: str  # "high spend · lapsed 90+ days · mostly Kitchen"
    phrases: tuple[str, ...]  # most distinctive first
    summary: dict[str, float]  # medians in real units: recency_days, frequency, monetary…
    z: dict[str, float]  # centre in standard deviations from the population mean


@dataclass(frozen=True)
class SegmentModel:
    """Enough to place new profiles into the learned clusters without refitting."""

    columns: tuple[str, ...]
    categories: tuple[str, ...]
    attributes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    centres: np.ndarray  # in the weighted, standardised space; row = label


@dataclass(frozen=True)
class SegmentationResult:
    labels: pd.Series  # index customer_id -> label (-1 = no purchases / not clustered)
    clusters: tuple[Cluster, ...]
    k: int
    scores: dict[int, float]  # silhouette per k tried
    metric: str
    features: FeatureReport
    available: bool  # False: too few buyers to cluster; everyone in one group
    reason: str
    seed: int
    model: SegmentModel | None = field(default=None, repr=False)


# --------------------------------------------------------------------------- features


def _top_category_names(profiles: pd.DataFrame, n: int) -> list[str]:
    """The n categories in the most buyers' top-3 lists (ties alphabetical)."""
    if n <= 0 or "top_categories" not in profiles.columns:
        return []
    counts: dict[str, int] = {}
    bought = profiles["frequency"].to_numpy() > 0
    for lst in profiles["top_categories"].to_numpy()[bought]:
        for item in lst or ():
            counts[item["name"]] = counts.get(item["name"], 0) + 1
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _category_shares(profiles: pd.DataFrame, names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(profiles), len(names)))
    for row, lst in enumerate(profiles["top_categories"].to_numpy()):
        for item in lst or ():
            col = index.get(item["name"])
            if col is not None:
                out[row, col] = item["share"]
    return out


def _attribute_matrix(
    customers: pd.DataFrame | None, ids: np.ndarray, attributes: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Numeric attribute columns (top-level column or key of ``attributes``) for ``ids``."""
    if customers is None or not attributes:
        return np.zeros((ids.size, 0)), []
    src = customers.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    src.index = src.index.astype(np.int64)
    src = src.reindex(ids)
    cols, names = [], []
    for name in attributes:
        if name in src.columns:
            values = src[name]
        elif "attributes" in src.columns:
            values = src["attributes"].map(
                lambda a, k=name: a.get(k) if isinstance(a, dict) else None
            )
        else:
            continue
        numeric = pd.to_numeric(values, errors="coerce").astype(np.float64)
        if numeric.notna().any():
            cols.append(numeric.fillna(numeric.median()).to_numpy())
            names.append("attr_" + normalise_name(name))
    if not cols:
        return np.zeros((ids.size, 0)), []
    return np.column_stack(cols), names


def _behaviour(profiles: pd.DataFrame) -> np.ndarray:
    rec = pd.to_numeric(profiles["recency_days"], errors="coerce").to_numpy(np.float64)
    freq = profiles["frequency"].to_numpy(np.float64)
    mon = profiles["monetary"].to_numpy(np.float64)
    aov = profiles["aov"].to_numpy(np.float64)
    rr = profiles["return_rate"].to_numpy(np.float64)
    ratio = profiles["price_ratio"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(ratio > 0, np.log(ratio), 0.0)
    return np.column_stack(
        [
            np.log1p(np.clip(np.nan_to_num(rec), 0, None)),
            np.log1p(freq),
            np.log1p(np.clip(mon, 0, None)),
            np.log1p(np.clip(np.nan_to_num(aov), 0, None)),
            np.nan_to_num(rr),
            np.nan_to_num(log_ratio),
        ]
    )


def segment_feature_names(
    profiles: pd.DataFrame,
    *,
    top_categories: int = 6,
    customers: pd.DataFrame | None = None,
    attributes: Sequence[str] = (),
    sensitive: Iterable[str] | None = None,
) -> list[str]:
    """The feature columns `learn_segments` would use with these arguments."""
    cats = _top_category_names(profiles, top_categories)
    allowed = _allowed_attributes(customers, attributes, sensitive)[0]
    ids = profiles.index.to_numpy(dtype=np.int64)
    stripped = strip_sensitive(customers, sensitive).customers if customers is not None else None
    _, attr_names = _attribute_matrix(stripped, ids, allowed)
    return [*BEHAVIOUR_FEATURES, *(f"share:{c}" for c in cats), *attr_names]


def _allowed_attributes(
    customers: pd.DataFrame | None, attributes: Sequence[str], sensitive: Iterable[str] | None
) -> tuple[list[str], list[str]]:
    allowed = [a for a in attributes if not is_sensitive(a, sensitive)]
    refused = [a for a in attributes if is_sensitive(a, sensitive)]
    return allowed, refused


def _matrix(
    profiles: pd.DataFrame,
    categories: list[str],
    customers: pd.DataFrame | None,
    attributes: Sequence[str],
) -> tuple[np.ndarray, list[str], list[str]]:
    ids = profiles.index.to_numpy(dtype=np.int64)
    shares = _category_shares(profiles, categories)
    attrs, attr_names = _attribute_matrix(customers, ids, attributes)
    x = np.column_stack([_behaviour(profiles), shares, attrs])
    columns = [*BEHAVIOUR_FEATURES, *(f"share:{c}" for c in categories), *attr_names]
    return x, columns, attr_names


def _weights(columns: list[str], n_categories: int) -> np.ndarray:
    w = np.ones(len(columns))
    if n_categories:
        block = np.array([c.startswith("share:") for c in columns])
        w[block] = np.sqrt(2.0 / n_categories) if n_categories > 2 else 1.0
    return w


# --------------------------------------------------------------------------- fitting


def learn_segments(
    profiles: pd.DataFrame,
    *,
    k_range: tuple[int, int] = (3, 8),
    seed: int = 0,
    top_categories: int = 6,
    customers: pd.DataFrame | None = None,
    attributes: Sequence[str] = (),
    sensitive: Iterable[str] | None = None,
    sample_size: int = 4000,
    n_init: int = 3,
    threads: int | None = 1,
    on_progress: Progress | None = None,
) -> SegmentationResult:
    """Cluster buyers' behaviour; pick k in ``k_range`` (inclusive) by silhouette.

    ``customers`` and ``attributes`` add named numeric customer attributes; sensitive
    names are dropped (reported, never used). Same inputs and seed give the same labels.
    ``threads`` caps OpenMP threads for k-means (see `clv.fit_value_models`).
    """
    report = on_progress or (lambda done, total: None)
    k_lo, k_hi = k_range
    if k_lo < 2 or k_hi < k_lo:
        raise ValueError(f"k_range must be (low, high) with 2 <= low <= high, got {k_range}")
    sensitive = tuple(sensitive) if sensitive is not None else None
    allowed, refused = _allowed_attributes(customers, attributes, sensitive)
    stripped = strip_sensitive(customers, sensitive) if customers is not None else None
    cust = stripped.customers if stripped is not None else None
    dropped = sorted(set(stripped.dropped if stripped else ()) | set(refused))

    buyers = profiles[profiles["frequency"].to_numpy() > 0]
    categories = _top_category_names(buyers, top_categories)
    x, columns, attr_names = _matrix(buyers, categories, cust, allowed)
    features = feature_report(columns, dropped, sensitive)
    labels = pd.Series(-1, index=profiles.index, name="segment", dtype=np.int64)
    steps = (k_hi - k_lo + 1) + 2
    report(0, steps)

    mean = x.mean(axis=0) if len(x) else np.zeros(len(columns))
    scale = x.std(axis=0) if len(x) else np.ones(len(columns))
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = np.clip((x - mean) / scale, -Z_CLIP, Z_CLIP)
    weights = _weights(columns, len(categories))
    xw = z * weights

    n = len(buyers)
    k_hi_eff = min(k_hi, n - 1)
    if n < MIN_CUSTOMERS or k_hi_eff < k_lo:
        assign = np.zeros(n, dtype=np.int64)
        labels.loc[buyers.index] = assign
        reason = (
            f"only {n} customers with purchases; learned segments need at least "
            f"{max(MIN_CUSTOMERS, k_lo + 1)}"
        )
        clusters = _describe(buyers, x, z, columns, categories, assign, 1) if n else ()
        report(steps, steps)
        return SegmentationResult(
            labels=labels,
            clusters=clusters,
            k=1 if n else 0,
            scores={},
            metric="silhouette",
            features=features,
            available=False,
            reason=reason,
            seed=seed,
        )

    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(sample_size, n), replace=False) if n > sample_size else None
    scores: dict[int, float] = {}
    fits: dict[int, KMeans] = {}
    with threadpool_limits(limits=threads):
        for i, k in enumerate(range(k_lo, k_hi_eff + 1)):
            km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(xw)
            fits[k] = km
            if len(np.unique(km.labels_)) < 2:
                scores[k] = -1.0
            else:
                idx = sample if sample is not None else np.arange(n)
                lab = km.labels_[idx]
                scores[k] = (
                    float(silhouette_score(xw[idx], lab)) if len(np.unique(lab)) > 1 else -1.0
                )
            report(1 + i, steps)
    best_k = max(scores, key=lambda k: (round(scores[k], 6), -k))
    km = fits[best_k]
    # Renumber by size (largest first, ties by centre order) so labels read naturally.
    sizes = np.bincount(km.labels_, minlength=best_k)
    order = sorted(range(best_k), key=lambda c: (-sizes[c], c))
    remap = np.empty(best_k, dtype=np.int64)
    remap[order] = np.arange(best_k)
    assign = remap[km.labels_]
    centres = km.cluster_centers_[order]
    labels.loc[buyers.index] = assign
    clusters = _describe(buyers, x, z, columns, categories, assign, best_k)
    report(steps, steps)
    return SegmentationResult(
        labels=labels,
        clusters=clusters,
        k=best_k,
        scores=scores,
        metric="silhouette",
        features=features,
        available=True,
        reason="",
        seed=seed,
        model=SegmentModel(
            columns=tuple(columns),
            categories=tuple(categories),
            attributes=tuple(allowed),
            mean=mean,
            scale=scale,
            weights=weights,
            centres=centres,
        ),
    )


def assign_segments(
    result: SegmentationResult, profiles: pd.DataFrame, customers: pd.DataFrame | None = None
) -> pd.Series:
    """Nearest learned cluster for each profile (-1 without purchases), without refitting."""
    labels = pd.Series(-1, index=profiles.index, name="segment", dtype=np.int64)
    model = result.model
    if model is None:
        if result.k == 1:
            labels[profiles["frequency"].to_numpy() > 0] = 0
        return labels
    buyers = profiles[profiles["frequency"].to_numpy() > 0]
    if not len(buyers):
        return labels
    cust = strip_sensitive(customers).customers if customers is not None else None
    x, _, _ = _matrix(buyers, list(model.categories), cust, model.attributes)
    xw = np.clip((x - model.mean) / model.scale, -Z_CLIP, Z_CLIP) * model.weights
    dist = ((xw[:, None, :] - model.centres[None, :, :]) ** 2).sum(axis=2)
    labels.loc[buyers.index] = dist.argmin(axis=1)
    return labels


# --------------------------------------------------------------------------- descriptions


def _short(category: str) -> str:
    return category.split(">")[-1].strip() or category


def _recency_phrase(median_days: float, lapsed: bool) -> str:
    if lapsed:
        for days in (365, 180, 90, 60, 30):
            if median_days >= days:
                return f"lapsed {days}+ days"
        return "less recent"
    for days in (7, 14, 30, 60, 90, 180):
        if median_days <= days:
            return f"bought in last {days} days"
    return "more recent"


MATERIAL_RATIO = 1.2  # a median this much above/below the population's is worth saying


def _phrases(
    zc: dict[str, float],
    summary: dict[str, float],
    population: dict[str, float],
    categories: list[str],
) -> list[tuple[float, str, str]]:
    """Candidate (distinctiveness, phrase, kind) triples for one cluster, best first.

    A trait earns a phrase when the centre is at least MIN_PHRASE_Z standard deviations
    from the population mean *and* (for money, orders, days and price) the cluster's
    median differs from the population's by a factor of MATERIAL_RATIO — standardising
    would otherwise blow a 1 % difference up into "high spend".
    """
    out: list[tuple[float, str, str]] = []

    def material(key: str) -> bool:
        a, b = summary.get(key, np.nan), population.get(key, np.nan)
        if not (np.isfinite(a) and np.isfinite(b)):
            return True
        lo, hi = sorted((abs(a), abs(b)))
        return hi >= MATERIAL_RATIO * lo + 1e-9 if lo > 0 else hi > 0

    def add(name: str, key: str | None, positive: str | None, negative: str | None) -> None:
        value = zc.get(name, 0.0)
        text = positive if value > 0 else negative
        if text and abs(value) >= MIN_PHRASE_Z and (key is None or material(key)):
            out.append((abs(value), text, "behaviour"))

    mon = zc.get("log_monetary", 0.0)
    add("log_monetary", "monetary", "top spend" if mon >= 1.0 else "high spend", "low spend")
    freq = summary["frequency"]
    add(
        "log_frequency",
        "frequency",
        f"frequent buyers ({freq:.0f} orders)" if freq >= 2 else "repeat buyers",
        "one-time buyers" if freq <= 1 else "few orders",
    )
    add(
        "log_recency",
        "recency_days",
        _recency_phrase(summary["recency_days"], lapsed=True),
        _recency_phrase(summary["recency_days"], lapsed=False),
    )
    add("log_aov", "aov", "big baskets", "small baskets")
    if summary["return_rate"] >= 0.05:
        add("return_rate", None, f"returns {summary['return_rate']:.0%} of items", None)
    add("log_price_ratio", "price_ratio", "premium buyers", "bargain hunters")
    for cat in categories:
        share = summary.get(f"share:{cat}", 0.0)
        value = zc.get(f"share:{cat}", 0.0)
        if value >= MIN_PHRASE_Z and share >= 0.15:
            text = f"mostly {_short(cat)}" if share >= 0.4 else f"likes {_short(cat)}"
            out.append((value, text, "category"))
    for name, value in zc.items():
        if name.startswith("attr_") and abs(value) >= MIN_PHRASE_Z:
            label = name[5:].replace("_", " ")
            out.append((abs(value), f"high {label}" if value > 0 else f"low {label}", "attribute"))
    out.sort(key=lambda t: -t[0])
    return out


def _summary(buyers: pd.DataFrame, m: np.ndarray) -> dict[str, float]:
    def med(col: str) -> float:
        v = pd.to_numeric(buyers[col], errors="coerce").to_numpy(np.float64)[m]
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else float("nan")

    rr = buyers["return_rate"].to_numpy(np.float64)[m]
    rr = rr[np.isfinite(rr)]
    return {
        "recency_days": med("recency_days"),
        "frequency": med("frequency"),
        "monetary": med("monetary"),
        "aov": med("aov"),
        "price_ratio": med("price_ratio"),
        "return_rate": float(rr.mean()) if rr.size else 0.0,
    }


def _describe(
    buyers: pd.DataFrame,
    x: np.ndarray,
    z: np.ndarray,
    columns: list[str],
    categories: list[str],
    assign: np.ndarray,
    k: int,
) -> tuple[Cluster, ...]:
    n = len(buyers)
    population = _summary(buyers, np.ones(n, dtype=bool))
    candidates: list[list[tuple[float, str, str]]] = []
    info: list[tuple[int, dict[str, float], dict[str, float]]] = []
    for label in range(k):
        m = assign == label
        size = int(m.sum())
        zc = {c: round(float(z[m, j].mean()), 3) for j, c in enumerate(columns)} if size else {}
        summary = _summary(buyers, m)
        for j, c in enumerate(columns):
            if c.startswith("share:"):
                summary[c] = float(x[m, j].mean()) if size else 0.0
        summary = {key: round(v, 4) for key, v in summary.items()}
        candidates.append(_phrases(zc, summary, population, categories))
        info.append((size, summary, zc))

    def pick(cands: list[tuple[float, str, str]]) -> tuple[list[str], list[str]]:
        """Three phrases with at most one about categories; the rest kept as reserve."""
        chosen, reserve, has_category = [], [], False
        for _, text, kind in cands:
            if len(chosen) < 3 and not (kind == "category" and has_category):
                chosen.append(text)
                has_category |= kind == "category"
            else:
                reserve.append(text)
        return chosen or ["typical customers"], reserve

    picked = [pick(c) for c in candidates]
    chosen = [p[0] for p in picked]
    # Two clusters must not read the same: extend the later one with its reserve phrases.
    for i in range(k):
        reserve = list(picked[i][1])
        while any(chosen[i] == chosen[j] for j in range(i)) and reserve:
            chosen[i].append(reserve.pop(0))
        if any(chosen[i] == chosen[j] for j in range(i)):
            chosen[i].append(f"group {i + 1}")
    return tuple(
        Cluster(
            label=label,
            size=size,
            share=round(size / n, 4) if n else 0.0,
            description=" · ".join(chosen[label]),
            phrases=tuple(chosen[label]),
            summary=summary,
            z=zc,
        )
        for label, (size, summary, zc) in enumerate(info)
    )
