"""Inference handler for the Hugging Face inference toolkit (sagemaker-huggingface-inference-toolkit).

The toolkit imports `code/inference.py` from the model archive and calls model_fn once per worker,
then input_fn -> predict_fn -> output_fn per request.

Runtimes (environment variable SAGEBERT_RUNTIME):
- `auto` (default): PyTorch fp16 on a CUDA GPU; else the runtime the archive's sagebert.json names
  (int8 where `make package` verified it, else fp32 ONNX); else ONNX Runtime int8 when the archive has
  model.int8.onnx; else PyTorch fp32.
- `onnx-int8`, `onnx-fp32`: ONNX Runtime on the CPU (fused graph; per-channel int8 weights).
- `torch`: PyTorch (fp16 on CUDA, fp32 on CPU). Plain encoders (no classifier head) always use it
  and answer embeddings.
- `neuron`: Inferentia2 through optimum-neuron, which the Hugging Face Neuron image ships. Neuron
  runs static shapes: the graph is compiled when the worker starts (minutes) for one text of
  SAGEBERT_NEURON_SEQUENCE_LENGTH tokens (default 128), so here each text is padded to that length
  and longer ones are truncated to it. Classifiers only.
The ONNX path imports only numpy, onnxruntime and tokenizers: no torch, no transformers, so a
worker is ready in a fraction of a second.

Requests: JSON `{"inputs": str | [str], "parameters": {"top_k": n}}` -> `[{"label", "score"}]`
per text (a list per text when top_k > 1), as the toolkit's own pipeline answers; or JSON Lines
(application/jsonlines) for batch transform: one text per line (a JSON string or
`{"inputs": str}`), one answer per line in the same order, and a bad line answers
`{"error": ...}` without failing the others. Single texts are never padded. Many texts are sorted by
length and padded only to the longest of each micro-batch - except with an int8 recipe whose
activation scales span several tokens (`fast`), where every text runs alone so that its answer does
not depend on its neighbours.

Self-check: an archive from `make package` carries sagebert.json - the runtime it verified, a check
set (texts with their PyTorch fp32 probabilities) and the tolerance. Before serving int8, model_fn
runs the check set on the CPU it starts on (ONNX Runtime picks its int8 kernels by CPUID, so answers
differ between AVX2, AVX-512 VNNI and AMX machines); when int8 misses the tolerance there, the worker
serves the fp32 graph instead. Either way one line on stderr says what is served, why, the check's
figures, the CPU's model and flags, and model_fn's time (no request data).

Threads: SAGEBERT_THREADS, else cores // model-server workers (SAGEMAKER_MODEL_SERVER_WORKERS,
which the toolkit's server defaults to one per core), so workers x threads never exceeds cores.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Limits: one place. A request over them is refused with a message that names the limit.
MAX_TEXTS = 64  # texts in one JSON request
# Lines in one JSON Lines request. Batch transform's MultiRecord packs lines up to MaxPayloadInMB,
# so short lines come many to a request: 6 MB of 60-byte reviews is 100,000 lines.
MAX_LINES = 100_000
MAX_CHARS = 10_000  # characters per text
MAX_TOKENS = 512  # tokens per text: longer texts are truncated (BERT position embeddings end there)
MICRO_BATCH = 16  # texts padded together
ALLOWED_PARAMETERS = frozenset({"top_k"})

JSON = "application/json"
JSONL = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
RUNTIMES = ("auto", "onnx-int8", "onnx-fp32", "torch", "neuron")
NEURON_SEQUENCE_LENGTH = 128
INT8_GRAPH, FP32_GRAPH = "model.int8.onnx", "model.fp32.onnx"
MANIFEST = "sagebert.json"


class InputError(ValueError):
    """A request the handler refuses; the message says what was wrong and what is allowed."""


@dataclass
class Request:
    texts: list[str]
    top_k: int = 1
    single: bool = False
    lines: list[str | None] = field(default_factory=list)  # JSON Lines: None = good line, else its error

    @property
    def jsonl(self) -> bool:
        return bool(self.lines)


# --- loading --------------------------------------------------------------------------------------


def thread_count() -> int:
    if os.environ.get("SAGEBERT_THREADS"):
        return max(1, int(os.environ["SAGEBERT_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS") or cores)
    return max(1, cores // max(1, workers))


def _cuda_available() -> bool:
    """A CUDA GPU is attached, judged without importing torch (that alone costs seconds)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """sagebert.json, written by `make package`: the runtime to serve, the int8 recipe, the check set
    (texts with their PyTorch fp32 probabilities) and the tolerance int8 must meet on this CPU."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def choose_runtime(model_dir: Path, requested: str | None = None, manifest: dict[str, Any] | None = None) -> str:
    runtime = (requested or os.environ.get("SAGEBERT_RUNTIME") or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise ValueError(f"SAGEBERT_RUNTIME={runtime!r}; allowed: {', '.join(RUNTIMES)}.")
    if runtime == "auto":
        if _cuda_available():
            runtime = "torch"
        elif manifest and manifest.get("served_runtime") in RUNTIMES:
            runtime = str(manifest["served_runtime"])  # what `make package` verified (int8 or fp32)
        else:
            runtime = "onnx-int8" if (model_dir / INT8_GRAPH).is_file() else "torch"
    graph = {"onnx-int8": INT8_GRAPH, "onnx-fp32": FP32_GRAPH}.get(runtime)
    if graph and not (model_dir / graph).is_file():
        raise ValueError(f"SAGEBERT_RUNTIME={runtime} needs {graph} in the archive; build it with `make package`.")
    if runtime == "torch" and not (model_dir / "model.safetensors").is_file():
        raise ValueError(
            "the torch runtime needs model.safetensors, which this lean archive leaves out; rebuild it with "
            "`python -m sagebert package --runtimes onnx,torch` or serve SAGEBERT_RUNTIME=onnx-fp32."
        )
    return runtime


def cpu_summary() -> str:
    """The CPU's model and the instruction sets that pick ONNX Runtime's int8 kernels (and so its answers)."""
    model, flags = "unknown", set[str]()
    path = Path("/proc/cpuinfo")
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return f"cpu={model!r} flags={','.join(f for f in wanted if f in flags) or 'none'}"


@dataclass(frozen=True)
class SelfCheck:
    """int8 against the archive's check set on the CPU the worker starts on."""

    examples: int
    agreeing: int
    max_gap: float
    tolerance: float

    @property
    def passed(self) -> bool:
        # The check set's texts lead by more than twice the tolerance, so a label can only flip when the
        # gap is beyond it: the gap alone decides (the label count is reported).
        return self.max_gap <= self.tolerance

    def describe(self) -> str:
        verdict = "<=" if self.max_gap <= self.tolerance else ">"
        return (
            f"{self.agreeing}/{self.examples} labels agree with PyTorch fp32, largest probability gap "
            f"{self.max_gap:.4f} {verdict} tolerance {self.tolerance:.4f}"
        )


