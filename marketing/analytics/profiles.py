"""Customer profiles from behaviour events: RFM, scores and segment, habits, next order.

Pure core (no Django): frames in, a `ProfileResult` out. The Django service loads the
catalog's events, products and customers into frames (layout in
docs/profiles-core-contract.md), calls `compute_profiles`, and bulk-writes
`profile_records(result.profiles)`.

Everything is vectorised over integer customer codes (numpy bincount / lexsort and pandas
groupby), so 1M events for 100k customers take a few seconds; there is no per-customer
Python loop except building the small JSON lists (top categories, brands) at the end.

Definitions (the contract doc repeats them for the UI):

- Only events at or before ``as_of`` count; anonymous events (customer_id NA) are ignored.
- An *order* is a distinct non-empty ``source`` among a customer's purchase events;
  purchase lines with an empty source are grouped per calendar day in the catalog's time
  zone instead. ``frequency`` is the number of orders.
- ``monetary`` = purchase value - return value (can be negative when the data holds returns
  of purchases made before it starts). Missing values count as 0.
- ``aov`` = gross purchase value / frequency (what an order is worth when it is placed).
- ``return_rate`` = returned units / purchased units, ``return_rate_value`` the same by
  value; both capped at 1 (returns of older purchases can push the raw ratio above 1).
- RFM scores: see `rfm_scores` (rank-based quintiles, ties share the lower score) and
  `SEGMENT_RULES` (the 11 named segments, a partition of the R x FM grid).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from .sensitive import strip_sensitive

Progress = Callable[[int, int], None]

NS_PER_DAY = 86_400 * 10**9
PURCHASE = "purchase"
RETURN = "return"
INTEREST_KINDS = ("view", "click", "cart", "wishlist", "rating", "review")
CONSENT_COLUMNS = ("consent_email", "consent_sms", "consent_push", "consent_ads")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NO_PURCHASES = "No purchases"

# Segment name, R score range, FM score range (both inclusive), FM = floor((F + M) / 2).
# The 25 (R, FM) cells are covered exactly once (checked at import time below):
#
#   FM \ R |  1               2               3                4                   5
#   -------+-----------------------------------------------------------------------------------
#     5    |  Can't lose them Can't lose them Loyal            Loyal               Champions
#     4    |  At risk         At risk         Loyal            Loyal               Champions
#     3    |  At risk         At risk         Need attention   Potential loyalist  Potential loyalist
#     2    |  Lost            Hibernating     About to sleep   Potential loyalist  Potential loyalist
#     1    |  Lost            Hibernating     About to sleep   Promising           New
SEGMENT_RULES: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = (
    ("Champions", (5, 5), (4, 5)),
    ("Loyal", (3, 4), (4, 5)),
    ("Potential loyalist", (4, 5), (2, 3)),
    ("New", (5, 5), (1, 1)),
    ("Promising", (4, 4), (1, 1)),
    ("Need attention", (3, 3), (3, 3)),
    ("About to sleep", (3, 3), (1, 2)),
    ("At risk", (1, 2), (3, 4)),
    ("Can't lose them", (1, 2), (5, 5)),
    ("Hibernating", (2, 2), (1, 2)),
    ("Lost", (1, 1), (1, 2)),
)
SEGMENTS: tuple[str, ...] = tuple(name for name, _, _ in SEGMENT_RULES) + (NO_PURCHASES,)


def _segment_grid() -> np.ndarray:
    grid = np.full((5, 5), -1, dtype=np.int64)  # [r - 1, fm - 1] -> index into SEGMENTS
    for i, (name, (r_lo, r_hi), (fm_lo, fm_hi)) in enumerate(SEGMENT_RULES):
        cells = grid[r_lo - 1 : r_hi, fm_lo - 1 : fm_hi]
        if (cells != -1).any():
            raise AssertionError(f"segment rule {name!r} overlaps another")
        cells[...] = i
    if (grid == -1).any():
        raise AssertionError("segment rules leave part of the R x FM grid uncovered")
    return grid


_GRID = _segment_grid()

PRICE_BANDS = ("budget", "mid", "premium")


@dataclass(frozen=True)
class ProfileOptions:
    """Knobs with defaults that suit most shops; the UI may expose a few of them."""

    top_categories: int = 3
    top_brands: int = 3
    # A customer's median (paid unit price / category median price) below the first edge is
    # "budget", above the second "premium", else "mid". Symmetric in log space (±22 %).
    price_band_edges: tuple[float, float] = (0.8, 1.25)
    # Category path depth used for top categories (None = the full path, 1 = "Home").
    category_depth: int | None = None


@dataclass(frozen=True)
class PopulationStats:
    """Catalog-wide figures the profiles were measured against (shown next to them)."""

    customers: int
    buyers: int
    events: int
    median_gap_days: float | None  # median of customers' median inter-order gaps
    segment_counts: dict[str, int]
    category_median_price: dict[str, float]  # "" = products without a category


@dataclass(frozen=True)
class ProfileResult:
    profiles: pd.DataFrame  # index customer_id; columns in PROFILE_COLUMNS
    population: PopulationStats
    as_of: pd.Timestamp
    timezone: str
    dropped_sensitive: tuple[str, ...] = field(default=())


PROFILE_COLUMNS: tuple[str, ...] = (
    "country",
    "language",
    *CONSENT_COLUMNS,
    "events",
    "first_seen",
    "last_seen",
    "first_purchase",
    "last_purchase",
    "recency_days",
    "frequency",
    "monetary",
    "purchase_value",
    "return_value",
    "purchased_units",
    "returned_units",
    "aov",
    "return_rate",
    "return_rate_value",
    "r_score",
    "f_score",
    "m_score",
    "fm_score",
    "rfm_segment",
    "top_categories",
    "top_category",
    "categories_basis",
    "favourite_brands",
    "top_brand",
    "price_ratio",
    "price_band",
    "preferred_weekday",
    "preferred_hour",
    "median_gap_days",
    "expected_next_order",
)

EVENT_COLUMNS = ("customer_id", "product_id", "kind", "quantity", "value", "occurred_at", "source")
PRODUCT_COLUMNS = ("product_id", "category", "brand", "price")


# --------------------------------------------------------------------------- preparation


def as_utc_timestamp(value: datetime | pd.Timestamp | str, name: str = "as_of") -> pd.Timestamp:
    """A tz-aware timestamp converted to UTC; naive values are refused (ambiguous)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return ts.tz_convert("UTC")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} frame is missing column(s): {', '.join(missing)}")


