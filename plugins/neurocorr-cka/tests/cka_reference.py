"""Naive references, written from the textbook formulas with explicit n x n Gram matrices."""

from __future__ import annotations

import itertools

import numpy as np


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 - the paper's names
    """Gretton et al.'s HSIC: tr(K H L H) / (n-1)^2 with H = I - 11'/n."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012), eq. 5: the unbiased HSIC estimator, from K~ and L~ (zero diagonals)."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return float(np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
                 - 2.0 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


def hsic_u_statistic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """The same estimator as a brute-force U-statistic over ordered 4-tuples of distinct
    samples: mean of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv (O(n^4); tiny n only)."""
    n = k.shape[0]
    total, count = 0.0, 0
    for t, u, v, w in itertools.permutations(range(n), 4):
        total += k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
        count += 1
    return total / count


def cka(k: np.ndarray, l: np.ndarray, hsic) -> float:  # noqa: E741
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def linear_gram(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def rbf_gram_naive(x: np.ndarray, fraction: float) -> np.ndarray:
    """exp(-d_ij^2 / (2 sigma^2)), sigma = fraction * median of d_ij over pairs i < j, by loops."""
    n = x.shape[0]
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d[i, j] = np.sqrt(np.sum((x[i] - x[j]) ** 2))
    sigma = fraction * np.median([d[i, j] for i in range(n) for j in range(i + 1, n)])
    return np.exp(-(d ** 2) / (2 * sigma ** 2))


def table(x: np.ndarray, y: np.ndarray, sizes_a, sizes_b, gram, hsic) -> np.ndarray:
    """The layer x layer table of CKA by the naive formulas."""
    ia, ib = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    return np.array([[cka(gram(x[:, ia[i]:ia[i + 1]]), gram(y[:, ib[j]:ib[j + 1]]), hsic)
                      for j in range(len(sizes_b))] for i in range(len(sizes_a))])
