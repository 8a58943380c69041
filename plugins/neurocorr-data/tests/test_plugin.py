"""Probes by name are a plugin package: without it (blocked with NEUROCORR_DISABLE_PLUGINS) arrays
and .npy probes still work, ``neurocorr --help`` lists no ``data``, and a data set's name, an IDX
file or ``neurocorr data`` names the package to install. The real command runs in a child process."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import bad_input
from bad_input import listed_commands
from fault_models import run_cli
from neurocorr_core import load_probe
from neurocorr_data import datasets

BLOCKED = {"NEUROCORR_DISABLE_PLUGINS": "data"}
MODELS = ["grid_models:mlp_a", "grid_models:mlp_b"]


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(5)
    np.save(tmp_path / "probe.npy", rng.normal(size=(20, 64)).astype(np.float32))
    pixels = rng.integers(0, 256, size=(20, 8, 8), dtype=np.uint8)  # IDX by hand: type 0x08, 3 dims
    raw = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 20, 8, 8) + pixels.tobytes()
    (tmp_path / "probe-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    return tmp_path


def test_the_package_reads_names_and_idx_files_through_the_hook(pm, folder):
    assert pm.probe_names() == list(datasets.BUILTIN)
    assert pm.registry["command"]["data"][1] == "data"
    assert next(i for i in pm.plugins() if i.name == "data").provides["probe"] == list(datasets.BUILTIN)
    probe = pm.load_probe(str(folder / "probe-idx3-ubyte.gz"))
    assert probe is not None and probe.data.shape == (20, 1, 8, 8) and probe.data.max() <= 1.0
    assert pm.load_probe(str(folder / "probe.npy")) is None  # .npy is the core's own
    np.testing.assert_array_equal(load_probe(folder / "probe-idx3-ubyte.gz").data, probe.data)


def test_without_the_package_npy_probes_compare_and_names_name_it(folder):
    result = run_cli(["compare", *MODELS, "--probe", "probe.npy", "--quiet"], folder, **BLOCKED)
    assert result.code == 0, result.err
    assert "data" not in listed_commands(run_cli(["--help"], folder, **BLOCKED).out)
    assert "data" in listed_commands(run_cli(["--help"], folder).out)
    bad_input.assert_user_error(run_cli(["data", "mnist", "x.tgz"], folder, **BLOCKED), "'data'", "neurocorr-data")
    before = bad_input.snapshot(folder)
    for probe in ("digits", "probe-idx3-ubyte.gz"):
        failed = run_cli(["compare", *MODELS, "--probe", probe, "--quiet"], folder, **BLOCKED)
        bad_input.assert_user_error(failed, "neurocorr-data")
    bad_input.assert_unchanged(before, bad_input.snapshot(folder))
