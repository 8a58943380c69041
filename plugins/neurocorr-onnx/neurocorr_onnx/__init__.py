"""neurocorr plugin: activations of ONNX models, every node output a layer, through onnxruntime."""

from neurocorr_core import ActivationProvider, hookimpl, require

require("onnxruntime", "pip install onnxruntime")
require("onnx", "pip install onnx")

from .provider import OnnxModel, OnnxProvider  # noqa: E402 - only once the frameworks are known to exist


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [OnnxProvider]


__all__ = ["OnnxModel", "OnnxProvider"]
