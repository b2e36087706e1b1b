"""Content-based recommenders: items as vectors of their own text, scored as in `vectors`.

The text of an item is its title, description, category and brand (whichever
``item_features`` has), joined. Two ways to turn it into a vector:

* ``content_tfidf``: TF-IDF over words and word bigrams (scikit-learn; sublinear tf, rows
  unit-norm). Exact word overlap: "RED RETROSPOT MUG" is close to "RED RETROSPOT BAG".
* ``content_w2v``: Word2Vec trained on the catalog's own product texts (each product one
  sentence; nothing downloaded), an item = the idf-weighted mean of its words' vectors.
  Words that appear in the same kind of product names end up close, so "MUG" and "CUP"
  can match without sharing a word.

A customer's profile is the recency-weighted mean of their history's vectors and an item's
score its cosine with it. Items need no interactions: a product added yesterday, with a
title, gets scores like any other (the cold-start case the hybrid uses this for).
Customers without history get a neutral all-zero row.

``popularity_exponent`` (β) multiplies the cosine by (1 + buyers)^β: text similarity alone
ranks obscure look-alikes as high as the best sellers; β > 0 tilts towards what sells.
β = 0 (default) is the pure content model.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from .base import Dataset, Progress
from .embeddings import train_word2vec
from .vectors import VectorModel, normalize_rows

TEXT_COLUMNS = ("title", "description", "category", "brand")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def item_texts(features: pd.DataFrame, n_items: int) -> list[str]:
    """One lower-cased text per item: its TEXT_COLUMNS joined (missing values skipped)."""
    columns = [c for c in TEXT_COLUMNS if c in features]
    if not columns:
        return [""] * n_items
    frame = features[columns].reindex(range(n_items))
    parts = [frame[c].fillna("").astype(str).str.strip() for c in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.str.cat(part, sep=" ")
    return joined.str.lower().str.strip().tolist()


def tokenize(text: str) -> list[str]:
    """Lower-case words of letters and digits (hyphen/apostrophe joined: "t-light")."""
    return _WORD.findall(text.lower())


class ContentBased(VectorModel):
    """Base of the content models: subclasses return the item vectors from the texts."""

    needs = ("item_features",)

    def _vectors(self, texts: list[str]) -> np.ndarray | sparse.csr_matrix:
        """One vector per product text; ContentTfidf and ContentW2V each implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement _vectors")

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        texts = item_texts(data.item_features, data.n_items)
        self.item_vectors = normalize_rows(self._vectors(texts))
        self._fit_history(data)
        if on_progress is not None:
            on_progress(1, 1)

    def with_history(self, data: Dataset) -> ContentBased:
        """A fitted copy for ``data`` — the same catalog with other purchases — that keeps
        this model's item vectors (they come from the product texts alone) and learns only
        the customers' profiles and the popularity prior."""
        self._check_fitted()
        if data.n_items != self.data.n_items:
            raise ValueError("with_history needs the same catalog (item count differs)")
        other = copy.copy(self)
        other.data = data
        other._fit_history(data)
        return other

    def _fit_history(self, data: Dataset) -> None:
        self._set_profiles(data, self.params["half_life_days"])
        binary = sparse.csr_matrix(data.matrix, copy=True)
        binary.data[:] = 1.0
        buyers = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
        beta = float(self.params["popularity_exponent"])
        self.prior = np.power(1.0 + buyers, beta).astype(np.float32) if beta else None

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        scores = super()._score_block(users)
        if self.prior is not None:
            scores *= self.prior
        return scores


class ContentTfidf(ContentBased):
    """TF-IDF (words and bigrams) of the product text.

    min_df: ignore terms in fewer items; max_df: ignore terms in a larger share of items.
    ngram_max: 1 = words only, 2 = words and bigrams.
    """

    name = "content_tfidf"
    defaults = {
        "ngram_max": 2,
        "min_df": 1,
        "max_df": 0.5,
        "half_life_days": 30.0,
        "popularity_exponent": 0.0,
    }
    space = {
        "ngram_max": [1, 2],
        "min_df": [1, 2, 3],
        "max_df": [0.1, 0.3, 0.5, 1.0],
        "half_life_days": [3.0, 10.0, 30.0, 90.0, 365.0, None],
        "popularity_exponent": ("float", 0.0, 1.0),
    }

    def _vectors(self, texts: list[str]) -> sparse.csr_matrix:
        # Not kept on the model: scoring needs only the item vectors.
        vectorizer = TfidfVectorizer(
            tokenizer=tokenize,
            token_pattern=None,
            lowercase=False,
            ngram_range=(1, int(self.params["ngram_max"])),
            min_df=int(self.params["min_df"]),
            max_df=float(self.params["max_df"]),
            sublinear_tf=True,
            dtype=np.float32,
        )
        try:
            return vectorizer.fit_transform(texts).tocsr()
        except ValueError:  # no terms at all (empty texts, or min_df/max_df prune all)
            return sparse.csr_matrix((len(texts), 1), dtype=np.float32)


class ContentW2V(ContentBased):
    """Word2Vec trained on the catalog's product texts; item = idf-weighted mean of its
    word vectors (words seen in fewer products weigh more)."""

    name = "content_w2v"
    defaults = {
        "vector_size": 64,
        "window": 5,
        "epochs": 40,
        "negative": 5,
        "sg": 1,
        "half_life_days": 30.0,
        "popularity_exponent": 0.0,
    }
    space = {
        "vector_size": [32, 64, 128],
        "window": ("int", 2, 8),
        "epochs": ("int", 10, 80),
        "negative": ("int", 3, 15),
        "sg": [0, 1],
        "half_life_days": [3.0, 10.0, 30.0, 90.0, 365.0, None],
        "popularity_exponent": ("float", 0.0, 1.0),
    }

    def _vectors(self, texts: list[str]) -> np.ndarray:
        p = self.params
        docs = [tokenize(t) for t in texts]
        size = int(p["vector_size"])
        out = np.zeros((len(docs), size), dtype=np.float32)
        sentences = [d for d in docs if d]
        if not sentences:
            return out
        model = train_word2vec(
            sentences,
            seed=self.seed,
            vector_size=size,
            window=int(p["window"]),
            epochs=int(p["epochs"]),
            negative=int(p["negative"]),
            sg=int(p["sg"]),
            min_count=1,
            sample=0.0,
        )
        if model is None:
            return out
        df: dict[str, int] = {}
        for doc in docs:
            for word in set(doc):
                df[word] = df.get(word, 0) + 1
        n_docs = len(docs)
        for i, doc in enumerate(docs):
            if not doc:
                continue
            weights = np.asarray([np.log(1.0 + n_docs / df[w]) for w in doc], dtype=np.float32)
            vectors = model.wv[doc]
            out[i] = weights @ vectors / weights.sum()
        # Averages of word vectors share a common direction that makes every pair of items
        # look alike; remove it (the "common component" of SIF embeddings).
        has_text = np.asarray([bool(d) for d in docs])
        out[has_text] -= out[has_text].mean(axis=0)
        return out
