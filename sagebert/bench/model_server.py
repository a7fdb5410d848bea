"""`make bench`: the toolkit's stock handler vs sagebert's runtimes, side by side, same model, same machine.

Two views of the same contenders, on the demo classifier:

- through the real model server (`make serve`'s stack: toolkit + multi-model-server, default
  workers, as the endpoint runs): batch-1 latency from one client, throughput from two concurrent
  clients sending 64 texts per request (after one untimed pass), cold start (server start ->
  first answer) and the server's resident memory. int8 runs twice: with the toolkit's layout (one
  single-threaded worker per core) and with the latency layout (one worker, every core's thread:
  the endpoint's `threads_per_worker`);
- in-process, each contender in a fresh Python process: `model_fn` time and per-call latency
  without the server (what the handler itself costs).

Contenders:

- stock: what the Hugging Face toolkit does without custom code, a transformers
  `pipeline("text-classification")` in PyTorch fp32 (HuggingFaceHandlerService's default path);
- sagebert torch / onnx-fp32 / onnx-int8: model_code/inference.py's functions with that runtime.

Short texts have ~24 tokens, long ones ~128. Loops are bounded in count and time. Prints both
tables with ratios against stock, the FLOP floor of the model on this CPU, and writes
build/bench/results.json and build/bench/bench.png (the server view).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sagebert import cpu, paths
from sagebert.bench.stats import p99
from sagebert.release.quantize import MAX_TOKENS
from sagebert.tables import columns

CONTENDERS = ("stock", "torch", "onnx-fp32", "onnx-int8")
# Through the server, int8 once more with the latency layout: one model-server worker with every
# core's thread (endpoint `threads_per_worker` = the cores), instead of the toolkit's one
# single-threaded worker per core. As on the endpoint, only the worker count is set: the handler
# derives its threads (cores // workers).
LATENCY_LAYOUT = f"onnx-int8 1x{len(os.sched_getaffinity(0))}"
LATENCY_LAYOUT_ENVIRONMENT = {"SAGEBERT_RUNTIME": "onnx-int8", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
# And int8 pinned to one core (one worker, one thread): an AWS vCPU is a hyperthread, so a 2-vCPU
# instance (ml.c6i.large) is one physical core, where this machine's two vCPUs are two cores. Its
# throughput is the lower bound the cost report and the autoscaling target use per physical core.
ONE_CORE = "onnx-int8 1 core"
ONE_CORE_ENVIRONMENT = {"SAGEBERT_RUNTIME": "onnx-int8", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
TURN = 20  # requests per contender per turn (latency)
THROUGHPUT_PASSES = 3  # timed passes per contender (the median counts)
SHORT = "The hotel staff were friendly and the room was spotless, but breakfast ended far too early for us."
LONG_SENTENCES = [
    "I bought this blender after my old one died, and for the first month it was everything I hoped for.",
    "It crushed ice in seconds, the jug was easy to clean, and it was quieter than I expected.",
    "Then the seal started leaking, the motor began to smell hot, and support stopped answering.",
    "The replacement part costs almost as much as a new jar, which feels unfair for a machine this new.",
    "I would not buy it again, and I have told my friends to look elsewhere before they spend their money.",
    "Maybe a later batch is better built, but after this experience I am not willing to take that risk.",
]


def _worker(contender: str, model_dir: Path, threads: int, iterations: int, budget_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    texts = [
        json.loads(line)["text"]
        for line in (paths.DATA_DIR / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    long_text = " ".join(LONG_SENTENCES)
    if contender == "stock":
        # The imports count as loading, as they do for the handler's model_fn (its imports are lazy).
        load_started = time.perf_counter()
        import torch
        from transformers import pipeline

        torch.set_num_threads(threads)
        classifier = pipeline("text-classification", model=str(model_dir), device=-1)
        load = time.perf_counter() - load_started

        def predict(batch: list[str]) -> Any:
            return classifier(batch, truncation=True, max_length=MAX_TOKENS)

        tokens = len(classifier.tokenizer(SHORT)["input_ids"]), len(classifier.tokenizer(long_text)["input_ids"])
    else:
        os.environ["SAGEBERT_RUNTIME"] = contender
        os.environ["SAGEBERT_THREADS"] = str(threads)
        import inference  # model_code/, the container's code root, is on this worker's PYTHONPATH

        load_started = time.perf_counter()
        model = inference.model_fn(str(model_dir))
        load = time.perf_counter() - load_started

        def predict(batch: list[str]) -> Any:
            request = inference.input_fn(json.dumps({"inputs": batch}), "application/json")
            return inference.output_fn(inference.predict_fn(request, model), "application/json")

        tokens = (0, 0)
    predict([SHORT])
    cold = time.perf_counter() - started

    def latencies(text: str) -> list[float]:
        found: list[float] = []
        deadline = time.perf_counter() + budget_s
        predict([text])
        while len(found) < iterations and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            predict([text])
            found.append((time.perf_counter() - t0) * 1000)
        return found

    short, long_ = latencies(SHORT), latencies(long_text)
    batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    t0 = time.perf_counter()
    done = 0
    for batch in batches:
        predict(batch)
        done += len(batch)
    throughput = done / (time.perf_counter() - t0)
    memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return _summary(contender, cold, load, short, long_, throughput, memory, threads=threads, tokens_short_long=tokens)


def _group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the server's process group (Java and its workers)."""
    total_kb = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total_kb / 1024


