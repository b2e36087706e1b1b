"""Temporal splits, evaluation targets and the interaction readers."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from recommendations.evaluation import io
from recommendations.evaluation.splits import (
    build_split,
    global_cutoff,
    make_split,
    split_frame,
    split_global,
    split_last_day,
    split_validation,
)

T0 = pd.Timestamp("2024-03-01 10:00", tz="UTC")


def _frame(rows):
    """rows: (user, item, day offset[, hour])."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "timestamp": [
                T0 + pd.Timedelta(days=r[2], hours=r[3] if len(r) > 3 else 0) for r in rows
            ],
        }
    )


FRAME = _frame(
    [
        ("a", "x", 0),
        ("a", "y", 0),
        ("a", "y", 2),  # a's last day: y again (repeat) and z (new, bought by b)
        ("a", "z", 2, 3),
        ("b", "z", 1),  # b: one day only -> all train
        ("b", "x", 1, 1),
        ("c", "x", 0),
        ("c", "w", 1),  # c's last day: w exists nowhere in train -> no target
        ("d", "x", 0),
        ("d", "x", 4),  # d's last day: only a repeat
    ]
)


def test_last_day_holds_out_each_users_last_day_if_they_have_history():
    train, test = split_last_day(FRAME)
    assert sorted(zip(test.user_id, test.item_id, strict=True)) == [
        ("a", "y"),
        ("a", "z"),
        ("c", "w"),
        ("d", "x"),
    ]
    assert len(train) + len(test) == len(FRAME)
    assert set(train[train.user_id == "b"].item_id) == {"z", "x"}


def test_last_day_uses_utc_calendar_days():
    # 23:30 and 00:30 next day (UTC) are two days even though they are an hour apart.
    frame = pd.DataFrame(
        {
            "user_id": ["u", "u"],
            "item_id": ["p", "q"],
            "timestamp": ["2024-01-01T23:30:00Z", "2024-01-02T00:30:00Z"],
        }
    )
    train, test = split_last_day(frame)
    assert list(train.item_id) == ["p"] and list(test.item_id) == ["q"]


def test_targets_are_new_items_known_in_train_and_repeats_are_separate():
    split = build_split(FRAME, "lastday")
    data = split.train
    uid = {u: i for i, u in enumerate(data.user_ids)}
    iid = {v: i for i, v in enumerate(data.item_ids)}
    assert list(data.item_ids) == ["x", "y", "z"]  # train items only; w is test-only
    assert split.targets[uid["a"]].indices.tolist() == [iid["z"]]
    assert split.repeat[uid["a"]].indices.tolist() == [iid["y"]]
    assert split.repeat[uid["d"]].indices.tolist() == [iid["x"]]
    assert split.targets[uid["c"]].nnz == 0 and split.targets[uid["d"]].nnz == 0
    assert list(split.users) == [uid["a"]]  # only customers with targets are scored
    assert sorted(split.repeat_users) == sorted([uid["a"], uid["d"]])
    assert split.info["test_rows_unknown_item"] == 1
    assert split.info["scored_users"] == 1 and split.info["repeat_targets"] == 2


def test_global_split_by_date_and_by_quantile():
    train, test = split_global(FRAME, "2024-03-02")  # naive date = UTC midnight
    assert (train.timestamp < pd.Timestamp("2024-03-02", tz="UTC")).all()
    assert (test.timestamp >= pd.Timestamp("2024-03-02", tz="UTC")).all()
    assert len(train) == 4 and len(test) == 6  # day 0 rows / the rest
    assert global_cutoff(FRAME, 0.5) == FRAME.timestamp.quantile(0.5)
    train, test = split_global(FRAME)  # default: last 10 % of rows
    assert list(test.user_id) == ["d"]
    with pytest.raises(ValueError):
        split_global(FRAME, 1.5)
    with pytest.raises(ValueError):
        split_frame(FRAME, "random")


def test_global_split_scores_only_users_seen_in_train():
    split = build_split(FRAME, "global", cutoff="2024-03-02")
    assert "cutoff" in split.info
    assert set(split.train.user_ids) == {"a", "c", "d"}  # b starts after the cutoff
    assert split.info["test_rows_unknown_user"] == 2


@pytest.mark.parametrize("how", ["lastday", "global"])
def test_validation_is_carved_from_train_only(how):
    train, test = split_frame(FRAME, how, 0.7)
    val_train, val_test = split_validation(train, how, 0.7)
    assert len(val_train) + len(val_test) == len(train)
    everything = pd.concat([val_train, val_test])
    merged = everything.merge(test, how="inner")
    assert merged.empty  # nothing from test leaks into validation
    assert val_train.timestamp.max() <= train.timestamp.max()


