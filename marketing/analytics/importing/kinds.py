"""The rules of each import kind: which fields, which checks, which outputs.

`KindRules` is mixed into `Cleaner`; each `_clean_<kind>` takes a `Chunk`, rejects what
is invalid and returns (products, customers, events) frames (None for "none of these");
campaign results return a fourth frame, the recipients' outcomes (`RESULT_COLUMNS`), which
`combine_results` merges per recipient once the service knows who each row is.
The shared checks and the event assembly they call live in cleaning.py.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .chunk import CUSTOMER_COLUMNS, PRODUCT_COLUMNS, ROW_COLUMN, Chunk, products_frame
from .errors import ImportFileError
from .fields import EVENT_KINDS, PRICE_LIMIT, VALUE_LIMIT
from .keys import frame_line_hash, hash_strings
from .parsing import (
    EMAIL,
    NAT,
    URL,
    by_unique,
    invalid,
    longer_than,
    parse_bools,
    parse_ints,
    parse_languages,
    strip,
)

_KIND_WORDS = {
    "view": ("view", "views", "viewed", "pageview", "page_view", "product_view", "detail"),
    "click": ("click", "clicked", "product_click", "select"),
    "cart": ("cart", "add_to_cart", "addtocart", "added_to_cart", "add_to_basket", "basket"),
    "purchase": (
        "purchase",
        "purchased",
        "order",
        "ordered",
        "buy",
        "bought",
        "sale",
        "transaction",
    ),
    "return": ("return", "returned", "refund", "refunded", "cancel", "cancelled", "cancellation"),
    "rating": ("rating", "rate", "rated"),
    "review": ("review", "reviewed"),
    "search": ("search", "searched", "query"),
    "wishlist": ("wishlist", "wish", "add_to_wishlist", "favorite", "favourite", "like", "save"),
}
_KIND_BY_WORD = {w: kind for kind, words in _KIND_WORDS.items() for w in words}


# Event kinds travel as small integer codes (cheap to compare and hash); strings at the end.
_KIND_CODE = {kind: code for code, kind in enumerate(EVENT_KINDS)}
KIND_NAMES = np.array(EVENT_KINDS, dtype=object)
KIND_HASHES = hash_strings(KIND_NAMES)
VIEW, CLICK, CART, PURCHASE, RETURN, RATING, REVIEW, SEARCH, WISHLIST = range(len(EVENT_KINDS))

# Campaign results: one row per recipient row of the file (merged later by `combine_results`).
RESULT_IDS = ("draft", "variant", "export", "brief")  # whole numbers (nullable Int64)
RESULT_FLAGS = ("sent", "delivered", "opened", "clicked", "converted")
RESULT_TIMES = ("sent_at", "opened_at", "clicked_at", "converted_at")
RESULT_COLUMNS = [
    *RESULT_IDS,
    "customer",
    "email",
    *RESULT_FLAGS,
    "revenue",
    *RESULT_TIMES,
    "sku",
    ROW_COLUMN,
]
# The flag each timestamp belongs to (a time given means yes, unless the flag says no).
_FLAG_TIMES = {name: f"{name}_at" for name in ("sent", "opened", "clicked", "converted")}
_ID_LIMITS = {"draft": 2**53, "export": 2**53, "brief": 2**53, "variant": 32_767}
_COUNT = re.compile(r"\d+(?:\.0+)?")


def _kind_of(text: str) -> int:
    """Code of the normalised event kind, or -1 when unknown."""
    key = re.sub(r"[\s\-]+", "_", text.strip().lower())
    kind = _KIND_BY_WORD.get(key) or _KIND_BY_WORD.get(key.replace("_", ""))
    return _KIND_CODE[kind] if kind else -1


class KindRules:
    """Per-kind cleaning, mixed into Cleaner (which provides the shared checks)."""

    # ------------------------------------------------------------------ products

    def _clean_products(self, ch: Chunk):
        sku, title = ch.text("sku"), ch.text("title")
        self._required(ch, "sku", sku)
        self._required(ch, "title", title)
        text = {name: ch.text(name) for name in ("description", "category", "brand")}
        urls = {name: ch.text(name) for name in ("url", "image_url")}
        for name, values in {"sku": sku, "title": title, **text, **urls}.items():
            self._max_length(ch, name, values)
        for name, values in urls.items():
            ch.reject(invalid(values, URL), ch.col(name), "invalid URL", values)
        price = self._number(ch, "price", limit=PRICE_LIMIT, negative="negative price")
        in_stock, bad = parse_bools(ch.raw("in_stock"), counts=True)
        ch.reject(bad, ch.col("in_stock"), "not a yes/no value", ch.raw("in_stock"))

        idx = np.flatnonzero(~ch.rejected)
        idx = self._dedupe_lines(
            ch, idx, frame_line_hash(ch.frame.iloc[idx], self._source_columns(ch.frame))
        )
        idx = self._unique_keys(ch, idx, sku, ch.col("sku"), "SKU")
        self._formulas(ch, idx, {"sku": sku, "title": title, **text})
        attributes = self._attributes(ch, idx)
        products = pd.DataFrame(
            {
                "sku": sku[idx],
                "title": title[idx],
                **{k: v[idx] for k, v in text.items()},
                "price": np.round(price[idx], 2),
                **{k: v[idx] for k, v in urls.items()},
                "in_stock": in_stock[idx],
                "attributes": attributes,
                ROW_COLUMN: ch.rows[idx],
            },
            columns=PRODUCT_COLUMNS,
        )
        return products, None, None

    # ----------------------------------------------------------------- customers

    def _clean_customers(self, ch: Chunk):
        ext = ch.text("external_id")
        self._required(ch, "external_id", ext)
        self._max_length(ch, "external_id", ext)
        email = ch.text("email")
        ch.reject(invalid(email, EMAIL), ch.col("email"), "invalid email", email)
        self._max_length(ch, "email", email)
        first, last = ch.text("first_name"), ch.text("last_name")
        if ch.col("name"):
            name = ch.text("name")
            self._max_length(ch, "name", name)
        else:
            name = (
                strip(first + " " + last)
                if (ch.col("first_name") or ch.col("last_name"))
                else first
            )
            too_long = longer_than(name, 200)
            if too_long is not None:
                column = ch.col("first_name") or ch.col("last_name")
                ch.reject(too_long, column, "name longer than 200 characters", name)
        country = ch.text("country")
        self._max_length(ch, "country", country)
        language, bad = parse_languages(ch.raw("language"))
        ch.reject(bad, ch.col("language"), "not a language code", ch.raw("language"))
        consents = {}
        for channel in ("email", "sms", "push", "ads"):
            key = f"consent_{channel}"
            consents[key], bad = parse_bools(ch.raw(key))
            ch.reject(bad, ch.col(key), "not a yes/no value", ch.raw(key))

        idx = np.flatnonzero(~ch.rejected)
        idx = self._dedupe_lines(
            ch, idx, frame_line_hash(ch.frame.iloc[idx], self._source_columns(ch.frame))
        )
        idx = self._unique_keys(ch, idx, ext, ch.col("external_id"), "customer id")
        self._formulas(
            ch,
            idx,
            {"external_id": ext, "name": name, "first_name": first, "last_name": last},
        )
        self._formulas(ch, idx, {"email": email, "country": country})
        customers = pd.DataFrame(
            {
                "external_id": ext[idx],
                "email": email[idx],
                "name": name[idx],
                "country": country[idx],
                "language": language[idx],
                **{k: v[idx] for k, v in consents.items()},
                "attributes": self._attributes(ch, idx),
                ROW_COLUMN: ch.rows[idx],
            },
            columns=CUSTOMER_COLUMNS,
        )
        return None, customers, None

    # -------------------------------------------------------------------- events

    def _clean_events(self, ch: Chunk):
        when = self._datetimes(ch, "occurred_at", required=True)
        if ch.col("kind"):
            raw_kind = ch.ids("kind")
            codes, uniques = ch.factors(raw_kind)
            kind = np.array([_kind_of(u) for u in uniques], dtype=np.int8)[codes]
            blank = np.array([not u for u in uniques], dtype=bool)[codes]
            ch.reject(blank, ch.col("kind"), "missing event kind", raw_kind)
            ch.reject(
                (kind < 0) & ~blank,
                ch.col("kind"),
                "unknown event kind (use one of: " + ", ".join(EVENT_KINDS) + ")",
                raw_kind,
            )
        else:
            kind = np.full(ch.n, PURCHASE, dtype=np.int8)
        customer, sku = ch.ids("customer"), ch.ids("sku")
        self._max_length(ch, "customer", customer)
        self._max_length(ch, "sku", sku)
        if ch.col("sku"):
            ch.reject(
                (sku == "") & (kind != SEARCH) & (kind >= 0),
                ch.col("sku"),
                "missing SKU (only search events may leave it blank)",
                sku,
            )
        elif ((kind != SEARCH) & (kind >= 0)).any():
            raise ImportFileError(
                "required column 'SKU' is missing: only search events may have no SKU",
                column="SKU",
            )
        quantity = self._quantity(ch, required=False)
        value = self._number(ch, "value", limit=VALUE_LIMIT)
        price = self._number(ch, "unit_price", limit=PRICE_LIMIT, negative="negative price")
        rating = self._rating(ch, required=False)
        ch.reject(
            (kind == RATING) & np.isnan(rating) & ~ch.rejected,
            ch.col("rating"),
            "rating event without a rating",
            ch.raw("rating"),
        )
        text, source = ch.text("text"), ch.text("source")
        self._max_length(ch, "source", source)

        # Returns: a "return" kind, or a purchase with a negative quantity.
        with np.errstate(invalid="ignore", over="ignore"):
            negative = quantity < 0
            kind = np.where(negative & (kind == PURCHASE), RETURN, kind).astype(np.int8)
            is_return = kind == RETURN
            ch.reject(
                negative & ~is_return, ch.col("quantity"), "negative quantity", ch.raw("quantity")
            )
            quantity = np.abs(quantity)
            if ch.col("unit_price"):
                computed = np.isnan(value) & ~np.isnan(price)
                value = np.where(computed, price * quantity, value)
                self._line_value(ch, value, computed)
            value_col = ch.col("value") or ch.col("unit_price")
            ch.reject(
                (value < 0) & ~is_return,
                value_col,
                "negative value",
                ch.raw("value") if ch.col("value") else ch.raw("unit_price"),
            )
            value = np.abs(value)

        idx = np.flatnonzero(~ch.rejected)
        events, idx = self._emit_events(
            ch,
            idx,
            kind=kind,
            customer=customer,
            sku=sku,
            quantity=quantity,
            value=value,
            rating=rating,
            text=text,
            when=when,
            source=source,
            event_id=ch.text("event_id") if ch.col("event_id") else None,
            rest=self._rest_columns(ch, ("unit_price", "event_id")),
        )
        self._formulas(ch, idx, {"customer": customer, "sku": sku, "source": source, "text": text})
        return None, None, events

    # ------------------------------------------------------------------- reviews

    def _clean_reviews(self, ch: Chunk):
        sku = ch.ids("sku")
        self._required(ch, "sku", sku)
        self._max_length(ch, "sku", sku)
        rating = self._rating(ch, required=True)
        title, body = ch.text("title"), ch.text("text")
        text = _join_title(title, body)
        if ch.col("occurred_at"):
            when = self._datetimes(ch, "occurred_at", required=False)
        else:
            when = np.full(ch.n, NAT, dtype=np.int64)
        missing_time = when == NAT
        default = self.options.default_time
        if default is not None:
            when = np.where(missing_time, pd.Timestamp(default).tz_convert("UTC").value, when)
        else:
            ch.reject(
                missing_time & ~ch.rejected,
                ch.col("occurred_at"),
                "missing date (and no default time given)",
                ch.raw("occurred_at"),
            )
        department, klass = ch.text("department"), ch.text("class_name")
        category = _category_path(department, klass, ch.text("category"))
        source = ch.text("source")
        self._max_length(ch, "source", source)
        kind = np.where(text != "", REVIEW, RATING).astype(np.int8)

        idx = np.flatnonzero(~ch.rejected)
        events, idx = self._emit_events(
            ch,
            idx,
            kind=kind,
            customer=ch.blank,
            sku=sku,
            quantity=np.ones(ch.n),
            value=np.full(ch.n, np.nan),
            rating=rating,
            text=text,
            when=when,
            source=source,
            event_id=None,
            rest=self._rest_columns(ch, ("title", "text", "department", "class_name", "category")),
        )
        self._formulas(
            ch,
            idx,
            {"sku": sku, "title": title, "text": body, "department": department},
        )
        self._formulas(ch, idx, {"class_name": klass, "category": ch.text("category")})
        frame = pd.DataFrame({"sku": sku[idx], "category": category[idx], "row": ch.rows[idx]})
        known = frame[frame["category"] != ""].drop_duplicates("sku", keep="last")
        self._categories.update(zip(known["sku"], known["category"], strict=True))
        last = frame.drop_duplicates("sku", keep="last")
        skus = last["sku"].to_numpy(dtype=object)
        products = products_frame(
            skus,
            titles=np.array([f"Item {s}" for s in skus], dtype=object),
            categories=np.array([self._categories.get(s, "") for s in skus], dtype=object),
            prices=np.full(skus.size, np.nan),
            rows=last["row"].to_numpy(dtype=np.int64),
        )
        return products, None, events

    # ------------------------------------------------------------- online retail

    def _clean_online_retail(self, ch: Chunk):
        # Invoices, codes, descriptions and countries repeat a lot: work per distinct value.
        invoice = ch.ids("source")
        self._required(ch, "source", invoice)
        self._max_length(ch, "source", invoice)
        sku = ch.derive(ch.ids("sku"), str.upper)
        self._required(ch, "sku", sku)
        self._max_length(ch, "sku", sku)
        title = ch.ids("title")
        self._max_length(ch, "title", title)
        quantity = self._quantity(ch, required=True)
        when = self._datetimes(ch, "occurred_at", required=True)
        price = self._number(ch, "unit_price", limit=PRICE_LIMIT)
        self._required(ch, "unit_price", ch.raw("unit_price"))
        customer = ch.derive(ch.ids("customer"), _integral_id)
        self._max_length(ch, "customer", customer)
        country = ch.ids("country")
        self._max_length(ch, "country", country)

        alive = ~ch.rejected
        # Bad-debt adjustments (A invoices) and postage, fees, vouchers are not products.
        adjustment = ch.derive(invoice, lambda v: v[:1].upper() == "A").astype(bool)
        if self._non_product is not None:
            pattern = self._non_product
            non_product = ch.derive(sku, lambda v: pattern.search(v) is not None).astype(bool)
        else:
            non_product = np.zeros(ch.n, dtype=bool)
        skipped = alive & (adjustment | non_product)
        self.counts["non_product_lines"] += int(skipped.sum())
        with np.errstate(invalid="ignore"):
            ch.reject(alive & ~skipped & (price < 0), ch.col("unit_price"), "negative price",
                      ch.raw("unit_price"))  # fmt: skip
            zero = alive & ~skipped & (price == 0) & ~ch.rejected
            ch.reject(
                alive & ~skipped & (quantity == 0) & ~zero,
                ch.col("quantity"),
                "quantity is zero",
                ch.raw("quantity"),
            )
        self.counts["zero_price_lines"] += int(zero.sum())
        cancelled = ch.derive(invoice, lambda v: v[:1].upper() == "C").astype(bool)
        with np.errstate(invalid="ignore", over="ignore"):
            kind = np.where(cancelled | (quantity < 0), RETURN, PURCHASE).astype(np.int8)
            quantity = np.abs(quantity)
            value = quantity * price
        self._line_value(ch, value, alive & ~skipped)

        idx = np.flatnonzero(~ch.rejected & ~skipped & ~zero)
        events, idx = self._emit_events(
            ch,
            idx,
            kind=kind,
            customer=customer,
            sku=sku,
            quantity=quantity,
            value=value,
            rating=np.full(ch.n, np.nan),
            text=ch.blank,
            when=when,
            source=invoice,
            event_id=None,
            rest=self._rest_columns(ch, ("title", "unit_price", "country")),
        )
        self._formulas(
            ch,
            idx,
            {
                "source": invoice,
                "sku": sku,
                "title": title,
                "customer": customer,
                "country": country,
            },
        )

        lines = pd.DataFrame(
            {
                "sku": sku[idx],
                "title": title[idx],
                "price": price[idx],
                "customer": customer[idx],
                "country": country[idx],
                "row": ch.rows[idx],
            }
        )
        named = lines[lines["title"] != ""].drop_duplicates("sku", keep="last")
        self._titles.update(zip(named["sku"], named["title"], strict=True))
        last = lines.drop_duplicates("sku", keep="last")
        skus = last["sku"].to_numpy(dtype=object)
        products = products_frame(
            skus,
            titles=np.array([self._titles.get(s) or f"Item {s}" for s in skus], dtype=object),
            categories=np.full(skus.size, "", dtype=object),
            prices=np.round(last["price"].to_numpy(dtype=np.float64), 2),
            rows=last["row"].to_numpy(dtype=np.int64),
        )
        known = lines[lines["customer"] != ""]
        countries = known[known["country"] != ""].drop_duplicates("customer", keep="last")
        country_of = dict(zip(countries["customer"], countries["country"], strict=True))
        people = known.drop_duplicates("customer", keep="last")
        ids = people["customer"].to_numpy(dtype=object)
        customers = pd.DataFrame(
            {
                "external_id": ids,
                "email": "",
                "name": "",
                "country": np.array([country_of.get(c, "") for c in ids], dtype=object),
                "language": "",
                # Invoices say nothing about consent: unknown (None; a scalar None would
                # become NaN, which reads as True).
                **{c: np.full(ids.size, None, dtype=object) for c in _CONSENTS},
                "attributes": [{} for _ in range(ids.size)],
                ROW_COLUMN: people["row"].to_numpy(dtype=np.int64),
            },
            columns=CUSTOMER_COLUMNS,
        )
        return products, customers, events

    # ---------------------------------------------------------------- campaign results

    def _clean_campaign_results(self, ch: Chunk):
        """A campaign tool's per-recipient report: who (draft / customer / email, checked
        against the export by the service), what happened (flags, revenue, times), which
        product. Blank sent is yes, blank delivered unknown, other blank flags no; a time
        given for a blank flag (or revenue for a blank conversion) makes it yes. Rows that
        contradict themselves are rejected naming the column."""
        ids = {name: self._whole_ids(ch, name) for name in RESULT_IDS}
        customer, email, sku = ch.ids("customer"), ch.text("email"), ch.ids("sku")
        for name, values in (("customer", customer), ("email", email), ("sku", sku)):
            self._max_length(ch, name, values)
        ch.reject(invalid(email, EMAIL), ch.col("email"), "invalid email", email)
        email = ch.derive(email, str.lower)
        who = next(name for name in ("draft", "customer", "email") if ch.col(name))
        nobody = (ids["draft"] < 0) & (customer == "") & (email == "") & ~ch.rejected
        ch.reject(nobody, ch.col(who), "no draft id, customer id or email", ch.raw(who))

        given = {name: self._flag(ch, name) for name in RESULT_FLAGS}  # True/False/None
        said_no = {name: values == False for name, values in given.items()}  # noqa: E712
        said_yes = {name: values == True for name, values in given.items()}  # noqa: E712
        times = {name: self._datetimes(ch, name, required=False) for name in RESULT_TIMES}
        revenue = self._number(ch, "revenue", limit=VALUE_LIMIT, negative="negative revenue")
        with np.errstate(invalid="ignore"):
            earned = revenue > 0
        # Evidence of each flag: (rows, the column that shows it). A time (or revenue for a
        # conversion) in a row whose flag is blank says yes; where the flag says no, reject.
        evidence: dict[str, list[tuple[np.ndarray, str]]] = {
            name: [(said_yes[name], name)] for name in RESULT_FLAGS
        }
        for flag, time_name in _FLAG_TIMES.items():
            timed = times[time_name] != NAT
            ch.reject(
                timed & said_no[flag],
                ch.col(time_name),
                f"{ch.col(time_name)} given but {ch.col(flag)} is no",
                ch.raw(time_name),
            )
            evidence[flag].append((timed & ~said_no[flag], time_name))
        ch.reject(
            earned & said_no["converted"],
            ch.col("revenue"),
            "revenue without a conversion",
            ch.raw("revenue"),
        )
        evidence["converted"].append((earned & ~said_no["converted"], "revenue"))
        flags = {name: np.zeros(ch.n, dtype=bool) for name in RESULT_FLAGS}
        for name, shown in evidence.items():
            for rows, field_name in shown:
                flags[name] |= rows
                if name != "sent":  # nothing can happen to a message that was not sent
                    ch.reject(
                        rows & said_no["sent"],
                        ch.col(field_name),
                        f"{ch.col(field_name)} {'is yes' if field_name == name else 'given'} "
                        f"but {ch.col('sent')} is no",
                        ch.raw(field_name),
                    )
        flags["sent"] |= ~said_no["sent"]  # blank: sent

        idx = np.flatnonzero(~ch.rejected)
        idx = self._dedupe_lines(
            ch, idx, frame_line_hash(ch.frame.iloc[idx], self._source_columns(ch.frame))
        )
        self._formulas(ch, idx, {"customer": customer, "email": email, "sku": sku})
        results = pd.DataFrame(
            {
                **{name: _nullable_ints(ids[name][idx]) for name in RESULT_IDS},
                "customer": customer[idx],
                "email": email[idx],
                "sent": flags["sent"][idx],
                "delivered": given["delivered"][idx].astype(object),  # None: not reported
                **{name: flags[name][idx] for name in ("opened", "clicked", "converted")},
                "revenue": np.round(revenue[idx], 2),
                **{
                    name: pd.to_datetime(times[name][idx], unit="ns", utc=True)
                    for name in RESULT_TIMES
                },
                "sku": sku[idx],
                ROW_COLUMN: ch.rows[idx],
            },
            columns=RESULT_COLUMNS,
        )
        return None, None, None, results

    def _whole_ids(self, ch: Chunk, name: str) -> np.ndarray:
        """int64 ids (-1 for blank); others rejected ("not a whole number", out of range)."""
        col = ch.col(name)
        if not col:
            return np.full(ch.n, -1, dtype=np.int64)
        values = ch.ids(name)
        numbers, bad, fractional = parse_ints(values)
        ch.reject(bad | fractional, col, "not a whole number", values)
        with np.errstate(invalid="ignore"):
            outside = ~bad & ~fractional & ((numbers < 1) | (numbers > _ID_LIMITS[name]))
        what = "a variant number" if name == "variant" else "an id"
        ch.reject(outside & (values != ""), col, f"not {what} (a whole number from 1)", values)
        ok = (values != "") & ~bad & ~fractional & ~outside
        return np.where(ok, np.nan_to_num(numbers), -1).astype(np.int64)

    def _flag(self, ch: Chunk, name: str) -> np.ndarray:
        """True / False / None (blank) per row: yes/no words, or a count (more than 0 is
        yes); anything else is rejected."""
        values = ch.raw(name)
        parsed, bad = parse_bools(values)
        if bad.any():
            where = np.flatnonzero(bad)
            counts = by_unique(values[where], _count_flag)
            known = counts != "?"
            parsed[where[known]] = counts[known]
            bad[where[known]] = False
        ch.reject(bad, ch.col(name), "not a yes/no value or count", values)
        parsed[bad] = None
        return parsed


# --------------------------------------------------------------------------- helpers

_CONSENTS = ("consent_email", "consent_sms", "consent_push", "consent_ads")


def _integral_id(text: str) -> str:
    """17850.0 -> 17850: ids that went through a float column on the way."""
    if text.endswith(".0") and text[:-2].isdigit():
        return text[:-2]
    return text


def _join_title(title: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Title + ". " + body ("Love it! Great fit" when the title already ends a sentence)."""
    both = (title != "") & (body != "")
    out = np.where(title != "", title, body).astype(object)
    if both.any():
        t, b = title[both], body[both]
        ends = pd.Series(t, dtype=object).str[-1:].isin([".", "!", "?", "…"]).to_numpy()
        out[both] = t + np.where(ends, " ", ". ").astype(object) + b
    return out


