"""`make bench-api`: what the front door costs, measured on this machine (a table, JSON and a PNG).

1. Cold init: importing `front_door.handler` (settings, Powertools, one SageMaker client) in a
   fresh Python process, as Lambda's init phase does; median of N processes, with and without each
   change to the init (botocore's session instead of boto3; the X-Ray SDK only with tracing on).
2. Handler overhead: the real handler in-process against the real local model server; the time
   the handler takes beyond its InvokeEndpoint call (parsing, validation, logging, metrics).
3. Load on loopback: C concurrent keep-alive clients for D seconds, straight to the model server
   (the baseline) and through the local front door (HTTP -> proxy event -> handler -> boto3 ->
   model server); errors, p50/p99 and requests/s side by side.

Writes build/bench-api/results.json and build/bench-api/latency.png.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from sagebert import paths
from sagebert.bench.stats import p99
from sagebert.local.front_door import PREDICT, STAGE, LocalApi, LocalContext, handler_environment, proxy_event
from sagebert.local.serve import KeepAliveClient, LocalEndpoint

TEXT = "The battery lasts two days and the screen is sharp, but the speaker crackles at full volume."
INIT_PROBE = "import time; t = time.perf_counter(); import front_door.handler; print(1000 * (time.perf_counter() - t))"
# The floor: what any Python function that calls SageMaker pays at init: botocore and one client.
FLOOR_PROBE = (
    "import sys, time; t = time.perf_counter(); import botocore.session; "
    "botocore.session.get_session().create_client('sagemaker-runtime'); print(1000 * (time.perf_counter() - t))"
)
# The same client through boto3 (what the handler did before it went to botocore's session directly).
BOTO3_PROBE = (
    "import sys, time; t = time.perf_counter(); import boto3; "
    "boto3.client('sagemaker-runtime'); print(1000 * (time.perf_counter() - t))"
)
# Each change to the init, measured with it and without it (the "without" rows rebuild the old init).
INIT_VARIANTS = (
    ("client only", "floor: botocore + one client", "floor"),
    ("boto3 client", "before: boto3 + one client", "boto3"),
    ("tracing off", "handler, tracing off", "off"),
    ("tracing off, X-Ray SDK loaded", "before: tracing off, X-Ray SDK imported", "xray"),
    ("tracing on", "handler, tracing on (api.tracing)", "on"),
)


def cold_init_ms(runs: int, env: dict[str, str], probe: str = INIT_PROBE) -> list[float]:
    """Handler module import time in `runs` fresh processes (bytecode of our own modules not cached), with
    lambdas/ on the path as Lambda's code root."""
    code_roots = os.pathsep.join(filter(None, [str(paths.LAMBDAS_DIR), os.environ.get("PYTHONPATH")]))
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, **env, "PYTHONPATH": code_roots, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return times


def cpu_model() -> str:
    """The CPU's model name and core count, as lscpu reports them (init times depend on it)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "an unknown CPU"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    model = fields.get("Model name", "an unknown CPU").strip()
    return f"{model}, {fields.get('CPU(s)', '?').strip()} CPUs"


class _TimedClient:
    """Wraps the handler's real boto3 client and records the wall time of each InvokeEndpoint call."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls_ms = client, []  # type: ignore[var-annotated]

    def invoke_endpoint(self, **request: Any) -> Any:
        started = time.perf_counter()
        response = self.client.invoke_endpoint(**request)
        body = response["Body"].read()  # read here so the call's time includes the answer
        self.calls_ms.append(1000 * (time.perf_counter() - started))
        response["Body"] = io.BytesIO(body)
        return response


