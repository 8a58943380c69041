"""Precomputed activations as models (the ``arrays`` provider of neurocorr-arrays): a mapping of arrays, an
.npz file, a folder of .npy files; compared without a probe, or beside a model and its probe."""

import numpy as np
import pytest

from neurocorr_arrays import ArraysProvider
from neurocorr_core import NeurocorrError, compare, open_model
from neurocorr_core.compare import index_probe
from numpy_models import cnn, mlp


def acts_of(net, x):
    """The model's outputs of every layer, computed by hand (the reference)."""
    return net.run(x.astype(np.float32))


@pytest.fixture
def probe():
    return np.random.default_rng(1).normal(size=(60, 16)).astype(np.float32)


def close(r1, r2, tol=1e-7):
    assert abs(r1.score.a_to_b - r2.score.a_to_b) < tol and abs(r1.score.b_to_a - r2.score.b_to_a) < tol
    np.testing.assert_allclose(r1.layer_table, r2.layer_table, atol=tol)
    np.testing.assert_allclose(r1.layer_table_ba, r2.layer_table_ba, atol=tol)
    assert r1.dead_neurons == r2.dead_neurons


def test_the_provider_is_built_in_and_chosen_for_a_mapping(pm, probe):
    acts = acts_of(mlp(0, [8, 6]), probe)
    assert pm.provider_for(acts) is ArraysProvider
    prov = open_model(acts, pm=pm)
    assert [(la.name, la.shape, la.depth) for la in prov.layers(np.zeros((2, 1), np.float32))] == \
        [("fc0", (8,), 0), ("act0", (8,), 1), ("fc1", (6,), 2), ("act1", (6,), 3)]
    assert len(index_probe(prov)) == 60


def test_arrays_equal_the_model_with_its_probe(pm, probe):
    a, b = mlp(0, [8, 6], dead=2), mlp(1, [7, 5])
    ref = compare(a, b, probe, layers_a="act*", layers_b="act*", plugin_manager=pm)
    acts_a = {k: v for k, v in acts_of(a, probe).items() if k.startswith("act")}
    acts_b = {k: v for k, v in acts_of(b, probe).items() if k.startswith("act")}
    close(compare(acts_a, acts_b, plugin_manager=pm), ref)
    # mixed: arrays on one side, a model and its probe on the other, in both places
    close(compare(acts_a, b, probe, layers_b="act*", plugin_manager=pm), ref)
    close(compare(a, acts_b, probe, layers_a="act*", plugin_manager=pm), ref)


@pytest.mark.parametrize("matching", ["max", "mutual", "hungarian"])
@pytest.mark.parametrize("neurons", ["channel", "position"])
def test_conv_arrays_get_the_views(pm, neurons, matching):
    x = np.random.default_rng(2).normal(size=(40, 1, 8, 8)).astype(np.float32)
    a, b = cnn(0), cnn(1)
    kw = {"neurons": neurons, "matching": matching, "layers_a": "act0,act1", "layers_b": "act0,act1",
          "constant_neurons": "zero", "plugin_manager": pm}
    ref = compare(a, b, x, **kw)
    pick = lambda net: {k: v for k, v in acts_of(net, x).items() if k in ("act0", "act1")}  # noqa: E731
    close(compare(pick(a), pick(b), **kw), ref)


def test_sampling_significance_and_tiles_apply_unchanged(pm, probe):
    a, b = mlp(0, [8, 6]), mlp(1, [7, 5])
    acts_a = {k: v for k, v in acts_of(a, probe).items() if k.startswith("act")}
    acts_b = {k: v for k, v in acts_of(b, probe).items() if k.startswith("act")}
    kw = {"layers_a": "act*", "layers_b": "act*", "sample_probe": 30, "seed": 3, "permutations": 5,
          "plugin_manager": pm}
    ref = compare(a, b, probe, **kw)
    got = compare(acts_a, acts_b, **kw)
    close(got, ref)
    assert got.significance.p_value == pytest.approx(ref.significance.p_value)
    tiled = compare(acts_a, acts_b, memory_budget=20_000, plugin_manager=pm)
    close(tiled, compare(acts_a, acts_b, plugin_manager=pm), tol=1e-6)


