"""Review sentiment, learned from the catalog's own rated reviews (stars as labels).

Labels: 4–5 stars → positive, 1–2 → negative. 3 stars are *dropped* by default
(``neutral="drop"``): mixed reviews ("love the colour but it runs small") teach both
classes at once and make the positive/negative boundary worse; with ``neutral="class"``
they form a third class instead. Model: TF-IDF of word 1–2-grams (sublinear tf) +
logistic regression with balanced class weights (the stars are skewed: ~80 % positive in
the Women's clothing reviews), so macro F1 is the figure to watch, not only accuracy.

The held-out split is stratified and seeded; its accuracy and macro F1 are kept in
``SentimentModel.report`` (shown in the UI next to the selling points the model picked).
The final model is then refit on all labelled reviews.

With too few labelled reviews (or a single class) there is nothing to learn: ``train``
returns a model backed by a small English lexicon, flagged ``report.method="lexicon"``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

MIN_REVIEWS = 40  # fewer labelled reviews than this: lexicon fallback

POSITIVE_WORDS = frozenset(
    [
        "love",
        "loved",
        "loves",
        "lovely",
        "great",
        "perfect",
        "perfectly",
        "beautiful",
        "gorgeous",
        "comfortable",
        "comfy",
        "soft",
        "flattering",
        "nice",
        "cute",
        "pretty",
        "excellent",
        "amazing",
        "awesome",
        "fantastic",
        "wonderful",
        "happy",
        "glad",
        "favorite",
        "favourite",
        "recommend",
        "best",
        "quality",
        "stunning",
        "elegant",
        "warm",
        "cozy",
        "cosy",
        "fun",
        "sturdy",
        "well-made",
        "useful",
        "handy",
        "sweet",
        "charming",
        "delightful",
        "ideal",
        "fits",
    ]
)
NEGATIVE_WORDS = frozenset(
    [
        "not",
        "no",
        "never",
        "poor",
        "cheap",
        "returned",
        "return",
        "returning",
        "disappointed",
        "disappointing",
        "bad",
        "awful",
        "terrible",
        "ugly",
        "itchy",
        "scratchy",
        "small",
        "large",
        "tight",
        "unflattering",
        "broke",
        "broken",
        "thin",
        "worst",
        "wrong",
        "sadly",
        "unfortunately",
        "odd",
        "weird",
        "boxy",
        "sheer",
        "flimsy",
    ]
)
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*", re.UNICODE)


def label_stars(stars: Sequence[float], neutral: str = "drop") -> np.ndarray:
    """1 positive (4–5), 0 negative (1–2), 2 neutral (3) or -1 dropped (3, or no rating)."""
    s = np.asarray(stars, dtype=float)
    out = np.full(len(s), -1, dtype=np.int64)
    out[s >= 4] = 1
    out[(s >= 1) & (s <= 2)] = 0
    if neutral == "class":
        out[s == 3] = 2
    elif neutral != "drop":
        raise ValueError("neutral must be 'drop' or 'class'")
    return out


@dataclass(frozen=True)
class SentimentReport:
    method: str  # "tfidf+logreg" | "lexicon"
    accuracy: float | None  # on the held-out split
    f1_macro: float | None
    n_train: int
    n_test: int
    neutral: str  # "drop" | "class"
    labels: tuple[str, ...] = ("negative", "positive")


class SentimentModel:
    """``positive_proba(texts)``: P(positive) per text."""

    def __init__(self, pipeline=None, report: SentimentReport | None = None) -> None:
        self._vec, self._clf = pipeline if pipeline else (None, None)
        self.report = report or SentimentReport("lexicon", None, None, 0, 0, "drop")

    def positive_proba(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros(0)
        if self._clf is None:
            return np.array([_lexicon_score(t) for t in texts])
        proba = self._clf.predict_proba(self._vec.transform(texts))
        col = list(self._clf.classes_).index(1)
        return proba[:, col]

    def is_positive(self, text: str, threshold: float = 0.7) -> bool:
        return bool(self.positive_proba([text])[0] >= threshold)


def _lexicon_score(text: str) -> float:
    words = [w.lower() for w in _WORD.findall(text)]
    pos = sum(w in POSITIVE_WORDS for w in words)
    neg = sum(w in NEGATIVE_WORDS for w in words)
    return (pos + 0.5) / (pos + neg + 1.0)


def _make(seed: int) -> tuple[TfidfVectorizer, LogisticRegression]:
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)
    clf = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=seed)
    return vec, clf


def train(
    texts: Sequence[str],
    stars: Sequence[float],
    *,
    seed: int = 0,
    test_size: float = 0.2,
    neutral: str = "drop",
) -> SentimentModel:
    """Fit on the catalog's rated reviews; see the module docstring for labels and split."""
    labels = label_stars(stars, neutral)
    texts = ["" if t is None else str(t) for t in texts]
    keep = np.flatnonzero((labels >= 0) & np.array([bool(t.strip()) for t in texts], dtype=bool))
    x = [texts[i] for i in keep]
    y = labels[keep]
    names = ("negative", "positive", "neutral") if neutral == "class" else ("negative", "positive")
    counts = np.bincount(y, minlength=2) if len(y) else np.zeros(2, dtype=int)
    if len(y) < MIN_REVIEWS or (counts[:2] < 5).any():
        return SentimentModel(None, SentimentReport("lexicon", None, None, 0, 0, neutral, names))
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    vec, clf = _make(seed)
    clf.fit(vec.fit_transform(x_tr), y_tr)
    pred = clf.predict(vec.transform(x_te))
    report = SentimentReport(
        "tfidf+logreg",
        round(float(accuracy_score(y_te, pred)), 4),
        round(float(f1_score(y_te, pred, average="macro")), 4),
        len(y_tr),
        len(y_te),
        neutral,
        names,
    )
    vec, clf = _make(seed)
    clf.fit(vec.fit_transform(x), y)
    return SentimentModel((vec, clf), report)
