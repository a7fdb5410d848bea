"""`make package`: Hugging Face classifier folder -> fast, verified model.tar.gz for the CPU endpoint.

Steps: export to ONNX (fp32) -> ONNX Runtime transformer optimizations (fused attention, layer
norms, GELU) -> dynamic int8 quantization with per-channel weights -> agreement check of the int8
graph against the PyTorch fp32 model on a held-out split (at least 99% of labels must agree, else
nothing is written and the command says so) -> archive with the graphs, the safetensors weights
(PyTorch and GPU fallback), the tokenizer, `code/inference.py`, `code/requirements.txt` and the
onnxruntime wheels for the container's Python, so start-up never downloads anything.
Deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagebert.archive import MODEL_CODE, REPO_ROOT, ArchiveError, build_archive, model_members

# The Hugging Face DLC the archive runs in (infra/dlc_images.json): Python 3.12 on x86_64 Linux.
CONTAINER_PYTHON = "3.12"
CONTAINER_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# What the handler needs beyond the DLC (which has numpy, protobuf, packaging and tokenizers);
# versions follow the ones this project tests with, from requirements/lock.txt.
CONTAINER_WHEELS = ("onnxruntime", "flatbuffers")
OPSET = 17
INT8_GRAPH, FP32_GRAPH = "model.int8.onnx", "model.fp32.onnx"
DEFAULT_CHECK_SET = REPO_ROOT / "data" / "sentiment" / "test.jsonl"


class PackageError(Exception):
    """Packaging stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Agreement:
    examples: int
    label_agreement: float
    max_probability_gap: float

    def describe(self) -> str:
        return (
            f"{self.label_agreement:.2%} of {self.examples} labels agree with PyTorch fp32, "
            f"largest probability gap {self.max_probability_gap:.4f}"
        )


def input_names(model_dir: Path) -> list[str]:
    """The encoder's inputs: DistilBERT has no token_type_ids, BERT and MiniLM do."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    names = ["input_ids", "attention_mask"]
    return names if config.get("model_type") == "distilbert" else [*names, "token_type_ids"]


def export_onnx(model_dir: Path, output: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False
    ).eval()
    names = input_names(model_dir)
    dummy = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    # The TorchScript exporter (dynamo=False): its graphs are the ones ONNX Runtime's BERT fusions
    # match; torch warns that it is legacy, which says nothing about this model.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            dummy,
            str(output),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def optimize(fp32: Path, output: Path, model_dir: Path) -> dict[str, int]:
    """ONNX Runtime's offline transformer fusions; returns the fused-operator counts."""
    from onnxruntime.transformers import optimizer

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    heads = config.get("num_attention_heads", config.get("n_heads", 0))
    hidden = config.get("hidden_size", config.get("dim", 0))
    optimized = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1)
    optimized.save_model_to_file(str(output))
    stats: dict[str, int] = optimized.get_fused_operator_statistics()
    return {name: count for name, count in stats.items() if count}


# Quantized: the projections (MatMul) and fused attention. Not the embedding table: quantizing it
# (per-tensor, QEmbedLayerNormalization) flipped negation texts ("Can't recommend this drill") on
# the demo classifier, 98.4% agreement; without it, 99.5% at the same speed. The table is a lookup,
# so int8 would only save disk, not time.
QUANTIZED_OPS = ("MatMul", "Attention")


