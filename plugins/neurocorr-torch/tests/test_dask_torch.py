"""Real PyTorch models on the executors: TorchScript files travel to Dask workers as paths, the
grid equals the local one, the cache skips torch forward passes, and a predict() over an atlas of
torch files runs end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from neurocorr_atlas.fill import add_model
from neurocorr_atlas.predict import predict
from neurocorr_atlas.store import Atlas
from neurocorr_core import compare, load_probe
from neurocorr_scale.cache import ActivationCache
from neurocorr_scale.executor import LocalExecutor
from neurocorr_scale.grid import GridConfig, GridModel, grid


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch-models")
    paths = {}
    nets = {"mlp_a": models.small_mlp(0), "mlp_b": models.small_mlp(1), "cnn_a": models.small_cnn(1),
            "cnn_b": models.small_cnn(2)}
    for name, module in nets.items():
        paths[name] = folder / f"{name}.pt"
        torch.jit.save(torch.jit.script(module.eval()), str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def probe():
    return load_probe("digits", limit=120)


def grid_models(files):
    return [GridModel(name, str(path)) for name, path in files.items()]


@pytest.mark.slow
def test_torchscript_files_on_a_local_cluster_equal_local(files, probe):
    pytest.importorskip("distributed")
    DaskExecutor = pytest.importorskip("neurocorr_dask", reason="needs neurocorr-dask").DaskExecutor
    config = GridConfig(neurons="position")
    local = grid(grid_models(files), probe, config=config, shards=2, executor=LocalExecutor(threads=1))
    with DaskExecutor(workers=2) as cluster:
        remote = grid(grid_models(files), probe, config=config, shards=2, executor=cluster)
    np.testing.assert_allclose(remote.scores, local.scores, atol=1e-6, rtol=0)  # other processes, other BLAS threads
    direct = compare(str(files["mlp_a"]), str(files["cnn_b"]), probe, neurons="position")
    assert local.scores[0, 3] == pytest.approx(direct.score.a_to_b, abs=1e-6)


def test_cache_skips_torch_forward_passes(files, probe, tmp_path, monkeypatch):
    from neurocorr_torch.provider import TorchProvider

    calls = []
    run = TorchProvider._run

    def counting(self, batch, wanted, *args):
        if len(batch) > 2:  # not the 2-sample layer listing
            calls.append(len(batch))
        return run(self, batch, wanted, *args)

    monkeypatch.setattr(TorchProvider, "_run", counting)
    cache = ActivationCache(tmp_path, 10**8)
    first = grid(grid_models(files), probe, cache=cache)
    assert len(calls) == 4  # one batch per model
    again = grid(grid_models(files), probe, cache=cache)
    assert len(calls) == 4 and cache.stats.hits > 0
    np.testing.assert_array_equal(again.scores, first.scores)


def test_predict_over_an_atlas_of_torch_files(files, probe, tmp_path):
    with Atlas(tmp_path / "atlas.db", create=True) as atlas:
        for acc, name in zip([0.9, 0.91, 0.97, 0.98], ["mlp_a", "mlp_b", "cnn_a", "cnn_b"], strict=True):
            add_model(atlas, files[name], name, measurements={"accuracy": acc})
        entry = atlas.model("cnn_a")
        assert entry.framework == "torch" and entry.source == str(files["cnn_a"])
        report = predict("models:mlp_b", atlas, probe, level=0.5)
    assert report.computed == 6 + 4
    # the new model is mlp_b itself, rebuilt: its own file is its most similar reference
    assert report.predictions[0].nearest[0][0] == "mlp_b"
    itself = compare("models:mlp_b", str(files["mlp_b"]), probe)
    assert report.scores["mlp_b"] == pytest.approx(itself.score.symmetric, abs=1e-6)  # through the grid
    assert itself.score.a_to_b == pytest.approx(1 - sum(lr.dead for lr in itself.layers_a) / 19, abs=1e-6)
