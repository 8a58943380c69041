"""RBF kernels: Kornblith et al.'s full-sample Gram matrices (median over the whole n x n
matrix of squared distances) and the minibatch kernel and unbiased HSIC of Nguyen et al."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rbf_gram(x: np.ndarray, bandwidth: float) -> np.ndarray:
    """The RBF Gram matrix exp(-|x_i - x_j|^2 / (2 sigma^2)) of ``x`` (b, features), float64 (b, b).

    sigma = ``bandwidth`` times the median Euclidean distance over the pairs i < j. If more
    than half of the pairs coincide the median of the nonzero distances is used; if every
    sample is the same the kernel is constant (ones), which carries no dependence (HSIC 0).
    """
    xc = np.asarray(x, dtype=np.float64)
    xc = xc - xc.mean(axis=0)  # distances do not change; the Gram trick below loses less
    norms = np.einsum("ij,ij->i", xc, xc)
    sq = norms[:, None] + norms[None, :] - 2.0 * (xc @ xc.T)
    np.maximum(sq, 0.0, out=sq)
    np.fill_diagonal(sq, 0.0)
    dist = np.sqrt(sq[np.triu_indices(sq.shape[0], k=1)])
    median = float(np.median(dist)) if dist.size else 0.0
    if median == 0.0:
        nonzero = dist[dist > 0]
        if nonzero.size == 0:
            return np.ones_like(sq)
        median = float(np.median(nonzero))
    sigma = bandwidth * median
    return np.exp(-sq / (2.0 * sigma * sigma))


def squared_distances(x: np.ndarray) -> np.ndarray:
    """|x_i - x_j|^2 for all pairs of rows of ``x`` (n, features): float64 (n, n), zero
    diagonal, no negative entry, 0 for identical rows (values under 1e-12 of |x_i|^2 + |x_j|^2
    are set to 0: the Gram trick cannot resolve them). Rows are centred first: distances do not change, and the
    Gram trick |a|^2 + |b|^2 - 2 a.b cancels less."""
    xc = np.asarray(x, dtype=np.float64)
    xc = xc - xc.mean(axis=0)
    norms = np.einsum("ij,ij->i", xc, xc)
    sq = xc @ xc.T
    sq *= -2.0
    sq += norms[:, None]
    sq += norms[None, :]
    # below the Gram trick's rounding (identical rows, which must give exactly 0): 0
    tol = norms[:, None] + norms[None, :]
    tol *= 1e-12
    sq[sq <= tol] = 0.0
    np.fill_diagonal(sq, 0.0)
    return sq


def rbf_gram_full(x: np.ndarray, bandwidth: float) -> np.ndarray:
    """Kornblith et al. (2019)'s RBF Gram matrix of ``x`` (n, features), float64 (n, n).

    exp(-d_ij^2 / (2 sigma^2)) with sigma^2 = bandwidth^2 * median of d_ij^2 over the whole
    n x n matrix, its zero diagonal and both (i, j) and (j, i) included, as their code takes
    it (so sigma is ``bandwidth`` times the median distance in their sense). If that median is
    0 (more than half of the entries coincide) the median of the nonzero d_ij^2 is used; if
    every sample is the same the kernel is constant (ones), so its centred Gram matrix is 0.
    """
    sq = squared_distances(x)
    median = float(np.median(sq))
    if median == 0.0:
        nonzero = sq[sq > 0]
        if nonzero.size == 0:
            sq[:] = 1.0
            return sq
        median = float(np.median(nonzero))
    sq *= -1.0 / (2.0 * bandwidth * bandwidth * median)
    return np.exp(sq, out=sq)


def centred_gram(gram: np.ndarray, unbiased: bool) -> np.ndarray:
    """H K H (``unbiased=False``) or the U-centred K of Szekely & Rizzo (2014), in place.

    For U-centring, with K~ = K with a zero diagonal: K~_ij - r_i - r_j (i != j), 0 on the
    diagonal, r_i = (K~1)_i / (n-2) - 1'K~1 / (2 (n-1)(n-2)); then <U(K), U(L)> / (n (n-3))
    is the unbiased HSIC_1 of Song et al. (2012). H K H gives tr(KHLH) = <HKH, HLH>.
    """
    n = gram.shape[0]
    if unbiased:
        np.fill_diagonal(gram, 0.0)
        means = gram.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
    else:
        means = gram.mean(axis=0)
        means -= means.mean() / 2
    gram -= means[:, None]
    gram -= means[None, :]
    if unbiased:
        np.fill_diagonal(gram, 0.0)
    return gram


def unbiased_hsic(grams_a: Sequence[np.ndarray], grams_b: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSIC_1 of Song et al. (2012) for every pair of Gram matrices of one minibatch.

    ``grams_a``: L_a matrices (b, b); ``grams_b``: L_b. Returns HSIC_1(K_l, L_m) (L_a, L_b)
    and HSIC_1(K_l, K_l) (L_a,), HSIC_1(L_m, L_m) (L_b,). With K~ the Gram matrix with a
    zero diagonal: HSIC_1(K, L) = [tr(K~ L~) + 1'K~1 1'L~1 / ((b-1)(b-2))
    - 2/(b-2) 1'K~L~1] / (b (b-3)); it needs b >= 4.
    """
    flat_a, rows_a, sums_a = _zero_diagonal(grams_a)
    flat_b, rows_b, sums_b = _zero_diagonal(grams_b)
    b = grams_a[0].shape[0]

    def hsic(tr: np.ndarray, s1: np.ndarray, s2: np.ndarray, r12: np.ndarray) -> np.ndarray:
        return (tr + s1 * s2 / ((b - 1) * (b - 2)) - 2.0 / (b - 2) * r12) / (b * (b - 3))

    cross = hsic(flat_a @ flat_b.T, sums_a[:, None], sums_b[None, :], rows_a @ rows_b.T)
    own_a = hsic(np.einsum("ij,ij->i", flat_a, flat_a), sums_a, sums_a,
                 np.einsum("ij,ij->i", rows_a, rows_a))
    own_b = hsic(np.einsum("ij,ij->i", flat_b, flat_b), sums_b, sums_b,
                 np.einsum("ij,ij->i", rows_b, rows_b))
    return cross, own_a, own_b


def _zero_diagonal(grams: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened K~ (L, b*b), their row sums K~1 (L, b) and totals 1'K~1 (L,)."""
    tilde = np.stack(grams).astype(np.float64)
    idx = np.arange(tilde.shape[1])
    tilde[:, idx, idx] = 0.0
    rows = tilde.sum(axis=2)
    return tilde.reshape(tilde.shape[0], -1), rows, rows.sum(axis=1)
