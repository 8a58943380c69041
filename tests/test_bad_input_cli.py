"""The bad-input matrix of probes, option values and metric plugins, through the real
``neurocorr`` command (a child process, with the numpy test provider as an installed plugin).

Every case asserts the exit status 2, one ``neurocorr: error:`` line on stderr naming the problem
and the fix (no traceback), and the whole test folder unchanged (nothing created, removed or
changed); where the input is an untrusted file with a payload, that the payload never ran.

Probes: non-positive --probe-limit and --batch-size (compare, run, grid, predict), complex,
non-numeric, NaN/Inf and sample-less arrays, empty, truncated and pickled .npy files, gzip IDX
files that inflate beyond their header, truncated or claim terabytes, a damaged gzip.
``layers --input-shape``: text, negative and absurd sizes. Metric plugins (a third-party
package installed beside the numpy provider): NaN where the similarity is defined, values
outside the declared range, a wrong shape, exceptions in the constructor, update and compute.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import bad_input
from numpy_cli import cli_env, write_probe

#: A third-party metric package: each metric breaks the Metric contract in one way.
BAD_METRICS = '''import numpy as np
from neurocorr_core import Metric, hookimpl


class Base(Metric):
    def update(self, x, y):
        pass

    def merge(self, other):
        pass

    def constant(self):
        return np.zeros(sum(self.sizes_a), bool), np.zeros(sum(self.sizes_b), bool)

    def compute(self):
        return np.zeros((sum(self.sizes_a), sum(self.sizes_b)))


class AllNan(Base):
    name = "all-nan"

    def compute(self):
        return np.full((sum(self.sizes_a), sum(self.sizes_b)), np.nan)


class Seven(Base):
    name = "seven"

    def compute(self):
        return np.full((sum(self.sizes_a), sum(self.sizes_b)), 7.0)


class WrongShape(Base):
    name = "wrong-shape"

    def compute(self):
        return np.zeros((2, 2))


class BadInit(Base):
    name = "bad-init"

    def __init__(self, sizes_a, sizes_b, **options):
        raise KeyError("no such table")


class BadUpdate(Base):
    name = "bad-update"

    def update(self, x, y):
        raise ZeroDivisionError("boom in update")


class BadCompute(Base):
    name = "bad-compute"

    def compute(self):
        return {}["missing"]


@hookimpl
def neurocorr_similarity_metrics():
    return [AllNan, Seven, WrongShape, BadInit, BadUpdate, BadCompute]
'''

COMPARE = ["compare", "grid_models:mlp_a", "grid_models:mlp_b", "--quiet"]


@pytest.fixture
def env(tmp_path):
    """The child's environment: the numpy provider and the bad metrics package installed."""
    site = tmp_path / "site"
    environment = cli_env(site)
    info = site / "bad_metrics-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-metrics\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[neurocorr]\nbad-metrics = bad_metrics\n")
    (site / "bad_metrics.py").write_text(BAD_METRICS)
    return environment


