"""The bad-input matrix of outputs and the activation cache: the real ``neurocorr`` command, and
for each case the exit status, one ``neurocorr: error:`` line naming the problem and the fix, and
the folders involved exactly as they were (nothing created, removed or changed).

Outputs: a missing folder, a folder, a read-only folder, two outputs naming one file (by any
spelling), ``-`` where it cannot go, a later output that fails while the earlier ones are
written (files that existed keep their bytes), ``--json -`` and ``--csv -`` holding only the data
while a model builder prints, and the mode of new files. The cache: ``cache clear`` deletes only
the cache's own entries (never through a link, never a foreign file or folder), a read-only cache
folder is one line, and a corrupt entry is recomputed.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest

import bad_input
from neurocorr_core import NeurocorrError, compare
from neurocorr_core.outputs import CSV_COLUMNS
from neurocorr_scale.cache import ActivationCache
from neurocorr_scale.cache_entry import MAGIC, read_entry
from numpy_cli import cli_env, read_only_folder, write_probe

COMPARE = ["compare", "grid_models:mlp_a", "grid_models:mlp_b", "--probe", "probe.npy", "--quiet"]
EARLIER = b'{"an": "earlier result"}\n'

#: A builder that prints, from Python and at the file-descriptor level (as C code does).
NOISY = '''import os
from grid_models import mlp_a

def net():
    print("building the model ...")
    os.write(1, b"native noise\\n")
    return mlp_a()
'''


@pytest.fixture
def work(tmp_path):
    """The folder a user runs in: a probe, an earlier result, a noisy builder."""
    folder = tmp_path / "work"
    folder.mkdir()
    write_probe(folder / "probe.npy")
    (folder / "old.json").write_bytes(EARLIER)
    (folder / "noisy.py").write_text(NOISY)
    return folder


@pytest.fixture
def env(tmp_path):
    return cli_env(tmp_path / "site")


def refused(argv, work, env, *words, roots=()):
    """Run ``argv`` in ``work``; it must fail with one line holding ``words`` and leave
    ``work`` (and ``roots``) as they were."""
    before = bad_input.snapshot(work, *roots)
    run = bad_input.neurocorr(argv, cwd=work, env=env)
    bad_input.assert_user_error(run, *words)
    bad_input.assert_unchanged(before, bad_input.snapshot(work, *roots))
    return run


# -- outputs refused before the comparison ---------------------------------------------------------
def _folder(work):
    (work / "out").mkdir()


def _sub(work):
    (work / "sub").mkdir()


def _link(work):
    (work / "link.json").symlink_to("old.json")


REFUSED = [
    ("missing folder", ["--json", "nowhere/r.json"], None, ["nowhere", "does not exist", "create it"]),
    ("a folder", ["--report", "out"], _folder, ["out", "is a folder", "give a file name"]),
    ("parent is a file", ["--csv", "probe.npy/r.csv"], None, ["probe.npy", "does not exist"]),
    ("same path twice", ["--json", "r.json", "--report", "r.json"], None,
     ["--json and --report", "r.json", "its own file"]),
    ("same path, relative spelling", ["--json", "r.json", "--csv", "sub/../r.json"], _sub,
     ["--json and --csv", "its own file"]),
    ("same path through a link", ["--json", "link.json", "--report", "old.json"], _link,
     ["--json and --report", "its own file"]),
    ("report to stdout", ["--report", "-"], None, ["--report -", "standard output", "give a file name"]),
    ("heatmap to stdout", ["--heatmap", "-"], None, ["--heatmap -", "give a file name"]),
    ("json and csv both to stdout", ["--json", "-", "--csv", "-"], None,
     ["--json and --csv", "standard output", "send one of them to a file"]),
    ("heatmap format", ["--heatmap", "h.jpg"], None, ["h.jpg", ".png or .svg"]),
]


@pytest.mark.parametrize(("extra", "setup", "words"), [pytest.param(*c[1:], id=c[0]) for c in REFUSED])
def test_outputs_that_cannot_be_written_are_refused_first(work, env, extra, setup, words):
    if setup is not None:
        setup(work)
    run = refused([*COMPARE, *extra], work, env, *words)
    assert "score A->B" not in run.out + run.err, "refused before the comparison, not after it"


@pytest.mark.parametrize("kind", ["json", "csv", "report", "heatmap"])
def test_an_output_in_a_read_only_folder_is_refused_first(work, env, kind):
    with read_only_folder(work / "locked"):
        name = "locked/h.svg" if kind == "heatmap" else f"locked/r.{kind}"
        run = refused([*COMPARE, f"--{kind}", name], work, env, f"--{kind}", "cannot write", "choose a folder")
    assert "score A->B" not in run.out + run.err


# -- an output that fails after the comparison ----------------------------------------------------------
def test_earlier_files_keep_their_bytes_when_a_later_output_fails_to_write(work, env):
    """The report is larger than the system lets a process write (ulimit -f): the JSON and CSV,
    which fit and existed before, keep their old bytes, and no temporary file is left."""
    (work / "r.json").write_bytes(EARLIER)
    (work / "r.csv").write_bytes(b"metric,score\nold,1\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))  # inherited by the child only
    try:
        refused([*COMPARE, "--json", "r.json", "--csv", "r.csv", "--report", "r.html"], work, env,
                "r.html", "File too large", "ulimit")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_report_that_cannot_be_drawn_leaves_every_file_as_it_was(work, env, tmp_path):
    """matplotlib present but broken: the figures fail after the comparison; nothing is written."""
    broken = tmp_path / "broken" / "matplotlib"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('matplotlib is broken here')\n")
    (work / "r.json").write_bytes(EARLIER)
    env = {**env, "PYTHONPATH": os.pathsep.join([str(broken.parent), env["PYTHONPATH"]])}
    refused([*COMPARE, "--json", "r.json", "--report", "r.html"], work, env, "matplotlib", "install it")


# -- standard output holds only the data ---------------------------------------------------------------
def test_json_to_stdout_is_pure_json_while_the_builder_prints(work, env):
    before = bad_input.snapshot(work)
    run = bad_input.neurocorr(["compare", "noisy:net", "grid_models:mlp_b", "--probe", "probe.npy", "--quiet",
                             "--json", "-"], cwd=work, env=env)
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["model_a"] == "noisy:net" and set(data["score"]) == {"a_to_b", "b_to_a", "symmetric"}
    assert "building the model" in run.err and "native noise" in run.err and "score A->B" in run.err
    bad_input.assert_unchanged(before, bad_input.snapshot(work))  # no file named '-'


def test_csv_to_stdout_is_pure_csv_while_the_builder_prints(work, env):
    before = bad_input.snapshot(work)
    run = bad_input.neurocorr(["compare", "noisy:net", "grid_models:mlp_b", "--probe", "probe.npy", "--quiet",
                             "--csv", "-"], cwd=work, env=env)
    assert run.code == 0, run.err
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["side"] for r in rows if r["scope"] == "network"] == ["a_to_b", "b_to_a", "symmetric"]
    assert "building the model" in run.err and "native noise" not in run.out
    bad_input.assert_unchanged(before, bad_input.snapshot(work))


def test_json_to_stdout_and_to_a_file_agree(work, env):
    to_file = bad_input.neurocorr([*COMPARE, "--json", "r.json"], cwd=work, env=env)
    to_stdout = bad_input.neurocorr([*COMPARE, "--json", "-"], cwd=work, env=env)
    assert to_file.code == to_stdout.code == 0, to_file.err + to_stdout.err
    assert "wrote r.json" in to_file.out and "wrote" not in to_stdout.out
    written = json.loads((work / "r.json").read_text())
    printed = json.loads(to_stdout.out)
    assert printed["score"] == pytest.approx(written["score"], abs=1e-12)


def test_every_new_output_gets_the_umask_mode(work, env):
    old = os.umask(0o027)  # inherited by the child
    try:
        run = bad_input.neurocorr([*COMPARE, "--json", "r.json", "--csv", "r.csv", "--heatmap", "h.svg"],
                                cwd=work, env=env)
    finally:
        os.umask(old)
    assert run.code == 0, run.err
    modes = {name: oct((work / name).stat().st_mode & 0o777) for name in ("r.json", "r.csv", "h.svg")}
    assert modes == dict.fromkeys(modes, oct(0o640))
    assert not [p.name for p in work.iterdir() if p.name.endswith((".tmp", ".check"))]


# -- the activation cache ------------------------------------------------------------------------------
def _fill_cache(cache: Path, work: Path, env) -> list[Path]:
    run = bad_input.neurocorr([*COMPARE, "--cache-dir", str(cache)], cwd=work, env=env)
    assert run.code == 0, run.err
    entries = sorted(cache.glob("*/*.act"))
    assert entries and all(p.read_bytes().startswith(MAGIC) for p in entries)
    return entries


def _foreign(folder: Path) -> Path:
    """Someone else's files: one named and shaped like a cache folder and entry."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine")
    (folder / f"{'a' * 64}.act").write_bytes(b"not a cache entry")
    return folder


