import numpy as np
import torch

from neurocorr_testing import ProviderConformance
from neurocorr_torch import TorchProvider
from neurocorr_torch.demo import CNN


class TestEagerModule(ProviderConformance):
    provider = TorchProvider

    def make_model(self):
        torch.manual_seed(0)
        return CNN()

    def make_probe(self):
        return np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)


class TestTorchScriptFile(ProviderConformance):
    provider = TorchProvider

    def make_model(self, tmp_path_factory=None):
        torch.manual_seed(0)
        path = "/tmp/neurocorr-conformance-cnn.pt"
        torch.jit.script(CNN()).save(path)
        return path

    def make_probe(self):
        return np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)
