"""Train/test splits of the real data sets the experiment runs on, as torch tensors."""

from __future__ import annotations

import numpy as np
import torch

from neurocorr_core import NeurocorrError, load_probe
from neurocorr_torch.demo import Split, split

from .settings import DATASETS, Settings


def load_split(dataset: str, settings: Settings) -> Split:
    """Images (N, 1, H, W) float32 in [0, 1] and int64 labels.

    ``fashion-mnist`` and ``mnist`` use their own train/test files (the loaders say how to
    install missing data); ``digits`` (1,797 images) is split 75/25 with a fixed seed, so
    every training seed sees the same split. ``settings.train_limit`` and ``test_limit`` keep
    the first N training and test images.
    """
    if dataset not in DATASETS:
        raise NeurocorrError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "digits":
        probe = load_probe("digits")
        assert probe.labels is not None
        data = split(np.asarray(probe.data), probe.labels, 0.25, seed=0)
    else:
        train, test = load_probe(f"{dataset}:train"), load_probe(f"{dataset}:test")
        assert train.labels is not None and test.labels is not None
        data = Split(*(torch.from_numpy(np.ascontiguousarray(a)) for a in
                       (train.data, train.labels, test.data, test.labels)))
    keep_train, keep_test = slice(settings.train_limit), slice(settings.test_limit)
    return Split(data.x_train[keep_train], data.y_train[keep_train], data.x_test[keep_test],
                 data.y_test[keep_test])