def stock_archive(demo: Path, output: Path) -> Path:
    """The model files alone, no code/: the toolkit then serves its default pipeline."""
    from sagebert.release.archive import build_archive, model_members

    return build_archive(model_members(demo), output)


def _server_environment(name: str) -> dict[str, str]:
    if name == "stock":
        return {}
    if name == LATENCY_LAYOUT:
        return LATENCY_LAYOUT_ENVIRONMENT
    if name == ONE_CORE:
        return ONE_CORE_ENVIRONMENT
    return {"SAGEBERT_RUNTIME": name}


@contextlib.contextmanager
def _affinity(pinned: bool) -> Any:
    """While starting a server: pin this process to its first CPU, so the server's Java process and its
    Python workers (which inherit the mask) run on one core; the bench itself is unpinned again after."""
    before = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _only(name: str | None, endpoints: dict[str, Any]) -> None:
    """Let only `name`'s server run (None: all of them): the others' process groups are stopped, so
    their timers, garbage collectors and minutely metric collectors take no CPU from the measured one
    (with five idle servers running, GET /ping took 2 ms instead of 0.7)."""
    for other, endpoint in endpoints.items():
        if endpoint.process is not None:  # None: already stopped for good
            os.killpg(endpoint.process.pid, signal.SIGCONT if name in (None, other) else signal.SIGSTOP)


def _take_turns(
    endpoints: dict[str, Any],
    clients: dict[str, Any],
    sent: dict[str, int],
    text: str,
    iterations: int,
    budget_s: float,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Batch-1 latencies (ms), the contenders taking turns TURN requests at a time: the shared machine's
    slow moments fall on all of them alike instead of on whichever ran then. Each stops at `iterations`
    requests or `budget_s` seconds of its own requests. Also returns which of each server's POSTs
    (counted in `sent`) were the timed ones, to find them in its log."""
    body = json.dumps({"inputs": text}).encode()
    found: dict[str, list[float]] = {name: [] for name in clients}
    timed: dict[str, list[int]] = {name: [] for name in clients}
    spent = dict.fromkeys(clients, 0.0)
    while active := [n for n in clients if len(found[n]) < iterations and spent[n] < budget_s]:
        for name in active:
            _only(name, endpoints)
            for _ in range(3):  # untimed: the first requests after a pause wake the server's threads
                clients[name].post(body)
            sent[name] += 3
            for _ in range(min(TURN, iterations - len(found[name]))):
                t0 = time.perf_counter()
                clients[name].post(body)
                took = time.perf_counter() - t0
                found[name].append(took * 1000)
                timed[name].append(sent[name])
                sent[name] += 1
                spent[name] += took
    return found, timed


# What the serving stack logs per request: the toolkit's timing of the handler's predict step, the
# Java front end's round trip to the worker, and its access log's whole-request time.
LOG_PATTERNS = {
    "predict_ms": re.compile(r"Predict time - ([0-9.]+) ms"),
    "worker_ms": re.compile(r"Backend response time: ([0-9]+)"),
    "server_ms": re.compile(r'ACCESS_LOG - \S+ "POST [^"]*" \d+ ([0-9]+)'),
}


def where_time_goes(log: str, timed: list[int]) -> dict[str, float]:
    """Medians (ms) over the timed POSTs (their indices, in request order) of the server log's figures."""
    # Each worker's model load logs a "Backend response time" too, before the first request's predict.
    first_request = max(0, log.find("Predict time - "))
    found: dict[str, float] = {}
    for key, pattern in LOG_PATTERNS.items():
        values = [float(v) for v in pattern.findall(log, first_request if key == "worker_ms" else 0)]
        picked = [values[i] for i in timed if i < len(values)]
        found[key] = statistics.median(picked) if picked else float("nan")
    return found


def _throughput(port: int, requests: list[bytes], texts_per_pass: int) -> float:
    """Texts/s of one pass: two clients, each sending every request once (both workers busy)."""
    from sagebert.local.serve import KeepAliveClient

    clients = [KeepAliveClient(port) for _ in range(2)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda c: [c.post(body) for body in requests], clients))
    return 2 * texts_per_pass / (time.perf_counter() - t0)


