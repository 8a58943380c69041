"""The activation cache: content-addressed keys, atomic checked entries, LRU size limit, and
hits that skip the forward pass (counted) while a corrupted entry is recomputed, never used."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import grid_models
from neurocorr_core import NeurocorrError
from neurocorr_scale.cache import ActivationCache, EntryKey, model_fingerprint, open_cache, probe_fingerprint
from neurocorr_scale.grid import GridModel, grid

NAMES = ["mlp_a", "mlp_b", "cnn_a"]


@pytest.fixture
def probe():
    return np.random.default_rng(8).normal(size=(24, 1, 8, 8)).astype(np.float32)


def key(layer="act0", probe="p" * 64):
    return EntryKey("m" * 64, layer, "channel", probe)


# -- fingerprints ------------------------------------------------------------------------------------------
def test_file_fingerprint_follows_the_bytes(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"weights-1")
    first = model_fingerprint(path, "torch")
    assert first == model_fingerprint(str(path), "torch")  # the content, not the spelling
    path.write_bytes(b"weights-2")
    assert model_fingerprint(path, "torch") != first
    assert model_fingerprint(path, "torch", {"device": "cpu"}) != model_fingerprint(path, "torch")
    assert model_fingerprint(path, "onnx") != model_fingerprint(path, "torch")


def test_folder_fingerprint_covers_names_and_bytes(tmp_path):
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "a.pb").write_bytes(b"1")
    first = model_fingerprint(tmp_path / "saved", "tensorflow")
    (tmp_path / "saved" / "a.pb").rename(tmp_path / "saved" / "b.pb")
    assert model_fingerprint(tmp_path / "saved", "tensorflow") != first


def test_reference_fingerprint_follows_the_module_source(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "fp_models_x.py").write_text("def build():\n    return 1\n")
    first = model_fingerprint("fp_models_x:build", "numpy-test")
    assert first is not None and first != model_fingerprint("fp_models_x:other", "numpy-test")
    (tmp_path / "fp_models_x.py").write_text("def build():\n    return 2\n")
    assert model_fingerprint("fp_models_x:build", "numpy-test") != first


def test_objects_have_no_fingerprint_unless_the_provider_gives_one():
    assert model_fingerprint(object(), "numpy-test") is None
    own = model_fingerprint(object(), "numpy-test", own="abc")
    assert own == model_fingerprint("x", "numpy-test", own="abc")


def test_probe_fingerprint_sees_one_changed_value(probe):
    changed = probe.copy()
    changed[3, 0, 2, 2] += 1e-6
    assert probe_fingerprint(probe) != probe_fingerprint(changed)
    assert probe_fingerprint(probe) == probe_fingerprint(probe.astype(np.float64))  # float32 content
    assert probe_fingerprint(probe) != probe_fingerprint(probe.reshape(24, 64))


# -- entries -------------------------------------------------------------------------------------------
def test_round_trip_is_exact_and_leaves_no_temporary_file(tmp_path):
    cache = ActivationCache(tmp_path, 10**6)
    array = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    cache.put(key(), array, {"model": "m"})
    got = cache.get(key())
    np.testing.assert_array_equal(got, array)
    got[0, 0] = 1  # a writable copy: the entry is untouched
    np.testing.assert_array_equal(cache.get(key()), array)
    assert cache.get(key("act1")) is None
    assert [p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".act"] == []
    assert cache.stats.hits == 2 and cache.stats.misses == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
def test_a_damaged_entry_is_a_miss_and_is_deleted(tmp_path, damage):
    cache = ActivationCache(tmp_path, 10**6)
    cache.put(key(), np.arange(40, dtype=np.float32).reshape(8, 5))
    path = cache.path(key())
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-3] ^= 0x01
    elif damage == "truncate":
        data = data[:-4]
    elif damage == "header":
        data = data.replace(b'"shape": [8, 5]', b'"shape": [5, 8]')  # same size, another key check
        data = data.replace(b'"key": "', b'"key": "0', 1)[:len(data)]
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert cache.get(key()) is None
    assert cache.stats.corrupt == 1 and not path.exists()


def test_least_recently_used_entries_go_first(tmp_path):
    array = np.zeros((100, 10), dtype=np.float32)  # 4,000 bytes of payload
    cache = ActivationCache(tmp_path, 10**6)
    for name in ("a", "b"):
        cache.put(key(name), array)
    size = cache.path(key("a")).stat().st_size
    cache = ActivationCache(tmp_path, 2 * size + 10)  # room for two entries
    old = time.time() - 100
    os.utime(cache.path(key("a")), (old, old))
    os.utime(cache.path(key("b")), (old + 1, old + 1))
    assert cache.get(key("a")) is not None  # a hit: 'a' is now the most recent
    cache.put(key("c"), array)
    assert cache.get(key("b")) is None and cache.get(key("a")) is not None and cache.get(key("c")) is not None
    assert cache.size() <= cache.limit and cache.stats.evicted == 1


def test_an_entry_larger_than_the_limit_is_not_stored(tmp_path):
    cache = ActivationCache(tmp_path, 100)
    cache.put(key(), np.zeros((100, 10), dtype=np.float32))
    assert cache.entries() == []


def test_clear_and_entries(tmp_path):
    cache = ActivationCache(tmp_path / "c", 10**6)
    cache.put(key("x"), np.ones((3, 2), dtype=np.float32), {"model": "net", "probe": "digits[0:3]"})
    [entry] = cache.entries()
    assert entry.meta["layer"] == "x" and entry.meta["model"] == "net" and entry.meta["shape"] == [3, 2]
    assert cache.clear() == 1 and cache.entries() == [] and cache.size() == 0


def test_open_cache_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROCORR_CACHE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("NEUROCORR_CACHE_LIMIT", "2MB")
    assert open_cache(None) is None and open_cache(False) is None
    default = open_cache(True)
    assert default.root == tmp_path / "env" and default.limit == 2_000_000
    assert open_cache(tmp_path / "x", "1kB").limit == 1000
    (tmp_path / "file").write_text("")
    with pytest.raises(NeurocorrError, match="cache folder .*file is a file; give a folder"):
        open_cache(tmp_path / "file")
    monkeypatch.setenv("NEUROCORR_CACHE_LIMIT", "lots")
    with pytest.raises(NeurocorrError, match="NEUROCORR_CACHE_LIMIT='lots' is not a size"):
        open_cache(True)


# -- in a grid ------------------------------------------------------------------------------------------
def run(pm, probe, cache, **kw):
    models = [GridModel(n, f"grid_models:{n}") for n in NAMES]
    return grid(models, probe, cache=cache, plugin_manager=pm, **kw)


def test_cache_hits_skip_extraction_with_the_same_scores(pm, probe, tmp_path):
    cache = ActivationCache(tmp_path, 10**8)
    before = grid_models.passes()
    first = run(pm, probe, cache, shards=2)
    assert grid_models.passes() - before == 3 * 2  # 3 models x 2 shards, one batch each
    assert cache.stats.writes == (2 + 2 + 3) * 2  # one entry per activation layer and shard
    before = grid_models.passes()
    again = run(pm, probe, cache, shards=2)
    assert grid_models.passes() == before  # no forward pass at all
    np.testing.assert_allclose(again.scores, first.scores, atol=1e-6, rtol=0)  # cached vs fresh: another path
    # other shards are other probe fingerprints: a miss, then the same scores to float32 rounding
    other = run(pm, probe, cache, shards=3)
    assert grid_models.passes() - before == 3 * 3
    np.testing.assert_allclose(other.scores, first.scores, atol=1e-6)


def test_a_corrupted_entry_is_recomputed_not_used(pm, probe, tmp_path):
    cache = ActivationCache(tmp_path, 10**8)
    first = run(pm, probe, cache)
    victim = next(e for e in cache.entries() if e.meta["model"] == "mlp_b" and e.meta["layer"] == "act1")
    data = bytearray(victim.path.read_bytes())
    data[-1] ^= 0x40  # one bit of one activation
    victim.path.write_bytes(bytes(data))
    before = grid_models.passes()
    fresh = ActivationCache(tmp_path, 10**8)
    again = run(pm, probe, fresh)
    assert grid_models.passes() - before == 1  # mlp_b only, once
    assert fresh.stats.corrupt == 1
    np.testing.assert_allclose(again.scores, first.scores, atol=1e-6, rtol=0)
    third = ActivationCache(tmp_path, 10**8)  # the entry was rewritten, whole: used again
    run(pm, probe, third)
    assert grid_models.passes() - before == 1 and third.stats.corrupt == 0 and third.stats.hits == 7


def test_compare_reuses_the_cache(pm, probe, tmp_path):
    from neurocorr_core import compare

    before = grid_models.passes()
    first = compare("grid_models:mlp_a", "grid_models:cnn_a", probe, cache=tmp_path, plugin_manager=pm)
    assert grid_models.passes() - before == 2 and first.config["executor"]["cache"] == str(tmp_path)
    again = compare("grid_models:cnn_a", "grid_models:mlp_a", probe, cache=tmp_path, plugin_manager=pm)
    assert grid_models.passes() - before == 2  # both models from the cache, in the other roles
    # roles swapped: the GEMMs run transposed, equal to float32 rounding, not bit for bit (docs/concepts.md)
    assert again.score.a_to_b == pytest.approx(first.score.b_to_a, abs=1e-6)
    assert again.score.b_to_a == pytest.approx(first.score.a_to_b, abs=1e-6)
