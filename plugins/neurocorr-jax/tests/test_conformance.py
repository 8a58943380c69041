"""The core's provider conformance suite, for every kind of JAX model."""

from jax_models import fn_cnn, fn_mlp, image_probe, linen_cnn, linen_mlp, nnx_cnn, nnx_mlp, vector_probe
from neurocorr_jax import JaxProvider
from neurocorr_testing import ProviderConformance


class TestNnxModule(ProviderConformance):
    provider = JaxProvider

    def make_model(self):
        return nnx_cnn()

    def make_probe(self):
        return image_probe()


class TestNnxSequential(ProviderConformance):
    provider = JaxProvider

    def make_model(self):
        return nnx_mlp(dropout=0.5)

    def make_probe(self):
        return vector_probe()


class TestLinenModule(ProviderConformance):
    provider = JaxProvider

    def make_model(self):
        return linen_cnn()

    def make_probe(self):
        return image_probe()


class TestLinenMlp(ProviderConformance):
    provider = JaxProvider

    def make_model(self):
        return linen_mlp()

    def make_probe(self):
        return vector_probe()


class TestPlainFunction(ProviderConformance):
    provider = JaxProvider

    def make_model(self):
        return fn_cnn()

    def make_probe(self):
        return image_probe()


class TestPlainFunctionMlp(ProviderConformance):
    provider = JaxProvider

    def make_model(self):
        return fn_mlp()

    def make_probe(self):
        return vector_probe()
