"""What the JAX provider captures, in which order and layout, each checked against numpy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen, nnx

from jax_models import (
    fn_cnn,
    fn_mlp,
    image_probe,
    linen_mlp,
    mlp_numpy,
    nnx_cnn,
    nnx_mlp,
    vector_probe,
    weights,
)
from neurocorr_core import compare, open_model
from neurocorr_core.cli import main
from neurocorr_jax import JaxProvider


def array(param: nnx.Param | None) -> np.ndarray:
    assert param is not None
    return np.asarray(param.get_value(), np.float64)


def run(model, probe, names=None, **options):
    prov = JaxProvider(model, **options)
    layers = prov.layers(probe[:2])
    names = names or [la.name for la in layers]
    return prov, layers, next(prov.activations([probe], names))


@pytest.mark.parametrize("build", [nnx_mlp, linen_mlp, fn_mlp])
def test_mlp_values_equal_numpy(build):
    x = vector_probe()
    expected = mlp_numpy(x)
    _, layers, out = run(build(), x)
    by_kind = {la.kind: la.name for la in layers if la.kind in ("activation",)}
    np.testing.assert_allclose(out[by_kind["activation"]], expected["relu1"], rtol=1e-5, atol=1e-5)
    dense = [la.name for la in layers if la.kind == "dense"]
    assert len(dense) == 2
    np.testing.assert_allclose(out[dense[0]], expected["dense1"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[dense[1]], expected["dense2"], rtol=1e-5, atol=1e-5)


def test_nnx_layers_in_forward_order_with_kinds():
    layers = JaxProvider(nnx_cnn()).layers(image_probe(2))
    assert [(la.name, la.kind, la.op, la.shape) for la in layers] == [
        ("conv", "conv", "Conv", (5, 6, 6)), ("norm", "norm", "BatchNorm", (5, 6, 6)),
        ("relu1", "activation", "relu", (5, 6, 6)),  # sown: the name gives the op
        ("drop", "other", "Dropout", (5, 3, 3)),
        ("head.layers.0", "dense", "Linear", (6,)),
        ("head.layers.1", "activation", "relu", (6,)),  # a bare nnx.relu inside a Sequential
        ("head.layers.2", "dense", "Linear", (2,)),
        ("head", "other", "Sequential", (2,)),  # a container finishes after its children
    ]
    assert [la.depth for la in layers] == list(range(len(layers)))


def test_nnx_inference_mode_without_touching_the_model():
    """Dropout(0.9) is off and BatchNorm uses its running statistics (mean 0, var 1 at
    init): the normalised output is conv / sqrt(1 + eps), and repeated runs agree."""
    model = nnx_cnn()
    x = image_probe()
    _, _, out = run(model, x, ["conv", "norm"])
    np.testing.assert_allclose(out["norm"], out["conv"] / np.sqrt(1 + model.norm.epsilon), rtol=1e-5, atol=1e-6)
    drop = nnx.Sequential(nnx.Linear(10, 50, rngs=nnx.Rngs(0)), nnx.Dropout(0.9, rngs=nnx.Rngs(1)))
    prov = JaxProvider(drop)
    prov.layers(vector_probe(2))
    a, b = (next(prov.activations([vector_probe()], ["layers.0", "layers.1"])) for _ in range(2))
    np.testing.assert_array_equal(a["layers.1"], a["layers.0"])
    np.testing.assert_array_equal(a["layers.1"], b["layers.1"])
    # The user's models are untouched: still in training mode, bare functions still bare.
    assert getattr(drop.layers[1], "deterministic") is False and model.drop.deterministic is False  # noqa: B009
    assert not isinstance(model.head.layers[1], nnx.Module)


def test_conv_outputs_channels_first_for_nhwc_models():
    """The nnx CNN's conv output equals a numpy NCHW cross-correlation of the NCHW probe."""
    model = nnx_cnn()
    x = image_probe()
    _, _, out = run(model, x, ["conv"])
    k, b = array(model.conv.kernel), array(model.conv.bias)  # HWIO, (5,)
    expected = np.zeros((len(x), 5, 6, 6))
    for i in range(3):
        for j in range(3):
            expected += np.einsum("nchw,co->nohw", x[:, :, i:i + 6, j:j + 6], k[i, j])
    np.testing.assert_allclose(out["conv"], expected + b[None, :, None, None], rtol=1e-5, atol=1e-5)


