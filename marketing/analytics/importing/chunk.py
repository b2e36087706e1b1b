"""Bookkeeping for one chunk under validation, and the shape of the output frames.

`Chunk` gives the per-kind rules cheap access to mapped columns (stripped once, id-like
columns processed per distinct value) and collects the problems found, which become
`Issue` objects only for the affected rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import KEPT_AS_TEXT, REJECTED, Issue, short
from .formats import ROW_COLUMN
from .parsing import by_unique, formula_mask, scan_text

PRODUCT_COLUMNS = [
    "sku",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "url",
    "image_url",
    "in_stock",
    "attributes",
    ROW_COLUMN,
]
CUSTOMER_COLUMNS = [
    "external_id",
    "email",
    "name",
    "country",
    "language",
    "consent_email",
    "consent_sms",
    "consent_push",
    "consent_ads",
    "attributes",
    ROW_COLUMN,
]
EVENT_COLUMNS = [
    "id",
    "customer",
    "sku",
    "kind",
    "quantity",
    "value",
    "rating",
    "text",
    "occurred_at",
    "source",
    ROW_COLUMN,
]


class Chunk:
    """One frame under validation: access to mapped columns and the problems found."""

    def __init__(self, frame: pd.DataFrame, mapping: dict[str, str | None]) -> None:
        self.frame = frame
        self.mapping = mapping
        self.n = len(frame)
        self.rows = frame[ROW_COLUMN].to_numpy(dtype=np.int64)
        self.rejected = np.zeros(self.n, dtype=bool)
        self.blank = np.full(self.n, "", dtype=object)
        self._found: list[tuple[np.ndarray, str, np.ndarray, object, str]] = []
        self._text: dict[str, np.ndarray] = {}
        self._no_formula: dict[int, np.ndarray] = {}  # id -> array known to hold no formula
        # id(values) -> (values, codes, distinct values) for id-like columns (SKU, customer):
        # strip, length, formula and hash work then runs once per distinct value.
        self._factors: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def col(self, name: str) -> str:
        return self.mapping.get(name) or ""

    def raw(self, name: str) -> np.ndarray:
        col = self.mapping.get(name)
        return self.frame[col].to_numpy(dtype=object) if col else self.blank

    def text(self, name: str) -> np.ndarray:
        """Stripped values of a mapped field ("" everywhere when unmapped)."""
        col = self.mapping.get(name)
        if not col:
            return self.blank
        return self.column_text(col)

    def column_text(self, col: str) -> np.ndarray:
        if col not in self._text:
            values, maybe_formula = scan_text(self.frame[col].to_numpy(dtype=object))
            self._text[col] = values
            if not maybe_formula:
                self._no_formula[id(values)] = values
        return self._text[col]

    def ids(self, name: str) -> np.ndarray:
        """Stripped values of an id-like field (few distinct values), processed per distinct
        value; "" everywhere when unmapped."""
        col = self.mapping.get(name)
        if not col:
            return self.blank
        key = "\x00ids:" + col
        if key not in self._text:
            codes, uniques = pd.factorize(self.frame[col].to_numpy(dtype=object))
            uniques, maybe_formula = scan_text(np.asarray(uniques, dtype=object))
            values = uniques.take(codes)
            self._text[key] = values
            self._factors[id(values)] = (values, codes, uniques)
            if not maybe_formula:
                self._no_formula[id(values)] = values
        return self._text[key]

    def factors(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(codes, distinct values) when values came from `ids`."""
        found = self._factors.get(id(values))
        return (found[1], found[2]) if found is not None and found[0] is values else None

    def reject(self, mask: np.ndarray, column: str, reason, values: np.ndarray) -> None:
        """Reject rows; reason is one sentence or one per masked row (in row order)."""
        idx = np.flatnonzero(mask)
        if idx.size:
            self.rejected[idx] = True
            self._found.append((idx, column, values[idx], reason, REJECTED))

    def derive(self, values: np.ndarray, func) -> np.ndarray:
        """func applied once per distinct value of an `ids` column (the result keeps the
        per-distinct-value shortcuts); per value of any other array."""
        factors = self.factors(values)
        if factors is None:
            return by_unique(values, func)
        codes, uniques = factors
        derived = np.array([func(u) for u in uniques], dtype=object)
        out = derived.take(codes)
        self._factors[id(out)] = (out, codes, derived)
        return out

    def keep_as_text(self, idx: np.ndarray, column: str, values: np.ndarray) -> int:
        """Report formula-looking cells among the kept rows idx; returns how many."""
        if id(values) in self._no_formula or values is self.blank:
            return 0
        factors = self.factors(values)
        if factors is not None:
            codes, uniques = factors
            per_unique = formula_mask(uniques)
            mask = None if per_unique is None else per_unique[codes[idx]]
        else:
            mask = formula_mask(values[idx])
        if mask is None or not mask.any():
            return 0
        hit = idx[mask]
        self._found.append((hit, column, values[hit], "formula-looking cell", KEPT_AS_TEXT))
        return int(hit.size)

    def issues(self) -> list[Issue]:
        out: list[tuple[int, int, Issue]] = []
        for seq, (idx, column, values, reason, action) in enumerate(self._found):
            reasons = [reason] * idx.size if isinstance(reason, str) else list(reason)
            for i, value, why in zip(idx.tolist(), values.tolist(), reasons, strict=True):
                row = int(self.rows[i])
                out.append((row, seq, Issue(row, column, short(value), why, action)))
        out.sort(key=lambda t: (t[0], t[1]))
        return [issue for _, _, issue in out]


def products_frame(skus, *, titles, categories, prices, rows) -> pd.DataFrame:
    n = len(skus)
    return pd.DataFrame(
        {
            "sku": skus,
            "title": titles,
            "description": np.full(n, "", dtype=object),
            "category": categories,
            "brand": np.full(n, "", dtype=object),
            "price": prices,
            "url": np.full(n, "", dtype=object),
            "image_url": np.full(n, "", dtype=object),
            "in_stock": np.full(n, None, dtype=object),
            "attributes": [{} for _ in range(n)],
            ROW_COLUMN: rows,
        },
        columns=PRODUCT_COLUMNS,
    )


_DTYPES = {
    "id": "int64",
    "quantity": "int64",
    "value": "float64",
    "rating": "float64",
    "price": "float64",
    ROW_COLUMN: "int64",
    "occurred_at": "datetime64[ns, UTC]",
}


def empty_frame(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, object)) for c in columns})
