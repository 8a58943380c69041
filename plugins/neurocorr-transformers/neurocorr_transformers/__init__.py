"""neurocorr plugin: Hugging Face transformers (PyTorch) with uniform layer names, sequence probes
(texts, token ids with masks), the ``hf-onnx`` provider for their ONNX exports, and the
``neurocorr universal-neurons`` command (Gurnee et al. 2024 on tiny GPT-2s trained offline)."""

import importlib.util

from neurocorr_core import ActivationProvider, Command, hookimpl, require

require("torch", "pip install torch==2.13.0")
require("transformers", "pip install transformers tokenizers")

from .commands import TextProbeCommand, UniversalNeuronsCommand  # noqa: E402
from .probe import text_probe, token_probe  # noqa: E402
from .provider import HFModel, HFProvider  # noqa: E402


def _onnx() -> list[type[ActivationProvider]]:
    """The hf-onnx provider, where neurocorr-onnx (and so onnxruntime) is installed."""
    if importlib.util.find_spec("neurocorr_onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return []
    from .onnx import HFOnnxProvider

    return [HFOnnxProvider]


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [HFProvider, *_onnx()]


@hookimpl
def neurocorr_commands() -> list[type[Command]]:
    return [UniversalNeuronsCommand, TextProbeCommand]


__all__ = ["HFModel", "HFProvider", "TextProbeCommand", "UniversalNeuronsCommand", "text_probe", "token_probe"]
