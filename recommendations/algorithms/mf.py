"""Matrix factorization for implicit feedback: ALS with conjugate gradient, and BPR.

Both learn a vector per user and per item; a user's score for an item is the dot product
(plus an item bias for BPR), so scoring every customer is one matrix product in blocks.

ALS (Hu, Koren & Volinsky 2008, "Collaborative Filtering for Implicit Feedback Datasets")
minimises  Σ_ui c_ui (p_ui − x_u·y_i)² + λ (‖X‖² + ‖Y‖²)  over *all* user×item pairs, with
preference p_ui = 1 where the user interacted and 0 elsewhere, and confidence
c_ui = 1 + α·r_ui ("linear"), 1 + α·log(1 + r_ui/ε) ("log") or α·r_ui ("proportional", as the
`implicit` library does) — and 1 for pairs never seen.
Each half-sweep fixes one side and solves, per user, (YᵀY + λI + Yᵀ(C_u − I)Y) x_u = YᵀC_u p_u.
Following Takács, Pilászy & Tikk (2011), the systems are not solved exactly: a few conjugate
gradient steps warm-started from the previous factors are as good and much cheaper. All
users are solved at once, vectorised: YᵀY is shared, and the sparse part of A·x is a
row-wise dot over the nonzeros (gathered factors) summed back per user, O(nnz·f) per step.
The nonzeros are processed in chunks small enough to stay in cache, on a thread per core
(numpy and BLAS release the GIL); BLAS itself is held to one thread meanwhile, because
nested threading on a busy machine is far slower. Users are independent, so the result does
not depend on the thread count or timing.

BPR (Rendle et al. 2009, "BPR: Bayesian Personalized Ranking from Implicit Feedback")
maximises Σ log σ(x_u·y_i + b_i − x_u·y_j − b_j) over sampled triples (user, item the user
has, item the user has not), by vectorised mini-batch SGD: each batch's gradients are summed
per row and applied at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from scipy import sparse

from .base import Dataset, Progress, Recommender, TopK, one_blas_thread, topk_rows

# Nonzeros per chunk of the CG solve: the chunk's gathered factors (nnz × f float32, 4 MB at
# f = 64) and temporaries stay in the L2/L3 caches.
CHUNK_NNZ = 16_384
CHUNK_ROWS = 4_096
# How interaction weights r become confidences c (see ALS).
CONFIDENCE = ("linear", "log", "proportional")
# Score buffer per thread when recommending (rows × items float32), also cache-sized.
SCORE_BUFFER_BYTES = 16 * 1024 * 1024


def worker_count() -> int:
    """Threads to use: the CPUs this process may run on (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


@contextmanager
def _parallel(workers: int):
    """A ``map`` over a thread pool with BLAS single-threaded inside (no oversubscription)."""
    with one_blas_thread():
        if workers <= 1:
            yield lambda fn, args: list(map(fn, args))
        else:
            with ThreadPoolExecutor(workers) as pool:
                yield lambda fn, args: list(pool.map(fn, args))


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _chunks(indptr: np.ndarray, nnz: int = CHUNK_NNZ, rows: int = CHUNK_ROWS) -> list:
    """[(lo, hi)] row ranges of about ``nnz`` nonzeros and at most ``rows`` rows each."""
    n = len(indptr) - 1
    bounds = [0]
    while bounds[-1] < n:
        lo = bounds[-1]
        hi = int(np.searchsorted(indptr, indptr[lo] + nnz, side="right")) - 1
        bounds.append(min(max(hi, lo + 1), lo + rows, n))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


# ------------------------------------------------------------------------------ ALS solve


def gram(factors: np.ndarray, regularization: float) -> np.ndarray:
    """FᵀF + λI in float32 (accumulated in float64)."""
    f64 = factors.astype(np.float64, copy=False)
    g = f64.T @ f64
    g[np.diag_indices_from(g)] += regularization
    return g.astype(np.float32)


def least_squares_cg(
    confidence: sparse.csr_matrix,
    other: np.ndarray,
    start: np.ndarray,
    regularization: float,
    steps: int = 3,
    workers: int = 1,
    chunk_nnz: int = CHUNK_NNZ,
) -> np.ndarray:
    """One ALS half-sweep by conjugate gradient: for every row u of ``confidence`` (CSR,
    rows × cols, values c_ui > 0 at the interactions), ``steps`` CG steps from ``start[u]``
    towards the solution of (OᵀO + λI + Oᵀ(C_u − I)O) x = Oᵀ C_u p_u, where O = ``other``
    (cols × f). Rows without interactions get x = 0. Returns a new (rows × f) float32 array.
    """
    other = np.ascontiguousarray(other, dtype=np.float32)
    out = np.array(start, dtype=np.float32, copy=True)
    g = gram(other, regularization)
    indptr, indices, conf = confidence.indptr, confidence.indices, confidence.data
    counts = np.diff(indptr)
    out[counts == 0] = 0.0

    def solve(bounds: tuple[int, int]) -> None:
        lo, hi = bounds
        present = lo + np.flatnonzero(counts[lo:hi])
        if len(present) == 0:
            return
        s, e = indptr[lo], indptr[hi]
        gathered = other[indices[s:e]]
        c = conf[s:e]
        extra = c - np.float32(1.0)  # the (C_u − I) part of A
        local = np.concatenate(([0], np.cumsum(counts[present])))
        owner = np.repeat(np.arange(len(present)), counts[present])
        # Segment sums as a sparse (rows × nonzeros) product over the gathered factors.
        summer = sparse.csr_matrix(
            (c, np.arange(e - s), local), shape=(len(present), e - s), dtype=np.float32
        )
        b = summer @ gathered

        def times_a(v: np.ndarray) -> np.ndarray:
            summer.data = extra * _rowdot(gathered, v[owner])
            return v @ g + summer @ gathered

        x = out[present]
        r = b - times_a(x)
        p = r.copy()
        rs = _rowdot(r, r)
        for _ in range(steps):
            ap = times_a(p)
            pap = _rowdot(p, ap)
            alpha = np.divide(rs, pap, out=np.zeros_like(rs), where=pap > 0)
            x += alpha[:, None] * p
            r -= alpha[:, None] * ap
            rs_new = _rowdot(r, r)
            beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 1e-20)
            p = r + beta[:, None] * p
            rs = rs_new
        out[present] = x

    with _parallel(workers) as run:
        run(solve, _chunks(indptr, chunk_nnz))
    return out


