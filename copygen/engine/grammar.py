"""Template grammars: channel × locale × tone, slot filling with variation.

A locale module (``locales/<code>.py``) holds many frames per slot and tone; a channel
recipe (``realize``) decides which slots each field is made of. Every field is built within
its limit *by construction*: short fields only keep frames that fit, product names are
shortened at word boundaries (a number is never cut: names are cut between whole words
only), and optional sentences are dropped before a limit is crossed.

Nothing is said that the data does not hold: prices, ratings, review counts, stock and
dates come from the fact sheets and the occasion, formatted with Babel through
``facts.format_*`` (so the fidelity check parses them back); selling points are quoted as
mined (a description sentence or a review only in its own language). The text is plain
(no markup); catalog text was reduced to plain text before.

Variation: the variants of one item share a ``FrameUsage``: how often each frame was used
and the word pairs their wording has said. A slot takes the least used frame that fits;
among those, the one whose wording (placeholders as markers) repeats the fewest word pairs
already said; then a seeded random pick. Selling points rotate the same way, so each variant
leads with other facts. Frames used are recorded (``frames``).
"""

from __future__ import annotations

import random
import re
import string
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple

from . import locales
from .channels import field_spec, measure, sms_segments
from .facts import format_date as _format_date
from .facts import format_number as _format_number
from .facts import format_price as _format_price
from .selling_points import SellingPoint
from .text import plain_text

LOW_STOCK = 10  # at most this many left (and at least one) supports the urgent tone

ATTR_FAMILIES = {
    "material": "material",
    "materials": "material",
    "fabric": "material",
    "composition": "material",
    "material_composition": "material",
    "color": "color",
    "colour": "color",
    "colors": "color",
    "farbe": "color",
    "couleur": "color",
    "fit": "fit",
    "cut": "fit",
    "size": "size",
    "sizes": "size",
    "pattern": "pattern",
    "print": "pattern",
    "style": "style",
    "origin": "origin",
    "made_in": "origin",
    "country_of_origin": "origin",
}

_FMT = string.Formatter()


@lru_cache(maxsize=65536)
def format_price(value, currency: str, locale: str) -> str:
    return _format_price(value, currency, locale)


@lru_cache(maxsize=65536)
def format_number(value, locale: str, *, decimals: int | None = None) -> str:
    return _format_number(value, locale, decimals=decimals)


@lru_cache(maxsize=4096)
def format_date(value: str, locale: str, *, format: str = "long") -> str:
    return _format_date(value, locale, format=format)


_UPPER_NAME = re.compile(r"[A-Z]")


@lru_cache(maxsize=4096)
def _keys(frame: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in _FMT.parse(frame) if f)


_GRAM_TOKEN = re.compile(
    r"\{(\w+)\}|[\u3400-\u9fff\uf900-\ufaff]|[^\W\d_\u3400-\u9fff]+|\d+", re.UNICODE
)


def frame_bigrams(frame: str) -> frozenset[tuple[str, str]]:
    """The word pairs a frame's own wording says (a placeholder is one marker token; a Han
    character is one token), to prefer frames that do not repeat what was said."""
    toks = [
        "{" + m.group(1) + "}" if m.group(1) else m.group()
        for m in _GRAM_TOKEN.finditer(frame.lower())
    ]
    return frozenset(zip(toks, toks[1:], strict=False))


class Frame(NamedTuple):
    fid: str  # "hook.friendly3"
    text: str
    keys: frozenset[str]  # placeholders
    grams: frozenset[tuple[str, str]]  # frame_bigrams
    tag: int  # a fixed number of the frame, mixed with a seeded draw to break ties


def _frame(fid: str, text: str) -> Frame:
    return Frame(fid, text, _keys(text), frame_bigrams(text), zlib.crc32(fid.encode()))


class FrameUsage(dict):
    """What the variants of one item have used so far: frame id (or selling point) → times,
    and ``bigrams``, the word pairs of the frames used."""

    def __init__(self) -> None:
        super().__init__()
        self.bigrams: set[tuple[str, str]] = set()


