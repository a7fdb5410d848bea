"""The handler's toolkit functions, called directly on the packaged archive (real weights)."""

from __future__ import annotations

import json
import math
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import inference

from sagebert.release import quantize
from sagebert.release.archive import bundled_model_dir

JSON = "application/json"
JSONL = "application/jsonlines"
DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment"


@pytest.fixture(scope="module")
def model_dir(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default archive, unpacked the way SageMaker does (to /opt/ml/model)."""
    folder = tmp_path_factory.mktemp("model")
    with tarfile.open(default_artifact) as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.fixture(scope="module")
def manifest(model_dir: Path) -> dict[str, Any]:
    found = inference.read_manifest(model_dir)
    assert found is not None, "make package writes sagebert.json into every archive"
    return found


@pytest.fixture(scope="module")
def served(model_dir: Path) -> Any:
    return inference.model_fn(str(model_dir))


def invoke(model: Any, body: object, content_type: str = JSON, accept: str = JSON) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return inference.output_fn(inference.predict_fn(inference.input_fn(raw, content_type), model), accept)


def held_out() -> list[str]:
    return [
        json.loads(line)["text"]
        for name in ("validation", "test")
        for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def probabilities(model: Any, texts: list[str]) -> Any:
    import numpy as np

    answers = [
        answer
        for start in range(0, len(texts), inference.MAX_TEXTS)
        for answer in json.loads(
            invoke(model, {"inputs": texts[start : start + inference.MAX_TEXTS], "parameters": {"top_k": 2}})
        )
    ]
    return np.array(
        [[next(a["score"] for a in answer if a["label"] == label) for label in model.labels] for answer in answers]
    )


CLEAR = [
    "Absolutely love it, works perfectly and arrived early.",
    "Broke after two days and support never answered. Avoid.",
    "Not bad at all, I would buy it again.",
]


@pytest.mark.weights
def test_default_runtime_is_the_packaged_one_and_classifies(served: Any, manifest: dict[str, Any]) -> None:
    # The archive names its runtime (int8 where it met the tolerance at build, else fp32 ONNX); the worker
    # serves it, or fp32 when int8 fails its own start-up check on this CPU - and then says why.
    assert served.runtime in (manifest["served_runtime"], "onnx-fp32")
    if served.runtime == "onnx-int8":
        assert served.self_check is not None and served.self_check.passed
    answers = json.loads(invoke(served, {"inputs": CLEAR}))
    assert [a["label"] for a in answers] == ["positive", "negative", "positive"]
    assert all(0.5 < a["score"] <= 1.0 for a in answers)
    one = json.loads(invoke(served, {"inputs": "Great film.", "parameters": {"top_k": 2}}))
    assert [x["label"] for x in one[0]] == ["positive", "negative"]
    assert math.isclose(sum(x["score"] for x in one[0]), 1.0, rel_tol=1e-5)


@pytest.fixture(scope="module")
def with_weights(model_dir: Path, default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive plus the fine-tuned model's safetensors (the lean archive leaves them out)."""
    folder = tmp_path_factory.mktemp("with-weights")
    for item in model_dir.iterdir():
        (folder / item.name).symlink_to(item)
    weights = default_artifact.parent / "demo-classifier" / "model.safetensors"
    (folder / "model.safetensors").symlink_to(weights)
    return folder


@pytest.mark.weights
@pytest.mark.parametrize("runtime", ["onnx-fp32", "torch"])
def test_fallback_runtimes_stay_within_the_archive_tolerance(
    runtime: str, with_weights: Path, served: Any, manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the served runtime and a fallback on the same held-out texts, their answers differ at most as much
    # as the archive's recorded tolerance allows (fp32 ONNX and PyTorch fp32 are the reference, so the
    # tolerance bounds what int8 may move; between fp32 runtimes nothing moves).
    import numpy as np

    monkeypatch.setenv("SAGEBERT_RUNTIME", runtime)
    fallback = inference.model_fn(str(with_weights))
    assert fallback.runtime.startswith(runtime.split("-")[0])
    texts = held_out()
    ours, theirs = probabilities(served, texts), probabilities(fallback, texts)
    gaps = np.abs(ours - theirs).max(axis=-1)
    tolerance = manifest["tolerance"]
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() >= tolerance["min_agreement"]
    assert np.quantile(gaps, 0.99) <= tolerance["max_p99_gap"]
    if served.runtime == "onnx-fp32":
        assert gaps.max() < 1e-3


@pytest.mark.weights
def test_the_archive_records_what_it_verified(manifest: dict[str, Any], model_dir: Path) -> None:
    assert manifest["served_runtime"] in ("onnx-int8", "onnx-fp32")
    assert (model_dir / "model.int8.onnx").is_file() == (manifest["served_runtime"] == "onnx-int8")
    assert manifest["int8"]["meets_tolerance"] == (manifest["served_runtime"] == "onnx-int8")
    assert manifest["built_on"]["model"] and "isa" in manifest["built_on"]
    check = manifest["check_set"]
    assert 8 <= len(check["texts"]) <= manifest["tolerance"]["check_size"]
    assert all(math.isclose(sum(row), 1.0, abs_tol=1e-5) for row in check["probabilities"])
    assert set(check["texts"]) <= set(held_out()), "the check set comes from held-out texts"


def sabotaged_copy(model_dir: Path, tmp_path: Path, how: str) -> Path:
    """The archive with its int8 graph replaced and the manifest asking for int8: `good` is the fp32 graph
    itself (int8 that changes nothing), `flipped` negates the classifier (every label changes)."""
    import onnx
    from onnx import numpy_helper

    folder = tmp_path / how
    folder.mkdir()
    for item in model_dir.iterdir():
        if item.name not in ("model.int8.onnx", "sagebert.json"):
            (folder / item.name).symlink_to(item)
    graph = onnx.load(str(model_dir / "model.fp32.onnx"))
    if how == "flipped":
        gemm = next(n for n in graph.graph.node if "classifier" in n.name)
        for initializer in graph.graph.initializer:
            if initializer.name in gemm.input[1:]:
                initializer.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(initializer), initializer.name))
    onnx.save(graph, str(folder / "model.int8.onnx"))
    manifest = json.loads((model_dir / "sagebert.json").read_text())
    (folder / "sagebert.json").write_text(json.dumps(manifest | {"served_runtime": "onnx-int8"}))
    return folder


