"""EASE: an item×item linear autoencoder with a closed-form solution (Steck, WWW 2019).

B = argmin ‖X − XB‖² + λ‖B‖² subject to diag(B) = 0, which is
B = I − P · diagMat(1 / diag(P)) with P = (XᵀX + λI)⁻¹ — one symmetric positive definite
inverse (a Cholesky factorisation, LAPACK potrf/potri) of an n_items × n_items matrix. It
needs O(n_items²) memory, so the model refuses catalogs above ``max_items``.

``dropout`` > 0 adds the emphasis of Steck's denoising variant (EDLAE, NeurIPS 2020):
λ becomes λ + p/(1 − p) · diag(XᵀX) per item, which regularises popular items more.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from .base import Dataset, Progress
from .neighbors import ItemItemModel
from .similarity import interaction_matrix, user_profiles

# EASE holds dense items × items matrices (about 2 × n_items² numbers while fitting). Above
# this many items no other code picks it on its own — the product's automatic choice, the
# hybrid's collaborative component, the ranker's candidate generator — and rp3beta or
# item-kNN stand in; asking for EASE by name still works up to its own ``max_items``.
AUTO_MAX_ITEMS = 20_000


def ease_allowed(n_items: int) -> bool:
    """Whether EASE may be chosen automatically for a catalog of ``n_items`` items."""
    return n_items <= AUTO_MAX_ITEMS


class EASE(ItemItemModel):
    """EASE^R. Params: l2 (λ), dropout (EDLAE emphasis, 0 = plain EASE), values (binary /
    log1p / count), dtype ("float32" or "float64"; float32 halves memory and time and
    ranks the same in practice), max_items (refuse larger catalogs: the fit holds about
    2 × n_items² numbers), half_life_days (each purchase counts 0.5 ** (age /
    half_life_days) in XᵀX, age from the data's last day; needs events; None = off),
    profile_half_life_days (at score time, older purchases of a customer count less)."""

    name = "ease"
    defaults: ClassVar[dict[str, Any]] = {
        "l2": 250.0,
        "dropout": 0.0,
        "values": "binary",
        "dtype": "float32",
        "max_items": 30_000,
        "half_life_days": 60.0,
        "profile_half_life_days": None,
    }
    space: ClassVar[dict[str, Any]] = {
        "l2": ("log", 30.0, 3000.0),
        "dropout": [0.0, 0.1, 0.25],
        "values": ["binary", "log1p"],
        "half_life_days": [None, 30.0, 60.0, 90.0, 180.0],
        "profile_half_life_days": [None, 30.0, 90.0],
    }

    def _fit(self, data: Dataset, on_progress: Progress | None) -> None:
        p = self.params
        n_items = data.n_items
        if n_items > int(p["max_items"]):
            raise ValueError(
                f"ease: {n_items} items is more than max_items={p['max_items']} "
                f"(the model needs a dense {n_items}×{n_items} matrix); use item_knn or "
                "rp3beta, or raise max_items if the memory is there"
            )
        values = interaction_matrix(data, p["values"], p["half_life_days"])
        self.item_matrix = ease_weights(
            values, l2=float(p["l2"]), dropout=float(p["dropout"]), dtype=p["dtype"]
        )
        self.profiles = user_profiles(data, values, p["profile_half_life_days"])
        if on_progress is not None:
            on_progress(1, 1)


def ease_weights(
    matrix: sparse.csr_matrix, *, l2: float, dropout: float = 0.0, dtype: str = "float32"
) -> np.ndarray:
    """Dense EASE weight matrix B (n_items × n_items, zero diagonal) of a users×items matrix."""
    if dtype not in ("float32", "float64"):
        raise ValueError("dtype must be 'float32' or 'float64'")
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    x = sparse.csr_matrix(matrix, dtype=np.float64 if dtype == "float64" else np.float32)
    gram = np.asarray((x.T @ x).toarray(), dtype=dtype, order="F")
    n = gram.shape[0]
    diag = np.arange(n)
    emphasis = gram[diag, diag] * (dropout / (1.0 - dropout))
    gram[diag, diag] += l2 + emphasis
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
    factor, info = potrf(gram, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: Cholesky failed (info={info}); increase l2")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: inverse failed (info={info}); increase l2")
    # potri fills the upper triangle only: mirror it, in blocks to stay in place.
    step = 1024
    for start in range(0, n, step):
        stop = min(n, start + step)
        inverse[stop:, start:stop] = inverse[start:stop, stop:].T
        block = inverse[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        block[lower] = block.T[lower]
    # P is symmetric now, so its transpose — a C-ordered view of the same Fortran-ordered
    # memory — is P too: scale that view instead of copying n² numbers into C order.
    weights = inverse.T
    weights /= -weights[diag, diag][None, :]
    weights[diag, diag] = 0.0
    return weights