def _server_view(
    archives: dict[str, Path], port: int, iterations: int, budget_s: float, texts: list[str], long_text: str
) -> list[dict[str, Any]]:
    """Every contender on its own model server, all up at once but only the measured one running (the
    others paused): cold starts one after another, then latency, /ping and throughput with the
    contenders taking turns."""
    from sagebert.local.serve import KeepAliveClient, LocalEndpoint

    endpoints: dict[str, LocalEndpoint] = {}
    with contextlib.ExitStack() as running:
        clients: dict[str, KeepAliveClient] = {}
        cold: dict[str, float] = {}
        for index, (name, archive) in enumerate(archives.items()):
            layout = {
                LATENCY_LAYOUT: "one worker, every core's thread",
                ONE_CORE: "pinned to one core: one worker, one thread",
            }.get(name, "toolkit default: a worker per core")
            print(f"server: starting {name} ({layout}) ...", flush=True)
            _only("", endpoints)  # the servers already up wait while this one starts
            started = time.perf_counter()
            with _affinity(name == ONE_CORE):
                endpoints[name] = running.enter_context(
                    LocalEndpoint(
                        archive,
                        port=port + 10 * index,
                        name="bench",
                        state_dir=paths.BENCH_DIR / f"serve-{name.replace(' ', '-')}",
                        environment=_server_environment(name),
                    )
                )
            running.callback(_only, None, endpoints)  # a paused server cannot stop: continue them all first
            clients[name] = KeepAliveClient(endpoints[name].port + 1)
            clients[name].post(json.dumps({"inputs": SHORT}).encode())
            cold[name] = time.perf_counter() - started
        print(f"server: batch-1 latency, contenders taking turns ({TURN} requests each), up to {iterations} per length")
        sent = dict.fromkeys(clients, 1)  # the first answer (cold start) was POST number 0
        short, timed_short = _take_turns(endpoints, clients, sent, SHORT, iterations, budget_s)
        long_, timed_long = _take_turns(endpoints, clients, sent, long_text, iterations, budget_s)
        pings: dict[str, list[float]] = {name: [] for name in clients}
        for name, client in clients.items():  # the server's own floor: a request that runs no model
            _only(name, endpoints)
            client.get("/ping")
            for _ in range(min(iterations, 100)):
                t0 = time.perf_counter()
                client.get("/ping")
                pings[name].append((time.perf_counter() - t0) * 1000)
        print(f"server: throughput, one untimed pass each, then {THROUGHPUT_PASSES} timed passes taking turns")
        requests = [json.dumps({"inputs": texts[i : i + 64]}).encode() for i in range(0, len(texts), 64)]
        # The untimed pass: a server's first large requests run several times slower (the Java front
        # end still compiling its request path, each worker's first shapes), a start-up cost the
        # cold-start column already shows.
        for name, endpoint in endpoints.items():
            _only(name, endpoints)
            _throughput(endpoint.port + 1, requests, len(texts))
        rates: dict[str, list[float]] = {name: [] for name in endpoints}
        for _ in range(THROUGHPUT_PASSES):
            for name, endpoint in endpoints.items():
                _only(name, endpoints)
                rates[name].append(_throughput(endpoint.port + 1, requests, len(texts)))
        _only(None, endpoints)
        results = []
        for name, endpoint in endpoints.items():
            assert endpoint.process is not None
            memory = _group_rss_mb(endpoint.process.pid)
            log = endpoint.log_path.read_text(encoding="utf-8", errors="replace")
            results.append(
                _summary(
                    name,
                    cold[name],
                    float("nan"),
                    short[name],
                    long_[name],
                    statistics.median(rates[name]),
                    memory,
                    ping_p50_ms=statistics.median(pings[name]),
                    server_log_short=where_time_goes(log, timed_short[name]),
                    server_log_long=where_time_goes(log, timed_long[name]),
                )
            )
    return results


