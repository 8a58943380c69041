"""neurocorr plugin: activations of TensorFlow/Keras 3 models (objects, .keras files, SavedModels)."""

from neurocorr_core import ActivationProvider, hookimpl, require

require("tensorflow", "pip install tensorflow-cpu (or tensorflow for a GPU)")

from .provider import TensorFlowProvider  # noqa: E402 - only once tensorflow is known to exist


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [TensorFlowProvider]


__all__ = ["TensorFlowProvider"]
