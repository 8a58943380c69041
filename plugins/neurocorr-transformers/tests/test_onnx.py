"""A tiny BERT and a tiny GPT-2 against their ONNX exports: every capture point identity-matched."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import tiny
from neurocorr_core import compare
from neurocorr_transformers import HFModel, token_probe

pytest.importorskip("onnxruntime")
from neurocorr_transformers.onnx import export_onnx


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_export_identity_matched(family: str, tmp_path: Path) -> None:
    model = getattr(tiny, family)(11)
    path = tmp_path / f"{family}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        export_onnx(model, path)
    ids, mask = tiny.padded(32, 20, seed=12)
    result = compare(HFModel(model), str(path), token_probe(ids, mask), neurons="token", provider_b="hf-onnx",
                     layers_a="*", layers_b="embed,block*", batch_size=9)
    assert [lr.info.name for lr in result.layers_a] == [lr.info.name for lr in result.layers_b]
    assert len(result.layers_a) == 7
    np.testing.assert_array_equal(result.partner_a, np.arange(len(result.partner_a)))
    np.testing.assert_array_equal(result.partner_b, np.arange(len(result.partner_b)))
    assert result.score.symmetric >= 0.9999
