"""Full-sample RBF CKA (``cka-rbf``, ``cka-rbf-debiased``) against naive float64 Gram-matrix
formulas and the fixture values of Kornblith et al. (2019)'s code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cka_reference import cka, hsic_biased, hsic_unbiased
from neurocorr_cka import DebiasedRbfCka, MinibatchRbfCka, RbfCka, full_rbf
from neurocorr_core import NeurocorrError


def kornblith_gram_naive(x: np.ndarray, fraction: float) -> np.ndarray:
    """exp(-d_ij^2 / (2 sigma^2)), sigma^2 = fraction^2 * median of d_ij^2 over ALL n x n
    entries (diagonal zeros and both orders included, as in their notebook), by loops."""
    n = x.shape[0]
    d2 = np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(n)] for i in range(n)])
    return np.exp(-d2 / (2 * fraction ** 2 * np.median(d2)))


def fixture() -> tuple[np.ndarray, np.ndarray]:
    """The example of Kornblith et al.'s CKA notebook."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


#: bandwidth -> (standard, debiased) RBF CKA of the fixture, from their formulas evaluated
#: naively in float64 (kornblith_gram_naive, tr(KHLH), Song's HSIC_1); 0.65483 at 0.5 is the
#: value their code, ckatorch and thingsvision print.
FIXTURE = {0.2: (0.9898069303, 0.0495356307),
           0.5: (0.6548311823, 0.4192767510),
           1.0: (0.5758322230, 0.5016102704)}


def one(metric, x, y, cuts=(0, 7, 8, 50)) -> float:
    for i, j in itertools.pairwise([*cuts, x.shape[0]]):
        metric.update(x[i:j], y[i:j])
    return float(metric.compute()[0, 0])


@pytest.mark.parametrize("bandwidth", sorted(FIXTURE))
def test_fixture_values_of_kornblith_et_al(bandwidth):
    x, y = fixture()
    k, l = kornblith_gram_naive(x, bandwidth), kornblith_gram_naive(y, bandwidth)  # noqa: E741
    standard, debiased = FIXTURE[bandwidth]
    assert cka(k, l, hsic_biased) == pytest.approx(standard, abs=1e-9)  # the reference itself
    assert cka(k, l, hsic_unbiased) == pytest.approx(debiased, abs=1e-9)
    assert one(RbfCka([10], [10], bandwidth=bandwidth), x, y) == pytest.approx(standard, abs=1e-9)
    assert one(DebiasedRbfCka([10], [10], bandwidth=bandwidth), x, y) == pytest.approx(
        debiased, abs=1e-9)


def test_published_value_and_default_bandwidth():
    x, y = fixture()
    assert round(one(RbfCka([10], [10]), x, y), 5) == 0.65483  # default bandwidth 0.5
    # the float32 path (activations as providers give them) stays within 1e-6
    got = one(RbfCka([10], [10]), x.astype(np.float32), y.astype(np.float32))
    assert got == pytest.approx(FIXTURE[0.5][0], abs=1e-6)


def test_minibatch_estimator_is_a_different_number():
    """The minibatch estimator (median over i < j, unbiased HSIC per minibatch) is kept under
    its own name: on the fixture it does not give the published 0.65483."""
    x, y = fixture()
    value = one(MinibatchRbfCka([10], [10], bandwidth=0.5), x, y)
    assert abs(value - FIXTURE[0.5][0]) > 0.1


def layered(n=40, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 7)) * rng.uniform(0.2, 3, size=7) + 5.0
    y = np.hstack([np.tanh(x[:, :3] @ rng.normal(size=(3, 4))), rng.normal(size=(n, 2))])
    return x, y


