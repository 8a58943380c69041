"""neurocorr plugin: activations of PyTorch models (eager modules and TorchScript files), and the
``neurocorr demo`` command."""

from neurocorr_core import ActivationProvider, Command, hookimpl, require

require("torch", "pip install torch==2.13.0")

from .commands import DemoCommand  # noqa: E402 - only once torch is known to exist
from .provider import TorchProvider  # noqa: E402


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [TorchProvider]


@hookimpl
def neurocorr_commands() -> list[type[Command]]:
    return [DemoCommand]


__all__ = ["DemoCommand", "TorchProvider"]
