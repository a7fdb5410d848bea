"""The benchmark's arithmetic on fixed inputs (the timings themselves are never asserted)."""

from __future__ import annotations

import math

from sagebert import bench

MINILM = {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536}


def result(name: str, scale: float) -> dict[str, object]:
    return {
        "contender": name,
        "cold_start_s": 5.0 * scale,
        "model_fn_s": 4.0 * scale,
        "short_p50_ms": 20.0 * scale,
        "short_p99_ms": 30.0 * scale,
        "long_p50_ms": 40.0 * scale,
        "long_p99_ms": 50.0 * scale,
        "throughput_texts_s": 60.0 / scale,
        "peak_rss_mb": 400.0,
    }


def test_ratios_are_against_stock() -> None:
    table = bench.render([result("stock", 1.0), result("onnx-int8", 0.25)])  # type: ignore[list-item]
    int8_row = table.splitlines()[2]
    assert "5.0 (4.0x)" in int8_row and "240 (4.0x)" in int8_row  # 20 ms -> 5 ms; 60 -> 240 texts/s
    assert "(" not in table.splitlines()[1], "no ratio on the baseline row"


def test_flop_floor_of_minilm() -> None:
    floor = bench.flop_floor_ms(23, MINILM, threads=2)
    # 2 * 6 * (4 * 384^2 + 2 * 384 * 1536) = 21.2 MFLOP per token; x 23 tokens = 0.4884 GFLOP;
    # attention scores and mixing: 2 * 6 * 2 * 23^2 * 384 = 0.0049 GFLOP
    assert math.isclose(floor["gflop"], 0.4932, rel_tol=1e-3)
    assert math.isclose(floor["int8_ms"] * 2, floor["fp32_ms"], rel_tol=1e-9)