def quantize(optimized: Path, output: Path) -> None:
    """Dynamic int8, per-channel weights (per-tensor loses too much on MiniLM-size models)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(optimized),
        str(output),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(QUANTIZED_OPS),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def read_texts(path: Path) -> list[str]:
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise PackageError(f"{path}: no texts to check the quantized model on.")
    return texts


def reference_probabilities(model_dir: Path, texts: list[str]) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False
    ).eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            encoded = tokenizer(
                texts[start : start + 32], padding="longest", truncation=True, max_length=512, return_tensors="pt"
            )
            rows.append(torch.softmax(model(**encoded).logits.float(), dim=-1).numpy())
    import numpy as np

    return np.concatenate(rows)


def onnx_probabilities(graph: Path, model_dir: Path, texts: list[str]) -> Any:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(512)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    rows = []
    for text in texts:  # one at a time, unpadded: exactly how the handler serves single requests
        encoding = tokenizer.encode(text)
        feed = {
            "input_ids": [encoding.ids],
            "attention_mask": [encoding.attention_mask],
            "token_type_ids": [encoding.type_ids],
        }
        logits = session.run(None, {name: np.asarray(feed[name], dtype=np.int64) for name in wanted})[0]
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        rows.append(exp / exp.sum(axis=-1, keepdims=True))
    return np.concatenate(rows)


def agreement(reference: Any, candidate: Any) -> Agreement:
    import numpy as np

    same = float((reference.argmax(axis=-1) == candidate.argmax(axis=-1)).mean())
    return Agreement(
        examples=len(reference), label_agreement=same, max_probability_gap=float(np.abs(reference - candidate).max())
    )


def container_wheels(cache: Path) -> list[Path]:
    """onnxruntime (+ flatbuffers) wheels for the container's Python, at the versions tested here."""
    cache.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in CONTAINER_WHEELS]
    platforms = [arg for platform in CONTAINER_PLATFORMS for arg in ("--platform", platform)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        CONTAINER_PYTHON,
        *platforms,
        "--dest",
        str(cache),
        *pins,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(
            f"could not download {', '.join(pins)} for Python {CONTAINER_PYTHON}: {result.stderr.strip()[-500:]}"
        )
    wheels = []
    for name, pin in zip(CONTAINER_WHEELS, pins, strict=True):
        version = pin.split("==")[1]
        found = sorted(cache.glob(f"{name}-{version}-*.whl"))
        if not found:
            raise PackageError(f"{cache}: no wheel for {pin} after download.")
        wheels.append(found[-1])
    return wheels


def requirements_txt(wheels: list[Path]) -> bytes:
    """Installed by the toolkit at start-up: only from the wheels in the archive, never an index."""
    # The marker skips the wheels where they do not fit: the Neuron (Inferentia2) image runs Python 3.10 and its
    # runtime needs neither.
    marker = f'; python_version == "{CONTAINER_PYTHON}"'
    pins = "\n".join(f"{w.name.split('-')[0]}=={w.name.split('-')[1]} {marker}" for w in wheels)
    return (
        "# Generated by `make package`. The toolkit runs `pip install -r code/requirements.txt` at\n"
        "# start-up: --no-index keeps it off the network (network isolation), --find-links points at\n"
        "# the wheels shipped beside this file (pip resolves it relative to this file). The wheels are\n"
        f"# built for Python {CONTAINER_PYTHON} (the CPU and GPU images); other Pythons skip them.\n"
        f"--no-index\n--find-links wheels\n{pins}\n"
    ).encode()


def package(model_dir: Path, output: Path, check_set: Path, threshold: float, wheel_cache: Path) -> Agreement:
    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)

    members = model_members(model_dir)
    if not (model_dir / "tokenizer.json").is_file():
        raise PackageError(
            f"{model_dir}: no tokenizer.json (the fast tokenizer the handler loads without "
            "transformers); save the tokenizer with `save_pretrained`."
        )
    texts = read_texts(check_set)
    with tempfile.TemporaryDirectory(prefix="sagebert-package-") as tmp:
        work = Path(tmp)
        step(f"export {model_dir} to ONNX (opset {OPSET})")
        export_onnx(model_dir, work / "model.onnx")
        step("optimize (ONNX Runtime transformer fusions)")
        fused = optimize(work / "model.onnx", work / FP32_GRAPH, model_dir)
        step(f"fused: {', '.join(f'{k} x{v}' for k, v in sorted(fused.items()))}")
        step("quantize to int8 (dynamic, per-channel weights)")
        quantize(work / FP32_GRAPH, work / INT8_GRAPH)
        step(f"check int8 against PyTorch fp32 on {len(texts)} held-out texts from {check_set}")
        result = agreement(
            reference_probabilities(model_dir, texts), onnx_probabilities(work / INT8_GRAPH, model_dir, texts)
        )
        step(result.describe())
        if result.label_agreement < threshold:
            raise PackageError(
                f"int8 model refused: {result.describe()}, below the {threshold:.0%} threshold; nothing was "
                "written. Try more calibration-friendly training (fewer epochs, weight decay), a per-channel "
                "check of the outliers, or ship fp32 (`SAGEBERT_RUNTIME=onnx-fp32`)."
            )
        step(f"container wheels for Python {CONTAINER_PYTHON}")
        wheels = container_wheels(wheel_cache)
        (work / "requirements.txt").write_bytes(requirements_txt(wheels))
        members += [
            (INT8_GRAPH, work / INT8_GRAPH),
            (FP32_GRAPH, work / FP32_GRAPH),
            ("code/inference.py", MODEL_CODE / "inference.py"),
            ("code/requirements.txt", work / "requirements.txt"),
        ]
        members += [(f"code/wheels/{w.name}", w) for w in wheels]
        build_archive(sorted(members), output)
    step(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return result


def main(model_dir: Path, output: Path, check_set: Path, threshold: float) -> int:
    try:
        package(model_dir, output, check_set, threshold, wheel_cache=REPO_ROOT / "build" / "wheels")
    except (PackageError, ArchiveError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
