"""Copy quality: the template engine drafting for real catalogs, measured.

    .venv/bin/python benchmarks/copy_quality.py                      # both demo catalogs
    .venv/bin/python benchmarks/copy_quality.py \\
        --products tests/fixtures/long_catalog/products.csv \\
        --reviews tests/fixtures/long_catalog/reviews.csv

Catalogs (read with pandas, no database):
- **online_retail** (``demo/online_retail_sample.csv.gz``): one product per stock code (its
  most common description as the title, the median positive unit price in GBP; postage,
  fees and other non-product codes left out). Recipients: customers drawn at random (seeded)
  among those who bought at least 12 different products; their interests are the titles
  they bought on the most invoices, strongest first.
- **clothing** (``demo/clothing_reviews_sample.csv.gz``): one product per Clothing ID, titled
  from its class ("Knit top 1078": the class as a product noun and the catalog's id), in the
  category Division > Department > Class, with its reviews (title and text, stars) and their
  mean rating. The reviewers are anonymous, so the recipients are *synthetic shopper
  profiles*: a class drawn in proportion to its products, then two key phrases of that
  class's reviews (TF-IDF over the classes' review texts), then a second class as a weaker
  interest.
- ``--products``/``--reviews``: any catalog as CSV (``sku,title,description,category,price,
  brand[,attributes]`` with attributes as a JSON object; ``sku,rating,text``); recipients
  are synthetic profiles as for clothing, their key phrases taken from the category's
  descriptions and reviews.

Neither dataset has first names: every other recipient gets a made-up one, so greetings
with and without a name are both measured. ``--recipients`` per catalog (default 6 for each
demo catalog, 12 for ``--products``: 3,240 variants either way).

One ``CopyModel`` is fitted per catalog (its reviews train the sentiment model; ``fit_s``).
Each recipient's candidates are the 5 products closest to their interests by the model's
matcher (title, category, selling points and review snippets), products they bought left
out; the engine drafts for the closest of them (one product per message). Every channel ×
locale is drafted for 3 of the tones per recipient (the tones rotate over the recipients,
so all five are measured); "urgent" drafts are for an occasion with an end date
(Christmas), the data the engine needs to be urgent. 3 variants per item; an item is one
recipient × channel × locale × tone.

Metrics (last line of output, JSON; also written to ``--json``):
- ``variants``: variants returned; ``dropped``: variants the engine could not make pass
  its own checks (asked − returned).
- ``fidelity_violations`` / ``limit_violations``: ``checks.check_variant`` run again, on
  its own, on every variant: failed results of the checks "fidelity" and "limits".
- ``distinct2``: mean over items of distinct-2 across the item's variants
  (``generate.distinct_n``: word bigrams; a Han character is one token).
- ``self_bleu``: mean over items of self-BLEU-4 (each variant against the item's other
  variants as references; clipped n-gram precisions 1–4, uniform weights, brevity
  penalty, Chen & Cherry smoothing 1: a zero count becomes 0.1). Lower is more varied.
- ``personalization_win_rate``: for each variant drafted for recipient A, the matcher's
  similarity of the whole text to A's interests against its similarity to the interests
  of another recipient B of the same catalog drawn at random (seeded); the share where A's
  is strictly higher (ties lose). ``personalization_win_rate_tfidf`` is the same with a
  plain TF-IDF cosine fitted on the catalog's text, as a second opinion that does not use
  the engine's own matcher.
- ``readability_en``: mean Flesch reading ease of the English prose fields of ten words or
  more (the fields ``check_readability`` scores).
- ``variants_per_s``: variants generated, ranked and checked (``generate_detailed`` runs
  every check on each pick) per second of one core: the process's CPU time in the
  generation loop (``gen_s``; one thread, BLAS pinned to one thread), so other work on a
  shared machine does not count (it still slows the core down: ``load_avg_1m`` is printed
  for context); ``variants_per_s_wall`` is the same by the wall clock. Fitting the
  ``CopyModel`` (``fit_s``) and the independent re-check are not timed.
- ``distinct2_items_below_0_6``: the share of items under the 0.6 target (the mean can
  hide them).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core: BLAS on one thread (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from copygen.engine import checks  # noqa: E402
from copygen.engine.channels import field_spec  # noqa: E402
from copygen.engine.facts import fact_sheet  # noqa: E402
from copygen.engine.generate import CopyModel, distinct_n, variant_text  # noqa: E402
from copygen.engine.occasions import occasion_by_key  # noqa: E402
from copygen.engine.text import plain_text  # noqa: E402
from copygen.engine.types import (  # noqa: E402
    CHANNELS,
    LOCALES,
    TONES,
    BrandRules,
    Brief,
    FactSheet,
    Recipient,
    Variant,
)

DEMO = ROOT / "demo"
RETAIL_CSV = DEMO / "online_retail_sample.csv.gz"
CLOTHING_CSV = DEMO / "clothing_reviews_sample.csv.gz"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "copy_quality.json"
KEYS = (
    "variants",
    "fidelity_violations",
    "limit_violations",
    "distinct2",
    "self_bleu",
    "personalization_win_rate",
    "readability_en",
    "variants_per_s",
)
# Online Retail stock codes that are no product (postage, fees, discounts, samples…)
NON_PRODUCT = re.compile(
    r"^(POST|DOT|M|C2|D|S|B|CRUK|PADS|AMAZONFEE|BANK CHARGES|DCGS.*|gift_.*)$", re.IGNORECASE
)
# Women's clothing classes as a product noun
CLASS_NOUNS = {
    "Dresses": "Dress",
    "Knits": "Knit top",
    "Blouses": "Blouse",
    "Sweaters": "Sweater",
    "Pants": "Pants",
    "Fine gauge": "Fine-gauge sweater",
    "Skirts": "Skirt",
    "Jeans": "Jeans",
    "Jackets": "Jacket",
    "Lounge": "Lounge top",
    "Swim": "Swimsuit",
    "Outerwear": "Coat",
    "Shorts": "Shorts",
    "Intimates": "Intimates piece",
    "Sleep": "Sleepwear piece",
    "Layering": "Layering top",
    "Legwear": "Tights",
    "Trend": "Trend piece",
    "Chemises": "Chemise",
    "Casual bottoms": "Casual bottoms",
}
FIRST_NAMES = ("Anna", "Ben", "Chloé", "David", "Elena", "Felix", "Grace", "Hugo")
BRAND = BrandRules(sender="Tailor")
TODAY = dt.date(2025, 12, 1)  # the urgent drafts are for Christmas 2025
CANDIDATES = 5
_TOKEN = re.compile(
    r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\d_\u3400-\u9fff]+|\d+(?:[.,]\d+)*", re.UNICODE
)


@dataclass
class Catalog:
    name: str
    sheets: list[FactSheet]
    currency: str
    recipients: list[Recipient]
    bought: dict[str, set[str]] = field(default_factory=dict)  # recipient key -> product ids
    reviews: list[tuple[str, float]] = field(default_factory=list)  # for the sentiment model
    texts: list[str] = field(default_factory=list)  # more text for the word vectors
    about: str = ""


# --- catalogs -----------------------------------------------------------------------------


def _name(i: int) -> str:
    # the data has no names: every other recipient gets one, so both greetings are measured
    return FIRST_NAMES[i // 2 % len(FIRST_NAMES)] if i % 2 == 0 else ""


def load_online_retail(
    path: Path = RETAIL_CSV, *, recipients: int = 6, seed: int = 0, min_products: int = 12
) -> Catalog:
    df = pd.read_csv(path, dtype={"StockCode": "string", "CustomerID": "string"})
    df = df.dropna(subset=["StockCode", "Description"])
    df = df[~df["StockCode"].str.match(NON_PRODUCT.pattern, case=False)]
    df = df[~df["InvoiceNo"].astype(str).str.startswith(("C", "A"))]
    df["Description"] = df["Description"].str.strip()
    sold = df[(df["Quantity"] > 0) & (df["UnitPrice"] > 0)]
    titles = sold.groupby("StockCode")["Description"].agg(lambda s: s.value_counts().index[0])
    prices = sold.groupby("StockCode")["UnitPrice"].median()
    sheets = [
        fact_sheet(
            {"id": code, "title": titles[code], "price": f"{prices[code]:.2f}"}, currency="GBP"
        )
        for code in titles.index
    ]
    by_code = {s.product_id: s for s in sheets}
    buyers = sold.dropna(subset=["CustomerID"])
    per_customer = buyers.groupby("CustomerID")["StockCode"].nunique()
    eligible = sorted(per_customer[per_customer >= min_products].index)
    rng = random.Random(seed)
    chosen = rng.sample(eligible, min(recipients, len(eligible)))
    out, bought = [], {}
    for i, cid in enumerate(chosen):
        rows = buyers[buyers["CustomerID"] == cid]
        strength = (
            rows.groupby("StockCode")
            .agg(invoices=("InvoiceNo", "nunique"), qty=("Quantity", "sum"))
            .sort_values(["invoices", "qty"], ascending=False)
        )
        codes = [c for c in strength.index if c in by_code]
        interests = tuple(by_code[c].title for c in codes[:5])
        country = str(rows["Country"].iloc[0])
        key = f"customer:{cid}"
        out.append(Recipient(key, first_name=_name(i), interests=interests, country=country))
        bought[key] = set(codes)
    return Catalog(
        "online_retail",
        sheets,
        "GBP",
        out,
        bought,
        about=f"{len(sheets)} products (stock codes), {len(eligible)} customers with "
        f"≥{min_products} products; interests = titles bought on the most invoices",
    )


def _class_keyphrases(groups: dict[str, list[str]], k: int = 8) -> dict[str, list[str]]:
    """Top TF-IDF 1–2-grams of each group's text (groups: name -> texts)."""
    names = [g for g, ts in groups.items() if ts]
    if not names:
        return {}
    vec = TfidfVectorizer(
        ngram_range=(1, 2),
        stop_words="english",
        sublinear_tf=True,
        token_pattern=r"(?u)\b[^\W\d_][^\W\d_]+\b",
        max_df=0.6 if len(names) > 3 else 1.0,
    )
    try:
        m = vec.fit_transform([" ".join(groups[g]) for g in names])
    except ValueError:
        return {g: [] for g in names}
    vocab = vec.get_feature_names_out()
    out = {}
    for i, g in enumerate(names):
        row = m.getrow(i).toarray().ravel()
        top = [vocab[j] for j in np.argsort(-row)[: 3 * k] if row[j] > 0]
        out[g] = [t for t in top if len(set(t.split())) == len(t.split())][:k]  # no "a a"
    return out


