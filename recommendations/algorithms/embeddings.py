"""prod2vec: Word2Vec over customers' purchase sequences (Grbovic et al. 2015, "E-commerce
in Your Inbox"), scored as in `vectors`.

Sentences. One sentence per customer (``sentences="customer"``, the default): their items
in time order, basket after basket (within a basket, the order of the log). The context
window then spans the current basket and the neighbouring ones, so the vectors learn both
"bought together" and "bought next". ``sentences="basket"`` makes each basket a sentence
(pure complementarity, nothing learned across visits). Repeat purchases stay in the
sequence. Sentences longer than gensim's batch limit (10,000 tokens) are cut in pieces.

Tokens are the dense item indices as decimal strings; training runs on one worker thread
with the model's seed, which makes the vectors reproducible (gensim 4 draws its initial
vectors from numpy's seeded generator and its sampling from the seeded Cython RNG; nothing
depends on PYTHONHASHSEED with these tokens).

Scoring: the user vector is the recency-weighted mean of their items' (unit) vectors and an
item's score its cosine with it. ``output_vectors=True`` compares the profile with the
output ("context") vectors of negative sampling instead — the in→out score Word2Vec is
trained on, which ranks "what comes next" rather than "what is alike". Items below
``min_count`` get no vector and score 0. Similar items: cosine of the input vectors.

Parameters worth tuning (Caselles-Dupré et al. 2018, "Word2vec applied to
recommendation: hyperparameters matter"): ns_exponent (the shape of the negative-sampling
distribution; popular items are sampled less below 0.75), window, epochs, sample. The
defaults come from the Online Retail validation split (last day of the training data):
CBOW with in→out scoring and ns_exponent 0 (uniform negatives) scored NDCG@10 0.082 there,
skip-gram 0.070 at twice the fit time, and plain in–in cosine only 0.012 — item vectors
learn "alike", which is not what a customer buys next.
"""

from __future__ import annotations

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from .base import Dataset, Progress
from .vectors import VectorModel, normalize_rows

# gensim's Cython routines silently truncate longer sentences.
MAX_SENTENCE = 10_000


def purchase_sentences(data: Dataset, by: str = "customer") -> list[list[str]]:
    """Token sentences from the event log (sorted by user, time): one per customer
    (``by="customer"``) or one per basket (``by="basket"``); tokens = item indices as
    strings; single-token sentences are dropped (they teach nothing)."""
    if by not in ("customer", "basket"):
        raise ValueError(f"sentences must be 'customer' or 'basket', not {by!r}")
    events = data.events
    items = events["item"].to_numpy(dtype=np.int64)
    key = events["user"].to_numpy(dtype=np.int64)
    if by == "basket":
        # Baskets are contiguous per user in time order; key on (user, basket).
        key = key * (int(events["basket"].max()) + 2) + events["basket"].to_numpy() + 1
    breaks = np.flatnonzero(np.diff(key)) + 1
    tokens = items.astype(str)
    out: list[list[str]] = []
    for part in np.split(tokens, breaks):
        for start in range(0, len(part), MAX_SENTENCE):
            piece = part[start : start + MAX_SENTENCE]
            if len(piece) > 1:
                out.append(piece.tolist())
    return out


class _EpochProgress(CallbackAny2Vec):
    def __init__(self, total: int, on_progress: Progress) -> None:
        self.done, self.total, self.on_progress = 0, total, on_progress

    def on_epoch_end(self, model: Word2Vec) -> None:
        self.done += 1
        self.on_progress(self.done, self.total)


def train_word2vec(
    sentences: list[list[str]],
    *,
    seed: int,
    on_progress: Progress | None = None,
    **params,
) -> Word2Vec | None:
    """A Word2Vec model trained deterministically (one worker, seeded) on ``sentences``.
    ``params`` are gensim's (vector_size, window, epochs, negative, min_count, sg, …).

    None when no token reaches ``min_count`` (few or short sentences, e.g. a small
    validation split): there is nothing to learn, and gensim would raise RuntimeError."""
    callbacks = [_EpochProgress(int(params["epochs"]), on_progress)] if on_progress else []
    model = Word2Vec(workers=1, seed=seed, hs=0, callbacks=callbacks, **params)
    model.build_vocab(sentences)
    if not model.wv.index_to_key:
        return None
    model.train(
        sentences,
        total_examples=model.corpus_count,
        total_words=model.corpus_total_words,
        epochs=model.epochs,
        start_alpha=model.alpha,
        end_alpha=model.min_alpha,
        compute_loss=model.compute_loss,
        callbacks=callbacks,
    )
    return model


def token_matrix(
    model: Word2Vec | None, n: int, *, output: bool = False, size: int = 0
) -> np.ndarray:
    """(n × vector_size) float32: row i = the vector of token str(i) (zeros if absent).
    output=True: the negative-sampling output vectors (syn1neg) instead. model=None (no
    vocabulary): all zeros, ``size`` wide."""
    if model is None:
        return np.zeros((n, size), dtype=np.float32)
    out = np.zeros((n, model.wv.vector_size), dtype=np.float32)
    keys = np.asarray([int(k) for k in model.wv.index_to_key], dtype=np.int64)
    if len(keys):
        source = model.syn1neg if output else model.wv.vectors
        out[keys] = source[: len(keys)]
    return out


class Prod2Vec(VectorModel):
    """Word2Vec (negative sampling) item vectors from purchase sequences; see the module
    docstring. half_life_days: recency weighting of the user profile (None = plain mean)."""

    name = "prod2vec"
    defaults = {
        "vector_size": 64,
        "window": 10,
        "epochs": 15,
        "negative": 10,
        "ns_exponent": 0.0,
        "sample": 1e-3,
        "min_count": 1,
        "sg": 0,
        "sentences": "customer",
        "output_vectors": True,
        "half_life_days": 30.0,
    }
    space = {
        "vector_size": [32, 64, 128],
        "window": ("int", 2, 20),
        "epochs": ("int", 5, 20),
        "negative": ("int", 3, 20),
        "ns_exponent": ("float", -0.5, 1.0),
        "sample": ("log", 1e-5, 1e-2),
        "min_count": [1, 2, 3, 5],
        "sg": [0, 1],
        "sentences": ["customer", "basket"],
        "output_vectors": [False, True],
        "half_life_days": [3.0, 10.0, 30.0, 90.0, 365.0, None],
    }
    needs = ("events",)

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        sentences = purchase_sentences(data, p["sentences"])
        # Not kept: scoring needs only the vectors (the gensim model would double the
        # artifact). No vocabulary (min_count above every item's count): zero vectors, so
        # every item scores 0 and the lists fall back to popularity.
        model = train_word2vec(
            sentences,
            seed=self.seed,
            on_progress=on_progress,
            vector_size=int(p["vector_size"]),
            window=int(p["window"]),
            epochs=int(p["epochs"]),
            negative=int(p["negative"]),
            ns_exponent=float(p["ns_exponent"]),
            sample=float(p["sample"]),
            min_count=int(p["min_count"]),
            sg=int(p["sg"]),
        )
        size = int(p["vector_size"])
        self.item_vectors = normalize_rows(token_matrix(model, data.n_items, size=size))
        self.target_vectors = (
            normalize_rows(token_matrix(model, data.n_items, output=True, size=size))
            if p["output_vectors"]
            else None
        )
        self._set_profiles(data, p["half_life_days"])
