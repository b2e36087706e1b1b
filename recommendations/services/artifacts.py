"""A catalog's training data as frames, and the fitted-model artifact a run scores with.

The artifact is a pickle under ``settings.DATA_DIR / "models" / f"run-{id}.pkl"``: every
worker that scores batches opens it, so **workers on several machines must share DATA_DIR**
(a network volume). Pickles are trusted input here: only Tailor's own workers write them,
into its own data dir. A pickle larger than RECOMMENDATION_MAX_ARTIFACT_MB is refused
(`ArtifactTooLarge`). Each process caches the artifacts it opened (two, by run; the preview
asks for one, so a web process holds at most one).

The artifact holds what scoring needs and no more of the customers' history: models drop
their interaction log when pickled (`Recommender.__getstate__`). What stays (purchase
matrices, reasons' history) is personal data: a customer's erasure retires the model files
that contain them (`recommendations.services.retention`).
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from django.conf import settings
from django.utils import timezone

from marketing.analytics.profiles import rfm_scores, rfm_segment
from marketing.models import Catalog, Event, EventKind, Product, Profile, effective_category
from marketing.services.customers import customer_erased_ids
from marketing.services.frames import query_frame  # COPY … TO STDOUT on PostgreSQL
from recommendations.algorithms.base import Dataset, Recommender
from recommendations.algorithms.buy_again import BuyAgain
from recommendations.algorithms.postprocess import ItemSimilarity
from recommendations.algorithms.reasons import ReasonContext

# How far back "this month" (segment popularity, popular, new products) looks.
WINDOW_DAYS = 30

_PURCHASE_COLUMNS = ["user_id", "item_id", "timestamp", "source"]
_PURCHASE_TYPES = {
    "user_id": pa.int64(),
    "item_id": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "source": pa.string(),
}


@dataclass
class TrainingData:
    """What a run trains on: purchases (user_id = customer id, item_id = product id,
    timestamp, basket, weight), every product and every customer to score."""

    purchases: pd.DataFrame
    customer_ids: np.ndarray  # sorted int64: customers with any event in the catalog
    product_ids: np.ndarray  # int64, the catalog's products
    products: pd.DataFrame  # indexed by product id: title, description, category, brand,
    #                         price, in_stock, created_at
    segments: pd.Series  # RFM segment by customer id ("" = no profile)

    def dataset(self) -> Dataset:
        features = self.products[["title", "description", "category", "brand", "price"]]
        users = pd.DataFrame({"segment": self.segments.reindex(self.customer_ids).fillna("")})
        users.index = self.customer_ids
        return Dataset.from_interactions(
            self.purchases,
            user_ids=self.customer_ids,
            item_ids=self.product_ids,
            item_features=features,
            user_features=users,
        )

    def segments_of(self, purchases: pd.DataFrame) -> pd.DataFrame:
        """User features computed from ``purchases`` alone (a split's training frame), for
        tuning: each buyer's RFM segment as of the last of those purchases — days since
        their last purchase, orders (baskets), spend at list prices, scored by
        `marketing.analytics.profiles`. The stored profiles' segments count every purchase,
        held-out days included, so tuning on them would see the future."""
        if purchases.empty:
            return pd.DataFrame({"segment": pd.Series(dtype=object)})
        price = self.products["price"].reindex(purchases["item_id"].to_numpy()).to_numpy()
        frame = purchases[["user_id", "timestamp", "basket"]].assign(
            spend=np.nan_to_num(price) * purchases["weight"].to_numpy(dtype=np.float64)
        )
        grouped = frame.groupby("user_id", sort=True)
        last = grouped["timestamp"].max()
        recency = (frame["timestamp"].max() - last).dt.total_seconds() / 86_400
        scores = rfm_scores(
            recency.to_numpy(),
            grouped["basket"].nunique().to_numpy(),
            grouped["spend"].sum().to_numpy(),
        )
        segment = rfm_segment(scores["r_score"], scores["fm_score"])
        return pd.DataFrame({"segment": segment}, index=last.index)

    def items_meta(self) -> pd.DataFrame:
        meta = self.products.reindex(self.product_ids)[["category", "price", "in_stock"]]
        return meta.reset_index(drop=True)

    def item_new(self, *, now: dt.datetime | None = None) -> np.ndarray:
        """New products: first bought within WINDOW_DAYS of the data's last purchase, or
        never bought and added to the catalog within WINDOW_DAYS of now."""
        now = pd.Timestamp(now or timezone.now())
        window = pd.Timedelta(days=WINDOW_DAYS)
        first = self.purchases.groupby("item_id")["timestamp"].min()
        as_of = self.purchases["timestamp"].max()
        first = first.reindex(self.product_ids)
        created = pd.to_datetime(self.products["created_at"].reindex(self.product_ids), utc=True)
        bought_recently = (first >= as_of - window).to_numpy(dtype=bool)
        never_bought = first.isna().to_numpy()
        added_recently = (created >= now - window).to_numpy(dtype=bool)
        return bought_recently | (never_bought & added_recently)


def training_data_read(*, catalog: Catalog) -> TrainingData:
    """The catalog's purchases (known customers and products, positive quantities; erased
    customers left out), its products and the customers to score, read in a few queries."""
    erased = customer_erased_ids()
    rows = Event.objects.filter(
        catalog=catalog,
        kind=EventKind.PURCHASE,
        customer__isnull=False,
        product__isnull=False,
        quantity__gt=0,
    ).values_list("customer_id", "product_id", "occurred_at", "source")
    purchases = query_frame(rows, _PURCHASE_COLUMNS, _PURCHASE_TYPES)
    purchases["user_id"] = purchases["user_id"].astype("int64")
    purchases["item_id"] = purchases["item_id"].astype("int64")
    purchases["timestamp"] = pd.to_datetime(purchases["timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    if erased:
        purchases = purchases[~purchases["user_id"].isin(erased)]
    source = purchases["source"].fillna("").astype(str)
    day = purchases["timestamp"].dt.strftime("%Y-%m-%d")
    # An order is its source reference; lines without one form a basket per customer and day.
    purchases = purchases.assign(
        basket=np.where(source != "", "o:" + source, "d:" + purchases["user_id"].astype(str) + day),
        weight=1.0,
    ).drop(columns=["source"])

    customers = (
        Event.objects.filter(catalog=catalog, customer__isnull=False)
        .order_by()
        .values_list("customer_id", flat=True)
        .distinct()
    )
    customer_ids = np.unique(np.fromiter(customers.iterator(chunk_size=20_000), dtype=np.int64))
    if erased:
        customer_ids = customer_ids[~np.isin(customer_ids, list(erased))]

    product_rows = (
        Product.objects.filter(catalog=catalog)
        .annotate(effective=effective_category())
        .order_by("id")
        .values_list(
            "id", "title", "description", "effective", "brand", "price", "in_stock", "created_at"
        )
    )
    products = pd.DataFrame.from_records(
        list(product_rows),
        columns=[
            "id",
            "title",
            "description",
            "category",
            "brand",
            "price",
            "in_stock",
            "created_at",
        ],
    ).set_index("id")
    products["price"] = pd.to_numeric(products["price"], errors="coerce").astype("float64")
    products["in_stock"] = products["in_stock"].astype(bool)
    product_ids = products.index.to_numpy(dtype=np.int64)

    segments = pd.Series(
        dict(Profile.objects.filter(catalog=catalog).values_list("customer_id", "rfm_segment")),
        dtype=object,
    )
    return TrainingData(purchases, customer_ids, product_ids, products, segments)


@dataclass
class Artifact:
    """Everything a scoring worker needs, fitted on ALL of the run's data.

    model: the selected recommender; buy_again: a fitted BuyAgain (None when the data has no
    repeat purchases to fit it on); customer_ids / product_ids: the dense index order;
    popularity: the fallback score per item (distinct buyers in the window, then ever).
    """

    run_id: int
    model: Recommender
    buy_again: BuyAgain | None
    customer_ids: np.ndarray
    product_ids: np.ndarray
    titles: np.ndarray
    items_meta: pd.DataFrame
    popularity: np.ndarray
    reasons: ReasonContext
    as_of: pd.Timestamp
    item_similarity: ItemSimilarity | None = None  # built at training when MMR is on

    def user_index(self, customer_ids: np.ndarray) -> np.ndarray:
        """Dense user index of each customer id (-1 when not in this run)."""
        return pd.Index(self.customer_ids).get_indexer(np.asarray(customer_ids))

    def item_index(self) -> dict[int, int]:
        return {int(pid): i for i, pid in enumerate(self.product_ids)}

    def similarity(self, *, build: bool = True) -> ItemSimilarity | None:
        """Item similarity for diversity re-ranking: built at training and stored; an older
        artifact without it builds it on first use (build=False: None instead)."""
        if self.item_similarity is None and build:
            self.item_similarity = ItemSimilarity(
                self.model.data.matrix, self.items_meta["category"]
            )
        return self.item_similarity


def popularity(reasons: ReasonContext) -> np.ndarray:
    """Distinct buyers in the window, ties broken by distinct buyers ever."""
    ever = reasons.buyers.astype(np.float64)
    return reasons.recent_buyers.astype(np.float64) + ever / (ever.max() + 1.0)


def models_dir() -> Path:
    return Path(settings.DATA_DIR) / "models"


def artifact_path(run_id: int) -> Path:
    return models_dir() / f"run-{run_id}.pkl"


_MB = 2**20


class ArtifactTooLarge(Exception):
    """The fitted model's pickle would exceed RECOMMENDATION_MAX_ARTIFACT_MB (not written)."""