def synthetic_recipients(
    sheets: Sequence[FactSheet], texts: dict[str, list[str]], n: int, seed: int
) -> list[Recipient]:
    """Shopper profiles for a catalog without customers: a leaf category drawn in
    proportion to its products, two of its key phrases, then a second category."""
    leaf = {s.product_id: re.split(r"\s*>\s*", s.category)[-1] or "Other" for s in sheets}
    groups: dict[str, list[str]] = defaultdict(list)
    sizes: Counter[str] = Counter()
    for s in sheets:
        sizes[leaf[s.product_id]] += 1
        groups[leaf[s.product_id]] += texts.get(s.product_id, [])
    phrases = _class_keyphrases(groups)
    rng = random.Random(seed)
    cats = sorted(sizes)
    weights = [sizes[c] for c in cats]
    out = []
    for i in range(n):
        cat = rng.choices(cats, weights)[0]
        kp = phrases.get(cat, [])
        picks = rng.sample(kp, min(2, len(kp)))
        others = [c for c in cats if c != cat]
        second = [rng.choices(others, [sizes[c] for c in others])[0]] if others else []
        out.append(
            Recipient(
                f"profile:{i}", first_name=_name(i), interests=(cat, *picks, *second), country="GB"
            )
        )
    return out


def load_clothing(path: Path = CLOTHING_CSV, *, recipients: int = 6, seed: int = 0) -> Catalog:
    df = pd.read_csv(path)
    df = df.dropna(subset=["Clothing ID", "Class Name"])
    sheets, reviews, texts = [], [], {}
    for cid, rows in df.groupby("Clothing ID", sort=True):
        first = rows.iloc[0]
        cls = str(first["Class Name"]).strip()
        title = f"{CLASS_NOUNS.get(cls, cls)} {int(cid)}"
        category = " > ".join(
            str(first[c]).strip()
            for c in ("Division Name", "Department Name", "Class Name")
            if isinstance(first[c], str) and first[c].strip()
        )
        revs = []
        for _, r in rows.iterrows():
            parts = [str(r[c]).strip() for c in ("Title", "Review Text") if isinstance(r[c], str)]
            parts = [p if p[-1] in ".!?" else p + "." for p in parts if p]  # title. text
            text = " ".join(parts)
            if not text:
                continue
            revs.append({"id": str(r["row_id"]), "text": text, "rating": float(r["Rating"])})
            reviews.append((text, float(r["Rating"])))
        rated = [r["rating"] for r in revs]
        sheet = fact_sheet(
            {"id": str(int(cid)), "title": title, "category": category},
            currency="USD",
            reviews=revs,
            rating=round(sum(rated) / len(rated), 1) if rated else None,
            review_count=len(revs),
        )
        sheets.append(sheet)
        texts[sheet.product_id] = [r["text"] for r in revs]
    people = synthetic_recipients(sheets, texts, recipients, seed)
    return Catalog(
        "clothing",
        sheets,
        "USD",
        people,
        reviews=reviews,
        texts=[t for ts in texts.values() for t in ts],
        about=f"{len(sheets)} products, {len(reviews)} reviews; synthetic shopper profiles "
        "(a class, two key phrases of its reviews, a second class)",
    )


