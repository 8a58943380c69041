"""The ``device=`` option of the TensorFlow provider: where the forward passes run."""

from __future__ import annotations

import re

from neurocorr_core import NeurocorrError

_DEVICE = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def check_device(device: str) -> str:
    """``device`` (``cpu``, ``gpu``, ``gpu:1``, ``cuda``, ``cuda:1``) as a TensorFlow device
    string (``/GPU:1``) this machine has; a clear error for a GPU it does not have."""
    import tensorflow as tf

    match = _DEVICE.match(str(device).strip().lower())
    if match is None:
        raise NeurocorrError(f"device {device!r} is not a TensorFlow device; use cpu, gpu, gpu:1 (or cuda, cuda:1)")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        return f"/CPU:{index}"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        build = "is built without CUDA" if not tf.test.is_built_with_cuda() else "finds no GPU"
        raise NeurocorrError(f"device {device!r} asked for, but this TensorFlow ({tf.__version__}) {build}; "
                             "use device=cpu, or run where a GPU and tensorflow[and-cuda] are")
    if index >= len(gpus):
        raise NeurocorrError(f"device {device!r} asked for, but TensorFlow sees {len(gpus)} GPU(s): "
                             f"gpu:0..gpu:{len(gpus) - 1}")
    return f"/GPU:{index}"