def _category_at_depth(categories: pd.Series, depth: int | None) -> pd.Series:
    cats = categories.fillna("").astype(str).str.strip()
    if depth is None:
        return cats
    parts = cats.str.split(">")
    return parts.map(lambda p: " > ".join(s.strip() for s in p[:depth] if s.strip()))


@dataclass
class PreparedEvents:
    """Events as aligned numpy arrays keyed by customer position (shared with `clv`).

    Built once per run; `compute_profiles` and the CLV feature builder then filter by time
    with a boolean mask instead of re-joining frames.
    """

    customer_ids: np.ndarray  # int64, sorted; position = customer code
    code: np.ndarray  # int64 customer code per event
    t: np.ndarray  # int64 ns since epoch, UTC
    is_purchase: np.ndarray
    is_return: np.ndarray
    is_interest: np.ndarray  # views, carts, clicks, wishlists, ratings, reviews
    kind: np.ndarray  # object, lower-case kind
    qty: np.ndarray  # int64, >= 0
    value: np.ndarray  # float64, NaN -> 0, >= 0 for returns
    weekday: np.ndarray  # 0 = Monday, local time
    hour: np.ndarray  # local time
    day: np.ndarray  # local calendar day number
    product: np.ndarray  # int64 product id, -1 unknown
    cat: np.ndarray  # int64 index into categories (top-category depth), -1 none
    categories: np.ndarray  # sorted names
    brand: np.ndarray  # int64 index into brands, -1 none
    brands: np.ndarray
    ref_price: np.ndarray  # float64 category median price per event (NaN unknown)
    source: np.ndarray  # object
    category_median_price: dict[str, float]

    @property
    def n_customers(self) -> int:
        return int(self.customer_ids.size)


