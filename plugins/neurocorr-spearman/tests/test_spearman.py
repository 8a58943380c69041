"""Spearman against scipy.stats.spearmanr: ties, constant neurons, spilled and in-memory paths,
merge of shards, temp-file clean-up, memory bound, and errors."""

from __future__ import annotations

import glob
import os
import tracemalloc
import warnings

import numpy as np
import pytest
from scipy import stats

from neurocorr_core import NeurocorrError, PluginManager
from neurocorr_spearman import Spearman, average_ranks, parse_bytes
from neurocorr_spearman import metric as metric_module
from neurocorr_spearman import store as store_module
from neurocorr_spearman.ranks import RANK_BYTES_PER_VALUE, rank_columns


def reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scipy's rho for every (x column, y column) pair; NaN where a column is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about the constant columns
        full = stats.spearmanr(np.hstack([x, y])).statistic
    return full[:x.shape[1], x.shape[1]:]


def tied_data(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Few distinct values (many ties), two constant columns, correlated columns, float32."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=(n, 7)).astype(np.float32)
    y = np.column_stack([x[:, 0] + rng.integers(0, 3, n), -x[:, 1], rng.normal(size=n).round(1),
                         np.full(n, 2.5), x[:, 2] * x[:, 3]]).astype(np.float32)
    x[:, 4] = -1.0  # constant neuron in A
    return x, y


def run(x, y, sizes_a, sizes_b, batch=32, **options):
    m = Spearman(sizes_a, sizes_b, **options)
    for i in range(0, x.shape[0], batch):
        m.update(x[i:i + batch], y[i:i + batch])
    return m


def spill_dirs(tmp_path) -> list[str]:
    return glob.glob(os.path.join(tmp_path, "neurocorr-spearman-*"))


@pytest.fixture
def tiny_budget():
    """A budget that forces the spilled path for tied_data() but still fits one chunk."""
    return 150 * RANK_BYTES_PER_VALUE + 1000


def test_in_memory_equals_scipy_with_ties_and_constants():
    x, y = tied_data()
    m = run(x, y, [3, 4], [5])
    assert not m.spilled
    ref = reference(x, y)
    got = m.compute()
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(got[4]).all() and np.isnan(got[:, 3]).all()
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
    assert np.nanmax(np.abs(got)) > 0.9  # the correlated columns are found


def test_spilled_path_equals_scipy(tmp_path, tiny_budget):
    x, y = tied_data()
    with run(x, y, [3, 4], [5], memory_budget=tiny_budget, tmp_dir=str(tmp_path)) as m:
        assert m.spilled and len(spill_dirs(tmp_path)) == 1
        got = m.compute()
        # ranking went in chunks of a single neuron at this budget
        assert tiny_budget // (150 * RANK_BYTES_PER_VALUE) == 1
    np.testing.assert_allclose(got, reference(x, y), atol=1e-6, rtol=0)
    assert np.array_equal(np.isnan(got), np.isnan(reference(x, y)))
    assert spill_dirs(tmp_path) == []  # removed at the end of the with block


def test_float64_input_and_continuous_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6))
    y = np.exp(x[:, :4]) + 0.3 * rng.normal(size=(300, 4))  # monotone transform + noise
    got = run(x, y, [6], [4], batch=64).compute()
    np.testing.assert_allclose(got, reference(x, y), atol=1e-6, rtol=0)


def test_constant_reports_dead_neurons():
    x, y = tied_data()
    m = run(x, y, [3, 4], [5])
    dead_a, dead_b = m.constant()
    assert dead_a.tolist() == [False] * 4 + [True] + [False] * 2
    assert dead_b.tolist() == [False, False, False, True, False]
    assert m.count == 150


@pytest.mark.parametrize("spill", [False, True])
def test_merge_of_two_shards_equals_one_pass(tmp_path, tiny_budget, spill):
    x, y = tied_data(seed=4)
    options = {"memory_budget": tiny_budget, "tmp_dir": str(tmp_path)} if spill else {}
    whole = run(x, y, [7], [2, 3], **options)
    first = run(x[:61], y[:61], [7], [2, 3], **options)
    second = run(x[61:], y[61:], [7], [2, 3], **options)
    first.merge(second)
    assert first.count == 150 and first.spilled == spill
    np.testing.assert_array_equal(first.compute(), whole.compute())
    np.testing.assert_allclose(first.compute(), reference(x, y), atol=1e-6, rtol=0)
    assert [a.tolist() for a in first.constant()] == [a.tolist() for a in whole.constant()]


