"""N variants per audience item: realize, rank (relevance + diversity), check.

For one recipient and the item's fact sheets:
1. the products closest to the recipient's interests are kept (``products_per_message``),
   and each product's selling points are ranked by interest match (``InterestMatcher``);
2. the tone: "urgent" only when the data supports it (a product with low stock, or an
   occasion with an end date); otherwise the variant falls back to "friendly" and says so
   in ``Variant.notes``;
3. a pool of candidates is realized (N + 2, each preferring frames the previous ones did not
   use; with N = 1 they are only planned, and the one picked is realized), then N are picked
   by MMR: relevance (interest match of the points it says) against the
   largest bigram overlap with the already picked ones (λ = 0.6);
4. each pick is checked (``checks.check_variant``); one with an error is replaced by the
   next MMR candidate, realizing more if needed; when none passes, fewer variants are
   returned and ``Generation.dropped`` says why.

With an LLM ``provider`` (optional, see ``llm.py``), its variants come first: each goes
through the same checks (always, being untrusted), those with an error are left out, and
the templates fill up to N; when the provider is unavailable the templates draft alone and
``Generation.notes`` says why. Without a provider nothing changes.

``CopyModel`` is built once per catalog (selling-point miner with its TF-IDF, the sentiment
model, the word vectors, the catalog's titles for the fidelity check) and then drafts fast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from . import checks
from .grammar import FrameUsage, Realizer, Request, format_occasion_date, product_view
from .interests import InterestMatcher
from .llm import LLMProvider, LLMUnavailable
from .selling_points import Miner, SellingPoint
from .sentiment import SentimentModel
from .sentiment import train as train_sentiment
from .text import plain_text
from .types import Brief, CheckResult, FactSheet, Recipient, Variant

MMR_LAMBDA = 0.6
KIND_PRIOR = {"attribute": 0.15, "keyphrase": 0.1, "review": 0.12}
_TOKEN = re.compile(
    r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\d_\u3400-\u9fff]+|\d+(?:[.,]\d+)*", re.UNICODE
)


@dataclass
class Generation:
    variants: list[Variant]
    dropped: list[str] = field(default_factory=list)  # why fewer than asked
    notes: list[str] = field(default_factory=list)  # e.g. the tone fell back
    # Per variant (same order): the check results it passed with; None where they were not
    # kept (LLM variants, run_checks=False), so a caller storing results checks those itself.
    checks: list[list[CheckResult] | None] = field(default_factory=list)


def _stable_seed(*parts: object) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode("utf-8"))


def variant_text(v: Variant) -> str:
    out = []
    for value in v.fields.values():
        out.extend(value if isinstance(value, list) else [value])
    return "\n".join(str(x) for x in out)


def bigrams(text: str, locale: str = "") -> set[tuple[str, str]]:
    toks = _TOKEN.findall(text.lower())
    return set(zip(toks, toks[1:], strict=False))


def distinct_n(texts: Iterable[str], n: int = 2, locale: str = "") -> float:
    """Unique n-grams / all n-grams over ``texts`` (tokens: words, a Han character each)."""
    total, seen = 0, set()
    for t in texts:
        toks = _TOKEN.findall(t.lower())
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def rank_points(
    points: Sequence[SellingPoint],
    interests: Sequence[str],
    matcher: InterestMatcher | None,
    scores: dict[int, float] | None = None,
) -> list[SellingPoint]:
    """Selling points best first: interest match, then a small prior by kind and the
    mining score; stable for ties. ``scores`` (when given) receives id(point) → match."""
    if not points:
        return []
    match = matcher.match(interests, points) if matcher is not None and interests else None
    keyed = []
    for i, sp in enumerate(points):
        s = KIND_PRIOR.get(sp.kind, 0.0) + 0.02 * min(sp.score, 5.0)
        if match is not None:
            s += 2.0 * float(match[i])
            if scores is not None:
                scores[id(sp)] = float(match[i])
        keyed.append((-s, i, sp))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [sp for _, _, sp in keyed]


def generate_detailed(
    recipient: Recipient,
    sheets: Sequence[FactSheet],
    brief: Brief,
    *,
    selling_points: dict[str, list[SellingPoint]] | None = None,
    matcher: InterestMatcher | None = None,
    seed: int = 0,
    catalog_titles: Iterable[str] | checks.PhraseIndex | None = (),
    known_attributes=None,
    today: dt.date | None = None,
    run_checks: bool = True,
    provider: LLMProvider | None = None,
) -> Generation:
    """See the module docstring. ``selling_points``: {product_id: points} (mined from the
    sheets with a catalog-less miner when None); ``catalog_titles``: the catalog's titles
    (a ``checks.PhraseIndex`` built once is fastest) so that no other product is named."""
    n_wanted = max(1, int(brief.variants))
    if not sheets:
        return Generation([], [f"no products for {recipient.key}"])
    locale = brief.locale or recipient.locale or "en"
    interests = tuple(i for i in recipient.interests if i)
    if selling_points is None:
        miner = Miner([s.description for s in sheets])
        selling_points = {s.product_id: miner.mine(s) for s in sheets}

    # 1. products and their points
    chosen = list(sheets)
    k = max(1, brief.products_per_message)
    if len(chosen) > k and matcher is not None and interests:
        scores = matcher.score_texts(interests, [f"{s.title} {s.category}" for s in chosen])
        order = sorted(range(len(chosen)), key=lambda i: (-scores[i], i))
        chosen = [chosen[i] for i in order[:k]]
    chosen = chosen[:k]
    products = []
    point_match: dict[int, float] = {}
    ranked: dict[str, list[SellingPoint]] = {}
    for s in chosen:
        pts = rank_points(selling_points.get(s.product_id, []), interests, matcher, point_match)
        ranked[s.product_id] = pts
        view = product_view(s, pts, locale)
        if interests and view.category:
            cat = view.category.casefold()
            hit = any(cat in i.casefold() or i.casefold() in cat for i in interests)
            if not hit and matcher is not None:
                hit = float(matcher.score_texts(interests, [view.category])[0]) >= 0.5
            view.for_you = hit
        products.append(view)

    # 2. tone
    notes: list[str] = []
    occ = brief.occasion
    ends_on = ""
    if occ is not None and occ.ends_on:
        try:
            end = dt.date.fromisoformat(occ.ends_on[:10])
            if today is None or end >= today:
                ends_on = end.isoformat()
        except ValueError:
            ends_on = ""
    low_stock = any(p.low_stock for p in products)
    tone = brief.tone
    if tone == "urgent" and not (low_stock or ends_on):
        tone = "friendly"
        notes.append("urgent tone needs low stock or an occasion end date; used friendly")
    req = Request(
        channel=brief.channel,
        locale=locale,
        tone=tone,
        products=products,
        first=plain_text(recipient.first_name).strip(),
        sender=plain_text(brief.brand.sender).strip(),
        disclaimer=brief.brand.disclaimer.strip(),
        occasion=occ.name if occ is not None else "",
        date=format_occasion_date(ends_on, locale) if ends_on else "",
        urgent_stock=tone == "urgent" and low_stock,
        urgent_date=tone == "urgent" and bool(ends_on),
        sms_segments=brief.sms_segments,
    )
    product_ids = tuple(s.product_id for s in chosen)
    base_seed = _stable_seed(seed, recipient.key, brief.channel, locale, tone, *product_ids)
    used = FrameUsage()  # shared by the item's variants: frames, points and wording used

    product_match = 0.0
    if matcher is not None and interests:
        scores = matcher.score_texts(interests, [f"{p.name} {p.category}" for p in products])
        product_match = float(scores[0]) if len(scores) == 1 else float(scores.mean())
    rel: list[float] = []

    # A candidate is planned (its Realizer picks the selling points it will say, which is
    # all its relevance depends on) and realized. With one variant wanted, the bigram
    # overlap of MMR has nothing to compare with: candidates are only planned, and just the
    # one picked (or the next, when a pick fails its checks) is realized.
    lazy = n_wanted == 1
    realizers: list[Realizer | None] = []
    pool: list[Variant | None] = []
    grams: list[set | None] = []

    def realize(r: Realizer) -> Variant:
        return Variant(
            channel=brief.channel,
            locale=locale,
            tone=tone,
            fields=r.realize(),
            product_ids=product_ids,
            recipient_key=recipient.key,
            frames=tuple(r.frames),
            notes=tuple(notes),
        )

    def make(i: int) -> None:
        r = Realizer(req, random.Random(base_seed + 7919 * i), used)
        # relevance: the interest match of the points it says (and of its products)
        pm = [point_match.get(id(sp), 0.0) for sp in r.used_points]
        rel.append(product_match + (sum(pm) / len(pm) if pm else 0.0))
        realizers.append(r if lazy else None)
        pool.append(None if lazy else realize(r))
        grams.append(None)

    def variant_at(i: int) -> Variant:
        v = pool[i]
        if v is None:
            v = pool[i] = realize(realizers[i])  # type: ignore[arg-type]
            realizers[i] = None
        return v

    def grams_at(i: int) -> set:
        g = grams[i]
        if g is None:
            g = grams[i] = bigrams(variant_text(variant_at(i)), locale)
        return g

    # 3. pool and MMR
    pool_size = n_wanted + 2
    for i in range(pool_size):
        make(i)
    made = pool_size

    picked: list[Variant] = []
    picked_checks: list[list[CheckResult] | None] = []
    picked_grams: list[set] = []
    dropped: list[str] = []
    failures: list[str] = []
    available = list(range(pool_size))
    known_titles = catalog_titles if catalog_titles else None
    max_made = pool_size + 4 * n_wanted
    llm_notes: list[str] = []
    if provider is not None:
        llm_brief = dataclasses.replace(brief, locale=locale, tone=tone)
        for v in _llm_variants(
            provider,
            recipient,
            chosen,
            llm_brief,
            n_wanted,
            ranked,
            known_titles,
            known_attributes,
            llm_notes,
            check_brief=brief,
        ):
            t = variant_text(v)
            if matcher is not None and interests:
                v.score = round(product_match + float(matcher.score_texts(interests, [t])[0]), 4)
            v.notes = tuple(notes)
            picked.append(v)
            picked_checks.append(None)
            picked_grams.append(bigrams(t, locale))
    while len(picked) < n_wanted:
        if not available:
            if made >= max_made:
                break
            make(made)
            made += 1
            available.append(len(pool) - 1)
        best, best_score = None, -1e9
        for i in available:
            sim = max((_jaccard(grams_at(i), g) for g in picked_grams), default=0.0)
            s = MMR_LAMBDA * rel[i] - (1 - MMR_LAMBDA) * sim
            if s > best_score:
                best, best_score = i, s
        available.remove(best)
        v = variant_at(best)
        results = None
        if run_checks:
            results = checks.check_variant(
                v,
                chosen,
                brief,
                recipient=recipient,
                known_titles=known_titles,
                known_attributes=known_attributes,
            )
            if checks.is_blocking(results):
                failures.extend(
                    f"{r.check}: {r.message}" for r in results if not r.ok and r.severity == "error"
                )
                continue
        v.score = round(float(rel[best]), 4)
        picked.append(v)
        picked_checks.append(results)
        if len(picked) < n_wanted:  # only compared with the picks still to come
            picked_grams.append(grams_at(best))
    if len(picked) < n_wanted:
        reasons = sorted(set(failures))[:5] or ["not enough distinct frames"]
        dropped.append(
            f"{n_wanted - len(picked)} of {n_wanted} variants dropped for {recipient.key}: "
            + "; ".join(reasons)
        )
    return Generation(picked, dropped, notes + llm_notes, picked_checks)


def _llm_variants(
    provider: LLMProvider,
    recipient: Recipient,
    sheets: Sequence[FactSheet],
    brief: Brief,
    n: int,
    points: dict[str, list[SellingPoint]],
    known_titles,
    known_attributes,
    notes: list[str],
    *,
    check_brief: Brief,
) -> list[Variant]:
    """The provider's variants that pass the checks (at most ``n``, distinct), checked
    with ``check_brief`` like the template variants; what went wrong goes to ``notes``."""
    try:
        candidates = provider.generate(recipient, sheets, brief, n, points=points)
    except LLMUnavailable as e:
        notes.append(f"LLM unavailable ({e.reason}); drafted from templates")
        return []
    kept: list[Variant] = []
    seen: set[str] = set()
    failures: list[str] = []
    blocked = 0
    for v in candidates[:n]:
        text = variant_text(v)
        if text in seen:
            continue
        seen.add(text)
        results = checks.check_variant(
            v,
            sheets,
            check_brief,
            recipient=recipient,
            known_titles=known_titles,
            known_attributes=known_attributes,
        )
        if checks.is_blocking(results):
            blocked += 1
            failures.extend(
                f"{r.check}: {r.message.rstrip('.')}"
                for r in results
                if not r.ok and r.severity == "error"
            )
            continue
        kept.append(v)
    if blocked:
        notes.append(
            f"{blocked} LLM variant(s) failed the checks ({'; '.join(sorted(set(failures))[:3])})"
            "; templates filled in"
        )
    return kept


def generate(
    recipient: Recipient,
    sheets: Sequence[FactSheet],
    brief: Brief,
    *,
    selling_points: dict[str, list[SellingPoint]] | None = None,
    matcher: InterestMatcher | None = None,
    seed: int = 0,
    catalog_titles: Iterable[str] | checks.PhraseIndex | None = (),
    provider: LLMProvider | None = None,
) -> list[Variant]:
    """N checked variants for one audience item, ranked (see ``generate_detailed``)."""
    return generate_detailed(
        recipient,
        sheets,
        brief,
        selling_points=selling_points,
        matcher=matcher,
        seed=seed,
        catalog_titles=catalog_titles,
        provider=provider,
    ).variants


class CopyModel:
    """Everything fitted once per catalog; ``generate`` then drafts any item quickly.

    ``reviews``: (text, stars) pairs of the catalog's rated reviews, for the sentiment
    model (its held-out figures: ``sentiment.report``). ``texts``: more catalog text for
    the word vectors (e.g. all review texts); titles, categories and descriptions of the
    sheets are always used."""

    def __init__(
        self,
        sheets: Sequence[FactSheet],
        *,
        reviews: Sequence[tuple[str, float]] = (),
        texts: Iterable[str] = (),
        seed: int = 0,
        sentiment: SentimentModel | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        total = 4
        step = (lambda d: on_progress(d, total)) if on_progress else (lambda d: None)
        self.seed = seed
        if sentiment is None:
            texts_r = [t for t, _ in reviews]
            stars = [s for _, s in reviews]
            sentiment = train_sentiment(texts_r, stars, seed=seed) if reviews else SentimentModel()
        self.sentiment = sentiment
        step(1)
        self.sheets = {s.product_id: s for s in sheets}
        self.miner = Miner([s.description for s in sheets], sentiment=sentiment)
        self.points: dict[str, list[SellingPoint]] = {}
        for s in sheets:
            self.points[s.product_id] = self.miner.mine(s)
        step(2)
        corpus = [
            " ".join(
                x
                for x in (
                    s.title,
                    s.category.replace(">", " "),
                    plain_text(s.description),
                    *s.attributes.values(),
                )
                if x
            )
            for s in sheets
        ]
        corpus += [r for s in sheets for r in s.reviews]
        corpus += list(texts)
        self.matcher = InterestMatcher(corpus, seed=seed)
        step(3)
        self.titles = checks.PhraseIndex([s.title for s in sheets])
        attrs: dict[str, set[str]] = {}
        for s in sheets:
            for k, v in s.attributes.items():
                attrs.setdefault(k, set()).add(v)
        self.attributes = checks.attribute_index(attrs) if attrs else None
        step(4)

    def selling_points(self, sheet: FactSheet) -> list[SellingPoint]:
        pts = self.points.get(sheet.product_id)
        if pts is None or self.sheets.get(sheet.product_id) is not sheet:
            pts = self.miner.mine(sheet)
            self.points[sheet.product_id] = pts
            self.sheets[sheet.product_id] = sheet
        return pts

    def generate_detailed(
        self,
        recipient: Recipient,
        sheets: Sequence[FactSheet],
        brief: Brief,
        *,
        seed: int | None = None,
        today: dt.date | None = None,
        run_checks: bool = True,
        provider: LLMProvider | None = None,
    ) -> Generation:
        return generate_detailed(
            recipient,
            sheets,
            brief,
            selling_points={s.product_id: self.selling_points(s) for s in sheets},
            matcher=self.matcher,
            seed=self.seed if seed is None else seed,
            catalog_titles=self.titles,
            known_attributes=self.attributes,
            today=today,
            run_checks=run_checks,
            provider=provider,
        )

    def generate(
        self, recipient: Recipient, sheets: Sequence[FactSheet], brief: Brief, **kw
    ) -> list[Variant]:
        return self.generate_detailed(recipient, sheets, brief, **kw).variants


__all__ = ["CopyModel", "Generation", "distinct_n", "generate", "generate_detailed"]