def prepare_events(
    events: pd.DataFrame,
    products: pd.DataFrame,
    customers: pd.DataFrame | None,
    *,
    timezone: str = "UTC",
    category_depth: int | None = None,
) -> PreparedEvents:
    """Validate the frames and turn them into `PreparedEvents` (one pass, vectorised)."""
    _require(events, EVENT_COLUMNS, "events")
    _require(products, PRODUCT_COLUMNS, "products")
    ev = events[events["customer_id"].notna()]
    cust_event = ev["customer_id"].to_numpy(dtype=np.int64)
    ids = np.unique(cust_event)
    if customers is not None and len(customers):
        _require(customers, ("customer_id",), "customers")
        ids = np.union1d(ids, customers["customer_id"].to_numpy(dtype=np.int64))
    code = np.searchsorted(ids, cust_event)

    when = ev["occurred_at"]
    if not isinstance(when.dtype, pd.DatetimeTZDtype):
        raise ValueError("events.occurred_at must be a tz-aware datetime64 column (UTC)")
    when_utc = when.dt.tz_convert("UTC")
    t = when_utc.array.asi8.astype(np.int64, copy=False)
    local = pd.DatetimeIndex(when_utc).tz_convert(timezone)
    weekday = local.weekday.to_numpy(dtype=np.int64)
    hour = local.hour.to_numpy(dtype=np.int64)
    day = local.tz_localize(None).asi8 // NS_PER_DAY

    kind = ev["kind"].astype(str).str.strip().str.lower().to_numpy(dtype=object)
    is_purchase = kind == PURCHASE
    is_return = kind == RETURN
    is_interest = np.isin(kind, INTEREST_KINDS)
    qty = np.abs(pd.to_numeric(ev["quantity"], errors="coerce").fillna(0).to_numpy(np.int64))
    value = pd.to_numeric(ev["value"], errors="coerce").fillna(0.0).to_numpy(np.float64)
    value = np.where(is_return, np.abs(value), value)
    product = pd.array(ev["product_id"], dtype="Int64").to_numpy(dtype=np.int64, na_value=-1)

    prod = products.drop_duplicates("product_id", keep="last")
    prod_ids = prod["product_id"].to_numpy(dtype=np.int64)
    order = np.argsort(prod_ids)
    prod_ids = prod_ids[order]
    cats_full = _category_at_depth(prod["category"], None).to_numpy(dtype=object)[order]
    cats_top = _category_at_depth(prod["category"], category_depth).to_numpy(dtype=object)[order]
    brand_names = prod["brand"].fillna("").astype(str).str.strip().to_numpy(dtype=object)[order]
    prices = pd.to_numeric(prod["price"], errors="coerce").to_numpy(np.float64)[order]

    pos = np.searchsorted(prod_ids, product)
    pos = np.clip(pos, 0, max(prod_ids.size - 1, 0))
    known = (product >= 0) & (prod_ids.size > 0)
    if prod_ids.size:
        known &= prod_ids[pos] == product

    categories, cat_of_product = _codes(cats_top)
    brands, brand_of_product = _codes(brand_names)
    cat = np.where(known, cat_of_product[pos] if prod_ids.size else -1, -1)
    brand = np.where(known, brand_of_product[pos] if prod_ids.size else -1, -1)

    # Reference price per full category path ("" = uncategorised products as one group):
    # median list price; where a category has no list prices, the median paid unit price.
    list_prices = pd.Series(prices).groupby(cats_full).median().dropna()
    paid = is_purchase & known & (qty > 0) & (value > 0)
    if paid.any():
        paid_unit = pd.Series(value[paid] / qty[paid]).groupby(cats_full[pos[paid]]).median()
        reference = list_prices.combine_first(paid_unit)
    else:
        reference = list_prices
    reference = reference[reference > 0]
    full_of_event = np.where(known, cats_full[pos] if prod_ids.size else "", None)
    ref_price = pd.Series(full_of_event).map(reference).to_numpy(dtype=np.float64, na_value=np.nan)
    ref_price[~known] = np.nan

    return PreparedEvents(
        customer_ids=ids,
        code=code,
        t=t,
        is_purchase=is_purchase,
        is_return=is_return,
        is_interest=is_interest,
        kind=kind,
        qty=qty,
        value=value,
        weekday=weekday,
        hour=hour,
        day=day,
        product=np.where(known, product, -1),
        cat=cat,
        categories=categories,
        brand=brand,
        brands=brands,
        ref_price=ref_price,
        source=ev["source"].fillna("").astype(str).str.strip().to_numpy(dtype=object),
        category_median_price={str(k): float(v) for k, v in reference.items()},
    )