def load_csv_catalog(
    products: Path,
    reviews: Path | None = None,
    *,
    currency: str = "USD",
    recipients: int = 6,
    seed: int = 0,
) -> Catalog:
    pdf = pd.read_csv(products, dtype=str, keep_default_na=False)
    by_sku: dict[str, list[dict]] = defaultdict(list)
    all_reviews: list[tuple[str, float]] = []
    if reviews is not None:
        rdf = pd.read_csv(reviews, dtype={"sku": str}, keep_default_na=False)
        for i, r in enumerate(rdf.itertuples(index=False)):
            text = str(r.text).strip()
            if not text:
                continue
            stars = float(r.rating) if str(r.rating).strip() else None
            by_sku[str(r.sku)].append({"id": f"{r.sku}-{i}", "text": text, "rating": stars})
            if stars is not None:
                all_reviews.append((text, stars))
    sheets, texts = [], {}
    for r in pdf.to_dict("records"):
        attrs = {}
        raw = (r.get("attributes") or "").strip()
        if raw:
            try:
                parsed = json.loads(raw)
                attrs = parsed if isinstance(parsed, dict) else {}
            except json.JSONDecodeError:
                attrs = {}
        revs = by_sku.get(str(r["sku"]), [])
        rated = [x["rating"] for x in revs if x["rating"] is not None]
        sheet = fact_sheet(
            {
                "id": r["sku"],
                "title": r.get("title", ""),
                "description": r.get("description", ""),
                "category": r.get("category", ""),
                "price": r.get("price") or None,
                "brand": r.get("brand", ""),
                "attributes": attrs,
            },
            currency=currency,
            reviews=revs,
            rating=round(sum(rated) / len(rated), 1) if rated else None,
            review_count=len(revs),
        )
        sheets.append(sheet)
        texts[sheet.product_id] = [plain_text(sheet.description), *(x["text"] for x in revs)]
    people = synthetic_recipients(sheets, texts, recipients, seed)
    return Catalog(
        Path(products).parent.name or "catalog",
        sheets,
        currency,
        people,
        reviews=all_reviews,
        texts=[t for x in by_sku.values() for t in (y["text"] for y in x)],
        about=f"{len(sheets)} products, {len(all_reviews)} rated reviews; synthetic shopper "
        "profiles (a category, two key phrases of its descriptions and reviews, a second "
        "category)",
    )


