"""Predicted 12-month customer value (CLV) and churn probability, with honest quality figures.

The models learn from the catalog's own history with a time-based holdout:

1. ``horizon`` = min(365 days, ``horizon_share`` × history length), whole days; the
   ``cutoff`` = ``as_of`` - horizon.
2. Features for every customer who had bought by the cutoff are computed from events up to
   the cutoff only (`value_features`: RFM, tenure, AOV, return rates, category entropy,
   recent-activity windows and trend, price ratio, country/language/consents and
   non-sensitive customer attributes). Labels come from (cutoff, as_of]: the net value
   spent (purchases - returns, floored at 0) and churn = no order in that window.
3. Customers are split (``test_share``, seeded, stratified on churn) into train and test.
   A HistGradientBoostingClassifier fits churn; the value is a hurdle model,
   P(order) × E[value | order] (see `_ValueModel`: a HistGradientBoostingRegressor on
   log1p(value) of customers who ordered, offset by their previous-period value, turned
   back into a mean with Duan's smearing), so it is an expected value whose totals are
   unbiased. On the test customers we report CLV MAE/RMSE next to two naive baselines
   (the customer's own value in the horizon-long period before the cutoff, and the mean
   training label) and churn ROC AUC / Brier next to recency alone and the base rate.
4. Both models are refitted on all those customers, and features as of ``as_of`` predict
   the next horizon for everyone who has bought. ``clv_12m`` = predicted horizon value ×
   365 / horizon (linear scaling when the horizon is shorter than a year; stated in
   `ValueModelResult.scale_to_12m`). ``churn_probability`` is the probability of no
   order in the next ``horizon_days`` (not scaled).
5. Customers who have never bought get the base rates of customers who had not bought by
   the cutoff (their conversion value and 1 - conversion rate), ``basis`` = "base rate".

Seasonality: with less than two years of history the model learns whatever growth or
season separated the two periods and carries it forward (Online Retail: the second half
of 2011 sold 1.6× the first, so next-12-month predictions sum to about twice the last 12
months). Treat clv_12m as a ranking and an order of magnitude; the holdout figures say
how far to trust it.

Small data (short history, few buyers, one churn class only) never raises: predictions
fall back to a documented heuristic (``basis`` = "heuristic") and
`ValueModelQuality.available` is False with a ``reason`` the UI can show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import brier_score_loss, mean_absolute_error, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from .profiles import (
    CONSENT_COLUMNS,
    NS_PER_DAY,
    PreparedEvents,
    as_utc_timestamp,
    base_aggregates,
    prepare_events,
    price_ratio,
)
from .sensitive import FeatureReport, feature_report, normalise_name, strip_sensitive

Progress = Callable[[int, int], None]

MAX_HORIZON_DAYS = 365
MIN_HORIZON_DAYS = 30
MIN_BUYERS = 50  # buyers at the cutoff needed to fit anything
MIN_TEST = 20  # test customers needed to report quality
MIN_CLASS = 5  # customers per churn class needed to fit / score the classifier
RECENT_DAYS = 30
TOP_LEVELS = 30  # most frequent countries / languages / attribute values kept as categories
ATTRIBUTE_MIN_SHARE = 0.05  # attribute keys set for fewer customers are ignored


@dataclass(frozen=True)
class ValueModelQuality:
    """Hold-out quality figures; None where a figure could not be measured."""

    available: bool
    reason: str  # why figures are missing ("" when all are there)
    cutoff: pd.Timestamp | None
    horizon_days: int
    train_customers: int = 0
    test_customers: int = 0
    # CLV: errors of the predicted value over the horizon, in the catalog's currency.
    clv_mae: float | None = None
    clv_rmse: float | None = None
    baseline: str = "value in the previous period"
    baseline_mae: float | None = None
    baseline_rmse: float | None = None
    mean_baseline_mae: float | None = None
    mean_baseline_rmse: float | None = None
    clv_mae_improvement: float | None = None  # 1 - clv_mae / baseline_mae (0.3 = 30 % better)
    predicted_total: float | None = None  # sum over test customers (bias check)
    actual_total: float | None = None
    # Churn: no order within the horizon.
    churn_auc: float | None = None
    churn_brier: float | None = None
    churn_rate: float | None = None  # share of test customers who churned
    churn_baseline_brier: float | None = None  # constant prediction = training churn rate
    churn_auc_recency: float | None = None  # AUC of days-since-last-purchase alone


@dataclass(frozen=True)
class ValueModelResult:
    predictions: pd.DataFrame  # index customer_id: clv_12m, churn_probability, basis
    quality: ValueModelQuality
    horizon_days: int
    scale_to_12m: float  # clv_12m = predicted horizon value × this
    features: FeatureReport
    seed: int
    as_of: pd.Timestamp


# --------------------------------------------------------------------------- features

NUMERIC_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "purchase_value",
    "aov",
    "return_rate",
    "return_rate_value",
    "tenure_days",
    "days_since_first_seen",
    "days_since_last_seen",
    "median_gap_days",
    "units_per_order",
    "distinct_products",
    "categories",
    "category_entropy",
    "price_ratio",
    "orders_recent",  # orders in the last horizon-long period
    "value_recent",  # net value in the last horizon-long period (= the naive baseline)
    "value_previous",  # net value in the horizon-long period before that
    "value_trend",  # (recent - previous) / (recent + previous), in -1..1
    "value_per_period",  # net value per horizon-long period since the first purchase
    "orders_90d",
    "value_90d",
    "events_30d",
    "interest_30d",  # views, carts, clicks, wishlists in the last 30 days
)
CUSTOMER_CATEGORICAL = ("country", "language")


@dataclass
class _Features:
    frame: pd.DataFrame  # index customer code
    categorical: list[str]


def _window_sum(prep: PreparedEvents, mask: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    code = prep.code[mask]
    return np.bincount(code, weights=None if weights is None else weights[mask],
                       minlength=prep.n_customers).astype(np.float64)  # fmt: skip


def _customer_features(
    customers: pd.DataFrame | None, ids: np.ndarray
) -> tuple[pd.DataFrame, list[str]]:
    """Country, language, consents and usable attributes, aligned to ``ids``.

    ``customers`` must already be stripped of sensitive data. Attribute keys set for at
    least ATTRIBUTE_MIN_SHARE of customers become ``attr_<key>``: numbers and booleans as
    numbers, text as a category (its TOP_LEVELS most frequent values).
    """
    out = pd.DataFrame(index=pd.Index(ids))
    categorical: list[str] = []
    if customers is None or not len(customers):
        return out, categorical
    src = customers.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    src.index = src.index.astype(np.int64)
    src = src.reindex(ids)
    for col in CUSTOMER_CATEGORICAL:
        if col in src.columns:
            out[col] = _category_codes(src[col])
            categorical.append(col)
    for col in CONSENT_COLUMNS:
        if col in src.columns:
            out[col] = src[col].map(lambda v: v is True or v == 1 or str(v).lower() == "true")
            out[col] = out[col].astype(np.float64)
    if "attributes" in src.columns:
        attrs = src["attributes"].map(lambda a: a if isinstance(a, dict) else {})
        counts: dict[str, int] = {}
        for a in attrs:
            for k, v in a.items():
                if v is not None and v != "":
                    counts[k] = counts.get(k, 0) + 1
        for key in sorted(counts):
            if counts[key] < ATTRIBUTE_MIN_SHARE * len(ids):
                continue
            name = "attr_" + normalise_name(key)
            if name in out.columns or name == "attr_":
                continue
            values = attrs.map(lambda a, k=key: a.get(k))
            numeric = values.map(lambda v: isinstance(v, int | float | bool) or v is None)
            if numeric.all():
                out[name] = pd.to_numeric(values.astype(object), errors="coerce").astype(float)
            else:
                out[name] = _category_codes(values.map(lambda v: "" if v is None else str(v)))
                categorical.append(name)
    return out, categorical


def _category_codes(values: pd.Series) -> np.ndarray:
    """Codes 0..TOP_LEVELS-1 for the most frequent values (ties by name), TOP_LEVELS for the
    rest, NaN for missing/empty — the layout HistGradientBoosting's categorical support wants."""
    text = values.fillna("").astype(str).str.strip()
    counts = text[text != ""].value_counts()
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_LEVELS]
    lookup = {v: i for i, (v, _) in enumerate(order)}
    codes = text.map(lambda v: np.nan if v == "" else lookup.get(v, TOP_LEVELS))
    return codes.to_numpy(dtype=np.float64)


