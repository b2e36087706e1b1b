"""Temporal train/test splits and the evaluation targets built from them.

Two ways to hold data out, both on an interaction frame (user_id, item_id, timestamp, …):

* ``split_last_day``: for each customer with purchases on at least two days, everything on
  their last active day is test. Other customers' later purchases stay in train, so this
  is "leave the last basket out", not a strict time split; it scores every repeat customer.
* ``split_global``: everything before a cutoff (a time, or a quantile of the timestamps)
  is train, the rest test. Strict in time; only customers active on both sides are scored.

``split_validation`` carves a validation split out of a training frame the same way, so
tuning never sees test. ``make_split`` turns a (train, test) pair into an ``EvalSplit``:
the training ``Dataset`` (training users and items only) and per-customer targets.

Targets of a customer = test items they did not have in train and that exist in train (the
"discover something new" task); customers without targets are not scored. Test items they
did have in train are the ``repeat`` targets, for buy-again lists, measured separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from recommendations.algorithms.base import Dataset

SPLITS = ("lastday", "global")
DEFAULT_CUTOFF = 0.9


def _utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True)


def split_last_day(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): per user, the interactions on their last active (UTC) day are test
    when the user has interactions on an earlier day; single-day users stay in train."""
    day = _utc(frame["timestamp"]).dt.floor("D")
    by_user = day.groupby(frame["user_id"].to_numpy(), sort=False)
    last = by_user.transform("max")
    first = by_user.transform("min")
    is_test = (day == last) & (first < last)
    return (
        frame[~is_test.to_numpy()].reset_index(drop=True),
        frame[is_test.to_numpy()].reset_index(drop=True),
    )


def global_cutoff(frame: pd.DataFrame, cutoff: float | str | pd.Timestamp | None = None):
    """The cutoff time: ``cutoff`` itself (naive = UTC), or for a float in (0, 1) that
    quantile of the interaction timestamps (default 0.9: the last 10 % of rows are test)."""
    if cutoff is None:
        cutoff = DEFAULT_CUTOFF
    if isinstance(cutoff, float | int) and not isinstance(cutoff, bool):
        if not 0 < cutoff < 1:
            raise ValueError(f"cutoff quantile must be in (0, 1), got {cutoff}")
        return _utc(frame["timestamp"]).quantile(float(cutoff))
    stamp = pd.Timestamp(cutoff)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def split_global(
    frame: pd.DataFrame, cutoff: float | str | pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): interactions before the cutoff (see ``global_cutoff``) / at or after."""
    when = global_cutoff(frame, cutoff)
    is_test = (_utc(frame["timestamp"]) >= when).to_numpy()
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def split_frame(
    frame: pd.DataFrame, how: str = "lastday", cutoff: float | str | pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dispatch on ``how`` ("lastday" or "global")."""
    if how == "lastday":
        return split_last_day(frame)
    if how == "global":
        return split_global(frame, cutoff)
    raise ValueError(f"unknown split {how!r} (choose from {', '.join(SPLITS)})")


def split_validation(
    train: pd.DataFrame, how: str = "lastday", cutoff: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A validation (train', validation) pair carved from the training frame only, the same
    way as the outer split (a global split uses the quantile of the training timestamps)."""
    if how == "global" and not isinstance(cutoff, float | type(None)):
        cutoff = None  # a fixed date is the outer cutoff; validation re-cuts train by quantile
    return split_frame(train, how, cutoff)


@dataclass(frozen=True)
class EvalSplit:
    """A training Dataset and what each training user is scored against.

    targets: CSR (n_users × n_items) binary, test items new to the user (not in their train
        history) and present in train. ``users`` = users with at least one target.
    repeat: CSR binary, test items the user already had in train (buy-again targets).
    info: counts for reports (rows, users, items, dropped test rows, cutoff).
    """

    name: str
    train: Dataset
    targets: sparse.csr_matrix
    repeat: sparse.csr_matrix
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.targets.indptr) > 0)

    @property
    def repeat_users(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.repeat.indptr) > 0)


def _binary(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    out = sparse.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def make_split(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    name: str = "explicit",
    item_features: pd.DataFrame | None = None,
    user_features: pd.DataFrame | None = None,
    info: dict[str, Any] | None = None,
) -> EvalSplit:
    """Build the EvalSplit of a (train, test) frame pair. Users and items are those of
    train; test rows of unknown users or items are dropped (counted in info)."""
    user_ids = np.unique(train["user_id"].to_numpy())
    item_ids = np.unique(train["item_id"].to_numpy())
    data = Dataset.from_interactions(
        train,
        user_ids=user_ids,
        item_ids=item_ids,
        item_features=item_features,
        user_features=user_features,
    )
    users = pd.Index(user_ids).get_indexer(test["user_id"].to_numpy())
    items = pd.Index(item_ids).get_indexer(test["item_id"].to_numpy())
    known = (users >= 0) & (items >= 0)
    shape = (len(user_ids), len(item_ids))
    tested = _binary(
        sparse.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float32), (users[known], items[known])),
            shape=shape,
        )
    )
    had = _binary(data.matrix)
    repeat = _binary(tested.multiply(had))
    targets = _binary(tested - repeat)
    summary = {
        "train_rows": len(train),
        "test_rows": len(test),
        "test_rows_unknown_user": int((users < 0).sum()),
        "test_rows_unknown_item": int(((users >= 0) & (items < 0)).sum()),
        "users": len(user_ids),
        "items": len(item_ids),
        "scored_users": int((np.diff(targets.indptr) > 0).sum()),
        "targets": int(targets.nnz),
        "repeat_users": int((np.diff(repeat.indptr) > 0).sum()),
        "repeat_targets": int(repeat.nnz),
    }
    return EvalSplit(name, data, targets, repeat, {**summary, **(info or {})})


def build_split(
    frame: pd.DataFrame,
    how: str = "lastday",
    *,
    cutoff: float | str | pd.Timestamp | None = None,
    item_features: pd.DataFrame | None = None,
    user_features: pd.DataFrame | None = None,
) -> EvalSplit:
    """Split ``frame`` with ``split_frame`` and build the EvalSplit."""
    train, test = split_frame(frame, how, cutoff)
    info: dict[str, Any] = {}
    if how == "global":
        info["cutoff"] = str(global_cutoff(frame, cutoff))
    return make_split(
        train,
        test,
        name=how,
        item_features=item_features,
        user_features=user_features,
        info=info,
    )
