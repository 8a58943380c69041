"""neurocorr-paper: the experiments of the paper neurocorr implements, re-run on offline data.

``neurocorr reproduce mnist-family`` (five MLPs and a CNN: network scores, accuracy, transfer
attack) and ``neurocorr reproduce efficientnet`` (EfficientNet-Lite family affinity). Not a
plugin: the core CLI imports :func:`neurocorr_paper.cli.main`.
"""

__version__ = "0.1.0"
