"""A planted-structure data set for the embedding, content, ranker and hybrid tests.

Customers in community g buy, over three visits on different days, from item block g
(skewed popularity inside the block) plus a few items popular with everyone. Every block
has its own vocabulary in the product titles ("g0w3 g0w7 thing0"), its own category and
price level, so text, sequences and co-purchases all carry the same structure. Two items
of the block per customer are held out (the targets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommendations.algorithms.base import Dataset

START = pd.Timestamp("2024-01-01", tz="UTC")
N_GROUPS = 3
BLOCK = 15
N_POPULAR = 10


def block_title(group: int, j: int) -> str:
    return f"g{group}w{j % 7} g{group}w{7 + j % 5} thing{group}"


def item_frame(n_items: int, extra: dict[int, tuple[str, str]] | None = None) -> pd.DataFrame:
    rows = {}
    for item in range(n_items):
        if item < N_GROUPS * BLOCK:
            group, j = divmod(item, BLOCK)
            rows[item] = (block_title(group, j), f"cat{group}", 2.0 + 3 * group)
        else:
            rows[item] = (f"common{item % 4} gift box", "misc", 1.0)
    for item, (title, category) in (extra or {}).items():
        rows[item] = (title, category, 2.0)
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["title", "category", "price"])
    return frame


def planted(
    n_users: int = 240,
    seed: int = 7,
    *,
    extra_items: dict[int, tuple[str, str]] | None = None,
    extra_users: int = 0,
) -> tuple[Dataset, list[np.ndarray]]:
    """(training Dataset, per-user held-out items). ``extra_items`` = {index: (title, category)}: items
    in the catalog with no interactions (new products); ``extra_users`` customers without
    history are appended after the planted ones. User features carry segment = "seg{g}"."""
    rng = np.random.default_rng(seed)
    n_items = N_GROUPS * BLOCK + N_POPULAR
    popular = np.arange(N_GROUPS * BLOCK, n_items)
    popular_p = 1.0 / np.arange(1, N_POPULAR + 1)
    popular_p /= popular_p.sum()
    rows, held = [], []
    for user in range(n_users):
        group = user % N_GROUPS
        block_items = np.arange(group * BLOCK, (group + 1) * BLOCK)
        p = 1.0 / np.arange(1, BLOCK + 1) ** 0.5
        chosen = rng.choice(block_items, size=8, replace=False, p=p / p.sum())
        noise = rng.choice(popular, size=3, replace=False, p=popular_p)
        held.append(chosen[:2])
        bought = rng.permutation(np.concatenate([chosen[2:], noise]))
        days = np.sort(rng.choice(90, size=3, replace=False))
        for visit, part in enumerate(np.array_split(bought, 3)):
            for item in part:
                when = START + pd.Timedelta(days=int(days[visit]))
                rows.append((user, int(item), when, f"{user}-{visit}"))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "basket"])
    n_all_items = n_items + len(extra_items or {})
    n_all_users = n_users + extra_users
    users = pd.DataFrame(
        {"segment": [f"seg{u % N_GROUPS}" if u < n_users else "seg0" for u in range(n_all_users)]}
    )
    data = Dataset.from_interactions(
        frame,
        user_ids=np.arange(n_all_users),
        item_ids=np.arange(n_all_items),
        item_features=item_frame(n_all_items, extra_items),
        user_features=users,
    )
    return data, held


def hit_rate(model, data: Dataset, held: list[np.ndarray], k: int = 5) -> float:
    """Share of planted users with a held-out item in their top k."""
    users = np.arange(len(held))
    top = model.fit(data).recommend(users, k=k).items
    return float(np.mean([np.isin(row, h).any() for row, h in zip(top, held, strict=True)]))
