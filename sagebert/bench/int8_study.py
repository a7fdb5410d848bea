"""`make int8-study`: which int8 recipe keeps the fine-tuned model's answers, on this CPU, at what speed.

Every recipe is built from the same fused fp32 graph and scored against PyTorch fp32 on the held-out
texts (validation + test, never used to choose anything): label agreement, p99 and largest
probability gap, test accuracy, and batch-1 latency (short text and ~128 tokens, unpadded) with the
same thread count. Calibration and sensitivity use training texts only. Besides the int8 recipes:
fp32 ONNX (the baseline the latency goal is against) and PyTorch bf16 autocast (oneDNN; fast where
the CPU has AMX or AVX-512 BF16). The CPU's model and instruction sets head the table, since int8
kernels (and so the answers) differ between AVX2, AVX-512 VNNI and AMX machines.

Writes build/int8-study/results.json.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sagebert import cpu, paths
from sagebert.release import quantize
from sagebert.release.package import FP32_GRAPH, export_onnx, onnx_probabilities, optimize, reference_probabilities
from sagebert.tables import columns

SHORT = "The hotel staff were friendly and the room was spotless, but breakfast ended far too early for us."

ATTENTION, FFN = ("qkv", "attention-out"), ("ffn-in", "ffn-out")
RECIPES = (
    quantize.RECIPES["fast"],
    quantize.Recipe("dynamic: attention only", dynamic=ATTENTION),
    quantize.Recipe("dynamic: no ffn-out", dynamic=(*ATTENTION, "ffn-in")),
    quantize.Recipe("dynamic + SmoothQuant 0.8", smooth_alpha=0.8),
    quantize.Recipe("dynamic, 4 most sensitive fp32", keep_fp32=4),
    quantize.Recipe("per-token: everything", dynamic=(), per_token=quantize.ROLES),
    quantize.Recipe("per-token FFN + dynamic attention", dynamic=ATTENTION, per_token=FFN),
    quantize.Recipe("per-token all but qkv", dynamic=(), per_token=("attention-out", *FFN)),
    quantize.RECIPES["faithful"],
)


def _texts(name: str) -> list[dict[str, str]]:
    lines = (paths.DATA_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def _gaps(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    gap = np.abs(reference - candidate).max(axis=-1)
    return {
        "agreement": float((reference.argmax(-1) == candidate.argmax(-1)).mean()),
        "p99_gap": float(np.quantile(gap, 0.99)),
        "max_gap": float(gap.max()),
    }


ROUNDS = 5  # latency: every recipe takes its turn this many times, so slow moments fall on all alike


def _latencies(runners: list[Any], texts: list[str], iterations: int) -> list[list[float]]:
    """Per runner, the p50 ms of each text: the runners take turns (iterations / ROUNDS calls each per
    turn, after two untimed ones), as `make bench`'s contenders do."""
    samples: list[list[list[float]]] = [[[] for _ in texts] for _ in runners]
    per_turn = max(1, iterations // ROUNDS)
    for _ in range(ROUNDS):
        for index, run in enumerate(runners):
            for position, text in enumerate(texts):
                for _ in range(2):
                    run(text)
                for _ in range(per_turn):
                    t0 = time.perf_counter()
                    run(text)
                    samples[index][position].append((time.perf_counter() - t0) * 1000)
    return [[statistics.median(times) for times in per_text] for per_text in samples]


def _onnx_runner(graph: Path, model_dir: Path, threads: int) -> Any:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(quantize.MAX_TOKENS)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    return lambda text: session.run(None, quantize.feeds(session, tokenizer, text))


def sensitivity_measure(model_dir: Path, calibration: list[str]) -> Any:
    """Per product: how far the logit margin moves on the calibration texts with that product alone int8."""

    def margins(graph: Path) -> Any:
        probabilities = onnx_probabilities(graph, model_dir, calibration)
        return np.log(np.clip(probabilities, 1e-12, 1.0))

    def measure(source: Path, names: list[str]) -> list[tuple[str, float]]:
        reference = margins(source)
        found = []
        with tempfile.TemporaryDirectory(prefix="sagebert-sensitivity-") as tmp:
            for index, name in enumerate(names, start=1):
                graph = Path(tmp) / "one.onnx"
                quantize.quantize_dynamic(source, graph, exclude=[n for n in names if n != name])
                found.append((name, float(np.abs(reference - margins(graph)).mean())))
                print(f"    sensitivity {index}/{len(names)}: {name} mean |d log p| {found[-1][1]:.5f}", flush=True)
        return sorted(found, key=lambda item: -item[1])

    return measure


def bf16_probabilities(model_dir: Path, texts: list[str], threads: int) -> tuple[np.ndarray, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, local_files_only=True, use_safetensors=True, trust_remote_code=False
    ).eval()

    def run(text: str) -> Any:
        encoded = tokenizer([text], truncation=True, max_length=quantize.MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(**encoded).logits.float()

    rows = [torch.softmax(run(text), dim=-1).numpy() for text in texts]
    return np.concatenate(rows), run


def main(
    model_dir: Path,
    threads: int,
    iterations: int,
    calibration_size: int,
    recipes: tuple[quantize.Recipe, ...] = RECIPES,
    bf16: bool = True,
    out: Path = paths.INT8_STUDY_DIR,
) -> int:
    out.mkdir(parents=True, exist_ok=True)
    machine = cpu.describe()
    print(f"CPU: {machine['model']} ({machine['isa']}; flags {', '.join(machine['flags'])})")
    held_out = _texts("validation") + _texts("test")
    test = _texts("test")
    texts = [row["text"] for row in held_out]
    calibration = [row["text"] for row in _texts("train")[:calibration_size]]
    long_text = " ".join(["I bought this blender after my old one died and it worked well for a month."] * 7)
    print(f"reference: PyTorch fp32 on {len(texts)} held-out texts")
    reference = reference_probabilities(model_dir, texts)
    labels = [row["label"] for row in test]
    names = json.loads((model_dir / "config.json").read_text())["id2label"]

    def accuracy(probabilities: np.ndarray) -> float:
        tail = probabilities[-len(test) :]
        return float(np.mean([names[str(i)] == label for i, label in zip(tail.argmax(-1), labels, strict=True)]))

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sagebert-study-") as tmp:
        work = Path(tmp)
        export_onnx(model_dir, work / "model.onnx")
        optimize(work / "model.onnx", work / FP32_GRAPH, model_dir)
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(quantize.MAX_TOKENS)
        measure = sensitivity_measure(model_dir, calibration)

        runners: list[Any] = []

        def score(name: str, description: str, graph: Path | None) -> None:
            if graph is None:
                probabilities, run = bf16_probabilities(model_dir, texts, threads)
            else:
                probabilities = onnx_probabilities(graph, model_dir, texts)
                run = _onnx_runner(graph, model_dir, threads)
            runners.append(run)
            rows.append(
                {"recipe": name, "description": description, **_gaps(reference, probabilities)}
                | {"test_accuracy": accuracy(probabilities)}
            )
            row = rows[-1]
            print(
                f"  {name}: {row['agreement']:.2%} agree, p99 |dp| {row['p99_gap']:.3f}, max {row['max_gap']:.3f}",
                flush=True,
            )

        score("fp32 ONNX", "baseline", work / FP32_GRAPH)
        for index, recipe in enumerate(recipes):
            print(f"recipe {recipe.name}: {recipe.describe()}", flush=True)
            graph = work / f"recipe-{index}.onnx"
            quantize.build(work / FP32_GRAPH, graph, recipe, calibration, tokenizer, measure)
            score(recipe.name, recipe.describe(), graph)
        if bf16:
            print("PyTorch bf16 autocast", flush=True)
            score("bf16 PyTorch autocast", "torch.autocast(cpu, bfloat16)", None)
        print(f"latency: {len(runners)} runners taking turns, {ROUNDS} rounds", flush=True)
        for row, (short_ms, long_ms) in zip(rows, _latencies(runners, [SHORT, long_text], iterations), strict=True):
            row["short_p50_ms"], row["long_p50_ms"] = short_ms, long_ms
    fp32 = rows[0]
    reference_accuracy = accuracy(reference)
    header = ("recipe", "agree", "p99 |dp|", "max |dp|", "test acc", "short p50 ms", "128-tok p50 ms", "vs fp32 ONNX")
    table = [header]
    for row in rows:
        table.append(
            (
                row["recipe"],
                f"{row['agreement']:.2%}",
                f"{row['p99_gap']:.3f}",
                f"{row['max_gap']:.3f}",
                f"{row['test_accuracy']:.2%}",
                f"{row['short_p50_ms']:.1f}",
                f"{row['long_p50_ms']:.1f}",
                f"{fp32['long_p50_ms'] / row['long_p50_ms']:.2f}x",
            )
        )
    print(f"\n{len(texts)} held-out texts vs PyTorch fp32 (test accuracy {reference_accuracy:.2%}), {threads} threads")
    print(f"CPU: {machine['model']} ({machine['isa']})")
    print("\n".join(columns(table)))
    (out / "results.json").write_text(
        json.dumps(
            {"cpu": machine, "threads": threads, "fp32_test_accuracy": reference_accuracy, "rows": rows}, indent=2
        )
        + "\n"
    )
    print(f"\nwrote {out / 'results.json'}")
    return 0
