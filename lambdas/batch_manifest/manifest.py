"""The manifest of one batch transform run, from plain functions over an injected S3 client.

Records are lines as batch transform's SplitType Line splits them: "\\n" ends a record, a last record
without one still counts, and an empty object has none (a blank line in the middle is a record: the
model answers it with an error record). Objects are streamed in chunks and only newlines are counted:
nothing reads, keeps or logs their contents.

The run succeeds when every input record has its output record. Otherwise the manifest is written with
status "mismatch" first, then RecordCountMismatch is raised, so the execution fails and notifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

CHUNK_BYTES = 1 << 20  # read objects 1 MiB at a time
OUTPUT_SUFFIX = ".out"  # batch transform names each result <input object>.out
MANIFEST_NAME = "_manifest.json"
# Epoch numbers above this are milliseconds (1e11 seconds is the year 5138).
MILLISECONDS_FROM = 100_000_000_000


class ManifestError(ValueError):
    """The event does not describe a run; the message names the field."""


class RecordCountMismatch(Exception):
    """Output records differ from input records; the manifest (status "mismatch") is already written."""


class Readable(Protocol):
    def read(self, amt: int = ..., /) -> bytes: ...


class S3Client(Protocol):
    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def put_object(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Run:
    """What the state machine passes: where the run read and wrote, which job, when."""

    bucket: str
    input_prefix: str
    output_prefix: str
    job: str
    execution: str
    started: datetime
    ended: datetime

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Run:
        def text(name: str) -> str:
            value = event.get(name)
            if not isinstance(value, str) or not value:
                raise ManifestError(f"event.{name} must be a non-empty string, got {value!r}.")
            return value

        prefixes = {name: text(name) for name in ("input_prefix", "output_prefix")}
        for name, prefix in prefixes.items():
            if not prefix.endswith("/"):
                raise ManifestError(f"event.{name} = {prefix!r} must end with '/'.")
        return cls(
            bucket=text("bucket"),
            input_prefix=prefixes["input_prefix"],
            output_prefix=prefixes["output_prefix"],
            job=text("job"),
            execution=text("execution"),
            started=parse_time(event.get("started"), "started"),
            ended=parse_time(event.get("ended"), "ended"),
        )

    @property
    def input_uri(self) -> str:
        return f"s3://{self.bucket}/{self.input_prefix}"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.bucket}/{self.output_prefix}"


def parse_time(value: Any, name: str) -> datetime:
    """An ISO 8601 string, or epoch seconds or milliseconds (SageMaker's timestamps as Step Functions passes
    them), as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ManifestError(f"event.{name} must be a time, got {value!r}.")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) >= MILLISECONDS_FROM else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ManifestError(f"event.{name} = {value!r} is not an ISO 8601 time.") from None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ManifestError(f"event.{name} must be an ISO 8601 time or epoch seconds, got {value!r}.")


def count_lines(stream: Readable, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Records in a JSON Lines stream, read `chunk_bytes` at a time."""
    count = 0
    last = b""
    while chunk := stream.read(chunk_bytes):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (1 if last and last != b"\n" else 0)


def list_keys(client: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    """Every object key under prefix, page by page."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = client.list_objects_v2(**request)
        for item in page.get("Contents", []):
            yield str(item["Key"])
        if not page.get("IsTruncated"):
            return
        request["ContinuationToken"] = page["NextContinuationToken"]


def count_records(client: S3Client, bucket: str, keys: list[str], chunk_bytes: int = CHUNK_BYTES) -> int:
    total = 0
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            total += count_lines(body, chunk_bytes)
        finally:
            body.close()
    return total


def write_manifest(client: S3Client, run: Run, chunk_bytes: int = CHUNK_BYTES) -> dict[str, Any]:
    """Count, write `<output prefix>_manifest.json`, return it; raise RecordCountMismatch (after writing)
    when the output records are not the input records."""
    input_keys = list(list_keys(client, run.bucket, run.input_prefix))
    output_keys = [key for key in list_keys(client, run.bucket, run.output_prefix) if key.endswith(OUTPUT_SUFFIX)]
    input_records = count_records(client, run.bucket, input_keys, chunk_bytes)
    output_records = count_records(client, run.bucket, output_keys, chunk_bytes)
    status = "complete" if input_records == output_records else "mismatch"
    manifest: dict[str, Any] = {
        "job": run.job,
        "execution": run.execution,
        "status": status,
        "input": run.input_uri,
        "output": run.output_uri,
        "input_objects": len(input_keys),
        "output_objects": len(output_keys),
        "input_records": input_records,
        "output_records": output_records,
        "started": run.started.isoformat().replace("+00:00", "Z"),
        "ended": run.ended.isoformat().replace("+00:00", "Z"),
        "duration_s": round((run.ended - run.started).total_seconds(), 3),
    }
    key = run.output_prefix + MANIFEST_NAME
    client.put_object(
        Bucket=run.bucket,
        Key=key,
        Body=(json.dumps(manifest, indent=2) + "\n").encode("utf-8"),
        ContentType="application/json",
    )
    if status == "mismatch":
        raise RecordCountMismatch(
            f"job {run.job}: {output_records} output records for {input_records} input records "
            f"({len(output_keys)} of {len(input_keys)} objects); see s3://{run.bucket}/{key}."
        )
    return manifest