def _category_path(department: np.ndarray, klass: np.ndarray, category: np.ndarray) -> np.ndarray:
    both = (department != "") & (klass != "") & (department != klass)
    out = np.where(department != "", department, klass).astype(object)
    if both.any():
        out[both] = department[both] + " > " + klass[both]
    return np.where(out == "", category, out).astype(object)


def _count_flag(text: str) -> bool | str:
    """A non-negative whole count ("3", "0", "2.0") as more-than-zero, else "?"."""
    key = text.strip()
    return float(key) > 0 if _COUNT.fullmatch(key) else "?"


def _nullable_ints(values: np.ndarray) -> pd.arrays.IntegerArray:
    """int64 with -1 for blank -> Int64 with <NA>."""
    return pd.arrays.IntegerArray(values.astype(np.int64), values < 0)


def combine_results(results: pd.DataFrame, key: str) -> tuple[pd.DataFrame, int]:
    """One row per value of ``key`` (a recipient), and how many rows were folded in.

    Several rows of one recipient (a report per event, or one row per list the person is
    on) add up: a yes in any row wins (delivered: yes over no over unknown), revenue adds up
    (unknown only when every row leaves it blank), the earliest time is kept, and the ids,
    email and SKU come from the first row that has one. Rows come out in file order.
    """
    if results.empty or not results[key].duplicated().any():
        return results.reset_index(drop=True), 0
    frame = results.sort_values(ROW_COLUMN, kind="stable")
    groups = frame.groupby(key, sort=False, dropna=False)
    delivered = frame["delivered"].map({True: 2, False: 1}).fillna(0).astype(np.int8)
    out = pd.DataFrame(index=groups.size().index)
    for name in (*RESULT_IDS,):
        out[name] = groups[name].first()
    for name in ("customer", "email", "sku"):
        filled = frame[name].where(frame[name] != "")
        out[name] = filled.groupby(frame[key], sort=False, dropna=False).first().fillna("")
    for name in ("sent", "opened", "clicked", "converted"):
        out[name] = groups[name].any()
    best = delivered.groupby(frame[key], sort=False, dropna=False).max()
    out["delivered"] = best.map({2: True, 1: False, 0: None}).astype(object)
    out["revenue"] = groups["revenue"].sum(min_count=1)
    for name in RESULT_TIMES:
        out[name] = groups[name].min()
    out[ROW_COLUMN] = groups[ROW_COLUMN].min()
    if key not in RESULT_COLUMNS:
        out[key] = out.index
    merged = len(frame) - len(out)
    out = out.reset_index(drop=True).sort_values(ROW_COLUMN, kind="stable")
    columns = [*RESULT_COLUMNS, *([key] if key not in RESULT_COLUMNS else [])]
    return out[columns].reset_index(drop=True), merged