def test_merge_in_memory_shard_into_spilled_one(tmp_path, tiny_budget):
    x, y = tied_data(seed=5)
    small = run(x[:3], y[:3], [7], [5])  # default budget: stays in RAM
    big = run(x[3:], y[3:], [7], [5], memory_budget=tiny_budget, tmp_dir=str(tmp_path))
    small_copy = run(x[:3], y[:3], [7], [5])
    small.merge(big)  # small's budget is large: the samples come back into RAM
    big.merge(small_copy)  # the order of samples does not change the ranks' correlation
    np.testing.assert_allclose(small.compute(), reference(x, y), atol=1e-6, rtol=0)
    np.testing.assert_allclose(big.compute(), reference(x, y), atol=1e-6, rtol=0)


def test_compute_does_not_consume_and_more_updates_count(tmp_path, tiny_budget):
    x, y = tied_data()
    m = run(x[:100], y[:100], [7], [5], memory_budget=tiny_budget, tmp_dir=str(tmp_path))
    first = m.compute()
    assert np.array_equal(first, m.compute(), equal_nan=True)
    m.update(x[100:], y[100:])
    np.testing.assert_allclose(m.compute(), reference(x, y), atol=1e-6, rtol=0)
    m.close()


def test_spill_file_removed_when_compute_fails(tmp_path, tiny_budget, monkeypatch):
    x, y = tied_data()
    m = run(x, y, [7], [5], memory_budget=tiny_budget, tmp_dir=str(tmp_path))
    calls = []

    def broken(fetch, out, limit=None, **options):
        def failing(lo, hi):
            calls.append(lo)
            if len(calls) == 3:
                raise MemoryError("simulated failure while ranking")
            return fetch(lo, hi)
        return rank_columns(failing, out, limit, **options)

    monkeypatch.setattr(metric_module, "rank_columns", broken)
    with pytest.raises(MemoryError):
        m.compute()
    (spill,) = spill_dirs(tmp_path)
    assert os.listdir(spill) == ["samples.raw"]  # the ranks scratch file is gone
    monkeypatch.undo()
    np.testing.assert_allclose(m.compute(), reference(x, y), atol=1e-6, rtol=0)  # still usable
    assert os.listdir(spill) == ["samples.raw"]
    m.close()
    assert spill_dirs(tmp_path) == []


def test_spill_dir_removed_on_error_inside_with_and_when_dropped(tmp_path, tiny_budget):
    x, y = tied_data()
    with pytest.raises(RuntimeError), Spearman([7], [5], memory_budget=tiny_budget,
                                               tmp_dir=str(tmp_path)) as m:
        m.update(x, y)
        assert len(spill_dirs(tmp_path)) == 1
        raise RuntimeError("a provider failed mid-probe")
    assert spill_dirs(tmp_path) == []
    m = run(x, y, [7], [5], memory_budget=tiny_budget, tmp_dir=str(tmp_path))
    assert len(spill_dirs(tmp_path)) == 1
    del m  # e.g. compare() raised and dropped the metric without closing it
    assert spill_dirs(tmp_path) == []


def test_failed_spill_write_removes_the_dir_and_says_what_to_do(tmp_path, tiny_budget, monkeypatch):
    x, y = tied_data()
    m = run(x[:100], y[:100], [7], [5], memory_budget=tiny_budget, tmp_dir=str(tmp_path))
    assert m.spilled

    def raise_oserror(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "open", raise_oserror, raising=False)
    with pytest.raises(NeurocorrError, match=r"writing spilled samples to .* failed .*No space left"
                                             r".*tmp_dir"):
        m.update(x[100:], y[100:])
    assert spill_dirs(tmp_path) == []
    with pytest.raises(NeurocorrError, match="build a new one"):
        m.compute()


def test_memory_stays_within_budget_when_spilled(tmp_path):
    rng = np.random.default_rng(7)
    n, na, nb = 20000, 40, 30
    x = rng.integers(0, 50, size=(n, na)).astype(np.float32)
    y = (x[:, :nb] + rng.normal(size=(n, nb))).astype(np.float32)
    budget = 4 * n * RANK_BYTES_PER_VALUE  # ranks 4 neurons at a time; the data are 5.6 MB
    m = Spearman([na], [nb], memory_budget=budget, tmp_dir=str(tmp_path))
    tracemalloc.start()
    for i in range(0, n, 1000):
        m.update(x[i:i + 1000], y[i:i + 1000])
        assert tracemalloc.get_traced_memory()[0] < budget  # no growth with the samples kept
    tracemalloc.reset_peak()
    got = m.compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result_sized = 6 * na * nb * 8  # the (n_a, n_b) accumulators and result, outside the budget
    assert peak <= budget + result_sized + 64 * 1024, (peak, budget)
    assert m.spilled and (na + nb) * n * 4 > budget
    np.testing.assert_allclose(got, reference(x, y), atol=1e-6, rtol=0)
    m.close()