def least_squares_exact(
    confidence: sparse.csr_matrix, other: np.ndarray, regularization: float
) -> np.ndarray:
    """The exact per-row solution of the same normal equations (float64, one dense solve
    per row): the reference the CG half-sweep is tested against; fine for small problems."""
    other = np.asarray(other, dtype=np.float64)
    g = gram(other, regularization).astype(np.float64)
    out = np.zeros((confidence.shape[0], other.shape[1]))
    for u in range(confidence.shape[0]):
        lo, hi = confidence.indptr[u], confidence.indptr[u + 1]
        if lo == hi:
            continue
        o = other[confidence.indices[lo:hi]]
        c = confidence.data[lo:hi].astype(np.float64)
        a = g + (o.T * (c - 1.0)) @ o
        out[u] = np.linalg.solve(a, o.T @ c)
    return out.astype(np.float32)


def als_loss(
    confidence: sparse.csr_matrix,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    regularization: float,
) -> float:
    """Σ_ui c_ui (p_ui − x_u·y_i)² + λ(‖X‖² + ‖Y‖²) over all pairs, without forming them:
    Σ_all s² = ⟨XᵀX, YᵀY⟩, corrected on the nonzeros."""
    x = user_factors.astype(np.float64)
    y = item_factors.astype(np.float64)
    total = float(np.sum((x.T @ x) * (y.T @ y)))
    coo = confidence.tocoo()
    for lo in range(0, coo.nnz, 1 << 18):
        rows, cols = coo.row[lo : lo + (1 << 18)], coo.col[lo : lo + (1 << 18)]
        s = _rowdot(x[rows], y[cols])
        c = coo.data[lo : lo + (1 << 18)].astype(np.float64)
        total += float(np.sum(c * (1.0 - s) ** 2 - s**2))
    return total + regularization * float(np.sum(x * x) + np.sum(y * y))


