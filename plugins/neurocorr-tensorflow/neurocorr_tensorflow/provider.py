"""The TensorFlow/Keras activation provider: Keras 3 models, .keras/.h5 files, SavedModels."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError
from neurocorr_core.models import ModelName

from . import named
from .device import check_device
from .keras_models import Feed, IsLast, KerasEager, KerasGraph
from .layout import (
    LAST,
    channels_last,
    check_layout,
    describe_expected,
    fits,
    input_format,
    to_model,
)
from .savedmodel import SavedModelGraph

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


class _Backend(Protocol):
    def declared(self) -> tuple[int | None, ...] | None: ...
    def fallback_format(self) -> str: ...
    def layer_format(self, name: str) -> str | None: ...
    def op(self, name: str) -> str: ...
    def kind(self, name: str) -> str: ...
    def prepare(self, shape: tuple[int, ...]) -> None: ...
    def run(self, x: np.ndarray, names: Sequence[str] | None, is_last: IsLast,
            means: bool = False) -> dict[str, np.ndarray]: ...


class TensorFlowProvider(ActivationProvider):
    """Layers of a Keras 3 model (in forward order, with the layers inside nested models named
    ``block/conv``) or of a SavedModel signature (its Keras name scopes), captured in one
    forward pass per batch.

    Options: ``layout`` (``auto``: move the NCHW probe's channels last when the model's input
    asks for it; ``nchw``: feed as given; ``nhwc``: always move), ``signature`` (SavedModel
    signature, default ``serving_default``), ``feed`` (a function from one probe batch to the
    inputs of a several-input model), ``trust_pickle`` (load ``.keras`` files with
    ``safe_mode=False``, which runs the code of Lambda layers), ``device`` (``cpu``, ``gpu``,
    ``gpu:1``; ``cuda`` is a synonym of ``gpu``). A model may be given by name:
    ``keras.applications:MobileNetV2?input_shape=32,32,3`` (docs/models-by-name.md).
    """

    name = "tensorflow"
    handles = ("keras.Model objects (Sequential, functional, subclassed), .keras/.h5 files, "
               "TensorFlow SavedModel directories (with saved_model.pb), models by name "
               "(keras.applications:MobileNetV2)")
    channel_means = True

    @classmethod
    def accepts(cls, model: object) -> bool:
        if isinstance(model, ModelName) or named.is_name(model):
            return named.is_name(str(model))
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            return path.suffix.lower() in KERAS_SUFFIXES or (path / "saved_model.pb").is_file()
        if "keras" in sys.modules:
            import keras

            if isinstance(model, keras.Model):
                return True
        # a tf.saved_model.load result: a trackable object with signatures
        return "tensorflow" in sys.modules and _is_loaded_savedmodel(model)

    def __init__(self, model: object, *, layout: str = "auto", signature: str = "serving_default",
                 feed: Feed | None = None, trust_pickle: bool = False, device: str = "cpu",
                 **options: Any) -> None:
        super().__init__(model, **options)
        self.layout = check_layout(layout)
        self.device = check_device(device)
        self.label = _label(model)
        self._name = named.parse(str(model)) if isinstance(model, (str, ModelName)) and named.is_name(str(model)) \
            else None
        self._files: list[str] = []
        if self._name is not None:
            import tensorflow as tf

            with tf.device(self.device):
                model, self._files = named.build(self._name)
        self.backend: _Backend = _open(model, self.label, signature, feed, trust_pickle)
        self._input_format: str | None = None
        self._output_format = LAST

    def fingerprint(self) -> str | None:
        """A model by name is built the same way every time (seeded): the name, Keras' version
        and the weight files decide it."""
        return None if self._name is None else named.fingerprint(self._name, self._files)

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        outputs = self._run(sample, None)
        return [LayerInfo(name, tuple(int(s) for s in out.shape[1:]), depth,
                          self.backend.kind(name), self.backend.op(name))
                for depth, (name, out) in enumerate(outputs.items())]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """One forward pass per batch; with ``channel_means`` the graph itself averages every
        output with spatial axes over them, so only (batch, C) arrays reach numpy."""
        names = list(layers)
        for batch in batches:
            yield self._run(batch, names, channel_means)

    def close(self) -> None:
        """Drop the compiled sub-models (they hold graphs and references to the model)."""
        for cache in ("_subs", "_pruned"):
            getattr(self.backend, cache, {}).clear()

    def _run(self, batch: np.ndarray, names: Sequence[str] | None, means: bool = False) -> dict[str, np.ndarray]:
        import tensorflow as tf

        x = self._to_model(np.asarray(batch))
        try:
            with tf.device(self.device):
                raw = self.backend.run(x, names, self._is_last, means)
        except (ValueError, tf.errors.InvalidArgumentError) as exc:
            raise NeurocorrError(f"{self.label} rejected a probe batch of shape {tuple(batch.shape)} "
                                 f"(fed as {tuple(x.shape)}): {_first_line(exc)}. {self._expected()}"
                                 ) from None
        return {name: np.ascontiguousarray(out, dtype=np.float32) for name, out in raw.items()}

    def _is_last(self, name: str) -> bool:
        """Whether a layer's output is channels-last: its own data format, else the input's."""
        return (self.backend.layer_format(name) or self._output_format) == LAST

    def _to_model(self, batch: np.ndarray) -> np.ndarray:
        """The probe batch in the model's layout, checked against the model's input shape."""
        declared = self.backend.declared()
        sample = tuple(batch.shape[1:])
        if self._input_format is None:
            fallback = self.backend.fallback_format()
            self._input_format = input_format(self.layout, sample, declared, fallback)
            # outputs without a data format of their own follow the input's layout
            self._output_format = self._input_format if len(sample) >= 2 else fallback
        x = to_model(batch, self._input_format)
        if declared is not None and not fits(tuple(x.shape[1:]), declared):
            moved = f" (moved channels-last: {_shape(x.shape)})" if x.shape != batch.shape else ""
            raise NeurocorrError(
                f"{self.label} expects {describe_expected(declared, self._input_format)}; the probe "
                f"batch has shape {_shape(batch.shape)}{moved}. Give a probe of the expected shape "
                f"(resize or reshape it){self._layout_hint(sample, declared)}")
        self.backend.prepare(tuple(x.shape[1:]))
        return x

    def _expected(self) -> str:
        declared = self.backend.declared()
        if declared is None:
            return "Check the probe's shape against the input the model was built for."
        return f"The model expects {describe_expected(declared, self._input_format or LAST)}."

    def _layout_hint(self, sample: tuple[int, ...], declared: Any) -> str:
        if self.layout != "auto" and (fits(sample, declared) or fits(channels_last(sample), declared)):
            return f", or use layout='auto' instead of {self.layout!r}"
        return ""


def _open(model: object, label: str, signature: str, feed: Feed | None, trust_pickle: bool) -> _Backend:
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if (path / "saved_model.pb").is_file():
            return SavedModelGraph(path, signature, label)
        if path.suffix.lower() in KERAS_SUFFIXES:
            return _keras_backend(_load_keras(path, trust_pickle), label, feed)
        raise NeurocorrError(f"{label} is neither a Keras file ({', '.join(KERAS_SUFFIXES)}) nor a "
                             "SavedModel directory (with saved_model.pb)")
    import keras

    if isinstance(model, keras.Model):
        return _keras_backend(model, label, feed)
    return SavedModelGraph(model, signature, label)


def _keras_backend(model: Any, label: str, feed: Feed | None) -> _Backend:
    import keras

    if isinstance(model, keras.Sequential):
        return KerasGraph(model, label, feed)
    try:
        model.inputs  # noqa: B018 - functional models have symbolic inputs, subclassed ones do not
    except AttributeError:
        return KerasEager(model, label, feed)
    return KerasGraph(model, label, feed)


def _load_keras(path: Path, trust_pickle: bool) -> Any:
    import zipfile

    import keras

    if path.suffix == ".keras" and path.is_file() and not zipfile.is_zipfile(path):
        # Keras reports such a file as "File not found", which misleads: say what it is
        raise NeurocorrError(f"{path} is not a Keras model file: not a valid .keras file (a .keras file is a "
                             "zip archive, this one is not: damaged, truncated or another format); save "
                             "models with model.save('model.keras')")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=not trust_pickle)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors... for a bad file
        text = _first_line(exc)
        if "safe_mode" in text:
            raise NeurocorrError(f"{path} holds a Lambda layer, whose code runs when it loads; if you "
                                 "trust the file, pass trust_pickle=True (CLI: --trust-pickle)") from None
        if "File not found" in text and path.exists():  # Keras' words for a file it cannot parse
            text = "not a Keras archive Keras can read"
        raise NeurocorrError(f"{path} is not a Keras model file ({type(exc).__name__}: {text}); save "
                             "models with model.save('model.keras')") from None


def _is_loaded_savedmodel(model: object) -> bool:
    import tensorflow as tf

    trackable = isinstance(model, tf.__internal__.tracking.AutoTrackable)
    return trackable and bool(getattr(model, "signatures", None))


def _label(model: object) -> str:
    if isinstance(model, (str, os.PathLike, ModelName)):
        return str(model) if isinstance(model, ModelName) else os.fspath(model)
    name = getattr(model, "name", None)
    return f"{type(model).__name__} {name!r}" if isinstance(name, str) else type(model).__name__


def _shape(shape: Sequence[int]) -> str:
    return "(N, " + ", ".join(str(s) for s in shape[1:]) + ")"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