def _clear(cache: Path, work: Path, env) -> bad_input.Run:
    run = bad_input.neurocorr(["cache", "clear", "--cache-dir", str(cache)], cwd=work, env=env)
    assert run.code == 0 and "Traceback" not in run.err, run.err
    return run


def test_clear_does_not_follow_a_link_inside_the_cache(work, env, tmp_path):
    cache = tmp_path / "cache"
    entries = _fill_cache(cache, work, env)
    elsewhere = _foreign(tmp_path / "elsewhere")
    shutil.copy(entries[0], elsewhere / entries[0].name)  # a real entry, outside the cache
    linked, dangling = _free_names(cache, 2)  # named like the cache's own folders
    (cache / linked).symlink_to(elsewhere)
    (cache / dangling).symlink_to(tmp_path / "nothing-here")
    before = bad_input.snapshot(elsewhere)
    run = _clear(cache, work, env)
    assert f"removed {len(entries)} entries" in run.out
    bad_input.assert_unchanged(before, bad_input.snapshot(elsewhere))
    assert sorted(p.name for p in cache.iterdir()) == sorted([linked, dangling])
    assert (cache / linked).is_symlink() and (cache / dangling).is_symlink()


def _free_names(cache: Path, count: int) -> list[str]:
    """Two-hex-digit names no folder of ``cache`` has."""
    return [n for n in (f"{i:02x}" for i in range(256)) if not (cache / n).exists()][:count]