def display_name(title: str) -> str:
    """The product name as shown: plain text; an ALL-CAPS catalog title in title case."""
    t = " ".join(plain_text(title).split())
    letters = [c for c in t if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) / len(letters) > 0.7 and len(letters) > 3:
        t = " ".join(w.capitalize() if w.isalpha() else _cap_word(w) for w in t.split())
    return t


def _cap_word(w: str) -> str:
    return "-".join(p[:1].upper() + p[1:].lower() for p in w.split("-"))


def shorten(name: str, max_len: int) -> str:
    """``name`` cut at a word boundary to at most ``max_len`` characters (graphemes); ""
    when not even the first word fits. Whole words only, so numbers are never cut; dangling
    joiners ("and", "of", "&", "-") are dropped."""
    if measure(name) <= max_len:
        return name
    words = name.split()
    if len(words) == 1 and re.search(r"[\u3400-\u9fff]", name):
        return name[:max_len] if not re.search(r"\d", name[max_len - 1 : max_len + 1]) else ""
    out: list[str] = []
    for w in words:
        if measure(" ".join([*out, w])) > max_len:
            break
        out.append(w)
    while out and (
        out[-1].lower()
        in {
            "and",
            "of",
            "&",
            "-",
            "with",
            "for",
            "the",
            "a",
            "in",
            "und",
            "mit",
            "de",
            "et",
            "y",
            "con",
            "avec",
            "für",
        }
        or not any(c.isalnum() for c in out[-1])
    ):
        out.pop()
    return " ".join(out).rstrip(",;:-–")


def _cap(s: str) -> str:
    for i, ch in enumerate(s):
        if ch.isalpha():
            return s[:i] + ch.upper() + s[i + 1 :] if ch.islower() else s
        if ch not in "“„«¿¡\"' \u00a0":
            return s
    return s


def _decap(s: str) -> str:
    """ "Machine washable" → "machine washable" for use inside a sentence (not acronyms)."""
    if len(s) > 1 and s[0].isupper() and s[1].islower():
        return s[0].lower() + s[1:]
    return s


@dataclass
class Product:
    """One product as the grammar sees it: display values and ranked selling points."""

    sheet: object
    name: str
    price: str = ""
    category: str = ""
    brand: str = ""
    stock: str = ""
    rating: str = ""
    count: str = ""
    low_stock: bool = False
    attributes: list[SellingPoint] = field(default_factory=list)
    keyphrases: list[SellingPoint] = field(default_factory=list)
    features: list[SellingPoint] = field(default_factory=list)  # description sentences
    quotes: list[SellingPoint] = field(default_factory=list)
    for_you: bool = False  # its category matches the recipient's interests


def product_view(sheet, points: Sequence[SellingPoint], locale: str) -> Product:
    """Display values of one fact sheet in ``locale`` (Babel via facts.format_*)."""
    loc = locale
    price = ""
    if sheet.price is not None and sheet.currency:
        price = format_price(sheet.price, sheet.currency, loc)
    leaf = [p.strip() for p in re.split(r"\s*[>/|]\s*", sheet.category or "") if p.strip()]
    category = display_name(leaf[-1]) if leaf else ""
    stock_n = sheet.stock_quantity
    low = bool(sheet.in_stock and stock_n is not None and 0 < stock_n <= LOW_STOCK)
    rating = ""
    if sheet.rating is not None and sheet.review_count:
        r = float(sheet.rating)
        if abs(r - round(r, 1)) < 1e-9:  # only print a rating the data holds exactly
            rating = format_number(round(r, 1), loc, decimals=0 if r == int(r) else 1)
    return Product(
        sheet=sheet,
        name=display_name(sheet.title),
        price=price,
        category=category,
        brand=plain_text(sheet.brand),
        stock=format_number(stock_n, loc) if low else "",
        rating=rating,
        count=format_number(sheet.review_count, loc) if sheet.review_count else "",
        low_stock=low,
        attributes=[p for p in points if p.kind == "attribute"],
        keyphrases=[p for p in points if p.kind == "keyphrase"],
        features=[p for p in points if p.kind == "feature"],
        quotes=[p for p in points if p.kind == "review"],
    )