# --- metrics ------------------------------------------------------------------------------


def _toks(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _ngrams(toks: list[str], n: int) -> Counter:
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def bleu(hyp: list[str], refs: list[list[str]], max_n: int = 4, eps: float = 0.1) -> float:
    """Sentence BLEU with uniform weights, brevity penalty and smoothing 1 (Chen & Cherry)."""
    if not hyp or not refs:
        return 0.0
    logs = 0.0
    for n in range(1, max_n + 1):
        h = _ngrams(hyp, n)
        total = sum(h.values())
        if total == 0:
            logs += math.log(eps)
            continue
        best: Counter = Counter()
        for r in refs:
            for g, c in _ngrams(r, n).items():
                if c > best[g]:
                    best[g] = c
        clipped = sum(min(c, best[g]) for g, c in h.items())
        logs += math.log((clipped or eps) / total)
    c = len(hyp)
    r = min((len(x) for x in refs), key=lambda n: (abs(n - c), n))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(logs / max_n)


def self_bleu(texts: Sequence[str]) -> float:
    toks = [_toks(t) for t in texts]
    if len(toks) < 2:
        return 0.0
    return float(np.mean([bleu(t, toks[:i] + toks[i + 1 :]) for i, t in enumerate(toks)]))


def english_readability(v: Variant) -> list[float]:
    out = []
    for name, value in v.fields.items():
        spec = field_spec(v.channel, name)
        if spec is None or not spec.prose:
            continue
        for text in value if isinstance(value, list) else [value]:
            if len(checks._WORD_RE.findall(text)) >= checks.READABILITY_MIN_WORDS:
                score = checks.flesch_reading_ease(text)
                if score is not None:
                    out.append(score)
    return out


@dataclass
class Tally:
    items: int = 0
    asked: int = 0
    variants: int = 0
    fidelity: int = 0
    limits: int = 0
    other_errors: int = 0
    distinct2: list[float] = field(default_factory=list)
    self_bleu: list[float] = field(default_factory=list)
    wins: int = 0
    wins_tfidf: int = 0
    compared: int = 0
    flesch: list[float] = field(default_factory=list)
    gen_s: float = 0.0  # CPU time of this process in the generation loop
    wall_s: float = 0.0

    def add(self, o: Tally) -> None:
        for k, v in vars(o).items():
            mine = getattr(self, k)
            setattr(self, k, mine + v)

    def summary(self) -> dict:
        def mean(xs):
            return round(float(np.mean(xs)), 4) if xs else None

        return {
            "items": self.items,
            "variants": self.variants,
            "dropped": self.asked - self.variants,
            "fidelity_violations": self.fidelity,
            "limit_violations": self.limits,
            "other_errors": self.other_errors,
            "distinct2": mean(self.distinct2),
            "distinct2_items_below_0_6": round(
                sum(d < 0.6 for d in self.distinct2) / len(self.distinct2), 4
            )
            if self.distinct2
            else None,
            "self_bleu": mean(self.self_bleu),
            "personalization_win_rate": round(self.wins / self.compared, 4)
            if self.compared
            else None,
            "personalization_win_rate_tfidf": round(self.wins_tfidf / self.compared, 4)
            if self.compared
            else None,
            "readability_en": mean(self.flesch),
            "variants_per_s": round(self.variants / self.gen_s, 1) if self.gen_s else None,
            "variants_per_s_wall": round(self.variants / self.wall_s, 1) if self.wall_s else None,
        }


# --- the run ------------------------------------------------------------------------------


def candidates(model: CopyModel, cat: Catalog, r: Recipient, k: int = CANDIDATES) -> list:
    """The k products closest to the recipient's interests (the matcher), not bought."""
    bought = cat.bought.get(r.key, set())
    pool = [s for s in cat.sheets if s.product_id not in bought]
    docs = []
    for s in pool:
        pts = " ".join(p.text for p in model.points.get(s.product_id, [])[:6])
        docs.append(" ".join([s.title, s.category.replace(">", " "), pts, *s.reviews[:2]]))
    scores = model.matcher.score_texts(r.interests, docs)
    order = np.argsort(-scores, kind="stable")[:k]
    return [pool[i] for i in order]


def run_catalog(
    cat: Catalog,
    *,
    channels: Sequence[str] = CHANNELS,
    locales: Sequence[str] = LOCALES,
    tones: Sequence[str] = TONES,
    tones_per_recipient: int = 3,
    variants: int = 3,
    seed: int = 0,
) -> tuple[dict[tuple[str, str], Tally], float, list[str]]:
    """Tallies per (channel, locale), the fit time, and a few examples."""
    t0 = time.perf_counter()
    model = CopyModel(cat.sheets, reviews=cat.reviews, texts=cat.texts, seed=seed)
    fit_s = time.perf_counter() - t0
    tfidf = TfidfVectorizer(sublinear_tf=True).fit(
        [" ".join([s.title, s.category, plain_text(s.description), *s.reviews]) for s in cat.sheets]
    )
    rng = random.Random(seed)
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    examples: list[str] = []
    by_id = {s.product_id: s for s in cat.sheets}
    for ri, r in enumerate(cat.recipients):
        cands = candidates(model, cat, r)
        my_tones = [
            tones[(ri + j) % len(tones)] for j in range(min(tones_per_recipient, len(tones)))
        ]
        others = [o for o in cat.recipients if o.key != r.key]
        for channel in channels:
            for locale in locales:
                for tone in my_tones:
                    occasion = (
                        occasion_by_key("christmas", "GB", TODAY, locale=locale)
                        if tone == "urgent"
                        else None
                    )
                    brief = Brief(
                        channel=channel,
                        tone=tone,
                        locale=locale,
                        variants=variants,
                        occasion=occasion,
                        brand=BRAND,
                    )
                    rec = Recipient(r.key, locale, r.first_name, r.interests, r.segment, r.country)
                    w1, c1 = time.perf_counter(), time.process_time()
                    gen = model.generate_detailed(rec, cands, brief, today=TODAY)
                    cpu, wall = time.process_time() - c1, time.perf_counter() - w1
                    t = tallies[(channel, locale)]
                    t.gen_s += cpu
                    t.wall_s += wall
                    t.items += 1
                    t.asked += variants
                    t.variants += len(gen.variants)
                    texts = [variant_text(v) for v in gen.variants]
                    if len(texts) >= 2:
                        t.distinct2.append(distinct_n(texts, 2, locale))
                        t.self_bleu.append(self_bleu(texts))
                    for v, text in zip(gen.variants, texts, strict=True):
                        sheets = [by_id[p] for p in v.product_ids]
                        results = checks.check_variant(
                            v,
                            sheets,
                            brief,
                            recipient=rec,
                            known_titles=model.titles,
                            known_attributes=model.attributes,
                        )
                        for res in results:
                            if res.ok or res.severity != "error":
                                continue
                            if res.check == "fidelity":
                                t.fidelity += 1
                            elif res.check == "limits":
                                t.limits += 1
                            else:
                                t.other_errors += 1
                            if len(examples) < 20:
                                examples.append(f"{res.check}: {res.message} | {text[:200]!r}")
                        if others:
                            b = rng.choice(others)
                            sa, sb = (
                                float(model.matcher.score_texts(x.interests, [text])[0])
                                for x in (r, b)
                            )
                            t.compared += 1
                            t.wins += sa > sb
                            m = tfidf.transform(
                                [text, " ".join(r.interests), " ".join(b.interests)]
                            )
                            sims = (m[1:] @ m[0].T).toarray().ravel()
                            t.wins_tfidf += bool(sims[0] > sims[1])
                        if locale == "en":
                            t.flesch += english_readability(v)
    return tallies, fit_s, examples


def _table(rows: list[tuple[str, dict]], title: str) -> str:
    cols = [
        ("variants", "variants", "{:>8}"),
        ("dropped", "drop", "{:>5}"),
        ("fidelity_violations", "fid", "{:>4}"),
        ("limit_violations", "lim", "{:>4}"),
        ("distinct2", "dist2", "{:>6}"),
        ("self_bleu", "sbleu", "{:>6}"),
        ("personalization_win_rate", "win", "{:>6}"),
        ("readability_en", "flesch", "{:>6}"),
        ("variants_per_s", "var/s", "{:>7}"),
    ]
    width = max([len(title), *(len(k) for k, _ in rows)]) + 2
    head = title.ljust(width) + " ".join(f.format(h) for _, h, f in cols)
    lines = [head, "-" * len(head)]
    for key, s in rows:
        cells = []
        for k, _, f in cols:
            v = s.get(k)
            cells.append(
                f.format(
                    "-"
                    if v is None
                    else (f"{v:.3f}" if isinstance(v, float) and k != "variants_per_s" else v)
                )
            )
        lines.append(key.ljust(width) + " ".join(cells))
    return "\n".join(lines)


def run(
    catalogs: Sequence[Catalog],
    *,
    channels: Sequence[str] = CHANNELS,
    locales: Sequence[str] = LOCALES,
    tones: Sequence[str] = TONES,
    tones_per_recipient: int = 3,
    variants: int = 3,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    overall = Tally()
    by_catalog, by_channel, by_locale = {}, defaultdict(Tally), defaultdict(Tally)
    fit_total = 0.0
    all_examples = []
    for cat in catalogs:
        if verbose:
            print(f"{cat.name}: {cat.about}; {len(cat.recipients)} recipients", flush=True)
        tallies, fit_s, examples = run_catalog(
            cat,
            channels=channels,
            locales=locales,
            tones=tones,
            tones_per_recipient=tones_per_recipient,
            variants=variants,
            seed=seed,
        )
        fit_total += fit_s
        cat_t = Tally()
        for (channel, locale), t in tallies.items():
            cat_t.add(t)
            by_channel[channel].add(t)
            by_locale[locale].add(t)
        overall.add(cat_t)
        by_catalog[cat.name] = {**cat_t.summary(), "fit_s": round(fit_s, 2)}
        by_catalog[cat.name]["by_channel_locale"] = {
            f"{c}/{loc}": t.summary() for (c, loc), t in sorted(tallies.items())
        }
        all_examples += [f"[{cat.name}] {e}" for e in examples]
    summary = overall.summary()
    result = {k: summary[k] for k in KEYS}
    result.update(
        {
            "dropped": summary["dropped"],
            "items": summary["items"],
            "other_errors": summary["other_errors"],
            "distinct2_items_below_0_6": summary["distinct2_items_below_0_6"],
            "personalization_win_rate_tfidf": summary["personalization_win_rate_tfidf"],
            "variants_per_s_wall": summary["variants_per_s_wall"],
            "fit_s": round(fit_total, 2),
            "gen_s": round(overall.gen_s, 2),
            "load_avg_1m": round(os.getloadavg()[0], 2),  # the machine's, for context
            "catalogs": [c.name for c in catalogs],
        }
    )
    detail = {
        **result,
        "by_catalog": by_catalog,
        "by_channel": {k: t.summary() for k, t in by_channel.items()},
        "by_locale": {k: t.summary() for k, t in by_locale.items()},
        "examples": all_examples,
    }
    if verbose:
        print()
        print(_table(list(by_catalog.items()), "catalog"))
        print()
        print(
            _table([(k, by_channel[k].summary()) for k in channels if k in by_channel], "channel")
        )
        print()
        print(_table([(k, by_locale[k].summary()) for k in locales if k in by_locale], "locale"))
        if all_examples:
            print("\nfailures (first few):")
            for e in all_examples[:10]:
                print("  " + e)
        print()
    return {"result": result, "detail": detail}


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=Path, help="catalog CSV (sku,title,description,…)")
    ap.add_argument("--reviews", type=Path, help="reviews CSV (sku,rating,text)")
    ap.add_argument("--currency", default="USD", help="currency of --products prices")
    ap.add_argument("--retail", type=Path, default=RETAIL_CSV)
    ap.add_argument("--clothing", type=Path, default=CLOTHING_CSV)
    ap.add_argument(
        "--recipients",
        type=int,
        default=None,
        help="per catalog (default: 6 each for the two demo catalogs, 12 for --products: "
        "about 3,000 variants either way)",
    )
    ap.add_argument("--channels", default=",".join(CHANNELS))
    ap.add_argument("--locales", default=",".join(LOCALES))
    ap.add_argument("--tones", default=",".join(TONES))
    ap.add_argument("--tones-per-recipient", type=int, default=3)
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--json",
        type=Path,
        help="write the results here (default benchmarks/results/copy_quality.json, or "
        "copy_quality-<folder of --products>.json)",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    if args.recipients is None:
        args.recipients = 12 if args.products is not None else 6
    if args.products is not None:
        catalogs = [
            load_csv_catalog(
                args.products,
                args.reviews,
                currency=args.currency,
                recipients=args.recipients,
                seed=args.seed,
            )
        ]
    else:
        catalogs = [
            load_online_retail(args.retail, recipients=args.recipients, seed=args.seed),
            load_clothing(args.clothing, recipients=args.recipients, seed=args.seed),
        ]
    out = run(
        catalogs,
        channels=args.channels.split(","),
        locales=args.locales.split(","),
        tones=args.tones.split(","),
        tones_per_recipient=args.tones_per_recipient,
        variants=args.variants,
        seed=args.seed,
        verbose=not args.quiet,
    )
    if args.json is None:
        name = catalogs[0].name if args.products is not None else ""
        args.json = DEFAULT_JSON.with_name(f"copy_quality-{name}.json") if name else DEFAULT_JSON
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out["detail"], indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(out["result"], ensure_ascii=False))
    return out["result"]


if __name__ == "__main__":
    main()