@pytest.mark.parametrize(("cls", "hsic"), [(RbfCka, hsic_biased), (DebiasedRbfCka, hsic_unbiased)])
def test_layer_table_equals_naive_and_shards_merge(cls, hsic):
    x, y = layered()
    sizes_a, sizes_b = [2, 5], [4, 1, 1]
    ia, ib = np.cumsum([0, *sizes_a]), np.cumsum([0, *sizes_b])
    ref = np.array([[cka(kornblith_gram_naive(x[:, ia[i]:ia[i + 1]], 0.8),
                         kornblith_gram_naive(y[:, ib[j]:ib[j + 1]], 0.8), hsic)
                     for j in range(3)] for i in range(2)])
    whole = cls(sizes_a, sizes_b, bandwidth=0.8)
    for i, j in itertools.pairwise([0, 1, 13, 40]):
        whole.update(x[i:j], y[i:j])
    np.testing.assert_allclose(whole.compute(), ref, atol=1e-10, rtol=0)
    first, second = cls(sizes_a, sizes_b, bandwidth=0.8), cls(sizes_a, sizes_b, bandwidth=0.8)
    second.update(x[25:], y[25:])
    first.update(x[:25], y[:25])
    second.merge(first)  # shard order does not matter: CKA ignores the order of samples
    np.testing.assert_allclose(second.compute(), ref, atol=1e-10, rtol=0)
    assert second.count == 40


def test_constant_layer_is_nan_and_duplicates_use_nonzero_median():
    rng = np.random.default_rng(0)
    x = np.hstack([rng.normal(size=(30, 2)), np.full((30, 1), 4.0)])
    y = np.repeat(rng.normal(size=(3, 2)), [22, 5, 3], axis=0)  # most d^2 are 0: median 0
    m = RbfCka([2, 1], [2])
    m.update(x, y)
    table = m.compute()
    assert np.isfinite(table[0, 0]) and np.isnan(table[1, 0])
    dead_a, dead_b = m.constant()
    assert dead_a.tolist() == [False, False, True] and not dead_b.any()
    d2 = ((y[:, None, :] - y[None, :, :]) ** 2).sum(axis=2)
    assert np.median(d2) == 0
    sigma2 = 0.25 * np.median(d2[d2 > 0])  # the fallback: median of the nonzero d^2
    expected = cka(kornblith_gram_naive(x[:, :2], 0.5), np.exp(-d2 / (2 * sigma2)), hsic_biased)
    assert table[0, 0] == pytest.approx(expected, abs=1e-10)


def test_keeps_copies_of_batches():
    x, y = layered(n=20)
    expected = one(RbfCka([7], [6]), x, y, cuts=(0,))
    m = RbfCka([7], [6])
    bx, by = x.copy(), y.copy()
    m.update(bx, by)
    bx[:], by[:] = 0.0, 1.0
    assert float(m.compute()[0, 0]) == expected


@pytest.mark.parametrize(("make", "match"), [
    (lambda: RbfCka([2], [2], batch_size=64), r"batch_size belongs to cka-rbf-minibatch"),
    (lambda: RbfCka([2], [2], bandwidth=-1), "bandwidth .* must be a positive number"),
    (lambda: DebiasedRbfCka([0], [2]), "every layer needs at least one neuron"),
])
def test_bad_options(make, match):
    with pytest.raises(NeurocorrError, match=match):
        make()


def test_errors_at_compute(monkeypatch):
    m = DebiasedRbfCka([2], [2])
    m.update(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(NeurocorrError, match="cka-rbf-debiased: needs at least 4 samples; got 3"):
        m.compute()
    with pytest.raises(NeurocorrError, match="same layer sizes and bandwidth"):
        m.merge(DebiasedRbfCka([2], [2], bandwidth=1.0))
    m.update(np.arange(8.0).reshape(4, 2), np.arange(8.0).reshape(4, 2) ** 2)
    monkeypatch.setattr(full_rbf, "GRAM_LIMIT_BYTES", 1000)
    with pytest.raises(NeurocorrError, match="Gram matrices; use fewer probe samples, or the "
                                             "minibatch estimator cka-rbf-minibatch"):
        m.compute()


def test_linear_fixture_values_of_kornblith_et_al():
    """On the same fixture their demo prints linear CKA 0.55761 and debiased linear CKA 0.51346
    (gram_linear, then cka(..., debiased=True)): the feature-space metrics give them, and so
    does the naive Gram-matrix reference."""
    from neurocorr_cka import DebiasedCka, LinearCka

    x, y = fixture()
    k, l = x @ x.T, y @ y.T  # noqa: E741
    assert cka(k, l, hsic_biased) == pytest.approx(0.5576132566, abs=1e-9)
    assert cka(k, l, hsic_unbiased) == pytest.approx(0.5134564895, abs=1e-9)
    assert round(one(LinearCka([10], [10]), x, y), 5) == 0.55761
    assert round(one(DebiasedCka([10], [10]), x, y), 5) == 0.51346
