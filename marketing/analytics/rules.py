"""Rule segments: validate/normalise a rule tree, and evaluate it on profiles in pandas.

The Django side stores the normalised tree (JSON) and evaluates it in SQL; `evaluate_rule`
is the reference implementation the SQL version is tested against, so the semantics below
are the contract for both:

Tree: a group ``{"op": "and" | "or", "rules": [...]}`` whose rules are groups or conditions
``{"field": ..., "operator": ..., "value": ...}``, nested at most MAX_DEPTH groups deep,
at most MAX_CONDITIONS conditions in all. ``None``, ``{}`` and a group without rules mean
"no condition" (everyone); `normalise_rule` removes empty nested groups, so they never
change a parent's result. A bare condition at the top is wrapped in an "and" group.

Fields (`FIELDS`) and operators per type (`OPERATORS`):

===========  ==================================================  ==============================
type         fields                                              operators
===========  ==================================================  ==============================
number       recency_days, frequency, monetary, aov,             eq ne lt lte gt gte in not_in
             return_rate, r_score, f_score, m_score, clv_12m,
             churn_probability
choice       rfm_segment, price_band                             eq ne in not_in
text         country, language                                   eq ne in not_in contains
bool         consent_email, consent_sms, consent_push,           is_true is_false
             consent_ads
category     bought_category                                     eq ne in not_in contains
activity     events_in_last_days                                 gte lt
===========  ==================================================  ==============================

Semantics:

- Missing numbers (recency_days, aov, return_rate, clv_12m, churn_probability of a customer
  without purchases or predictions) never match a comparison — not even ``ne`` or
  ``not_in`` (SQL NULL semantics). Text and choice fields are never missing: an unknown
  country or price band is "" and does match ``ne``/``not_in``.
- ``return_rate`` and ``churn_probability`` are shares: values must be within 0..1.
- Text comparisons (eq, ne, in, not_in) are case-insensitive on trimmed values;
  ``contains`` is a case-insensitive substring test.
- ``bought_category``: the customer has a purchase event (at or before ``as_of``) of a
  product whose category is the value or lies below it ("Home" matches "Home > Kitchen");
  case-insensitive. ``eq``/``in`` = bought in it / in any of them; ``ne``/``not_in`` =
  never bought in it / in none of them; ``contains`` = bought in a category whose path
  contains the text.
- ``events_in_last_days`` value ``{"kind": "view" | ... | "any", "days": N, "min_count": K}``
  counts the customer's events of that kind with as_of - N days < occurred_at <= as_of;
  ``gte`` = at least K, ``lt`` = fewer than K (K defaults to 1; 1 ≤ K ≤ MAX_MIN_COUNT,
  1 ≤ N ≤ MAX_DAYS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from .profiles import PRICE_BANDS, SEGMENTS, as_utc_timestamp

MAX_DEPTH = 5
MAX_CONDITIONS = 100
MAX_LIST = 500
MAX_DAYS = 3650
# "At least K events": K becomes an OFFSET in SQL, so it must stay a modest integer.
MAX_MIN_COUNT = 1_000_000


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # number | choice | text | bool | category | activity
    group: str  # profile | customer | behaviour
    label: str
    choices: tuple[str, ...] = ()
    share: bool = False  # number in 0..1
    integer: bool = False


def _f(name: str, type_: str, group: str, label: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, type_, group, label, **kw)


FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        _f("recency_days", "number", "profile", "Days since last purchase"),
        _f("frequency", "number", "profile", "Orders"),
        _f("monetary", "number", "profile", "Net spend"),
        _f("aov", "number", "profile", "Average order value"),
        _f("return_rate", "number", "profile", "Return rate (units)", share=True),
        _f("r_score", "number", "profile", "Recency score (1-5)", integer=True),
        _f("f_score", "number", "profile", "Frequency score (1-5)", integer=True),
        _f("m_score", "number", "profile", "Monetary score (1-5)", integer=True),
        _f("clv_12m", "number", "profile", "Predicted 12-month value"),
        _f("churn_probability", "number", "profile", "Churn probability", share=True),
        _f("rfm_segment", "choice", "profile", "RFM segment", choices=SEGMENTS),
        _f("price_band", "choice", "profile", "Price band", choices=("", *PRICE_BANDS)),
        _f("country", "text", "customer", "Country"),
        _f("language", "text", "customer", "Language"),
        _f("consent_email", "bool", "customer", "Email consent"),
        _f("consent_sms", "bool", "customer", "SMS consent"),
        _f("consent_push", "bool", "customer", "Push consent"),
        _f("consent_ads", "bool", "customer", "Ads consent"),
        _f("bought_category", "category", "behaviour", "Bought in category"),
        _f("events_in_last_days", "activity", "behaviour", "Recent activity"),
    )
}

OPERATORS: dict[str, tuple[str, ...]] = {
    "number": ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"),
    "choice": ("eq", "ne", "in", "not_in"),
    "text": ("eq", "ne", "in", "not_in", "contains"),
    "bool": ("is_true", "is_false"),
    "category": ("eq", "ne", "in", "not_in", "contains"),
    "activity": ("gte", "lt"),
}
OPERATOR_ALIASES = {"=": "eq", "==": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt",
                    ">=": "gte", "not in": "not_in", "notin": "not_in"}  # fmt: skip
# The importer's event kinds (importing.fields.EVENT_KINDS; a unit test keeps them equal).
# Repeated here so rule validation does not load the import machinery.
EVENT_KINDS = ("view", "click", "cart", "purchase", "return", "rating", "review", "search",
               "wishlist")  # fmt: skip
ACTIVITY_KINDS = ("any", *EVENT_KINDS)


class RuleError(ValueError):
    """An invalid rule tree. ``errors`` lists every (path, reason); str() shows the first."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        self.path, self.reason = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        super().__init__(f"{self.path}: {self.reason}" + (more if len(errors) > 1 else ""))