def test_clear_through_a_link_to_the_cache_folder_keeps_the_link(work, env, tmp_path):
    real = tmp_path / "big-disk" / "cache"
    entries = _fill_cache(real, work, env)
    (tmp_path / "cache").symlink_to(real)
    run = _clear(tmp_path / "cache", work, env)
    assert f"removed {len(entries)} entries" in run.out
    assert (tmp_path / "cache").is_symlink() and real.is_dir() and list(real.iterdir()) == []


def test_clear_keeps_foreign_files_and_folders(work, env, tmp_path):
    """A folder given as the cache that also holds other things: only the cache's own entries,
    temporary files and (emptied) two-hex-digit folders go."""
    cache = tmp_path / "shared"
    entries = _fill_cache(cache, work, env)
    own = entries[0].parent
    _foreign(cache / "results")  # a folder with files
    (cache / "empty").mkdir()  # foreign empty folders, one named like a cache folder's neighbour
    (cache / "zz").mkdir()
    (cache / "top.act").write_bytes(b"x")
    _foreign(own)  # foreign files inside one of the cache's folders
    (own / f".{entries[0].name}.abc123.tmp").write_bytes(b"half an entry")  # the cache's own, stale
    keep = [cache / "results", cache / "empty", cache / "zz", cache / "top.act", own / "notes.txt",
            own / f"{'a' * 64}.act"]
    before = bad_input.snapshot(*keep)
    run = _clear(cache, work, env)
    assert f"removed {len(entries)} entries" in run.out
    bad_input.assert_unchanged(before, bad_input.snapshot(*keep))
    assert sorted(p.name for p in own.iterdir()) == sorted(["notes.txt", f"{'a' * 64}.act"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(["results", "empty", "zz", "top.act", own.name])


def test_clear_of_a_read_only_cache_is_one_line(work, env, tmp_path):
    entries = []

    def fill(folder):
        entries.extend(_fill_cache(folder / "cache", work, env))

    with read_only_folder(tmp_path / "ro", fill):
        refused(["cache", "clear", "--cache-dir", str(tmp_path / "ro" / "cache")], work, env,
                "cannot clear the activation cache", "0 entries were deleted", roots=[tmp_path / "ro"])
    assert entries


def test_a_read_only_cache_folder_is_refused_before_the_work(work, env, tmp_path):
    with read_only_folder(tmp_path / "ro"):
        run = refused([*COMPARE, "--cache-dir", str(tmp_path / "ro" / "cache")], work, env,
                      "cannot write the activation cache", "run without the cache", roots=[tmp_path / "ro"])
    assert "score A->B" not in run.out + run.err


def test_a_file_as_the_cache_folder_is_refused(work, env):
    refused([*COMPARE, "--cache-dir", "old.json"], work, env, "old.json", "is a file", "give a folder")


def test_a_corrupt_entry_is_recomputed_and_rewritten_whole(work, env, tmp_path):
    cache = tmp_path / "cache"
    entries = _fill_cache(cache, work, env)
    first = json.loads(bad_input.neurocorr([*COMPARE, "--cache-dir", str(cache), "--json", "-"],
                                         cwd=work, env=env).out)
    victim = entries[0]
    victim.write_bytes(victim.read_bytes()[:-7])  # truncated, as by a crash without the rename
    run = bad_input.neurocorr([*COMPARE, "--cache-dir", str(cache), "--json", "-"], cwd=work, env=env)
    assert run.code == 0, run.err
    assert json.loads(run.out)["score"] == pytest.approx(first["score"], abs=1e-6)
    for path in sorted(cache.glob("*/*.act")):
        assert read_entry(path, path.stem).size > 0  # every entry whole again (raises if not)
    assert sorted(cache.glob("*/*.act")) == entries and not list(cache.glob("*/.*.tmp"))


# -- the same through the Python API ---------------------------------------------------------------------
def test_api_read_only_cache_and_unwritable_json(pm, tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 64)).astype(np.float32)
    with read_only_folder(tmp_path / "ro"):
        before = bad_input.snapshot(tmp_path / "ro")
        with pytest.raises(NeurocorrError, match="cannot write the activation cache .* without the cache"):
            compare("grid_models:mlp_a", "grid_models:mlp_b", x, cache=tmp_path / "ro" / "c", plugin_manager=pm)
        result = compare("grid_models:mlp_a", "grid_models:mlp_b", x, plugin_manager=pm)
        with pytest.raises(NeurocorrError, match=r"cannot write .*r\.json: .*; nothing was written"):
            result.to_json(tmp_path / "ro" / "r.json")
        bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path / "ro"))
    assert ActivationCache(tmp_path / "c", 10**6).entries() == []