@pytest.fixture
def work(tmp_path):
    """The folder a user runs in, holding a good probe and every bad one."""
    folder = tmp_path / "work"
    folder.mkdir()
    write_probe(folder / "probe.npy")
    rng = np.random.default_rng(0)
    good = rng.normal(size=(40, 64))
    np.save(folder / "complex.npy", (good + 1j * good).astype(np.complex64))
    np.save(folder / "text.npy", np.array([["a"] * 64] * 40))
    np.save(folder / "nan.npy", np.where(np.arange(64) == 5, np.nan, good).astype(np.float32))
    np.save(folder / "inf.npy", np.where(np.arange(64) == 5, np.inf, good))
    np.save(folder / "huge.npy", np.full((40, 64), 1e300))  # beyond float32: Inf once cast
    np.save(folder / "no-features.npy", np.zeros((40, 0), dtype=np.float32))
    np.save(folder / "flat.npy", np.zeros(40, dtype=np.float32))
    (folder / "empty.npy").write_bytes(b"")
    (folder / "cut.npy").write_bytes((folder / "probe.npy").read_bytes()[:-100])
    _pickled_npy(folder / "pickled.npy", folder)
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (10, 8, 8))
    (folder / "bomb-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(32 * 2**20)))
    (folder / "cut-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(100)))
    huge = bytes([0, 0, 0x0E, 3]) + b"".join(n.to_bytes(4, "big") for n in (2**31, 2**16, 2**16))
    (folder / "huge-idx3-ubyte.gz").write_bytes(gzip.compress(huge + bytes(64)))
    (folder / "damaged-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    (folder / "atlas.db").write_bytes(b"")  # grid and predict fail on the batch size first
    return folder


def _pickled_npy(path: Path, marks: Path) -> None:
    """An object .npy whose pickle would create PWNED if it were ever loaded."""

    class Payload:
        def __reduce__(self):
            return (exec, (bad_input.payload(marks),))

    array = np.empty((2, 2), dtype=object)
    array[0, 0] = Payload()
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, allow_pickle=True)


def check(tmp_path: Path, argv: list[str], env: dict[str, str], cwd: Path, *words: str) -> str:
    """Run one case: exit 2, one error line with ``words``, the test folder unchanged, no payload."""
    before = bad_input.snapshot(tmp_path)
    run = bad_input.neurocorr(argv, cwd=cwd, env=env)
    line = bad_input.assert_user_error(run, *words)
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))
    bad_input.no_payload_ran(tmp_path)
    return line


PROBES = [  # (probe file, words of the error line: the problem and the fix)
    ("complex.npy", ["complex", "pass real values"]),
    ("text.npy", ["dtype", "astype(np.float32)"]),
    ("nan.npy", ["NaN/Inf", "samples", "clean the probe"]),
    ("inf.npy", ["NaN/Inf", "clean the probe"]),
    ("huge.npy", ["float32's range", "clean the probe"]),
    ("no-features.npy", ["hold no values", "features >= 1"]),
    ("flat.npy", ["shape (40,)", "(N, features)"]),
    ("empty.npy", ["empty.npy", "not a valid .npy file", "numpy.save"]),
    ("cut.npy", ["truncated", "save it again"]),
    ("pickled.npy", ["Python objects", "never loaded", "array of numbers"]),
    ("bomb-idx3-ubyte.gz", ["(10, 8, 8)", "more bytes follow"]),
    ("cut-idx3-ubyte.gz", ["truncated", "(10, 8, 8)"]),
    ("huge-idx3-ubyte.gz", ["more than the", "smaller probe"]),
    ("damaged-idx3-ubyte.gz", ["cannot read", "damaged"]),
]


@pytest.mark.parametrize(("probe", "words"), PROBES, ids=[p for p, _ in PROBES])
def test_bad_probe_file(tmp_path, env, work, probe, words):
    check(tmp_path, [*COMPARE, "--probe", probe], env, work, *words)


OPTIONS = [  # (command line after the models, words)
    (["compare", "--probe-limit", "-5"], ["probe limit", "-5", "at least 1", "--probe-limit N"]),
    (["compare", "--probe-limit", "0"], ["probe limit", "at least 1"]),
    (["compare", "--batch-size", "0"], ["batch size", "at least 1", "--batch-size N"]),
    (["compare", "--batch-size", "-3"], ["batch size", "-3", "at least 1"]),
    (["grid", "--batch-size", "0"], ["batch-size", "at least 1"]),
    (["grid", "--batch-size", "-2"], ["batch-size", "at least 1"]),
    (["predict", "grid_models:mlp_a", "--batch-size", "0"], ["batch-size", "at least 1"]),
    (["grid", "--probe-limit", "-5"], ["probe-limit", "at least"]),
]
#: grid and predict are commands of the neurocorr-atlas package.
NEEDS_ATLAS = pytest.mark.skipif(importlib.util.find_spec("neurocorr_atlas") is None,
                                 reason="grid and predict come with neurocorr-atlas: "
                                        "pip install -e plugins/neurocorr-atlas")


@pytest.mark.parametrize(("argv", "words"), [
    pytest.param(a, w, id=" ".join(a), marks=[NEEDS_ATLAS] if a[0] != "compare" else []) for a, w in OPTIONS])
