"""`make package`: Hugging Face classifier folder -> fast, verified model.tar.gz for the CPU endpoint.

Steps: export to ONNX (fp32) -> ONNX Runtime transformer optimizations (fused attention, layer
norms, GELU) -> int8 by the recipe in sagebert/release/quantize.py (dynamic, per-channel weights) -> both
graphs scored against the PyTorch fp32 model on the held-out texts -> the served runtime: int8 when
it meets the tolerance on this CPU, else fp32 ONNX with a warning that gives the figures
(`--require-int8` makes that a hard stop instead) -> a check set (texts with their fp32
probabilities) and its tolerance in `sagebert.json`, which the handler re-runs on the CPU it starts
on -> the archive: the graphs, the tokenizer, `code/inference.py`, `code/requirements.txt` and the
onnxruntime wheels for the container's Python (start-up never downloads anything), and the
safetensors weights only when a torch or GPU path can be chosen (`--runtimes`).
Deterministic for the same CPU: the graphs' bytes never depend on the machine; the verification
figures in sagebert.json (and so the served runtime) can.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sagebert import cpu, paths
from sagebert.release import quantize
from sagebert.release.archive import ArchiveError, build_archive, model_members

# The Hugging Face DLC the archive runs in (infra/catalog/dlc_images.json): Python 3.12 on x86_64 Linux.
CONTAINER_PYTHON = "3.12"
CONTAINER_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# What the handler needs beyond the DLC (which has numpy, protobuf, packaging and tokenizers);
# versions follow the ones this project tests with, from requirements/lock.txt.
CONTAINER_WHEELS = ("onnxruntime", "flatbuffers")
OPSET = 17
INT8_GRAPH, FP32_GRAPH, MANIFEST = "model.int8.onnx", "model.fp32.onnx", "sagebert.json"
MANIFEST_FORMAT = 1
# The held-out texts: never trained on (validation only picked the epoch).
DEFAULT_CHECK_TEXTS = (paths.DATA_DIR / "validation.jsonl", paths.DATA_DIR / "test.jsonl")


class PackageError(Exception):
    """Packaging stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Tolerance:
    """What int8 must keep of PyTorch fp32 to be served: on the held-out texts at build time, and on
    the archive's check set on every CPU the handler starts on (sagebert.json records both)."""

    min_agreement: float = 0.99  # share of held-out labels
    max_p99_gap: float = 0.10  # p99 of the largest per-text probability gap over the held-out texts
    check_max_gap: float = 0.10  # largest probability gap on the check set at start-up
    check_size: int = 32


@dataclass(frozen=True)
class Fidelity:
    """How one runtime's probabilities compare with PyTorch fp32's on the same texts."""

    examples: int
    label_agreement: float
    p99_gap: float
    max_probability_gap: float

    @classmethod
    def of(cls, reference: Any, candidate: Any) -> Fidelity:
        import numpy as np

        gaps = np.abs(reference - candidate).max(axis=-1)
        return cls(
            examples=len(reference),
            label_agreement=float((reference.argmax(axis=-1) == candidate.argmax(axis=-1)).mean()),
            p99_gap=float(np.quantile(gaps, 0.99)),
            max_probability_gap=float(gaps.max()),
        )

    def meets(self, tolerance: Tolerance) -> bool:
        return self.label_agreement >= tolerance.min_agreement and self.p99_gap <= tolerance.max_p99_gap

    def describe(self) -> str:
        return (
            f"{self.label_agreement:.2%} of {self.examples} labels agree with PyTorch fp32, p99 probability gap "
            f"{self.p99_gap:.4f}, largest {self.max_probability_gap:.4f}"
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "examples": self.examples,
            "label_agreement": round(self.label_agreement, 6),
            "p99_gap": round(self.p99_gap, 6),
            "max_gap": round(self.max_probability_gap, 6),
        }


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
                texts[start : start + 32],
                padding="longest",
                truncation=True,
                max_length=quantize.MAX_TOKENS,
                return_tensors="pt",
            )
            rows.append(torch.softmax(model(**encoded).logits.float(), dim=-1).numpy())
    import numpy as np

    return np.concatenate(rows)


def onnx_probabilities(graph: Path, model_dir: Path, texts: list[str]) -> Any:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(quantize.MAX_TOKENS)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:  # one at a time, unpadded: exactly how the handler serves single requests
        logits = session.run(None, quantize.feeds(session, tokenizer, text))[0]
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        rows.append(exp / exp.sum(axis=-1, keepdims=True))
    return np.concatenate(rows)


