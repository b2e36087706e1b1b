"""Selling points: what is worth saying about a product, each tied to the Fact it came from
(so the fidelity check can trace it).

Four sources:
- *keyphrases* of the description: 1–3-word n-grams of words that stand next to each other
  in one clause (a number and its unit break the clause: "smooth 12 gauge knit" gives
  "smooth" and "knit", never "smooth knit"), without a stop word (of any of our locales), and
  neither starting nor ending with an adverb or a verb of the usual description phrases
  ("fit finishes", "keeps warm"), so they are noun-phrase-ish; scored by TF-IDF against the
  whole catalog's descriptions (a phrase every product uses, "machine washable" in a shop
  of towels, scores low); the surface form is kept as written; a phrase that repeats an
  attribute value ("bottle green colour" next to colour = bottle green) is left to the
  attribute;
- *features*: whole sentences of a long description (three sentences or more), 5–22
  words, that stand on their own (no "This", "But", "Also"… opening; no negation, which
  out of context could mislead: "Not suitable for children under 12"), best by the TF-IDF
  weight of the phrases they hold; quoted verbatim, so every number in them is the data's;
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
# a number (with the unit after it) ends a clause: the words either side were never adjacent
_NUMBER_BREAK = re.compile(
    r"\S*\d\S*(?:\s+(?:cm|mm|m|km|kg|g|mg|ml|cl|l|litres?|liters?|inch(?:es)?|in|ft|oz|lbs?|"
    r"watts?|w|lumens|denier|gauge|microns?|metres?|meters?|hours?|minutes?|days?|weeks?|"
    r"months?|years?|°c|°f|c|f|percent|per\s+cent|x|ply|person|people|pieces?|pcs)\b)?",
    re.IGNORECASE,
)


# verbs and adverbs of description prose: a phrase does not start or end with one
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


EDGE_WORDS = _words(
    """
    keeps makes gives holds sits fits runs looks feels means lets works stays comes goes helps
    takes finishes becomes adds brings wears uses needs turns lasts dries absorbs traps resists
    softens fades stretches spreads reaches glows charges adjusts weighs measures includes
    contains opens closes folds sheds matches pours cools heats boils simmers washes grows
    gets seems lies stands hangs serves offers features provides allows protects
    keep make give let become bring absorb resist soften provide allow protect include
    contain need want love like choose seem sold made chosen found loved used washed dried
    screws lights hold stay letting making giving keeping taking using avoid recommend find
    follows regulates needed looking held move run
    without within whose always onto into upon across along around through about during
    enough also even ever often never almost quite rather every each either neither
    """
)
_LY_NOUNS = _words(
    "family jelly belly holly lily italy woolly curly frilly chilly hilly assembly supply "
    "butterfly dragonfly rally ally reply doily"
)
_MONEY_RE = re.compile(
    r"\d\s?(?:EUR|USD|GBP|CHF|CNY|RMB|dollars?|euros?|bucks|pounds|元)\b", re.IGNORECASE
)
_UNSAYABLE = re.compile(
    r"\b(?:not|no|never|nothing|avoid|without|cannot|can't|won't|don't|doesn't|isn't|"
    r"aren't|\w+n't|todo|tbd|xxx+|lorem)\b|[{}\[\]<>$€£¥₹]|https?:|www\.|" + _MONEY_RE.pattern,
    re.IGNORECASE,
)
_FEATURE_OPENERS = re.compile(
    r"^(?:this|that|these|those|they|them|and|but|or|so|because|also|then|instead|however|"
    r"after|before|when|if|even|just|still|plus|in\s+fact|here|there|which|what|why|how|"
    r"yes|no|for\s+example|as\s+well|too|otherwise|meanwhile|finally|first|second|"
    r"third|each\s+of|both|neither|either|one\s+pack|one\s+set)\b",
    re.IGNORECASE,
)
_FEATURE_BAD = re.compile(
    r"\b(?:not|no|never|nothing|nobody|avoid|without|please|cannot|can't|won't|don't|"
    r"doesn't|isn't|aren't|shouldn't|separately|warning|caution|sorry|\w+n't|"
    r"todo|tbd|xxx+|lorem)\b"
    # questions, quotes, brackets and template syntax; money (a price in a description is
    # not the product's price: "was $80") and links
    r"|[?:;“”\"()\[\]{}<>$€£¥₹|*_~^\\]|https?:|www\.",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", re.UNICODE)
_FIRST_PERSON_BAD = re.compile(
    r"\b(return(ed|ing)?|refund|exchange|disappoint\w*|unfortunately|but|however|wish|"
    r"too small|too big|too large|too tight|runs small|runs large)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SellingPoint:
    """One thing to say. kind: keyphrase | attribute | feature | review | category. ``text``
    is the phrase as it appears in the source (keyphrase, attribute value, description or
    review sentence);
    ``name`` the attribute's name; ``lang`` the language the text is written in."""

    product_id: str
    kind: str
    text: str
    fact: Fact
    score: float = 0.0
    name: str = ""
    lang: str = "en"


