"""Under the token view a sample is a real token: Comparison.samples counts them (against a naive
count of the mask and of each tokenizer's output); texts reach the CLI as probe files written by
``neurocorr text-probe`` or named ``--probe text:FILE``, and a compare over either equals the Python
API's over the same texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tiny
from neurocorr_core import NeurocorrError, cli, compare
from neurocorr_transformers import HFModel, HFProvider, text_probe, token_probe
from test_provider import TEXTS, _tokenizer


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_token_view_samples_count_real_tokens(batch_size: int) -> None:
    ids, mask = tiny.padded(23, 9, seed=4)
    model = HFModel(tiny.gpt2(0))
    result = compare(model, HFModel(tiny.gpt2(1)), token_probe(ids, mask), neurons="token",
                     layers_a="block*.mlp.act", layers_b="block*.mlp.act", batch_size=batch_size)
    naive = sum(int(v) for row in mask for v in row)  # a plain loop over every position
    assert naive < ids.size  # padding is there, and is not counted
    assert result.samples == naive
    assert result.to_dict()["samples"] == naive and f"{naive} samples" in repr(result)
    assert result.config["sampling"]["probe_samples"] == len(ids)  # the sequences stay on record
    pooled = compare(model, model, token_probe(ids, mask), neurons="mean", layers_a="block*.mlp.act",
                     layers_b="block*.mlp.act", batch_size=batch_size)
    assert pooled.samples == len(ids)  # pooled views: one row per sequence


def test_token_view_samples_of_a_text_probe_are_the_tokenizers_tokens() -> None:
    tokenizer = _tokenizer("bpe")
    model = HFModel(tiny.bert(0), tokenizer)
    result = compare(model, model, text_probe(TEXTS), neurons="token", layers_a="embed", layers_b="embed",
                     batch_size=3)
    assert result.samples == sum(len(tokenizer(text)["input_ids"]) for text in TEXTS)
    words = {"unit": "word"}
    by_word = compare(model, model, text_probe(TEXTS), neurons="token", layers_a="embed", layers_b="embed",
                      options_a=words, options_b=words)
    assert by_word.samples == sum(len(text.split()) for text in TEXTS)


def test_rows_before_any_forward_pass_equal_the_samples_compare_counts() -> None:
    """HFProvider.rows: the token view's rows of a probe, for planning memory, with no forward pass."""
    ids, mask = tiny.padded(23, 9, seed=5)
    assert HFProvider(HFModel(tiny.gpt2(0))).rows(token_probe(ids, mask), batch_size=4) == int(mask.sum())
    model = HFModel(tiny.bert(0), _tokenizer("bpe"))
    for unit in ("token", "word"):
        ran = compare(model, model, text_probe(TEXTS), neurons="token", layers_a="embed", layers_b="embed",
                      options_a={"unit": unit}, options_b={"unit": unit})
        assert HFProvider(model, unit=unit).rows(text_probe(TEXTS), batch_size=3) == ran.samples


def test_token_view_never_chooses_tiles_that_grow_with_the_tokens() -> None:
    """The automatic tile choice sizes tiles by samples, but tiles keep every row (a token): under
    the token view the streaming moments stay, whose memory does not depend on the tokens."""
    from neurocorr_core.interfaces import LayerInfo
    from neurocorr_core.matching import MaxMatching
    from neurocorr_core.pipeline import Side, build_plan
    from neurocorr_pearson import Pearson

    layers = [LayerInfo(f"block{i}.resid", (9000,), i, "other", "Block") for i in range(2)]
    for view, tiled in (("channel", True), ("token", False)):
        a, b = Side.of("a", layers, view), Side.of("b", layers, view)
        plan = build_plan(Pearson, MaxMatching(), a, b, samples=100, constant="zero", penalty="none",
                          absolute=True)
        plan.fit(None, keep=False)
        assert (plan.parts[0].tiles is not None) == tiled, view


def _folder(tmp_path: Path, seed: int) -> Path:
    where = tmp_path / f"gpt2-{seed}"
    tiny.gpt2(seed).save_pretrained(where)
    _tokenizer("bpe").save_pretrained(where)
    return where