def check_set(texts: list[str], reference: Any, int8: Any, tolerance: Tolerance) -> dict[str, Any]:
    """The texts the handler re-runs at start-up, with their PyTorch fp32 probabilities.

    Chosen to notice a CPU whose int8 kernels answer differently: the texts where int8 moved furthest
    from fp32 here (yet at most half the tolerance, so the build's CPU passes with room), among those
    whose fp32 label leads by more than twice the tolerance (a label can only flip when the gap is
    beyond tolerance, so the gap check covers the labels). Where no text leads by that much, the most
    decided ones. Ties keep the file's order."""
    import numpy as np

    ordered = np.sort(reference, axis=-1)
    lead = ordered[:, -1] - ordered[:, -2]
    gaps = np.abs(reference - int8).max(axis=-1)
    eligible = [i for i in range(len(texts)) if lead[i] > 2 * tolerance.check_max_gap]
    within = [i for i in eligible if gaps[i] <= tolerance.check_max_gap / 2] or eligible
    if not within:  # no text leads by that much (an undertrained model): the most decided ones
        within = sorted(range(len(texts)), key=lambda i: -lead[i])
    chosen = sorted(sorted(within, key=lambda i: -gaps[i])[: tolerance.check_size])
    return {
        "texts": [texts[i] for i in chosen],
        "probabilities": [[round(float(v), 7) for v in reference[i]] for i in chosen],
    }


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
    # Options after the marker: pip reads `name==version ; marker --hash=...` as a requirement and its options.
    pins = "\n".join(
        f"{w.name.split('-')[0]}=={w.name.split('-')[1]} {marker} --hash=sha256:{_sha256(w)}" for w in wheels
    )
    return (
        "# Generated by `make package`. The toolkit runs `pip install -r code/requirements.txt` at\n"
        "# start-up: --no-index keeps it off the network (network isolation), --find-links points at\n"
        "# the wheels shipped beside this file (pip resolves it relative to this file). The wheels are\n"
        f"# built for Python {CONTAINER_PYTHON} (the CPU and GPU images); other Pythons skip them. Each pin\n"
        "# carries its wheel's sha256, so pip installs only the bytes this archive was checked with.\n"
        f"--no-index\n--find-links wheels\n{pins}\n"
    ).encode()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


RUNTIMES = ("onnx", "torch")  # what --runtimes may name: the ONNX graphs always, the safetensors for torch/GPU


