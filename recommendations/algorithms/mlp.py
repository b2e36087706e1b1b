"""A small multilayer perceptron for binary labels, in numpy (the neural ranker's model).

ReLU hidden layers and a sigmoid output, trained on the log loss plus an L2 penalty
(``alpha``/2 · ‖W‖² per sample, as scikit-learn's ``MLPClassifier``) with Adam on shuffled
minibatches, for a fixed number of epochs; Glorot-uniform initial weights. The same model
as ``MLPClassifier(solver="adam")`` — without its per-minibatch validation and indexing
overhead, which made training the ranker's ~200k rows take seconds: here an epoch shuffles
the rows once and walks contiguous slices, in float32, with all parameters in one vector
for Adam, on one BLAS thread. Deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import one_blas_thread


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any z


@dataclass
class BinaryMLP:
    """hidden: hidden layer widths. alpha: L2 penalty. learning_rate: Adam's step.
    batch_size: rows per step. epochs: passes over the data. seed: weights and shuffles."""

    hidden: tuple[int, ...] = (32, 16)
    alpha: float = 1e-4
    learning_rate: float = 1e-3
    batch_size: int = 512
    epochs: int = 30
    seed: int = 0
    weights: list[np.ndarray] = field(default_factory=list, repr=False)
    biases: list[np.ndarray] = field(default_factory=list, repr=False)

    def fit(self, x: np.ndarray, y: np.ndarray) -> BinaryMLP:
        # Minibatch products are small: BLAS threads only add synchronisation (several
        # times slower on a busy machine), so training runs on one.
        with one_blas_thread():
            return self._fit(x, y)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> BinaryMLP:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        rng = np.random.default_rng(self.seed)
        sizes = [x.shape[1], *self.hidden, 1]
        shapes = [(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        shapes += [(b,) for _, b in shapes]
        # Every weight and bias is a view into one flat vector, and so is every gradient:
        # Adam then updates all parameters with a handful of whole-vector operations.
        flat = np.empty(sum(int(np.prod(s)) for s in shapes), dtype=np.float32)
        grad = np.zeros_like(flat)
        params, grads, start = [], [], 0
        for shape in shapes:
            stop = start + int(np.prod(shape))
            params.append(flat[start:stop].reshape(shape))
            grads.append(grad[start:stop].reshape(shape))
            start = stop
        n_layers = len(sizes) - 1
        self.weights, self.biases = params[:n_layers], params[n_layers:]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            # Glorot uniform; the sigmoid output layer with scikit-learn's factor 2.
            factor = 2.0 if i == n_layers - 1 else 6.0
            bound = np.sqrt(factor / sum(w.shape))
            w[...] = rng.uniform(-bound, bound, w.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)
        first, second = np.zeros_like(flat), np.zeros_like(flat)
        scratch = np.empty_like(flat)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        n = len(x)
        batch = max(1, min(int(self.batch_size), n))
        step = 0
        for _ in range(int(self.epochs)):
            order = rng.permutation(n)
            xs, ys = x[order], y[order]
            for start in range(0, n, batch):
                self._gradients(xs[start : start + batch], ys[start : start + batch], grads)
                step += 1
                rate = self.learning_rate * np.sqrt(1 - beta2**step) / (1 - beta1**step)
                first *= beta1
                first += (1 - beta1) * grad
                second *= beta2
                np.multiply(grad, grad, out=scratch)
                second += (1 - beta2) * scratch
                np.sqrt(second, out=scratch)
                scratch += eps
                np.divide(first, scratch, out=scratch)
                scratch *= np.float32(rate)
                flat -= scratch
        self.weights = [w.copy() for w in self.weights]
        self.biases = [b.copy() for b in self.biases]
        return self

    def _gradients(self, xb: np.ndarray, yb: np.ndarray, out: list[np.ndarray]) -> None:
        """Gradients of the mean log loss + L2 penalty on one minibatch into ``out``
        (weights, then biases: the order of ``weights + biases``)."""
        m = len(xb)
        n_layers = len(self.weights)
        layers = [xb]
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = layers[-1] @ w
            h += b
            np.maximum(h, 0.0, out=h)
            layers.append(h)
        delta = _sigmoid(layers[-1] @ self.weights[-1] + self.biases[-1])
        delta -= yb
        delta /= m
        for i in range(n_layers - 1, -1, -1):
            np.matmul(layers[i].T, delta, out=out[i])
            out[i] += (self.alpha / m) * self.weights[i]
            np.sum(delta, axis=0, out=out[n_layers + i])
            if i:
                delta = delta @ self.weights[i].T
                delta *= layers[i] > 0

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(label = 1) per row (float32)."""
        h = np.asarray(x, dtype=np.float32)
        with one_blas_thread():
            for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
                h = np.maximum(h @ w + b, 0.0)
            out = _sigmoid(h @ self.weights[-1] + self.biases[-1])
        return out.ravel().astype(np.float32)
