"""`make int8-study` end to end on a tiny random BERT: every recipe builds, runs and is scored (the figures
themselves are the machine's; what is asserted is that each row is complete and consistent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagebert import cpu
from sagebert.bench import int8_study


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