def test_layout_auto_tries_the_other_layout_and_can_be_forced():
    nhwc_fn = functools.partial(_nhwc_relu_conv, jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 3, 4)),
                                                              jnp.float32))
    x = image_probe()
    prov, layers, out = run(nhwc_fn, x)  # a function tries NCHW first, then NHWC
    assert prov.channels_last is True and layers[0].shape == (4, 6, 6)
    nchw = np.asarray(jax.lax.conv(jnp.asarray(x), jnp.transpose(nhwc_fn.args[0], (3, 2, 0, 1)), (1, 1), "VALID"))
    np.testing.assert_allclose(out["relu1"], np.maximum(nchw, 0), rtol=1e-5, atol=1e-5)
    # An elementwise function accepts both layouts; forcing NHWC must still give NCHW back.
    elementwise = functools.partial(lambda s, x: (x, {"relu1": jax.nn.relu(x - s)}), 0.5)
    for layout in ("nchw", "nhwc"):
        _, _, out = run(elementwise, x, layout=layout)
        np.testing.assert_allclose(out["relu1"], np.maximum(x - 0.5, 0), rtol=1e-6)
    with pytest.raises(Exception, match=r"rejected a probe batch of shape \(2, 3, 8, 8\) \(as NCHW"):
        JaxProvider(nnx_cnn(), layout="nchw").layers(x[:2])


def _nhwc_relu_conv(kernel, x):
    conv1 = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return conv1, {"relu1": jax.nn.relu(conv1)}


def test_one_compiled_pass_per_batch_cached_per_layer_set():
    calls = []

    def mlp(x):
        calls.append(x.shape)  # runs only while jax traces
        out, inter = fn_mlp()(x)
        return out, inter

    prov = JaxProvider(mlp)
    names = [la.name for la in prov.layers(vector_probe(2))]
    assert len(calls) == 1  # listing traces once, computes nothing
    outs = list(prov.activations([vector_probe(), vector_probe(seed=1), vector_probe(seed=2)], names))
    assert len(calls) == 2  # one trace gives every layer; the three batches reuse the compilation
    list(prov.activations([vector_probe()], names))
    assert len(calls) == 2  # cached for this layer set
    list(prov.activations([vector_probe()], ["relu1"]))
    assert len(calls) == 3  # a new layer set compiles once
    np.testing.assert_allclose(outs[2]["relu1"], mlp_numpy(vector_probe(seed=2))["relu1"], rtol=1e-5, atol=1e-5)


def test_repeated_calls_are_separate_layers():
    class Twice(nnx.Module):
        def __init__(self):
            k = np.random.default_rng(0).normal(0, 0.3, (10, 10)).astype(np.float32)
            self.shared = nnx.Linear(10, 10, kernel_init=lambda *_: jnp.asarray(k), rngs=nnx.Rngs(0))

        def __call__(self, x):
            return self.shared(jax.nn.relu(self.shared(x)))

    model = Twice()
    x = vector_probe()
    layers, out = run(model, x)[1:]
    assert [la.name for la in layers] == ["shared", "shared@1"]
    k, b = array(model.shared.kernel), array(model.shared.bias)
    first = x @ k + b
    np.testing.assert_allclose(out["shared"], first, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["shared@1"], np.maximum(first, 0) @ k + b, rtol=1e-5, atol=1e-5)