TONE_NAMES = ("friendly", "premium", "urgent", "playful", "informative")
_NAME = frozenset({"name"})


class Grammar:
    """The frames of one locale, indexed: ``pool(slot, tone)`` → [Frame]. A locale's key
    "*" suits every tone; "friendly|playful" lists the tones that share frames (one
    register: du/tu/tú or Sie/vous/usted)."""

    def __init__(self, locale: str) -> None:
        mod = locales.load(locale)
        self.locale = mod.__name__.rsplit(".", 1)[-1]
        self.sep: str = mod.SEP
        self.quotes: tuple[str, str] = mod.QUOTES
        self.list_and: str = mod.LIST_AND
        self._pools: dict[tuple[str, str], list[Frame]] = {}
        self._candidates: dict[tuple, list[Frame]] = {}
        for slot, by_tone in mod.FRAMES.items():
            own: dict[str, list[Frame]] = {t: [] for t in TONE_NAMES}
            common: list[Frame] = []
            for key, frames in by_tone.items():
                entries = [_frame(f"{slot}.{key}{i}", f) for i, f in enumerate(frames)]
                if key == "*":
                    common += entries
                    continue
                for tone in key.split("|"):
                    if tone not in own:
                        raise ValueError(f"{self.locale}: unknown tone {tone!r} in {slot}")
                    own[tone] += entries
            for tone in TONE_NAMES:
                frames_ = own[tone] if own[tone] or common else own["friendly"]
                self._pools[(slot, tone)] = frames_ + common
        self.attr = {
            fam: [_frame(f"attr.{fam}{i}", f) for i, f in enumerate(fs)]
            for fam, fs in mod.ATTR.items()
        }

    def pool(self, slot: str, tone: str) -> list[Frame]:
        return self._pools.get((slot, tone), [])

    def candidates(
        self,
        slot: str,
        tone: str,
        have: frozenset[str],
        require: frozenset[str] = frozenset(),
        avoid: frozenset[str] = frozenset(),
    ) -> list[Frame]:
        """The frames of ``pool(slot, tone)`` whose placeholders all have values (``have``),
        with every key of ``require`` and none of ``avoid`` (memoized: few combinations)."""
        key = (slot, tone, have, require, avoid)
        hit = self._candidates.get(key)
        if hit is None:
            hit = [
                f
                for f in self.pool(slot, tone)
                if f.keys <= have and require <= f.keys and not f.keys & avoid
            ]
            if len(self._candidates) < 50_000:
                self._candidates[key] = hit
        return hit

    def counts(self) -> dict[str, int]:
        """Frames per slot, as many as one tone sees on average (its own and the common)."""
        slots = sorted({s for s, _ in self._pools})
        return {
            s: round(sum(len(self._pools[(s, t)]) for t in TONE_NAMES) / len(TONE_NAMES))
            for s in slots
        }


_GRAMMARS: dict[str, Grammar] = {}


def grammar(locale: str) -> Grammar:
    g = _GRAMMARS.get(locale)
    if g is None:
        g = _GRAMMARS[locale] = Grammar(locale)
    return g


@dataclass
class Request:
    channel: str
    locale: str
    tone: str  # the tone actually used (urgent only when supported)
    products: list[Product]
    first: str = ""
    sender: str = ""
    disclaimer: str = ""
    occasion: str = ""
    date: str = ""
    urgent_stock: bool = False
    urgent_date: bool = False
    sms_segments: int = 1