def test_npz_and_folder_and_explicit_depth(pm, probe, tmp_path):
    acts = {k: v for k, v in acts_of(mlp(0, [8, 6, 4]), probe).items() if k.startswith("act")}
    ref = compare(acts, acts, plugin_manager=pm)
    np.savez(tmp_path / "a.npz", **acts)
    (tmp_path / "f").mkdir()
    for name, value in acts.items():  # act10 would sort before act2 as text: natural order keeps depth
        np.save(tmp_path / "f" / f"{name.replace('act', 'act1') if name == 'act0' else name}.npy", value)
    close(compare(tmp_path / "a.npz", acts, plugin_manager=pm), ref)
    prov = open_model(tmp_path / "f", pm=pm)
    assert [la.name for la in prov.layers(None)] == ["act1", "act2", "act10"]
    prov = open_model(acts, pm=pm, depth=["act2", "act1", "act0"])
    assert [la.name for la in prov.layers(None)] == ["act2", "act1", "act0"]


def test_tensors_convert_by_duck_typing(pm, probe):
    class Tensor:  # what torch, TensorFlow and JAX arrays offer: shape, dtype and numpy()
        def __init__(self, value):
            self.value, self.shape, self.dtype = value, value.shape, value.dtype

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    acts = {k: v for k, v in acts_of(mlp(0, [8, 6]), probe).items() if k.startswith("act")}
    close(compare({k: Tensor(v) for k, v in acts.items()}, acts, plugin_manager=pm),
          compare(acts, acts, plugin_manager=pm))


def test_mismatches_are_refused_clearly(pm, probe):
    acts = {"x": probe[:, :4], "y": probe[:, 4:]}
    with pytest.raises(NeurocorrError, match="60 for A, 59 for B"):
        compare(acts, {"x": probe[:59]}, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="different numbers of samples"):
        compare({"x": probe, "y": probe[:10]}, acts, plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="it needs a probe"):
        compare(acts, mlp(0, [4]), plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="activations of 60 samples, but the probe holds 59"):
        compare(acts, mlp(0, [4]), probe[:59], plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="missing: \\['y'\\]"):
        open_model(acts, pm=pm, depth={"x": 0})
    with pytest.raises(NeurocorrError, match="not numbers"):
        open_model({"x": np.array([["a"], ["b"]])}, pm=pm)


def test_the_command_line_compares_two_activation_files_without_a_probe(tmp_path):
    """``neurocorr compare a.npz b.npz``: the arrays are the samples, no --probe needed."""
    import json

    import bad_input

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    np.savez(tmp_path / "a.npz", fc1=x)
    np.savez(tmp_path / "b.npz", fc1=x[:, ::-1].copy())  # the same neurons, in another order
    env = {"NEUROCORR_DISABLE_PLUGINS": "torch,tensorflow,jax,onnx"}
    run = bad_input.neurocorr(["compare", "a.npz", "b.npz", "--quiet", "--json", "-"], cwd=tmp_path, env=env)
    assert run.code == 0, run.err
    assert json.loads(run.out)["score"]["symmetric"] == pytest.approx(1.0, abs=1e-6)
    (tmp_path / "exp.toml").write_text('[models]\na = "a.npz"\nb = "b.npz"\n\n[compare]\nquiet = true\n')
    file_run = bad_input.neurocorr(["run", "exp.toml", "--json", "-"], cwd=tmp_path, env=env)
    assert file_run.code == 0, file_run.err  # an experiment file needs no probe either
    assert json.loads(file_run.out)["score"]["symmetric"] == pytest.approx(1.0, abs=1e-6)
