"""The ``device=`` option of the JAX provider: where the compiled forward passes run."""

from __future__ import annotations

import re
from typing import Any

from neurocorr_core import NeurocorrError

_DEVICE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def check_device(device: str) -> Any:
    """``device`` (``cpu``, ``gpu``, ``gpu:1``, ``cuda``, ``cuda:1``) as a ``jax.Device`` this
    machine has; a clear error for a GPU it does not have."""
    import jax

    match = _DEVICE.match(str(device).strip().lower())
    if match is None:
        raise NeurocorrError(f"device {device!r} is not a JAX device; use cpu, gpu, gpu:1 (or cuda, cuda:1)")
    kind, index = match.group(1), int(match.group(2) or 0)
    try:
        devices = jax.devices("cpu" if kind == "cpu" else "gpu")
    except RuntimeError:  # no GPU backend: jaxlib without CUDA, or no GPU found
        raise NeurocorrError(f"device {device!r} asked for, but this JAX ({jax.__version__}, backends: "
                             f"{jax.default_backend()}) has no GPU; use device=cpu, or run where a GPU and "
                             "jax[cuda12] are") from None
    if index >= len(devices):
        raise NeurocorrError(f"device {device!r} asked for, but JAX sees {len(devices)} {kind.replace('cuda', 'gpu')} "
                             f"device(s): {kind}:0..{kind}:{len(devices) - 1}")
    return devices[index]
