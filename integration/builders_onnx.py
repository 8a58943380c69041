"""ONNX exports of models built natively in PyTorch, Keras and JAX, for the cross-framework tests.

- ``export_torch``: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter:
  it needs only ``onnx`` and takes a fraction of a second, where the dynamo exporter needs
  ``onnxscript`` and takes seconds. The batch axis is exported as dynamic.
- ``export_keras``: Keras 3's ``model.export(path, format="onnx")`` (tf2onnx underneath); the
  model must have been called (or built) once. The input stays NHWC, as in Keras.
- ``export_jax``: ``jax2onnx.to_onnx`` with a symbolic batch axis, for a Flax nnx module, a
  linen ``(module, variables)`` pair or a plain function (``fn(x) -> output`` or the JAX
  provider's ``fn(x) -> (output, intermediates)``). jax2tf -> tf2onnx does not work here.

Each returns the path of the written ``.onnx`` file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]


def export_torch(model: Any, path: PathLike, input_shape: Sequence[int] | None = None) -> Path:
    """Export a ``torch.nn.Module``; ``input_shape`` is the per-sample shape (C, H, W) or
    (features,), inferred from a first ``nn.Linear`` when not given."""
    import torch

    shape = tuple(input_shape) if input_shape is not None else _torch_input_shape(model)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, and says so
        torch.onnx.export(model, (torch.zeros((2, *shape)),), os.fspath(path), dynamo=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return Path(path)


def _torch_input_shape(model: Any) -> tuple[int, ...]:
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            return (module.in_features,)
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            break
    raise ValueError("export_torch cannot infer the input shape of a model that does not start with "
                     "nn.Linear; pass input_shape=(C, H, W)")


def export_keras(model: Any, path: PathLike) -> Path:
    """Export a Keras 3 model (Sequential or functional) that has been built."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise ValueError(f"export_keras needs a model with a fixed per-sample input shape, not {shape}")
    model(np.zeros((1, *shape), dtype="float32"))  # export refuses a model never called
    model.export(os.fspath(path), format="onnx", verbose=False)
    return Path(path)


def export_jax(model: Any, path: PathLike, input_shape: Sequence[int] | None = None) -> Path:
    """Export a Flax nnx module, a linen ``(module, variables)`` pair or a JAX function;
    ``input_shape`` is the per-sample shape in the model's own layout ((H, W, C) for Flax
    convolutions), required because a JAX function does not declare it."""
    import jax2onnx

    if input_shape is None:
        raise ValueError("export_jax needs input_shape, the per-sample input shape in the model's own "
                         "layout, e.g. (16,) or (8, 8, 1) for an NHWC Flax CNN")
    jax2onnx.to_onnx(_as_function(model), [("B", *input_shape)], return_mode="file",
                     output_path=os.fspath(path))
    return Path(path)


def _as_function(model: Any) -> Callable[..., Any]:
    from flax import nnx

    if isinstance(model, nnx.Module):
        return model  # jax2onnx traces nnx modules directly
    if isinstance(model, tuple) and len(model) == 2:
        module, variables = model
        return lambda x: module.apply(variables, x)

    def output_only(x: Any) -> Any:
        out = model(x)
        return out[0] if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict) else out

    return output_only