def value_features(
    prep: PreparedEvents,
    as_of_ns: int,
    *,
    period_days: int,
    customers: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Feature matrix for all customers (index = customer code) from events up to as_of_ns.

    ``customers`` must already have been through `strip_sensitive`. Returns the frame and
    the names of its categorical columns.
    """
    n = prep.n_customers
    mask = prep.t <= as_of_ns
    base = base_aggregates(prep, mask)
    buyer = base.buyer
    day = float(NS_PER_DAY)

    def since(ns: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.where(valid, (as_of_ns - np.where(valid, ns, 0)) / day, np.nan)

    p, r = mask & prep.is_purchase, mask & prep.is_return
    signed = np.where(prep.is_return, -prep.value, np.where(prep.is_purchase, prep.value, 0.0))
    period = period_days * NS_PER_DAY
    recent = mask & (prep.t > as_of_ns - period)
    previous = mask & (prep.t <= as_of_ns - period) & (prep.t > as_of_ns - 2 * period)
    value_recent = _window_sum(prep, recent & (p | r), signed)
    value_previous = _window_sum(prep, previous & (p | r), signed)
    orders = base.orders
    orders_recent = np.bincount(orders.code[orders.t > as_of_ns - period], minlength=n)
    orders_90d = np.bincount(orders.code[orders.t > as_of_ns - 90 * NS_PER_DAY], minlength=n)
    last90 = mask & (prep.t > as_of_ns - 90 * NS_PER_DAY)
    last30 = mask & (prep.t > as_of_ns - RECENT_DAYS * NS_PER_DAY)

    # Category entropy of purchase value (0 = one category; log(k) = k equal categories).
    cp = p & (prep.cat >= 0) & (prep.value > 0)
    entropy = np.full(n, np.nan)
    n_categories = np.zeros(n)
    if cp.any():
        k = max(len(prep.categories), 1)
        uniq, inv = np.unique(prep.code[cp] * k + prep.cat[cp], return_inverse=True)
        w = np.bincount(inv, weights=prep.value[cp])
        c = uniq // k
        share = w / pd.Series(w).groupby(c).transform("sum").to_numpy()
        ent = pd.Series(-share * np.log(share)).groupby(c).sum()
        entropy[ent.index.to_numpy()] = ent.to_numpy()
        n_categories = np.bincount(c, minlength=n).astype(np.float64)
    distinct = np.zeros(n)
    pp = p & (prep.product >= 0)
    if pp.any():
        product_codes, uniques = pd.factorize(prep.product[pp])  # ids may be huge
        width = len(uniques)
        keys = np.unique(prep.code[pp] * width + product_codes)
        distinct = np.bincount(keys // width, minlength=n).astype(np.float64)

    with np.errstate(invalid="ignore", divide="ignore"):
        freq = base.frequency.astype(np.float64)
        feats = {
            "recency_days": since(base.last_purchase, buyer),
            "frequency": freq,
            "monetary": base.monetary,
            "purchase_value": base.purchase_value,
            "aov": np.where(buyer, base.purchase_value / np.maximum(freq, 1), np.nan),
            "return_rate": np.where(
                base.purchased_units > 0,
                np.minimum(base.returned_units / np.maximum(base.purchased_units, 1), 1.0),
                np.nan,
            ),
            "return_rate_value": np.where(
                base.purchase_value > 0,
                np.minimum(
                    base.return_value / np.where(base.purchase_value > 0, base.purchase_value, 1),
                    1.0,
                ),
                np.nan,
            ),  # fmt: skip
            "tenure_days": since(base.first_purchase, buyer),
            "days_since_first_seen": since(base.first_seen, base.events > 0),
            "days_since_last_seen": since(base.last_seen, base.events > 0),
            "median_gap_days": base.median_gap_days,
            "units_per_order": np.where(buyer, base.purchased_units / np.maximum(freq, 1), np.nan),
            "distinct_products": distinct,
            "categories": n_categories,
            "category_entropy": entropy,
            "price_ratio": price_ratio(prep, mask),
            "orders_recent": orders_recent.astype(np.float64),
            "value_recent": value_recent,
            "value_previous": value_previous,
            "value_trend": (value_recent - value_previous)
            / np.where(
                np.abs(value_recent) + np.abs(value_previous) > 0,
                np.abs(value_recent) + np.abs(value_previous),
                1.0,
            ),  # fmt: skip
            "orders_90d": orders_90d.astype(np.float64),
            "value_90d": _window_sum(prep, last90 & (p | r), signed),
            "events_30d": _window_sum(prep, last30, None),
            "interest_30d": _window_sum(prep, last30 & prep.is_interest, None),
        }
    tenure = np.nan_to_num(feats["tenure_days"])
    feats["value_per_period"] = np.where(
        buyer, base.monetary * period_days / np.maximum(tenure, period_days), np.nan
    )
    frame = pd.DataFrame(feats, columns=list(NUMERIC_FEATURES))
    extra, categorical = _customer_features(customers, prep.customer_ids)
    for col in extra.columns:
        frame[col] = extra[col].to_numpy()
    frame["_buyer"] = buyer
    return frame, categorical


def feature_names(
    customers: pd.DataFrame | None, sensitive: Iterable[str] | None = None
) -> list[str]:
    """The features `fit_value_models` would use for this customers frame (no fitting)."""
    stripped = strip_sensitive(customers, sensitive).customers if customers is not None else None
    ids = (
        np.unique(stripped["customer_id"].to_numpy(dtype=np.int64))
        if stripped is not None and len(stripped)
        else np.zeros(0, dtype=np.int64)
    )
    extra, _ = _customer_features(stripped, ids)
    return [*NUMERIC_FEATURES, *extra.columns]


# --------------------------------------------------------------------------- labels


def _future_labels(
    prep: PreparedEvents, start_ns: int, end_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Net value (floored at 0) and "placed an order" per customer in (start, end]."""
    window = (prep.t > start_ns) & (prep.t <= end_ns)
    p, r = window & prep.is_purchase, window & prep.is_return
    n = prep.n_customers
    value = np.bincount(prep.code[p], weights=prep.value[p], minlength=n) - np.bincount(
        prep.code[r], weights=prep.value[r], minlength=n
    )
    bought = np.bincount(prep.code[p], minlength=n) > 0
    return np.maximum(value, 0.0), bought


# --------------------------------------------------------------------------- models


def _hgb_params(seed: int, n: int) -> dict:
    params = {
        "learning_rate": 0.06,
        "max_iter": 300,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
        "early_stopping": True,
        "validation_fraction": 0.15,
        "n_iter_no_change": 20,
        "random_state": seed,
    }
    if n < 400:  # too few rows to hold out a validation set worth the name
        params.update(early_stopping=False, max_iter=100, min_samples_leaf=max(5, n // 20))
    return params


@dataclass
class _ValueModel:
    """Hurdle model: P(order in horizon) × E[value | order].

    The classifier is the churn model (P(order) = 1 - churn). The conditional value is
    fitted on customers who ordered, on log1p(value) with the log of their own
    previous-period value as an offset (trees cannot extrapolate; the offset lets a big
    spender stay big), and turned back into a mean with Duan's smearing factor. The
    product is an expected value, so totals over many customers are unbiased.
    """

    churn: HistGradientBoostingClassifier | None
    churn_rate: float  # used when a churn class is missing
    value: HistGradientBoostingRegressor | None
    smear: float
    mean_positive: float  # used when too few customers ordered to fit the value model

    def predict(self, x: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(churn probability, expected value over the horizon) per row."""
        if self.churn is not None:
            classes = list(self.churn.classes_)
            churn = self.churn.predict_proba(x)[:, classes.index(True)]
        else:
            churn = np.full(len(x), self.churn_rate)
        if self.value is not None:
            cond = self.smear * np.exp(_offset(x) + self.value.predict(x)) - 1.0
        else:
            cond = np.full(len(x), self.mean_positive)
        return churn, (1.0 - churn) * np.clip(cond, 0.0, None)


# The offset: the customer's own value in the last horizon-long period. Measured against
# value per period over the whole tenure on Online Retail (5 seeds) and the synthetic
# shop, it was better or equal in the holdout on every seed.
OFFSET = "value_recent"


def _offset(x: pd.DataFrame) -> np.ndarray:
    if OFFSET not in x.columns:
        return np.zeros(len(x))
    return np.log1p(np.clip(x[OFFSET].fillna(0).to_numpy(dtype=np.float64), 0.0, None))


def _fit(
    x: pd.DataFrame, y_value: np.ndarray, y_churn: np.ndarray, cat: list[str], seed: int
) -> _ValueModel:
    mask = np.array([c in cat for c in x.columns])
    categorical = mask if mask.any() else None
    churn_model = None
    if min(y_churn.sum(), (~y_churn).sum()) >= MIN_CLASS:
        churn_model = HistGradientBoostingClassifier(
            categorical_features=categorical, **_hgb_params(seed, len(x))
        ).fit(x, y_churn)
    ordered = ~y_churn
    value_model, smear = None, 1.0
    if ordered.sum() >= MIN_BUYERS // 2:
        xo = x[ordered]
        target = np.log1p(y_value[ordered]) - _offset(xo)
        value_model = HistGradientBoostingRegressor(
            categorical_features=categorical, **_hgb_params(seed, len(xo))
        ).fit(xo, target)
        residual = target - value_model.predict(xo)
        smear = float(np.mean(np.exp(residual)))
    return _ValueModel(
        churn=churn_model,
        churn_rate=float(y_churn.mean()),
        value=value_model,
        smear=smear,
        mean_positive=float(y_value[ordered].mean()) if ordered.any() else 0.0,
    )


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


# --------------------------------------------------------------------------- entry point


def fit_value_models(
    events: pd.DataFrame,
    products: pd.DataFrame,
    customers: pd.DataFrame | None,
    *,
    as_of: datetime | pd.Timestamp,
    timezone: str = "UTC",
    horizon_share: float = 0.5,
    horizon_days: int | None = None,
    test_share: float = 0.25,
    seed: int = 0,
    threads: int | None = 1,
    sensitive: Iterable[str] | None = None,
    on_progress: Progress | None = None,
    prepared: PreparedEvents | None = None,
) -> ValueModelResult:
    """Fit CLV and churn models on the catalog's history, measure them, predict for everyone.

    ``horizon_days`` overrides the automatic horizon (min(365, horizon_share × history)).
    ``seed`` drives the customer split and the models, so the same inputs give the same
    figures. ``threads`` caps OpenMP threads for the boosting (1 by default: a Celery
    worker runs one task per core, and on a busy 2-core box OpenMP's spinning threads
    made the fit five times slower); None leaves the library default. ``prepared`` must
    come from the same frames. Never raises on small data: see the module doc.
    """
    with threadpool_limits(limits=threads):
        return _fit_value_models(
            events,
            products,
            customers,
            as_of=as_utc_timestamp(as_of),
            timezone=timezone,
            horizon_share=horizon_share,
            horizon_days=horizon_days,
            test_share=test_share,
            seed=seed,
            sensitive=tuple(sensitive) if sensitive is not None else None,
            report=on_progress or (lambda done, total: None),
            prepared=prepared,
        )


def _fit_value_models(
    events: pd.DataFrame,
    products: pd.DataFrame,
    customers: pd.DataFrame | None,
    *,
    as_of: pd.Timestamp,
    timezone: str,
    horizon_share: float,
    horizon_days: int | None,
    test_share: float,
    seed: int,
    sensitive: tuple[str, ...] | None,
    report: Progress,
    prepared: PreparedEvents | None,
) -> ValueModelResult:
    steps = 6
    report(0, steps)
    stripped = strip_sensitive(customers, sensitive) if customers is not None else None
    cust = stripped.customers if stripped is not None else None
    dropped = stripped.dropped if stripped is not None else ()
    prep = prepared or prepare_events(events, products, cust, timezone=timezone)
    report(1, steps)

    in_range = prep.t <= as_of.value
    history_days = (
        (as_of.value - int(prep.t[in_range].min())) / NS_PER_DAY if in_range.any() else 0.0
    )
    if horizon_days is None:
        horizon = int(min(MAX_HORIZON_DAYS, horizon_share * history_days))
    else:
        horizon = int(horizon_days)
    horizon = max(horizon, 1)
    scale = 365.0 / horizon
    now_x, cat = value_features(prep, as_of.value, period_days=horizon, customers=cust)

    def result(preds: pd.DataFrame, quality: ValueModelQuality, used) -> ValueModelResult:
        report(steps, steps)
        return ValueModelResult(
            predictions=preds,
            quality=quality,
            horizon_days=horizon,
            scale_to_12m=scale,
            features=feature_report(used, dropped, sensitive),
            seed=seed,
            as_of=as_of,
        )

    def fallback(reason: str) -> ValueModelResult:
        quality = ValueModelQuality(
            available=False, reason=reason, cutoff=None, horizon_days=horizon
        )
        return result(_heuristic(prep, now_x, history_days), quality, HEURISTIC_FEATURES)

    if history_days < 2 * MIN_HORIZON_DAYS:
        return fallback(
            f"only {history_days:.0f} days of history; models need at least "
            f"{2 * MIN_HORIZON_DAYS} days (a {MIN_HORIZON_DAYS}-day horizon and as much before it)"
        )
    if horizon < MIN_HORIZON_DAYS or horizon >= history_days:
        return fallback(
            f"a {horizon}-day horizon does not fit in {history_days:.0f} days of history"
        )
    cutoff_ns = as_of.value - horizon * NS_PER_DAY
    cutoff = pd.Timestamp(cutoff_ns, tz="UTC")
    past_x, _ = value_features(prep, cutoff_ns, period_days=horizon, customers=cust)
    future_value, bought = _future_labels(prep, cutoff_ns, as_of.value)
    report(2, steps)

    buyers = past_x["_buyer"].to_numpy()
    n_buyers = int(buyers.sum())
    if n_buyers < MIN_BUYERS:
        return fallback(
            f"only {n_buyers} customers had bought before the cutoff ({cutoff:%Y-%m-%d}); "
            f"models need at least {MIN_BUYERS}"
        )
    # Features that carry information for these customers (not all missing, not constant);
    # the rest (e.g. category entropy in a catalog without categories) are left out.
    candidates = past_x.loc[buyers, [c for c in past_x.columns if not c.startswith("_")]]
    used = [c for c in candidates.columns if candidates[c].nunique(dropna=True) > 1]
    cat = [c for c in cat if c in used]
    x = candidates[used]
    y_value = future_value[buyers]
    y_churn = ~bought[buyers]

    # Hold-out: labels split in time (cutoff), customers split at random (seeded).
    idx = np.arange(len(x))
    n_test = max(int(round(test_share * len(idx))), 1)
    stratify = y_churn if min(y_churn.sum(), (~y_churn).sum()) >= 2 else None
    train_idx, test_idx = train_test_split(
        idx, test_size=n_test, random_state=seed, stratify=stratify
    )
    reasons: list[str] = []
    quality: dict = {
        "cutoff": cutoff,
        "horizon_days": horizon,
        "train_customers": len(train_idx),
        "test_customers": len(test_idx),
    }
    model = _fit(x.iloc[train_idx], y_value[train_idx], y_churn[train_idx], cat, seed)
    report(3, steps)
    churn_prob, value_pred = model.predict(x.iloc[test_idx])
    if len(test_idx) >= MIN_TEST:
        actual = y_value[test_idx]
        naive = np.clip(x["value_recent"].to_numpy()[test_idx], 0.0, None)
        mean = np.full(len(test_idx), y_value[train_idx].mean())
        mae = mean_absolute_error(actual, value_pred)
        base_mae = mean_absolute_error(actual, naive)
        quality.update(
            clv_mae=float(mae),
            clv_rmse=_rmse(actual, value_pred),
            baseline_mae=float(base_mae),
            baseline_rmse=_rmse(actual, naive),
            mean_baseline_mae=float(mean_absolute_error(actual, mean)),
            mean_baseline_rmse=_rmse(actual, mean),
            clv_mae_improvement=float(1 - mae / base_mae) if base_mae > 0 else None,
            predicted_total=float(value_pred.sum()),
            actual_total=float(actual.sum()),
        )
    else:
        reasons.append(f"only {len(test_idx)} test customers; need {MIN_TEST} for CLV figures")
    actual_churn = y_churn[test_idx]
    if model.churn is not None and min(actual_churn.sum(), (~actual_churn).sum()) >= MIN_CLASS:
        quality.update(
            churn_auc=float(roc_auc_score(actual_churn, churn_prob)),
            churn_brier=float(brier_score_loss(actual_churn, churn_prob)),
            churn_rate=float(actual_churn.mean()),
            churn_baseline_brier=float(
                brier_score_loss(actual_churn, np.full(actual_churn.size, model.churn_rate))
            ),
            churn_auc_recency=float(
                roc_auc_score(actual_churn, x["recency_days"].to_numpy()[test_idx])
            ),
        )
    else:
        reasons.append(
            f"too few customers who did (or did not) order again within {horizon} days "
            f"to measure churn (need {MIN_CLASS} of each among the test customers)"
        )
    report(4, steps)

    # Refit on every customer with labels; predict the next horizon from today's features.
    final = _fit(x, y_value, y_churn, cat, seed)
    now_buyers = now_x["_buyer"].to_numpy()
    preds = pd.DataFrame(
        {
            "clv_12m": np.zeros(prep.n_customers),
            "churn_probability": np.full(prep.n_customers, np.nan),
            "basis": np.full(prep.n_customers, "model", dtype=object),
        },
        index=pd.Index(prep.customer_ids, name="customer_id"),
    )
    if now_buyers.any():
        churn_now, value_now = final.predict(now_x.loc[now_buyers, used])
        preds.loc[now_buyers, "clv_12m"] = value_now * scale
        preds.loc[now_buyers, "churn_probability"] = churn_now
    report(5, steps)

    # Never-bought customers: what non-buyers at the cutoff went on to do in the horizon.
    non_buyers_then = ~buyers & past_x["days_since_last_seen"].notna().to_numpy()
    if non_buyers_then.any():
        preds.loc[~now_buyers, "clv_12m"] = float(future_value[non_buyers_then].mean()) * scale
        preds.loc[~now_buyers, "churn_probability"] = 1.0 - float(bought[non_buyers_then].mean())
        preds.loc[~now_buyers, "basis"] = "base rate"
    else:
        preds.loc[~now_buyers, "basis"] = "none"
    preds["clv_12m"] = preds["clv_12m"].astype(float).round(2)
    preds["churn_probability"] = preds["churn_probability"].astype(float).round(4)

    available = quality.get("clv_mae") is not None and quality.get("churn_auc") is not None
    return result(
        preds,
        ValueModelQuality(available=available, reason="; ".join(reasons), **quality),
        used,
    )


HEURISTIC_FEATURES = ("monetary", "recency_days", "median_gap_days")


def _heuristic(prep: PreparedEvents, now_x: pd.DataFrame, history_days: float) -> pd.DataFrame:
    """Fallback without a model, for catalogs too small to learn from.

    clv_12m = net spend so far × 365 / max(history days, 90) (the observed yearly rate,
    damped for very short histories); churn_probability = 1 - exp(-recency / tau) with
    tau = twice the median of customers' median inter-order gaps (90 days if nobody has
    two orders). Customers who never bought get 0 and no churn probability (None).
    """
    buyer = now_x["_buyer"].to_numpy()
    gaps = now_x["median_gap_days"].to_numpy()
    gaps = gaps[~np.isnan(gaps)]
    tau = 2 * float(np.median(gaps)) if gaps.size else 90.0
    tau = max(tau, 1.0)
    recency = now_x["recency_days"].to_numpy()
    monetary = now_x["monetary"].to_numpy()
    clv = np.where(buyer, np.maximum(monetary, 0) * 365.0 / max(history_days, 90.0), 0.0)
    churn = np.where(buyer, 1 - np.exp(-np.nan_to_num(recency) / tau), np.nan)
    return pd.DataFrame(
        {
            "clv_12m": np.round(clv, 2),
            "churn_probability": np.round(churn, 4),
            "basis": np.where(buyer, "heuristic", "none"),
        },
        index=pd.Index(prep.customer_ids, name="customer_id"),
    )