class Realizer:
    """Builds one variant's fields. ``used`` (shared by the variants of one item, ideally a
    ``FrameUsage``) makes frames and selling points not yet used come first, and wording
    not yet said, so variants differ."""

    def __init__(self, req: Request, rng: random.Random, used: dict[str, int]) -> None:
        self.req = req
        self.g = grammar(req.locale)
        self.rng = rng
        self.used = used
        self.seen: set | None = getattr(used, "bigrams", None)
        self.frames: list[str] = []
        self.last_keys: frozenset[str] = frozenset()  # placeholders of the last frame used
        self.used_points: list[SellingPoint] = []
        self.zh = self.g.locale == "zh"
        p = req.products[0]
        self.base = {
            "first": req.first,
            "sender": req.sender,
            "occasion": req.occasion,
            "date": req.date if req.urgent_date else "",
            "stock": p.stock if req.urgent_stock else "",
            "name": p.name,
            "price": p.price,
            "category": p.category,
            "brand": p.brand,
            "rating": p.rating,
            "count": p.count,
        }
        self._have_base = frozenset(k for k, v in self.base.items() if v)
        # selling points of the first product for this variant, rotated by the rng
        self.points = self._point_plan(p)

    # -- choices ----------------------------------------------------------------------------
    def _order(self, frames: Sequence[Frame]) -> Iterator[Frame]:
        """Best first: least used by the item's variants, then the fewest word pairs already
        said (in quarters), then seeded chance. Lazy: a slot usually takes the first."""
        used, seen = self.used, self.seen
        groups: dict[int, list[Frame]] = {}
        for f in frames:
            groups.setdefault(used.get(f.fid, 0), []).append(f)
        for times in sorted(groups):
            group = groups[times]
            if len(group) == 1:
                yield group[0]
                continue
            salt = self.rng.getrandbits(32)  # one draw orders the whole group
            keyed = [
                (
                    int(4 * len(f.grams & seen) / len(f.grams)) if seen and f.grams else 0,
                    f.tag ^ salt,
                    f,
                )
                for f in group
            ]
            keyed.sort(key=itemgetter(0, 1))
            for k in keyed:
                yield k[2]

    def _mark(self, f: Frame) -> None:
        self.last_keys = f.keys
        self.used[f.fid] = self.used.get(f.fid, 0) + 1
        self.frames.append(f.fid)
        if self.seen is not None:
            self.seen |= f.grams

    def _pick_point(self, points: Sequence[SellingPoint], k: int) -> SellingPoint:
        """One of the ``k`` best points: the one the item's variants used least (chance
        breaks ties), so each variant leads with other facts."""
        top = list(points[: max(1, k)])
        keyed = [(self.used.get(f"point:{sp.text}", 0), self.rng.random(), sp) for sp in top]
        sp = min(keyed, key=itemgetter(0, 1))[2]
        self.used[f"point:{sp.text}"] = self.used.get(f"point:{sp.text}", 0) + 1
        return sp

    def _render(self, frame: str, values: dict[str, str]) -> str:
        return _cap(frame.format_map(values)) if not self.zh else frame.format_map(values)

    def slot(
        self,
        slot: str,
        values: dict[str, str] | None = None,
        *,
        max_len: int | None = None,
        spec=None,
        require: frozenset[str] = frozenset(),
        avoid: frozenset[str] = frozenset(),
    ) -> str:
        """One sentence of ``slot`` whose placeholders all have values (and which uses
        every key of ``require`` and none of ``avoid``), within ``max_len`` when given
        (the product name may be shortened to fit)."""
        vals = values if values is not None else self.base
        have = self._have_base if values is None else frozenset(k for k, v in vals.items() if v)
        cands = self.g.candidates(slot, self.req.tone, have, require, avoid)
        for f in self._order(cands):
            text = self._render(f.text, vals)
            if max_len is not None and measure(text, spec) > max_len:
                if "name" not in f.keys:
                    continue
                room = max_len - (measure(text, spec) - measure(vals["name"], spec))
                short = shorten(vals["name"], room) if room >= 8 else ""
                # a name alone may lose more words than a name inside a sentence
                keep = 0.4 if f.text == "{name}" else 0.7
                if not short or measure(short) < keep * measure(vals["name"]):
                    continue
                text = self._render(f.text, {**vals, "name": short})
                if measure(text, spec) > max_len:
                    continue
            self._mark(f)
            return text
        return ""

    # -- selling points ---------------------------------------------------------------------
    def _pick_points(self, points: Sequence[SellingPoint], n: int) -> list[SellingPoint]:
        """``n`` of ``points``, the ones the item's variants used least first, in an order
        of chance."""
        left, out = list(points), []
        while left and len(out) < n:
            sp = self._pick_point(left, len(left))
            left.remove(sp)
            out.append(sp)
        return out

    def _keyphrases(self, p: Product) -> list[SellingPoint]:
        """Key phrases in the copy's language; in another language only when the product has
        nothing else to say (no attributes, no description sentences)."""
        own = [k for k in p.keyphrases if k.lang == self.g.locale]
        if own or p.attributes or self._features(p):
            return own
        return p.keyphrases[:3]

    def _features(self, p: Product) -> list[SellingPoint]:
        return [f for f in p.features if f.lang == self.g.locale]

    def _point_plan(self, p: Product) -> list[str]:
        """Up to three point sentences for product ``p``: an attribute statement, a
        description sentence (or else a key phrase), a review quote (same language only),
        rotated over the item's variants so they differ."""
        out: list[str] = []
        if p.attributes:
            sp = self._pick_point(p.attributes, 3)
            out.append(self.attribute_sentence(sp))
            self.used_points.append(sp)
        feats, kps = self._features(p), self._keyphrases(p)
        if feats:
            sp = self._pick_point(feats, 3)
            out.append(sp.text)
            self.used_points.append(sp)
        elif kps:
            sp = self._pick_point(kps, 4)
            out.append(self.slot("point", {**self.base, "point": _decap(sp.text)}))
            self.used_points.append(sp)
        qs = [q for q in p.quotes if q.lang == self.g.locale]
        if qs:
            sp = self._pick_point(qs, 3)
            out.append(self.slot("quote", {**self.base, "quote": self.quote(sp.text)}))
            self.used_points.append(sp)
        return [s for s in out if s]

    def attribute_sentence(self, sp: SellingPoint) -> str:
        fam = ATTR_FAMILIES.get(sp.name.strip().lower().replace(" ", "_"), "*")
        frames = self.g.attr.get(fam) or self.g.attr["*"]
        label = sp.name.replace("_", " ").strip()
        label = label[:1].upper() + label[1:]
        for f in self._order(frames):
            self._mark(f)
            return self._render(f.text, {"value": sp.text, "label": label})
        return ""

    def quote(self, text: str) -> str:
        t = text.strip().strip('"“”„«»')
        if t and t[-1] not in ".!?。！？":
            t += "。" if self.zh else "."
        return f"{self.g.quotes[0]}{t}{self.g.quotes[1]}"

    # -- building blocks ---------------------------------------------------------------------
    def join(self, parts: Sequence[str]) -> str:
        return self.g.sep.join(p for p in parts if p)

    def product_line(self, p: Product, *, with_price: bool = True) -> str:
        vals = {**self.base, "name": p.name, "price": p.price if with_price else ""}
        if with_price and p.price:
            return self.slot("product_price", vals)
        return self.slot("product", vals)

    def extras(self) -> list[str]:
        """Occasion / urgency sentences the data supports."""
        out = []
        if self.req.urgent_stock:
            out.append(self.slot("urgency_stock"))
        if self.req.urgent_date:
            out.append(self.slot("urgency_date"))
        elif self.req.occasion:
            out.append(self.slot("occasion"))
        return [s for s in out if s]

    def greeting(self) -> str:
        return self.slot("greet") if self.req.first else self.slot("greet_anon")

    def for_you(self) -> str:
        p = self.req.products[0]
        return self.slot("for_you") if p.for_you and p.category else ""

    # -- channels ----------------------------------------------------------------------------
    def email(self) -> dict:
        req = self.req
        body_parts = [self.slot("hook"), self.for_you()]
        for i, p in enumerate(req.products):
            body_parts.append(self.product_line(p))
            if i == 0:
                pts = list(self.points)
                self.rng.shuffle(pts)
                body_parts += pts
            elif p.attributes:
                body_parts.append(self.attribute_sentence(p.attributes[0]))
        if len(self.points) < 2:  # little to say about the product: one more line of ours
            body_parts.append(self.slot("pitch"))
        body_parts += self.extras()
        sign = self.slot("signoff") if req.sender else self.slot("signoff_anon")
        paras = [self.greeting(), self.join(body_parts), self.slot("close"), sign]
        if req.disclaimer:
            paras.append(req.disclaimer)
        body = "\n\n".join(p for p in paras if p)
        spec = field_spec("email", "body")
        while measure(body, spec) > spec.max_len and len(body_parts) > 2:
            body_parts.pop(-1 if len(body_parts) > 3 else 1)
            paras[1] = self.join(body_parts)
            body = "\n\n".join(p for p in paras if p)
        subj_spec = field_spec("email", "subject")
        subject = self.slot("subject", max_len=subj_spec.max_len, spec=subj_spec)
        if not subject:
            subject = shorten(self.base["name"], subj_spec.max_len)
        cta_spec = field_spec("email", "cta")
        cta = self.slot("cta", max_len=cta_spec.max_len, spec=cta_spec)
        return {"subject": subject, "preheader": self.preheader(), "body": body, "cta": cta}

    def preheader(self) -> str:
        spec = field_spec("email", "preheader")
        lo, hi = spec.min_len, spec.max_len
        p = self.req.products[0]
        # not the body's point sentences: the preheader shows next to the subject, before
        # the body, and repeating sentences makes the variants alike
        pool = [s for s in [*self.extras(), self.slot("close")] if s]
        self.rng.shuffle(pool)
        if self.rng.random() < 0.5 or not p.price:
            text = self.product_line(p)
            if measure(text) > hi:
                text = self.product_line(p, with_price=False)
            if measure(text) > hi:
                text = self.slot("product_price", max_len=hi) or self.slot("product", max_len=hi)
        else:
            text = self.slot("hook", max_len=hi)
            pool.insert(0, self.slot("price"))
        for s in pool:
            if measure(text) >= lo + 25:
                break
            cand = self.join([text, s])
            if measure(cand) <= hi:
                text = cand
        if measure(text) < lo:
            for s in (self.slot("hook"), self.slot("close")):
                cand = self.join([s, text])
                if measure(cand) <= hi:
                    text = cand
                if measure(text) >= lo:
                    break
        return text

    def sms(self) -> dict:
        req = self.req
        p = req.products[0]
        prefix = f"{req.sender}: " if req.sender else ""
        hook = self.slot("sms_hook")
        line = self.product_line(p)
        extras = self.extras()
        close = self.slot("close")
        point = self.points[0] if self.points else ""
        options = [
            [hook, line, point, *extras, close],
            [hook, line, *extras, close],
            [hook, line, *extras[:1]],
            [line, *extras[:1], close],
            [line, close],
            [line],
        ]
        for opt in options:
            text = _sms_clean(prefix + self.join(opt))
            if sms_segments(text)[1] <= req.sms_segments:
                return {"text": text}
        # a long product name: shorten it to fit
        for room in (60, 40, 25, 15):
            vals = {**self.base, "name": shorten(p.name, room)}
            if not vals["name"]:
                continue
            text = _sms_clean(prefix + self.slot("product_price" if p.price else "product", vals))
            if sms_segments(text)[1] <= req.sms_segments:
                return {"text": text}
        return {"text": _sms_clean(prefix + self.slot("cta"))}

    def push(self) -> dict:
        t_spec, b_spec = field_spec("push", "title"), field_spec("push", "body")
        # the body names the product: the title says something else when it can
        title = (
            self.slot("push_title", max_len=t_spec.max_len, spec=t_spec, avoid=_NAME)
            or self.slot("push_title", max_len=t_spec.max_len, spec=t_spec)
            or shorten(self.base["name"], t_spec.max_len)
        )
        p = self.req.products[0]
        parts = [self.product_line(p), *(self.points[:1]), *self.extras()[:1], self.slot("close")]
        body = self._fit(parts, b_spec)
        if not body:
            body = self.slot("product_price", max_len=b_spec.max_len, spec=b_spec) or self.slot(
                "product", max_len=b_spec.max_len, spec=b_spec
            )
        return {"title": title, "body": body}

    def _fit(self, parts: Sequence[str], spec, *, keep_first: bool = True) -> str:
        """Sentences in order, skipping those that would cross the limit."""
        text = ""
        for i, s in enumerate(p for p in parts if p):
            cand = self.join([text, s]) if text else s
            if measure(cand, spec) <= spec.max_len:
                text = cand
            elif i == 0 and keep_first:
                return ""
        return text

    def google_ads(self) -> dict:
        h_spec, d_spec = (
            field_spec("google_ads", "headlines"),
            field_spec("google_ads", "descriptions"),
        )
        heads: list[str] = []
        said: set[str] = set()  # each fact (price, name, brand…) in one headline only
        tries = 0
        while len(heads) < 5 and tries < 20:
            tries += 1
            h = self.slot("headline", max_len=h_spec.max_len, spec=h_spec, avoid=frozenset(said))
            if not h:
                break
            said |= self.last_keys
            if h.casefold() not in {x.casefold() for x in heads}:
                heads.append(h)
        for extra in ("cta", "push_title"):
            if len(heads) >= 3:
                break
            h = self.slot(extra, max_len=h_spec.max_len, spec=h_spec)
            if h and h not in heads:
                heads.append(h)
        p = self.req.products[0]
        sents = [
            self.join([self.product_line(p), self.slot("close")]),
            *self.points[:1],
            self.join([self.slot("hook"), *self.extras()[:1]]),
            self.slot("pitch"),
        ]
        descs: list[str] = []
        for s in sents:
            s = (
                s
                if measure(s, d_spec) <= d_spec.max_len
                else self._fit(re.split(r"(?<=[.!?。！？])\s*", s), d_spec)
            )
            if s and s not in descs:
                descs.append(s)
        if len(descs) < 2:
            descs.append(self.slot("product", max_len=d_spec.max_len, spec=d_spec))
        return {"headlines": heads[:15], "descriptions": [d for d in descs if d][:4]}

    def meta_ads(self) -> dict:
        pt, hl, ds = (
            field_spec("meta_ads", n) for n in ("primary_text", "headline", "description")
        )
        p = self.req.products[0]
        primary = self._fit(
            [self.slot("hook"), self.product_line(p), *self.points[:1], *self.extras()[:1]],
            pt,
            keep_first=False,
        )
        if not primary:
            primary = self.slot("product_price", max_len=pt.max_len, spec=pt) or self.slot(
                "product", max_len=pt.max_len, spec=pt
            )
        headline = (
            self.slot("push_title", max_len=hl.max_len, spec=hl, avoid=_NAME)
            or self.slot("push_title", max_len=hl.max_len, spec=hl)
            or shorten(p.name, hl.max_len)
        )
        out = {"primary_text": primary, "headline": headline}
        desc = self.slot("cta", max_len=ds.max_len, spec=ds)
        if desc:
            out["description"] = desc
        return out

    def product_text(self) -> dict:
        s_spec, l_spec = field_spec("product_text", "short"), field_spec("product_text", "long")
        p = self.req.products[0]
        intro = self.slot("intro", max_len=s_spec.max_len, spec=s_spec)
        second = self.points[:1] or [self.slot("pitch")]  # a fact, or else a line of ours
        short = self._fit([intro, *second, self.slot("price")], s_spec)
        if not short:
            short = self.slot("product", max_len=s_spec.max_len, spec=s_spec)
        body = [self.slot("intro"), self.for_you()]
        # up to three attributes (of three or more, one is left to the other variants) and
        # two description sentences, rotated over the item's variants: each says most of
        # the facts, not all of them in the same words and order
        n_attrs = len(p.attributes[:4])
        attrs = self._pick_points(p.attributes[:4], min(3, n_attrs - 1 if n_attrs > 2 else 2))
        body += [self.attribute_sentence(a) for a in attrs]
        feats = self._features(p)
        n_feats = len(feats[:4])
        said = self._pick_points(feats[:4], min(2, n_feats - 1 if n_feats > 1 else n_feats))
        body += [f.text for f in said]
        kps = list(self._keyphrases(p)[:4])
        self.rng.shuffle(kps)
        for k in kps[: 2 - len(said)]:
            body.append(self.slot("point", {**self.base, "point": _decap(k.text)}))
        qs = [q for q in p.quotes if q.lang == self.g.locale]
        if qs:
            q = self._pick_point(qs, 3)
            body.append(self.slot("quote", {**self.base, "quote": self.quote(q.text)}))
        if p.rating:
            body.append(self.slot("rating"))
        if len(attrs) + len(said) + len(kps) < 3:  # little to say: more lines of ours
            body.insert(0, self.slot("hook"))
            body.append(self.slot("pitch"))
        body += self.extras()  # the stock or date an urgent tone rests on, the occasion
        body.append(self.slot("price") if p.price else "")
        body.append(self.slot("close"))
        body = [b for b in body if b]
        long = self._paragraphs(body)
        while measure(long, l_spec) > l_spec.max_len and len(body) > 2:
            body.pop(-2)
            long = self._paragraphs(body)
        return {"short": short, "long": long}

    def _paragraphs(self, body: Sequence[str]) -> str:
        """The long product text: the opening sentences, the rest, the disclaimer."""
        paras = [self.join(body[:3]), self.join(body[3:]), self.req.disclaimer]
        return "\n\n".join(x for x in paras if x)

    def realize(self) -> dict:
        fields = getattr(self, self.req.channel)()
        return {k: _one_exclamation(v, self.zh) for k, v in fields.items()}