# --------------------------------------------------------------------------- validation


class _Checker:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.conditions = 0

    def error(self, path: str, reason: str) -> None:
        self.errors.append((path, reason))

    def group(self, node: Any, path: str, depth: int) -> dict | None:
        if depth > MAX_DEPTH:
            self.error(path, f"groups nest more than {MAX_DEPTH} levels deep")
            return None
        unknown = sorted(set(node) - {"op", "rules"})
        if unknown:
            self.error(path, f"unknown key {unknown[0]!r} in a group (expected 'op' and 'rules')")
        op = node.get("op", "and")
        op_norm = op.strip().lower() if isinstance(op, str) else op
        if op_norm not in ("and", "or"):
            self.error(path, f"unknown op {op!r}; use 'and' or 'or'")
        rules = node.get("rules", [])
        if not isinstance(rules, list):
            self.error(path, "'rules' must be a list")
            return None
        out = []
        for i, child in enumerate(rules):
            child_path = f"{path}.rules[{i}]" if path != "rule" else f"rules[{i}]"
            norm = self.node(child, child_path, depth)
            if norm is not None and not (_is_group(norm) and not norm["rules"]):
                out.append(norm)
        return {"op": op_norm if op_norm in ("and", "or") else "and", "rules": out}

    def node(self, node: Any, path: str, depth: int) -> dict | None:
        if not isinstance(node, dict):
            self.error(path, f"expected a group or a condition object, got {type(node).__name__}")
            return None
        if "rules" in node or "op" in node:
            return self.group(node, path, depth + 1)
        if "field" in node or "operator" in node:
            return self.condition(node, path)
        if not node:
            return {"op": "and", "rules": []}
        self.error(path, "expected 'op'/'rules' (group) or 'field'/'operator'/'value' (condition)")
        return None

    def condition(self, node: dict, path: str) -> dict | None:
        self.conditions += 1
        if self.conditions == MAX_CONDITIONS + 1:
            self.error(path, f"more than {MAX_CONDITIONS} conditions")
        unknown = sorted(set(node) - {"field", "operator", "value"})
        if unknown:
            self.error(path, f"unknown key {unknown[0]!r} in a condition")
        field = node.get("field")
        spec = FIELDS.get(field.strip()) if isinstance(field, str) else None
        if spec is None:
            self.error(path, f"unknown field {field!r}")
            return None
        raw_op = node.get("operator")
        op = raw_op.strip().lower() if isinstance(raw_op, str) else raw_op
        op = OPERATOR_ALIASES.get(op, op)
        if op not in OPERATORS[spec.type]:
            allowed = ", ".join(OPERATORS[spec.type])
            if isinstance(op, str) and any(op in ops for ops in OPERATORS.values()):
                self.error(
                    path, f"operator {raw_op!r} does not apply to {spec.name} (use {allowed})"
                )
            else:
                self.error(path, f"unknown operator {raw_op!r} (for {spec.name} use {allowed})")
            return None
        if "value" not in node and spec.type != "bool":
            self.error(path, f"missing 'value' for {spec.name}")
            return None
        value = self.value(spec, op, node.get("value"), path)
        if value is _INVALID:
            return None
        return {"field": spec.name, "operator": op, "value": value}

    def value(self, spec: FieldSpec, op: str, value: Any, path: str) -> Any:
        if spec.type == "bool":
            return None
        if spec.type == "activity":
            return self.activity(value, path)
        if op in ("in", "not_in"):
            if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
                self.error(path, f"value for {spec.name} {op} must be a list")
                return _INVALID
            if not value:
                self.error(path, f"value for {spec.name} {op} must not be an empty list")
                return _INVALID
            if len(value) > MAX_LIST:
                self.error(path, f"value for {spec.name} {op} has more than {MAX_LIST} items")
                return _INVALID
            items = [self.scalar(spec, op, v, f"{path}.value[{i}]") for i, v in enumerate(value)]
            if any(v is _INVALID for v in items):
                return _INVALID
            seen: list = []
            for v in items:
                if v not in seen:
                    seen.append(v)
            return seen
        return self.scalar(spec, op, value, path)

    def scalar(self, spec: FieldSpec, op: str, value: Any, path: str) -> Any:
        if spec.type == "number":
            number = _number(value)
            if number is None:
                self.error(path, f"value for {spec.name} must be a number, got {value!r}")
                return _INVALID
            if spec.share and not 0 <= number <= 1:
                self.error(
                    path, f"{spec.name} is a share between 0 and 1 (0.7 = 70 %), got {value!r}"
                )
                return _INVALID
            if spec.integer and number != int(number):
                self.error(path, f"{spec.name} is a whole number, got {value!r}")
                return _INVALID
            return number
        if not isinstance(value, str):
            self.error(path, f"value for {spec.name} must be text, got {value!r}")
            return _INVALID
        text = value.strip()
        if spec.type == "choice":
            lookup = {c.casefold(): c for c in spec.choices}
            if text.casefold() not in lookup:
                choices = ", ".join(repr(c) for c in spec.choices)
                self.error(path, f"{value!r} is not a {spec.label.lower()} (one of {choices})")
                return _INVALID
            return lookup[text.casefold()]
        if op == "contains" and not text:
            self.error(path, f"value for {spec.name} contains must not be empty")
            return _INVALID
        if spec.type == "category" and not text:
            self.error(path, "category must not be empty")
            return _INVALID
        if spec.name == "language":
            text = text.lower()
        return text

    def activity(self, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.error(path, 'value for events_in_last_days must be {"kind", "days", "min_count"}')
            return _INVALID
        unknown = sorted(set(value) - {"kind", "days", "min_count"})
        if unknown:
            self.error(path, f"unknown key {unknown[0]!r} in events_in_last_days value")
            return _INVALID
        kind = value.get("kind", "any")
        kind = kind.strip().lower() if isinstance(kind, str) else kind
        ok = True
        if kind not in ACTIVITY_KINDS:
            self.error(
                path,
                f"unknown event kind {value.get('kind')!r} (one of {', '.join(ACTIVITY_KINDS)})",
            )
            ok = False
        days = _number(value.get("days"))
        if days is None or days != int(days) or not 1 <= days <= MAX_DAYS:
            self.error(
                path, f"days must be a whole number from 1 to {MAX_DAYS}, got {value.get('days')!r}"
            )
            ok = False
        count = _number(value.get("min_count", 1))
        if count is None or count != int(count) or not 1 <= count <= MAX_MIN_COUNT:
            self.error(
                path,
                f"min_count must be a whole number from 1 to {MAX_MIN_COUNT:,}, "
                f"got {value.get('min_count')!r}",
            )
            ok = False
        if not ok:
            return _INVALID
        return {"kind": kind, "days": int(days), "min_count": int(count)}


_INVALID = object()


def _number(value: Any) -> float | int | None:
    """Numbers and numeric strings ("30", "0.5"); booleans and NaN/inf are not numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else float(value)


def _is_group(node: dict) -> bool:
    return "rules" in node


def normalise_rule(tree: Any) -> dict:
    """Validate ``tree`` and return its normal form, or raise `RuleError` listing every
    problem with its path ("rules[1].rules[0]: unknown operator 'bigger'").

    Normal form: groups are exactly ``{"op", "rules"}`` (empty nested groups removed),
    conditions exactly ``{"field", "operator", "value"}`` with canonical operator names,
    numbers as int/float, trimmed text, canonical choice spelling, de-duplicated lists,
    ``None`` as the value of bool operators and a full activity dict.
    """
    if tree is None:
        return {"op": "and", "rules": []}
    checker = _Checker()
    if isinstance(tree, dict) and ("field" in tree or "operator" in tree):
        tree = {"op": "and", "rules": [tree]}
    if not isinstance(tree, dict):
        raise RuleError([("rule", f"expected a group object, got {type(tree).__name__}")])
    result = checker.group(tree, "rule", 1) if tree else {"op": "and", "rules": []}
    if checker.errors:
        raise RuleError(checker.errors)
    return result or {"op": "and", "rules": []}


def rule_fields(tree: Any) -> set[str]:
    """Fields a (valid) tree uses, e.g. to decide whether events must be joined."""
    out: set[str] = set()
    node = normalise_rule(tree)
    stack = [node]
    while stack:
        n = stack.pop()
        if _is_group(n):
            stack.extend(n["rules"])
        else:
            out.add(n["field"])
    return out


def rule_rename_categories(tree: Any, renames: dict[str, str]) -> tuple[dict, bool]:
    """The normalised tree with ``bought_category`` values following renamed categories.

    ``renames`` maps old names to new ones, applied at once (a swap stays a swap). A value
    equal to an old name, ignoring case, becomes the new name; a path below it
    ("Old > Sub") keeps its tail. ``contains`` is a substring test and stays as typed.
    Returns (tree, whether anything changed); raises RuleError for an invalid tree.
    """
    node = normalise_rule(tree)
    folded = {old.casefold(): new for old, new in renames.items()}
    changed = False

    def follow(value: str) -> str:
        nonlocal changed
        parts = value.split(" > ")
        for depth in range(1, len(parts) + 1):
            head = " > ".join(parts[:depth])
            new = folded.get(head.casefold())
            if new is not None:
                changed = True
                return new + value[len(head) :]
        return value

    stack = [node]
    while stack:
        n = stack.pop()
        if _is_group(n):
            stack.extend(n["rules"])
        elif n["field"] == "bought_category" and n["operator"] != "contains":
            value = n["value"]
            if isinstance(value, list):
                renamed: list[str] = []
                for v in map(follow, value):
                    if v not in renamed:  # as normalise_rule de-duplicates
                        renamed.append(v)
                n["value"] = renamed
            else:
                n["value"] = follow(value)
    return node, changed


def describe_rule(tree: Any) -> str:
    """A one-line reading of the rule for the UI ("everyone" when empty)."""
    node = normalise_rule(tree)

    def fmt(n: dict, top: bool) -> str:
        if _is_group(n):
            parts = [fmt(c, False) for c in n["rules"]]
            if not parts:
                return "everyone"
            text = f" {n['op'].upper()} ".join(parts)
            return text if top or len(parts) == 1 else f"({text})"
        op, value = n["operator"], n["value"]
        if op in ("is_true", "is_false"):
            return f"{n['field']} is {'true' if op == 'is_true' else 'false'}"
        if n["field"] == "events_in_last_days":
            rel = "at least" if op == "gte" else "fewer than"
            return f"{rel} {value['min_count']} {value['kind']} event(s) in the last {value['days']} days"
        symbol = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥",
                  "in": "in", "not_in": "not in", "contains": "contains"}[op]  # fmt: skip
        return f"{n['field']} {symbol} {value!r}"

    return fmt(node, True)


# --------------------------------------------------------------------------- evaluation


def evaluate_rule(
    tree: Any,
    profiles: pd.DataFrame,
    *,
    events: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    as_of: datetime | pd.Timestamp | None = None,
) -> pd.Series:
    """Boolean Series (index of ``profiles`` = customer_id): who matches the rule.

    ``profiles`` is `compute_profiles`' frame, optionally joined with clv_12m and
    churn_probability. Behaviour fields need ``events`` (and ``products`` for
    bought_category) in the core's frame layout, and ``as_of`` (tz-aware).
    """
    node = normalise_rule(tree)
    ctx = _Context(profiles, events, products, as_of)
    return pd.Series(ctx.eval(node), index=profiles.index, name="match")


class _Context:
    def __init__(self, profiles, events, products, as_of) -> None:
        self.profiles = profiles
        self.events = events
        self.products = products
        self.as_of = as_utc_timestamp(as_of) if as_of is not None else None
        self.ids = profiles.index.to_numpy(dtype=np.int64)
        self._purchases: pd.DataFrame | None = None

    def eval(self, node: dict) -> np.ndarray:
        if _is_group(node):
            results = [self.eval(c) for c in node["rules"]]
            if not results:
                return np.ones(len(self.ids), dtype=bool)
            combine = np.logical_and if node["op"] == "and" else np.logical_or
            return combine.reduce(results)
        spec = FIELDS[node["field"]]
        if spec.type == "category":
            return self.category(node["operator"], node["value"])
        if spec.type == "activity":
            return self.activity(node["operator"], node["value"])
        if spec.name not in self.profiles.columns:
            raise ValueError(f"profiles frame has no column {spec.name!r} used by the rule")
        column = self.profiles[spec.name]
        if spec.type == "bool":
            flag = column.fillna(False).astype(bool).to_numpy()
            return flag if node["operator"] == "is_true" else ~flag
        if spec.type == "number":
            return _compare_numbers(column, node["operator"], node["value"])
        return _compare_text(column, node["operator"], node["value"])

    def purchases(self) -> pd.DataFrame:
        """Distinct (customer_id, lower-case category) of purchases at or before as_of."""
        if self._purchases is None:
            if self.events is None or self.products is None:
                raise ValueError("bought_category needs the events and products frames")
            ev = self.events[self.events["kind"].astype(str).str.lower() == "purchase"]
            ev = ev[ev["customer_id"].notna() & ev["product_id"].notna()]
            if self.as_of is not None:
                ev = ev[ev["occurred_at"] <= self.as_of]
            cats = self.products.drop_duplicates("product_id", keep="last").set_index("product_id")
            cat = cats["category"].reindex(ev["product_id"].astype(np.int64)).fillna("")
            frame = pd.DataFrame(
                {
                    "customer_id": ev["customer_id"].to_numpy(dtype=np.int64),
                    "category": cat.astype(str).str.strip().str.casefold().to_numpy(),
                }
            )
            self._purchases = frame[frame["category"] != ""].drop_duplicates()
        return self._purchases

    def _bought(self, test) -> np.ndarray:
        p = self.purchases()
        who = p.loc[test(p["category"]), "customer_id"].unique()
        return np.isin(self.ids, who)

    def category(self, op: str, value: Any) -> np.ndarray:
        if op == "contains":
            needle = value.casefold()
            return self._bought(lambda c: c.str.contains(needle, regex=False))
        values = [v.casefold() for v in (value if isinstance(value, list) else [value])]

        def under(c: pd.Series) -> pd.Series:
            hit = np.zeros(len(c), dtype=bool)
            for v in values:
                hit |= (c == v).to_numpy() | c.str.startswith(v + " > ").to_numpy()
            return hit

        bought = self._bought(under)
        return bought if op in ("eq", "in") else ~bought

    def activity(self, op: str, value: dict) -> np.ndarray:
        if self.events is None or self.as_of is None:
            raise ValueError("events_in_last_days needs the events frame and as_of")
        ev = self.events
        start = self.as_of - pd.Timedelta(days=value["days"])
        m = (
            (ev["occurred_at"] > start)
            & (ev["occurred_at"] <= self.as_of)
            & ev["customer_id"].notna()
        )
        if value["kind"] != "any":
            m &= ev["kind"].astype(str).str.lower() == value["kind"]
        counts = ev.loc[m, "customer_id"].astype(np.int64).value_counts()
        n = counts.reindex(self.ids).fillna(0).to_numpy()
        return n >= value["min_count"] if op == "gte" else n < value["min_count"]


def _compare_numbers(column: pd.Series, op: str, value: Any) -> np.ndarray:
    x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        if op in ("in", "not_in"):
            hit = np.isin(x, np.array(value, dtype=np.float64))
            result = hit if op == "in" else ~hit
        else:
            result = {
                "eq": lambda: x == value,
                "ne": lambda: x != value,
                "lt": lambda: x < value,
                "lte": lambda: x <= value,
                "gt": lambda: x > value,
                "gte": lambda: x >= value,
            }[op]()
    return result & present


def _compare_text(column: pd.Series, op: str, value: Any) -> np.ndarray:
    text = column.fillna("").astype(str).str.strip().str.casefold()
    if op == "contains":
        return text.str.contains(value.casefold(), regex=False).to_numpy()
    values = [v.casefold() for v in (value if isinstance(value, list) else [value])]
    hit = text.isin(values).to_numpy()
    return hit if op in ("eq", "in") else ~hit