def _codes(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct non-empty names and each input's index into them (-1 for "")."""
    distinct = np.array(sorted({n for n in names if n}), dtype=object)
    if not distinct.size:
        return distinct, np.full(names.size, -1, dtype=np.int64)
    idx = np.searchsorted(distinct, names)
    idx = np.clip(idx, 0, distinct.size - 1)
    return distinct, np.where(names == distinct[idx], idx, -1).astype(np.int64)


# --------------------------------------------------------------------------- aggregation


@dataclass
class Orders:
    """One row per order: customer code, first line time (ns), value, units."""

    code: np.ndarray
    t: np.ndarray
    value: np.ndarray


def orders_of(prep: PreparedEvents, mask: np.ndarray) -> Orders:
    """Orders among the masked purchase lines: distinct source, else distinct local day."""
    p = mask & prep.is_purchase
    code = prep.code[p]
    src = prep.source[p]
    has_src = src != ""
    src_codes, _ = pd.factorize(src)
    day = prep.day[p]
    key = np.where(has_src, src_codes, src_codes.max(initial=0) + 1 + day - day.min(initial=0))
    pair = code * (int(key.max(initial=0)) + 1) + key
    uniq, inv = np.unique(pair, return_inverse=True)
    first = np.full(uniq.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, inv, prep.t[p])
    value = np.bincount(inv, weights=prep.value[p], minlength=uniq.size)
    order_code = np.zeros(uniq.size, dtype=np.int64)
    order_code[inv] = code
    sort = np.lexsort((first, order_code))
    return Orders(code=order_code[sort], t=first[sort], value=value[sort])


def gaps_of(orders: Orders) -> tuple[np.ndarray, np.ndarray]:
    """Inter-order gaps in days and the customer code each gap belongs to."""
    same = orders.code[1:] == orders.code[:-1]
    gaps = (orders.t[1:] - orders.t[:-1])[same] / NS_PER_DAY
    return orders.code[1:][same], gaps


def top_shares(
    code: np.ndarray, item: np.ndarray, weight: np.ndarray, n_items: int, k: int
) -> pd.DataFrame:
    """Per customer, the k items with the largest share of the weight (ties: item order).

    Returns long rows (code, item, share, rank), rank 0 first. Item codes come from sorted
    names, so equal weights break ties alphabetically — the same on every run.
    """
    keep = (item >= 0) & (weight > 0)
    code, item, weight = code[keep], item[keep], weight[keep]
    if not code.size:
        return pd.DataFrame({"code": [], "item": [], "share": [], "rank": []}, dtype=np.int64)
    key = code * n_items + item
    uniq, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv, weights=weight)
    c, it = uniq // n_items, uniq % n_items
    total = pd.Series(w).groupby(c).transform("sum").to_numpy()
    share = w / total
    order = np.lexsort((it, -w, c))
    c, it, share = c[order], it[order], share[order]
    idx = np.arange(c.size)
    starts = np.r_[True, c[1:] != c[:-1]]
    rank = idx - np.maximum.accumulate(np.where(starts, idx, 0))
    sel = rank < k
    return pd.DataFrame({"code": c[sel], "item": it[sel], "share": share[sel], "rank": rank[sel]})


