"""The data the copy engine works on, shared by every module of it.

A draft is made for one audience item (a customer, or a segment) from the fact sheets of
its products. Every fact keeps its source, so a check can prove that each price, number,
name or attribute in the text comes from the products' data (fidelity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CHANNELS = ("email", "sms", "push", "google_ads", "meta_ads", "product_text")
TONES = ("friendly", "premium", "urgent", "playful", "informative")
LOCALES = ("en", "de", "fr", "es", "zh")


@dataclass(frozen=True)
class Fact:
    """One statement the copy may use. kind: title | brand | category | price | attribute |
    description | review | stock | occasion; source: where it came from ("product:42.price",
    "review:9017", "occasion:black_friday")."""

    kind: str
    name: str
    value: str | int | float | Decimal
    source: str


@dataclass(frozen=True)
class FactSheet:
    """Everything the copy may say about one product, and nothing else."""

    product_id: str
    title: str
    currency: str  # ISO 4217
    price: Decimal | None = None
    brand: str = ""
    category: str = ""  # path "Home > Kitchen"
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    reviews: tuple[str, ...] = ()  # positive review sentences, best first
    rating: float | None = None  # mean stars, when reviewed
    review_count: int = 0
    in_stock: bool = True
    stock_quantity: int | None = None  # low stock supports an urgent tone
    url: str = ""
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """Who the copy is for: a customer or a segment (never PII beyond a first name)."""

    key: str  # customer external id or "segment:<id>"
    locale: str = "en"
    first_name: str = ""
    interests: tuple[str, ...] = ()  # top categories, recent product titles, strongest first
    segment: str = ""  # e.g. RFM segment name
    country: str = ""  # ISO 3166 alpha-2 when known (occasions)


@dataclass(frozen=True)
class Occasion:
    key: str  # "black_friday"
    name: str  # in the locale ("Black Friday")
    ends_on: str = ""  # ISO date; supports urgency


@dataclass(frozen=True)
class BrandRules:
    voice: tuple[str, ...] = ()  # descriptors ("warm", "witty")
    banned_words: tuple[str, ...] = ()
    disclaimer: str = ""  # required text, appended where the channel has room
    sender: str = ""  # brand name used in sign-offs


@dataclass(frozen=True)
class Brief:
    """What to write: one channel, tone and locale; n variants per audience item."""

    channel: str
    tone: str = "friendly"
    locale: str = "en"
    variants: int = 3
    products_per_message: int = 1
    occasion: Occasion | None = None
    brand: BrandRules = BrandRules()
    sms_segments: int = 1  # allowed SMS segments


@dataclass
class Variant:
    """One piece of copy. ``fields`` by channel (see channels.FIELDS): text, or a list of
    texts for ads headlines/descriptions."""

    channel: str
    locale: str
    tone: str
    fields: dict[str, Any]
    product_ids: tuple[str, ...]
    recipient_key: str = ""
    frames: tuple[str, ...] = ()  # ids of the template frames used (variation)
    score: float = 0.0  # relevance to the recipient
    source: str = "template"  # template | llm | edit
    notes: tuple[str, ...] = ()  # e.g. why the tone fell back (urgent without data)


@dataclass(frozen=True)
class CheckResult:
    """One check of one variant. severity: error (blocks approval) | warning."""

    check: str
    ok: bool
    message: str = ""
    field: str = ""
    severity: str = "error"
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