def test_budget_too_small_says_the_minimum(tmp_path):
    x, y = tied_data()
    with pytest.raises(NeurocorrError, match=r"memory_budget=100 bytes is too small for even one chunk"
                                             r".*set memory_budget >= 288"):
        Spearman([7], [5], memory_budget=100)
    m = Spearman([7], [5], memory_budget=50 * RANK_BYTES_PER_VALUE, tmp_dir=str(tmp_path))
    m.update(x[:50], y[:50])
    with pytest.raises(NeurocorrError, match=rf"ranking one neuron over 60 samples needs "
                                             rf"{60 * RANK_BYTES_PER_VALUE} bytes.*"
                                             rf"set memory_budget >= {60 * RANK_BYTES_PER_VALUE}"):
        m.update(x[50:60], y[50:60])
    assert m.count == 50  # the refused batch was not kept
    m.close()


@pytest.mark.parametrize(("value", "expected"), [(1000, 1000), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9),
                                                 ("1e6", 10**6), (" 3 kib ", 3072)])
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "12 parsecs", 0, -5, "1..2MB", True])
def test_bad_budget_is_an_error(value):
    with pytest.raises(NeurocorrError, match="memory_budget"):
        Spearman([2], [2], memory_budget=value)


def test_bad_input_errors():
    with pytest.raises(NeurocorrError, match=r"unknown option\(s\) \['budget'\].*memory_budget and tmp_dir"):
        Spearman([2], [2], budget=10)
    with pytest.raises(NeurocorrError, match="at least one neuron"):
        Spearman([2, 0], [2])
    m = Spearman([2], [3])
    with pytest.raises(NeurocorrError, match="model B has 2 neurons but the metric was built for 3"):
        m.update(np.zeros((4, 2)), np.zeros((4, 2)))
    bad = np.zeros((4, 2))
    bad[2, 1] = np.nan
    with pytest.raises(NeurocorrError, match=r"NaN/Inf in neuron\(s\) \[1\]"):
        m.update(bad, np.zeros((4, 3)))
    with pytest.raises(NeurocorrError, match="at least 2 samples; got 0"):
        m.compute()
    m.update(np.ones((1, 2)), np.ones((1, 3)))
    with pytest.raises(NeurocorrError, match="at least 2 samples; got 1"):
        m.compute()
    with pytest.raises(NeurocorrError, match="same layer sizes"):
        m.merge(Spearman([3], [2]))
    with pytest.raises(NeurocorrError, match="into itself"):
        m.merge(m)