@pytest.mark.weights
def test_an_int8_graph_that_fails_its_start_up_check_is_not_served(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an archive whose int8 graph answers differently from fp32 on this CPU (here: sabotaged), when a
    # worker starts, then it serves the fp32 graph and its one start-up line says why, with the figures.
    model = inference.model_fn(str(sabotaged_copy(model_dir, tmp_path, "flipped")))
    assert model.runtime == "onnx-fp32"
    assert model.self_check is not None and not model.self_check.passed
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "serving onnx-fp32" in line and "int8 self-check FAILED on this CPU" in line
    assert f"0/{model.self_check.examples} labels agree" in line and "flags=" in line and "cpu=" in line
    assert json.loads(invoke(model, {"inputs": CLEAR}))[1]["label"] == "negative"


@pytest.mark.weights
def test_an_int8_graph_that_passes_its_start_up_check_is_served(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = inference.model_fn(str(sabotaged_copy(model_dir, tmp_path, "good")))
    assert model.runtime == "onnx-int8" and model.self_check is not None and model.self_check.passed
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "serving onnx-int8 (int8 self-check passed" in line and "largest probability gap 0.0000" in line


@pytest.mark.weights
def test_batching_does_not_change_an_answer(served: Any, manifest: dict[str, Any]) -> None:
    # A text served alone (no padding) and inside a length-sorted, padded micro-batch score the same. With
    # per-token int8 (batch-independent) and fp32 the batch pads texts together; every token keeps its own
    # scale, so only float summation order differs. A per-tensor int8 recipe serves every text alone.
    independent = served.runtime == "onnx-fp32" or manifest["int8"]["batch_independent"]
    assert served.micro_batch == (inference.MICRO_BATCH if independent else 1)
    alone = json.loads(invoke(served, {"inputs": "Great app.", "parameters": {"top_k": 2}}))
    longer = ["A much longer review that needs a lot of padding " * k for k in range(1, 20)]
    batch = json.loads(invoke(served, {"inputs": [*longer[:9], "Great app.", *longer[9:]], "parameters": {"top_k": 2}}))
    assert alone[0][0]["label"] == batch[9][0]["label"]
    assert math.isclose(alone[0][0]["score"], batch[9][0]["score"], abs_tol=1e-4)


@pytest.mark.weights
def test_long_input_is_truncated_not_a_crash(served: Any) -> None:
    assert len(json.loads(invoke(served, {"inputs": "word " * 1900}))) == 1


@pytest.mark.weights
def test_json_lines_keep_order_and_mark_bad_lines(served: Any) -> None:
    body = "\n".join(
        [
            json.dumps(CLEAR[0]),
            "{broken",
            json.dumps({"inputs": CLEAR[1]}),
            json.dumps(""),
            json.dumps({"inputs": CLEAR[2], "extra": 1}),
            json.dumps(CLEAR[2]),
        ]
    ).encode()
    lines = invoke(served, body, JSONL, JSONL).splitlines()
    assert len(lines) == 6
    records = [json.loads(line) for line in lines]
    assert records[0]["label"] == "positive" and records[2]["label"] == "negative"
    assert records[5]["label"] == "positive"
    assert "line 2: not valid JSON" in records[1]["error"]
    assert "line 4: a text must be a non-empty string" in records[3]["error"]
    assert "unknown keys ['extra']" in records[4]["error"]


@pytest.mark.weights
def test_plain_encoder_gives_meaningful_embeddings() -> None:
    encoder = inference.model_fn(str(bundled_model_dir()))
    vectors = json.loads(
        invoke(
            encoder,
            {
                "inputs": [
                    "The delivery was fast and the product works well.",
                    "Shipping was quick and the item does its job.",
                    "The tax office changed its opening hours.",
                ]
            },
        )
    )
    dot = [sum(x * y for x, y in zip(vectors[0], v, strict=True)) for v in vectors]
    assert len(vectors[0]) == 384 and math.isclose(dot[0], 1.0, rel_tol=1e-4)
    assert dot[1] > dot[2] + 0.3


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"inputs": "x"}', "text/csv", "content type 'text/csv' is not supported; send application/json"),
        (b"{not json", JSON, "not valid JSON"),
        (b'{"inputs": "\xff\xfe"}', JSON, "not valid UTF-8"),
        (b'{"text": "x"}', JSON, '{"inputs"'),
        (b'{"inputs": "x", "options": {}}', JSON, "unknown keys ['options']"),
        (b'{"inputs": ""}', JSON, "inputs: a text must be a non-empty string"),
        (b'{"inputs": []}', JSON, "non-empty list"),
        (b'{"inputs": ["ok", 2]}', JSON, "inputs[1]: a text must be a non-empty string"),
        (b'{"inputs": "bad \\ud800 text"}', JSON, "inputs: a text holds an unpaired surrogate at character 4"),
        (json.dumps({"inputs": ["a"] * 65}).encode(), JSON, "65 texts in one request; at most 64"),
        (json.dumps({"inputs": "a" * 10_001}).encode(), JSON, "10001 characters; at most 10000"),
        (b'{"inputs": "x", "parameters": {"temperature": 1}}', JSON, "unknown parameters ['temperature']"),
        (b'{"inputs": "x", "parameters": {"top_k": 0}}', JSON, "top_k must be a positive integer"),
        (b'{"inputs": "x", "parameters": [1]}', JSON, "parameters must be a JSON object"),
        (b"", JSONL, "JSON Lines body is empty"),
        (("\n".join(['"x"'] * 100_001)).encode(), JSONL, "100001 lines in one request; at most 100000"),
    ],
)
def test_bad_requests_say_what_is_allowed(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(inference.InputError) as raised:
        inference.input_fn(body, content_type)
    assert message in str(raised.value)


@pytest.mark.weights
def test_the_worker_keeps_serving_after_bad_requests(served: Any) -> None:
    for bad in (b"{not json", b'{"inputs": 5}', b'{"inputs": "x", "parameters": {"top_k": -1}}'):
        with pytest.raises(inference.InputError):
            invoke(served, bad)
    assert json.loads(invoke(served, {"inputs": CLEAR[0]}))[0]["label"] == "positive"


def test_unsupported_accept_and_runtime(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(inference.InputError, match="accept 'text/html' is not supported"):
        inference.output_fn([], "text/html")
    monkeypatch.setenv("SAGEBERT_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="allowed: auto, onnx-int8, onnx-fp32, torch, neuron"):
        inference.choose_runtime(model_dir)


def test_neuron_runtime_outside_the_neuron_image_says_where_it_runs(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SAGEBERT_RUNTIME=neuron (what compute: inferentia sets) where optimum-neuron is missing,
    # when the worker loads the model, then it fails with a message naming the image it needs.
    monkeypatch.setenv("SAGEBERT_RUNTIME", "neuron")
    assert inference.choose_runtime(model_dir) == "neuron"
    with pytest.raises(ValueError, match="Hugging Face Neuron \\(Inferentia2\\) image"):
        inference.model_fn(str(model_dir))


def test_threads_never_oversubscribe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGEBERT_THREADS", raising=False)
    monkeypatch.setattr(inference.os, "sched_getaffinity", lambda _pid: set(range(8)))
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "2")
    assert inference.thread_count() == 4
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "16")
    assert inference.thread_count() == 1
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_WORKERS")
    assert inference.thread_count() == 1  # the model server's default: one worker per core
    monkeypatch.setenv("SAGEBERT_THREADS", "3")
    assert inference.thread_count() == 3


def test_onnx_path_imports_no_torch(model_dir: Path) -> None:
    # Start-up is part of the product: the default path must not pull torch or transformers in.
    import subprocess

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import inference; m = inference.model_fn(sys.argv[2]); "
        "print(m.runtime, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(inference.__file__).parent), str(model_dir)],
        capture_output=True,
        text=True,
        check=True,
        env={},
    ).stdout
    assert out.split()[1:] == ["False", "False"] and out.split()[0].startswith("onnx-")


@pytest.mark.weights
def test_gpu_fp16_agrees_with_cpu_fp32(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs wherever a CUDA GPU is present (ml.g4dn and newer); skips cleanly elsewhere.
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: the fp16 path runs only on one")
    monkeypatch.setenv("SAGEBERT_RUNTIME", "auto")
    gpu = inference.model_fn(str(model_dir))
    assert gpu.runtime == "torch-fp16-cuda"
    texts = [
        json.loads(line)["text"]
        for line in (Path(__file__).resolve().parents[2] / "data" / "sentiment" / "test.jsonl").read_text().splitlines()
    ]
    fp16 = json.loads(invoke(gpu, {"inputs": texts[:64]}))
    # The reference: the same weights in PyTorch fp32 on the CPU, one text at a time (no padding).
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reference = AutoModelForSequenceClassification.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    labels = reference.config.id2label
    fp32 = []
    with torch.inference_mode():
        for text in texts[:64]:
            probabilities = reference(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
            best = int(probabilities.argmax())
            fp32.append({"label": labels[best], "score": float(probabilities[best])})
    assert sum(a["label"] == b["label"] for a, b in zip(fp16, fp32, strict=True)) >= 63
    assert max(abs(a["score"] - b["score"]) for a, b in zip(fp16, fp32, strict=True) if a["label"] == b["label"]) < 0.01


def test_json_lines_split_at_newlines_only_and_answer_without_a_trailing_newline() -> None:
    # Given a line whose JSON string holds a raw U+2028 and a CRLF line ending
    body = bytearray('"first\u2028still the first"\r\n{"inputs": "second"}\n'.encode())  # as the server passes it
    request = inference.input_fn(body, JSONL)
    assert request.texts == ["first\u2028still the first", "second"]
    # Then two answers, and no newline after the last (AssembleWith Line adds one per response)
    assert inference.output_fn([{"a": 1}, {"b": 2}], JSONL) == '{"a": 1}\n{"b": 2}'


def test_bad_lines_fail_mode_refuses_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b'"good"\n{oops\n""\n'
    assert inference.input_fn(body, JSONL).lines == [
        None,
        "line 2: not valid JSON (Expecting property name enclosed in double quotes)",
        "line 3: a text must be a non-empty string",
    ]
    monkeypatch.setenv("SAGEBERT_BAD_LINES", "fail")
    with pytest.raises(
        inference.InputError,
        match=r"line 2: not valid JSON .* \(and 1 more bad lines\); "
        "SAGEBERT_BAD_LINES=fail",
    ):
        inference.input_fn(body, JSONL)
    monkeypatch.setenv("SAGEBERT_BAD_LINES", "skip")
    with pytest.raises(ValueError, match="SAGEBERT_BAD_LINES='skip'; allowed: mark, fail"):
        inference.input_fn(body, JSONL)


@pytest.fixture(scope="module")
def with_int8(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive with the default recipe's int8 graph: the archive itself, or, where int8 missed the
    tolerance on the CPU that packaged it (so only fp32 shipped), the graph built here from its fp32 one."""
    if (model_dir / inference.INT8_GRAPH).is_file():
        return model_dir
    from tokenizers import Tokenizer

    folder = tmp_path_factory.mktemp("with-int8")
    for item in model_dir.iterdir():
        (folder / item.name).symlink_to(item)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    quantize.build(
        model_dir / inference.FP32_GRAPH, folder / inference.INT8_GRAPH, quantize.DEFAULT_RECIPE, [], tokenizer
    )
    return folder


@pytest.mark.weights
@pytest.mark.parametrize("runtime", ["onnx-int8", "onnx-fp32"])
def test_a_texts_answer_does_not_depend_on_the_texts_beside_it(
    with_int8: Path, runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a review near the boundary, alone and inside batches of other reviews of other lengths
    monkeypatch.setenv("SAGEBERT_RUNTIME", runtime)
    model = inference.model_fn(str(with_int8))
    target = "Not once did the hairdresser ask what I wanted."
    others = [line["text"] for line in map(json.loads, (DATA / "test.jsonl").read_text().splitlines()[:60])]
    alone = json.loads(invoke(model, {"inputs": target}))[0]
    for start in range(0, 60, 15):
        batch = [*others[start : start + 15], target]
        together = json.loads(invoke(model, {"inputs": batch}))[-1]
        # Then the answer is the same (int8 dynamic quantization would move it in a shared padded batch)
        assert together["label"] == alone["label"]
        assert together["score"] == pytest.approx(alone["score"], abs=1e-5)