def _edge_ok(word: str) -> bool:
    """``word`` may start or end a phrase: no verb of description prose, no adverb."""
    if word in EDGE_WORDS:
        return False
    return not (word.endswith("ly") and len(word) > 4 and word not in _LY_NOUNS)


def _candidates(text: str, max_n: int = 3) -> dict[str, str]:
    """{normalized n-gram: first surface form} of the noun-phrase-ish candidates: words
    adjacent in the text (numbers and their units break the run), no stop word, no verb or
    adverb at either end."""
    out: dict[str, str] = {}
    for clause in _CLAUSE.split(text):
        for run in _NUMBER_BREAK.split(clause):
            ws = _WORD.findall(run)
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
                    if not (_edge_ok(gram[0]) and _edge_ok(gram[-1])):
                        continue
                    if n == 3 and gram[1] in EDGE_WORDS:
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
        if not has_cjk(text):
            # not from a sentence that negates ("no ironing needed" must not give "ironing
            # needed"), talks money ("was $120, for a limited time") or holds template text
            text = " ".join(s for s in sentences(text) if not _UNSAYABLE.search(s))
        cands = _cjk_candidates(text) if has_cjk(text) else _candidates(text)
        if not cands:
            return []
        row = self.vectorizer.transform([text]).tocoo()
        vocab = (
            self.vectorizer.get_feature_names_out() if not hasattr(self, "_vocab") else self._vocab
        )
        self._vocab = vocab
        title_words = {w.lower() for w in _WORD.findall(sheet.title)}
        attr_values = [plain_text(str(v)).lower() for v in sheet.attributes.values() if v]
        scored: list[tuple[float, str]] = []
        for j, w in zip(row.col, row.data, strict=True):
            key = vocab[j]
            n = key.count(" ") + 1
            if set(key.split()) <= title_words:
                continue  # the name says it already
            if any(v in key or (key in v and n > 1) for v in attr_values):
                continue  # an attribute says it already
            scored.append((float(w) * (1.0 + 0.15 * (n - 1)), key))
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

    # -- features -------------------------------------------------------------------------
    def features(self, sheet: FactSheet, max_features: int = 4) -> list[SellingPoint]:
        """Sentences of a long description (three sentences or more) that can be quoted on
        their own, best first (see the module docstring)."""
        text = plain_text(sheet.description)
        if not text or self.vectorizer is None or has_cjk(text):
            return []
        sents = sentences(text)
        if len(sents) < 3:
            return []
        cands: list[str] = []
        for s in sents:
            n = len(s.split())
            if not 5 <= n <= 22 or len(s) > 140 or s[-1] != "." or not s[0].isupper():
                continue
            if _FEATURE_OPENERS.match(s) or _FEATURE_BAD.search(s) or _MONEY_RE.search(s):
                continue
            letters = [c for c in s if c.isalpha()]
            if sum(c.isupper() for c in letters) > 0.3 * len(letters):
                continue  # shouted
            cands.append(s)
        if not cands:
            return []
        weights = self.vectorizer.transform(cands)
        source = _source(sheet, "description")
        scored = []
        for i, s in enumerate(cands):
            score = float(weights.getrow(i).sum()) / np.sqrt(len(s.split()))
            if score > 0:  # it says something of its own
                scored.append((-score, i, s))
        scored.sort()
        return [
            SellingPoint(
                sheet.product_id,
                "feature",
                s,
                Fact("description", "feature", s, source),
                round(-neg, 4),
                lang=guess_language(s),
            )
            for neg, _, s in scored[:max_features]
        ]

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
        return (
            self.attributes(sheet)
            + self.keyphrases(sheet)
            + self.features(sheet)
            + self.reviews(sheet)
        )


def mine_catalog(
    sheets: Iterable[FactSheet], *, sentiment: SentimentModel | None = None
) -> dict[str, list[SellingPoint]]:
    """Selling points of every product, fitted on these sheets' descriptions."""
    sheets = list(sheets)
    miner = Miner([s.description for s in sheets], sentiment=sentiment)
    return {s.product_id: miner.mine(s) for s in sheets}