def test_linen_sequential_functions():
    w = weights()
    seq = linen.Sequential([linen.Dense(7), linen.relu, linen.Dropout(0.5, deterministic=True), linen.Dense(3)])
    variables = {"params": {"layers_0": {"kernel": jnp.asarray(w["k1"]), "bias": jnp.asarray(w["b1"])},
                            "layers_3": {"kernel": jnp.asarray(w["k2"]), "bias": jnp.asarray(w["b2"])}}}
    x = vector_probe()
    _, layers, out = run((seq, variables), x)
    assert [(la.name, la.op, la.kind) for la in layers] == [
        ("layers_0", "Dense", "dense"), ("layers_1", "relu", "activation"),
        ("layers_2", "Dropout", "other"), ("layers_3", "Dense", "dense")]
    np.testing.assert_allclose(out["layers_1"], mlp_numpy(x)["relu1"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["layers_3"], mlp_numpy(x)["dense2"], rtol=1e-5, atol=1e-5)


class NeedsTrain(linen.Module):
    @linen.compact
    def __call__(self, x, train: bool):
        h = linen.Dense(7)(x)
        h = linen.BatchNorm(use_running_average=not train)(h)
        return jax.nn.relu(h)


def test_linen_call_kwargs_and_running_statistics():
    """BatchNorm in inference mode uses the stored mean/var: (h - mean) / sqrt(var + eps)."""
    x = vector_probe()
    rng = np.random.default_rng(3)
    k, b = rng.normal(size=(10, 7)).astype(np.float32), rng.normal(size=7).astype(np.float32)
    mean, var = rng.normal(size=7).astype(np.float32), rng.uniform(0.5, 2, 7).astype(np.float32)
    variables = {"params": {"Dense_0": {"kernel": k, "bias": b},
                            "BatchNorm_0": {"scale": np.ones(7, np.float32), "bias": np.zeros(7, np.float32)}},
                 "batch_stats": {"BatchNorm_0": {"mean": mean, "var": var}}}
    with pytest.raises(Exception, match=r"call_kwargs=\{\.\.\.\}.*train=False"):
        JaxProvider((NeedsTrain(), variables)).layers(x[:2])
    _, layers, out = run((NeedsTrain(), variables), x, call_kwargs={"train": False})
    assert [la.name for la in layers] == ["Dense_0", "BatchNorm_0"]
    h = x.astype(np.float64) @ k + b
    np.testing.assert_allclose(out["BatchNorm_0"], (h - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)


def test_same_network_three_ways_scores_one():
    """nnx, linen and a plain function with the same weights: every neuron's partner is its
    counterpart with r = 1, whatever the two models' layer names are."""
    x = vector_probe(40)
    for a, b in [(nnx_mlp(), fn_mlp()), (linen_mlp(), nnx_mlp())]:
        result = compare(a, b, x)
        assert result.score.a_to_b == pytest.approx(1.0, abs=1e-6)
        assert result.score.b_to_a == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_array_equal(result.partner_a, np.arange(7))


def test_module_reference_from_the_cli(tmp_path, monkeypatch, capsys):
    """'module:callable' builds nnx, linen and function models for the command line."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "probe.npy", vector_probe(30))
    for ref in ("jax_models:nnx_mlp", "jax_models:linen_mlp", "jax_models:fn_mlp"):
        assert main(["layers", ref, "--input-shape", "10"]) == 0
        assert "relu" in capsys.readouterr().out
    out = tmp_path / "r.json"
    assert main(["compare", "jax_models:nnx_mlp", "jax_models:fn_mlp", "--probe", str(tmp_path / "probe.npy"),
                 "--json", str(out), "--quiet"]) == 0
    import json

    assert json.loads(out.read_text())["score"]["a_to_b"] == pytest.approx(1.0, abs=1e-6)


def test_open_model_picks_the_jax_provider_for_each_kind():
    for model in (nnx_mlp(), linen_mlp(), fn_mlp(), jax.jit(fn_cnn())):
        assert open_model(model).name == "jax"
    assert JaxProvider.accepts(fn_cnn())
    assert not JaxProvider.accepts((object(), {}))
    assert not JaxProvider.accepts("model.onnx")


def test_function_layers_ordered_by_computation_ties_by_dict_order():
    def fn(x):
        dense1 = x * 2.0
        relu1 = jax.nn.relu(dense1)
        same = relu1  # no new computation: ties with relu1, keeps the dict's order
        return relu1, {"relu1": relu1, "dense1": dense1, "same": same}

    layers = JaxProvider(fn).layers(vector_probe(2))
    assert [la.name for la in layers] == ["dense1", "relu1", "same"]


def _means(prov, probe, names):
    return next(prov.activations([probe], names, channel_means=True))


def test_channel_means_equal_numpy_means_of_the_models_own_forward():
    """NCHW function, NHWC function (layout found by trying) and an NHWC nnx module: the
    pushed-down means equal numpy's spatial means of the framework's own outputs."""
    x = image_probe()
    cnn = fn_cnn()
    prov, _, _ = run(cnn, x)
    _, own = cnn(jnp.asarray(x))  # the plain function's own forward, NCHW
    got = _means(prov, x, ["conv1", "relu1", "dense1"])
    for name, axes in (("conv1", (2, 3)), ("relu1", (2, 3))):
        np.testing.assert_allclose(got[name], np.asarray(own[name], np.float64).mean(axis=axes),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(got["dense1"], np.asarray(own["dense1"]), rtol=1e-6)  # no spatial axes

    kernel = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 3, 4)), jnp.float32)
    nhwc_fn = functools.partial(_nhwc_relu_conv, kernel)
    prov, _, _ = run(nhwc_fn, x)
    assert prov.channels_last is True
    _, own = nhwc_fn(jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(_means(prov, x, ["relu1"])["relu1"],
                               np.asarray(own["relu1"], np.float64).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)

    model = nnx_cnn()
    k, b = array(model.conv.kernel), array(model.conv.bias)  # HWIO: a numpy conv as reference
    conv = sum(np.einsum("nchw,co->nohw", x[:, :, i:i + 6, j:j + 6], k[i, j]) for i in range(3) for j in range(3))
    prov, _, _ = run(model, x)
    np.testing.assert_allclose(_means(prov, x, ["conv"])["conv"], (conv + b[None, :, None, None]).mean(axis=(2, 3)),
                               rtol=1e-5, atol=1e-5)


def test_channel_means_of_other_ranks_follow_the_channel_view():
    """A 3-D output (batch, C, L) is averaged over L, a 5-D one over its three last axes."""
    x = image_probe()

    def shapes(x):
        n = x.shape[0]
        return x, {"seq": x.reshape(n, 3, 64), "vol": x.reshape(n, 3, 4, 4, 4), "flat": x.reshape(n, -1)}

    prov, _, _ = run(shapes, x, layout="nchw")
    got = _means(prov, x, ["seq", "vol", "flat"])
    n = len(x)
    np.testing.assert_allclose(got["seq"], x.reshape(n, 3, 64).mean(axis=2), rtol=1e-6)
    np.testing.assert_allclose(got["vol"], x.reshape(n, 3, -1).mean(axis=2), rtol=1e-6)
    np.testing.assert_array_equal(got["flat"], x.reshape(n, -1))


def test_channel_means_leave_the_compiled_function_as_batch_by_channels():
    """Only (batch, C) arrays leave the device, from their own compiled function, traced once."""
    calls = []

    def counted(x):
        calls.append(x.shape)
        return fn_cnn()(x)

    x = image_probe()
    prov = JaxProvider(counted)
    prov.layers(x[:2])
    list(prov.activations([x], ["relu1"]))
    list(prov.activations([x, x], ["relu1"], channel_means=True))
    list(prov.activations([x], ["relu1"], channel_means=True))
    assert len(calls) == 3  # listing, the raw capture, the means capture (cached after)
    raw, means = prov._compiled[("relu1",), False], prov._compiled[("relu1",), True]
    assert [o.shape for o in jax.eval_shape(raw, prov.adapter.params, x)] == [(12, 5, 6, 6)]
    assert [(o.shape, o.dtype) for o in jax.eval_shape(means, prov.adapter.params, x)] == [((12, 5), jnp.float32)]
