"""Every mistake a user can make with a JAX model gets an error that says what to do."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen

from jax_models import fn_mlp, image_probe, linen_mlp, nnx_cnn, nnx_mlp, vector_probe
from neurocorr_core import NeurocorrError, PluginManager, open_model
from neurocorr_jax import JaxProvider


def test_unsupported_object_says_what_is_supported():
    with pytest.raises(NeurocorrError, match=r"cannot load an object of type builtins\.dict; it supports "
                                             r"Flax nnx Modules; Flax linen .*\(module, variables\).*fn\(x\)"):
        JaxProvider({"not": "a model"})
    with pytest.raises(NeurocorrError, match=r"no installed provider recognises .*jax: Flax nnx Modules"):
        open_model(12345)


def test_linen_module_needs_its_variables():
    module, variables = linen_mlp()
    with pytest.raises(NeurocorrError, match=r"carries no weights; pass it with its variables as a tuple "
                                             r"\(module, variables\)"):
        open_model(module)
    with pytest.raises(NeurocorrError, match=r"variables dict returned by module.init.*not list"):
        JaxProvider((module, [variables]))


@pytest.mark.parametrize(("fn", "message"), [
    (lambda x: jnp.tanh(x), r"returned an array of shape \(2, 10\).*protocol is fn\(x\) -> \(output, \{layer_name"),
    (lambda x: (x, [x]), r"returned a tuple of 2 item\(s\).*protocol is fn\(x\)"),
    (lambda x: (x, {}), r"returned no intermediates"),
    (lambda x: (x, {"relu1": x.sum()}), r"'relu1' of .* is an array of shape \(\) .*first axis is the batch \(2\)"),
    (lambda x: (x, {"h": x[:1]}), r"'h' of .* is an array of shape \(1, 10\)"),
    (lambda x: (x, {"h": "relu"}), r"'h' of .* is a str, not a real-valued array"),
    (lambda x: (x, {3: x}), r"intermediate named 3; names must be non-empty strings"),
    (lambda params, x: (x, {"h": x}), r"cannot be called with one argument; the plain-function protocol"),
])
def test_function_breaking_the_protocol(fn, message):
    with pytest.raises(NeurocorrError, match=message):
        JaxProvider(fn).layers(vector_probe(2))


def test_builder_given_instead_of_the_function():
    with pytest.raises(NeurocorrError, match=r"fn_mlp \(function\) rejected a probe .*"
                       r"It can be called with no argument: if it builds the model, pass what it returns"):
        open_model(fn_mlp).layers(vector_probe(2))
    with pytest.raises(NeurocorrError, match=r"returned a function: if it builds the model, call it"):
        JaxProvider(lambda x: fn_mlp).layers(vector_probe(2))


@pytest.mark.parametrize(("model", "probe", "message"), [
    (nnx_mlp(), np.zeros((2, 16), np.float32),
     r"Sequential \(nnx\) rejected a probe batch of shape \(2, 16\) \(TypeError: dot_general.*"
     r"Give a probe of the shape the model expects"),
    (nnx_cnn(), np.zeros((2, 1, 8, 8), np.float32),
     r"NnxCNN \(nnx\) rejected a probe batch of shape \(2, 1, 8, 8\) \(as NHWC: .*; as NCHW: .*\)"
     r".*set layout='nchw' or 'nhwc'"),
    (fn_mlp(), image_probe(2), r"mlp \(function\) rejected a probe batch of shape \(2, 3, 8, 8\)"),
])
def test_probe_shape_the_model_rejects(model, probe, message):
    with pytest.raises(NeurocorrError, match=message):
        JaxProvider(model).layers(probe)


def test_later_batch_of_another_shape_is_rejected_too():
    prov = JaxProvider(nnx_mlp())
    prov.layers(vector_probe(2))
    with pytest.raises(NeurocorrError, match=r"rejected a probe batch of shape \(3, 4\)"):
        next(prov.activations([np.zeros((3, 4), np.float32)], ["layers.1"]))


def test_unknown_layer_names_the_closest():
    prov = JaxProvider(nnx_mlp())
    prov.layers(vector_probe(2))
    with pytest.raises(NeurocorrError, match=r"has no layer\(s\) \['layers\.9'\]; closest names: .*layers\.0"):
        next(prov.activations([vector_probe()], ["layers.9"]))


def test_bad_options():
    with pytest.raises(NeurocorrError, match=r"layout='NHWC' is not one of auto, nchw, nhwc"):
        JaxProvider(nnx_mlp(), layout="NHWC")
    with pytest.raises(NeurocorrError, match=r"provider 'jax' has no option\(s\) dtype; the options it takes: "
                                             r"call_kwargs, device, layout$"):
        JaxProvider(nnx_mlp(), dtype="float16")
    with pytest.raises(NeurocorrError, match=r"call_kwargs applies to Flax modules only"):
        JaxProvider(fn_mlp(), call_kwargs={"train": False})
    JaxProvider(nnx_mlp(), trust_pickle=False)  # the CLI passes it to every provider


def test_jitted_function_is_accepted_and_keeps_the_protocol():
    prov = open_model(jax.jit(fn_mlp()))
    assert [la.name for la in prov.layers(vector_probe(2))] == ["dense1", "relu1", "dense2"]
    with pytest.raises(NeurocorrError, match="protocol"):
        JaxProvider(jax.jit(lambda x: x)).layers(vector_probe(2))


def test_linen_module_failing_inside_names_the_module():
    class Broken(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(3)(x.reshape(x.shape[0], 7, -1))

    variables = {"params": {"Dense_0": {"kernel": np.zeros((5, 3), np.float32), "bias": np.zeros(3, np.float32)}}}
    with pytest.raises(NeurocorrError, match=r"Broken \(linen\) rejected a probe batch of shape \(2, 10\)"):
        JaxProvider((Broken(), variables)).layers(vector_probe(2))


def test_missing_jax_makes_the_plugin_unavailable_with_an_install_hint():
    """In a fresh interpreter where 'import jax' fails, the plugin list says what to install."""
    code = ("import sys; sys.modules['jax'] = None\n"
            "from neurocorr_core import PluginManager\n"
            "info = {i.name: i for i in PluginManager().plugins()}['jax']\n"
            "print(info.status, '|', info.reason)\n")
    env = {**os.environ, "NEUROCORR_DISABLE_PLUGINS": "torch,tensorflow,onnx"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("unavailable | ImportError: jax is not installed; install it with: "
                                  "pip install neurocorr-jax (or: pip install jax flax)")
    assert "jax" in PluginManager().names("provider")  # and here, where jax is installed, it loads
