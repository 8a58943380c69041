"""Bad-input matrix, PyTorch cases: a float16 or float64 model is named by its dtype with the fix
(model.float()), not blamed on the probe's shape; a torch tensor, DataLoader or Dataset given as
the probe says which probe types compare() takes and how to convert (docs/api.md: every user
error is a NeurocorrError). Each case: one error line (CLI) or a NeurocorrError with those words
(API), and the folders involved unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from models import small_mlp

sys.path.insert(0, str(Path(__file__).parents[3] / "tests"))  # the core matrix harness
import bad_input
from neurocorr_core import NeurocorrError, compare

BUILDERS = '''import torch
from torch import nn


def mlp(dtype):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, 5), nn.ReLU()).to(dtype)


def half():
    return mlp(torch.float16)


def double():
    return mlp(torch.float64)


def bfloat():
    return mlp(torch.bfloat16)


def single():
    return mlp(torch.float32)
'''


@pytest.fixture
def work(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "nets.py").write_text(BUILDERS)
    np.save(folder / "probe.npy", np.random.default_rng(0).normal(size=(20, 64)).astype(np.float32))
    return folder


ENV = {"NEUROCORR_DISABLE_PLUGINS": "tensorflow,jax,onnx", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.mark.parametrize(("argv", "words"), [
    (["layers", "nets:half", "--input-shape", "64"], ["torch.float16 weights", "float32 probes", "model.float()"]),
    (["layers", "nets:bfloat", "--input-shape", "64"], ["torch.bfloat16", "model.float()"]),
    (["compare", "nets:single", "nets:double", "--probe", "probe.npy", "--quiet"],
     ["torch.float64 weights", "model.float()"]),
], ids=["float16", "bfloat16", "float64"])
def test_a_model_of_another_dtype_is_named(tmp_path, work, argv, words):
    before = bad_input.snapshot(tmp_path)
    run = bad_input.neurocorr(argv, cwd=work, env={**ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    line = bad_input.assert_user_error(run, *words)
    assert "input shape" not in line and "reshape" not in line  # the old message blamed the probe
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))


def test_the_same_model_in_float32_runs(work):
    """The cases fail for their dtype alone: float32 works."""
    run = bad_input.neurocorr(["layers", "nets:single", "--input-shape", "64"], cwd=work,
                            env={**ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert run.code == 0, run.err


def _tensor() -> torch.Tensor:
    return torch.randn(20, 64)


DATA = torch.randn(20, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("make", [
    lambda: DATA,
    lambda: DataLoader(TensorDataset(DATA, torch.zeros(20)), batch_size=8),
    lambda: TensorDataset(DATA, torch.zeros(20)),
], ids=["tensor", "dataloader", "dataset"])
def test_a_torch_probe_is_taken_as_it_is(make):
    """Tensors, Datasets and DataLoaders are probes now (issue 15): the same score as the numpy array."""
    expected = compare(small_mlp(0), small_mlp(1), DATA.numpy()).score.symmetric
    assert compare(small_mlp(0), small_mlp(1), make()).score.symmetric == pytest.approx(expected, abs=1e-6)


def test_a_shuffling_loader_says_what_to_do(tmp_path):
    before = bad_input.snapshot(tmp_path)
    with pytest.raises(NeurocorrError, match="shuffle"):
        compare(small_mlp(0), small_mlp(1), DataLoader(TensorDataset(DATA), batch_size=8, shuffle=True))
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))


def test_the_converted_probe_runs():
    """What the message says to do works: the tensor's numpy array is a probe."""
    result = compare(small_mlp(0), small_mlp(1), _tensor().detach().cpu().numpy())
    assert np.isfinite(result.score.symmetric)
