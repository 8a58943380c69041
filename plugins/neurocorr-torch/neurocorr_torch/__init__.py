"""neurocorr plugin: activations of PyTorch models (eager modules and TorchScript files)."""

from neurocorr_core import ActivationProvider, hookimpl, require

require("torch", "pip install torch==2.13.0")

from .provider import TorchProvider  # noqa: E402 - only once torch is known to exist


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [TorchProvider]


__all__ = ["TorchProvider"]
