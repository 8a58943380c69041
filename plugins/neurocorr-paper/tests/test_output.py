"""All-or-nothing output folders, strict JSON, CSV cells."""

import json
import math

import pytest

from neurocorr_core import NeurocorrError
from neurocorr_paper.output import prepare_folder, to_csv, to_json, write_files


def test_write_files_writes_everything(tmp_path):
    written = write_files(tmp_path, {"a.csv": "x\n1\n", "b.png": b"\x89PNG"})
    assert [p.name for p in written] == ["a.csv", "b.png"]
    assert (tmp_path / "a.csv").read_text() == "x\n1\n"
    assert (tmp_path / "b.png").read_bytes() == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.png"]  # no temp folder left


def test_write_files_error_leaves_no_partial_files(tmp_path):
    with pytest.raises(TypeError):
        write_files(tmp_path, {"a.csv": "fine", "b.json": 42})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


def test_prepare_folder_creates_and_rejects_files(tmp_path):
    assert prepare_folder(tmp_path / "new" / "deep").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NeurocorrError, match="is a file, not a folder"):
        prepare_folder(tmp_path / "file")
    with pytest.raises(NeurocorrError, match="cannot write to --out"):
        prepare_folder(tmp_path / "file" / "sub")


def test_json_has_no_nan():
    text = to_json({"a": math.nan, "b": [1.5, math.inf], "c": "x"})
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": "x"}


def test_csv_cells():
    text = to_csv([{"model": "net1", "hidden": [60, 40], "acc": 0.5, "sd": math.nan, "n": 3}])
    assert text.splitlines() == ["model,hidden,acc,sd,n", "net1,60 40,0.500000,,3"]
    assert to_csv([]) == ""


def test_write_text_leaves_the_old_file_or_the_new_one_never_a_part(tmp_path, monkeypatch):
    from neurocorr_paper import output

    path = tmp_path / "m__anchors__probe10.json"
    output.write_text(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}'

    def killed(src, dst):  # the process dies between writing and renaming
        raise KeyboardInterrupt

    monkeypatch.setattr(output.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        output.write_text(path, '{"a": 1, "b": 2}')
    assert path.read_text() == '{"a": 1}'  # the old entry, whole
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
