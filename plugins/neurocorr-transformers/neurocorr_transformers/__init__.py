"""neurocorr plugin: Hugging Face transformers (PyTorch) with uniform layer names, sequence probes
(texts, token ids with masks; ``--probe text:FILE``), the ``hf-onnx`` provider for their ONNX exports,
the ``hf-flax`` provider for their Flax nnx twins (``flax_twin.from_torch``), and the
``neurocorr universal-neurons`` command (Gurnee et al. 2024 on tiny GPT-2s trained offline)."""

import importlib.util
import os

from neurocorr_core import ActivationProvider, Command, NeurocorrError, hookimpl, require
from neurocorr_core.probe import Probe

require("torch", "pip install torch==2.13.0")
require("transformers", "pip install transformers tokenizers")

from .commands import TextProbeCommand, UniversalNeuronsCommand  # noqa: E402
from .probe import text_probe, token_probe  # noqa: E402
from .provider import HFModel, HFProvider  # noqa: E402

#: The prefix of a text-file probe named on the command line or in an experiment file.
TEXT = "text:"


def _onnx() -> list[type[ActivationProvider]]:
    """The hf-onnx provider, where neurocorr-onnx (and so onnxruntime) is installed."""
    if importlib.util.find_spec("neurocorr_onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return []
    from .onnx import HFOnnxProvider

    return [HFOnnxProvider]


def _flax() -> list[type[ActivationProvider]]:
    """The hf-flax provider, where neurocorr-jax (and so jax and flax) is installed and imports."""
    if importlib.util.find_spec("neurocorr_jax") is None or importlib.util.find_spec("flax") is None:
        return []
    try:  # installed but broken (or blocked): the neurocorr-jax plugin itself says why; the rest works
        from .flax_provider import HFFlaxProvider
    except ImportError:
        return []
    return [HFFlaxProvider]


@hookimpl
def neurocorr_activation_providers() -> list[type[ActivationProvider]]:
    return [HFProvider, *_onnx(), *_flax()]


@hookimpl
def neurocorr_load_probe(text: str) -> Probe | None:
    """``text:FILE``: a text file as a probe of texts, one sample per non-empty line (:func:`text_probe`);
    each model tokenizes them with its own tokenizer."""
    if not text.startswith(TEXT):
        return None
    path = text[len(TEXT):]
    if not os.path.isfile(path):
        raise NeurocorrError(f"probe {text!r}: {path!r} is no text file; give a UTF-8 file, one sample per "
                             "non-empty line (--probe text:sentences.txt)")
    return text_probe(path)


@hookimpl
def neurocorr_commands() -> list[type[Command]]:
    return [UniversalNeuronsCommand, TextProbeCommand]


__all__ = ["HFModel", "HFProvider", "TextProbeCommand", "UniversalNeuronsCommand", "text_probe", "token_probe"]
