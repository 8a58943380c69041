"""Flax nnx twins of Hugging Face GPT-2 and BERT models: the same computation in JAX, loaded with the
torch model's weights (:func:`from_torch`), for inference.

A twin's modules carry the torch model's attribute names (``h.0.attn.c_proj``,
``encoder.layer.0.intermediate.dense``), so every weight has one obvious source, and
:meth:`points` maps the uniform layer names of the ``hf`` provider (``embed``, ``block{i}.attn``,
``block{i}.mlp.act``, ``block{i}.resid``) to the twin's module paths. The ``hf-flax`` provider
(:mod:`neurocorr_transformers.flax_provider`) runs a twin on the same token probes as the ``hf``
provider, with the same mask. Nothing is downloaded: the weights come from the model in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from neurocorr_core import NeurocorrError

#: transformers' activation names (``ACT2FN``) a twin reproduces.
ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),  # 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}
_RNGS = 0  # the random initial weights are overwritten by from_torch; the seed only fixes their shapes' build


class Activation(nnx.Module):
    """The MLP's nonlinearity as a module, so that its output is a capture point (``mlp.act``)."""

    def __init__(self, function: str) -> None:
        if function not in ACTIVATIONS:
            raise NeurocorrError(f"activation {function!r} has no Flax twin yet; twins take {', '.join(ACTIVATIONS)}")
        self.function = function

    def __call__(self, x: Any) -> Any:
        return ACTIVATIONS[self.function](x)


