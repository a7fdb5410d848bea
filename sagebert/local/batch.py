"""`make batch-local`: a batch transform run on this machine, split and assembled as SageMaker does it.

The packaged archive serves on the real local model server (`make serve`'s stack). The input file's
lines are the records (SplitType Line, split at "\\n" only). With MultiRecord, records are packed in
order into requests of at most the max payload. With SingleRecord, each record is its own request.
Answers are assembled in input order with a newline after each response (AssembleWith Line).
Requests run `concurrency` at a time (MaxConcurrentTransforms), with a timeout and retries per request
(ModelClientConfig). A record larger than the max payload fails the run, as it fails the job.

Nothing is lost: the output is written to a temporary file and renamed once complete, and a manifest
(`<output>.manifest.json`) records the counts, timings and status of every run. Runs that are skipped
(no input) or fail also get a manifest.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.config.batch import (
    BAD_LINES_VARIABLE,
    TRANSFORM_INVOCATION_MAX_RETRIES,
    TRANSFORM_INVOCATION_TIMEOUT_S,
    TRANSFORM_MAX_PAYLOAD_MB,
)
from sagebert.local.serve import KeepAliveClient, LocalEndpoint
from sagebert.paths import BATCH_LOCAL_STATE_DIR

JSONL = "application/jsonlines"
MB = 1024 * 1024  # SageMaker's MaxPayloadInMB counts MiB
# A run here takes a transform job's defaults (infra/config/batch.py's TRANSFORM_*, the `batch:` section's
# defaults): the same max payload, request timeout and retries.


class BatchError(Exception):
    """The run cannot go on; the message says what and where."""


@dataclass
class Manifest:
    job: str
    input: str
    output: str
    status: str = "running"
    reason: str = ""
    strategy: str = "MultiRecord"
    max_payload_mb: float = float(TRANSFORM_MAX_PAYLOAD_MB)
    input_records: int = 0
    output_records: int = 0
    error_records: int = 0
    requests: int = 0
    started: str = ""
    ended: str = ""
    duration_s: float = 0.0
    records_per_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def read_records(path: Path) -> list[bytes]:
    """The input's records: its lines, split at "\\n" only (a final newline ends the last record)."""
    data = path.read_bytes()
    if not data:
        return []
    return data.removesuffix(b"\n").split(b"\n")


def mini_batches(records: list[bytes], max_payload_bytes: int, multi_record: bool) -> Iterator[tuple[int, int]]:
    """[start, end) index ranges: as many whole records as fit in the max payload, in order."""
    start, size = 0, 0
    for index, record in enumerate(records):
        length = len(record) + 1  # the record and its newline
        if length - 1 > max_payload_bytes:
            raise BatchError(
                f"record {index + 1} is {length - 1} bytes, over the max payload of {max_payload_bytes} bytes; "
                "SageMaker fails the job on it: raise max_payload_mb or shorten the record."
            )
        if index > start and (not multi_record or size + length > max_payload_bytes):
            yield start, index
            start, size = index, 0
        size += length
    if start < len(records):
        yield start, len(records)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Invoker:
    """One keep-alive connection per worker thread; timeouts and retries like ModelClientConfig."""

    def __init__(self, port: int, content_type: str, timeout_s: float, retries: int) -> None:
        self.port, self.content_type, self.timeout_s, self.retries = port, content_type, timeout_s, retries
        self.local = threading.local()  # one keep-alive connection per worker thread

    def __call__(self, body: bytes) -> bytes:
        for attempt in range(self.retries + 1):
            client = getattr(self.local, "client", None) or KeepAliveClient(self.port, timeout_s=self.timeout_s)
            self.local.client = client
            try:
                status, answer, _ = client.send(
                    "/invocations", body, {"Content-Type": self.content_type, "Accept": self.content_type}
                )
            except (TimeoutError, OSError) as err:
                self.local.client = None
                if attempt == self.retries:
                    raise BatchError(f"the model did not answer: {err}") from None
                continue
            if status == 200:
                return answer
            if status < 500 or attempt == self.retries:  # a refused request is not retried
                raise BatchError(f"the model answered {status}: {answer[:300].decode(errors='replace')}")
        raise AssertionError("unreachable")


