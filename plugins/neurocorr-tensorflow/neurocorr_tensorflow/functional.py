"""Activation functions called inside a subclassed model's ``call`` (``keras.ops.relu``,
``tf.nn.relu``, ``keras.activations.gelu``, ``tf.tanh``) as layers.

Functional graphs hold ``keras.ops.relu`` as an operation node (see :mod:`.flat`); a subclassed
model runs eagerly and leaves no graph. While the provider runs its forward pass, the functions
below are replaced by wrappers that hand their output to the recorder, named after the sublayer
whose ``call`` made them: ``block/relu()``, ``block/relu()#1`` for its second call, ``relu()`` in
the model's own ``call``. A call made inside one of Keras' own layers (``keras.layers.ReLU``,
``Dense(activation="relu")``) is that layer's output already and is not recorded twice; nor is a
function called by another captured one (``keras.ops.relu`` runs ``tf.nn.relu``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: (where, op, output): ``where`` is the calling sublayer's path ("" for the model itself).
Record = Callable[[str, str, Any], None]
#: The path of the sublayer whose ``call`` runs now ("" for the model), None inside a Keras layer.
Place = Callable[[], "str | None"]

_KERAS_BACKEND = ("relu", "relu6", "gelu", "silu", "sigmoid", "hard_sigmoid", "hard_silu", "leaky_relu", "elu",
                  "selu", "celu", "softplus", "softsign", "mish", "hard_tanh")
_TF_NN = ("relu", "relu6", "gelu", "silu", "swish", "sigmoid", "tanh", "leaky_relu", "elu", "selu",
          "softplus", "softsign")


def targets() -> list[tuple[Any, str, str]]:
    """(module, attribute, op) of every captured function: Keras' backend functions, which
    ``keras.ops`` and ``keras.activations`` call, and TensorFlow's own."""
    import keras
    import tensorflow as tf

    found: list[tuple[Any, str, str]] = []
    if keras.backend.backend() == "tensorflow":
        from keras.src import backend

        found += [(backend.nn, name, name) for name in _KERAS_BACKEND]
        found.append((backend.numpy, "tanh", "tanh"))
    found += [(tf.nn, name, "silu" if name == "swish" else name) for name in _TF_NN]
    found += [(tf.math, "sigmoid", "sigmoid"), (tf.math, "tanh", "tanh"), (tf, "sigmoid", "sigmoid"),
              (tf, "tanh", "tanh")]
    return [(module, attr, op) for module, attr, op in found if callable(getattr(module, attr, None))]


@contextlib.contextmanager
def intercepted(record: Record, place: Place, symbolic: Callable[[Any], bool]) -> Iterator[None]:
    """While active, every captured function called by this thread outside another captured one
    and outside Keras' own layers hands its (eager) output to ``record``."""
    owner = threading.get_ident()
    depth = 0

    def wrap(function: Callable[..., Any], op: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal depth
            if depth or threading.get_ident() != owner:
                return function(*args, **kwargs)
            depth += 1
            try:
                out = function(*args, **kwargs)
            finally:
                depth -= 1
            where = place()
            if where is not None and not symbolic(out):
                record(where, op, out)
            return out
        return wrapper

    saved = [(module, attr, op, getattr(module, attr)) for module, attr, op in targets()]
    try:
        for module, attr, op, original in saved:
            setattr(module, attr, wrap(original, op))
        yield
    finally:
        for module, attr, _, original in saved:
            setattr(module, attr, original)


def is_keras_layer(layer: Any) -> bool:
    """One of Keras' own layers (its activations are the layer's output), not a user's subclass."""
    return type(layer).__module__.startswith("keras.")