def handler_overhead_ms(endpoint: LocalEndpoint, iterations: int) -> dict[str, Any]:
    """Handler time minus InvokeEndpoint time, per request, for a short and a 64-text request."""
    os.environ.update(handler_environment(endpoint.url, endpoint.name, {"POWERTOOLS_METRICS_DISABLED": "false"}))
    import front_door.handler as handler  # lambdas/ is on the path (the CLI entry puts it there)

    timed = _TimedClient(handler.client)
    handler.client = timed
    results: dict[str, Any] = {}
    sink = open(os.devnull, "w")  # noqa: SIM115 (Lambda ships stdout to CloudWatch; here it goes nowhere)
    log_handler = cast(logging.StreamHandler, handler.logger.registered_handler)  # type: ignore[type-arg]
    stream = log_handler.setStream(sink)
    real_stdout, sys.stdout = sys.stdout, sink  # the metrics' EMF lines
    try:
        # One unmeasured request first: the model server's first answer after it starts can take longer than the
        # front door's read timeout (8 s), and the front door does not retry a read timeout.
        warm = proxy_event("POST", PREDICT, {"Content-Type": "application/json"}, b'{"inputs": "warm up"}', "127.0.0.1")
        handler.lambda_handler(warm, LocalContext(warm["requestContext"]["requestId"]))
        for name, texts in (("1 text", [TEXT]), ("64 texts", [TEXT] * 64)):
            body = json.dumps({"inputs": texts[0] if len(texts) == 1 else texts}).encode()
            overheads, totals = [], []
            for _ in range(iterations):
                event = proxy_event("POST", PREDICT, {"Content-Type": "application/json"}, body, "127.0.0.1")
                context = LocalContext(event["requestContext"]["requestId"])
                started = time.perf_counter()
                response = handler.lambda_handler(event, context)
                total = 1000 * (time.perf_counter() - started)
                if response["statusCode"] != 200:
                    raise RuntimeError(f"handler answered {response['statusCode']}: {response['body'][:300]}")
                totals.append(total)
                overheads.append(total - timed.calls_ms[-1])
            results[name] = {
                "overhead_p50_ms": statistics.median(overheads),
                "overhead_p99_ms": p99(overheads),
                "handler_p50_ms": statistics.median(totals),
            }
    finally:
        sys.stdout = real_stdout
        log_handler.setStream(stream)
        sink.close()
    return results


def load(port: int, path: str, clients: int, duration_s: float) -> dict[str, Any]:
    """`clients` keep-alive connections sending one short text each, back to back, for `duration_s`."""
    body = json.dumps({"inputs": TEXT}).encode()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.monotonic() + duration_s

    def run(index: int) -> None:
        client = KeepAliveClient(port)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status, _, _ = client.send(path, body)
            latencies[index].append(1000 * (time.perf_counter() - started))
            errors[index] += status != 200

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    every = [value for per_client in latencies for value in per_client]
    return {
        "requests": len(every),
        "errors": sum(errors),
        "p50_ms": statistics.median(every),
        "p99_ms": p99(every),
        "requests_s": len(every) / elapsed,
        "latencies_ms": every,
    }


