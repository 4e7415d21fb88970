"""Turn Moonshine's shipped ONNX Runtime (.ort) files into the graphs the device runs.

The moonshine-cpp wheel ships the encoder and the merged decoder (one graph, an ``If`` on
``use_cache_branch``) in ORT format with every weight stored as int8 and dequantised *inside*
the graph (Cast → Mul → Add). ONNX Runtime then recomputes all 81 decoder weights at every
token: measured here (10 s of speech, 1 thread) the decoder took 100 ms a token, 5–6× what the
same network costs with its weights ready.

So at install: ONNX Runtime reads the .ort file and writes it back as ONNX (no optimisation,
so nothing hardware-specific is baked in), the dequantisation chains on constants are computed
once with numpy, and the result is quantised again the usual way (int8 weights, dynamic int8
activations, ``MatMulInteger``), including the matrices inside the ``If`` branches. Measured on
the same 10 s: decoder 1.46 → 0.16 s, encoder 0.21 → 0.10 s, same text.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from appliance.asr.quantize import quantize_int8

CONVERT_VERSION = "2"  # bump when the written files change, so installs are rebuilt
GRAPHS = ("encoder_model", "decoder_model_merged")
_FOLDABLE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Mul": np.multiply, "Add": np.add, "Sub": np.subtract,
}


def ort_to_onnx(ort_file: Path, onnx_file: Path) -> onnx.ModelProto:
    """The .ort model as an ONNX model, written by ONNX Runtime itself with no graph rewriting."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.optimized_model_filepath = str(onnx_file)
    ort.InferenceSession(str(ort_file), so, providers=["CPUExecutionProvider"])
    model = onnx.load(str(onnx_file))
    model.graph.name = model.graph.name or ort_file.stem
    for node in model.graph.node:  # ONNX Runtime leaves subgraphs unnamed; the checker wants names
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH and not attr.g.name:
                attr.g.name = f"{node.name or node.op_type}_{attr.name}"
    return model


def _graph_inputs(graph: onnx.GraphProto) -> set[str]:
    """Every value a node of ``graph`` or of its subgraphs reads."""
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                used |= _graph_inputs(attr.g)
    return used


def fold_dequantization(model: onnx.ModelProto) -> int:
    """Compute once every Cast/Mul/Add/Sub of the top graph whose inputs are all constants (the
    shipped weights' dequantisation); returns how many nodes were folded."""
    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        if node.op_type in ("Cast", *_FOLDABLE) and node.input and all(i in values for i in node.input):
            if node.op_type == "Cast":
                to = next(a.i for a in node.attribute if a.name == "to")
                result = values[node.input[0]].astype(onnx.helper.tensor_dtype_to_np_dtype(to))
            else:
                result = _FOLDABLE[node.op_type](values[node.input[0]], values[node.input[1]])
            values[node.output[0]] = np.asarray(result)
            folded += 1
        else:
            kept.append(node)
    for node in kept:  # each branch of the If transposes the embedding for the output projection
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                folded += _fold_transposes(attr.g, values)
    del graph.node[:]
    graph.node.extend(kept)
    needed = _graph_inputs(graph) | {o.name for o in graph.output}
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items() if k in needed)
    return folded


def _fold_transposes(branch: onnx.GraphProto, values: dict[str, np.ndarray]) -> int:
    """Replace a branch's Transpose of an outer constant by the transposed constant, computed once in
    the outer graph: left in the branch, ONNX Runtime folds it in each branch, holding two more fp32
    copies of the 54 MB embedding (measured: the decoder took 301 MB of RAM, 83 MB on disk)."""
    kept, folded = [], 0
    for node in branch.node:
        if node.op_type == "Transpose" and node.input[0] in values:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            values[node.output[0]] = np.ascontiguousarray(np.transpose(values[node.input[0]], perm))
            folded += 1
        else:
            kept.append(node)
    del branch.node[:]
    branch.node.extend(kept)
    return folded


def convert_moonshine(src_dir: Path, out_dir: Path, progress: Callable[[str], None] = lambda _m: None) -> list[Path]:
    """``src_dir``'s encoder_model.ort + decoder_model_merged.ort → ``out_dir``'s *.int8.onnx."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="moonshine-convert-") as tmp:
        for stem in GRAPHS:
            source = src_dir / f"{stem}.ort"
            if not source.is_file():
                raise FileNotFoundError(f"{source}: missing (the Moonshine wheel's {stem}.ort)")
            model = ort_to_onnx(source, Path(tmp) / f"{stem}.raw.onnx")
            folded = fold_dequantization(model)
            onnx.checker.check_model(model)
            target = out_dir / f"{stem}.int8.onnx"
            quantize_int8(model, target, subgraphs=True)
            progress(f"{stem}: {folded} dequantisation nodes computed once, re-quantised "
                     f"({target.stat().st_size / 1e6:.1f} MB)")
            written.append(target)
    return written