def test_features_pass_through_reindexed_to_dense_order():
    users = pd.DataFrame({"segment": ["S1", "S2", "S3", "S4"]}, index=["d", "c", "b", "a"])
    items = pd.DataFrame({"title": ["X", "Y", "Z", "W"]}, index=["x", "y", "z", "w"])
    split = build_split(FRAME, "lastday", item_features=items, user_features=users)
    assert split.train.user_features["segment"].tolist() == ["S4", "S3", "S2", "S1"]
    assert split.train.item_features["title"].tolist() == ["X", "Y", "Z"]


def test_make_split_with_explicit_frames():
    train, test = split_last_day(FRAME)
    split = make_split(train, test, name="explicit")
    assert split.name == "explicit" and split.train.n_users == 4


def test_read_interactions_csv_gz(tmp_path):
    path = tmp_path / "events.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("user_id,item_id,timestamp,weight\n")
        handle.write("007,A1,2024-01-01 10:00:00,2\n")
        handle.write("007,A2,2024-01-02T10:00:00+01:00,\n")
        handle.write(",A3,2024-01-02,1\n")  # no user: dropped
    frame = io.read_interactions(path)
    assert frame.user_id.tolist() == ["007", "007"]  # ids stay text
    assert frame.weight.tolist() == [2.0, 1.0]
    assert str(frame.timestamp.dt.tz) == "UTC"
    assert frame.timestamp[1] == pd.Timestamp("2024-01-02 09:00", tz="UTC")


def test_read_interactions_unix_seconds_and_missing_columns(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,1700000000\n")
    assert io.read_interactions(path).timestamp[0] == pd.Timestamp(1700000000, unit="s", tz="UTC")
    path.write_text("user,item,timestamp\n1,2,3\n")
    with pytest.raises(ValueError, match="user_id"):
        io.read_interactions(path)


def test_read_items(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,price\nA1,Mug,3.5\nA2,Cup,x\n")
    items = io.read_items(path)
    assert items.loc["A1", "title"] == "Mug"
    assert np.isnan(items.loc["A2", "price"])


def test_read_online_retail_cleans_the_invoice_layout(tmp_path):
    path = tmp_path / "retail.csv"
    path.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123a,HEART HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        "536365,85123A,HEART HOLDER,2,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18,17850,United Kingdom\n"
        "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,17850,United Kingdom\n"
        "C536379,22633,HAND WARMER,-1,2010-12-01 09:41:00,1.85,17850,United Kingdom\n"
        "536367,84879,BIRD ORNAMENT,32,2010-12-02 08:34:00,1.69,,United Kingdom\n"
        "536368,84879,BIRD ORNAMENT,0,2010-12-02 08:34:00,1.69,13047,France\n"
        "536369,84879,BIRD ORNAMENT,2,2010-12-02 08:34:00,0,13047,France\n"
        "536370,84879,BIRD ORNAMENT,2,2010-12-03 08:34:00,1.69,13047,France\n"
        "536371,gift_0001_10,VOUCHER,1,2010-12-03 08:34:00,10,13047,France\n"
    )
    data = io.read_online_retail(path)
    frame = data.frame
    # Duplicate line collapsed, postage/voucher/cancellation/anonymous/zero lines dropped.
    assert sorted(zip(frame.user_id, frame.item_id, frame.basket, strict=True)) == [
        ("13047", "84879", "536370"),
        ("17850", "22633", "536366"),
        ("17850", "85123A", "536365"),
    ]
    assert (frame.weight == 1.0).all()
    assert data.item_features.loc["85123A", "title"] == "HEART HOLDER"
    assert data.user_features.loc["13047", "segment"] == "France"


def test_read_interactions_normalises_headers_before_reading_ids_as_text(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "User_ID, Item_ID ,TIMESTAMP,Weight\n007,0042,2024-01-01,2\n 8 ,43,2024-01-02,\n"
    )
    frame = io.read_interactions(path)
    assert frame.user_id.tolist() == ["007", "8"]  # leading zeros kept, spaces trimmed
    assert frame.item_id.tolist() == ["0042", "43"]
    assert frame.weight.tolist() == [2.0, 1.0]
    assert frame.timestamp[0] == pd.Timestamp("2024-01-01", tz="UTC")
    path.write_text("User_ID,Item_ID,Timestamp\n1,2,1700000000\n")
    assert io.read_interactions(path).timestamp[0] == pd.Timestamp(1700000000, unit="s", tz="UTC")
    items = tmp_path / "items.csv"
    items.write_text("Item_ID,Title,Price\n0042,Mug,3.5\n")
    table = io.read_items(items)
    assert table.loc["0042", "title"] == "Mug" and table.loc["0042", "price"] == 3.5
