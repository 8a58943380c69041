"""Property tests: CKA is invariant to orthogonal maps, isotropic scaling and translation,
and not to a general invertible linear map."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocorr_cka import DebiasedCka, DebiasedRbfCka, LinearCka, MinibatchRbfCka, RbfCka
from neurocorr_core import Metric

METRICS: list[tuple[type[Metric], dict]] = [
    (LinearCka, {"precision": "float64"}), (DebiasedCka, {"precision": "float64"}),
    (MinibatchRbfCka, {"batch_size": 64}), (RbfCka, {}), (DebiasedRbfCka, {})]


def cka(cls, options, x, y) -> float:
    metric = cls([x.shape[1]], [y.shape[1]], **options)
    metric.update(x, y)
    return float(metric.compute()[0, 0])


def layers(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """A layer x (n, d) with unequal column scales and a layer y partly driven by x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=d)
    y = np.tanh(x @ rng.normal(size=(d, 3))) + 0.5 * rng.normal(size=(n, 3))
    return x, y, rng


def orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))  # uniformly distributed; reflections included


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 40), d=st.integers(1, 6),
       scale=st.floats(1e-3, 1e3), shift=st.floats(-100, 100))
def test_invariant_to_orthogonal_maps_isotropic_scaling_and_translation(seed, n, d, scale, shift):
    x, y, rng = layers(seed, n, d)
    moved = scale * x @ orthogonal(rng, d) + shift * rng.normal(size=d)
    for cls, options in METRICS:
        expected = cka(cls, options, x, y)
        assert abs(cka(cls, options, moved, y) - expected) < 1e-7, cls.name
        assert abs(cka(cls, options, y, moved) - expected) < 1e-7, cls.name  # either side


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 40), d=st.integers(2, 6),
       stretch=st.floats(3, 10))
def test_not_invariant_to_a_general_invertible_map(seed, n, d, stretch):
    """x M with M = Q1 diag(stretch, 1, ..., 1) Q2 (invertible, not a scaled orthogonal map):
    CKA(x, x) = 1 but CKA(x M, x) < 1 (Cauchy-Schwarz is tight only for K_xM proportional to K_x)."""
    x, _, rng = layers(seed, n, d)
    m = orthogonal(rng, d) @ np.diag([stretch] + [1.0] * (d - 1)) @ orthogonal(rng, d)
    for cls, options in METRICS:
        assert abs(cka(cls, options, x, x) - 1.0) < 1e-9, cls.name
        assert cka(cls, options, x @ m, x) < 1.0 - 1e-3, cls.name
