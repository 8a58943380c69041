"""A real full disk: a 64 KiB tmpfs (root only; skipped, with the reason, elsewhere).

The outputs of a comparison whose report does not fit: one error line naming the file and the
cause, the files that were there before keep their bytes, no temporary file is left. The
activation cache on a disk that fills up mid-run: one line, and every file left in the cache is
a whole entry (none half-written).
"""

from __future__ import annotations

import pytest

import bad_input
from neurocorr_scale.cache_entry import read_entry
from numpy_cli import cli_env, mount_tmpfs, unmount, write_probe

COMPARE = ["compare", "grid_models:mlp_a", "grid_models:mlp_b", "--quiet"]


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "size=64k,mode=755")
    try:
        yield disk
    finally:
        unmount(disk)


@pytest.fixture
def env(tmp_path):
    return cli_env(tmp_path / "site")


def test_a_report_that_does_not_fit_leaves_the_earlier_outputs_as_they_were(small_disk, env, tmp_path):
    write_probe(tmp_path / "probe.npy")
    earlier = {"r.json": b'{"an": "earlier result"}\n', "r.csv": b"metric,score\nold,1\n",
               "r.html": b"<!DOCTYPE html><p>an earlier report</p>\n"}
    for name, data in earlier.items():
        (small_disk / name).write_bytes(data)
    before = bad_input.snapshot(small_disk, tmp_path / "probe.npy")
    run = bad_input.neurocorr([*COMPARE, "--probe", "probe.npy", "--json", str(small_disk / "r.json"),
                             "--csv", str(small_disk / "r.csv"), "--report", str(small_disk / "r.html")],
                            cwd=tmp_path, env=env)
    bad_input.assert_user_error(run, "r.html", "No space left on device", "existing files are unchanged",
                              "free some space")
    bad_input.assert_unchanged(before, bad_input.snapshot(small_disk, tmp_path / "probe.npy"))
    assert {p.name: p.read_bytes() for p in small_disk.iterdir()} == earlier  # and no temporary file
    assert "wrote" not in run.out


def test_a_cache_on_a_disk_that_fills_up_keeps_only_whole_entries(small_disk, env, tmp_path):
    # 1,500 samples: an entry of 24-48 kB per layer (4-8 neurons), so the disk fills after the first
    write_probe(tmp_path / "probe.npy", samples=1500)
    cache = small_disk / "cache"
    run = bad_input.neurocorr([*COMPARE, "--probe", "probe.npy", "--cache-dir", str(cache)], cwd=tmp_path, env=env)
    bad_input.assert_user_error(run, "cannot write the activation cache", "No space left on device",
                              "free some space", "run without the cache")
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files, "the first entry fits and stays"
    assert [p.name for p in files if not p.name.endswith(".act")] == [], "a temporary file was left"
    for path in files:
        assert read_entry(path, path.stem).shape[0] == 1500  # whole and checked, or this raises