def _layer_norm(width: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # two-pass variance, as torch computes it (the fast E[x^2] - E[x]^2 loses digits in float32)
    return nnx.LayerNorm(width, epsilon=eps, use_fast_variance=False, rngs=rngs)


def _attend(q: Any, k: Any, v: Any, allowed: Any, heads: int, scale: float) -> Any:
    """Multi-head attention of (batch, tokens, width) queries, keys, values; ``allowed`` (batch, 1,
    tokens, tokens) says which keys each query sees. A query that sees no key (a padded position)
    gets the mean of the values, as transformers' additive dtype-minimum mask gives: never NaN."""
    b, t, width = q.shape

    def split(x: Any) -> Any:
        return x.reshape(b, t, heads, width // heads).transpose(0, 2, 1, 3)

    scores = jnp.einsum("bhqd,bhkd->bhqk", split(q), split(k)) * scale
    scores = jnp.where(allowed, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bhqk,bhkd->bhqd", weights, split(v)).transpose(0, 2, 1, 3).reshape(b, t, width)


def _mask(input_ids: Any, attention_mask: Any) -> Any:
    return jnp.ones(input_ids.shape, bool) if attention_mask is None else jnp.asarray(attention_mask) > 0


# -- GPT-2 -----------------------------------------------------------------------------------------------
class GPT2Attention(nnx.Module):
    def __init__(self, width: int, heads: int, scale: float, rngs: nnx.Rngs) -> None:
        self.c_attn = nnx.Linear(width, 3 * width, rngs=rngs)
        self.c_proj = nnx.Linear(width, width, rngs=rngs)
        self.heads, self.scale = heads, scale

    def __call__(self, x: Any, allowed: Any) -> Any:
        q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)
        return self.c_proj(_attend(q, k, v, allowed, self.heads, self.scale))


class GPT2MLP(nnx.Module):
    def __init__(self, width: int, inner: int, function: str, rngs: nnx.Rngs) -> None:
        self.c_fc = nnx.Linear(width, inner, rngs=rngs)
        self.act = Activation(function)
        self.c_proj = nnx.Linear(inner, width, rngs=rngs)

    def __call__(self, x: Any) -> Any:
        return self.c_proj(self.act(self.c_fc(x)))


class GPT2Block(nnx.Module):
    """Pre-LN: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: Any, layer: int, rngs: nnx.Rngs) -> None:
        width, heads = config.n_embd, config.n_head
        scale = (width // heads) ** -0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= layer + 1
        self.ln_1 = _layer_norm(width, config.layer_norm_epsilon, rngs)
        self.attn = GPT2Attention(width, heads, scale, rngs)
        self.ln_2 = _layer_norm(width, config.layer_norm_epsilon, rngs)
        self.mlp = GPT2MLP(width, config.n_inner or 4 * width, config.activation_function, rngs)

    def __call__(self, x: Any, allowed: Any) -> Any:
        x = x + self.attn(self.ln_1(x), allowed)
        return x + self.mlp(self.ln_2(x))


class FlaxGPT2(nnx.Module):
    """transformers' ``GPT2Model`` in Flax nnx (inference: no dropout, no cache): token + position
    embeddings (positions 0..T-1, as transformers gives them), pre-LN blocks of causal attention
    that sees only real tokens, and a final LayerNorm. ``__call__(input_ids, attention_mask=None)``
    returns the last hidden state (batch, tokens, width)."""

    def __init__(self, config: Any, rngs: nnx.Rngs) -> None:
        if getattr(config, "add_cross_attention", False):
            raise NeurocorrError("a GPT-2 with cross-attention has no Flax twin yet; twins are decoder-only GPT-2s")
        self.vocab_size, self.max_positions = config.vocab_size, config.n_positions
        self.wte = nnx.Embed(config.vocab_size, config.n_embd, rngs=rngs)
        self.wpe = nnx.Embed(config.n_positions, config.n_embd, rngs=rngs)
        self.drop = nnx.Dropout(config.embd_pdrop, deterministic=True)  # identity: the `embed` capture point
        self.h = nnx.List([GPT2Block(config, i, rngs) for i in range(config.n_layer)])
        self.ln_f = _layer_norm(config.n_embd, config.layer_norm_epsilon, rngs)

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> Any:
        t = input_ids.shape[1]
        causal = jnp.tril(jnp.ones((t, t), bool))
        allowed = causal[None, None] & _mask(input_ids, attention_mask)[:, None, None, :]
        x = self.drop(self.wte(input_ids) + self.wpe(jnp.arange(t))[None])
        for block in self.h:
            x = block(x, allowed)
        return self.ln_f(x)

    def points(self) -> dict[str, tuple[str, str]]:
        """The uniform layer names, in forward order: name -> (module path, kind)."""
        return _points("drop", [f"h.{i}" for i in range(len(self.h))], "attn.c_proj", "mlp.act")


# -- BERT ------------------------------------------------------------------------------------------------
class BertEmbeddings(nnx.Module):
    def __init__(self, config: Any, rngs: nnx.Rngs) -> None:
        width = config.hidden_size
        self.word_embeddings = nnx.Embed(config.vocab_size, width, rngs=rngs)
        self.position_embeddings = nnx.Embed(config.max_position_embeddings, width, rngs=rngs)
        self.token_type_embeddings = nnx.Embed(config.type_vocab_size, width, rngs=rngs)
        self.LayerNorm = _layer_norm(width, config.layer_norm_eps, rngs)

    def __call__(self, input_ids: Any) -> Any:
        # token type 0 everywhere and positions 0..T-1: transformers' defaults without those inputs
        x = (self.word_embeddings(input_ids) + self.position_embeddings(jnp.arange(input_ids.shape[1]))[None]
             + self.token_type_embeddings(jnp.zeros_like(input_ids)))
        return self.LayerNorm(x)


class BertSelfAttention(nnx.Module):
    def __init__(self, width: int, heads: int, rngs: nnx.Rngs) -> None:
        self.query = nnx.Linear(width, width, rngs=rngs)
        self.key = nnx.Linear(width, width, rngs=rngs)
        self.value = nnx.Linear(width, width, rngs=rngs)
        self.heads = heads

    def __call__(self, x: Any, allowed: Any) -> Any:
        width = x.shape[-1]
        return _attend(self.query(x), self.key(x), self.value(x), allowed, self.heads, (width // self.heads) ** -0.5)


class BertDenseNorm(nnx.Module):
    """transformers' ``BertSelfOutput``/``BertOutput``: LayerNorm(dense(x) + residual)."""

    def __init__(self, width_in: int, width: int, eps: float, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(width_in, width, rngs=rngs)
        self.LayerNorm = _layer_norm(width, eps, rngs)

    def __call__(self, x: Any, residual: Any) -> Any:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nnx.Module):
    def __init__(self, config: Any, rngs: nnx.Rngs) -> None:
        width = config.hidden_size
        self.self = BertSelfAttention(width, config.num_attention_heads, rngs)
        self.output = BertDenseNorm(width, width, config.layer_norm_eps, rngs)

    def __call__(self, x: Any, allowed: Any) -> Any:
        return self.output(self.self(x, allowed), x)


class BertIntermediate(nnx.Module):
    def __init__(self, config: Any, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(config.hidden_size, config.intermediate_size, rngs=rngs)
        self.intermediate_act_fn = Activation(config.hidden_act)

    def __call__(self, x: Any) -> Any:
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nnx.Module):
    """Post-LN: a = LN(x + attn(x)), then LN(a + dense(act(dense(a))))."""

    def __init__(self, config: Any, rngs: nnx.Rngs) -> None:
        self.attention = BertAttention(config, rngs)
        self.intermediate = BertIntermediate(config, rngs)
        self.output = BertDenseNorm(config.intermediate_size, config.hidden_size, config.layer_norm_eps, rngs)

    def __call__(self, x: Any, allowed: Any) -> Any:
        a = self.attention(x, allowed)
        return self.output(self.intermediate(a), a)


class BertEncoder(nnx.Module):
    def __init__(self, config: Any, rngs: nnx.Rngs) -> None:
        self.layer = nnx.List([BertLayer(config, rngs) for _ in range(config.num_hidden_layers)])


class BertPooler(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, hidden: Any) -> Any:
        return jnp.tanh(self.dense(hidden[:, 0]))


class FlaxBert(nnx.Module):
    """transformers' ``BertModel`` (an encoder) in Flax nnx, for inference: embeddings (token type 0),
    post-LN layers whose attention sees only real tokens. ``__call__(input_ids, attention_mask=None)``
    returns the last hidden state (batch, tokens, width); ``pooler(hidden)`` the pooled output when the
    torch model has a pooler."""

    def __init__(self, config: Any, rngs: nnx.Rngs, pooler: bool = True) -> None:
        if getattr(config, "is_decoder", False):
            raise NeurocorrError("a BERT decoder (is_decoder=True) has no Flax twin yet; twins are BERT encoders")
        self.vocab_size, self.max_positions = config.vocab_size, config.max_position_embeddings
        self.embeddings = BertEmbeddings(config, rngs)
        self.encoder = BertEncoder(config, rngs)
        self.pooler = BertPooler(config.hidden_size, rngs) if pooler else None

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> Any:
        allowed = _mask(input_ids, attention_mask)[:, None, None, :]
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, allowed)
        return x

    def points(self) -> dict[str, tuple[str, str]]:
        """The uniform layer names, in forward order: name -> (module path, kind)."""
        blocks = [f"encoder.layer.{i}" for i in range(len(self.encoder.layer))]
        return _points("embeddings", blocks, "attention.output.dense", "intermediate.intermediate_act_fn")


def _points(embed: str, blocks: list[str], attn: str, act: str) -> dict[str, tuple[str, str]]:
    points = {"embed": (embed, "other")}
    for i, block in enumerate(blocks):
        points |= {f"block{i}.attn": (f"{block}.{attn}", "dense"),
                   f"block{i}.mlp.act": (f"{block}.{act}", "activation"), f"block{i}.resid": (block, "other")}
    return points


# -- loading the torch weights ---------------------------------------------------------------------------
TWINS: dict[str, Callable[[Any, bool], nnx.Module]] = {
    "gpt2": lambda config, _pooler: FlaxGPT2(config, nnx.Rngs(_RNGS)),
    "bert": lambda config, pooler: FlaxBert(config, nnx.Rngs(_RNGS), pooler),
}
_TORCH_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}


