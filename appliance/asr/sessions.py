"""ONNX Runtime sessions of the offline engines (Whisper, Moonshine): how a graph is found in a
model directory and the CPU session options every such engine runs with."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def find_graph(model_dir: Path, stem: str, fix: str) -> Path:
    """``stem``.int8.onnx, else ``stem``.onnx; FileNotFoundError saying ``fix`` when neither is there."""
    for name in (f"{stem}.int8.onnx", f"{stem}.onnx"):
        if (model_dir / name).is_file():
            return model_dir / name
    raise FileNotFoundError(f"{model_dir}: no {stem}.int8.onnx or {stem}.onnx ({fix})")


def cpu_session(path: Path, threads: int) -> ort.InferenceSession:
    """``threads`` for the graph's own operators, one graph at a time (the caller's thread runs it
    when ``threads`` is 1, so the refined pass's nice level applies), every optimisation on."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
