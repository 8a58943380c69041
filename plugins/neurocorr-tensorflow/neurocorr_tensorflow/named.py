"""Models by name: ``keras.applications:MobileNetV2?input_shape=32,32,3&weights=imagenet``.

Syntax (docs/models-by-name.md): ``keras.applications:MODEL`` then optional ``?KEY=VALUE&...``.
``weights``: absent = random weights (``weights=None``), drawn under ``seed`` (default 0) so a
name always builds the same model; ``imagenet`` = Keras' ImageNet weights, read only from the
Keras cache (``~/.keras/models``, ``$KERAS_HOME/models``); a path = a local weights file
(``model.save_weights('x.weights.h5')`` or a Keras ``.h5`` weights file). Every other key is a
keyword of the builder (``alpha=0.35``, ``classes=10``, ``include_top=false``); a shape may be
written ``32,32,3`` or ``[32,32,3]``. Nothing is ever downloaded: while the model is built,
Keras' downloader is replaced by an error naming the file it looked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocorr_core import NeurocorrError

LIBRARY = "keras.applications"
_SHAPE = re.compile(r"^\d+(,\d+)+$")


@dataclass(frozen=True)
class Name:
    """A parsed model name: builder, weights (None: random, ``imagenet`` or a path), seed, keywords."""

    text: str
    model: str
    weights: str | None = None
    seed: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint(self) -> str | None:
        """The local file ``weights`` names (anything but ``imagenet``)."""
        return None if self.weights in (None, "imagenet") else os.path.expanduser(str(self.weights))


def is_name(text: object) -> bool:
    return isinstance(text, str) and text.startswith(LIBRARY + ":")


def parse(text: str) -> Name:
    _, _, rest = text.partition(":")
    model, _, query = rest.partition("?")
    if not model.isidentifier():
        raise NeurocorrError(f"{text!r} is not a model name; write {LIBRARY}:MODEL[?KEY=VALUE&...], "
                             f"e.g. {LIBRARY}:MobileNetV2?input_shape=32,32,3")
    values: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise NeurocorrError(f"{text!r}: {item!r} is not KEY=VALUE; write e.g. "
                                 f"{LIBRARY}:{model}?weights=imagenet&input_shape=96,96,3")
        values[key] = value if key == "weights" else _value(value)
    seed = values.pop("seed", 0)
    if not isinstance(seed, int):
        raise NeurocorrError(f"{text!r}: seed must be an integer, got {seed!r}")
    weights = values.pop("weights", None)
    return Name(text, model, None if weights in (None, "", "none", "None") else str(weights), seed, values)


def _value(text: str) -> Any:
    """A builder keyword's value: ``32,32,3`` a shape tuple; JSON when it parses (10, 0.5,
    false, [32, 32, 3] as a tuple), else the text."""
    if _SHAPE.match(text):
        return tuple(int(s) for s in text.split(","))
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return tuple(value) if isinstance(value, list) else value


def build(name: Name) -> tuple[Any, list[str]]:
    """The ``keras.Model`` a name stands for (random weights drawn under ``seed``) and the
    weight files it read (for :func:`fingerprint`)."""
    import keras

    builder = getattr(keras.applications, name.model, None)
    if not (name.model[:1].isupper() and callable(builder)):
        models = [m for m in dir(keras.applications) if m[:1].isupper()]
        raise NeurocorrError(f"keras.applications has no model {name.model!r}; its models include "
                             f"{', '.join(_close(name.model, models))}")
    checkpoint = name.checkpoint
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise NeurocorrError(f"{name.text}: no weights file at {os.path.abspath(checkpoint)}; give the path of "
                             "a file saved with model.save_weights('model.weights.h5')")
    weights = "imagenet" if name.weights == "imagenet" else None
    files = [checkpoint] if checkpoint is not None else []
    with _seeded(name.seed), _offline(name, files):
        try:
            model = builder(weights=weights, **name.kwargs)
        except NeurocorrError:
            raise
        except Exception as exc:  # the builder's own refusal (a bad keyword, a shape it does not take)
            raise NeurocorrError(f"{name.text}: building the model failed: {type(exc).__name__}: "
                                 f"{_first_line(exc)}") from None
    if checkpoint is not None:
        try:
            model.load_weights(checkpoint)
        except Exception as exc:
            raise NeurocorrError(f"{name.text}: cannot load the weights in {checkpoint} into {name.model}: "
                                 f"{type(exc).__name__}: {_first_line(exc)}") from None
    return model, files


def fingerprint(name: Name, files: list[str]) -> str:
    """What decides the built model's outputs: the name, Keras' version, the weight files' bytes."""
    import keras

    digest = hashlib.sha256(json.dumps([name.text, keras.__version__]).encode())
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_path(fname: str, cache_subdir: str = "models", cache_dir: str | None = None) -> str:
    """Where Keras keeps a downloaded file: ``$KERAS_HOME`` (default ``~/.keras``)/models/fname."""
    from keras.src.backend import config

    return os.path.join(os.path.expanduser(cache_dir or config.keras_home()), cache_subdir, fname)


@contextlib.contextmanager
def _offline(name: Name, files: list[str]) -> Iterator[None]:
    """Keras' downloader answers from the local cache only (the files it gives are appended to
    ``files``); a missing file is one error line."""
    def local(fname: str | None = None, origin: str | None = None, *args: Any, cache_subdir: str = "datasets",
              cache_dir: str | None = None, **kwargs: Any) -> str:
        path = cache_path(fname or os.path.basename(str(origin)), cache_subdir, cache_dir)
        if not os.path.isfile(path):
            raise NeurocorrError(
                f"{name.text}: the weights are not in the local Keras cache; looked for {path}. neurocorr "
                f"never downloads: fetch {origin} on a machine with internet and put it there "
                "(or pass weights=PATH)")
        files.append(path)
        return path

    with _patched_get_file(local):
        yield


@contextlib.contextmanager
def _patched_get_file(replacement: Any) -> Iterator[None]:
    """Every module the applications fetch through (``file_utils.get_file``, ``keras.utils.get_file``)."""
    import keras
    from keras.src.utils import file_utils

    targets = [(file_utils, "get_file"), (keras.utils, "get_file")]
    saved = [(obj, getattr(obj, attr)) for obj, attr in targets]
    try:
        for obj, attr in targets:
            setattr(obj, attr, replacement)
        yield
    finally:
        for (obj, original), (_, attr) in zip(saved, targets, strict=True):
            setattr(obj, attr, original)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Keras' initialisers draw from Python's ``random`` (and numpy, TF): seed them for the build
    and give the Python and numpy generators their state back afterwards."""
    import keras
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    python_state, numpy_state = random.getstate(), np.random.get_state()
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    try:
        keras.utils.set_random_seed(seed)
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, generator)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _close(model: str, names: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(model, names, n=5, cutoff=0.4) or names[:5]
