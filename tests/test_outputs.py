"""The outputs of a comparison as a set: the CSV, their checks before any work, their rendering in
memory and the all-or-nothing writing of them (neurocorr_core.outputs)."""

import csv
import errno
import io
import json
import os

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare
from neurocorr_core import files as files_module
from neurocorr_core.files import check_writable, write_atomic, write_files
from neurocorr_core.outputs import CSV_COLUMNS, check_outputs, csv_text, render_outputs, write_all
from neurocorr_core.report import write_report
from numpy_models import mlp

pytest.importorskip("matplotlib", reason="the report and heatmap outputs need matplotlib: "
                    "pip install 'neurocorr-core[plots]'")


@pytest.fixture
def result(pm):
    x = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    return compare(mlp(0, [12, 8], dead=3), mlp(1, [10, 10]), x, layers_a="*", layers_b="*",
                   plugin_manager=pm)


def test_csv_rows_equal_the_result(result):
    rows = list(csv.DictReader(io.StringIO(csv_text([result]))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    network = {r["side"]: float(r["score"]) for r in rows if r["scope"] == "network"}
    assert network == pytest.approx(result.score.to_dict())
    layers = [r for r in rows if r["scope"] == "layer"]
    assert len(layers) == len(result.layers_a) + len(result.layers_b)
    for row, lr in zip(layers, [*result.layers_a, *result.layers_b], strict=True):
        assert (row["layer"], int(row["neurons"]), int(row["dead"])) == (lr.info.name, lr.neurons, lr.dead)
        assert float(row["score"]) == pytest.approx(lr.score)
        assert row["metric"] == "pearson"


def test_outputs_are_all_or_nothing(result, tmp_path, monkeypatch):
    """A failure while the report is written (the disk fills) leaves every file as it was: the
    one that existed keeps its bytes, none is created, no temporary file stays behind."""
    outputs = {"json": tmp_path / "r.json", "csv": tmp_path / "r.csv", "report": tmp_path / "r.html",
               "heatmap": tmp_path / "h.svg"}
    files = render_outputs(result, outputs)
    assert json.loads(files[outputs["json"]])["score"]["symmetric"] == pytest.approx(result.score.symmetric)
    assert files[outputs["heatmap"]].startswith(b"<?xml")
    outputs["json"].write_bytes(b"an earlier result")
    real = files_module._chunks

    def disk_full_on_report(content):
        if content is files[outputs["report"]]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(content)

    monkeypatch.setattr(files_module, "_chunks", disk_full_on_report)
    with pytest.raises(NeurocorrError, match=r"cannot write .*r\.html: No space left on device; nothing was "
                                             r"written and existing files are unchanged; free some space"):
        write_all(files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"], "only the file that existed, no temporaries"
    assert outputs["json"].read_bytes() == b"an earlier result"
    monkeypatch.setattr(files_module, "_chunks", real)
    write_all(files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.svg", "r.csv", "r.html", "r.json"]
    assert outputs["json"].read_bytes() == files[outputs["json"]]


def test_every_output_gets_the_mode_of_a_new_file(result, tmp_path):
    """--json used to be 0600 (mkstemp's mode) while reports were 0644: one writer, one mode."""
    old = os.umask(0o027)
    try:
        result.to_json(tmp_path / "api.json")
        write_report(result, tmp_path / "api.html")
        write_all(render_outputs(result, {"json": tmp_path / "r.json", "csv": tmp_path / "r.csv"}))
    finally:
        os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["api.json", "api.html", "r.json", "r.csv"], oct(0o640))


def test_a_link_is_written_through_and_kept(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    write_atomic(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"
    with pytest.raises(NeurocorrError, match="are the same file; give each output its own file"):
        write_files({tmp_path / "link.json": b"1", tmp_path / "real.json": b"2"})
    assert (tmp_path / "real.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_two_outputs_naming_one_file_are_refused_before_rendering(result, tmp_path):
    with pytest.raises(NeurocorrError, match=r"--json and --report both name the file .*r\.json"):
        render_outputs(result, {"json": tmp_path / "r.json", "report": tmp_path / "." / "r.json"})
    with pytest.raises(NeurocorrError, match="--json and --csv both write to standard output"):
        check_outputs({"json": "-", "csv": "-"})
    with pytest.raises(NeurocorrError, match="only --json and --csv can write to standard output"):
        check_outputs({"report": "-"})
    assert list(tmp_path.iterdir()) == []


def test_check_writable_names_the_problem(tmp_path):
    with pytest.raises(NeurocorrError, match=r"the folder .*nowhere does not exist; create it"):
        check_writable(tmp_path / "nowhere" / "r.html", "--report")
    with pytest.raises(NeurocorrError, match=r"\(--report\): it is a folder; give a file name"):
        check_writable(tmp_path, "--report")
    (tmp_path / "file").write_text("")
    with pytest.raises(NeurocorrError, match="does not exist"):
        check_writable(tmp_path / "file" / "r.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unknown_output_kind_and_heatmap_format(result, tmp_path):
    with pytest.raises(NeurocorrError, match="unknown output 'pdf'; choose from json, csv, report, heatmap"):
        render_outputs(result, {"pdf": tmp_path / "r.pdf"})
    with pytest.raises(NeurocorrError, match=r"name the file .png or .svg"):
        render_outputs(result, {"heatmap": tmp_path / "h.jpg"})
