"""int8 recipes for the fused BERT graph: which projections to quantize and how to tame their inputs.

The fused graph (ONNX Runtime's transformer optimizer) holds four kinds of weight products per
encoder layer: the fused Q/K/V projection inside `Attention`, the attention output projection, the
FFN input projection and the FFN output projection (plus the pooler and the classifier, which stay
fp32: they run once per text). Dynamic int8 (ONNX Runtime's quantize_dynamic) quantizes each
product's activation with one scale per tensor, so a few outlier channels - BERT's LayerNorm outputs
and GELU outputs have them - make that scale coarse for every other channel. Remedies:

- SmoothQuant (Xiao et al., 2022): divide each input channel k of X by s_k and multiply row k of the
  weight by s_k, with s_k = max|X_k|^a / max|W_k|^(1-a) from calibration texts. X @ W is unchanged
  in exact arithmetic, but the activation's range is flattened, so its int8 grid is finer. The
  division is a Mul node on the product's own input branch (the residual keeps the raw tensor).
- keeping the products that move the answers most in fp32, measured one product at a time on the
  calibration texts (per-layer sensitivity).

- per-token int8 (`quantize_per_token`): each token's activation row gets its own uint8 range, so the
  [CLS] token's large FFN activations no longer coarsen everyone else's grid; and since no scale spans
  two tokens, a text's answer no longer depends on what it is padded or batched with.

Everything here is deterministic for the same graph and calibration texts: the archive's bytes do
not depend on the machine that builds it (only the verification figures do).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

QUANTIZED_OPS = ("MatMul", "Attention")
# The handler truncates a text at this many tokens (model_code/inference.py's MAX_TOKENS, a copy since the
# handler's module is not imported here; a test keeps them equal): the agreement checks, the int8 study and
# the benchmarks tokenize as it serves.
MAX_TOKENS = 512
# What each projection of a fused encoder layer is called in a recipe, from its node's name.
ROLES = ("qkv", "attention-out", "ffn-in", "ffn-out")


@dataclass(frozen=True)
class Recipe:
    """One way to quantize: which projections get ONNX Runtime's dynamic int8 (one activation scale per
    tensor), which get per-token int8 (`quantize_per_token`), SmoothQuant's strength for the dynamic ones
    (None: off), and how many of the most sensitive dynamic products to keep in fp32 (measured on the
    calibration texts). Everything else stays fp32."""

    name: str
    dynamic: tuple[str, ...] = ROLES
    per_token: tuple[str, ...] = ()
    smooth_alpha: float | None = None
    keep_fp32: int = 0

    @property
    def batch_independent(self) -> bool:
        """A text's answer cannot depend on what it is padded and batched with: no activation scale spans
        more than one token. Then the handler may pad texts into micro-batches."""
        return not self.dynamic

    def describe(self) -> str:
        parts = []
        if self.per_token:
            parts.append(f"per-token int8 {'+'.join(self.per_token)}")
        if self.dynamic:
            parts.append(f"dynamic int8 {'+'.join(self.dynamic)}")
        fp32 = [r for r in ROLES if r not in self.per_token + self.dynamic]
        if fp32:
            parts.append(f"fp32 {'+'.join(fp32)}")
        if self.smooth_alpha is not None:
            parts.append(f"SmoothQuant a={self.smooth_alpha:g}")
        if self.keep_fp32:
            parts.append(f"{self.keep_fp32} most sensitive kept fp32")
        return ", ".join(parts)


def role(node: Any) -> str | None:
    """The projection a node computes, or None for products that stay fp32 (pooler, classifier)."""
    if node.op_type == "Attention":
        return "qkv"
    if node.op_type != "MatMul":
        return None
    name = node.name
    if "attention/output/dense" in name or "attention.output.dense" in name or "attention/out_lin" in name:
        return "attention-out"
    if "intermediate/dense" in name or "ffn/lin1" in name:
        return "ffn-in"
    if "output/dense" in name or "ffn/lin2" in name:
        return "ffn-out"
    return None


def weight_products(model: Any) -> list[Any]:
    """The graph's projections with a constant weight (second input an initializer), in graph order."""
    initializers = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if role(n) is not None and len(n.input) > 1 and n.input[1] in initializers]


def feeds(session: Any, tokenizer: Any, text: str) -> dict[str, np.ndarray]:
    """One text, unpadded, as the graph's int64 inputs (DistilBERT has no token_type_ids)."""
    encoding = tokenizer.encode(text)
    values = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask, "token_type_ids": encoding.type_ids}
    return {i.name: np.asarray([values[i.name]], dtype=np.int64) for i in session.get_inputs()}