def test_average_ranks_equal_scipy_rankdata():
    rng = np.random.default_rng(2)
    for n, k in [(1, 3), (2, 2), (9, 4), (500, 6)]:
        a = rng.integers(0, 4, size=(n, k)).astype(np.float32)
        np.testing.assert_array_equal(average_ranks(a), stats.rankdata(a, axis=0))
        b = rng.normal(size=(n, k))
        np.testing.assert_array_equal(average_ranks(b), stats.rankdata(b, axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("data", ["normal", "pairs"])
def test_rank_working_memory_is_within_the_declared_bytes_per_value(dtype, data):
    """Also for the worst case of tie groups: every value tied with exactly one other."""
    rng = np.random.default_rng(0)
    n = 20000
    a = rng.normal(size=(n, 20)) if data == "normal" else np.repeat(np.arange(n // 2), 2)[
        np.argsort(rng.random((n, 20)), axis=0)]
    a = np.ascontiguousarray(a, dtype=dtype)
    tracemalloc.start()
    got = average_ranks(a)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= a.size * (RANK_BYTES_PER_VALUE - 8)  # 8 more for the column copy
    np.testing.assert_array_equal(got, stats.rankdata(a, axis=0))


def test_plugin_is_registered_under_its_name():
    pm = PluginManager()
    assert pm.metric("spearman") is Spearman
    assert Spearman.level == "neuron"


def test_float32_fast_ranks_equal_scipy_with_signed_zeros_infinities_and_threads(monkeypatch):
    """The uint64-key sort of float32 columns, on one thread and on several, into float32."""
    import neurocorr_core.backend as backends

    rng = np.random.default_rng(5)
    a = rng.integers(-3, 4, size=(3000, 40)).astype(np.float32) * np.float32(0.1)
    a[a == 0] = -0.0  # equal to +0.0: one tie group
    a[::7, 1] = 0.0
    a[5, :4] = [np.inf, -np.inf, 1e-45, -1e-45]
    want = stats.rankdata(a, axis=0)
    for threads in (1, 3):
        monkeypatch.setattr(backends, "blas_threads", lambda threads=threads: threads)
        np.testing.assert_array_equal(average_ranks(a), want)
        into = np.empty(a.shape, dtype=np.float32)
        assert average_ranks(a, into) is not None
        np.testing.assert_array_equal(into, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("runs_per_value", [0.0, 1.0])  # every tie group filled by the sum / one slice each
def test_radix_ranks_equal_scipy_for_both_tie_fills(monkeypatch, dtype, runs_per_value):
    """ReLU-like columns (one large tie group), many small tie groups, no ties, huge and tiny
    magnitudes of both signs: every 16-bit digit of the keys matters."""
    from neurocorr_spearman import ranks as ranks_module

    monkeypatch.setattr(ranks_module, "RUNS_PER_VALUE", runs_per_value)
    rng = np.random.default_rng(7)
    n = 5000
    a = np.column_stack([np.maximum(rng.normal(size=n), 0), rng.integers(-40, 40, n), rng.normal(size=n),
                         rng.normal(size=n) * 1e-30, -np.exp(rng.normal(size=n) * 20), np.full(n, 3.0),
                         np.where(rng.random(n) < 0.5, 1.0 + 1e-6 * rng.integers(0, 3, n), -2.0)]).astype(dtype)
    want = stats.rankdata(a, axis=0)
    np.testing.assert_array_equal(average_ranks(a), want)
    wide = np.zeros((n, 3 * a.shape[1]), dtype=np.float32)  # a strided block of a rank scratch
    average_ranks(a, wide[:, a.shape[1]:2 * a.shape[1]])
    np.testing.assert_array_equal(wide[:, a.shape[1]:2 * a.shape[1]], want)
    assert not wide[:, :a.shape[1]].any() and not wide[:, 2 * a.shape[1]:].any()


@pytest.mark.parametrize("runs_per_value", [0.0, 1.0])
def test_centred_ranks_and_their_sums_of_squares_equal_scipy(monkeypatch, runs_per_value):
    """What the metric correlates: ranks minus (n + 1) / 2, and each column's sum of their
    squares taken from its tie groups (0 for a constant column)."""
    from neurocorr_spearman import ranks as ranks_module

    monkeypatch.setattr(ranks_module, "RUNS_PER_VALUE", runs_per_value)
    rng = np.random.default_rng(11)
    n = 4001
    a = np.column_stack([np.maximum(rng.normal(size=n), 0), rng.integers(0, 30, n), rng.normal(size=n),
                         np.full(n, -1.5), np.repeat([1.0, 2.0], [1, n - 1])]).astype(np.float32)
    want = stats.rankdata(a, axis=0) - (n + 1) / 2
    got = np.full(a.shape, np.nan, dtype=np.float32)
    squares = np.full(a.shape[1], np.nan)
    rank_columns(lambda lo, hi: a[:, lo:hi], got.T, centred=True, squares=squares)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(squares, (want ** 2).sum(axis=0), rtol=1e-15, atol=0)
    assert squares[3] == 0.0 and squares[4] > 0.0


def test_torch_backend_gives_the_same_rho(monkeypatch):
    """The rank GEMMs run on the core's backend: PyTorch's on the CPU here (its GPU where one is)."""
    pytest.importorskip("torch")
    import neurocorr_core.backend as backends

    monkeypatch.setattr(backends, "_default", "torch:cpu")
    calls = []
    product = backends.TorchBackend.add_product
    monkeypatch.setattr(backends.TorchBackend, "add_product",
                        lambda self, *args: calls.append(1) or product(self, *args))
    x, y = tied_data()
    np.testing.assert_allclose(run(x, y, [3, 4], [5]).compute(), reference(x, y), atol=1e-6, rtol=0)
    assert calls


def test_float64_ranks_beyond_float32_range_give_the_same_rho(monkeypatch, tmp_path, tiny_budget):
    """Past 2**23 samples ranks are kept in float64 (here forced at 150 samples), in RAM or spilled."""
    monkeypatch.setattr(metric_module, "FLOAT32_RANKS_UP_TO", 10)
    x, y = tied_data()
    for options in ({}, {"memory_budget": 2 * tiny_budget, "tmp_dir": str(tmp_path)}):
        m = run(x, y, [7], [5], **options)
        assert metric_module._rank_dtype(m.count) == np.float64
        np.testing.assert_allclose(m.compute(), reference(x, y), atol=1e-6, rtol=0)
        assert m.spilled == bool(options)
        m.close()
