"""The PyTorch activation provider: forward hooks for eager modules, graph outputs for TorchScript."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError
from neurocorr_core.interfaces import call_name, kind_of
from neurocorr_core.models import ModelName

from . import named
from .functional import SCRIPT_OPS, ModuleStack, capture_mode

SUFFIXES = (".pt", ".pth", ".ts")
#: A flat CPU batch for a dense model (every weight in a Linear, LayerNorm or BatchNorm1d, so
#: parameters x samples is its multiply-adds; conv nets and transformers reuse weights across
#: positions and keep torch's threads) of at most this many weight-rows runs on one torch
#: intra-op thread: on a loaded 2-core machine two OpenMP threads made two 784-512-256-128
#: MLPs' forwards on 10,000 inputs (batches of 256) 11x slower in wall time, 12x in CPU time
#: (docs/performance.md, issue 18).
SMALL_BATCH = 1 << 28
#: Batches now on one thread, and torch's threads to restore after the last: providers may run in
#: threads of one process (the threads executor), and torch's setting is the process's.
_ONE_THREAD = {"held": 0, "threads": 0}
_ONE_THREAD_LOCK = threading.Lock()


class TorchProvider(ActivationProvider):
    """Every submodule of a ``torch.nn.Module`` (leaves and containers such as ResNet's
    ``layer4``) is a layer, ordered by when its forward finishes. TorchScript files are
    loaded with ``torch.jit.load``; a pickled full model only with ``trust_pickle=True``.
    """

    name = "torch"
    channel_means = True
    handles = ("torch.nn.Module objects, TorchScript files (.pt/.pth/.ts), pickled full "
               "models with trust_pickle=True, models by name (torchvision:resnet18, timm:convnext_atto)")

    @classmethod
    def accepts(cls, model: object) -> bool:
        if isinstance(model, ModelName) or named.is_name(model):
            return named.is_name(str(model))
        if isinstance(model, (str, os.PathLike)):
            return Path(model).suffix in SUFFIXES
        if "torch" not in sys.modules:
            return False
        import torch

        return isinstance(model, torch.nn.Module)

    def __init__(self, model: object, *, trust_pickle: bool = False, device: str = "cpu",
                 **options: Any) -> None:
        super().__init__(model, **options)
        import torch

        self.device = check_device(device)
        by_name = isinstance(model, (str, ModelName)) and named.is_name(str(model))
        self._name = named.parse(str(model)) if by_name else None
        if self._name is not None:
            module = named.build(self._name)
        else:
            module = _load(model, trust_pickle) if isinstance(model, (str, os.PathLike)) else model
        assert isinstance(module, torch.nn.Module)
        self.module = module.to(self.device)
        self.label = str(model) if isinstance(model, (str, os.PathLike, ModelName)) else type(model).__name__
        self._script = _ScriptCapture(module) if isinstance(module, torch.jit.ScriptModule) else None
        self._copy = False  # becomes True once an in-place op is seen overwriting a captured output
        dense = (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.BatchNorm1d)
        weighted = [m for m in module.modules() if next(m.parameters(recurse=False), None) is not None]
        self._weights = sum(p.numel() for p in module.parameters()) if all(
            isinstance(m, dense) for m in weighted) else None  # None: not a dense model

    def fingerprint(self) -> str | None:
        """A model by name is built the same way every time (seeded): the name, the library
        version and the checkpoint decide it."""
        return None if self._name is None else named.fingerprint(self._name)

    def single_threaded(self, shape: tuple[int, ...]) -> bool:
        """A dense model's small flat CPU batches run on one torch thread (SMALL_BATCH)."""
        return self.device.type == "cpu" and self._weights is not None and len(shape) == 2 \
            and shape[0] * self._weights <= SMALL_BATCH

    def layers(self, sample: np.ndarray) -> list[LayerInfo]:
        outputs, ops = self._run(sample, None)
        return [LayerInfo(name, tuple(out.shape[1:]), depth, kind_of(ops[name]), ops[name])
                for depth, (name, out) in enumerate(outputs.items())]

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str], *,
                    channel_means: bool = False) -> Iterator[dict[str, np.ndarray]]:
        for batch in batches:
            outputs, _ = self._run(batch, set(layers), channel_means)
            missing = set(layers) - set(outputs)
            if missing:
                raise NeurocorrError(f"layers {sorted(missing)} of {self.label} produced no tensor "
                                     "output on this batch; choose layers listed by 'neurocorr layers'")
            yield outputs

    def _run(self, batch: np.ndarray, wanted: set[str] | None,
             channel_means: bool = False) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        training = self.module.training
        small = self.single_threaded(batch.shape)
        self.module.eval()
        try:
            with torch.no_grad(), _one_thread(small):
                if self._script is not None:
                    return self._script.run(x, wanted, channel_means), self._script.ops
                outputs, ops, overwritten = _run_hooked(self.module, x, wanted, channel_means, self._copy)
                if overwritten:  # e.g. ReLU(inplace=True) after a captured conv: capture copies from now on
                    self._copy = True
                    outputs, ops, _ = _run_hooked(self.module, x, wanted, channel_means, copy=True)
                return outputs, ops
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            dtypes = _other_float_dtypes(self.module)
            if dtypes:  # the probe is float32: a half or double model fails on its dtype, not its shape
                raise NeurocorrError(
                    f"{self.label} has {', '.join(dtypes)} weights but neurocorr feeds float32 probes "
                    f"({first}); convert the model with model.float() before comparing it") from None
            raise NeurocorrError(
                f"{self.label} rejected a probe batch of shape {tuple(batch.shape)}: "
                f"{first}. {_expected_input(self.module)}") from None
        finally:
            self.module.train(training)


