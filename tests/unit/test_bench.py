"""The benchmark's arithmetic on fixed inputs (the timings themselves are never asserted)."""

from __future__ import annotations

import math

from sagebert.bench import model_server as bench

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


AVX2_CPU = {"model": "an AVX2 part", "flags": ["avx2", "fma"], "isa": "avx2", "mhz": 2400.0}


def test_flop_floor_of_minilm() -> None:
    floor = bench.flop_floor_ms(23, MINILM, threads=2, machine=AVX2_CPU)
    # 2 * 6 * (4 * 384^2 + 2 * 384 * 1536) = 21.2 MFLOP per token; x 23 tokens = 0.4884 GFLOP;
    # attention scores and mixing: 2 * 6 * 2 * 23^2 * 384 = 0.0049 GFLOP
    assert math.isclose(floor["gflop"], 0.4932, rel_tol=1e-3)
    # 2 cores x 2.4 GHz x 32 FLOP/cycle (AVX2 FMA) = 153.6 GFLOP/s -> 3.21 ms; int8 at twice that rate
    assert math.isclose(floor["fp32_ms"], 0.4932 / 153.6 * 1000, rel_tol=1e-3)
    assert math.isclose(floor["int8_ms"] * 2, floor["fp32_ms"], rel_tol=1e-9)


def test_flop_floor_follows_the_instruction_set() -> None:
    # Given the same clock, VNNI quadruples AVX-512's int8 rate and AMX's tiles go far beyond it; the floors
    # must follow the CPU instead of always assuming AVX2.
    floors = {
        isa: bench.flop_floor_ms(128, MINILM, threads=2, machine=AVX2_CPU | {"isa": isa})
        for isa in ("avx2", "avx512", "avx512_vnni", "amx")
    }
    assert math.isclose(floors["avx2"]["fp32_ms"] / floors["avx512"]["fp32_ms"], 2.0)
    assert math.isclose(floors["avx512"]["int8_ms"] / floors["avx512_vnni"]["int8_ms"], 2.0)
    assert floors["amx"]["int8_ms"] < floors["avx512_vnni"]["int8_ms"] / 4
    assert floors["amx"]["bf16_ms"] < floors["avx512_vnni"]["fp32_ms"] / 8


# Lines as the serving stack writes them (multi-model-server 1.1.11 with the toolkit's handler): a worker's
# model load, then two requests, with a health check between.
SERVER_LOG = """\
2026-11-26T16:00:20,525 [INFO ] pool-2-thread-4 ACCESS_LOG - /127.0.0.1:55652 "GET /ping HTTP/1.1" 200 63
2026-11-26T16:00:28,991 [INFO ] W-9000-model com.amazonaws.ml.mms.wlm.WorkerThread - Backend response time: 8792
2026-11-26T16:00:29,015 [INFO ] W-model-2-stdout com.amazonaws.ml.mms.wlm.WorkerLifeCycle - Predict time - 11.4398 ms
2026-11-26T16:00:29,016 [INFO ] W-9000-model com.amazonaws.ml.mms.wlm.WorkerThread - Backend response time: 17
2026-11-26T16:00:29,017 [INFO ] W-9000-model ACCESS_LOG - /127.0.0.1:55660 "POST /invocations HTTP/1.1" 200 19
2026-11-26T16:00:29,120 [INFO ] pool-2-thread-4 ACCESS_LOG - /127.0.0.1:55652 "GET /ping HTTP/1.1" 200 1
2026-11-26T16:00:29,215 [INFO ] W-model-2-stdout com.amazonaws.ml.mms.wlm.WorkerLifeCycle - Predict time - 4.5 ms
2026-11-26T16:00:29,216 [INFO ] W-9000-model com.amazonaws.ml.mms.wlm.WorkerThread - Backend response time: 6
2026-11-26T16:00:29,218 [INFO ] W-9000-model ACCESS_LOG - /127.0.0.1:55660 "POST /invocations HTTP/1.1" 200 9
"""


def test_server_log_figures_belong_to_the_timed_requests() -> None:
    # The model load's 8792 ms and the health checks are not requests; POST number 1 is the timed one.
    assert bench.where_time_goes(SERVER_LOG, [1]) == {"predict_ms": 4.5, "worker_ms": 6.0, "server_ms": 9.0}
    both = bench.where_time_goes(SERVER_LOG, [0, 1])
    assert both["worker_ms"] == (17 + 6) / 2 and both["server_ms"] == (19 + 9) / 2


def test_breakdown_shows_the_stack_cost_beyond_predict() -> None:
    row = result("onnx-int8", 0.25) | {
        "server_log_short": {"predict_ms": 1.0, "worker_ms": 2.0, "server_ms": 3.0},
        "server_log_long": {"predict_ms": 4.0, "worker_ms": 5.0, "server_ms": 6.0},
    }
    lines = bench.render_breakdown([row]).splitlines()  # type: ignore[list-item]
    assert lines[1].split() == ["onnx-int8", "short", "1.0", "2", "3", "5.0", "4.0"]  # 5 ms at the client - 1
    assert lines[2].split() == ["onnx-int8", "long", "4.0", "5", "6", "10.0", "6.0"]