def channel_maxima(graph: Path, tensors: list[str], texts: Iterable[str], tokenizer: Any) -> dict[str, np.ndarray]:
    """max |x| per channel (last axis) of each named tensor over the texts, each run alone (unpadded)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(graph))
    known = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory(prefix="sagebert-calibrate-") as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx.save(model, str(path))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray] = {}
    for text in texts:
        outputs = session.run(tensors, feeds(session, tokenizer, text))
        for name, value in zip(tensors, outputs, strict=True):
            found = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = found if name not in maxima else np.maximum(maxima[name], found)
    return maxima


def smooth(model: Any, maxima: dict[str, np.ndarray], alpha: float, nodes: list[Any]) -> None:
    """SmoothQuant in place: for each node, scale its weight's input rows by s and divide its input by s."""
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    for node in nodes:
        activation, weight_name = node.input[0], node.input[1]
        weight = numpy_helper.to_array(initializers[weight_name]).astype(np.float32)
        x_max = np.maximum(maxima[activation], 1e-5)
        w_max = np.maximum(np.abs(weight).max(axis=1), 1e-5)
        scale = (x_max**alpha / w_max ** (1 - alpha)).astype(np.float32)
        scale = np.clip(scale, 1e-2, 1e2)
        initializers[weight_name].CopyFrom(numpy_helper.from_array(weight * scale[:, None], weight_name))
        inverse_name = f"{node.name}_smooth_inverse"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse_name))
        smoothed = f"{node.name}_smoothed_input"
        model.graph.node.append(helper.make_node("Mul", [activation, inverse_name], [smoothed], f"{node.name}_smooth"))
        node.input[0] = smoothed
    _topological_sort(model)