def _lists(top: pd.DataFrame, names: np.ndarray, n: int, key: str) -> tuple[list, np.ndarray]:
    """JSON-ready lists [{key: name, "share": 0.62}, ...] per customer, and the first name."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    first = np.full(n, "", dtype=object)
    for c, it, share in zip(
        top["code"].to_numpy(), top["item"].to_numpy(), top["share"].to_numpy(), strict=True
    ):
        lst = out[c]
        if not lst:
            first[c] = names[it]
        lst.append({key: str(names[it]), "share": round(float(share), 4)})
    return out, first


def _mode(code: np.ndarray, values: np.ndarray, n: int, width: int) -> np.ndarray:
    """Most frequent value per customer (smallest on ties); -1 without events."""
    counts = np.bincount(code * width + values, minlength=n * width).reshape(n, width)
    best = counts.argmax(axis=1)
    return np.where(counts.sum(axis=1) > 0, best, -1)


def _ns_to_datetime(ns: np.ndarray, valid: np.ndarray) -> pd.DatetimeIndex:
    out = pd.to_datetime(np.where(valid, ns, np.iinfo(np.int64).min), utc=True)
    return pd.DatetimeIndex(out)


def _group_min_max(code: np.ndarray, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    if code.size:
        g = pd.Series(t).groupby(code)
        mins, maxs = g.min(), g.max()
        lo[mins.index.to_numpy()] = mins.to_numpy()
        hi[maxs.index.to_numpy()] = maxs.to_numpy()
    return lo, hi


@dataclass
class BaseAggregates:
    """Per-customer arrays (length n) used by profiles and by the CLV features."""

    events: np.ndarray
    first_seen: np.ndarray  # ns, int64 max when none
    last_seen: np.ndarray
    first_purchase: np.ndarray
    last_purchase: np.ndarray
    frequency: np.ndarray
    purchase_value: np.ndarray
    return_value: np.ndarray
    purchased_units: np.ndarray
    returned_units: np.ndarray
    median_gap_days: np.ndarray  # NaN with fewer than 2 orders
    orders: Orders

    @property
    def buyer(self) -> np.ndarray:
        return self.frequency > 0

    @property
    def monetary(self) -> np.ndarray:
        return self.purchase_value - self.return_value


def base_aggregates(prep: PreparedEvents, mask: np.ndarray) -> BaseAggregates:
    """Counts, sums, first/last times and orders for the masked events."""
    n = prep.n_customers
    code = prep.code[mask]
    first_seen, last_seen = _group_min_max(code, prep.t[mask], n)
    p = mask & prep.is_purchase
    r = mask & prep.is_return
    first_purchase, last_purchase = _group_min_max(prep.code[p], prep.t[p], n)
    orders = orders_of(prep, mask)
    frequency = np.bincount(orders.code, minlength=n)
    gap_code, gaps = gaps_of(orders)
    median_gap = np.full(n, np.nan)
    if gaps.size:
        med = pd.Series(gaps).groupby(gap_code).median()
        median_gap[med.index.to_numpy()] = med.to_numpy()
    return BaseAggregates(
        events=np.bincount(code, minlength=n),
        first_seen=first_seen,
        last_seen=last_seen,
        first_purchase=first_purchase,
        last_purchase=last_purchase,
        frequency=frequency,
        purchase_value=np.bincount(prep.code[p], weights=prep.value[p], minlength=n),
        return_value=np.bincount(prep.code[r], weights=prep.value[r], minlength=n),
        purchased_units=np.bincount(prep.code[p], weights=prep.qty[p], minlength=n).astype(
            np.int64
        ),
        returned_units=np.bincount(prep.code[r], weights=prep.qty[r], minlength=n).astype(np.int64),
        median_gap_days=median_gap,
        orders=orders,
    )


def price_ratio(prep: PreparedEvents, mask: np.ndarray) -> np.ndarray:
    """Median over a customer's purchase lines of paid unit price / category median price."""
    p = mask & prep.is_purchase & (prep.qty > 0) & (prep.value > 0) & (prep.ref_price > 0)
    out = np.full(prep.n_customers, np.nan)
    if p.any():
        ratio = prep.value[p] / prep.qty[p] / prep.ref_price[p]
        med = pd.Series(ratio).groupby(prep.code[p]).median()
        out[med.index.to_numpy()] = med.to_numpy()
    return out


