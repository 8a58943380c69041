"""The paper's MLP in JAX (a Flax nnx module, optax SGD), trained as the PyTorch one is.

Imported only when ``--mlp-framework jax`` is chosen. The module is an ``nnx.Sequential`` of
a flatten function, ``nnx.Linear`` and bare ``nnx.relu`` per hidden layer, ``nnx.Dropout``
and the output ``nnx.Linear``: neurocorr's jax provider names each bare function's output after
its position (``layers.2``) with op ``relu``, so ``kind:relu`` selects the hidden ReLU outputs.
The flatten works on the probe as it comes; with one channel, NCHW and NHWC flatten alike, so
the provider's layout choice cannot change what the first Linear sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError
from neurocorr_torch.demo import Split

from .settings import Settings
from .trained_model import TrainedModel


def import_jax() -> tuple[Any, Any, Any]:
    try:
        import jax
        import optax
        from flax import nnx
    except ImportError as exc:
        raise NeurocorrError(f"--mlp-framework jax needs jax, flax and optax ({exc}); install them with: "
                             "pip install jax flax optax") from None
    return jax, nnx, optax


def flatten(x: Any) -> Any:
    return x.reshape(x.shape[0], -1)


def torch_like_init(jax: Any, fan_in: int) -> dict[str, Any]:
    """PyTorch's nn.Linear default: weights and biases uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: Any, shape: Sequence[int], dtype: Any = np.float32) -> Any:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return {"kernel_init": init, "bias_init": init}


def build(hidden: Sequence[int], inputs: int, seed: int, classes: int = 10) -> Any:
    """flatten, (Linear + relu) per hidden layer, Dropout 0.5, Linear ``classes`` (logits)."""
    jax, nnx, _ = import_jax()
    rngs = nnx.Rngs(params=seed, dropout=seed + 1)
    layers: list[Any] = [flatten]
    width = inputs
    for h in hidden:
        layers += [nnx.Linear(width, h, rngs=rngs, **torch_like_init(jax, width)), nnx.relu]
        width = h
    layers += [nnx.Dropout(0.5, rngs=rngs), nnx.Linear(width, classes, rngs=rngs, **torch_like_init(jax, width))]
    return nnx.Sequential(*layers)


def sgd_steps(model: Any, lr: float) -> Callable[[Any, Any], None]:
    """``step(x, y)``: one jitted SGD step on the mean cross-entropy, updating ``model`` in
    place (its weights and its dropout key). Split once, merged inside ``jax.jit`` (Flax's
    fast pattern: no graph traversal per step)."""
    jax, nnx, optax = import_jax()
    optimiser = nnx.Optimizer(model, optax.sgd(lr), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimiser))
    current = {"state": state}

    @jax.jit
    def update(state: Any, x: Any, y: Any) -> Any:
        model, optimiser = nnx.merge(graphdef, state)

        def loss(model: Any) -> Any:
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        optimiser.update(model, nnx.grad(loss)(model))
        return nnx.state((model, optimiser))

    def step(x: Any, y: Any) -> None:
        current["state"] = update(current["state"], x, y)

    def finish() -> None:
        nnx.update((model, optimiser), current["state"])

    step.finish = finish  # type: ignore[attr-defined]
    return step


def predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    jax, nnx, _ = import_jax()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x).argmax(1))

    def run(images: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(images, dtype=np.float32)
        return np.concatenate([np.asarray(forward(state, x[s:s + 1024])) for s in range(0, len(x), 1024)])
    return run


def train_mlp(name: str, hidden: Sequence[int], data: Split, settings: Settings, seed: int) -> TrainedModel:
    """The paper's MLP trained in JAX: SGD lr ``settings.mlp_lr`` (no momentum), batch
    ``settings.batch_size`` (the last one smaller, as in torch), ``settings.mlp_epochs``
    epochs, mean cross-entropy on logits, reshuffled every epoch."""
    x_train, y_train = data.x_train.numpy(), data.y_train.numpy().astype(np.int32)
    model = build(hidden, int(np.prod(x_train.shape[1:])), seed)
    model.train()  # dropout on
    step = sgd_steps(model, settings.mlp_lr)
    order_rng = np.random.default_rng(seed)
    bs = settings.batch_size
    for _ in range(settings.mlp_epochs):
        order = order_rng.permutation(len(x_train))
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            step(x_train[idx], y_train[idx])
    step.finish()  # type: ignore[attr-defined]
    model.eval()  # dropout off, for predict and for the provider
    predict = predictor(model)
    accuracy = float((predict(data.x_test.numpy()) == data.y_test.numpy()).mean())
    return TrainedModel(name, model, "kind:relu", predict, accuracy)