def _one_exclamation(value, zh: bool):
    """At most one exclamation mark per field (the check warns above one): later ones
    become full stops (a Spanish "¡…!" pair loses its opening mark)."""
    if isinstance(value, list):
        return [_one_exclamation(v, zh) for v in value]
    if not isinstance(value, str):
        return value
    if value.count("!") + value.count("！") <= 1:
        return value
    first = min(i for i in (value.find("!"), value.find("！")) if i >= 0)
    head, tail = value[: first + 1], value[first + 1 :]
    tail = re.sub(r"¡([^!¡]*)!", r"\1.", tail)
    tail = re.sub(r"[ \u00a0\u202f]?!", ".", tail).replace("！", "。")  # "toi !" in an SMS
    return head + tail.replace("?.", "?")


_SMS_MAP = str.maketrans(
    {
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "’": "'",
        "‘": "'",
        "…": "...",
        "–": "-",
        "—": "-",
    }
)


def _sms_clean(text: str) -> str:
    """GSM-7-friendly punctuation (the text itself is unchanged otherwise)."""
    return re.sub(r" {2,}", " ", text.translate(_SMS_MAP).replace("\n", " ")).strip()


def supports_urgency(products: Sequence[Product], occasion_ends_on: str) -> tuple[bool, bool]:
    """(low stock, an occasion end date) — the data that lets the tone be urgent."""
    return any(p.low_stock for p in products), bool(occasion_ends_on)


def format_occasion_date(ends_on: str, locale: str) -> str:
    return format_date(ends_on, locale, format="long") if ends_on else ""
