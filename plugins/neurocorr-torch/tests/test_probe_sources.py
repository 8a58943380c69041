"""Probes straight from PyTorch: tensors, DataLoaders (any batch size, worker processes) and
Datasets give the numpy probe's results; a shuffling loader is refused; a loader streams (the
probe is never held whole: checked under an address-space limit in a child process)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from models import small_cnn
from neurocorr_core import NeurocorrError, StreamProbe, compare, load_probe


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(300, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(images):
    return compare(small_cnn(1), small_cnn(2), images, batch_size=64)


def assert_same(result, ref):
    assert result.samples == ref.samples
    assert result.score.a_to_b == pytest.approx(ref.score.a_to_b, abs=1e-7)
    assert result.score.b_to_a == pytest.approx(ref.score.b_to_a, abs=1e-7)
    np.testing.assert_allclose(result.layer_table, ref.layer_table, atol=1e-7)


def test_a_tensor_is_a_probe(images, reference):
    tensor = torch.from_numpy(images).requires_grad_(True)  # off the autograd graph by duck typing
    assert_same(compare(small_cnn(1), small_cnn(2), tensor, batch_size=64), reference)


@pytest.mark.parametrize("batch_size", [1, 7, 256])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataloader_streams_with_the_numpy_results(images, reference, batch_size, workers):
    labels = torch.arange(len(images))
    loader = DataLoader(TensorDataset(torch.from_numpy(images), labels), batch_size=batch_size,
                        num_workers=workers)
    probe = load_probe(loader)
    assert isinstance(probe, StreamProbe) and len(probe) == 300
    assert_same(compare(small_cnn(1), small_cnn(2), loader, batch_size=64), reference)


def test_a_dataset_and_sampling_follow_the_numpy_probe(images):
    dataset = TensorDataset(torch.from_numpy(images), torch.zeros(len(images)))
    ref = compare(small_cnn(1), small_cnn(2), images, sample_probe=100, seed=4)
    assert_same(compare(small_cnn(1), small_cnn(2), dataset, sample_probe=100, seed=4), ref)
    limited = load_probe(DataLoader(dataset, batch_size=32), limit=50)
    np.testing.assert_array_equal(np.concatenate(list(limited.batches(16))), images[:50])


def test_a_shuffling_loader_is_refused(images):
    loader = DataLoader(TensorDataset(torch.from_numpy(images)), batch_size=16, shuffle=True)
    with pytest.raises(NeurocorrError, match="shuffle=False"):
        compare(small_cnn(1), small_cnn(2), loader)


def test_a_loader_probe_larger_than_the_memory_limit_streams():
    """1.2 GB of probe (300,000 x 1024 float32, made item by item) under an address-space limit of
    600 MB above what the process holds once torch is imported: only batches are ever held."""
    script = textwrap.dedent("""
        import resource
        import numpy as np
        import torch
        from torch.utils.data import DataLoader, Dataset
        from neurocorr_core import compare
        W = np.linspace(0.01, 3.0, 1024, dtype=np.float32)
        class Big(Dataset):
            def __len__(self):
                return 300_000
            def __getitem__(self, i):
                return torch.from_numpy(np.sin(W * (i % 977) + i % 13)), 0
        def net(seed):
            torch.manual_seed(seed)
            return torch.nn.Sequential(torch.nn.Linear(1024, 8), torch.nn.ReLU())
        a, b = net(0), net(1)
        compare(a, b, np.zeros((4, 1024), np.float32) + np.arange(4)[:, None])  # every lazy import done
        size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + 600 * 2**20, size + 600 * 2**20))
        result = compare(a, b, DataLoader(Big(), batch_size=2048), batch_size=2048)
        print("OK", result.samples, size // 2**20)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK 300000" in done.stdout