def price_band(ratio: np.ndarray, edges: tuple[float, float] = (0.8, 1.25)) -> np.ndarray:
    """ "budget" / "mid" / "premium" from the price ratio; "" when unknown."""
    low, high = edges
    band = np.where(ratio < low, "budget", np.where(ratio > high, "premium", "mid")).astype(object)
    band[np.isnan(ratio)] = ""
    return band


# --------------------------------------------------------------------------- RFM


def _quintile_score(x: np.ndarray) -> np.ndarray:
    """1..5 from the rank of each value (higher x = higher score); ties share the lowest.

    score = 1 + floor(5 * (min_rank - 1) / n). Identical values always get the same score,
    the lowest value always scores 1, and the result does not depend on row order. The
    price: when one value covers more than a fifth of the customers, the scores it spans
    stay empty (60 % one-order buyers -> all F=1, the next group starts at F=4).
    """
    n = x.size
    if not n:
        return np.zeros(0, dtype=np.int64)
    ranks = pd.Series(x).rank(method="min").to_numpy(dtype=np.int64)
    return 1 + (5 * (ranks - 1)) // n


def rfm_scores(
    recency_days: np.ndarray | pd.Series,
    frequency: np.ndarray | pd.Series,
    monetary: np.ndarray | pd.Series,
) -> pd.DataFrame:
    """R, F, M scores 1..5 among buyers (frequency > 0); 0 for everyone else.

    Quintiles are rank-based (see `_quintile_score`): R ranks on fewer days since the
    last purchase (more recent = higher), F on more orders, M on more net spend. Scores
    are relative to the buyers passed in, so they are a catalog's own yardstick.
    FM = floor((F + M) / 2) feeds `rfm_segment`.
    """
    rec = pd.to_numeric(pd.Series(np.asarray(recency_days, dtype=object)), errors="coerce")
    freq = np.asarray(frequency, dtype=np.float64)
    mon = np.asarray(monetary, dtype=np.float64)
    buyer = (freq > 0) & rec.notna().to_numpy()
    out = {k: np.zeros(freq.size, dtype=np.int64) for k in ("r_score", "f_score", "m_score")}
    if buyer.any():
        out["r_score"][buyer] = _quintile_score(-rec.to_numpy(np.float64)[buyer])
        out["f_score"][buyer] = _quintile_score(freq[buyer])
        out["m_score"][buyer] = _quintile_score(np.nan_to_num(mon[buyer]))
    frame = pd.DataFrame(out)
    frame["fm_score"] = (frame["f_score"] + frame["m_score"]) // 2
    return frame


def rfm_segment(r_score: np.ndarray | pd.Series, fm_score: np.ndarray | pd.Series) -> np.ndarray:
    """Segment names from R and FM scores via `SEGMENT_RULES`; score 0 -> "No purchases"."""
    r = np.asarray(r_score, dtype=np.int64)
    fm = np.asarray(fm_score, dtype=np.int64)
    if ((r < 0) | (r > 5) | (fm < 0) | (fm > 5)).any():
        raise ValueError("RFM scores must be between 0 and 5")
    names = np.array(SEGMENTS, dtype=object)
    none = (r == 0) | (fm == 0)
    idx = _GRID[np.clip(r, 1, 5) - 1, np.clip(fm, 1, 5) - 1]
    return np.where(none, NO_PURCHASES, names[idx])


# --------------------------------------------------------------------------- profiles


