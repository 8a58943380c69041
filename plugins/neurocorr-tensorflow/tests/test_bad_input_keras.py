"""Bad-input matrix, Keras cases: a ``.keras`` file that is not one (garbage, empty, a cut-off
download, a zip without a Keras config) is one line saying it is not a valid .keras file and how
to save one; Keras' own message for it ("File not found", for a file that exists) is never shown.
Each case: exit 2, one error line, the folder unchanged, and the file's payload never ran.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[3] / "tests"))  # the core matrix harness
import bad_input
from neurocorr_core import NeurocorrError, open_model

ENV = {"NEUROCORR_DISABLE_PLUGINS": "torch,jax,onnx", "PYTHONDONTWRITEBYTECODE": "1"}


def garbage(path: Path, marks: Path) -> None:
    path.write_text(bad_input.payload(marks))


def empty(path: Path, marks: Path) -> None:
    path.write_bytes(b"")


def cut_download(path: Path, marks: Path) -> None:
    """The first half of a real .keras archive (its central directory, at the end, is missing)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", '{"class_name": "Sequential"}' + " " * 2000)
        z.writestr("payload.py", bad_input.payload(marks))
    path.write_bytes(path.read_bytes()[:1000])


def foreign_zip(path: Path, marks: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("run.py", bad_input.payload(marks))


CASES = [  # (how the file is made, words)
    (garbage, ["not a valid .keras file", "zip archive", "model.save('model.keras')"]),
    (empty, ["not a valid .keras file", "model.save('model.keras')"]),
    (cut_download, ["not a valid .keras file", "truncated"]),
    (foreign_zip, ["not a Keras model file", "config.json", "model.save('model.keras')"]),
]


@pytest.mark.parametrize(("make", "words"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_a_file_that_is_not_a_keras_model(tmp_path, make, words):
    make(tmp_path / "model.keras", tmp_path)
    before = bad_input.snapshot(tmp_path)
    run = bad_input.neurocorr(["layers", "model.keras", "--input-shape", "8"], cwd=tmp_path,
                            env={**ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    line = bad_input.assert_user_error(run, *words)
    assert "File not found" not in line
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))
    bad_input.no_payload_ran(tmp_path)


def test_the_api_says_the_same(tmp_path):
    garbage(tmp_path / "model.keras", tmp_path)
    before = bad_input.snapshot(tmp_path)
    with pytest.raises(NeurocorrError, match=r"not a valid \.keras file"):
        open_model(tmp_path / "model.keras")
    bad_input.assert_unchanged(before, bad_input.snapshot(tmp_path))
    bad_input.no_payload_ran(tmp_path)


def test_a_real_keras_file_loads(tmp_path):
    """The cases fail for their bytes alone: a model saved by Keras loads."""
    from tf_models import sequential_mlp

    model = sequential_mlp()
    model.build((None, 8))
    model.save(tmp_path / "model.keras")
    run = bad_input.neurocorr(["layers", "model.keras", "--input-shape", "8"], cwd=tmp_path,
                            env={**ENV, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert run.code == 0, run.err
