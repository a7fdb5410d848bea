"""`make int8-study` end to end on a tiny random BERT: every recipe builds, runs and is scored (the figures
themselves are the machine's; what is asserted is that each row is complete and consistent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagebert import cpu
from sagebert.bench import int8_study
from sagebert.release import package, quantize


def test_every_recipe_is_built_scored_and_written(
    tiny_classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert int8_study.main(tiny_classifier, threads=1, iterations=2, calibration_size=8, out=tmp_path) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    names = [row["recipe"] for row in results["rows"]]
    assert names == ["fp32 ONNX", *(r.name for r in int8_study.RECIPES), "bf16 PyTorch autocast"]
    baseline = results["rows"][0]
    assert baseline["agreement"] == 1.0 and baseline["max_gap"] < 1e-4, "fp32 ONNX is PyTorch fp32"
    for row in results["rows"]:
        assert 0.0 <= row["agreement"] <= 1.0 and 0.0 <= row["p99_gap"] <= row["max_gap"] <= 1.0
        assert row["short_p50_ms"] > 0 and row["long_p50_ms"] > 0
    assert results["cpu"] == cpu.describe()
    table = capsys.readouterr().out
    assert f"CPU: {results['cpu']['model']}" in table and "vs fp32 ONNX" in table and "1.00x" in table


@pytest.fixture(scope="module")
def fused_graph(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT exported and fused once: every recipe below quantizes the same graph."""
    folder = tmp_path_factory.mktemp("fused")
    package.export_onnx(tiny_classifier, folder / "raw.onnx")
    package.optimize(folder / "raw.onnx", folder / "fused.onnx", tiny_classifier)
    return folder / "fused.onnx"


@pytest.mark.parametrize("recipe", list(int8_study.RECIPES), ids=lambda r: r.name)
def test_int8_weights_cannot_saturate_on_cpus_without_vnni(
    recipe: quantize.Recipe, tiny_classifier: Path, fused_graph: Path, tmp_path: Path
) -> None:
    # Given the fused fp32 graph of a BERT, quantized by a recipe
    import onnx
    from onnx import numpy_helper
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_classifier / "tokenizer.json"))
    calibration = ["a short review", "a much longer review of a film that went on and on"] * 4
    quantize.build(
        fused_graph,
        tmp_path / "int8.onnx",
        recipe,
        calibration,
        tokenizer,
        sensitivity=lambda graph, names: [(name, 0.0) for name in names],
    )
    # Then no pair of uint8 x int8 products can overflow int16 (AVX2's kernel sums pairs with saturation):
    # per-token activations take ACTIVATION_LEVELS + 1 codes at most (two roundings), dynamic ones 256, so the
    # int8 answer is the same on AVX2, AVX-512 VNNI and AMX
    model = onnx.load(str(tmp_path / "int8.onnx"))
    initializers = {t.name: t for t in model.graph.initializer}
    per_token = {n.input[1] for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"}
    weights = {name: t for name, t in initializers.items() if t.data_type == onnx.TensorProto.INT8}
    if recipe.dynamic or recipe.per_token:
        assert weights, f"{recipe.name} quantizes some products"
    if recipe.per_token:
        assert per_token and per_token <= set(weights)
        levels = 1 / float(numpy_helper.to_array(initializers["pt_inv_levels"]))
        assert levels == pytest.approx(quantize.ACTIVATION_LEVELS)
    for name, tensor in weights.items():
        largest_weight = int(abs(numpy_helper.to_array(tensor).astype(int)).max())
        largest_activation = quantize.ACTIVATION_LEVELS + 1 if name in per_token else 255
        assert 2 * largest_activation * largest_weight <= quantize.INT16_MAX, name
