"""Derived categories for catalogs that have none (the UCI Online Retail file, many exports).

Product titles and descriptions are turned into TF-IDF vectors over words
and word pairs, reduced with truncated SVD (LSA) and length-normalised, then clustered with
k-means (so clusters follow cosine similarity). Each cluster is named after the three
terms that are most over-represented in it, e.g. "Heart · Holder · T-light".

k: ``k`` if given; else, with ``k_range``, the silhouette-best k on a seeded sample; else
round(sqrt(n / 2)) capped to ``max_k`` — a sensible size for a category menu. Colour and
size words are stop words by default, so a cluster is "Lunch · Bag" rather than "Pink ·
Red". Deterministic for a seed. The Django side stores the names as the products'
category (or a separate field) so profiles, segments and rules can use them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

Progress = Callable[[int, int], None]

UNCATEGORISED = "Uncategorised"
_COLOURS = """red pink blue green white black yellow orange purple ivory cream grey gray silver
gold brown navy beige turquoise lilac charcoal olive sage terracotta burgundy sand colour
colours color colors assorted"""
_SIZES = "small large big mini medium jumbo set sets pack pcs piece pieces"
COLOUR_WORDS = frozenset(_COLOURS.split())
SIZE_WORDS = frozenset(_SIZES.split())
DEFAULT_STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | COLOUR_WORDS | SIZE_WORDS
TOKEN_PATTERN = r"(?u)\b[^\W\d_][\w'-]*[^\W_]\b"  # words of 2+ chars starting with a letter


@dataclass(frozen=True)
class DerivedCategory:
    name: str  # "Heart · Holder · T-light"
    size: int  # products
    terms: tuple[str, ...]  # most distinctive first (up to 6)


@dataclass(frozen=True)
class DerivedCategories:
    categories: pd.Series  # index product_id -> category name
    clusters: tuple[DerivedCategory, ...]  # largest first
    k: int
    scores: dict[int, float]  # silhouette per k tried (empty unless k_range was given)
    available: bool
    reason: str
    seed: int


def _vectorise(texts: pd.Series, stop_words: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """TF-IDF over words and word pairs; an empty vocabulary gives an empty matrix."""
    vectorizer = TfidfVectorizer(
        lowercase=True,
        token_pattern=TOKEN_PATTERN,
        stop_words=stop_words,
        ngram_range=(1, 2),
        min_df=2,
        max_df=0.5 if len(texts) >= 20 else 1.0,  # words in most titles say nothing
        sublinear_tf=True,
        dtype=np.float64,
    )
    try:
        matrix = vectorizer.fit_transform(texts.fillna("").astype(str))
    except ValueError:  # no word appears in two products
        return sparse.csr_matrix((len(texts), 0)), np.array([], dtype=object)
    return matrix.tocsr(), np.array(vectorizer.get_feature_names_out(), dtype=object)


def default_k(n_products: int, max_k: int = 40) -> int:
    """round(sqrt(n / 2)), between 2 and max_k."""
    return int(min(max(round(math.sqrt(n_products / 2)), 2), max_k))


def derive_categories(
    products: pd.DataFrame,
    *,
    k: int | None = None,
    k_range: tuple[int, int] | None = None,
    max_k: int = 40,
    seed: int = 0,
    text_columns: tuple[str, ...] = ("title", "description"),
    description_weight: float = 0.5,
    stop_words: Iterable[str] | None = None,
    n_terms: int = 3,
    sample_size: int = 3000,
    threads: int | None = 1,
    on_progress: Progress | None = None,
) -> DerivedCategories:
    """Cluster product texts into named categories; returns product_id -> name.

    ``stop_words`` None = DEFAULT_STOP_WORDS (English + colour and size words).
    Products whose text has no usable word get "Uncategorised". Fewer than 4 products with
    text (or fewer distinct words than clusters) -> everything in one category with
    ``available`` False and a reason, instead of an error.
    """
    report = on_progress or (lambda done, total: None)
    report(0, 4)
    if "product_id" not in products.columns:
        raise ValueError("products frame is missing column(s): product_id")
    ids = products["product_id"].to_numpy(dtype=np.int64)
    title_col, *other_cols = text_columns
    if title_col not in products.columns:
        raise ValueError(f"products frame is missing column(s): {title_col}")
    words = sorted(DEFAULT_STOP_WORDS if stop_words is None else stop_words)
    titles, vocab = _vectorise(products[title_col], words)
    blocks = [titles]
    for col in other_cols:
        if col in products.columns:
            extra, _ = _vectorise(products[col], words)
            if extra.shape[1]:
                blocks.append(extra * description_weight)
    blocks = [b for b in blocks if b.shape[1]]
    names = np.full(ids.size, UNCATEGORISED, dtype=object)

    def single(reason: str) -> DerivedCategories:
        report(4, 4)
        return DerivedCategories(
            categories=pd.Series(names, index=pd.Index(ids, name="product_id"), name="category"),
            clusters=(DerivedCategory(UNCATEGORISED, int(ids.size), ()),) if ids.size else (),
            k=1 if ids.size else 0,
            scores={},
            available=False,
            reason=reason,
            seed=seed,
        )

    if not blocks:
        return single("no word appears in the texts of two products")
    combined = normalize(sparse.hstack(blocks).tocsr())
    has_text = np.asarray(combined.getnnz(axis=1) > 0)
    n = int(has_text.sum())
    if n < 4 or combined.shape[1] < 2:
        return single(
            f"only {n} products have words in common with another product; need at least 4"
        )
    matrix = combined[has_text]
    name_matrix = titles[has_text] if vocab.size else matrix
    if not vocab.size:
        vocab = np.array([f"term {i}" for i in range(matrix.shape[1])], dtype=object)
    report(1, 4)

    dims = min(100, matrix.shape[1] - 1, n - 1)
    with threadpool_limits(limits=threads):
        reduced = TruncatedSVD(n_components=dims, random_state=seed).fit_transform(matrix)
        reduced = normalize(reduced)
        report(2, 4)
        scores: dict[int, float] = {}
        if k is not None:
            chosen = int(k)
        elif k_range is not None:
            lo, hi = k_range
            rng = np.random.default_rng(seed)
            sample = rng.choice(n, size=min(sample_size, n), replace=False)
            for cand in range(max(lo, 2), min(hi, n - 1) + 1):
                km = KMeans(n_clusters=cand, n_init=3, random_state=seed).fit(reduced)
                lab = km.labels_[sample]
                if len(np.unique(lab)) > 1:
                    scores[cand] = float(silhouette_score(reduced[sample], lab, metric="cosine"))
            chosen = max(scores, key=lambda c: (round(scores[c], 6), -c)) if scores else 2
        else:
            chosen = default_k(n, max_k)
        chosen = max(1, min(chosen, n - 1))
        km = KMeans(n_clusters=chosen, n_init=3, random_state=seed).fit(reduced)
    report(3, 4)

    labels = km.labels_
    sizes = np.bincount(labels, minlength=chosen)
    # Empty clusters (k-means finds fewer distinct points than k on duplicate titles) are left out.
    order = sorted((c for c in range(chosen) if sizes[c]), key=lambda c: (-sizes[c], c))
    overall = np.asarray(name_matrix.mean(axis=0)).ravel()
    clusters: list[DerivedCategory] = []
    used_names: set[str] = set()
    cluster_name: dict[int, str] = {}
    for c in order:
        members = labels == c
        centre = np.asarray(name_matrix[members].mean(axis=0)).ravel()
        # Over-representation: the cluster's mean weight above the catalog's, scaled by
        # the cluster's mean so common-but-generic words lose to defining ones.
        lift = (centre - overall) * np.sqrt(np.maximum(centre, 0))
        ranked = [vocab[i] for i in np.argsort(-lift, kind="stable") if lift[i] > 0][:30]
        terms = _pick_terms(ranked, 6)
        name = _name(terms, n_terms, used_names)
        used_names.add(name)
        cluster_name[c] = name
        clusters.append(DerivedCategory(name=name, size=int(sizes[c]), terms=tuple(terms)))
    names[has_text] = [cluster_name[c] for c in labels]
    report(4, 4)
    return DerivedCategories(
        categories=pd.Series(names, index=pd.Index(ids, name="product_id"), name="category"),
        clusters=tuple(clusters),
        k=chosen,
        scores=scores,
        available=True,
        reason="",
        seed=seed,
    )


def _pick_terms(ranked: list[str], limit: int) -> list[str]:
    """Terms that share no word: "vintage doily" is skipped once "bag vintage" is in."""
    chosen: list[str] = []
    words: set[str] = set()
    for term in ranked:
        parts = term.split()
        if len(parts) == 1 and term in words:
            continue
        if len(parts) > 1 and any(p in words and p not in chosen for p in parts):
            continue
        if len(parts) > 1:
            # A pair replaces the single word it contains, keeping the order of discovery.
            chosen = [t for t in chosen if t not in parts]
        chosen.append(term)
        words.update(parts)
        if len(chosen) >= limit:
            break
    return chosen


def _label(term: str) -> str:
    return term[:1].upper() + term[1:]


def _name(terms: list[str], n_terms: int, taken: set[str]) -> str:
    base = " · ".join(_label(t) for t in terms[:n_terms]) if terms else "Other"
    extra = n_terms
    name = base
    while name in taken and extra < len(terms):
        extra += 1
        name = " · ".join(_label(t) for t in terms[:extra])
    suffix = 2
    while name in taken:
        name = f"{base} ({suffix})"
        suffix += 1
    return name
