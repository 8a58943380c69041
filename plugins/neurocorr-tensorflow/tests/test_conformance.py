"""The core's provider conformance suite, for every kind of model the tensorflow provider opens."""

import keras
import numpy as np

from neurocorr_tensorflow import TensorFlowProvider
from neurocorr_testing import ProviderConformance
from tf_models import SharedCalls, Subclassed, functional_cnn, image_probe, saved, sequential_mlp


class TestFunctional(ProviderConformance):
    provider = TensorFlowProvider

    def make_model(self):
        return functional_cnn()

    def make_probe(self):
        return image_probe()


class TestSequential(ProviderConformance):
    provider = TensorFlowProvider

    def make_model(self):
        return sequential_mlp()

    def make_probe(self):
        return np.random.default_rng(0).normal(size=(12, 16)).astype(np.float32)


class TestKerasFile(ProviderConformance):
    provider = TensorFlowProvider

    def make_model(self):
        return saved("keras")

    def make_probe(self):
        return image_probe()


class TestSavedModel(ProviderConformance):
    provider = TensorFlowProvider

    def make_model(self):
        return saved("savedmodel")

    def make_probe(self):
        return image_probe()


class TestSubclassed(ProviderConformance):
    provider = TensorFlowProvider

    def make_model(self):
        keras.utils.set_random_seed(0)
        return Subclassed()

    def make_probe(self):
        return image_probe()


class TestSubclassedSharedCalls(ProviderConformance):
    """A sublayer called several times: one layer per call."""

    provider = TensorFlowProvider

    def make_model(self):
        keras.utils.set_random_seed(0)
        return SharedCalls()

    def make_probe(self):
        return image_probe()
