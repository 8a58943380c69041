"""Faults delivered for real to a ``neurocorr compare`` running on a Dask LocalCluster: Ctrl-C
(SIGINT) ends it with one line and exit 130, shuts the cluster down and writes nothing. The
local cases and the helpers are the core's (tests/test_faults.py)."""

from __future__ import annotations

import pytest

import bad_input
import fault_models
from test_faults import compare_argv, work  # noqa: F401 - work is a fixture


@pytest.mark.slow
def test_ctrl_c_mid_run_on_a_dask_local_cluster_is_one_line_exit_130_and_writes_nothing(work):  # noqa: F811
    pytest.importorskip("distributed")
    before = bad_input.snapshot(work["data"], work["out"])
    argv = compare_argv(work, "--executor", "dask", "--workers", "2", "--shards", "2")
    fault_models.interrupt_mid_run(argv, work["data"], work["gate"])
    bad_input.assert_unchanged(before, bad_input.snapshot(work["data"], work["out"]))