def package(
    model_dir: Path,
    output: Path,
    check_texts: Path | list[Path],
    tolerance: Tolerance,
    wheel_cache: Path,
    *,
    require_int8: bool = False,
    runtimes: tuple[str, ...] = ("onnx",),
    recipe: quantize.Recipe = quantize.DEFAULT_RECIPE,
) -> dict[str, Any]:
    """Build the archive; returns its manifest (sagebert.json). Nothing is written when it fails."""
    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)

    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown or "onnx" not in runtimes:
        raise PackageError(f"--runtimes {','.join(runtimes)}: allowed are onnx (always) and torch, e.g. onnx,torch.")
    members = [m for m in model_members(model_dir) if m[0] != "model.safetensors" or "torch" in runtimes]
    if not (model_dir / "tokenizer.json").is_file():
        raise PackageError(
            f"{model_dir}: no tokenizer.json (the fast tokenizer the handler loads without "
            "transformers); save the tokenizer with `save_pretrained`."
        )
    sources = [check_texts] if isinstance(check_texts, Path) else check_texts
    texts = [text for source in sources for text in read_texts(source)]
    machine = cpu.describe()
    with tempfile.TemporaryDirectory(prefix="sagebert-package-") as tmp:
        work = Path(tmp)
        step(f"export {model_dir} to ONNX (opset {OPSET})")
        export_onnx(model_dir, work / "model.onnx")
        step("optimize (ONNX Runtime transformer fusions)")
        fused = optimize(work / "model.onnx", work / FP32_GRAPH, model_dir)
        step(f"fused: {', '.join(f'{k} x{v}' for k, v in sorted(fused.items()))}")
        step(f"quantize to int8: {recipe.describe()}")
        built = quantize.build(work / FP32_GRAPH, work / INT8_GRAPH, recipe, [], None)
        step(
            f"score fp32 ONNX and int8 against PyTorch fp32 on {len(texts)} held-out texts; CPU {cpu.summary(machine)}"
        )
        reference = reference_probabilities(model_dir, texts)
        fp32 = Fidelity.of(reference, onnx_probabilities(work / FP32_GRAPH, model_dir, texts))
        int8_probabilities = onnx_probabilities(work / INT8_GRAPH, model_dir, texts)
        int8 = Fidelity.of(reference, int8_probabilities)
        step(f"fp32 ONNX: {fp32.describe()}")
        step(f"int8:      {int8.describe()}")
        if fp32.label_agreement < 1.0 or fp32.max_probability_gap > 1e-3:
            raise PackageError(
                f"the fp32 ONNX export itself differs from PyTorch ({fp32.describe()}); nothing was written. "
                "The export or the fusions do not fit this architecture: report it with the model's config.json."
            )
        wanted = f"at least {tolerance.min_agreement:.1%} of labels and a p99 gap of at most {tolerance.max_p99_gap:g}"
        if int8.meets(tolerance):
            served = "onnx-int8"
        elif require_int8:
            raise PackageError(
                f"int8 refused on this CPU ({cpu.summary(machine)}): {int8.describe()}; the tolerance is {wanted}. "
                "Nothing was written. Without --require-int8 the archive serves fp32 ONNX instead."
            )
        else:
            served = "onnx-fp32"
            print(
                f"warning: int8 misses the tolerance on this CPU ({cpu.summary(machine)}): {int8.describe()}; "
                f"the tolerance is {wanted}. The archive serves the fp32 ONNX graph (same answers as PyTorch, "
                "slower). Ways out: build on the CPU family you deploy to (ml.c6i/ml.c7i have AVX-512 VNNI), "
                "compare recipes with `make int8-study`, or pass --require-int8 to stop here instead.",
                file=sys.stderr,
                flush=True,
            )
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "served_runtime": served,
            "runtimes": sorted(set(runtimes)),
            "int8": built | {"fidelity": int8.as_dict(), "meets_tolerance": int8.meets(tolerance)},
            "fp32_onnx": {"fidelity": fp32.as_dict()},
            "built_on": machine,
            "tolerance": asdict(tolerance),
            "check_set": check_set(texts, reference, int8_probabilities, tolerance),
        }
        step(f"served runtime: {served}; check set of {len(manifest['check_set']['texts'])} texts for start-up")
        step(f"container wheels for Python {CONTAINER_PYTHON}")
        wheels = container_wheels(wheel_cache)
        (work / "requirements.txt").write_bytes(requirements_txt(wheels))
        # The manifest's bytes: no timestamps, sorted keys, so the archive moves only when a figure does.
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        members += [
            (FP32_GRAPH, work / FP32_GRAPH),
            (MANIFEST, work / MANIFEST),
            ("code/inference.py", paths.MODEL_CODE_DIR / "inference.py"),
            ("code/requirements.txt", work / "requirements.txt"),
        ]
        if served == "onnx-int8":  # an int8 graph that failed here would only ever be refused at start-up
            members.append((INT8_GRAPH, work / INT8_GRAPH))
        members += [(f"code/wheels/{w.name}", w) for w in wheels]
        build_archive(sorted(members), output)
        sidecar = output.with_name(output.name + ".json")  # what synth reads without unpacking the archive
        sidecar.write_text(json.dumps({k: manifest[k] for k in ("served_runtime", "runtimes")}) + "\n")
    step(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB) and {sidecar.name}")
    return manifest


def main(
    model_dir: Path,
    output: Path,
    check_texts: list[Path],
    tolerance: Tolerance,
    require_int8: bool,
    runtimes: tuple[str, ...],
    recipe: str = "faithful",
) -> int:
    try:
        package(
            model_dir,
            output,
            check_texts,
            tolerance,
            wheel_cache=paths.WHEEL_CACHE,
            require_int8=require_int8,
            runtimes=runtimes,
            recipe=quantize.RECIPES[recipe],
        )
    except (PackageError, ArchiveError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def resolve_runtimes(value: str, config_dir: Path) -> tuple[str, ...]:
    """--runtimes: `onnx`, `onnx,torch`, or `auto` (onnx,torch when a stage in config_dir deploys the bundled
    archive on a GPU, where the handler runs PyTorch fp16 and needs the safetensors weights)."""
    if value.strip().lower() != "auto":
        return tuple(part.strip().lower() for part in value.split(",") if part.strip())
    import yaml

    for path in sorted(config_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        endpoint = data.get("endpoint") if isinstance(data, dict) else None
        # Variants and shadows share the endpoint's compute profile.
        if isinstance(endpoint, dict) and endpoint.get("compute") == "gpu":
            print(f"--runtimes auto: {path} deploys on a GPU, so the archive keeps the safetensors weights")
            return ("onnx", "torch")
    return ("onnx",)