# ------------------------------------------------------------------------------ models


class FactorModel(Recommender):
    """Shared by ALS and BPR: scores are user_factors @ item_factorsᵀ (+ item_bias)."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray | None = None

    def _score_block(self, users: np.ndarray) -> np.ndarray:
        scores = self.user_factors[users] @ self.item_factors.T
        if self.item_bias is not None:
            scores += self.item_bias
        return scores

    def recommend(
        self,
        users: np.ndarray | Sequence[int],
        k: int = 10,
        *,
        exclude: sparse.csr_matrix | None | bool = True,
        allowed: np.ndarray | None = None,
        block_size: int = 2048,
    ) -> TopK:
        """As `Recommender.recommend`, on a thread per core: each thread scores blocks of
        users into its own cache-sized buffer and takes the top k from it."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        mask = self._excluded(exclude)
        n_items = self.item_factors.shape[0]
        items_t = np.ascontiguousarray(self.item_factors.T)
        never = None if allowed is None else np.flatnonzero(~np.asarray(allowed, dtype=bool))
        rows = max(16, min(block_size, SCORE_BUFFER_BYTES // (4 * max(n_items, 1))))
        out_items = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        local = threading.local()

        def work(start: int) -> None:
            block = users[start : start + rows]
            buffer = getattr(local, "buffer", None)
            if buffer is None:
                buffer = local.buffer = np.empty((rows, n_items), dtype=np.float32)
            scores = buffer[: len(block)]
            np.matmul(self.user_factors[block], items_t, out=scores)
            if self.item_bias is not None:
                scores += self.item_bias
            if never is not None:
                scores[:, never] = -np.inf
            if mask is not None:
                r, c = _row_entries(mask, block)
                scores[r, c] = -np.inf
            top = topk_rows(scores, k)
            out_items[start : start + len(block)] = top.items
            out_scores[start : start + len(block)] = top.scores

        with _parallel(worker_count()) as run:
            run(work, range(0, len(users), rows))
        return TopK(out_items, out_scores)

    def similar_items(self, items: np.ndarray | Sequence[int], k: int = 10) -> TopK:
        """Items whose factor vectors are closest in cosine (itself and ≤ 0 excluded)."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        unit = _unit_rows(self.item_factors)
        sims = unit[items] @ unit.T
        sims[np.arange(len(items)), items] = -np.inf
        sims[sims <= 0] = -np.inf
        return topk_rows(sims, k)

    def _history_weights(self, user: int, history: np.ndarray, item: int) -> np.ndarray:
        """Default: cosine between the item's factors and each history item's."""
        unit = _unit_rows(self.item_factors[np.append(history, item)])
        return unit[:-1] @ unit[-1]

    def explain(self, user: int, item: int, n: int = 2) -> list[tuple[int, float]]:
        self._check_fitted()
        history = self.data.matrix[user].indices
        if len(history) == 0:
            return []
        weights = self._history_weights(user, history, item)
        order = np.argsort(-weights, kind="stable")[:n]
        return [(int(history[i]), float(weights[i])) for i in order if weights[i] > 0]


class ALS(FactorModel):
    """Implicit-feedback ALS with conjugate-gradient half-sweeps (see the module docstring).

    factors: vector length; regularization: λ (not scaled by counts, as in `implicit`);
    alpha: confidence weight; confidence: "linear" (c = 1 + α·r, Hu et al.), "log"
    (1 + α·log(1 + r/ε)) or "proportional" (α·r, the convention of the `implicit` library,
    so its tuned parameters carry over; α·r < 1 weighs a pair below an unseen one);
    epsilon: ε of the log form; iterations: full sweeps (users then items); cg_steps: CG
    steps per half-sweep.
    """

    name = "als"
    defaults = {
        "factors": 64,
        "regularization": 10.0,
        "alpha": 2.0,
        "confidence": "linear",
        "epsilon": 1.0,
        "iterations": 15,
        "cg_steps": 3,
    }
    space = {
        "factors": [32, 64, 128],
        "regularization": ("log", 1e-3, 100.0),
        "alpha": ("log", 1.0, 100.0),
        "confidence": list(CONFIDENCE),
        "iterations": ("int", 5, 25),
    }

    def confidence_matrix(self, matrix: sparse.spmatrix) -> sparse.csr_matrix:
        """CSR of c_ui on the positive interactions (weights ≤ 0 are dropped)."""
        m = sparse.csr_matrix(matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        m.data[m.data < 0] = 0
        m.eliminate_zeros()
        m.sort_indices()
        alpha = np.float32(self.params["alpha"])
        kind = self.params["confidence"]
        if kind == "linear":
            m.data = np.float32(1.0) + alpha * m.data
        elif kind == "log":
            eps = np.float32(self.params["epsilon"])
            m.data = np.float32(1.0) + alpha * np.log1p(m.data / eps)
        elif kind == "proportional":
            m.data = alpha * m.data
        else:
            raise ValueError(f"als: confidence must be one of {CONFIDENCE}, not {kind!r}")
        return m

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        f = int(self.params["factors"])
        lam = float(self.params["regularization"])
        iterations = int(self.params["iterations"])
        steps = int(self.params["cg_steps"])
        cu = self.confidence_matrix(data.matrix)
        ci = cu.T.tocsr()
        ci.sort_indices()
        rng = np.random.default_rng(self.seed)
        x = (rng.standard_normal((data.n_users, f)) * 0.01).astype(np.float32)
        y = (rng.standard_normal((data.n_items, f)) * 0.01).astype(np.float32)
        workers = worker_count()
        with one_blas_thread():
            for it in range(iterations):
                x = least_squares_cg(cu, y, x, lam, steps, workers)
                y = least_squares_cg(ci, x, y, lam, steps, workers)
                if on_progress:
                    on_progress(it + 1, iterations)
        self.user_factors, self.item_factors = x, y
        self._confidence = cu
        self._item_gram = gram(y, lam)

    def training_loss(self) -> float:
        """The ALS objective of the fitted factors on the training data (lower is better)."""
        self._check_fitted()
        return als_loss(
            self._confidence,
            self.user_factors,
            self.item_factors,
            float(self.params["regularization"]),
        )

    def _history_weights(self, user: int, history: np.ndarray, item: int) -> np.ndarray:
        """Hu et al.'s explanation: x_u = W_u Σ_j c_uj y_j with W_u = A_u⁻¹, so the score
        y_i·x_u splits exactly into Σ_j c_uj (y_iᵀ W_u y_j), one term per history item."""
        lo, hi = self._confidence.indptr[user], self._confidence.indptr[user + 1]
        cols = self._confidence.indices[lo:hi]
        c = self._confidence.data[lo:hi].astype(np.float64)
        y = self.item_factors[cols].astype(np.float64)
        a = self._item_gram.astype(np.float64) + (y.T * (c - 1.0)) @ y
        w_yi = np.linalg.solve(a, self.item_factors[item].astype(np.float64))
        weights = dict(zip(cols.tolist(), (c * (y @ w_yi)).tolist(), strict=True))
        return np.array([weights.get(int(j), 0.0) for j in history])


class BPR(FactorModel):
    """Bayesian personalised ranking by vectorised mini-batch SGD (see the module docstring).

    factors; learning_rate; regularization (L2 on the factors and biases touched by a
    batch); epochs: passes over the interactions (one sampled triple per interaction);
    batch_size: triples per update.
    """

    name = "bpr"
    defaults = {
        "factors": 64,
        "learning_rate": 0.05,
        "regularization": 0.01,
        "epochs": 30,
        "batch_size": 1024,
    }
    space = {
        "factors": [32, 64, 128],
        "learning_rate": ("log", 0.005, 0.2),
        "regularization": ("log", 1e-5, 0.1),
        "epochs": ("int", 10, 60),
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        f = int(self.params["factors"])
        lr = np.float32(self.params["learning_rate"])
        reg = np.float32(self.params["regularization"])
        epochs = int(self.params["epochs"])
        batch = int(self.params["batch_size"])
        m = sparse.csr_matrix(data.matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        m.data[m.data < 0] = 0
        m.eliminate_zeros()
        m.sort_indices()
        n_users, n_items = m.shape
        pos_users = np.repeat(np.arange(n_users), np.diff(m.indptr))
        pos_items = m.indices.astype(np.int64)
        known = pos_users * n_items + pos_items  # sorted: CSR order
        rng = np.random.default_rng(self.seed)
        # The item bias is one more item factor, paired with a user factor fixed at 1.
        x = np.ones((n_users, f + 1), dtype=np.float32)
        x[:, :f] = rng.standard_normal((n_users, f)) * 0.1
        y = np.zeros((n_items, f + 1), dtype=np.float32)
        y[:, :f] = rng.standard_normal((n_items, f)) * 0.1
        nnz = len(pos_items)
        with one_blas_thread():
            for epoch in range(epochs if nnz else 0):
                order = rng.permutation(nnz)
                users, items = pos_users[order], pos_items[order]
                negatives, valid = _negatives(users, known, n_items, rng)
                for lo in range(0, nnz, batch):
                    keep = valid[lo : lo + batch]
                    _bpr_step(
                        x,
                        y,
                        users[lo : lo + batch][keep],
                        items[lo : lo + batch][keep],
                        negatives[lo : lo + batch][keep],
                        lr,
                        reg,
                    )
                if on_progress:
                    on_progress(epoch + 1, epochs)
        # Users without interactions were never trained: zero vectors rank by item bias.
        x[np.diff(m.indptr) == 0, :f] = 0.0
        self.user_factors = np.ascontiguousarray(x[:, :f])
        self.item_factors = np.ascontiguousarray(y[:, :f])
        self.item_bias = np.ascontiguousarray(y[:, f])


def _negatives(
    users: np.ndarray, known: np.ndarray, n_items: int, rng: np.random.Generator, tries: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly drawn item per user that the user does not have (drawn again up to
    ``tries`` times); returns the items and a mask of the draws that succeeded."""
    items = rng.integers(0, n_items, len(users))
    todo = np.arange(len(users))
    for attempt in range(tries + 1):
        key = users[todo] * n_items + items[todo]
        where = np.minimum(np.searchsorted(known, key), len(known) - 1)
        todo = todo[known[where] == key]
        if attempt == tries or len(todo) == 0:
            break
        items[todo] = rng.integers(0, n_items, len(todo))
    valid = np.ones(len(users), dtype=bool)
    valid[todo] = False
    return items, valid


def _scatter_add(target: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """target[index] += values, summing repeated indices (a sparse sum-by-row product)."""
    order = np.argsort(index, kind="stable")
    index = index[order]
    first = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    summer = sparse.csr_matrix(
        (np.ones(len(index), dtype=values.dtype), order, np.append(first, len(index))),
        shape=(len(first), len(index)),
    )
    target[index[first]] += summer @ values


def _bpr_step(
    x: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    lr: np.float32,
    reg: np.float32,
) -> None:
    """One SGD step on the triples (u, i, j): ascend log σ(x_u·(y_i − y_j)) − reg·‖·‖²/2."""
    if len(u) == 0:
        return
    xu, yi, yj = x[u], y[i], y[j]
    diff = yi - yj
    z = _rowdot(xu, diff)
    g = (np.float32(1.0) / (np.float32(1.0) + np.exp(np.clip(z, -30, 30)))).astype(np.float32)
    step_x = lr * (g[:, None] * diff - reg * xu)
    step_x[:, -1] = 0.0  # the constant 1 paired with the bias
    pull = g[:, None] * xu
    _scatter_add(x, u, step_x)
    _scatter_add(
        y, np.concatenate([i, j]), lr * np.concatenate([pull - reg * yi, -pull - reg * yj])
    )


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _row_entries(matrix: sparse.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``rows``, column) of every stored entry of the given CSR rows."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, matrix.indices[starts[owner] + offsets]