def compute_profiles(
    events: pd.DataFrame,
    products: pd.DataFrame,
    customers: pd.DataFrame | None,
    *,
    as_of: datetime | pd.Timestamp,
    timezone: str = "UTC",
    options: ProfileOptions | None = None,
    sensitive: Iterable[str] | None = None,
    on_progress: Progress | None = None,
    prepared: PreparedEvents | None = None,
) -> ProfileResult:
    """One profile row per customer (customers frame ∪ customers seen in events).

    ``as_of`` is tz-aware; events after it are ignored, so profiles "as they were" on a past
    date can be recomputed. ``timezone`` (the catalog's) sets weekday/hour and the day used
    for orders without a source. Customers without purchases get recency <NA>, scores 0,
    segment "No purchases", NaN ratios, and their top categories from browsing
    (``categories_basis`` = "browsing"). ``prepared`` lets a caller that already built
    `PreparedEvents` (same frames) skip that step.
    """
    opts = options or ProfileOptions()
    as_of_ts = as_utc_timestamp(as_of)
    report = on_progress or (lambda done, total: None)
    total_steps = 6
    report(0, total_steps)
    stripped = None
    if customers is not None:
        stripped = strip_sensitive(customers, sensitive)
        customers = stripped.customers
    prep = prepared or prepare_events(
        events, products, customers, timezone=timezone, category_depth=opts.category_depth
    )
    report(1, total_steps)
    n = prep.n_customers
    mask = prep.t <= as_of_ts.value
    base = base_aggregates(prep, mask)
    buyer = base.buyer
    report(2, total_steps)

    recency = np.where(
        buyer, (as_of_ts.value - np.where(buyer, base.last_purchase, 0)) // NS_PER_DAY, 0
    )
    recency_days = pd.array(recency, dtype="Int64")
    recency_days[~buyer] = pd.NA
    monetary = base.monetary
    scores = rfm_scores(recency_days.to_numpy(dtype=np.float64, na_value=np.nan),
                        base.frequency, monetary)  # fmt: skip
    segment = rfm_segment(scores["r_score"], scores["fm_score"])
    report(3, total_steps)

    with np.errstate(invalid="ignore", divide="ignore"):
        aov = np.where(buyer, base.purchase_value / np.maximum(base.frequency, 1), np.nan)
        rr_units = np.where(
            base.purchased_units > 0,
            np.minimum(base.returned_units / np.maximum(base.purchased_units, 1), 1.0),
            np.nan,
        )
        rr_value = np.where(
            base.purchase_value > 0,
            np.minimum(base.return_value / np.where(base.purchase_value > 0, base.purchase_value, 1), 1.0),
            np.nan,
        )  # fmt: skip
    rr_units[~buyer] = np.nan
    rr_value[~buyer] = np.nan

    # Top categories and brands: share of purchase value; customers without purchases get
    # categories from their browsing (one unit of weight per interest event).
    p = mask & prep.is_purchase
    weight = np.clip(prep.value[p], 0, None)
    cat_top = top_shares(prep.code[p], prep.cat[p], weight, max(len(prep.categories), 1),
                         opts.top_categories)  # fmt: skip
    brand_top = top_shares(prep.code[p], prep.brand[p], weight, max(len(prep.brands), 1),
                           opts.top_brands)  # fmt: skip
    i = mask & prep.is_interest & ~buyer[prep.code]
    browse_top = top_shares(prep.code[i], prep.cat[i], np.ones(int(i.sum())),
                            max(len(prep.categories), 1), opts.top_categories)  # fmt: skip
    categories, top_category = _lists(pd.concat([cat_top, browse_top]), prep.categories, n, "name")
    brands, top_brand = _lists(brand_top, prep.brands, n, "name")
    basis = np.full(n, "", dtype=object)
    basis[cat_top["code"].to_numpy(dtype=np.int64)] = "purchases"
    basis[browse_top["code"].to_numpy(dtype=np.int64)] = "browsing"
    report(4, total_steps)

    ratio = price_ratio(prep, mask)
    band = price_band(ratio, opts.price_band_edges)
    m = mask
    weekday = _mode(prep.code[m], prep.weekday[m], n, 7)
    hour = _mode(prep.code[m], prep.hour[m], n, 24)
    report(5, total_steps)

    valid_gaps = base.median_gap_days[~np.isnan(base.median_gap_days)]
    population_gap = float(np.median(valid_gaps)) if valid_gaps.size else None
    gap = np.where(np.isnan(base.median_gap_days), population_gap or np.nan, base.median_gap_days)
    has_next = buyer & ~np.isnan(gap)
    gap_ns = np.where(has_next, np.nan_to_num(gap) * NS_PER_DAY, 0).astype(np.int64)
    next_ns = (base.last_purchase + gap_ns) // 10**9 * 10**9  # whole seconds

    frame = pd.DataFrame(index=pd.Index(prep.customer_ids, name="customer_id"))
    _customer_columns(frame, customers)
    has_events = base.events > 0
    frame["events"] = base.events
    frame["first_seen"] = _ns_to_datetime(base.first_seen, has_events)
    frame["last_seen"] = _ns_to_datetime(base.last_seen, has_events)
    frame["first_purchase"] = _ns_to_datetime(base.first_purchase, buyer)
    frame["last_purchase"] = _ns_to_datetime(base.last_purchase, buyer)
    frame["recency_days"] = recency_days
    frame["frequency"] = base.frequency.astype(np.int64)
    frame["monetary"] = np.round(monetary, 2)
    frame["purchase_value"] = np.round(base.purchase_value, 2)
    frame["return_value"] = np.round(base.return_value, 2)
    frame["purchased_units"] = base.purchased_units
    frame["returned_units"] = base.returned_units
    frame["aov"] = np.round(aov, 2)
    frame["return_rate"] = rr_units
    frame["return_rate_value"] = rr_value
    for col in ("r_score", "f_score", "m_score", "fm_score"):
        frame[col] = scores[col].to_numpy()
    frame["rfm_segment"] = segment
    frame["top_categories"] = categories
    frame["top_category"] = top_category
    frame["categories_basis"] = basis
    frame["favourite_brands"] = brands
    frame["top_brand"] = top_brand
    frame["price_ratio"] = ratio
    frame["price_band"] = band
    frame["preferred_weekday"] = pd.array(np.where(weekday >= 0, weekday, 0), dtype="Int64")
    frame.loc[weekday < 0, "preferred_weekday"] = pd.NA
    frame["preferred_hour"] = pd.array(np.where(hour >= 0, hour, 0), dtype="Int64")
    frame.loc[hour < 0, "preferred_hour"] = pd.NA
    frame["median_gap_days"] = base.median_gap_days
    frame["expected_next_order"] = _ns_to_datetime(next_ns, has_next)
    frame = frame[list(PROFILE_COLUMNS)]

    counts = pd.Series(segment).value_counts()
    population = PopulationStats(
        customers=n,
        buyers=int(buyer.sum()),
        events=int(mask.sum()),
        median_gap_days=population_gap,
        segment_counts={s: int(counts.get(s, 0)) for s in SEGMENTS},
        category_median_price=prep.category_median_price,
    )
    report(total_steps, total_steps)
    return ProfileResult(
        profiles=frame,
        population=population,
        as_of=as_of_ts,
        timezone=timezone,
        dropped_sensitive=stripped.dropped if stripped else (),
    )


