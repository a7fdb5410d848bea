"""model_code/train.py: the SageMaker contract, real training, distillation, and bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import train  # model_code/train.py

from sagebert.release import quantize

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment"


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(split: str, count: int) -> list[dict[str, str]]:
    lines = (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    return [json.loads(line) for line in lines]


SMALL = [
    {"text": t, "label": lab}
    for t, lab in [
        ("good film", "positive"),
        ("bad app", "negative"),
        ("the app is good", "positive"),
        ("not good", "negative"),
        ("good good", "positive"),
        ("bad film", "negative"),
    ]
]


@pytest.fixture
def small_splits(tmp_path: Path) -> dict[str, Path]:
    return {name: write_jsonl(tmp_path / "data" / f"{name}.jsonl", SMALL) for name in ("train", "validation", "test")}


def run(base: Path, splits: dict[str, Path], model_dir: Path, *extra: str) -> dict[str, object]:
    args = train.parse_args(
        [
            "--model-name-or-path",
            str(base),
            "--train",
            str(splits["train"]),
            "--validation",
            str(splits["validation"]),
            "--test",
            str(splits["test"]),
            "--model-dir",
            str(model_dir),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            *extra,
        ]
    )
    return train.train(args)


def test_sagemaker_contract_maps_env_to_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, small_splits: dict[str, Path]
) -> None:
    # Given the SM_* variables SageMaker sets, with channels mounted as folders of one file each
    channels = {}
    for name in ("train", "validation", "test"):
        folder = tmp_path / "input" / name
        folder.mkdir(parents=True)
        shutil.copy(small_splits[name], folder / "part-0.jsonl")
        channels[name] = folder
    env = {
        "SM_MODEL_DIR": tmp_path / "model",
        "SM_OUTPUT_DATA_DIR": tmp_path / "output",
        "SM_CHANNEL_TRAIN": channels["train"],
        "SM_CHANNEL_VALIDATION": channels["validation"],
        "SM_CHANNEL_TEST": channels["test"],
        "SM_CHANNEL_MODEL": tiny_classifier,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("SM_NUM_GPUS", "0")
    # When the script runs with only hyperparameters as arguments
    assert train.main(["--epochs", "1", "--batch-size", "4", "--learning-rate", "1e-3"]) == 0
    # Then the model folder and the metrics land where SageMaker collects them
    model_dir, output = tmp_path / "model", tmp_path / "output"
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= {p.name for p in model_dir.iterdir()}
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics) >= {"validation", "test", "history", "hyperparameters"}
    assert metrics["test"]["confusion_matrix"]["labels"] == ["negative", "positive"]
    assert sum(map(sum, metrics["test"]["confusion_matrix"]["matrix"])) == len(SMALL)
    assert metrics["hyperparameters"]["learning_rate"] == 1e-3


def test_test_channel_is_optional_on_sagemaker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv("SM_CHANNEL_TEST", raising=False)
    assert train.parse_args([]).test is None


@pytest.mark.weights
def test_real_training_beats_chance_on_held_out_rows(tmp_path: Path) -> None:
    # Given the bundled MiniLM weights and a small slice of the shipped data
    splits = {
        "train": write_jsonl(tmp_path / "train.jsonl", rows("train", 240)),
        "validation": write_jsonl(tmp_path / "validation.jsonl", rows("validation", 40)),
        "test": write_jsonl(tmp_path / "test.jsonl", rows("test", 100)),
    }
    base = train._bundled_model()
    assert base is not None
    metrics = run(
        base,
        splits,
        tmp_path / "model",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--learning-rate",
        "1e-4",
        "--max-length",
        "64",
    )
    # Then the held-out test rows are classified well above chance (0.5)
    assert metrics["test"]["accuracy"] >= 0.75, metrics["test"]  # type: ignore[index]


def test_distillation_loss() -> None:
    labels = torch.tensor([0, 1])
    student = torch.tensor([[2.0, -1.0], [0.5, 0.2]], requires_grad=True)
    hard = torch.nn.functional.cross_entropy(student, labels)
    # weight 0 or no teacher: plain cross-entropy
    assert torch.isclose(train.distillation_loss(student, None, labels, 2.0, 0.5), hard)
    assert torch.isclose(train.distillation_loss(student, student.detach() * 3, labels, 2.0, 0.0), hard)
    # a teacher that agrees with the student adds nothing beyond the weighted hard term
    same = train.distillation_loss(student, student.detach(), labels, 2.0, 0.25)
    assert torch.isclose(same, 0.75 * hard)
    # the soft term pulls the student towards the teacher: its gradient step lowers the KL term
    teacher = torch.tensor([[-1.0, 3.0], [3.0, -1.0]])
    loss = train.distillation_loss(student, teacher, labels, 2.0, 1.0)
    loss.backward()
    assert student.grad is not None
    stepped = (student - 0.1 * student.grad).detach()
    assert train.distillation_loss(stepped, teacher, labels, 2.0, 1.0) < loss


def test_distillation_run_with_a_shallower_student(
    tiny_classifier: Path, small_splits: dict[str, Path], tmp_path: Path
) -> None:
    metrics = run(
        tiny_classifier,
        small_splits,
        tmp_path / "student",
        "--teacher",
        str(tiny_classifier),
        "--temperature",
        "3",
        "--distill-weight",
        "0.7",
        "--student-layers",
        "1",
    )
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert metrics["hyperparameters"]["teacher"] == str(tiny_classifier)  # type: ignore[index]


def bad_run(base: Path, splits: dict[str, Path], model_dir: Path, match: str, *extra: str) -> None:
    with pytest.raises(train.TrainingInputError, match=match):
        run(base, splits, model_dir, *extra)
    leftovers = [p for p in model_dir.parent.iterdir() if p.name.startswith(f".{model_dir.name}-")]
    assert leftovers == [], "nothing half-written"


def test_bad_input_is_refused_clearly(tiny_classifier: Path, small_splits: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out" / "model"
    out.parent.mkdir()
    csv_no_label = tmp_path / "no_label.csv"
    csv_no_label.write_text("text,stars\nfine,5\n", encoding="utf-8")
    bad_run(tiny_classifier, {**small_splits, "train": csv_no_label}, out, r"missing column\(s\) \['label'\]")
    jsonl_no_text = write_jsonl(tmp_path / "no_text.jsonl", [{"review": "x", "label": "positive"}])
    bad_run(tiny_classifier, {**small_splits, "train": jsonl_no_text}, out, r"no_text.jsonl:1: needs keys")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    bad_run(tiny_classifier, {**small_splits, "validation": empty}, out, r"empty.jsonl: no rows")
    one_class = write_jsonl(tmp_path / "one.jsonl", [r for r in SMALL if r["label"] == "positive"])
    bad_run(tiny_classifier, {**small_splits, "train": one_class}, out, r"single class")
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [*SMALL, {"text": "meh", "label": "neutral"}])
    bad_run(tiny_classifier, {**small_splits, "test": unknown}, out, r"test: unknown label\(s\) \['neutral'\]")
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_classifier, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    bad_run(pickled, small_splits, out, r"no model.safetensors")
    assert not out.exists()


def test_an_existing_output_folder_is_kept(
    tiny_classifier: Path, small_splits: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work", encoding="utf-8")
    bad_run(tiny_classifier, small_splits, out, r"exists and is not empty; pass --overwrite")
    assert (out / "keep.txt").read_text() == "earlier work"
    run(tiny_classifier, small_splits, out, "--overwrite")
    assert (out / "model.safetensors").is_file() and not (out / "keep.txt").exists()


def test_csv_input(tiny_classifier: Path, tmp_path: Path, small_splits: dict[str, Path]) -> None:
    csv_file = tmp_path / "train.csv"
    csv_file.write_text("text,label\n" + "".join(f'"{r["text"]}",{r["label"]}\n' for r in SMALL), encoding="utf-8")
    metrics = run(tiny_classifier, {**small_splits, "train": csv_file}, tmp_path / "m")
    assert metrics["train_examples"] == len(SMALL)


def test_student_keeps_evenly_spaced_layers(tmp_path: Path) -> None:
    # Given a 3-layer base model, a 2-layer student starts from base layers 0 and 2 (DistilBERT's init).
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    base = BertModel(
        BertConfig(
            vocab_size=20,
            hidden_size=8,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=32,
        )
    )
    base.save_pretrained(tmp_path, safe_serialization=True)
    student = train.load_student(tmp_path, ["negative", "positive"], layers=2)
    query = "attention.self.query.weight"
    student_layers = student.bert.encoder.layer
    assert torch.equal(student_layers[0].get_parameter(query), base.encoder.layer[0].get_parameter(query))
    assert torch.equal(student_layers[1].get_parameter(query), base.encoder.layer[2].get_parameter(query))
    with pytest.raises(train.TrainingInputError, match="has 3 layers"):
        train.load_student(tmp_path, ["negative", "positive"], layers=4)


def test_int8_simulation_matches_the_faithful_recipe_arithmetic() -> None:
    import torch

    # Given one token with a large activation and others small, per-token uint8 keeps the small tokens on
    # their own fine grid (error well under one step of a shared range), and zero stays exactly zero.
    x = torch.tensor([[[13.6, -0.17, 2.0], [0.5, -0.1, 0.25]]])
    q = train._fake_uint8_per_token(x)
    assert torch.allclose(q[0, 1], x[0, 1], atol=0.6 / train.INT8_ACTIVATION_LEVELS)
    assert torch.equal(train._fake_uint8_per_token(torch.zeros(1, 2, 3)), torch.zeros(1, 2, 3))
    w = torch.tensor([[1.0, -0.5, 0.25], [0.01, 0.02, -0.04]])
    wq = train._fake_int8_per_channel(w)
    assert torch.allclose(wq, w, atol=1.0 / train.INT8_WEIGHT_LEVELS / 2 + 1e-7) and wq[1].abs().max() == pytest.approx(
        0.04
    )
    # On the archive's grid (the training container cannot import sagebert, so train.py keeps a copy)
    assert (train.INT8_ACTIVATION_LEVELS, train.INT8_WEIGHT_LEVELS) == (
        quantize.ACTIVATION_LEVELS,
        quantize.WEIGHT_LEVELS,
    )
    # Straight-through: the gradient passes the rounding unchanged
    x.requires_grad_(True)
    train._fake_uint8_per_token(x).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))


def test_int8_aware_epochs_run_after_the_best_epoch(
    tiny_classifier: Path, small_splits: dict[str, Path], tmp_path: Path
) -> None:
    metrics = run(tiny_classifier, small_splits, tmp_path / "model", "--int8-aware-epochs", "1")
    history = metrics["history"]
    assert isinstance(history, list) and history[-1]["int8_aware_epoch"] == 1
    assert history[-1]["train_loss"] > 0
    # The simulation leaves nothing behind: the saved model is a plain Hugging Face folder.
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert all(type(m).forward is m.forward.__func__ for m in model.modules() if hasattr(m.forward, "__func__"))