def self_check(model: OnnxModel, manifest: dict[str, Any]) -> SelfCheck:
    check = manifest["check_set"]
    reference = np.asarray(check["probabilities"], dtype=np.float64)
    logits = model.logits(list(check["texts"])).astype(np.float64)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = exp / exp.sum(axis=-1, keepdims=True)
    return SelfCheck(
        examples=len(reference),
        agreeing=int((reference.argmax(-1) == probabilities.argmax(-1)).sum()),
        max_gap=float(np.abs(reference - probabilities).max()),
        tolerance=float(manifest["tolerance"]["check_max_gap"]),
    )


def model_fn(model_dir: str, context: Any = None) -> Any:
    started = time.perf_counter()
    folder = Path(model_dir)
    manifest = read_manifest(folder)
    runtime = choose_runtime(folder, manifest=manifest)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    classifier = bool(architectures) and architectures[0].endswith("ForSequenceClassification")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))] if classifier else None
    if runtime.startswith("onnx"):
        if labels is None:
            raise ValueError(f"{model_dir}: the ONNX runtimes serve classifiers; this model has no classifier head.")
        batch_independent = bool(((manifest or {}).get("int8") or {}).get("batch_independent"))
        model: Any = OnnxModel(folder, runtime, labels, thread_count(), batch_independent)
        note = "" if runtime == "onnx-int8" else "fp32 graph as requested or as packaged"
        if runtime == "onnx-int8":
            if manifest is None or "check_set" not in manifest:
                note = "no check set in this archive (built before self-checking archives): int8 served unchecked"
            else:
                check = self_check(model, manifest)
                if check.passed:
                    note = f"int8 self-check passed: {check.describe()}"
                elif (folder / FP32_GRAPH).is_file():
                    model = OnnxModel(folder, "onnx-fp32", labels, thread_count())
                    note = (
                        f"int8 self-check FAILED on this CPU: {check.describe()}; serving the fp32 ONNX graph instead"
                    )
                else:
                    raise ValueError(
                        f"{model_dir}: int8 self-check failed on this CPU ({check.describe()}) and the archive has no "
                        f"{FP32_GRAPH} to fall back to; rebuild it with `make package`."
                    )
                model.self_check = check
        _log_start(model.runtime, note, started)
        return model
    if runtime == "neuron":
        if labels is None:
            raise ValueError(
                f"{model_dir}: SAGEBERT_RUNTIME=neuron serves classifiers; this model has no classifier head."
            )
        model = NeuronModel(folder, labels, config)
    else:
        model = TorchModel(folder, labels, thread_count())
    _log_start(model.runtime, "", started)
    return model