def _topological_sort(model: Any) -> None:
    produced_by: dict[str, Any] = {out: node for node in model.graph.node for out in node.output}
    ordered: list[Any] = []
    seen: set[int] = set()

    def visit(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for name in node.input:
            if name in produced_by:
                visit(produced_by[name])
        ordered.append(node)

    for node in list(model.graph.node):
        visit(node)
    del model.graph.node[:]
    model.graph.node.extend(ordered)


# The int8 product must be exact on every x86 CPU, or an archive checked where it is built says nothing about
# where it runs. ONNX Runtime multiplies uint8 activations by int8 weights; without AVX-512 VNNI (AVX2, and
# AVX-512 on Skylake such as ml.m5/ml.c5) its kernel adds pairs of u8*s8 products into int16, saturating at
# 32767: 2 * 255 * 127 = 64770 overflows. So the per-token recipe puts activations on 7 bits (0..127, one
# range per token) and keeps int8 weights: 2 * 127 * 127 = 32258 fits, and the kernels of AVX2, AVX-512
# VNNI and AMX all compute the same integers. Measured on an AVX2 machine (AMD EPYC, family 25; 384
# held-out texts; faithful recipe): activations on 8 bits 98.70% of labels agree with PyTorch fp32 (p99
# gap 0.36), 7-bit weights 99.74% (p99 0.118), 7-bit activations 100% (p99 0.053). uint8 weights avoid
# it too but run ONNX Runtime's u8u8 kernel, which has no VNNI or AMX path. ONNX Runtime's dynamic
# quantization has full-range activations, so its recipes get 7-bit weights (reduce_range: |q| <= 64,
# 2 * 255 * 64 = 32640). model_code/train.py's int8 simulation uses the same grid (a test keeps it).
ACTIVATION_LEVELS = 127
WEIGHT_LEVELS = 127
DYNAMIC_WEIGHT_LEVELS = 64
INT16_MAX = 32767


def quantize_dynamic(graph: Path, output: Path, exclude: Iterable[str] = ()) -> None:
    """Dynamic int8, per-channel 7-bit weights (reduce_range, see ACTIVATION_LEVELS), the embedding table
    fp32 (quantizing it flipped negations)."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(
        str(graph),
        str(output),
        per_channel=True,
        reduce_range=True,  # 7-bit weights: the product cannot saturate on CPUs without VNNI
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(QUANTIZED_OPS),
        nodes_to_exclude=list(exclude),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def build(
    fp32_graph: Path,
    output: Path,
    recipe: Recipe,
    calibration: list[str],
    tokenizer: Any,
    sensitivity: Callable[[Path, list[str]], list[tuple[str, float]]] | None = None,
) -> dict[str, Any]:
    """The int8 graph of `recipe` from the fused fp32 graph; returns what was done (for the manifest)."""
    import onnx

    model = onnx.load(str(fp32_graph))
    if recipe.per_token:
        quantize_per_token(model, [n for n in weight_products(model) if role(n) in recipe.per_token])
    products = weight_products(model)  # what is left as float MatMul / Attention
    chosen = [n for n in products if role(n) in recipe.dynamic]
    excluded = [n.name for n in products if role(n) not in recipe.dynamic]
    with tempfile.TemporaryDirectory(prefix="sagebert-recipe-") as tmp:
        source = Path(tmp) / "prepared.onnx"
        if recipe.smooth_alpha is not None:
            maxima = channel_maxima(fp32_graph, sorted({n.input[0] for n in chosen}), calibration, tokenizer)
            smooth(model, maxima, recipe.smooth_alpha, chosen)
        onnx.save(model, str(source))
        ranking: list[tuple[str, float]] = []
        if recipe.keep_fp32:
            if sensitivity is None:
                raise ValueError(f"recipe {recipe.name} keeps sensitive products fp32 but no sensitivity measure given")
            ranking = sensitivity(source, [n.name for n in chosen])
            excluded += [name for name, _ in ranking[: recipe.keep_fp32]]
        if chosen:
            quantize_dynamic(source, output, exclude=excluded)
        else:
            onnx.save(model, str(output))
    return {
        "recipe": recipe.name,
        "description": recipe.describe(),
        "batch_independent": recipe.batch_independent,
        "fp32_products": sorted(excluded),
        "sensitivity": [{"node": name, "score": round(gap, 5)} for name, gap in ranking],
    }


# The recipes `make package --recipe NAME` knows (`make int8-study` compares them and more, on this CPU).
# faithful: the FFN's two projections in per-token int8, attention in fp32. On 384 held-out texts it kept
# every label and a p99 probability gap of 0.04 on an AVX-512 VNNI machine, where ONNX Runtime's
# dynamic int8 of every projection (fast) moved p99 by 0.28: the FFN's activations have one token
# ([CLS]) 5-6x above the rest, so one scale per tensor is too coarse for the others.
RECIPES = {
    "faithful": Recipe("faithful", dynamic=(), per_token=("ffn-in", "ffn-out")),
    "fast": Recipe("fast", dynamic=ROLES),
}
DEFAULT_RECIPE = RECIPES["faithful"]


def quantize_per_token(model: Any, nodes: list[Any]) -> None:
    """Rewrite each MatMul in `nodes` (in place) as an int8 product whose activation is quantized per token.

    ONNX Runtime's dynamic MatMul quantizes the whole activation with one scale, and in BERT one token
    ([CLS]) carries activations 5-6x larger than the others in the FFN, so every other token gets a coarse
    grid. Here each row (token) gets its own uint8 range of ACTIVATION_LEVELS steps: x ~ s_t * (q - z_t).
    ONNX Runtime's MatMulInteger takes only a scalar zero point, so the product runs with zero point 0 and
    the row's zero point is taken out afterwards: (q - z_t) @ Wq = q @ Wq - z_t * colsum(Wq). Weights are
    int8 symmetric per output column. Every token's answer depends on its own values only, so padding and
    batch-mates cannot change it."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    constants: dict[str, np.ndarray] = {
        "pt_zero": np.array(0.0, dtype=np.float32),
        "pt_inv_levels": np.array(1.0 / ACTIVATION_LEVELS, dtype=np.float32),
        "pt_eps": np.array(1e-8, dtype=np.float32),
        "pt_one": np.array(1.0, dtype=np.float32),
        "pt_axis1": np.array([1], dtype=np.int64),
        "pt_start0": np.array([0], dtype=np.int64),
        "pt_end_minus1": np.array([-1], dtype=np.int64),
    }
    for name, value in constants.items():
        if name not in initializers:
            model.graph.initializer.append(numpy_helper.from_array(value, name))
    for node in [_split_attention(model, n) if n.op_type == "Attention" else n for n in nodes]:
        if node.op_type != "MatMul":
            raise ValueError(f"{node.name}: per-token int8 rewrites MatMul nodes, not {node.op_type}")
        x, weight_name = node.input[0], node.input[1]
        initializers = {i.name: i for i in model.graph.initializer}
        weight = numpy_helper.to_array(initializers[weight_name]).astype(np.float32)
        w_scale = np.maximum(np.abs(weight).max(axis=0), 1e-8) / WEIGHT_LEVELS
        w_int8 = np.clip(np.round(weight / w_scale), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
        p = node.name.replace("/", "_").strip("_")
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(w_int8, f"{p}_w_int8"),
                numpy_helper.from_array(w_scale.astype(np.float32), f"{p}_w_scale"),
                numpy_helper.from_array(
                    (w_int8.astype(np.float32).sum(axis=0) * w_scale).astype(np.float32), f"{p}_w_colsum"
                ),
                numpy_helper.from_array(np.array([-1, weight.shape[0]], dtype=np.int64), f"{p}_rows_by_k"),
                numpy_helper.from_array(np.array([weight.shape[1]], dtype=np.int64), f"{p}_n"),
            ]
        )
        y = node.output[0]

        def op(kind: str, inputs: list[str], out: str, prefix: str = p, **attrs: Any) -> Any:
            return helper.make_node(kind, inputs, [f"{prefix}_{out}"], f"{prefix}_{out}", **attrs)

        # Per row: range [lo, hi] including 0, scale s = (hi - lo) / ACTIVATION_LEVELS, zero point z = round(-lo / s).
        # QuantizeLinear does the rounding, shifting and saturating in one pass (per-axis over rows);
        # MatMulIntegerToFloat multiplies and applies the weights' scales in one fused kernel.
        new = [
            op("Shape", [x], "shape"),
            op("Reshape", [x, f"{p}_rows_by_k"], "x2d"),
            op("ReduceMax", [f"{p}_x2d"], "hi", axes=[1], keepdims=0),
            op("ReduceMin", [f"{p}_x2d"], "lo", axes=[1], keepdims=0),
            op("Max", [f"{p}_hi", "pt_zero"], "hi0"),
            op("Min", [f"{p}_lo", "pt_zero"], "lo0"),
            op("Sub", [f"{p}_hi0", f"{p}_lo0"], "range"),
            op("Mul", [f"{p}_range", "pt_inv_levels"], "scale_raw"),
            op("Max", [f"{p}_scale_raw", "pt_eps"], "scale"),
            op("Div", [f"{p}_lo0", f"{p}_scale"], "neg_zp_raw"),
            op("Round", [f"{p}_neg_zp_raw"], "neg_zp"),  # -z per row (lo0 <= 0)
            op("Neg", [f"{p}_neg_zp"], "zp_f"),
            op("Cast", [f"{p}_zp_f"], "zp", to=TensorProto.UINT8),
            op("QuantizeLinear", [f"{p}_x2d", f"{p}_scale", f"{p}_zp"], "x_u8", axis=0),
            helper.make_node(
                "MatMulIntegerToFloat",
                [f"{p}_x_u8", f"{p}_w_int8", "pt_one", f"{p}_w_scale"],
                [f"{p}_acc"],
                f"{p}_acc",
                domain="com.microsoft",
            ),
            op("Unsqueeze", [f"{p}_neg_zp", "pt_axis1"], "neg_zp_col"),
            op("Unsqueeze", [f"{p}_scale", "pt_axis1"], "scale_col"),
            op("Mul", [f"{p}_neg_zp_col", f"{p}_w_colsum"], "zp_term"),  # -z * colsum(Wq) * w_scale
            op("Add", [f"{p}_acc", f"{p}_zp_term"], "centred"),
            op("Mul", [f"{p}_centred", f"{p}_scale_col"], "y2d"),
            op("Slice", [f"{p}_shape", "pt_start0", "pt_end_minus1"], "lead"),
            op("Concat", [f"{p}_lead", f"{p}_n"], "out_shape", axis=0),
            helper.make_node("Reshape", [f"{p}_y2d", f"{p}_out_shape"], [y], f"{p}_out"),
        ]
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for offset, item in enumerate(new):
            model.graph.node.insert(index + offset, item)
    used = {name for n in model.graph.node for name in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _split_attention(model: Any, node: Any) -> Any:
    """Attention(x, W, b, mask) -> MatMul(x, W) then MultiHeadAttention(q, k, v, b, mask), so the fused
    Q/K/V projection becomes a plain MatMul that can be quantized per token; returns that MatMul."""
    from onnx import helper

    x, weight, bias = node.input[0], node.input[1], node.input[2]
    mask = node.input[3] if len(node.input) > 3 else ""
    heads = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "num_heads")
    p = node.name
    matmul = helper.make_node("MatMul", [x, weight], [f"{p}_qkv"], f"{p}_qkv_MatMul")
    split = helper.make_node("Split", [f"{p}_qkv"], [f"{p}_q", f"{p}_k", f"{p}_v"], f"{p}_split", axis=2)
    attention = helper.make_node(
        "MultiHeadAttention",
        [f"{p}_q", f"{p}_k", f"{p}_v", bias, mask],
        list(node.output),
        f"{p}_mha",
        domain="com.microsoft",
        num_heads=heads,
    )
    index = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    for offset, item in enumerate((matmul, split, attention)):
        model.graph.node.insert(index + offset, item)
    return matmul
