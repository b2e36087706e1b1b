"""Selling points: what is worth saying about a product, each tied to the Fact it came from
(so the fidelity check can trace it).

Three sources:
- *keyphrases* of the description: 1–3-word n-grams inside one clause without a stop word
  (of any of our locales) and without digits (noun-phrase-ish),
  scored by TF-IDF against the whole catalog's descriptions (a phrase every product uses,
  "machine washable" in a shop of towels, scores low); the surface form is kept as written;
- *attributes* (material, colour, fit…): name and value, worded per locale by the grammar
  ("Made of organic cotton.");
- *positive review sentences*: 4–18 words, no digits, positive by the sentiment model
  (P ≥ 0.8; the lexicon when the catalog has too few rated reviews), mentioning a product
  aspect (the catalog's own top keyphrase words plus a base list: fit, fabric, colour…).

``Miner`` is fitted once per catalog (vectorizer, aspect words, sentiment model) and then
mines any product quickly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .sentiment import SentimentModel
from .text import ALL_STOP_WORDS, guess_language, has_cjk, plain_text, sentences, tokens
from .types import Fact, FactSheet

ASPECT_WORDS = frozenset(
    [
        "fit",
        "fits",
        "fitting",
        "fabric",
        "material",
        "quality",
        "colour",
        "color",
        "colors",
        "colours",
        "size",
        "sizing",
        "length",
        "cut",
        "style",
        "design",
        "pattern",
        "print",
        "comfort",
        "comfortable",
        "soft",
        "softness",
        "warm",
        "warmth",
        "feel",
        "texture",
        "stitching",
        "detail",
        "details",
        "wash",
        "washes",
        "shape",
        "drape",
        "weight",
        "lightweight",
        "sturdy",
        "quality",
        "look",
        "looks",
        "finish",
        "pocket",
        "pockets",
        "waist",
        "sleeves",
        "neckline",
        "collar",
        "lining",
        "zipper",
        "buttons",
        "strap",
        "straps",
        "flattering",
        "cozy",
        "cosy",
        "stretch",
        "stretchy",
        "breathable",
        "smell",
        "taste",
        "gift",
        "packaging",
        "durable",
        "size",
    ]
)
_HAS_DIGIT = re.compile(r"\d")
_CLAUSE = re.compile(r"[,;:.!?()\[\]\"“”«»|/•·–—\n]+|\s-\s")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
_FIRST_PERSON_BAD = re.compile(
    r"\b(return(ed|ing)?|refund|exchange|disappoint\w*|unfortunately|but|however|wish|"
    r"too small|too big|too large|too tight|runs small|runs large)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SellingPoint:
    """One thing to say. kind: keyphrase | attribute | review | category. ``text`` is the
    phrase as it appears in the source (keyphrase, attribute value, review sentence);
    ``name`` the attribute's name; ``lang`` the language the text is written in."""

    product_id: str
    kind: str
    text: str
    fact: Fact
    score: float = 0.0
    name: str = ""
    lang: str = "en"


def _candidates(text: str, max_n: int = 3) -> dict[str, str]:
    """{normalized n-gram: first surface form} of the noun-phrase-ish candidates."""
    out: dict[str, str] = {}
    for clause in _CLAUSE.split(text):
        ws = _WORD.findall(clause)
        low = [w.lower() for w in ws]
        for n in range(1, max_n + 1):
            for i in range(len(ws) - n + 1):
                gram = low[i : i + n]
                if any(g in ALL_STOP_WORDS for g in gram):
                    continue
                if n == 1 and len(gram[0]) < 4:
                    continue
                if any(len(g) < 2 for g in gram):
                    continue
                key = " ".join(gram)
                out.setdefault(key, " ".join(ws[i : i + n]))
    return out


