"""No-argument builders of the numpy test models, so they can be named as ``grid_models:NAME``
references (Dask workers import them; the tests folder must be on their path).

``BUILT`` records every network built in this process, so a test can count forward passes:
``passes()`` is the number of probe batches of more than two samples they ran (layer listing
feeds two samples).
"""

from __future__ import annotations

import numpy as np

from numpy_models import NumpyNet, cnn, mlp

BUILT: list[NumpyNet] = []


def _keep(net: NumpyNet) -> NumpyNet:
    BUILT.append(net)
    return net


def passes() -> int:
    return sum(1 for net in BUILT for n in net.calls if n > 2)


def mlp_a() -> NumpyNet:
    return _keep(mlp(0, [6, 5], n_in=64))


def mlp_b() -> NumpyNet:
    return _keep(mlp(1, [8, 4], n_in=64))


def mlp_c() -> NumpyNet:
    return _keep(mlp(2, [7], n_in=64, dead=1))


def mlp_d() -> NumpyNet:
    return _keep(mlp(3, [5, 5, 5], n_in=64))


def cnn_a() -> NumpyNet:
    return _keep(cnn(0))


def cnn_b() -> NumpyNet:
    return _keep(cnn(1))



def _nan_on_big_batches(x: np.ndarray) -> np.ndarray:
    first = x.reshape(len(x), -1)[:, :3]
    return first if len(x) <= 2 else np.full_like(first, np.nan)


def nan_on_big_batches() -> NumpyNet:
    """Finite on the 2-sample layer listing, NaN on real batches: a failure inside a task."""
    return _keep(NumpyNet([("act", "ReLU", _nan_on_big_batches)], (1, 8, 8)))
