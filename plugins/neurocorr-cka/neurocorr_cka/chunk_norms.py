"""Linear CKA's squared Frobenius norms straight from one gathered chunk of samples.

When every sample is still in the core's one chunk buffer (``CoMoments.single_chunk``: the
common case of a probe of up to 16,384 samples), the centred blocks are ``C = S - r e f^T``
with ``S = (x-k)^T (y-k)`` the float32 product of the shifted samples (the GEMM, all the
flops) and ``r e f^T`` the float64 rank-1 centring correction. The norms |C|_F^2 are then
taken from ``S`` row panel by row panel in float64, with no float64 (n, m) accumulator: the
same numbers as the accumulating path (the accumulator held exactly ``S``, then the same
correction), with less new memory (on these VMs new memory costs up to 2 ms per MB the
first time it is used) and no pass adding products into accumulators.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurocorr_core import backend

#: Rows of the float64 panel in which a block is corrected and squared (2 MB at 1,024 columns).
PANEL_ROWS = 256

Side = tuple[np.ndarray, np.ndarray, np.ndarray]


def chunk_norms(chunk: Sequence[Side], slices_a: Sequence[slice], slices_b: Sequence[slice]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """|C_lm|_F^2 (L_a, L_b), |C_ll|_F^2 (L_a,) and |C_mm|_F^2 (L_b,) from one chunk, or None
    where a product is small enough to run in float64 (``backend.SMALL_PRODUCT``): those keep
    the accumulating path, which is exact for them."""
    (x, e_x, _), (y, e_y, _) = chunk
    widths = [s.stop - s.start for s in (*slices_a, *slices_b)]
    if x.shape[1] * y.shape[1] <= backend.SMALL_PRODUCT or min(widths) ** 2 <= backend.SMALL_PRODUCT:
        return None
    rows = x.shape[0]
    product = np.empty(max(x.shape[1] * y.shape[1], max(widths) ** 2), dtype=np.float32)  # reused
    panel = np.empty(PANEL_ROWS * max(x.shape[1], y.shape[1]))
    cross = np.empty((len(slices_a), len(slices_b)))
    s = _product(product, x, y)
    for i, sl in enumerate(slices_a):
        cross[i] = _norms(s[sl], rows * e_x[sl], e_y, slices_b, panel)
    own = [np.array([_own_norm(_product(product, a[:, sl], a[:, sl]), rows * e[sl], e[sl], panel)
                     for sl in slices]) for a, e, slices in ((x, e_x, slices_a), (y, e_y, slices_b))]
    return cross, own[0], own[1]


def _product(out: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left^T right`` in float32 into the front of ``out`` (BLAS threads as configured;
    numpy runs a self-product as SYRK)."""
    return np.matmul(left.T, right, out=out[:left.shape[1] * right.shape[1]].reshape(left.shape[1], -1))


def _norms(s: np.ndarray, a: np.ndarray, f: np.ndarray, columns: Sequence[slice], panel: np.ndarray
           ) -> np.ndarray:
    """For each column slice c: sum of (s - a f^T)[:, c]^2, in float64 by panels of rows, on
    one thread (a pass over a panel in cache is bound by memory; on a busy machine two BLAS
    threads cost 14x the CPU time of one here)."""
    total = np.zeros(len(columns))
    with backend.single_thread():
        for r0 in range(0, s.shape[0], PANEL_ROWS):
            block = s[r0:r0 + PANEL_ROWS]
            p = panel[:block.size].reshape(block.shape)
            np.multiply.outer(a[r0:r0 + PANEL_ROWS], f, out=p)
            np.subtract(block, p, out=p)  # float32 - float64: exact, then squared in float64
            total += [np.einsum("ij,ij->", p[:, c], p[:, c]) for c in columns]
    return total


def _own_norm(s: np.ndarray, a: np.ndarray, f: np.ndarray, panel: np.ndarray) -> float:
    """|s - a f^T|_F^2 where both are symmetric (a layer's own block, ``a = rows * f``): each
    panel of rows from its diagonal on, the part right of the diagonal counted twice (half
    the work of :func:`_norms`)."""
    total = 0.0
    with backend.single_thread():
        for r0 in range(0, s.shape[0], PANEL_ROWS):
            block = s[r0:r0 + PANEL_ROWS, r0:]
            p = panel[:block.size].reshape(len(block), -1)
            np.multiply.outer(a[r0:r0 + PANEL_ROWS], f[r0:], out=p)
            np.subtract(block, p, out=p)
            diagonal = p[:, :len(block)]
            total += 2 * np.einsum("ij,ij->", p, p) - np.einsum("ij,ij->", diagonal, diagonal)
    return total
