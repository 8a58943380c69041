"""A folder of image files as a probe (neurocorr-data): values against a naive numpy
computation, order by file name, the options, the errors, and 'neurocorr compare' on one."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare, load_probe
from neurocorr_core import plugins as plugins_module
from neurocorr_core.cli import main
from neurocorr_data.images import load_images
from numpy_models import cnn, mlp

Image = pytest.importorskip("PIL.Image", reason="image-folder probes need Pillow (requirements-dev.txt)")


def write(folder, name, pixels):
    """Save uint8 ``pixels`` (H, W, 3) or (H, W) losslessly; return them."""
    folder.mkdir(exist_ok=True)
    Image.fromarray(pixels).save(folder / name)
    return pixels


def rgb_folder(tmp_path, h=4, w=5):
    """Three RGB images whose names sort otherwise than their writing order, and a text file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    pixels = {name: write(folder, name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
              for name in ("c.png", "a.png", "b.bmp")}
    (folder / "notes.txt").write_text("not an image")
    return folder, [pixels[n] for n in ("a.png", "b.bmp", "c.png")]


def naive(images, mean=(0.0,), std=(1.0,)):
    """NCHW by explicit loops: pixel / 255, then (x - mean[c]) / std[c]."""
    n, (h, w, c) = len(images), images[0].shape
    out = np.zeros((n, c, h, w))
    for i in range(n):
        for ch in range(c):
            m, s = mean[ch % len(mean)], std[ch % len(std)]
            for y in range(h):
                for x in range(w):
                    out[i, ch, y, x] = (images[i][y, x, ch] / 255.0 - m) / s
    return out


def test_values_and_order_equal_a_naive_computation(tmp_path):
    folder, images = rgb_folder(tmp_path)
    probe = load_probe(folder)
    assert probe.data.dtype == np.float32 and probe.data.shape == (3, 3, 4, 5)
    assert probe.data.min() >= 0 and probe.data.max() <= 1
    np.testing.assert_allclose(probe.data, naive(images), atol=1e-6)


def test_mean_and_std_per_channel_and_broadcast(tmp_path):
    folder, images = rgb_folder(tmp_path)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    probe = load_probe(f"{folder}?mean={','.join(map(str, mean))}&std={','.join(map(str, std))}")
    np.testing.assert_allclose(probe.data, naive(images, mean, std), atol=1e-5)
    one = load_images(folder, mean=[0.5], std=[0.25])
    np.testing.assert_allclose(one, naive(images, (0.5,), (0.25,)), atol=1e-5)


def test_grey_mode(tmp_path):
    rng = np.random.default_rng(1)
    grey = [rng.integers(0, 256, (6, 6), dtype=np.uint8) for _ in range(2)]
    folder = tmp_path / "g"
    for i, g in enumerate(grey):  # RGB files with R = G = B: their L value is that value exactly
        write(folder, f"{i}.png", np.repeat(g[:, :, None], 3, axis=2))
    probe = load_probe(f"{folder}?mode=L")
    assert probe.data.shape == (2, 1, 6, 6)
    np.testing.assert_allclose(probe.data, naive([g[:, :, None] for g in grey]), atol=1e-6)


def test_size_resizes_every_image_and_keeps_constants(tmp_path):
    folder = tmp_path / "mixed"
    write(folder, "a.png", np.full((4, 6, 3), 51, np.uint8))
    write(folder, "b.png", np.full((9, 3, 3), 204, np.uint8))
    probe = load_probe(f"{folder}?size=5,7")
    assert probe.data.shape == (2, 3, 5, 7)
    np.testing.assert_allclose(probe.data[0], 0.2, atol=1e-6)  # a constant image stays constant
    np.testing.assert_allclose(probe.data[1], 0.8, atol=1e-6)
    assert load_probe(f"{folder}?size=8").sample_shape == (3, 8, 8)  # one number: square
    same, images = rgb_folder(tmp_path)
    np.testing.assert_allclose(load_probe(f"{same}?size=4,5").data, naive(images), atol=1e-6)  # no-op resize


@pytest.mark.parametrize(("spec", "words"), [
    ("{d}?size=abc", ["size='abc'", "numbers"]),
    ("{d}?width=3", ["'width=3'", "size=", "mode="]),
    ("{d}?mode=CMYK", ["'CMYK'", "RGB or L"]),
    ("{d}?mean=0.1,0.2", ["mean has 2 values", "one per channel"]),
    ("{d}?std=0", ["std", "nonzero"]),
    ("{d}?size=0", ["size", "at least 1"]),
])
def test_bad_options_are_refused(tmp_path, spec, words):
    folder, _ = rgb_folder(tmp_path)
    with pytest.raises(NeurocorrError) as info:
        load_probe(spec.format(d=folder))
    for word in words:
        assert word in str(info.value)


def test_errors_name_the_problem_and_the_fix(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(NeurocorrError, match=r"is a folder with no image files \(\.png.*\.webp\)"):
        load_probe(tmp_path / "empty")
    folder, _ = rgb_folder(tmp_path)
    (folder / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(NeurocorrError, match=r"cannot read image .*broken\.png: .*remove or replace"):
        load_probe(folder)
    (folder / "broken.png").unlink()
    write(folder, "d.png", np.zeros((7, 5, 3), np.uint8))
    with pytest.raises(NeurocorrError, match=r"a\.png is 4x5, d\.png is 7x5 .*give size=H,W"):
        load_probe(folder)
    monkeypatch.setitem(sys.modules, "PIL", None)  # Pillow not installed
    with pytest.raises(NeurocorrError, match="pip install pillow"):
        load_probe(folder)


def test_cli_compare_on_an_image_folder_equals_the_api_on_the_naive_array(pm, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(plugins_module, "_default", pm)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    rng = np.random.default_rng(2)
    grey = [write(tmp_path / "digits", f"{i:02d}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
            for i in range(40)]
    (tmp_path / "nets_for_images.py").write_text(
        "from numpy_models import cnn\n\ndef a():\n    return cnn(0)\n\ndef b():\n    return cnn(1)\n")
    out = tmp_path / "r.json"
    rc = main(["compare", "nets_for_images:a", "nets_for_images:b", "--probe", "digits/?mode=L&mean=0.5&std=0.5",
               "--quiet", "--json", str(out)])
    assert rc == 0, capsys.readouterr()
    data = json.loads(out.read_text())
    reference = naive([g[:, :, None] for g in grey], (0.5,), (0.5,)).astype(np.float32)
    api = compare(cnn(0), cnn(1), reference, plugin_manager=pm)
    assert data["score"] == pytest.approx(api.score.to_dict(), abs=1e-6)
    assert data["config"]["probe"] == "digits/?mode=L&mean=0.5&std=0.5"
    rgb, images = rgb_folder(tmp_path)  # RGB 4x5: 60 values per sample, an MLP's input
    wide = compare(mlp(3, [6], n_in=60), mlp(4, [5], n_in=60), str(rgb), plugin_manager=pm)
    by_hand = compare(mlp(3, [6], n_in=60), mlp(4, [5], n_in=60), naive(images).astype(np.float32), plugin_manager=pm)
    assert wide.score.a_to_b == pytest.approx(by_hand.score.a_to_b, abs=1e-6)


def test_an_experiment_file_takes_an_image_folder_next_to_it(pm, monkeypatch, tmp_path):
    monkeypatch.setattr(plugins_module, "_default", pm)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    exp = tmp_path / "exp"
    exp.mkdir()
    folder, _ = rgb_folder(exp)  # exp/images, relative to the file
    (exp / "nets_for_image_runs.py").write_text(
        "from numpy_models import mlp\n\ndef a():\n    return mlp(3, [6], n_in=48)\n\ndef b():\n"
        "    return mlp(4, [5], n_in=48)\n")
    monkeypatch.syspath_prepend(str(exp))
    (exp / "experiment.toml").write_text(
        '[models]\na = "nets_for_image_runs:a"\nb = "nets_for_image_runs:b"\n\n[compare]\n'
        'probe = "images?size=4,4&mean=0.5"\nquiet = true\n\n[outputs]\njson = "r.json"\n')
    monkeypatch.chdir(tmp_path)  # not the file's folder: the probe is found beside the file
    assert main(["run", str(exp / "experiment.toml")]) == 0
    data = json.loads((exp / "r.json").read_text())
    x = load_images(folder, size=(4, 4), mean=[0.5])
    api = compare(mlp(3, [6], n_in=48), mlp(4, [5], n_in=48), x, plugin_manager=pm)
    assert data["score"] == pytest.approx(api.score.to_dict(), abs=1e-6)
