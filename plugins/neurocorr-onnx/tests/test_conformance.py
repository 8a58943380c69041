"""The core's provider conformance suite, on a file (NCHW) and an in-memory NHWC graph."""

import tempfile
from pathlib import Path

import onnx

from neurocorr_onnx import OnnxProvider
from neurocorr_testing import ProviderConformance
from onnx_test_models import nchw_cnn, nhwc_cnn, probe, weights


class TestOnnxFile(ProviderConformance):
    provider = OnnxProvider

    def make_model(self):
        path = str(Path(tempfile.mkdtemp(prefix="neurocorr-onnx-")) / "cnn.onnx")
        onnx.save(nchw_cnn(weights()), path)
        return path

    def make_probe(self):
        return probe()


class TestOnnxProtoChannelsLast(ProviderConformance):
    provider = OnnxProvider

    def make_model(self):
        return nhwc_cnn(weights(channels=3))

    def make_probe(self):
        return probe(channels=3)
