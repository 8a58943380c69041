"""Models by name: ``torchvision:resnet18``, ``timm:convnext_atto?weights=/path/ckpt.pth``.

Syntax (docs/models-by-name.md): ``LIBRARY:MODEL`` then optional ``?KEY=VALUE&KEY=VALUE``.
``weights``: absent = random weights (seeded by ``seed``, default 0, so a name always builds
the same model); a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``) or, for timm,
``DEFAULT`` = the library's pretrained weights, read only from the local cache; a path = a local
state_dict file. Every other key is a keyword of the library's builder (``num_classes=10``).
Nothing is ever downloaded: a download the library would start is refused with the path it
would have filled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from neurocorr_core import NeurocorrError

LIBRARIES = ("torchvision", "timm")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".tar")


@dataclass(frozen=True)
class Name:
    """A parsed model name: library, model, weights (None: random), seed, builder keywords."""

    text: str
    library: str
    model: str
    weights: str | None = None
    seed: int = 0
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint(self) -> str | None:
        """The local file ``weights`` names, if it names a file rather than a library's weights."""
        w = self.weights
        if w is None or not (os.sep in w or "/" in w or w.startswith(("~", ".")) or w.endswith(_CHECKPOINT_SUFFIXES)):
            return None
        return os.path.expanduser(w)


def is_name(text: object) -> bool:
    return isinstance(text, str) and text.partition(":")[0] in LIBRARIES and ":" in text


def parse(text: str) -> Name:
    library, _, rest = text.partition(":")
    model, _, query = rest.partition("?")
    if library not in LIBRARIES or not model:
        raise NeurocorrError(f"{text!r} is not a model name; write LIBRARY:MODEL[?KEY=VALUE&...] with "
                             f"LIBRARY one of {', '.join(LIBRARIES)}, e.g. torchvision:resnet18")
    values: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise NeurocorrError(f"{text!r}: {item!r} is not KEY=VALUE; write e.g. "
                                 f"{library}:{model}?weights=DEFAULT&num_classes=10")
        values[key] = value if key == "weights" else _value(value)
    seed = values.pop("seed", 0)
    if not isinstance(seed, int):
        raise NeurocorrError(f"{text!r}: seed must be an integer, got {seed!r}")
    weights = values.pop("weights", None)
    return Name(text, library, model, None if weights in (None, "", "none", "None") else str(weights), seed, values)


def _value(text: str) -> Any:
    """A builder keyword's value: JSON when it parses (10, 0.5, true), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build(name: Name) -> Any:
    """The ``torch.nn.Module`` a name stands for (random weights under ``torch.manual_seed(seed)``)."""
    import torch

    with torch.random.fork_rng(devices=[]), _offline(name):
        torch.manual_seed(name.seed)
        module = _torchvision(name) if name.library == "torchvision" else _timm(name)
    if name.checkpoint is not None:
        _load_checkpoint(module, name)
    return module


def fingerprint(name: Name) -> str:
    """What decides the built model's outputs: the name, the library's version, the checkpoint's bytes."""
    import importlib.metadata

    digest = hashlib.sha256(json.dumps([name.text, importlib.metadata.version(name.library)]).encode())
    if name.checkpoint is not None and os.path.isfile(name.checkpoint):
        with open(name.checkpoint, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def import_torchvision() -> types.ModuleType:
    """``torchvision``, also where its compiled ops do not load (a CUDA wheel of torchvision beside a
    CPU build of torch fails at import with "operator torchvision::nms does not exist"): its model
    builders are plain Python and need none of those ops, so the op registrations are skipped."""
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for loaded in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[loaded]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision


def _torchvision(name: Name) -> Any:
    tv = _library(name, import_torchvision)
    if name.model not in tv.models.list_models():
        raise NeurocorrError(f"torchvision has no model {name.model!r}; its models include "
                             f"{', '.join(_close(name.model, tv.models.list_models()))}")
    weights = None
    if name.weights is not None and name.checkpoint is None:
        enum = tv.models.get_model_weights(name.model)
        try:
            weights = enum[name.weights]
        except KeyError:
            raise NeurocorrError(f"{name.text}: torchvision has no weights {name.weights!r} for {name.model}; "
                                 f"choose one of DEFAULT, {', '.join(e.name for e in enum)}, or a local file path"
                                 ) from None
        _check_cached(name, weights.url)
    return _call(name, lambda: tv.models.get_model(name.model, weights=weights, **name.kwargs))


def _check_cached(name: Name, url: str) -> None:
    """Refuse before torch.hub would start a download (and print that it does)."""
    import urllib.parse

    import torch.hub

    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urllib.parse.urlparse(url).path))
    if not os.path.isfile(path):
        _refuse(name, url, path)