def render(results: dict[str, Any]) -> str:
    init, overhead, runs = results["cold_init_ms"], results["handler_overhead"], results["load"]
    lines = [
        f"cold init of front_door.handler on {results.get('cpu', 'this CPU')} "
        f"({results['init_runs']} fresh processes each; target < 300 ms):",
        *(
            f"  {label:<42} median {init[name]['median']:>5.0f} ms   min {init[name]['min']:>5.0f} ms"
            for name, label, _ in INIT_VARIANTS
            if name in init
        ),
        "  with SnapStart (api.snap_start, on by default) this init runs once, when a version is published; a",
        "  cold start restores the snapshot instead. Restores cannot be measured off AWS: the function's REPORT",
        "  log lines give each one's Restore Duration.",
        "",
        f"handler overhead beyond InvokeEndpoint ({results['iterations']} requests each; target p50 < 1 ms):",
        "  request    overhead p50   overhead p99   whole handler p50",
    ]
    for name, row in overhead.items():
        lines.append(
            f"  {name:<9} {row['overhead_p50_ms']:>9.2f} ms   {row['overhead_p99_ms']:>9.2f} ms   "
            f"{row['handler_p50_ms']:>12.2f} ms"
        )
    direct, front = runs["model server (direct)"], runs["front door -> model server"]
    lines += [
        "",
        f"load on loopback: {results['clients']} clients x {results['duration_s']:g} s, one short text per request:",
        "  path                          requests  errors   p50 ms   p99 ms   requests/s",
    ]
    for name, row in runs.items():
        lines.append(
            f"  {name:<28} {row['requests']:>9} {row['errors']:>7} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
            f"{row['requests_s']:>11.1f}"
        )
    lines.append(
        f"  front door adds {front['p50_ms'] - direct['p50_ms']:+.1f} ms at p50 "
        f"(x{front['p50_ms'] / direct['p50_ms']:.2f}); throughput x{front['requests_s'] / direct['requests_s']:.2f}"
    )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 4.5))
    for (name, row), colour in zip(results["load"].items(), ["#4c72b0", "#c44e52"], strict=True):
        values = sorted(row["latencies_ms"])
        shares = [(i + 1) / len(values) for i in range(len(values))]
        axis.plot(
            values, shares, label=f"{name}: p50 {row['p50_ms']:.1f} ms, {row['requests_s']:.0f} req/s", color=colour
        )
    axis.set_xscale("log")
    axis.set_xlabel("latency per request (ms, log scale)")
    axis.set_ylabel("share of requests at or below")
    axis.set_title(f"{results['clients']} concurrent clients for {results['duration_s']:g} s on loopback")
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cold_init(runs: int) -> dict[str, Any]:
    """Median and minimum init time of every INIT_VARIANTS row, each over `runs` fresh processes."""
    base = handler_environment("http://127.0.0.1:9", "sagebert-bench")
    # SAGEBERT_TRACING=true with Powertools' tracer disabled: the tracer object exists (the SDK is
    # imported) but sends nothing, which is what the handler did with tracing off before this change.
    loaded = {**base, "SAGEBERT_TRACING": "true"}
    traced = {**loaded, "POWERTOOLS_TRACE_DISABLED": "false", "AWS_LAMBDA_FUNCTION_NAME": "sagebert-bench"}
    setups = {"floor": (base, FLOOR_PROBE), "boto3": (base, BOTO3_PROBE), "off": (base, INIT_PROBE)}
    setups.update(xray=(loaded, INIT_PROBE), on=(traced, INIT_PROBE))
    results: dict[str, Any] = {}
    for name, _, setup in INIT_VARIANTS:
        env, probe = setups[setup]
        times = cold_init_ms(runs, env, probe)
        results[name] = {"median": statistics.median(times), "min": min(times), "all": times}
    return results


def main(clients: int, duration_s: float, iterations: int, init_runs: int, port: int) -> int:
    out = paths.BENCH_API_DIR
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"clients": clients, "duration_s": duration_s, "iterations": iterations}
    print(f"==> cold init: {init_runs} fresh processes per variant", flush=True)
    results["init_runs"] = init_runs
    results["cpu"] = cpu_model()
    results["cold_init_ms"] = cold_init(init_runs)
    archive = paths.ARTIFACT
    print(f"==> the model server with {archive.relative_to(paths.ROOT)} and the local front door", flush=True)
    with LocalEndpoint(archive, port=port, name="sagebert-bench", state_dir=out / "serve") as endpoint:
        results["handler_overhead"] = handler_overhead_ms(endpoint, iterations)
        api = LocalApi(port=port + 3, endpoint_url=endpoint.url, endpoint_name=endpoint.name, log_path=out / "api.log")
        with api:
            results["load"] = {}
            for name, target_port, path in (
                ("model server (direct)", port, "/invocations"),
                ("front door -> model server", api.port, f"/{STAGE}{PREDICT}"),
            ):
                print(f"==> load: {name}, {clients} clients x {duration_s:g} s", flush=True)
                results["load"][name] = load(target_port, path, clients, duration_s)
    print()
    print(render(results))
    chart(results, out / "latency.png")
    paths.BENCH_API_RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    shown = [path.relative_to(paths.ROOT) for path in (paths.BENCH_API_RESULTS, out / "latency.png")]
    print(f"\nwrote {shown[0]} and {shown[1]}")
    return 0