def test_text_probe_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    probe = tmp_path / "texts.npy"
    assert cli.main(["text-probe", str(texts), "--out", str(probe)]) == 0
    assert f"{len(TEXTS)} texts" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(probe), text_probe(texts).data)
    a, b = _folder(tmp_path, 0), _folder(tmp_path, 1)
    for view in ("mean", "token"):
        api = compare(str(a), str(b), text_probe(TEXTS), neurons=view, layers_a="block*.mlp.act",
                      layers_b="block*.mlp.act", batch_size=3)
        for tag, given in (("npy", str(probe)), ("text", f"text:{texts}")):  # the file text-probe wrote; text:FILE
            out = tmp_path / f"{view}-{tag}.json"
            assert cli.main(["compare", str(a), str(b), "--probe", given, "--neurons", view, "--layers-a",
                             "block*.mlp.act", "--layers-b", "block*.mlp.act", "--batch-size", "3", "--quiet",
                             "--json", str(out)]) == 0
            got = json.loads(out.read_text())
            assert got["samples"] == api.samples
            assert got["score"]["symmetric"] == pytest.approx(api.score.symmetric, abs=1e-6)
            assert 0 < got["score"]["symmetric"] < 1
    assert json.loads((tmp_path / "mean-text.json").read_text())["samples"] == len(TEXTS)
    assert json.loads((tmp_path / "mean-text.json").read_text())["config"]["probe"] == "texts.txt"
    assert cli.main(["compare", str(a), str(b), "--probe", f"text:{tmp_path / 'missing.txt'}", "--neurons",
                     "mean"]) == 2
    assert "is no text file" in capsys.readouterr().err


def test_docstrings_probe_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "doc.npy"
    assert cli.main(["text-probe", "--docstrings", "5", "--out", str(out)]) == 0
    data = np.load(out)
    assert data.shape[:2] == (5, 1)
    from neurocorr_transformers.probe import decode

    texts = decode(data).texts
    assert texts is not None and all(t and "\n" not in t for t in texts)


def test_text_probe_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.txt").write_text("one\ntwo\n", encoding="utf-8")
    cases = [(["--out", "x.npy"], "either a text file"),
             ([str(tmp_path / "t.txt"), "--docstrings", "3", "--out", "x.npy"], "not both"),
             ([str(tmp_path / "missing.txt"), "--out", "x.npy"], "not found"),
             ([str(tmp_path / "t.txt"), "--out", str(tmp_path / "x.txt")], "must end in .npy"),
             (["--docstrings", "1", "--out", "x.npy"], "at least 2 texts")]
    for argv, message in cases:
        code = cli.main(["text-probe", *argv])
        assert code == 2 and message in capsys.readouterr().err, argv
    with pytest.raises(NeurocorrError, match="at least 2 non-empty texts"):
        text_probe(["only one"])


def test_a_budget_is_planned_by_tokens_and_bands_equal_the_full_matrices() -> None:
    """compare() asks HFProvider.rows for the real tokens before any forward pass: over ~1,700 tokens
    (60 sequences) tiles of 2 x 1,024 MLP neurons a side would need more than 48 MB, so the probe runs
    once per band of A's neurons (planned by the 60 sequences instead, it took tiles); each neuron's
    best |r| equals the full matrices' to 1e-6."""
    ids, mask = tiny.padded(60, 48, seed=3, shortest=8)
    models = [HFModel(tiny.gpt2(seed, layers=2, width=256)) for seed in (1, 2)]
    kw = {"neurons": "token", "layers_a": "block*.mlp.act", "layers_b": "block*.mlp.act", "depth_penalty": "none"}
    full = compare(*models, token_probe(ids, mask), **kw)
    banded = compare(*models, token_probe(ids, mask), memory_budget="48MB", **kw)
    assert banded.samples == full.samples == int(mask.sum())
    assert banded.config["tiles"]["a"]["bands"] > 1 and full.config["tiles"] is None
    np.testing.assert_allclose(banded.value_a, full.value_a, atol=1e-6, rtol=0)
    np.testing.assert_allclose(banded.value_b, full.value_b, atol=1e-6, rtol=0)
