"""Interest matching: how close a selling point (or product) is to what a recipient likes.

Word vectors are trained on the catalog's own text (titles, categories, descriptions,
review text) with gensim Word2Vec (skip-gram, seeded, ``workers=1`` so it is
deterministic). A text's vector is the mean of its tokens' vectors. The score of a
candidate is a blend of the word-vector cosine and a TF-IDF cosine (exact and stemmed word
overlap: "dresses" must match "dress" even when the corpus is too small for vectors to be
reliable). When the vocabulary is too small (< ``min_vocab`` tokens reaching
``min_count``), the word vectors are skipped and the TF-IDF cosine alone is used
(``method == "tfidf"``).

Interests come strongest first; each is weighted 1 / (1 + 0.5·rank).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .text import tokens


def _analyzer(text: str) -> list[str]:
    return tokens(text)


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(j, 0.0) for j, v in a.items())


@lru_cache(maxsize=64)
def _weights(n: int) -> np.ndarray:
    """Interest weights 1 / (1 + 0.5·rank), normalized (read only: cached)."""
    weights = np.array([1.0 / (1.0 + 0.5 * r) for r in range(n)])
    weights /= weights.sum()
    weights.flags.writeable = False
    return weights


class InterestMatcher:
    def __init__(
        self,
        texts: Iterable[str],
        *,
        seed: int = 0,
        vector_size: int = 48,
        window: int = 5,
        epochs: int = 10,
        min_count: int = 2,
        min_vocab: int = 150,
        w2v_weight: float = 0.4,
        max_sentences: int = 60_000,
    ) -> None:
        docs = [t for t in texts if t and str(t).strip()][:max_sentences]
        self.method = "tfidf"
        self.w2v_weight = 0.0
        self._tfidf = TfidfVectorizer(analyzer=_analyzer, sublinear_tf=True)
        try:
            self._tfidf.fit(docs or ["empty"])
        except ValueError:
            self._tfidf.fit(["empty"])
        self._vocab = self._tfidf.vocabulary_
        self._idf = self._tfidf.idf_
        self._max_idf = float(self._idf.max()) if len(self._idf) else 1.0
        self._wv: dict[str, np.ndarray] = {}
        sentences = [tokens(d) for d in docs]
        sentences = [s for s in sentences if len(s) > 1]
        if sentences:
            from gensim.models import Word2Vec

            model = Word2Vec(
                vector_size=vector_size,
                window=window,
                min_count=min_count,
                sg=1,
                negative=5,
                workers=1,
                seed=seed,
                epochs=epochs,
            )
            model.build_vocab(sentences)
            if len(model.wv.index_to_key) >= min_vocab:
                model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
                vectors = model.wv.vectors / np.maximum(
                    np.linalg.norm(model.wv.vectors, axis=1, keepdims=True), 1e-9
                )
                self._wv = {k: vectors[i] for i, k in enumerate(model.wv.index_to_key)}
                self.method = "word2vec+tfidf"
                self.w2v_weight = w2v_weight
        self.vector_size = vector_size
        self._cache: dict[str, tuple[dict[str, float], np.ndarray | None]] = {}

    # -- representations ------------------------------------------------------------------
    def _represent(self, text: str) -> tuple[dict[str, float], np.ndarray | None]:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        toks = tokens(text)
        sparse: dict[str, float] = {}
        for t in toks:  # words the catalog never used still match themselves (rarest idf)
            sparse[t] = sparse.get(t, 0.0) + 1.0
        for t in sparse:
            j = self._vocab.get(t)
            sparse[t] = (1.0 + np.log(sparse[t])) * (
                self._idf[j] if j is not None else self._max_idf
            )
        norm = float(np.sqrt(sum(v * v for v in sparse.values()))) or 1.0
        sparse = {j: v / norm for j, v in sparse.items()}
        dense = None
        if self._wv:
            vs = [self._wv[t] for t in toks if t in self._wv]
            if vs:
                m = np.mean(vs, axis=0)
                n = float(np.linalg.norm(m))
                dense = m / n if n > 0 else None
        if len(self._cache) < 200_000:
            self._cache[text] = (sparse, dense)
        return sparse, dense

    def similarity(self, a: str, b: str) -> float:
        sa, da = self._represent(a)
        sb, db = self._represent(b)
        lex = _dot(sa, sb)
        if self.w2v_weight and da is not None and db is not None:
            return (1 - self.w2v_weight) * lex + self.w2v_weight * max(0.0, float(da @ db))
        return lex

    def score_texts(self, interests: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Weighted mean over the interests of the similarity to each text (``similarity``,
        computed for all texts at once)."""
        if not interests or not texts:
            return np.zeros(len(texts))
        weights = _weights(len(interests))
        if len(texts) <= 3:  # too few for arrays to pay off: the same sums in floats
            vals = [0.0] * len(texts)
            for w, interest in zip(weights.tolist(), interests, strict=True):
                if interest:
                    for j, t in enumerate(texts):
                        vals[j] += w * self.similarity(interest, t)
            return np.array(vals)
        out = np.zeros(len(texts))
        reps = [self._represent(t) for t in texts]
        dense = has_dense = None
        if self.w2v_weight:
            has_dense = np.array([d is not None for _, d in reps])
            if has_dense.any():
                zero = np.zeros(self.vector_size)
                dense = np.stack([zero if d is None else d for _, d in reps])
        for w, interest in zip(weights, interests, strict=True):
            if not interest:
                continue
            si, di = self._represent(interest)
            lex = np.array([_dot(si, st) for st, _ in reps])
            if dense is not None and di is not None:
                cos = np.maximum(0.0, dense @ di)
                lex = np.where(has_dense, (1 - self.w2v_weight) * lex + self.w2v_weight * cos, lex)
            out += w * lex
        return out

    def match(self, interests: Sequence[str], selling_points: Sequence) -> np.ndarray:
        """Scores (higher = closer) of each selling point (or plain text) to the
        recipient's interests."""
        texts = [getattr(sp, "text", sp) for sp in selling_points]
        return self.score_texts(interests, texts)
