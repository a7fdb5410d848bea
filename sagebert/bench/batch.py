"""`make bench-batch`: batch transform throughput, sagebert vs the toolkit's stock handler, side by side.

Same model (the demo classifier), same machine, same records, the same local batch runner
(`sagebert.local.batch`: SageMaker's splitting and assembly) and the model server's default workers.
The two differ in what each handler can take:

- stock: the archive's model files without code/, so the toolkit serves its default pipeline
  (PyTorch fp32). It parses JSON, not JSON Lines, so a batch job must send one record per request:
  SplitType Line, BatchStrategy SingleRecord, ContentType application/json.
- sagebert: the packaged archive (ONNX Runtime int8). JSON Lines with MultiRecord packs records
  into requests of up to the max payload. The bench's file is small, so it uses 64 KB: a 6 MB
  payload would put all of it in one request and leave the second worker idle, while a nightly
  file of millions of records spreads over the workers at 6 MB too.

Prints records/s and the ratio, and writes build/bench-batch/results.json.
"""

from __future__ import annotations

import json
from typing import Any

from infra.config.batch import TRANSFORM_MAX_PAYLOAD_MB
from sagebert import paths
from sagebert.bench.model_server import stock_archive
from sagebert.local.batch import JSONL, run
from sagebert.local.serve import LocalEndpoint

MAX_PAYLOAD_MB = 1 / 16  # 64 KB: about 800 short reviews per request


def records(count: int) -> list[str]:
    lines = (paths.DATA_DIR / "test.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    return [json.dumps({"inputs": texts[i % len(texts)]}) for i in range(count)]


def main(count: int, port: int) -> int:
    out = paths.BENCH_BATCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.jsonl"
    source.write_text("\n".join(records(count)) + "\n", encoding="utf-8")
    archives = {
        "stock (SingleRecord, JSON)": stock_archive(paths.DEMO_MODEL_DIR, out / "stock.tar.gz"),
        "sagebert (MultiRecord, JSON Lines)": paths.ARTIFACT,
    }
    results: dict[str, Any] = {"records": count}
    for name, archive in archives.items():
        stock = name.startswith("stock")
        print(f"==> {name}: {count} records", flush=True)
        with LocalEndpoint(archive, port=port, name="bench-batch", state_dir=out / "serve") as endpoint:
            manifest = run(
                endpoint,
                source,
                out / f"output-{'stock' if stock else 'sagebert'}.jsonl",
                strategy="SingleRecord" if stock else "MultiRecord",
                content_type="application/json" if stock else JSONL,
                concurrency=2,
                max_payload_mb=float(TRANSFORM_MAX_PAYLOAD_MB) if stock else MAX_PAYLOAD_MB,
            )
        if manifest.status != "succeeded":
            print(f"error: {name}: {manifest.reason}")
            return 1
        results[name] = {
            "records_per_s": manifest.records_per_s,
            "requests": manifest.requests,
            "duration_s": manifest.duration_s,
        }
    stock_row, ours = (results[name] for name in archives)
    print(
        f"\nbatch transform on the local model server, {count} records, 2 requests at a time "
        f"(MultiRecord max payload {MAX_PAYLOAD_MB * 1024:g} KB):"
    )
    print("  handler                               requests   seconds   records/s")
    for name in archives:
        row = results[name]
        print(f"  {name:<36} {row['requests']:>9} {row['duration_s']:>9.1f} {row['records_per_s']:>11.1f}")
    ratio = ours["records_per_s"] / stock_row["records_per_s"]
    results["ratio"] = ratio
    print(f"  sagebert / stock: x{ratio:.1f} (target x3)")
    paths.BENCH_BATCH_RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {paths.BENCH_BATCH_RESULTS.relative_to(paths.ROOT)}")
    return 0
