"""Fact sheets (everything the copy may say about a product, each fact with its source)
and the locale formatting the generator must use, so that the fidelity check can parse
every price, number, percentage and date back (Babel: CLDR formats per locale)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.dates import format_date as _babel_format_date
from babel.numbers import format_currency, format_decimal
from babel.numbers import format_percent as _babel_format_percent

from copygen.engine.types import Fact, FactSheet

# A number as written in any of our locales: 12 | 12.50 | 12,50 | 1,234.50 | 1.234,50 |
# 1 234,50 (narrow no-break space, no-break space, thin space or apostrophe as grouping).
# The run is taken whole; ``number_values`` decides what it may mean.
_NUM = r"\d(?:[\d.,\u00a0\u202f\u2009'’]*\d)?"
NUMBER_RE = re.compile(_NUM)
PERCENT_RE = re.compile(
    rf"({_NUM})[\s\u00a0\u202f]?(?:%|％|percent\b|per cent\b|Prozent\b|pour\s?cent\b"
    r"|por\s?ciento\b)",
    re.IGNORECASE,
)
# A review sentence that talks money ("got it for under $40") is left out: the price it
# quotes is not the product's price, and copy that repeats it would fail fidelity.
_MONEY_HINT_RE = re.compile(
    r"[$€£¥₹]\s?\d|\d\s?[$€£¥₹元]|\d\s?(?:EUR|USD|GBP|CHF|dollars?|euros?|bucks|pounds)\b",
    re.IGNORECASE,
)
_SENTENCE_RE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_GROUP_CHARS = "\u00a0\u202f\u2009'’ "


def number_candidates(token: str) -> frozenset[Decimal]:
    """Every value a written number may mean across our locales ("1.234" is 1234 in de and
    1.234 in en; "12,50" is 12.5). Empty when it is no single number ("36,38,40")."""
    t = token.strip()
    for ch in _GROUP_CHARS:
        t = t.replace(ch, "")
    out: set[Decimal] = set()
    for group, dec in ((",", "."), (".", ",")):
        if group in t and dec in t and t.rfind(group) > t.rfind(dec):
            continue  # "1.234,5" cannot be en
        parts = t.split(dec)
        if len(parts) > 2:
            continue
        whole = parts[0]
        if group in whole:
            chunks = whole.split(group)
            if not chunks[0] or any(len(c) != 3 for c in chunks[1:]):
                continue
            whole = "".join(chunks)
        try:
            out.add(Decimal(whole + ("." + parts[1] if len(parts) == 2 else "")).normalize())
        except InvalidOperation:
            continue
    return frozenset(out)


def number_values(token: str) -> frozenset[Decimal]:
    """``number_candidates``, or when the run is no single number, each of its parts."""
    values = number_candidates(token)
    if values:
        return values
    return frozenset(Decimal(p).normalize() for p in re.split(r"\D+", token) if p)


def numbers_in(text: str) -> set[Decimal]:
    """Every value of every number written in ``text`` (see ``number_values``)."""
    found: set[Decimal] = set()
    for m in NUMBER_RE.finditer(text or ""):
        found |= number_values(m.group())
    return found


def percents_in(text: str) -> set[Decimal]:
    found: set[Decimal] = set()
    for m in PERCENT_RE.finditer(text or ""):
        found |= number_candidates(m.group(1))
    return found


def to_decimal(value: Any) -> Decimal | None:
    """The value as a finite Decimal, or None: NaN and infinity are no price (a NaN cannot
    even be sorted or compared, which the fidelity check does)."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, float):
        number = Decimal(str(value))
    else:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
    return number if number.is_finite() else None


# --- formatting (the generator uses these; fidelity parses them back) ----------------------


def format_price(value: Any, currency: str, locale: str) -> str:
    """ "£12.50", "12,50 €", "12,50 $US", "¥12.50" (CLDR standard currency format)."""
    return format_currency(to_decimal(value), currency, locale=locale)


def format_number(value: Any, locale: str, *, decimals: int | None = None) -> str:
    """Locale decimal format; ``decimals`` fixes the number of fraction digits."""
    d = to_decimal(value)
    if decimals is not None:
        d = d.quantize(Decimal(1).scaleb(-decimals))
        return format_decimal(
            d, format=f"#,##0{'.' + '0' * decimals if decimals else ''}", locale=locale
        )
    return format_decimal(d, locale=locale)


def format_percent(points: Any, locale: str) -> str:
    """``points`` in percent (30 -> "30%" in en, "30 %" in de/fr/es)."""
    return _babel_format_percent(to_decimal(points) / 100, locale=locale)