# -- the same rules on 'run' and 'predict' ------------------------------------------------------------
EXPERIMENT = """[models]
a = "grid_models:mlp_a"
b = "grid_models:mlp_b"
[compare]
probe = "probe.npy"
quiet = true
[outputs]
json = "r.json"
"""


@pytest.mark.parametrize(("extra", "words"), [
    (["--report", "r.json"], ["exp.toml", "--json and --report", "r.json", "its own file"]),
    (["--json", "-", "--csv", "-"], ["--json and --csv", "standard output", "send one of them to a file"]),
    (["--report", "-"], ["--report -", "give a file name"]),
], ids=["same file as the experiment's json", "json and csv both to stdout", "report to stdout"])
def test_run_refuses_outputs_as_compare_does_before_the_work(work, env, extra, words):
    (work / "exp.toml").write_text(EXPERIMENT)
    run = refused(["run", "exp.toml", *extra], work, env, *words)
    assert "score A->B" not in run.out + run.err


@pytest.mark.skipif(importlib.util.find_spec("neurocorr_atlas") is None,
                    reason="predict comes with neurocorr-atlas: pip install -e plugins/neurocorr-atlas")
def test_predict_json_to_stdout_is_pure_json(work, env):
    for name in ("mlp_a", "mlp_b", "cnn_a"):
        added = bad_input.neurocorr(["atlas", "add", f"grid_models:{name}", "--accuracy", "0.9",
                                   "--atlas", "atlas.db"], cwd=work, env=env)
        assert added.code == 0, added.err
    before = bad_input.snapshot(work)
    run = bad_input.neurocorr(["predict", "noisy:net", "--atlas", "atlas.db", "--probe", "probe.npy", "--no-cache",
                             "--json", "-"], cwd=work, env=env)
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert set(data["scores"]) == {"mlp_a", "mlp_b", "cnn_a"}
    assert "building the model" in run.err and "native noise" in run.err
    after = bad_input.snapshot(work)
    assert not any(Path(p).name == "-" for p in after)  # no file named '-'
    assert {p for p in after if not p.startswith(str(work / "atlas.db"))} == \
        {p for p in before if not p.startswith(str(work / "atlas.db"))}
