"""'neurocorr compare' with the sampling, tiling and significance options: the same result as
the API, the new JSON fields beside the old ones, and clear errors."""

import json

import numpy as np
import pytest

from neurocorr_core import compare
from neurocorr_core import plugins as plugins_module
from neurocorr_core.cli import main
from numpy_models import mlp


def net_a():
    return mlp(61, [400, 300], dead=2)


def net_b():
    return mlp(62, [350])


@pytest.fixture
def setup(pm, monkeypatch, tmp_path):
    monkeypatch.setattr(plugins_module, "_default", pm)
    probe = np.random.default_rng(13).normal(size=(50, 16)).astype(np.float32)
    np.save(tmp_path / "probe.npy", probe)
    return probe, tmp_path


def test_cli_options_reach_compare(setup, pm, capsys):
    probe, tmp = setup
    out = tmp / "r.json"
    rc = main(["compare", "test_cli_compare:net_a", "test_cli_compare:net_b", "--probe", str(tmp / "probe.npy"),
               "--sample-neurons", "0.5", "--sample-probe", "40", "--seed", "3", "--permutations", "19",
               "--bootstrap", "20", "--confidence", "0.9", "--memory-budget", "8MB", "--quiet", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "standard error (sampled neurons: 350 of A, 175 of B)" in text
    assert "permutation null (19 shuffles of B's probe order)" in text and "bootstrap 90% interval" in text
    assert "computed in" in text and "tiles" in text
    data = json.loads(out.read_text())
    for key in ("score", "layers_a", "layers_b", "dead_neurons", "config", "versions"):
        assert key in data
    assert set(data["score"]) == {"a_to_b", "b_to_a", "symmetric"}
    assert set(data["standard_error"]) == {"a_to_b", "b_to_a", "symmetric"}
    assert data["config"]["sampling"] == {"seed": 3, "neurons": 0.5, "probe": 40, "probe_samples": 40,
                                          "sampled_a": 350, "sampled_b": 175}
    assert data["config"]["memory_budget"] == 8_000_000 and data["config"]["tiles"] is not None
    assert data["significance"]["permutations"] == 19 and data["significance"]["confidence"] == 0.9
    api = compare(net_a(), net_b(), probe, sample_neurons=0.5, sample_probe=40, seed=3, permutations=19,
                  bootstrap=20, confidence=0.9, memory_budget="8MB", plugin_manager=pm)
    assert data["score"] == pytest.approx(api.score.to_dict(), abs=1e-6)  # another process
    assert data["significance"]["p_value"] == api.significance.p_value
    assert data["significance"]["ci"] == pytest.approx(list(api.significance.ci), abs=1e-6)


def test_cli_mutual_and_hungarian(setup, capsys):
    _, tmp = setup
    args = ["compare", "test_cli_compare:net_a", "test_cli_compare:net_b", "--probe", str(tmp / "probe.npy"), "--quiet"]
    assert main([*args, "--matching", "mutual"]) == 0
    assert "matched fraction  A->B" in capsys.readouterr().out
    assert main([*args, "--matching", "hungarian"]) == 2
    assert "layer 'act0' neurons [398, 399] (2 of 400)" in capsys.readouterr().err
    assert main([*args, "--matching", "hungarian", "--constant-neurons", "zero", "--top-k", "4"]) == 0


def test_cli_bad_values(setup, capsys):
    _, tmp = setup
    args = ["compare", "test_cli_compare:net_a", "test_cli_compare:net_b", "--probe", str(tmp / "probe.npy")]
    assert main([*args, "--sample-neurons", "1.5"]) == 2  # a usage error is one line too
    err = capsys.readouterr().err
    assert err.startswith("neurocorr: error: argument --sample-neurons") and err.count("\n") == 1
    assert "fraction must lie in (0, 1]" in err and "see 'neurocorr compare --help'" in err
    assert main([*args, "--memory-budget", "lots", "--quiet"]) == 2
    assert "memory budget 'lots' is not a size" in capsys.readouterr().err
