"""Options: one frozen, checked object for the options of a comparison (API, command line, tables)."""

import dataclasses

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_core.commands import compare_parser
from neurocorr_core.options import Options, describe, fits


def test_defaults_are_compares_defaults_and_the_object_is_frozen():
    options = Options()
    assert (options.metric, options.matching, options.neurons, options.batch_size) == ("pearson", "max",
                                                                                        "channel", 256)
    assert options.absolute and not options.significance and options.budget is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.metric = "spearman"  # type: ignore[misc]


def test_checked_values_are_kept_normalised():
    options = Options(batch_size=np.int64(8), memory_budget="1KB", sample_probe=0.5)
    assert options.batch_size == 8 and type(options.batch_size) is int
    assert options.memory_budget == 1000 and options.budget == 1000
    assert Options(permutations=10).significance


@pytest.mark.parametrize(("keywords", "message"), [
    ({"neurons": "pixel"}, "unknown neuron view 'pixel'; choose one of channel, position"),
    ({"depth_penalty": "log"}, "unknown depth penalty 'log'; choose one of"),
    ({"batch_size": 0}, "batch size must be a whole number of at least 1"),
    ({"confidence": 1.5}, "confidence"),
    ({"sample_neurons": -1}, "sample_neurons"),
    ({"memory_budget": "lots"}, "lots"),
])
def test_every_way_in_is_refused_with_the_same_message(keywords, message):
    with pytest.raises(NeurocorrError, match=message):
        Options(**keywords)
    with pytest.raises(NeurocorrError, match=message):
        Options.of(**keywords)
    with pytest.raises(NeurocorrError, match=message):
        compare(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((4, 1)), **keywords)


def test_of_replaces_fields_and_refuses_an_unknown_name():
    base = Options(metric="spearman", seed=3)
    assert Options.of(base, seed=4) == Options(metric="spearman", seed=4)
    assert Options.of(base) is base
    with pytest.raises(NeurocorrError, match=r"unknown comparison option 'sede' \(did you mean 'seed'\?\)"):
        Options.of(sede=1)


def test_from_mapping_checks_types_from_the_fields():
    options = Options.from_mapping({"metric": "spearman", "batch-size": 16, "matching_options": {"top_k": 4},
                                    "layers_a": ["conv*", "fc"], "sample_neurons": 0.5})
    assert options == Options(metric="spearman", batch_size=16, matching_options={"top_k": 4},
                              layers_a=["conv*", "fc"], sample_neurons=0.5)
    with pytest.raises(NeurocorrError, match=r"compare\.batch_size: must be an integer, not a string '16'"):
        Options.from_mapping({"batch_size": "16"}, where="compare")
    with pytest.raises(NeurocorrError, match=r"compare\.absolute: must be true or false, not an integer 1"):
        Options.from_mapping({"absolute": 1}, where="compare")
    with pytest.raises(NeurocorrError, match=r"x\.metirc: unknown key \(did you mean 'metric'\?\)"):
        Options.from_mapping({"metirc": "pearson"}, where="x")
    with pytest.raises(NeurocorrError, match="given twice"):
        Options.from_mapping({"batch_size": 1, "batch-size": 2})
    with pytest.raises(NeurocorrError, match="^t: unknown depth penalty"):
        Options.from_mapping({"depth_penalty": "log"}, where="t")


def test_types_in_words():
    assert describe(int | None) == "an integer" and describe(float | int | None) == "a number or an integer"
    assert describe(dict[str, int]) == "a table" and fits({"top_k": 4}, dict[str, int])
    assert fits(2, float) and not fits(True, int) and not fits(1.5, int)


def test_the_command_line_builds_the_same_options():
    args = compare_parser().parse_args(["a.npz", "b.npz", "--probe", "digits", "--signed", "--top-k", "5",
                                        "--batch-size", "32", "--memory-budget", "2KB", "--quiet"])
    assert Options.from_args(args) == Options(absolute=False, matching_options={"top_k": 5}, batch_size=32,
                                              memory_budget=2000, executor_options={})


def test_a_grid_config_is_checked_as_options_are_and_keeps_its_key():
    from neurocorr_core.probe import Probe
    from neurocorr_scale.grid import GridConfig

    with pytest.raises(NeurocorrError, match="unknown neuron view 'pixel'"):
        GridConfig(neurons="pixel")
    config = GridConfig.from_options(Options(depth_penalty="none", absolute=False, seed=7))
    assert config == GridConfig(depth_penalty="none", absolute=False)
    assert config.options() == Options(depth_penalty="none", absolute=False, metric_options={}, matching_options={})
    probe = Probe(np.arange(12.0).reshape(4, 3), "p")
    assert config.key(probe) == GridConfig(depth_penalty="none", absolute=False).key(probe)