def _log_start(runtime: str, note: str, started: float) -> None:
    """One line per worker start: what it serves, why, on which CPU (no payloads)."""
    detail = f" ({note})" if note else ""
    took = time.perf_counter() - started
    print(
        f"sagebert model_fn: serving {runtime}{detail}; {cpu_summary()}; model_fn {took:.2f} s",
        file=sys.stderr,
        flush=True,
    )


class OnnxModel:
    """ONNX Runtime on the CPU with the fast tokenizer from tokenizer.json."""

    def __init__(
        self, folder: Path, runtime: str, labels: list[str], threads: int, batch_independent: bool = False
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.runtime, self.labels = runtime, labels
        # int8 with dynamic (per-tensor) activation scales: one text per forward pass, since in a padded
        # batch a text's answer would depend on its neighbours (P(positive) moved from 0.05 to 0.66 for
        # one review). The per-token recipes scale each token alone (the manifest says
        # batch_independent), so they pad into micro-batches as fp32 does.
        self.micro_batch = MICRO_BATCH if runtime == "onnx-fp32" or batch_independent else 1
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = folder / (INT8_GRAPH if runtime == "onnx-int8" else FP32_GRAPH)
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.self_check: SelfCheck | None = None  # set by model_fn when the archive has a check set

    def logits(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for batch in micro_batches([len(e.ids) for e in encodings], self.micro_batch):
            width = max(len(encodings[i].ids) for i in batch)
            feed = {name: np.zeros((len(batch), width), dtype=np.int64) for name in self.inputs}
            for row, index in enumerate(batch):
                encoding = encodings[index]
                n = len(encoding.ids)
                values = {
                    "input_ids": encoding.ids,
                    "attention_mask": encoding.attention_mask,
                    "token_type_ids": encoding.type_ids,
                }
                for name in self.inputs:
                    feed[name][row, :n] = values[name]
            out[batch] = self.session.run(None, feed)[0]
        return out


class TorchModel:
    """PyTorch: fp16 on CUDA, fp32 on the CPU; classifiers answer labels, plain encoders embeddings."""

    def __init__(self, folder: Path, labels: list[str] | None, threads: int) -> None:
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        self.torch, self.labels = torch, labels
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.runtime = "torch-fp16-cuda" if self.device.type == "cuda" else "torch-fp32"
        model_class = AutoModelForSequenceClassification if labels else AutoModel
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = (
            model_class.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, trust_remote_code=False, torch_dtype=dtype
            )
            .to(self.device)
            .eval()
        )
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    def _forward(self, texts: list[str]) -> Any:
        encoded = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        with self.torch.inference_mode():
            output = self.model(**encoded)
        return output, encoded["attention_mask"]

    def logits(self, texts: list[str]) -> np.ndarray:
        assert self.labels is not None
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        if len(texts) <= MICRO_BATCH:  # one forward pass: no need to tokenize twice for the sort
            output, _ = self._forward(texts)
            out[:] = output.logits.float().cpu().numpy()
            return out
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]]
        for batch in micro_batches(lengths):
            output, _ = self._forward([texts[i] for i in batch])
            out[batch] = output.logits.float().cpu().numpy()
        return out

    def embeddings(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised (sentence-transformers' recipe for MiniLM-style encoders)."""
        output, mask = self._forward(texts)
        weights = mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
        pooled = (output.last_hidden_state * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        normalised = self.torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
        return np.asarray(normalised.cpu().numpy())


class NeuronModel:
    """Inferentia2: optimum-neuron compiles the classifier for batch 1 and a fixed sequence length."""

    def __init__(self, folder: Path, labels: list[str], config: dict[str, Any]) -> None:
        try:
            from optimum.neuron import NeuronModelForSequenceClassification
        except ImportError as err:
            raise ValueError(
                "SAGEBERT_RUNTIME=neuron needs optimum-neuron, which the Hugging Face Neuron (Inferentia2) image "
                "ships; deploy with endpoint.compute: inferentia, or use another runtime here."
            ) from err
        from transformers import AutoTokenizer

        self.runtime, self.labels = "neuron", labels
        self.length = int(os.environ.get("SAGEBERT_NEURON_SEQUENCE_LENGTH") or NEURON_SEQUENCE_LENGTH)
        if "neuron" in config:  # already compiled (optimum-cli export neuron): load as is
            self.model = NeuronModelForSequenceClassification.from_pretrained(folder)
            self.length = int(config["neuron"].get("static_sequence_length", self.length))
        else:
            self.model = NeuronModelForSequenceClassification.from_pretrained(
                folder, export=True, batch_size=1, sequence_length=self.length
            )
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    def logits(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for index, text in enumerate(texts):  # the compiled graph takes one text of a fixed length
            encoded = self.tokenizer(
                [text], padding="max_length", truncation=True, max_length=self.length, return_tensors="pt"
            )
            out[index] = self.model(**encoded).logits[0].float().numpy()
        return out

    def embeddings(self, texts: list[str]) -> np.ndarray:
        raise InputError("SAGEBERT_RUNTIME=neuron serves classifiers only.")


def micro_batches(lengths: list[int], size: int = MICRO_BATCH) -> list[list[int]]:
    """Indices grouped by length (shortest first), `size` at a time: little padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[start : start + size] for start in range(0, len(order), size)]


# --- the toolkit contract -------------------------------------------------------------------------


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _decode(input_data: str | bytes | bytearray) -> str:
    try:  # multi-model-server hands the body over as a bytearray
        return input_data.decode("utf-8") if isinstance(input_data, bytes | bytearray) else input_data
    except UnicodeDecodeError as err:
        raise InputError(f"the body is not valid UTF-8 ({err.reason} at byte {err.start}).") from None


def _shown(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks; the message says what the body did wrong."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"the key {_shown(key)} appears twice in one object; send each key once")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def _integer(literal: str) -> int:
    try:
        return int(literal)
    except ValueError:  # longer than sys.get_int_max_str_digits() (4300 by default)
        raise _Refused(f"an integer of {len(literal.lstrip('-'))} digits is too long") from None


class _BadJson(InputError):
    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.reason, self.where = reason, where  # where: " at line L column C", or ""


def _loads(text: str) -> Any:
    """Strict JSON (RFC 8259), or _BadJson saying why not, whatever the bytes were.

    Python's parser refuses in more ways than JSONDecodeError (over-long integers raise a plain
    ValueError, deep nesting RecursionError), accepts NaN and Infinity, and keeps the last of
    duplicate keys: all of these are refused here, as the front door refuses them."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_integer)
    except json.JSONDecodeError as err:
        raise _BadJson(err.msg, f" at line {err.lineno} column {err.colno}") from None
    except _Refused as err:
        raise _BadJson(str(err)) from None
    except RecursionError:
        raise _BadJson("nested too deeply") from None
    except ValueError as err:  # any other refusal of the parser: still the body's fault
        raise _BadJson(str(err)[:120]) from None


def _check_text(text: Any) -> str | None:
    """None when the text is acceptable, else what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        return "a text must be a non-empty string"
    if len(text) > MAX_CHARS:
        return f"a text is {len(text)} characters; at most {MAX_CHARS} are allowed (split it or shorten it)"
    if not text.isascii():
        try:  # JSON can escape a lone UTF-16 surrogate ("\ud800"); the tokenizer cannot take it
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"a text holds an unpaired surrogate at character {err.start}; send valid Unicode"
    return None


def input_fn(input_data: str | bytes | bytearray, content_type: str) -> Request:
    media = _media_type(content_type)
    if media in JSONL:
        return _jsonl_request(input_data)
    if media != JSON:
        raise InputError(f"content type {content_type!r} is not supported; send {JSON} or {JSONL[0]}.")
    try:
        body = _loads(_decode(input_data))
    except _BadJson as err:
        raise InputError(f"the body is not valid JSON: {err.reason}{err.where}.") from None
    if not isinstance(body, dict) or "inputs" not in body:
        raise InputError('the body must be a JSON object {"inputs": str | [str], "parameters": {...}}.')
    unknown_keys = set(body) - {"inputs", "parameters"}
    if unknown_keys:
        raise InputError(f"unknown keys {_shown(sorted(unknown_keys), 200)}; allowed: ['inputs', 'parameters'].")
    inputs = body["inputs"]
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts:
        raise InputError("inputs must be a non-empty string or a non-empty list of strings.")
    if len(texts) > MAX_TEXTS:
        raise InputError(f"{len(texts)} texts in one request; at most {MAX_TEXTS} are allowed.")
    for index, text in enumerate(texts):
        problem = _check_text(text)
        if problem:
            where = "inputs" if isinstance(inputs, str) else f"inputs[{index}]"
            raise InputError(f"{where}: {problem}.")
    return Request(texts=texts, top_k=_top_k(body.get("parameters")), single=isinstance(inputs, str))


def _top_k(parameters: Any) -> int:
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise InputError("parameters must be a JSON object.")
    unknown = set(parameters) - ALLOWED_PARAMETERS
    if unknown:
        raise InputError(f"unknown parameters {_shown(sorted(unknown), 200)}; allowed: {sorted(ALLOWED_PARAMETERS)}.")
    top_k = parameters.get("top_k", 1)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InputError(f"parameters.top_k must be a positive integer, got {_shown(top_k)}.")
    return top_k


def bad_lines_mode() -> str:
    """SAGEBERT_BAD_LINES: `mark` (default) answers a bad line with an error record; `fail` refuses the
    whole request, so a batch transform job stops at the first bad line."""
    mode = (os.environ.get("SAGEBERT_BAD_LINES") or "mark").strip().lower()
    if mode not in ("mark", "fail"):
        raise ValueError(f"SAGEBERT_BAD_LINES={mode!r}; allowed: mark, fail.")
    return mode


def _jsonl_request(data: str | bytes | bytearray) -> Request:
    # Lines end at "\n" only, as batch transform's SplitType Line splits them: str.splitlines()
    # would also split at characters JSON strings may hold raw (U+2028, \x1c ...). Each line is
    # decoded on its own, so one line of bad UTF-8 is one bad line, not a failed request.
    newline, cr = ("\n", "\r") if isinstance(data, str) else (b"\n", b"\r")
    raw_lines = [line.removesuffix(cr) for line in data.removesuffix(newline).split(newline)] if data else []  # type: ignore[arg-type]
    if not raw_lines:
        raise InputError("the JSON Lines body is empty; send one text per line.")
    if len(raw_lines) > MAX_LINES:
        raise InputError(f"{len(raw_lines)} lines in one request; at most {MAX_LINES} are allowed.")
    texts: list[str] = []
    errors: list[str | None] = []
    for number, line in enumerate(raw_lines, start=1):
        try:
            value = _loads(_decode(line))
        except _BadJson as err:
            errors.append(f"line {number}: not valid JSON ({err.reason})")
            continue
        except InputError as err:  # not UTF-8
            errors.append(f"line {number}: {str(err).removeprefix('the body is ').rstrip('.')}")
            continue
        candidate = value.get("inputs") if isinstance(value, dict) else value
        problem = _check_text(candidate)
        if isinstance(value, dict) and set(value) - {"inputs"}:
            unknown = _shown(sorted(set(value) - {"inputs"}), 200)
            problem = f'unknown keys {unknown}; a line is a JSON string or {{"inputs": str}}'
        if problem:
            errors.append(f"line {number}: {problem}")
            continue
        errors.append(None)
        texts.append(candidate)
    bad = [problem for problem in errors if problem]
    if bad and bad_lines_mode() == "fail":
        more = f" (and {len(bad) - 1} more bad lines)" if len(bad) > 1 else ""
        raise InputError(f"{bad[0]}{more}; SAGEBERT_BAD_LINES=fail refuses a request with a bad line.")
    return Request(texts=texts, lines=errors)


def predict_fn(data: Request, model: Any) -> list[Any]:
    answers = _answers(data, model) if data.texts else []
    if not data.jsonl:
        return answers
    # JSON Lines: every input line gets its answer line, bad lines an error record, order kept.
    good = iter(answers)
    return [{"error": problem} if problem else next(good) for problem in data.lines]


def _answers(data: Request, model: Any) -> list[Any]:
    if model.labels is None:
        return [list(map(float, row)) for row in model.embeddings(data.texts)]
    logits = model.logits(data.texts)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = exp / exp.sum(axis=-1, keepdims=True)
    k = min(data.top_k, len(model.labels))
    answers: list[Any] = []
    for row in probabilities:
        best = np.argsort(-row, kind="stable")[:k]
        ranked = [{"label": model.labels[i], "score": float(row[i])} for i in best]
        answers.append(ranked[0] if data.top_k == 1 else ranked)
    return answers


def output_fn(prediction: list[Any], accept: str) -> str:
    media = _media_type(accept)
    if media in JSONL:
        # No newline after the last answer: batch transform's AssembleWith Line adds one after each
        # response, so one more here would leave an empty line between mini-batches.
        return "\n".join(json.dumps(item) for item in prediction)
    if media not in ("", JSON, "*/*"):
        raise InputError(f"accept {accept!r} is not supported; ask for {JSON} or {JSONL[0]}.")
    return json.dumps(prediction)
