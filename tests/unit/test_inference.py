"""The handler's four toolkit functions, called directly on real weights."""

from __future__ import annotations

import json
import math
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import inference

from sagebert.archive import bundled_model_dir

JSON = "application/json"


@pytest.fixture(scope="module")
def served_model(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> inference.LoadedModel:
    """The default archive, unpacked the way SageMaker does, loaded by model_fn."""
    model_dir = tmp_path_factory.mktemp("model")
    with tarfile.open(default_artifact) as tar:
        tar.extractall(model_dir, filter="data")
    return inference.model_fn(str(model_dir))


def invoke(model: inference.LoadedModel, body: object) -> object:
    data = inference.input_fn(json.dumps(body).encode(), JSON)
    return json.loads(inference.output_fn(inference.predict_fn(data, model), JSON))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def encoder() -> inference.LoadedModel:
    """The bundled all-MiniLM-L6-v2 folder: a plain encoder, served as embeddings."""
    return inference.model_fn(str(bundled_model_dir()))


@pytest.mark.weights
def test_default_archive_is_the_demo_classifier(served_model: inference.LoadedModel) -> None:
    answers = invoke(
        served_model,
        {
            "inputs": [
                "Absolutely love it, works perfectly and arrived early.",
                "Broke after two days and support never answered. Avoid.",
                "Not bad at all, I would buy it again.",
            ]
        },
    )
    assert [a["label"] for a in answers] == ["positive", "negative", "positive"]  # type: ignore[index]
    assert all(0.5 < a["score"] <= 1.0 for a in answers)  # type: ignore[index]
    ranked = invoke(served_model, {"inputs": "Great film.", "parameters": {"top_k": 2}})
    assert [x["label"] for x in ranked[0]] == ["positive", "negative"]  # type: ignore[index]


@pytest.mark.weights
def test_plain_encoder_gives_meaningful_embeddings(encoder: inference.LoadedModel) -> None:
    vectors = invoke(
        encoder,
        {
            "inputs": [
                "The delivery was fast and the product works well.",
                "Shipping was quick and the item does its job.",
                "The tax office changed its opening hours.",
            ]
        },
    )
    assert isinstance(vectors, list) and len(vectors) == 3 and len(vectors[0]) == 384
    assert all(math.isclose(cosine(v, v), 1.0, rel_tol=1e-4) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


@pytest.mark.weights
def test_a_text_in_a_batch_matches_the_text_alone(served_model: inference.LoadedModel) -> None:
    # Padding to the longest text of the request must not change a shorter text's answer.
    alone = invoke(served_model, {"inputs": "Great app.", "parameters": {"top_k": 2}})
    batch = invoke(
        served_model,
        {"inputs": ["Great app.", "A much longer review that needs padding " * 5], "parameters": {"top_k": 2}},
    )
    assert math.isclose(alone[0][0]["score"], batch[0][0]["score"], abs_tol=1e-5)  # type: ignore[index]


@pytest.mark.weights
def test_long_input_is_truncated_not_a_crash(served_model: inference.LoadedModel) -> None:
    answers = invoke(served_model, {"inputs": "word " * 1500})
    assert len(answers) == 1  # type: ignore[arg-type]


def test_classifier_answers_labels_and_top_k(tiny_classifier: Path) -> None:
    model = inference.model_fn(str(tiny_classifier))
    one = invoke(model, {"inputs": "good film"})
    assert one[0]["label"] in {"negative", "positive"} and 0.5 <= one[0]["score"] <= 1.0  # type: ignore[index]
    both = invoke(model, {"inputs": ["good film", "bad app"], "parameters": {"top_k": 2}})
    assert [len(row) for row in both] == [2, 2]  # type: ignore[union-attr]
    assert math.isclose(sum(x["score"] for x in both[0]), 1.0, rel_tol=1e-5)  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"inputs": "x"}', "text/csv", "content type 'text/csv'"),
        (b"{not json", JSON, "not valid UTF-8 JSON"),
        (b'{"inputs": "\xff\xfe"}', JSON, "not valid UTF-8 JSON"),
        (b'{"text": "x"}', JSON, '{"inputs"'),
        (b'{"inputs": ""}', JSON, "non-empty"),
        (b'{"inputs": [1, 2]}', JSON, "non-empty strings"),
        (json.dumps({"inputs": ["a"] * 65}).encode(), JSON, "at most 64"),
        (json.dumps({"inputs": "a" * 10_001}).encode(), JSON, "10000 characters"),
        (b'{"inputs": "x", "parameters": {"temperature": 1}}', JSON, "unknown parameters ['temperature']"),
        (b'{"inputs": "x", "parameters": {"top_k": 0}}', JSON, "top_k must be a positive integer"),
    ],
)
def test_bad_requests_say_what_is_allowed(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(inference.InputError) as raised:
        inference.input_fn(body, content_type)
    assert message in str(raised.value)