def run(
    endpoint: LocalEndpoint,
    input_path: Path,
    output_path: Path,
    *,
    strategy: str = "MultiRecord",
    content_type: str = JSONL,
    max_payload_mb: float = float(TRANSFORM_MAX_PAYLOAD_MB),
    concurrency: int = 2,
    timeout_s: float = float(TRANSFORM_INVOCATION_TIMEOUT_S),
    retries: int = TRANSFORM_INVOCATION_MAX_RETRIES,
    progress: bool = True,
) -> Manifest:
    """One run over a started endpoint; returns (and writes) its manifest."""
    manifest = Manifest(
        job=f"local-{time.strftime('%Y%m%d-%H%M%S')}",
        input=str(input_path),
        output=str(output_path),
        strategy=strategy,
        max_payload_mb=max_payload_mb,
        started=_now(),
    )
    started = time.perf_counter()
    manifest_path = output_path.with_name(output_path.name + ".manifest.json")
    partial = output_path.with_name(output_path.name + ".partial")
    try:
        if not input_path.is_file():
            raise BatchError(f"{input_path}: no such input file.")
        records = read_records(input_path)
        manifest.input_records = len(records)
        if not records:
            manifest.status, manifest.reason = "skipped", f"{input_path} has no records"
            return manifest
        batches = list(mini_batches(records, int(max_payload_mb * MB), strategy == "MultiRecord"))
        manifest.requests = len(batches)
        invoke = _Invoker(endpoint.port, content_type, timeout_s, retries)
        done = 0
        output_path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out, ThreadPoolExecutor(max_workers=concurrency) as pool:
            answers = pool.map(lambda span: invoke(b"\n".join(records[span[0] : span[1]])), batches)
            for (begin, end), answer in zip(batches, answers, strict=True):
                out.write(answer + b"\n")  # AssembleWith Line: a newline after each response
                done += end - begin
                tenth = len(records) / 10
                if progress and (done == len(records) or int(done / tenth) != int((done - end + begin) / tenth)):
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    print(f"  {done}/{len(records)} records ({100 * done // len(records)}%), {rate:.0f}/s", flush=True)
        lines = read_records(partial)
        manifest.output_records = len(lines)
        manifest.error_records = sum(1 for line in lines if line.startswith(b'{"error"'))
        if manifest.output_records != manifest.input_records:
            raise BatchError(f"{manifest.output_records} output records for {manifest.input_records} input records")
        os.replace(partial, output_path)
        manifest.status = "succeeded"
        return manifest
    except BatchError as err:
        manifest.status, manifest.reason = "failed", str(err)
        partial.unlink(missing_ok=True)
        return manifest
    except BaseException as err:  # recorded, then raised: a manifest for every run
        manifest.status, manifest.reason = "failed", f"{type(err).__name__}: {err}"
        partial.unlink(missing_ok=True)
        raise
    finally:
        manifest.ended = _now()
        manifest.duration_s = round(time.perf_counter() - started, 3)
        manifest.records_per_s = round(manifest.output_records / manifest.duration_s, 1) if manifest.duration_s else 0.0
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")


def main(
    archive: Path,
    input_path: Path,
    output_path: Path,
    *,
    max_payload_mb: float,
    concurrency: int,
    bad_lines: str,
    port: int,
    state_dir: Path | None = None,
) -> int:
    print(f"starting {archive} on the local model server ({BAD_LINES_VARIABLE}={bad_lines}) ...", flush=True)
    environment = {BAD_LINES_VARIABLE: bad_lines}
    state = state_dir or BATCH_LOCAL_STATE_DIR
    with LocalEndpoint(archive, port=port, name="batch-local", state_dir=state, environment=environment) as endpoint:
        print(
            f"transforming {input_path} -> {output_path}: MultiRecord, max payload {max_payload_mb:g} MB, "
            f"{concurrency} requests at a time",
            flush=True,
        )
        manifest = run(endpoint, input_path, output_path, max_payload_mb=max_payload_mb, concurrency=concurrency)
    print(
        f"{manifest.status}: {manifest.input_records} records in, {manifest.output_records} out "
        f"({manifest.error_records} error records) in {manifest.requests} requests, {manifest.duration_s:g} s "
        f"({manifest.records_per_s:g} records/s){'; ' + manifest.reason if manifest.reason else ''}"
    )
    print(f"manifest: {output_path}.manifest.json")
    return 0 if manifest.status in ("succeeded", "skipped") else 1
