"""Faults during a run, delivered for real to a running ``neurocorr compare``: Ctrl-C (SIGINT)
ends it with one line and exit 130, SIGKILL leaves no half-written output and only whole
activation-cache entries, and a re-run then succeeds, reading the finished shards from the
cache; a closed standard output (``| head -1``) ends a command without a traceback.

The comparisons use ``fault_models:gated_mlp``, whose forward pass creates a marker file and
waits: a test signals the process once the marker shows it is mid-run, never after a fixed
sleep."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import bad_input
import fault_models
from neurocorr_scale.cache import ActivationCache
from neurocorr_scale.cache_entry import read_entry

SAMPLES = 40  # two shards of 20


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    """A probe, an output folder holding an earlier result, and the gate's folder (outside the
    folders whose state is checked)."""
    folders = {name: tmp_path / name for name in ("data", "out", "gate")}
    for folder in folders.values():
        folder.mkdir()
    np.save(folders["data"] / "probe.npy", np.random.default_rng(3).normal(size=(SAMPLES, 1, 8, 8)).astype(np.float32))
    (folders["out"] / "old.json").write_text('{"earlier": "result"}\n')
    return folders


def compare_argv(work: dict[str, Path], *extra: str) -> list[str]:
    """A comparison writing over the earlier result and a new CSV file."""
    return ["compare", "fault_models:gated_mlp", "grid_models:mlp_b", "--probe", str(work["data"] / "probe.npy"),
            "--quiet", "--json", str(work["out"] / "old.json"), "--csv", str(work["out"] / "new.csv"), *extra]


def assert_whole_entries(root: Path, count: int) -> None:
    """``count`` cache entries, each whole (its header's checksum matches), and nothing else."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert all(p.suffix == ".act" for p in files), f"not an entry: {files}"
    assert len(files) == count, files
    for path in files:
        assert read_entry(path, path.stem).dtype == np.float32  # raises on a half-written entry
    assert len(ActivationCache(root).entries()) == count


@pytest.mark.parametrize("extra", [
    pytest.param([], id="local"),
    pytest.param(["--shards", "2", "--cache-dir", "CACHE"], id="local-shards-cache"),
])  # on a Dask cluster: plugins/neurocorr-dask/tests/test_faults_dask.py
def test_ctrl_c_mid_run_is_one_line_exit_130_and_writes_nothing(work, extra):
    cache = work["gate"].parent / "cache"
    extra = [str(cache) if e == "CACHE" else e for e in extra]
    gate_after = 2 if "--cache-dir" in extra else 1  # with the cache: shard 1 done, shard 2 running
    before = bad_input.snapshot(work["data"], work["out"])
    fault_models.interrupt_mid_run(compare_argv(work, *extra), work["data"], work["gate"], gate_after)
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))
    if "--cache-dir" in extra:  # the first shard's two layers of each model, whole; no temporary file
        assert_whole_entries(cache, 4)


def test_sigkill_mid_run_leaves_whole_cache_entries_and_a_rerun_reads_them(work):
    cache = work["gate"].parent / "cache"
    argv = compare_argv(work, "--shards", "2", "--cache-dir", str(cache))
    before = bad_input.snapshot(work["data"], work["out"])
    proc = fault_models.start(argv, work["data"], fault_models.cli_env(work["gate"], gate_after=2))
    try:
        fault_models.wait_for(work["gate"] / "started", proc)
        assert fault_models.forward_batches(work["gate"]) == [20, 20]  # shard 1 done, shard 2 running
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))
    assert_whole_entries(cache, 4)

    (work["gate"] / "log").unlink()
    again = fault_models.run(argv, work["data"], fault_models.cli_env(work["gate"], gate_after=10**6))
    assert again.code == 0, again.err
    assert "Traceback" not in again.err
    # the finished shard came from the cache: model A ran over the second shard only
    assert fault_models.forward_batches(work["gate"]) == [20]
    assert_whole_entries(cache, 8)
    assert '"earlier"' not in (work["out"] / "old.json").read_text()
    assert (work["out"] / "new.csv").read_text().count("\n") >= 2


@pytest.mark.parametrize("argv", [
    pytest.param(["compare", "grid_models:mlp_a", "grid_models:mlp_b", "--probe", "probe.npy"], id="compare"),
    pytest.param(["compare", "grid_models:mlp_a", "grid_models:mlp_b", "--probe", "probe.npy", "--quiet", "--json",
                  "-"], id="compare-json-stdout"),
    pytest.param(["plugins", "--json"], id="plugins-json"),
])
def test_a_closed_standard_output_ends_quietly(tmp_path, argv):
    """``neurocorr ... | head -1``: the reader goes away; no traceback, exit 141 (SIGPIPE's)."""
    np.save(tmp_path / "probe.npy", np.random.default_rng(3).normal(size=(SAMPLES, 1, 8, 8)).astype(np.float32))
    before = bad_input.snapshot(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # no reader at all: the first write (or flush) fails
    try:
        done = subprocess.run(fault_models.command(argv), cwd=tmp_path, env=fault_models.cli_env(),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=240)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 141, (done.returncode, done.stderr)
    assert "BrokenPipe" not in done.stderr and "error" not in done.stderr, done.stderr  # (--json -: the summary)
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))
