"""Trust on a Dask LocalCluster: a ``module:callable`` reference beside an experiment file
reaches the cluster's workers (new processes) by the experiment's folder, with the same rules,
so a shadow file beside it never runs there either. The helpers and the other trust cases are
the core's (tests/test_bad_input_trust.py)."""

from __future__ import annotations

import pytest

import bad_input
from test_bad_input_trust import LOCAL_NETS, assert_works, experiment, place, run_case, shadow  # noqa: F401


def test_a_local_reference_reaches_the_workers_of_a_local_cluster(place):  # noqa: F811 - place is a fixture
    """The workers are new processes: they learn the experiment's folder from the environment
    (sys.path no longer carries it), with the same rules, so a shadow beside it still never runs."""
    pytest.importorskip("distributed")
    (place.exp / "local_nets.py").write_text(LOCAL_NETS)
    shadow(place.exp, "colorsys", place.root)
    path = experiment(place.exp, "local_nets:net_a", "local_nets:net_b", 'executor = "dask"\nworkers = 1')
    result, before, after = run_case(place, ["run", str(path)])
    assert_works(result)
    assert "ran on dask" in result.out
    bad_input.assert_unchanged(before, after)
