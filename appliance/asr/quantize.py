"""int8 quantisation of an ONNX model at install (weights int8, activations quantised on the fly),
shared by the Whisper exporter and the Moonshine converter."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx


class _DropHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(model: onnx.ModelProto, out: Path, *, per_channel: bool = False, subgraphs: bool = False) -> None:
    """Write ``model`` to ``out`` with its constant-weight MatMuls in int8 (``subgraphs``: also
    those inside If/Loop bodies, which read weights of the outer graph)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(model, src)
        # The quantizer logs a "run pre-processing" hint meant for exported torch graphs; ours are lean.
        hint = _DropHint()
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(src, out, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                             per_channel=per_channel,
                             extra_options={"MatMulConstBOnly": True, "EnableSubgraph": subgraphs})
        finally:
            logging.getLogger().removeFilter(hint)
