"""Every mistake a user can make in compare() gets a message with the problem and the fix."""

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from numpy_models import NumpyNet, mlp


@pytest.fixture
def probe():
    return np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)


def test_glob_matching_nothing_lists_closest_names(pm, probe):
    message = r"'act9' matches no layer of NumpyNet; closest names: act[01], act[01]\. List all with 'neurocorr layers"
    with pytest.raises(NeurocorrError, match=message):
        compare(mlp(0, [4, 4]), mlp(1, [4]), probe, layers_a="act9", plugin_manager=pm)


def test_unknown_kind_lists_present_kinds(pm, probe):
    with pytest.raises(NeurocorrError, match="no layer of NumpyNet has kind 'conv'; kinds present"):
        compare(mlp(0, [4]), mlp(1, [4]), probe, layers_a="kind:conv", plugin_manager=pm)


def test_unrecognised_model_names_providers(pm, probe):
    with pytest.raises(NeurocorrError, match=r"no installed provider recognises an object of type "
                       r"builtins.dict.*numpy-test: tests.numpy_models.NumpyNet objects"):
        compare({"not": "a model"}, mlp(1, [4]), probe, plugin_manager=pm)


def test_missing_model_file(pm, probe):
    with pytest.raises(NeurocorrError, match="model file '/no/such.pt' does not exist"):
        compare("/no/such.pt", mlp(1, [4]), probe, plugin_manager=pm)


def test_nan_activations_name_layer_and_count(pm, probe):
    net = NumpyNet([("bad", "Linear", lambda x: np.where(x > 1.5, np.nan, x)), ("act", "ReLU", np.abs)], (16,))
    expected_nan = int((probe > 1.5).sum())
    with pytest.raises(NeurocorrError, match=rf"layer 'bad' of NumpyNet produced {expected_nan} NaN/Inf"):
        compare(net, mlp(1, [4]), probe, layers_a="bad", plugin_manager=pm)


def test_probe_with_one_sample(pm, probe):
    with pytest.raises(NeurocorrError, match="has 1 sample.*needs at least 2"):
        compare(mlp(0, [4]), mlp(1, [4]), probe[:1], plugin_manager=pm)


def test_probes_of_different_length(pm, probe):
    with pytest.raises(NeurocorrError, match="probes differ in length: 20 samples for A, 19 for B"):
        compare(mlp(0, [4]), mlp(1, [4]), probe, probe_b=probe[:19], plugin_manager=pm)


def test_probe_b_feeds_model_b(pm, probe):
    net_a, net_b = mlp(0, [6]), NumpyNet(mlp(1, [6]).steps, (4, 4))
    result = compare(net_a, net_b, probe, probe_b=probe.reshape(20, 4, 4), plugin_manager=pm)
    assert net_b.calls[-1] == 20 and result.config["probe_b"] == "array"


def test_bad_options(pm, probe):
    with pytest.raises(NeurocorrError, match="unknown neuron view 'pixel'; choose one of channel, position"):
        compare(mlp(0, [4]), mlp(1, [4]), probe, neurons="pixel", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="unknown depth penalty 'half'"):
        compare(mlp(0, [4]), mlp(1, [4]), probe, depth_penalty="half", plugin_manager=pm)
    with pytest.raises(NeurocorrError, match="no matching named 'best'; available: hungarian, max, mutual"):
        compare(mlp(0, [4]), mlp(1, [4]), probe, matching="best", plugin_manager=pm)


def test_result_serialises(pm, probe, tmp_path):
    import json

    result = compare(mlp(0, [5, 3]), mlp(1, [4]), probe, plugin_manager=pm)
    result.to_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data["score"]) == {"a_to_b", "b_to_a", "symmetric"}
    assert [layer["name"] for layer in data["layers_a"]] == ["act0", "act1"]
    assert data["dead_neurons"]["b"] == {"act0": 0} and data["config"]["metric"] == "pearson"
    assert "pearson" in data["versions"]
    assert list(tmp_path.iterdir()) == [tmp_path / "r.json"]  # no temporary file left