class _CappedFile:
    """A binary file that refuses to grow past ``limit`` bytes (pickle writes through it,
    so an oversized model stops at the limit instead of filling the disk first)."""

    def __init__(self, fh, limit: int) -> None:
        self.fh, self.limit, self.size = fh, limit, 0

    def write(self, data) -> int:
        # Protocol 5 hands large arrays over as PickleBuffer, which has no len().
        self.size += memoryview(data).nbytes
        if self.size > self.limit:
            raise ArtifactTooLarge()
        return self.fh.write(data)


def artifact_save(artifact: Artifact) -> str:
    """Write atomically (temp file + rename); returns the path relative to DATA_DIR.
    Raises ArtifactTooLarge (nothing written) above RECOMMENDATION_MAX_ARTIFACT_MB."""
    path = artifact_path(artifact.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    limit_mb = settings.RECOMMENDATION_MAX_ARTIFACT_MB
    try:
        with draft.open("wb") as fh:
            pickle.dump(artifact, _CappedFile(fh, limit_mb * _MB), pickle.HIGHEST_PROTOCOL)
    except ArtifactTooLarge:
        draft.unlink(missing_ok=True)
        raise ArtifactTooLarge(
            f"The fitted {artifact.model.name} model is larger than "
            f"RECOMMENDATION_MAX_ARTIFACT_MB ({limit_mb:,} MB), which every scoring worker "
            "would have to load. Choose lighter algorithms (item_knn, rp3beta, popular) or "
            "raise the limit if the workers have the memory."
        ) from None
    except BaseException:
        draft.unlink(missing_ok=True)
        raise
    os.replace(draft, path)
    return str(path.relative_to(Path(settings.DATA_DIR)))


class ArtifactMissing(Exception):
    """The run's artifact file is gone (superseded run, or DATA_DIR not shared)."""


_CACHE: dict[int, tuple[float, Artifact]] = {}
_CACHE_SIZE = 2
_LOCK = threading.Lock()


def artifact_load(run_id: int, *, max_cached: int = _CACHE_SIZE) -> Artifact:
    """The run's artifact, from this process's cache when the file did not change.

    max_cached: artifacts this process keeps afterwards (the preview, in web processes,
    passes 1: a pickle can take gigabytes, and each web process would hold its own)."""
    path = artifact_path(run_id)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise ArtifactMissing(
            f"The model file of run {run_id} is missing ({path}); workers must share DATA_DIR."
        ) from None
    with _LOCK:
        hit = _CACHE.get(run_id)
        if hit and hit[0] == mtime:
            _trim_cache(run_id, max_cached)
            return hit[1]
    with path.open("rb") as fh:
        artifact = pickle.load(fh)  # our own file (see the module docstring)
    with _LOCK:
        _CACHE[run_id] = (mtime, artifact)
        _trim_cache(run_id, max_cached)
    return artifact


def _trim_cache(keep: int, size: int) -> None:
    """Drop the oldest cached artifacts but ``keep`` until ``size`` are left (under _LOCK)."""
    for run_id in [r for r in _CACHE if r != keep][: max(len(_CACHE) - max(size, 1), 0)]:
        del _CACHE[run_id]


def artifact_delete(run_id: int) -> None:
    with _LOCK:
        _CACHE.pop(run_id, None)
    artifact_path(run_id).unlink(missing_ok=True)


_FILE_NAME = re.compile(r"^run-(\d+)\.pkl(?:\.\d+\.tmp)?$")


def artifact_files() -> dict[int, list[Path]]:
    """Model files (and drafts being written) under DATA_DIR/models, by run id."""
    out: dict[int, list[Path]] = {}
    try:
        entries = list(models_dir().iterdir())
    except FileNotFoundError:
        return out
    for path in entries:
        match = _FILE_NAME.match(path.name)
        if match:
            out.setdefault(int(match.group(1)), []).append(path)
    return out