def _summary(
    name: str,
    cold: float,
    model_fn: float,
    short: list[float],
    long_: list[float],
    throughput: float,
    memory_mb: float,
    **extra: Any,
) -> dict[str, Any]:
    """One contender's row: the same keys in both views (model_fn is NaN where not measured)."""
    return {
        "contender": name,
        "cold_start_s": cold,
        "model_fn_s": model_fn,
        "short_p50_ms": statistics.median(short),
        "short_p99_ms": p99(short),
        "long_p50_ms": statistics.median(long_),
        "long_p99_ms": p99(long_),
        "samples": len(short),
        "throughput_texts_s": throughput,
        "peak_rss_mb": memory_mb,
        **extra,
    }


def flop_floor_ms(tokens: int, config: dict[str, Any], threads: int, machine: dict[str, Any]) -> dict[str, float]:
    """Matrix-multiply FLOPs of one forward pass over the peak of this CPU's instruction set
    (sagebert.cpu.PEAK_PER_CYCLE: AVX2, AVX-512, AVX-512 VNNI, AMX), at its reported clock."""
    hidden, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    per_token = 2 * layers * (4 * hidden * hidden + 2 * hidden * inter)
    attention = 2 * layers * 2 * tokens * tokens * hidden
    flops = per_token * tokens + attention
    mhz = machine["mhz"] or 1000.0
    peak = cpu.PEAK_PER_CYCLE[machine["isa"]]
    cycles_per_s = threads * mhz * 1e6
    return {
        "gflop": flops / 1e9,
        "mhz": mhz,
        "isa": machine["isa"],
        "fp32_ms": flops / (cycles_per_s * peak["fp32"]) * 1000,
        "int8_ms": flops / (cycles_per_s * peak["int8"]) * 1000,
        "bf16_ms": flops / (cycles_per_s * peak["bf16"]) * 1000,
    }


def render(results: list[dict[str, Any]]) -> str:
    stock = next(r for r in results if r["contender"] == "stock")
    header = (
        "contender",
        "cold start s",
        "model_fn s",
        "short p50 ms",
        "short p99 ms",
        "long p50 ms",
        "long p99 ms",
        "texts/s (64/req)",
        "peak RSS MB",
    )
    rows = [header]

    def cell(r: dict[str, Any], key: str, digits: int, lower_is_better: bool = True) -> str:
        if r[key] != r[key]:  # NaN: not measured in this view
            return "-"
        ratio = stock[key] / r[key] if lower_is_better else r[key] / stock[key]
        suffix = "" if r is stock else f" ({ratio:.1f}x)"
        return f"{r[key]:.{digits}f}{suffix}"

    for r in results:
        rows.append(
            (
                r["contender"],
                cell(r, "cold_start_s", 2),
                cell(r, "model_fn_s", 2),
                cell(r, "short_p50_ms", 1),
                cell(r, "short_p99_ms", 1),
                cell(r, "long_p50_ms", 1),
                cell(r, "long_p99_ms", 1),
                cell(r, "throughput_texts_s", 0, lower_is_better=False),
                f"{r['peak_rss_mb']:.0f}",
            )
        )
    return "\n".join(columns(rows))


def render_breakdown(results: list[dict[str, Any]]) -> str:
    """Per contender and length: the handler's predict step, the worker round trip, the whole request
    inside multi-model-server, and what the client saw; the last column is the fixed cost of the
    serving stack (client minus predict)."""
    header = ("contender", "text", "handler predict", "worker round trip", "inside the server", "client", "stack cost")
    rows = [header]
    for r in results:
        for length in ("short", "long"):
            logged = r[f"server_log_{length}"]
            client = r[f"{length}_p50_ms"]
            rows.append(
                (
                    r["contender"],
                    length,
                    f"{logged['predict_ms']:.1f}",
                    f"{logged['worker_ms']:.0f}",
                    f"{logged['server_ms']:.0f}",
                    f"{client:.1f}",
                    f"{client - logged['predict_ms']:.1f}",
                )
            )
    return "\n".join(columns(rows))


def chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["contender"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for axis, (key, title) in zip(
        axes,
        [
            ("short_p50_ms", "batch-1 p50, short text (ms)"),
            ("long_p50_ms", "batch-1 p50, ~128 tokens (ms)"),
            ("throughput_texts_s", "throughput, 2 clients x 64 texts/request (texts/s)"),
        ],
        strict=True,
    ):
        values = [r[key] for r in results]
        bars = axis.bar(
            names, values, color=["#999999", "#4c72b0", "#55a868", "#c44e52", "#8c1c13", "#dd8452"][: len(names)]
        )
        axis.bar_label(bars, fmt="%.1f")
        axis.set_title(title)
        axis.tick_params(axis="x", rotation=25)
    fig.suptitle(
        "through the model server: stock Hugging Face handler vs sagebert, same model and machine "
        "(lower ms / higher texts/s is better)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(threads: int, iterations: int, budget_s: float, port: int = 23000) -> int:
    archive = paths.ARTIFACT
    demo = paths.DEMO_MODEL_DIR
    if not archive.is_file() or not demo.is_dir():
        print(f"{archive} or {demo} not found; run `make package` first.", file=sys.stderr)
        return 1
    paths.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    machine = cpu.describe()
    print(f"CPU: {cpu.summary(machine)}", flush=True)
    model_dir = paths.BENCH_DIR / "model"
    if not (model_dir / "model.int8.onnx").is_file() or model_dir.stat().st_mtime < archive.stat().st_mtime:
        model_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(model_dir, filter="data")
    texts = [
        json.loads(line)["text"]
        for line in (paths.DATA_DIR / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    stock_archive_path = stock_archive(demo, paths.BENCH_DIR / "stock-model.tar.gz")

    names = (*CONTENDERS, LATENCY_LAYOUT, ONE_CORE)
    # The default archive is lean (ONNX graphs only): PyTorch runs from the plain archive of the same model
    # (safetensors + the same code/inference.py).
    from sagebert.release.archive import archive_members, build_archive

    torch_archive = build_archive(archive_members(demo), paths.BENCH_DIR / "torch-model.tar.gz")
    special = {"stock": stock_archive_path, "torch": torch_archive}
    archives = {name: special.get(name, archive) for name in names}
    server = _server_view(archives, port, iterations, budget_s, texts, " ".join(LONG_SENTENCES))
    in_process = []
    for contender in CONTENDERS:
        print(f"in-process: {contender} ({threads} threads) ...", flush=True)
        command = [
            sys.executable,
            "-m",
            "sagebert.bench.model_server",
            "--worker",
            contender,
            str(demo if contender in ("stock", "torch") else model_dir),
            str(threads),
            str(iterations),
            str(budget_s),
        ]
        # model_code/ as the container has it: inference.py a top-level module.
        code_roots = os.pathsep.join(filter(None, [str(paths.MODEL_CODE_DIR), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": code_roots}
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=paths.ROOT, env=env)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        in_process.append(json.loads(done.stdout.strip().splitlines()[-1]))
    config = json.loads((model_dir / "config.json").read_text())
    tokens_short, tokens_long = in_process[0]["tokens_short_long"]
    floors = {
        "short": flop_floor_ms(tokens_short, config, threads, machine),
        "long": flop_floor_ms(tokens_long, config, threads, machine),
    }
    paths.BENCH_RESULTS.write_text(
        json.dumps({"cpu": machine, "server": server, "in_process": in_process, "flop_floor": floors}, indent=2) + "\n"
    )
    chart(server, paths.BENCH_DIR / "bench.png")
    print(f"\nCPU: {cpu.summary(machine)}")
    print(
        "Through the model server (toolkit + multi-model-server; a worker per core unless the row says 1xN; "
        "memory = whole server):"
    )
    print(render(server))
    print("\nWhere a batch-1 request's time goes (p50 ms; the server's own logs, then the client):")
    print(render_breakdown(server))
    pings = ", ".join(f"{r['contender']} {r['ping_p50_ms']:.1f} ms" for r in server)
    print(f"server floor, GET /ping p50 (no model runs): {pings}")
    print(f"\nIn-process, one fresh process each, {threads} threads:")
    print(render(in_process))
    print()
    for name, tokens in (("short", tokens_short), ("long", tokens_long)):
        floor = floors[name]
        print(
            f"FLOP floor, {name} text ({tokens} tokens, {floor['gflop']:.2f} GFLOP, {threads} threads at "
            f"{floor['mhz']:.0f} MHz, {floor['isa']}): fp32 {floor['fp32_ms']:.2f} ms, int8 {floor['int8_ms']:.2f} ms, "
            f"bf16 {floor['bf16_ms']:.2f} ms"
        )
    print(f"\nwrote {paths.BENCH_RESULTS} and {paths.BENCH_DIR / 'bench.png'}")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        contender, folder, n_threads, count, seconds = sys.argv[2:7]
        print(json.dumps(_worker(contender, Path(folder), int(n_threads), int(count), float(seconds))))
    else:
        raise SystemExit("use `python -m sagebert bench` (or `make bench`)")