def test_bad_count_option(tmp_path, env, work, argv, words):
    command, *rest = argv
    if command == "compare":
        full = [*COMPARE, "--probe", "probe.npy", *rest]
    else:
        full = [command, *rest, "--probe", "probe.npy", "--atlas", "atlas.db"]
    check(tmp_path, full, env, work, *words)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("batch_size", "0", ["batch size", "at least 1"]),
    ("probe_limit", "-5", ["probe limit", "at least 1"]),
])
def test_bad_count_in_experiment_file(tmp_path, env, work, key, value, words):
    (work / "experiment.toml").write_text('[models]\na = "grid_models:mlp_a"\nb = "grid_models:mlp_b"\n'
                                         f'[compare]\nprobe = "probe.npy"\n{key} = {value}\n')
    check(tmp_path, ["run", "experiment.toml", "--quiet"], env, work, *words)


SHAPES = [  # --input-shape, words
    ("abc", ["--input-shape 'abc'", "positive whole numbers", "1,28,28"]),
    ("1,-8,8", ["'1,-8,8'", "positive whole numbers"]),
    ("64,", ["positive whole numbers"]),
    ("100000,100000,100", ["values per sample", "real input shape"]),
]


@pytest.mark.parametrize(("shape", "words"), SHAPES, ids=[s for s, _ in SHAPES])
def test_bad_input_shape(tmp_path, env, work, shape, words):
    check(tmp_path, ["layers", "grid_models:mlp_a", "--input-shape", shape], env, work, *words)


METRICS = [  # metric, words: the metric, its package, what it did, and what to do
    ("all-nan", ["'all-nan'", "plugin bad-metrics, package bad-metrics, module bad_metrics",
                 "NaN value(s) for pairs of neurons that vary", "report it"]),
    ("seven", ["'seven'", "bad_metrics", "outside its declared range [-1, 1]", "7.0", "--metric"]),
    ("wrong-shape", ["'wrong-shape'", "shape (2, 2)", "the contract is (11, 12)"]),
    ("bad-init", ["'bad-init'", "__init__() raised KeyError", "metric options"]),
    ("bad-update", ["'bad-update'", "bad_metrics", "update() raised ZeroDivisionError: boom in update"]),
    ("bad-compute", ["'bad-compute'", "compute() raised KeyError", "report it"]),
]


@pytest.mark.parametrize(("metric", "words"), METRICS, ids=[m for m, _ in METRICS])
def test_broken_metric_plugin(tmp_path, env, work, metric, words):
    check(tmp_path, [*COMPARE, "--probe", "probe.npy", "--metric", metric], env, work, *words)


def test_a_good_probe_runs_with_the_same_setup(tmp_path, env, work):
    """The matrix's setup is sound: the same command with a good probe and metric succeeds."""
    run = bad_input.neurocorr([*COMPARE, "--probe", "probe.npy", "--probe-limit", "20", "--batch-size", "7"],
                            cwd=work, env=env)
    assert run.code == 0, run.err
    assert "probe: probe.npy[:20] (20 samples)" in run.out


#: Usage errors argparse finds: one line too, naming the command whose --help to read.
USAGE = [
    (["bogus"], ["invalid choice: 'bogus'", "see 'neurocorr --help'"]),
    ([], ["required: COMMAND", "see 'neurocorr --help'"]),
    (["compare", "grid_models:mlp_a"], ["required: model_b", "see 'neurocorr compare --help'"]),
    ([*COMPARE, "--probe", "probe.npy", "--executor", "spark"],
     ["--executor", "invalid choice: 'spark'", "see 'neurocorr compare --help'"]),
    ([*COMPARE, "--probe", "probe.npy", "--permutations", "many"],
     ["--permutations", "invalid int value", "see 'neurocorr compare --help'"]),
    ([*COMPARE, "--probe", "probe.npy", "--no-such-flag"], ["unrecognized arguments: --no-such-flag"]),
    (["cache", "wipe"], ["invalid choice: 'wipe'", "see 'neurocorr cache --help'"]),
]


@pytest.mark.parametrize(("argv", "words"), USAGE, ids=[" ".join(a[:1] + a[-2:]) or "nothing" for a, _ in USAGE])
def test_usage_error_is_one_line(tmp_path, env, work, argv, words):
    check(tmp_path, argv, env, work, *words)
