"""neurocorr-paper: the experiments of the paper neurocorr implements, re-run on offline data.

``neurocorr reproduce mnist-family`` (five MLPs and a CNN: network scores, accuracy, transfer
attack), ``neurocorr reproduce zoo`` (does the score predict accuracy across many small models,
and better than competing predictors? docs/study.md) and ``neurocorr reproduce efficientnet``
(EfficientNet-Lite family affinity). A plugin
that adds one command, ``reproduce`` (:class:`neurocorr_paper.cli.ReproduceCommand`), through the
``neurocorr_commands`` hook; unavailable (listed by ``neurocorr plugins`` with the reason) without torch.
"""

from neurocorr_core import Command, hookimpl, require

require("torch", "pip install torch==2.13.0")

from .cli import ReproduceCommand  # noqa: E402 - only once torch is known to exist

__version__ = "0.1.0"


@hookimpl
def neurocorr_commands() -> list[type[Command]]:
    return [ReproduceCommand]
