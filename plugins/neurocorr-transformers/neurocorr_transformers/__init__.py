"""neurocorr plugin: Hugging Face transformers (PyTorch) with uniform layer names, sequence probes
(texts, token ids with masks) and the ``hf-onnx`` provider for their ONNX exports."""

from neurocorr_core import ActivationProvider, hookimpl, require

require("torch", "pip install torch==2.13.0")
require("transformers", "pip install transformers tokenizers")

from .probe import text_probe, token_probe  # noqa: E402
from .provider import HFModel, HFProvider  # noqa: E402


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [HFProvider]


__all__ = ["HFModel", "HFProvider", "text_probe", "token_probe"]