def format_date(value: dt.date | str, locale: str, *, format: str = "long") -> str:
    """ "November 29, 2024", "29. November 2024", "2024年11月29日" (ISO strings accepted)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return _babel_format_date(value, format=format, locale=locale)


# --- fact sheets --------------------------------------------------------------------------


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.split(text or "") if s.strip()]


def _review_parts(review: Any) -> tuple[str, str, float | None]:
    if isinstance(review, Mapping):
        return (
            str(review.get("id", "") or ""),
            str(review.get("text", "") or ""),
            None if review.get("rating") is None else float(review["rating"]),
        )
    return "", str(review or ""), None


def fact_sheet(
    product: Mapping[str, Any],
    *,
    currency: str,
    reviews: Iterable[Any] = (),
    rating: float | None = None,
    review_count: int | None = None,
    stock_quantity: int | None = None,
    min_review_rating: float = 4,
    max_review_sentences: int = 12,
) -> FactSheet:
    """Build a FactSheet from a product dict (keys: id or sku, title, brand, category,
    price, description, attributes, url, in_stock, stock_quantity) and its reviews.

    ``reviews``: strings (already positive) or dicts ``{"id", "text", "rating"}``; reviews
    rated below ``min_review_rating`` are left out; review sentences of 3 to 40 words are
    kept, best-rated first. Every fact keeps its source ("product:<id>.<field>",
    "review:<id>")."""
    pid = str(product.get("id", product.get("sku", "")) or product.get("sku", ""))
    src = f"product:{pid}"
    title = str(product.get("title", "") or "").strip()
    brand = str(product.get("brand", "") or "").strip()
    category = str(product.get("category", "") or "").strip()
    description = str(product.get("description", "") or "").strip()
    price = to_decimal(product.get("price"))
    attributes = {
        str(k): str(v).strip()
        for k, v in (product.get("attributes") or {}).items()
        if v is not None and str(v).strip() != "" and not isinstance(v, (dict, list))
    }
    if stock_quantity is None and product.get("stock_quantity") not in (None, ""):
        stock_quantity = int(product["stock_quantity"])
    in_stock = bool(product.get("in_stock", True))

    facts: list[Fact] = []
    if title:
        facts.append(Fact("title", "title", title, f"{src}.title"))
    if brand:
        facts.append(Fact("brand", "brand", brand, f"{src}.brand"))
    for i, part in enumerate(p.strip() for p in re.split(r"\s*[>/|]\s*", category)):
        if part:
            facts.append(Fact("category", f"category[{i}]", part, f"{src}.category"))
    if price is not None:
        facts.append(Fact("price", "price", price, f"{src}.price"))
    for key, value in attributes.items():
        facts.append(Fact("attribute", key, value, f"{src}.attributes.{key}"))
    for m in NUMBER_RE.finditer(description):
        facts.append(Fact("description", "number", m.group(), f"{src}.description"))
    for m in PERCENT_RE.finditer(description):
        facts.append(Fact("description", "percent", m.group(1), f"{src}.description"))
    facts.append(Fact("stock", "in_stock", in_stock, f"{src}.in_stock"))
    if stock_quantity is not None:
        facts.append(Fact("stock", "stock_quantity", stock_quantity, f"{src}.stock_quantity"))

    kept: list[tuple[float, int, str, str]] = []
    n_reviews = 0
    for idx, review in enumerate(reviews):
        rid, text, stars = _review_parts(review)
        n_reviews += 1
        if stars is not None and stars < min_review_rating:
            continue
        source = f"review:{rid}" if rid else f"{src}.reviews[{idx}]"
        for sentence in _sentences(text):
            if 3 <= len(sentence.split()) <= 40 and not _MONEY_HINT_RE.search(sentence):
                kept.append((-(stars or 0), len(kept), sentence, source))
    kept.sort()
    snippets = tuple(s for _, _, s, _ in kept[:max_review_sentences])
    for i, (_, _, sentence, source) in enumerate(kept[:max_review_sentences]):
        facts.append(Fact("review", f"review[{i}]", sentence, source))
    if rating is not None:
        facts.append(Fact("review", "rating", float(rating), f"{src}.reviews"))
    count = review_count if review_count is not None else n_reviews
    if count:
        facts.append(Fact("review", "review_count", int(count), f"{src}.reviews"))

    return FactSheet(
        product_id=pid,
        title=title,
        currency=currency,
        price=price,
        brand=brand,
        category=category,
        description=description,
        attributes=attributes,
        reviews=snippets,
        rating=None if rating is None else float(rating),
        review_count=int(count or 0),
        in_stock=in_stock,
        stock_quantity=stock_quantity,
        url=str(product.get("url", "") or ""),
        facts=tuple(facts),
    )