def _customer_columns(frame: pd.DataFrame, customers: pd.DataFrame | None) -> None:
    """Copy country, language and consents (missing customers: "" and False)."""
    cols = ("country", "language", *CONSENT_COLUMNS)
    if customers is None or not len(customers):
        for c in cols:
            frame[c] = False if c.startswith("consent_") else ""
        return
    src = customers.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    src.index = src.index.astype(np.int64)
    for c in cols:
        if c in src.columns:
            values = src[c].reindex(frame.index)
        else:
            values = pd.Series(np.nan, index=frame.index, dtype=object)
        if c.startswith("consent_"):
            frame[c] = values.map(lambda v: v is True or v == 1 or str(v).lower() == "true")
            frame[c] = frame[c].astype(bool)
        else:
            frame[c] = values.fillna("").astype(str)


# --------------------------------------------------------------------------- output


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime(warn=False)  # Django stores microseconds at most
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def profile_records(profiles: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python dicts (None for missing, datetime for times) for bulk writes."""
    frame = profiles.reset_index()
    columns = list(frame.columns)
    data = [frame[c].astype(object).to_numpy() for c in columns]
    return [
        {c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in zip(*data, strict=True)
    ]


def weekday_name(day: int | None) -> str:
    """0 -> "Monday"; None -> ""."""
    return "" if day is None or pd.isna(day) else WEEKDAYS[int(day)]