def _refuse(name: Name, url: str, path: str) -> None:
    raise NeurocorrError(
        f"{name.text}: the weights are not in the local cache; looked for {path}. neurocorr never "
        f"downloads: fetch {url} on a machine with internet and put it there (or pass weights=PATH)")


def _timm(name: Name) -> Any:
    def load() -> types.ModuleType:
        import_torchvision()  # timm imports torchvision
        import timm
        return timm

    timm = _library(name, load)
    if not timm.is_model(name.model):
        raise NeurocorrError(f"timm has no model {name.model!r}; close names: "
                             f"{', '.join(_close(name.model, timm.list_models()))}")
    pretrained = name.weights is not None and name.checkpoint is None
    if pretrained and name.weights != "DEFAULT":
        raise NeurocorrError(f"{name.text}: for timm, weights is DEFAULT (its pretrained weights, from the local "
                             "Hugging Face cache) or a local file path")
    return _call(name, lambda: timm.create_model(name.model, pretrained=pretrained, **name.kwargs))


def _library(name: Name, load: Any) -> types.ModuleType:
    try:
        module: types.ModuleType = load()
    except ImportError as exc:
        raise NeurocorrError(f"{name.text} needs {name.library} ({exc}); install it: "
                             f"pip install 'neurocorr-torch[{name.library}]'") from None
    return module


def _call(name: Name, builder: Any) -> Any:
    try:
        return builder()
    except NeurocorrError:
        raise
    except Exception as exc:  # the library's own failure (a bad keyword, weights missing offline)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if name.library == "timm" and name.weights is not None:
            hint = f"; neurocorr never downloads: timm reads pretrained weights from {_hf_place(name.model)}"
        if hint:
            first = first.split(". ")[0]
        raise NeurocorrError(f"{name.text}: building the model failed: {type(exc).__name__}: {first}{hint}") from None


@contextlib.contextmanager
def _offline(name: Name) -> Iterator[None]:
    """No download while the model is built: Hugging Face offline, torch.hub downloads refused."""
    import torch.hub

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        _refuse(name, url, dst)

    patched = [(torch.hub, "download_url_to_file")]
    if "timm.models._hub" in sys.modules:
        patched.append((sys.modules["timm.models._hub"], "download_url_to_file"))
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in patched if hasattr(obj, attr)]
    env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in env})
    constants: Any = sys.modules.get("huggingface_hub.constants")
    hf_before = getattr(constants, "HF_HUB_OFFLINE", None)
    try:
        for obj, attr, _ in saved:
            setattr(obj, attr, refuse)
        if constants is not None:
            constants.HF_HUB_OFFLINE = True
        yield
    finally:
        for obj, attr, original in saved:
            setattr(obj, attr, original)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if constants is not None:
            constants.HF_HUB_OFFLINE = hf_before


def _hf_place(model: str) -> str:
    """Where the local Hugging Face cache keeps a timm model's pretrained weights."""
    try:
        from huggingface_hub import constants
        cache = str(constants.HF_HUB_CACHE)
    except ImportError:
        cache = os.path.expanduser("~/.cache/huggingface/hub")
    import timm.models

    repo = getattr(timm.models.get_pretrained_cfg(model), "hf_hub_id", None)
    return os.path.join(cache, "models--" + repo.replace("/", "--")) if repo else cache


def _load_checkpoint(module: Any, name: Name) -> None:
    import torch

    path = name.checkpoint
    assert path is not None
    if not os.path.isfile(path):
        raise NeurocorrError(f"{name.text}: no checkpoint file at {os.path.abspath(path)}; give the path of a "
                             "state_dict saved with torch.save(model.state_dict(), PATH)")
    try:
        state: Any
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):  # training checkpoints often nest the weights
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        module.load_state_dict(state)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NeurocorrError(f"{name.text}: cannot load the weights in {path} into {name.model}: "
                             f"{type(exc).__name__}: {first}") from None


def _close(model: str, names: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(model, names, n=5, cutoff=0.4) or names[:5]
