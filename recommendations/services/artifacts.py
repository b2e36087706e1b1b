"""A catalog's training data as frames, and the fitted-model artifact a run scores with.

The artifact is a pickle under ``settings.DATA_DIR / "models" / f"run-{id}.pkl"``: every
worker that scores batches opens it, so **workers on several machines must share DATA_DIR**
(a network volume). Pickles are trusted input here: only Tailor's own workers write them,
into its own data dir. Each process caches the artifacts it opened (a few, by run).
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from django.conf import settings
from django.utils import timezone

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

    def similarity(self) -> ItemSimilarity:
        """Item similarity for diversity re-ranking (built on first use, then kept)."""
        if self.item_similarity is None:
            self.item_similarity = ItemSimilarity(
                self.model.data.matrix, self.items_meta["category"]
            )
        return self.item_similarity


def popularity(reasons: ReasonContext) -> np.ndarray:
    """Distinct buyers in the window, ties broken by distinct buyers ever."""
    ever = reasons.buyers.astype(np.float64)
    return reasons.recent_buyers.astype(np.float64) + ever / (ever.max() + 1.0)


def artifact_path(run_id: int) -> Path:
    return Path(settings.DATA_DIR) / "models" / f"run-{run_id}.pkl"


def artifact_save(artifact: Artifact) -> str:
    """Write atomically (temp file + rename); returns the path relative to DATA_DIR."""
    path = artifact_path(artifact.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with draft.open("wb") as fh:
        pickle.dump(artifact, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(draft, path)
    return str(path.relative_to(Path(settings.DATA_DIR)))


class ArtifactMissing(Exception):
    """The run's artifact file is gone (superseded run, or DATA_DIR not shared)."""


_CACHE: dict[int, tuple[float, Artifact]] = {}
_CACHE_SIZE = 2
_LOCK = threading.Lock()


def artifact_load(run_id: int) -> Artifact:
    """The run's artifact, from this process's cache when the file did not change."""
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
            return hit[1]
    with path.open("rb") as fh:
        artifact = pickle.load(fh)  # our own file (see the module docstring)
    with _LOCK:
        _CACHE[run_id] = (mtime, artifact)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return artifact


def artifact_delete(run_id: int) -> None:
    with _LOCK:
        _CACHE.pop(run_id, None)
    artifact_path(run_id).unlink(missing_ok=True)