def _cjk_candidates(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for clause in re.split(r"[，。！？、；：,.!?;:\s]+", text):
        if 2 <= len(clause) <= 8 and has_cjk(clause) and not _HAS_DIGIT.search(clause):
            out.setdefault(clause, clause)
    return out


def _analyzer(text: str) -> list[str]:
    return list((_cjk_candidates(text) if has_cjk(text) else _candidates(text)).keys())


def _source(sheet: FactSheet, kind: str, name: str = "") -> str:
    for f in sheet.facts:
        if f.kind == kind and (not name or f.name == name):
            return f.source
    field = {"description": "description", "attribute": f"attributes.{name}"}.get(kind, kind)
    return f"product:{sheet.product_id}.{field}"


def review_facts(sheet: FactSheet) -> list[Fact]:
    """The sheet's review sentences as facts (from ``facts`` when present)."""
    found = [
        f
        for f in sheet.facts
        if f.kind == "review" and isinstance(f.value, str) and f.name not in ("rating",)
    ]
    if found:
        return found
    return [
        Fact("review", f"review[{i}]", s, f"product:{sheet.product_id}.reviews[{i}]")
        for i, s in enumerate(sheet.reviews)
    ]


class Miner:
    """Fitted once per catalog; ``mine(sheet)`` returns a product's selling points, best
    first within each kind."""

    def __init__(
        self,
        descriptions: Sequence[str],
        *,
        sentiment: SentimentModel | None = None,
        max_keyphrases: int = 6,
        max_reviews: int = 4,
        min_positive: float = 0.8,
    ) -> None:
        self.sentiment = sentiment or SentimentModel()
        self.max_keyphrases = max_keyphrases
        self.max_reviews = max_reviews
        self.min_positive = min_positive
        docs = [plain_text(d) for d in descriptions if d and str(d).strip()]
        self.vectorizer: TfidfVectorizer | None = None
        self.aspects = set(ASPECT_WORDS)
        if docs:
            vec = TfidfVectorizer(analyzer=_analyzer, sublinear_tf=True, min_df=1, norm=None)
            try:
                matrix = vec.fit_transform(docs)
            except ValueError:  # no candidate anywhere
                matrix = None
            if matrix is not None:
                self.vectorizer = vec
                # aspect words: the most frequent content words of the catalog's phrases
                df = np.asarray((matrix > 0).sum(axis=0)).ravel()
                vocab = vec.get_feature_names_out()
                top = np.argsort(-df)[:300]
                for i in top:
                    if " " not in vocab[i] and df[i] >= 2:
                        self.aspects.add(vocab[i])

    # -- keyphrases -----------------------------------------------------------------------
    def keyphrases(self, sheet: FactSheet) -> list[SellingPoint]:
        text = plain_text(sheet.description)
        if not text or self.vectorizer is None:
            return []
        cands = _cjk_candidates(text) if has_cjk(text) else _candidates(text)
        if not cands:
            return []
        row = self.vectorizer.transform([text]).tocoo()
        vocab = (
            self.vectorizer.get_feature_names_out() if not hasattr(self, "_vocab") else self._vocab
        )
        self._vocab = vocab
        title_words = {w.lower() for w in _WORD.findall(sheet.title)}
        scored: list[tuple[float, str]] = []
        for j, w in zip(row.col, row.data, strict=True):
            key = vocab[j]
            n = key.count(" ") + 1
            if set(key.split()) <= title_words:
                continue  # the name says it already
            scored.append((float(w) * (1.0 + 0.35 * (n - 1)), key))
        scored.sort(key=lambda t: (-t[0], t[1]))
        source = _source(sheet, "description")
        lang = guess_language(text)
        chosen: list[SellingPoint] = []
        used: set[str] = set()
        for score, key in scored:
            parts = set(key.split())
            if parts & used:
                continue  # overlaps a better phrase
            surface = cands.get(key, key)
            chosen.append(
                SellingPoint(
                    sheet.product_id,
                    "keyphrase",
                    surface,
                    Fact("description", "keyphrase", surface, source),
                    round(score, 4),
                    lang=lang,
                )
            )
            used |= parts
            if len(chosen) >= self.max_keyphrases:
                break
        return chosen

    # -- attributes -----------------------------------------------------------------------
    @staticmethod
    def attributes(sheet: FactSheet) -> list[SellingPoint]:
        out = []
        facts = [f for f in sheet.facts if f.kind == "attribute"]
        if not facts:
            facts = [
                Fact("attribute", k, v, f"product:{sheet.product_id}.attributes.{k}")
                for k, v in sheet.attributes.items()
            ]
        for f in facts:
            value = plain_text(str(f.value))
            if not value or len(value) > 60 or _HAS_DIGIT.search(value) and len(value) > 20:
                continue
            out.append(
                SellingPoint(
                    sheet.product_id,
                    "attribute",
                    value,
                    f,
                    1.0,
                    name=str(f.name),
                    lang=guess_language(value),
                )
            )
        return out

    # -- reviews --------------------------------------------------------------------------
    def reviews(self, sheet: FactSheet) -> list[SellingPoint]:
        cands: list[tuple[str, Fact]] = []
        for f in review_facts(sheet):
            for s in sentences(str(f.value)):
                n = len(s.split()) if not has_cjk(s) else len(s) // 2
                if not 4 <= n <= 18 or len(s) > 110 or _HAS_DIGIT.search(s):
                    continue
                if _FIRST_PERSON_BAD.search(s) or "?" in s:
                    continue
                toks = set(tokens(s))
                if not toks & self.aspects:
                    continue
                cands.append((s, f))
        if not cands:
            return []
        proba = self.sentiment.positive_proba([s for s, _ in cands])
        out = []
        for (s, f), p in zip(cands, proba, strict=True):
            if p >= self.min_positive:
                out.append(
                    SellingPoint(
                        sheet.product_id,
                        "review",
                        s,
                        Fact("review", f.name, s, f.source),
                        round(float(p), 4),
                        lang=guess_language(s),
                    )
                )
        out.sort(key=lambda sp: (-sp.score, len(sp.text)))
        seen: set[str] = set()
        uniq = []
        for sp in out:
            if sp.text.lower() not in seen:
                seen.add(sp.text.lower())
                uniq.append(sp)
        return uniq[: self.max_reviews]

    def mine(self, sheet: FactSheet) -> list[SellingPoint]:
        return self.attributes(sheet) + self.keyphrases(sheet) + self.reviews(sheet)


def mine_catalog(
    sheets: Iterable[FactSheet], *, sentiment: SentimentModel | None = None
) -> dict[str, list[SellingPoint]]:
    """Selling points of every product, fitted on these sheets' descriptions."""
    sheets = list(sheets)
    miner = Miner([s.description for s in sheets], sentiment=sentiment)
    return {s.product_id: miner.mine(s) for s in sheets}
