"""Read interaction files for offline evaluation (pure: paths in, frames out).

Two layouts:

* the generic one, CSV or CSV.gz with columns ``user_id,item_id,timestamp[,weight][,basket]``
  (ids read as text, timestamps ISO strings or Unix seconds, naive times taken as UTC);
* the UCI "Online Retail" invoice layout (``InvoiceNo, StockCode, Description, Quantity,
  InvoiceDate, UnitPrice, CustomerID, Country``), cleaned to the same columns.

An optional items file (``item_id`` plus any of title, description, category, brand, price)
becomes ``item_features``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
ONLINE_RETAIL_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

# Mirrors marketing.models.DEFAULT_NON_PRODUCT_PATTERNS (the pure core may not import it);
# the management command passes the catalog default explicitly.
NON_PRODUCT_PATTERNS = (
    r"^POST$",
    r"^DOT$",
    r"^M$",
    r"^D$",
    r"^C2$",
    r"^S$",
    r"^B$",
    r"^CRUK$",
    r"^PADS$",
    r"^BANK CHARGES$",
    r"^AMAZONFEE$",
    r"^DCGS",
    r"^GIFT_",
    r"^ADJUST",
)


@dataclass(frozen=True)
class Interactions:
    """An interaction frame (user_id, item_id, timestamp UTC, weight[, basket]) and the
    optional feature frames indexed by item_id / user_id."""

    frame: pd.DataFrame
    item_features: pd.DataFrame | None = None
    user_features: pd.DataFrame | None = None


def _timestamps(values: pd.Series) -> pd.Series:
    """ISO strings, or Unix seconds when every present value is a number."""
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="s", utc=True)
    text = values.astype("string").str.strip()
    seconds = pd.to_numeric(text, errors="coerce")
    present = text.notna() & text.ne("")
    if present.any() and seconds[present].notna().all():
        return pd.to_datetime(seconds, unit="s", utc=True)
    return pd.to_datetime(text, utc=True, format="mixed")


def _read_text_csv(path: str | Path) -> pd.DataFrame:
    """Every column as text (ids keep leading zeros: "007"), headers trimmed and lower-cased
    — so any header spelling ("User_ID") gets the same treatment; callers convert after."""
    frame = pd.read_csv(path, dtype=str)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame


def read_interactions(path: str | Path) -> pd.DataFrame:
    """Read ``user_id,item_id,timestamp[,weight][,basket]`` (CSV or CSV.gz; headers in any
    case). Ids are text, kept as written apart from surrounding spaces.

    Rows missing an id or a parseable timestamp are dropped; a missing weight is 1.
    Raises ValueError when a required column is absent or the file is not CSV.
    """
    frame = _read_text_csv(path)
    missing = [c for c in INTERACTION_COLUMNS if c not in frame]
    if missing:
        raise ValueError(
            f"{Path(path).name}: missing column(s) {', '.join(missing)} "
            f"(expected user_id,item_id,timestamp[,weight])"
        )
    out = pd.DataFrame(
        {
            "user_id": frame["user_id"].str.strip(),
            "item_id": frame["item_id"].str.strip(),
            "timestamp": _timestamps(frame["timestamp"]),
        }
    )
    if "weight" in frame:
        out["weight"] = pd.to_numeric(frame["weight"], errors="coerce").fillna(1.0)
    if "basket" in frame:
        out["basket"] = frame["basket"]
    keep = out["user_id"].fillna("").ne("") & out["item_id"].fillna("").ne("")
    keep &= out["timestamp"].notna()
    return out[keep].reset_index(drop=True)


def read_items(path: str | Path) -> pd.DataFrame:
    """Read an items file: ``item_id`` plus any feature columns, indexed by item_id (text,
    as `read_interactions` reads ids); ``price`` becomes a number."""
    frame = _read_text_csv(path)
    if "item_id" not in frame:
        raise ValueError(f"{Path(path).name}: missing column item_id")
    frame["item_id"] = frame["item_id"].str.strip()
    if "price" in frame:
        frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    return frame.drop_duplicates("item_id", keep="last").set_index("item_id")


def read_online_retail(
    path: str | Path, *, non_product_patterns: Sequence[str] = NON_PRODUCT_PATTERNS
) -> Interactions:
    """Read the UCI Online Retail invoice layout.

    Kept: invoice lines with a CustomerID, an invoice not starting with "C" (cancellation)
    or "A" (bad-debt adjustment), Quantity > 0, UnitPrice > 0 and a StockCode (upper-cased)
    matching none of ``non_product_patterns``. One event per customer × product × invoice,
    weight 1 (quantities are left out: wholesalers order thousands), basket = invoice,
    timestamp = InvoiceDate read as UTC (the file's times are local UK time).

    item_features: title (most frequent description) and price (median unit price).
    user_features: country, and segment = country (for per-segment results).
    """
    raw = pd.read_csv(
        path,
        dtype={"InvoiceNo": str, "StockCode": str, "Description": str, "CustomerID": str},
    )
    missing = [c for c in ONLINE_RETAIL_COLUMNS if c not in raw]
    if missing:
        raise ValueError(
            f"{Path(path).name}: missing column(s) {', '.join(missing)} "
            f"(the online_retail format has {','.join(ONLINE_RETAIL_COLUMNS)})"
        )
    invoice = raw["InvoiceNo"].astype(str).str.strip()
    code = raw["StockCode"].astype(str).str.strip().str.upper()
    customer = raw["CustomerID"].str.strip()
    non_product = (
        code.str.contains(re.compile("|".join(non_product_patterns)))
        if non_product_patterns
        else pd.Series(False, index=raw.index)
    )
    keep = (
        customer.notna()
        & customer.ne("")
        & ~invoice.str.upper().str.startswith(("C", "A"))
        & (raw["Quantity"] > 0)
        & (raw["UnitPrice"] > 0)
        & ~non_product
    )
    lines = pd.DataFrame(
        {
            "user_id": customer[keep],
            "item_id": code[keep],
            "timestamp": pd.to_datetime(raw.loc[keep, "InvoiceDate"], utc=True),
            "basket": invoice[keep],
            "description": raw.loc[keep, "Description"],
            "price": raw.loc[keep, "UnitPrice"],
            "country": raw.loc[keep, "Country"],
        }
    )
    frame = (
        lines.drop_duplicates(["user_id", "item_id", "basket"])[
            ["user_id", "item_id", "timestamp", "basket"]
        ]
        .assign(weight=1.0)
        .sort_values(["user_id", "timestamp"], kind="stable")
        .reset_index(drop=True)
    )
    titles = (
        lines.dropna(subset=["description"])
        .groupby(["item_id", "description"])
        .size()
        .sort_values(ascending=False, kind="stable")
        .reset_index()
        .drop_duplicates("item_id")
        .set_index("item_id")["description"]
    )
    items = pd.DataFrame({"price": lines.groupby("item_id")["price"].median()})
    items["title"] = titles.reindex(items.index)
    country = (
        lines.groupby(["user_id", "country"]).size().sort_values(ascending=False, kind="stable")
    )
    country = country.reset_index().drop_duplicates("user_id").set_index("user_id")["country"]
    users = pd.DataFrame({"country": country, "segment": country})
    return Interactions(frame, items[["title", "price"]], users.sort_index())