def from_torch(model: Any) -> nnx.Module:
    """A Flax nnx twin of ``model`` (a transformers GPT-2 or BERT model, or a task model around one,
    e.g. ``GPT2LMHeadModel``: its base model is copied) holding the same weights, float32.

    Every parameter of the base model is copied (torch ``nn.Linear`` weights transposed to Flax's
    (in, out) kernels; GPT-2's ``Conv1D`` already is (in, out)); a parameter left over or missing
    is an error, so a twin never runs with a random weight."""
    base = getattr(model, "base_model", model)
    config = getattr(base, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in TWINS:
        raise NeurocorrError(f"no Flax twin for {type(model).__name__} (model type {kind!r}); twins exist for "
                             f"{', '.join(TWINS)} models of transformers; compare others with the hf-onnx provider")
    params = dict(base.named_parameters())
    twin = nnx.eval_shape(lambda: TWINS[kind](config, any(n.startswith("pooler.") for n in params)))
    modules = dict(base.named_modules())
    import torch

    used: set[str] = set()
    for path, variable in nnx.to_flat_state(nnx.state(twin, nnx.Param)):
        owner = ".".join(str(p) for p in path[:-1])
        name = f"{owner}.{_TORCH_NAMES[str(path[-1])]}"
        if name not in params:
            raise NeurocorrError(f"{type(model).__name__} has no parameter {name!r} for the twin's {owner}; "
                                 "is it a standard transformers GPT-2/BERT?")
        value = params[name].detach().float().cpu()
        if isinstance(modules[owner], torch.nn.Linear) and value.ndim == 2:
            value = value.T  # torch Linear (out, in) -> Flax kernel (in, out)
        expected = variable.get_value().shape
        if tuple(value.shape) != tuple(expected):
            raise NeurocorrError(f"parameter {name!r} of {type(model).__name__} has shape {tuple(value.shape)}; "
                                 f"the twin expects {tuple(expected)}")
        variable.set_value(jnp.asarray(np.ascontiguousarray(value.numpy())))
        used.add(name)
    left = sorted(set(params) - used)
    if left:
        raise NeurocorrError(f"the Flax twin of {type(model).__name__} has no place for {len(left)} parameter(s) "
                             f"({', '.join(left[:4])}...); twins cover transformers' standard GPT-2 and BERT only")
    return twin


class Fed(nnx.Module):
    """A twin fed a token probe batch (batch, 2, tokens) float32 (ids, mask): what the jax provider
    calls with one argument."""

    def __init__(self, model: nnx.Module) -> None:
        self.model = model

    def __call__(self, x: Any) -> Any:
        return self.model(x[:, 0].astype(jnp.int32), x[:, 1] > 0)
