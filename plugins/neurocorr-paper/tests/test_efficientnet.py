"""EfficientNet experiment pieces: the photo probe, the late-block features, the neuron sets,
the affinity verdict; and a small end-to-end run (slow: loads the three ImageNet models)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
pytest.importorskip("skimage", reason="pip install scikit-image")

from neurocorr_core.cli import main as neurocorr
from neurocorr_paper import efficientnet as eff


def test_photo_probe_is_normalised_seeded_and_starts_with_the_photos():
    import skimage.data
    from skimage.transform import resize

    x, sources = eff.photo_probe(10, 32, seed=3)
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.float32
    assert sources[:4] == list(eff.PHOTOS) and sources[4] == "astronaut"
    pixels = x.transpose(0, 2, 3, 1) * eff.IMAGENET_STD + eff.IMAGENET_MEAN
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    coffee = skimage.data.coffee()  # 400 x 600: centre square is columns 100..500
    want = resize(coffee[:, 100:500], (32, 32), anti_aliasing=True)
    np.testing.assert_allclose(pixels[2], want, atol=1e-5)
    np.testing.assert_array_equal(x, eff.photo_probe(10, 32, seed=3)[0])
    assert not np.array_equal(x[4:], eff.photo_probe(10, 32, seed=4)[0][4:])


def test_neuron_index():
    np.testing.assert_array_equal(eff.neuron_index((320, 7, 7), "channel0", 100, 0), np.arange(49))
    idx = eff.neuron_index((320, 7, 7), "sample", 100, 0)
    assert len(idx) == len(set(idx)) == 100 and idx.max() < 320 * 49 and (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(idx, eff.neuron_index((320, 7, 7), "sample", 100, 0))
    assert len(eff.neuron_index((2, 3, 3), "sample", 100, 0)) == 18  # all, when fewer exist


def test_late_block_is_the_last_block_output_and_is_cached():
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    net = EfficientNet.from_name("efficientnet-lite0", image_size=64).eval()
    seen: dict[str, torch.Tensor] = {}
    net._blocks[-1].register_forward_hook(lambda m, a, out: seen.setdefault("out", out.detach()))
    x = torch.from_numpy(eff.photo_probe(4, 64, 0)[0])
    with torch.no_grad():
        net(x)  # the model's own forward, hooked on its last block
    late = eff.LateBlock(net)
    torch.testing.assert_close(late(x), seen["out"])
    assert len(late.cache) == 1
    late(x.clone())
    assert len(late.cache) == 1  # same values: served from the cache
    tap = eff.Tap(late, np.array([0, 5, 7]))
    torch.testing.assert_close(tap(x), seen["out"].flatten(1)[:, [0, 5, 7]])


def test_affinity_verdict():
    run = eff.EffRun(["lite0", "lite1", "lite2", eff.RANDOM], 10, 224, 10, 0, {}, {})
    run.matrices["sample"] = [[1, .7, .6, .5], [.7, 1, .65, .55], [.6, .65, 1, .4], [.5, .55, .4, 1]]
    aff = eff.affinity(run, "sample")
    assert aff["holds"] and aff["min_trained"] == .6 and aff["max_random"] == .55
    assert aff["margin"] == pytest.approx(.05)
    run.matrices["sample"][2][0] = run.matrices["sample"][0][2] = .5
    assert not eff.affinity(run, "sample")["holds"]


@pytest.mark.slow
def test_efficientnet_small_run_end_to_end(tmp_path, capsys):
    out = tmp_path / "eff"
    argv = ["reproduce", "efficientnet", "--images", "12", "--resolution", "64", "--sample", "40",
            "--out", str(out), "--quiet", "--threads", "1"]
    assert neurocorr(argv) == 0
    text = capsys.readouterr().out
    assert "every trained-vs-trained score above every trained-vs-random score" in text
    assert sorted(p.name for p in out.iterdir()) == ["heatmap.png", "results.json", "scores.csv"]
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "results.json").read_text())
    assert doc["models"] == ["lite0", "lite1", "lite2", "lite0-random"]
    assert doc["shapes"]["lite0"] == [320, 2, 2] and doc["shapes"]["lite2"] == [352, 2, 2]
    for which in ("channel0", "sample"):
        m = np.asarray(doc["matrices"][which])
        np.testing.assert_allclose(m, m.T)
        assert ((m >= 0) & (m <= 1 + 1e-9)).all()
        # a model against itself: every live neuron's best match is itself (|r| = 1)
        for i, name in enumerate(doc["models"]):
            live = 1 - doc["dead"][which][name] / doc["neurons"][which][name]
            assert m[i, i] == pytest.approx(live, abs=1e-5)
        assert isinstance(doc["affinity"][which]["holds"], bool)