@contextmanager
def _one_thread(on: bool) -> Iterator[None]:
    """Torch on one intra-op thread while any batch in this process asks for it (SMALL_BATCH);
    the first to ask saves torch's setting and the last to finish restores it."""
    import torch

    if not on:
        yield
        return
    with _ONE_THREAD_LOCK:
        if not _ONE_THREAD["held"]:
            _ONE_THREAD["threads"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _ONE_THREAD["held"] += 1
    try:
        yield
    finally:
        with _ONE_THREAD_LOCK:
            _ONE_THREAD["held"] -= 1
            if not _ONE_THREAD["held"]:
                torch.set_num_threads(_ONE_THREAD["threads"])


def check_device(device: str) -> Any:
    """``device`` as a ``torch.device`` this machine has: a clear error for ``cuda`` without a GPU."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise NeurocorrError(f"device {device!r} is not a torch device; use cpu, cuda, cuda:1 or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = f"this PyTorch ({torch.__version__}) " + ("is a CPU-only build" if torch.version.cuda is None
                                                               else "finds no CUDA device")
            raise NeurocorrError(f"device {device!r} asked for, but {build}; use device=cpu, or run "
                                 "where a GPU and a CUDA build of torch are")
        if dev.index is not None and dev.index >= count:
            raise NeurocorrError(f"device {device!r} asked for, but this machine has {count} CUDA "
                                 f"device(s): cuda:0..cuda:{count - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise NeurocorrError(f"device {device!r} asked for, but MPS (Apple GPUs) is not available here; "
                             "use device=cpu")
    return dev


def _to_numpy(out: Any, channel_means: bool) -> np.ndarray:
    """A captured output as float32 numpy; with ``channel_means``, an output with spatial
    axes is reduced to its per-channel mean (batch, C) here, so the whole map is not kept."""
    out = out.detach().float()
    if channel_means and out.ndim > 2:
        out = out.mean(dim=tuple(range(2, out.ndim)))
    return out.cpu().numpy()


def _run_hooked(module: Any, x: Any, wanted: set[str] | None, channel_means: bool = False,
                copy: bool = False) -> tuple[dict[str, np.ndarray], dict[str, str], bool]:
    """One forward pass, recording every call's tensor output in finishing order (a module
    called k times, like EfficientNet's shared activations, gives k layers), and the outputs of
    activation functions called in ``forward`` (:mod:`.functional`: ``block1.relu()``).

    Outputs are shared with torch, not copied, unless ``copy``; the last value says whether an
    in-place op changed one of them after its hook (torch's version counter), so that the
    caller runs again with ``copy``."""
    import torch

    outputs: dict[str, np.ndarray] = {}
    ops: dict[str, str] = {}
    versions: list[tuple[Any, int]] = []
    bases = None if wanted is None else {w.partition("#")[0] for w in wanted}
    shared = not (copy or channel_means)  # a channel mean is a new tensor, taken in the hook

    def keep(key: str, op: str, out: Any) -> None:
        if isinstance(out, torch.Tensor) and (wanted is None or key in wanted):
            outputs[key] = _to_numpy(out.clone() if copy else out, channel_means)
            ops[key] = op
            if shared:  # only a shared output can be overwritten; holding the others kept every map alive
                versions.append((out, out._version))

    def recorder(name: str) -> Callable[..., None]:
        calls = 0

        def hook(mod: Any, args: Any, out: Any) -> None:
            nonlocal calls
            key = call_name(name, calls)
            calls += 1
            keep(key, type(mod).__name__, out)
        return hook

    handles = [sub.register_forward_hook(recorder(name))
               for name, sub in module.named_modules()
               if name and (bases is None or name in bases)]
    functions = bases is None or any(b.endswith("()") for b in bases)
    stack = ModuleStack()
    if functions:  # only when a functional layer may be asked for: the mode sees every torch call
        handles += stack.hooks(module)
    try:
        if functions:
            with capture_mode(stack, keep):
                module(x)
        else:
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, ops, any(out._version != seen for out, seen in versions)


class _ScriptCapture:
    """TorchScript ignores Python hooks, so expose the submodules' outputs as graph outputs.

    In the inlined graph every node knows the module hierarchy it came from; a module's
    output is the last tensor its nodes produce. A module's nodes are contiguous per call, so
    a run of them broken by other nodes starts its next call (``act#1``, as for eager models).
    """

    def __init__(self, module: Any) -> None:
        import torch

        self.module = module
        graph = module.inlined_graph
        # F.relu scripts to "if inplace: relu_ else: relu": folding the constant branch leaves
        # its aten::relu in the top-level graph, where it becomes a layer (a copy: the module keeps its own)
        torch._C._jit_pass_constant_propagation(graph)
        self.values: dict[str, Any] = {}
        self.ops: dict[str, str] = {}
        calls: dict[str, int] = {}
        previous: set[str] = set()
        for node in graph.nodes():
            if node.outputsSize() != 1 or not isinstance(node.output().type(), torch._C.TensorType):
                continue
            hierarchy = _hierarchy(node.getModuleHierarchy())
            names = [".".join(name for name, _ in hierarchy[:i + 1]) for i in range(len(hierarchy))]
            for module_name in names:
                if module_name not in previous:  # a new call of this module begins
                    calls[module_name] = calls.get(module_name, -1) + 1
            produced = [(call_name(n, calls[n]), op) for n, (_, op) in zip(names, hierarchy, strict=True)]
            function = _function_layer(node.kind(), names[-1] if names else "", hierarchy, calls)
            # innermost first, so that a module comes after its last child (execution order)
            for key, op in ([function] if function else []) + produced[::-1]:
                self.values.pop(key, None)  # re-insert so order follows the last producer
                self.values[key] = node.output()
                self.ops[key] = op
            previous = set(names)
        self.names = list(self.values)
        self._function = _with_outputs(graph, [_before_in_place(graph, self.values[name]) for name in self.names])

    def run(self, x: Any, wanted: set[str] | None, channel_means: bool = False) -> dict[str, np.ndarray]:
        outs = self._function(self.module._c, x)
        return {name: _to_numpy(out, channel_means) for name, out in zip(self.names, outs, strict=True)
                if wanted is None or name in wanted}


def _function_layer(kind: str, where: str, hierarchy: list[tuple[str, str]],
                    calls: dict[str, int]) -> tuple[str, str] | None:
    """The layer of a TorchScript node that calls an activation function (``aten::relu``) in a
    module's ``forward``, named as in eager mode (``block.relu()``); None for other nodes and for
    the activation modules' own calls (``nn.ReLU``)."""
    op = kind.partition("::")[2].rstrip("_")
    if not kind.startswith("aten::") or op not in SCRIPT_OPS:
        return None
    if hierarchy and kind_of(hierarchy[-1][1]) == "activation":
        return None
    base = f"{where}.{op}()" if where else f"{op}()"
    calls[base] = calls.get(base, -1) + 1
    return call_name(base, calls[base]), op


def _before_in_place(graph: Any, value: Any) -> Any:
    """``value``, or a copy of it taken where it is made when an in-place op (``aten::relu_``)
    later overwrites it: the graph returns its outputs only after the whole forward pass."""
    if not any(use.user.kind().endswith("_") for use in value.uses()):
        return value
    import torch

    none = graph.create("prim::Constant")  # clone's memory_format argument
    none.output().setType(torch._C.NoneType.get())
    clone = graph.create("aten::clone", [value, none.output()])
    clone.output().setType(value.type())
    clone.insertAfter(value.node())
    none.insertBefore(clone)
    return clone.output()


def _with_outputs(graph: Any, values: list[Any]) -> Any:
    """A function of (module, input) made from ``graph`` that returns ``values`` as a tuple."""
    import torch

    for _ in range(len(list(graph.outputs()))):
        graph.eraseOutput(0)
    tup = graph.create("prim::TupleConstruct", values)
    graph.appendNode(tup)
    tup.output().setType(torch._C.TupleType([v.type() for v in values]))
    graph.registerOutput(tup.output())
    return torch._C._create_function_from_graph("neurocorr_capture", graph)


_SEGMENT = re.compile(r"([^.()]+)\(([^()]*)\)")


def _hierarchy(text: str) -> list[tuple[str, str]]:
    """``body(Sequential).0(Conv2d).SELF(Conv2d)`` -> [('body', 'Sequential'), ('0', 'Conv2d')]."""
    return [(name, op) for name, op in _SEGMENT.findall(text)
            if name not in ("SELF", "UNKNOWN_INSTANCE")]


def _load(path: str | os.PathLike[str], trust_pickle: bool) -> Any:
    import pickle

    import torch

    path = os.fspath(path)
    try:
        return torch.jit.load(path, map_location="cpu")
    except (RuntimeError, ValueError):
        pass
    if trust_pickle:
        obj = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(obj, torch.nn.Module):
            raise NeurocorrError(f"{path} unpickles to {type(obj).__name__}, not a torch.nn.Module")
        return obj
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise NeurocorrError(
            f"{path} is not TorchScript; it looks like a pickled model, and unpickling can run "
            "arbitrary code. If you trust the file, pass trust_pickle=True (CLI: --trust-pickle); "
            "better, save it with torch.jit.script(model).save(path)") from None
    except Exception as exc:
        raise NeurocorrError(f"{path} is not a PyTorch model file ({type(exc).__name__}: {exc}); "
                             "save models with torch.jit.script(model).save(path)") from None
    raise NeurocorrError(
        f"{path} holds {type(obj).__name__} (weights only, e.g. a state_dict), not a model; build "
        "the model in code and load the weights there, then pass 'module:function' instead")


def _other_float_dtypes(module: Any) -> list[str]:
    """The floating dtypes of the module's weights other than float32 (e.g. ``torch.float16``)."""
    import torch

    found = {str(t.dtype) for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()}
    return sorted(found - {str(torch.float32)})


def _expected_input(module: Any) -> str:
    """A hint from the first parametrised layer: what input shape the model wants."""
    import torch

    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear):
            return (f"The model starts with Linear({sub.in_features}, ...): it expects (N, {sub.in_features}) "
                    "inputs; flatten or reshape the probe.")
        if isinstance(sub, torch.nn.Conv2d):
            return (f"The model starts with Conv2d({sub.in_channels}, ...): it expects "
                    f"(N, {sub.in_channels}, H, W) images.")
        if isinstance(sub, torch.nn.Conv1d):
            return f"The model starts with Conv1d({sub.in_channels}, ...): it expects (N, {sub.in_channels}, L)."
    return "Check the input shape the model expects against the probe's (N, ...) shape."
