"""A small ONNX graph builder and the transformer pieces Whisper is made of (onnx.helper only)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # what sherpa-onnx's bundled ONNX Runtime loads; LayerNormalization is native from 17
MS_DOMAIN = "com.microsoft"
FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64


class GraphBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.value_info: list[onnx.ValueInfoProto] = []  # types ONNX shape inference cannot derive
        self._names: set[str] = set()
        self._consts: dict[tuple, str] = {}
        self.uses_ms_domain = False

    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._names:
            i += 1
            name = f"{hint}_{i}"
        self._names.add(name)
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, *values: int) -> str:
        """A small int64 constant, shared between nodes."""
        key = ("i64", values)
        if key not in self._consts:
            self._consts[key] = self.weight("c_" + "_".join(str(v).replace("-", "m") for v in values) or "c_empty",
                                            np.array(values, dtype=np.int64))
        return self._consts[key]

    def index(self, value: int) -> str:
        """A 0-d int64 constant."""
        key = ("i64 scalar", value)
        if key not in self._consts:
            self._consts[key] = self.weight(f"c_s{value}".replace("-", "m"), np.array(value, dtype=np.int64))
        return self._consts[key]

    def scalar(self, value: float) -> str:
        key = ("f32", value)
        if key not in self._consts:
            self._consts[key] = self.weight(f"c_f{len(self._consts)}", np.array(value, dtype=np.float32))
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, outputs: list[str] | None = None, name: str | None = None,
           domain: str | None = None, **attrs) -> str:
        """A node with one output (named ``outputs[0]`` when given); the output's name."""
        (out,) = self.op_multi(op_type, *inputs, outputs=outputs or 1, name=name, domain=domain, **attrs)
        return out

    def op_multi(self, op_type: str, *inputs: str, outputs: int | list[str], name: str | None = None,
                 domain: str | None = None, **attrs) -> list[str]:
        """A node with several outputs (``outputs`` new ones, or these names); their names."""
        node_name = self.fresh(name or op_type.lower())
        outs = outputs if isinstance(outputs, list) else [self.fresh(f"{node_name}_out{i}") for i in range(outputs)]
        if isinstance(outputs, list):
            self._names.update(outs)
        if domain == MS_DOMAIN:
            self.uses_ms_domain = True
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name, domain=domain, **attrs))
        return outs

    def add_input(self, name: str, elem_type: int, shape: list[int | str]) -> str:
        self._names.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, name: str, value: str, elem_type: int, shape: list[int | str]) -> None:
        if value != name:
            self.op("Identity", value, outputs=[name])
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def model(self, metadata: dict[str, object] | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers,
                                  value_info=self.value_info)
        opsets = [helper.make_opsetid("", OPSET)]
        if self.uses_ms_domain:
            opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="exam-scribe")
        model.ir_version = 8
        for key, value in (metadata or {}).items():
            helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, key: str(value)})
        return model

    # -- layers --------------------------------------------------------------------------------
    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, name: str) -> str:
        return self.op("LayerNormalization", x, self.weight(name + ".gamma", gamma), self.weight(name + ".beta", beta),
                       name=name, axis=-1, epsilon=1e-5)

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        """x @ weight.T + bias; MatMul with a constant B so dynamic quantization picks it up."""
        y = self.op("MatMul", x, self.weight(name + ".weight", weight.T), name=name)
        if bias is None or not np.any(bias):
            return y
        return self.op("Add", y, self.weight(name + ".bias", bias), name=name + "_bias")

    def gelu(self, x: str) -> str:
        """Exact (erf) GELU, written so ONNX Runtime's optimiser fuses it."""
        e = self.op("Erf", self.op("Div", x, self.scalar(float(np.sqrt(2.0)))))
        return self.op("Mul", self.op("Mul", x, self.op("Add", e, self.scalar(1.0))), self.scalar(0.5))

    def split_heads(self, x: str, heads: int, head_dim: int, transpose_k: bool = False) -> str:
        """(1, S, D) → (1, H, S, Dh), or (1, H, Dh, S) for keys."""
        r = self.op("Reshape", x, self.ints(0, -1, heads, head_dim))
        return self.op("Transpose", r, perm=[0, 2, 3, 1] if transpose_k else [0, 2, 1, 3])

    def attend(self, q_heads: str, k_t: str, v_heads: str, mask: str | None, d_model: int) -> str:
        """Scaled dot-product attention (the 1/sqrt(Dh) scale is folded into the query weights)."""
        scores = self.op("MatMul", q_heads, k_t)
        if mask is not None:
            scores = self.op("Add", scores, mask)
        probs = self.op("Softmax", scores, axis=-1)
        out = self.op("Transpose", self.op("MatMul", probs, v_heads), perm=[0, 2, 1, 3])
        return self.op("Reshape", out, self.ints(0, -1, d_model))


    def mha(self, q: str, k: str, v: str, heads: int, bias: str | None = None) -> str:
        """ONNX Runtime's fused MultiHeadAttention: q (1, S, D); k/v (1, L, D) or (1, H, L, Dh).

        One kernel instead of reshapes, transposes, two MatMuls and a Softmax; the scale is
        already in the query weights, hence scale=1.
        """
        inputs = [q, k, v] + (["", "", bias] if bias is not None else [])
        out = self.op("MultiHeadAttention", *inputs, domain=MS_DOMAIN, num_heads=heads, scale=1.0)
        self.value_info.append(helper.make_tensor_value_info(out, FLOAT, None))
        return out


def quantize_rows(weight: np.ndarray, qmax: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-row int8 quantization: weight ≈ q * scale[:, None]."""
    scale = np.abs(weight).max(axis=1) / qmax
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / scale[:, None]), -qmax, qmax).astype(np.int8)
    return q, scale


class TiedEmbedding:
    """The token embedding, stored once as int8 and used both for lookup and for the logits.

    Whisper ties its output projection to the embedding. Stored (D, V) int8 with a per-token
    scale, it serves the Gather (a column per token) and the int8 MatMul to logits, a quarter
    of the float32 size (this matrix is most of the decoder).
    """

    def __init__(self, g: GraphBuilder, weight: np.ndarray, quantized: bool, qmax: int = 127) -> None:
        self.g = g
        self.quantized = quantized
        if quantized:
            q, scale = quantize_rows(weight, qmax)
            self.table = g.weight("token_embedding.qweight_t", q.T)
            self.scale = g.weight("token_embedding.scale", scale)
        else:
            self.table = g.weight("token_embedding.weight_t", weight.T.astype(np.float32))

    def lookup(self, tokens: str) -> str:
        """tokens (1, L) → (1, L, D)."""
        g = self.g
        cols = g.op("Gather", self.table, tokens, axis=1)  # (D, 1, L)
        if self.quantized:
            cols = g.op("Mul", g.op("Cast", cols, to=FLOAT), g.op("Gather", self.scale, tokens, axis=0))
        return g.op("Transpose", cols, perm=[1, 2, 0])

    def logits(self, x: str) -> str:
        """x (..., D) → (..., V)."""
        g = self.g
        if not self.quantized:
            return g.op("MatMul", x, self.table, name="logits_matmul")
        xq, xs, xz = g.op_multi("DynamicQuantizeLinear", x, outputs=3)
        acc = g.op("MatMulInteger", xq, self.table, xz, name="logits_matmul")
        return g.op("Mul", g.op("Cast", acc, to=FLOAT), g.op("Mul", xs, self.scale))
