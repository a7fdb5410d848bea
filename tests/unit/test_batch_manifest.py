"""The batch manifest Lambda (lambdas/batch_manifest): line counting on real byte streams, S3 through
botocore Stubber on a real client with the expected parameters, the handler's logs."""

from __future__ import annotations

import copy
import importlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from batch_manifest import manifest
from batch_manifest.manifest import ManifestError, RecordCountMismatch, Run, count_lines, write_manifest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tests.unit.front_door_support import Context

EVENT: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "events" / "batch_manifest.json").read_text(encoding="utf-8")
)
BUCKET = EVENT["bucket"]
INPUT = EVENT["input_prefix"]
OUTPUT = EVENT["output_prefix"]
ENV = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "POWERTOOLS_SERVICE_NAME": "sagebert-batch-manifest",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


class Chunks(io.RawIOBase):
    """A stream that hands out at most `limit` bytes per read and records each read's size."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data, self._limit, self._at = data, limit, 0
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._limit if size < 0 else min(size, self._limit)
        self.reads.append(size)
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk


@pytest.fixture
def s3() -> Any:
    return boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-1"
    ).client("s3")


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def listing(keys: list[str], truncated_with: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"Contents": [{"Key": key, "Size": 1} for key in keys], "IsTruncated": bool(truncated_with)}
    if truncated_with:
        page["NextContinuationToken"] = truncated_with
    return page


# --- counting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "records"),
    [
        (b"", 0),
        (b'"one"', 1),  # no trailing newline: the last record still counts
        (b'"one"\n', 1),  # a trailing newline ends the last record, it does not start another
        (b'"one"\n"two"\n', 2),
        (b'"one"\n"two"', 2),
        (b'"one"\n\n"three"\n', 3),  # a blank line in the middle is a record (the model marks it)
        (b"\n", 1),
        (b'"caf\xc3\xa9"\r\n"two"\r\n', 2),  # CRLF: split at \n as batch transform does
        ('"line\u2028separator"\n'.encode(), 1),  # U+2028 inside a JSON string is not a line break
    ],
)
def test_records_are_lines_as_batch_transform_splits_them(data: bytes, records: int) -> None:
    assert count_lines(io.BytesIO(data)) == records
    assert count_lines(io.BytesIO(data), chunk_bytes=1) == records


def test_a_large_object_is_read_in_chunks_and_a_boundary_on_a_newline_is_not_counted_twice() -> None:
    # Given 200,000 records of varying length, read 4 KiB at a time (chunk edges fall everywhere,
    # including right after a newline and right before one).
    lines = [json.dumps(f"review {i} " + "x" * (i % 37)).encode() for i in range(200_000)]
    data = b"\n".join(lines)
    for tail, expected in ((b"", 200_000), (b"\n", 200_000)):
        stream = Chunks(data + tail, limit=1 << 20)
        assert count_lines(stream, chunk_bytes=4096) == expected
        assert max(stream.reads) == 4096 and len(stream.reads) > len(data) // 4096
    # The last chunk being exactly "\n" (boundary on the final newline).
    assert count_lines(io.BytesIO(b"ab\n"), chunk_bytes=2) == 1
    assert count_lines(io.BytesIO(b"ab\ncd"), chunk_bytes=3) == 2


def test_the_event_parses_with_epoch_milliseconds_and_iso_times() -> None:
    run = Run.from_event(EVENT)
    assert run.started.isoformat() == "2026-11-26T02:02:10.123000+00:00"
    assert run.ended.isoformat() == "2026-11-26T02:09:40.500000+00:00"
    assert run.input_uri == f"s3://{BUCKET}/{INPUT}" and run.output_uri == f"s3://{BUCKET}/{OUTPUT}"
    assert manifest.parse_time(1795658530, "started") == manifest.parse_time(1795658530000, "started")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bucket": ""}, "event.bucket must be a non-empty string"),
        ({"input_prefix": "batch/input/2026-11-26"}, "event.input_prefix = 'batch/input/2026-11-26' must end with '/'"),
        ({"job": None}, "event.job must be a non-empty string"),
        ({"started": "yesterday"}, "event.started = 'yesterday' is not an ISO 8601 time"),
        ({"ended": True}, "event.ended must be a time"),
        ({"ended": None}, "event.ended must be an ISO 8601 time or epoch seconds"),
    ],
)
def test_a_bad_event_is_refused_with_the_field_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Run.from_event({**EVENT, **change})


# --- S3 through Stubber --------------------------------------------------------------------------


def stub_run(stub: Stubber, inputs: dict[str, bytes], outputs: dict[str, bytes], extra_output_keys: list[str]) -> None:
    """The calls write_manifest makes, in order, with the parameters it must send."""
    input_keys = [INPUT + name for name in inputs]
    stub.add_response(
        "list_objects_v2",
        listing(input_keys[:1], truncated_with="token-1" if len(input_keys) > 1 else None),
        {"Bucket": BUCKET, "Prefix": INPUT},
    )
    if len(input_keys) > 1:
        stub.add_response(
            "list_objects_v2",
            listing(input_keys[1:]),
            {"Bucket": BUCKET, "Prefix": INPUT, "ContinuationToken": "token-1"},
        )
    output_keys = [OUTPUT + name for name in outputs]
    stub.add_response(
        "list_objects_v2",
        listing(output_keys + [OUTPUT + k for k in extra_output_keys]),
        {"Bucket": BUCKET, "Prefix": OUTPUT},
    )
    for key, data in [*zip(input_keys, inputs.values(), strict=True), *zip(output_keys, outputs.values(), strict=True)]:
        stub.add_response("get_object", {"Body": body(data)}, {"Bucket": BUCKET, "Key": key})
    stub.add_response(
        "put_object",
        {"ETag": '"etag"'},
        {"Bucket": BUCKET, "Key": OUTPUT + "_manifest.json", "Body": ANY, "ContentType": "application/json"},
    )


@pytest.fixture
def recorded(s3: Any) -> Iterator[list[dict[str, Any]]]:
    """Every PutObject request's parameters, as sent."""
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(copy.deepcopy(params))

    s3.meta.events.register("provide-client-params.s3.PutObject", record)
    yield requests


def test_a_complete_run_writes_its_manifest(s3: Any, recorded: list[dict[str, Any]]) -> None:
    # Given two input objects (listed over two pages) and their two .out objects, next to an earlier
    # _skipped.json-style object that is not a result,
    inputs = {"a.jsonl": b'"one"\n"two"\n', "b.jsonl": b'"three"'}
    outputs = {"a.jsonl.out": b'{"label": "positive"}\n{"label": "negative"}\n', "b.jsonl.out": b'{"error": "x"}\n'}
    with Stubber(s3) as stub:
        stub_run(stub, inputs, outputs, extra_output_keys=["_notes.json"])
        result = write_manifest(s3, Run.from_event(EVENT))
        stub.assert_no_pending_responses()
    # then the manifest counts 3 records each way and is written under the run's prefix.
    (put,) = recorded
    assert put["Key"] == OUTPUT + "_manifest.json"
    assert json.loads(put["Body"]) == result
    assert result == {
        "job": EVENT["job"],
        "execution": EVENT["execution"],
        "status": "complete",
        "input": f"s3://{BUCKET}/{INPUT}",
        "output": f"s3://{BUCKET}/{OUTPUT}",
        "input_objects": 2,
        "output_objects": 2,
        "input_records": 3,
        "output_records": 3,
        "started": "2026-11-26T02:02:10.123000Z",
        "ended": "2026-11-26T02:09:40.500000Z",
        "duration_s": 450.377,
    }


def test_a_mismatch_raises_after_writing_a_mismatch_manifest(s3: Any, recorded: list[dict[str, Any]]) -> None:
    # Given 3 input records but only 2 output records,
    inputs = {"a.jsonl": b'"one"\n"two"\n"three"\n'}
    outputs = {"a.jsonl.out": b'{"label": "positive"}\n{"label": "negative"}'}
    with Stubber(s3) as stub:
        stub_run(stub, inputs, outputs, extra_output_keys=[])
        # when the manifest is written, then the run fails, naming the counts and the manifest,
        with pytest.raises(RecordCountMismatch, match=r"2 output records for 3 input records .*_manifest\.json"):
            write_manifest(s3, Run.from_event(EVENT))
        stub.assert_no_pending_responses()
    # and the manifest was written first, with status mismatch.
    (put,) = recorded
    written = json.loads(put["Body"])
    assert written["status"] == "mismatch"
    assert (written["input_records"], written["output_records"]) == (3, 2)


def test_an_s3_error_propagates(s3: Any) -> None:
    with Stubber(s3) as stub:
        stub.add_client_error("list_objects_v2", "AccessDenied", http_status_code=403)
        with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
            write_manifest(s3, Run.from_event(EVENT))


# --- the handler ---------------------------------------------------------------------------------


@pytest.fixture
def handler_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("batch_manifest.handler", None)
    module = importlib.import_module("batch_manifest.handler")
    yield module
    sys.modules.pop("batch_manifest.handler", None)


def test_the_handler_logs_counts_but_never_contents(handler_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", stream)
    secret = "my card number is 4111 1111 1111 1111"
    inputs = {"a.jsonl": json.dumps(secret).encode() + b"\n"}
    outputs = {"a.jsonl.out": b'{"label": "negative", "score": 0.91}\n'}
    with Stubber(handler_module.client) as stub:
        stub_run(stub, inputs, outputs, extra_output_keys=[])
        result = handler_module.lambda_handler(copy.deepcopy(EVENT), Context())
    assert result["status"] == "complete" and result["input_records"] == 1
    logs = stream.getvalue()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith('{"level"')]
    (written,) = [r for r in records if r["message"] == "manifest written"]
    assert written["input_records"] == written["output_records"] == 1 and written["job"] == EVENT["job"]
    assert "4111" not in logs and "negative" not in logs


def test_the_handler_fails_the_run_on_a_mismatch(handler_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", io.StringIO())
    with Stubber(handler_module.client) as stub:
        stub_run(stub, {"a.jsonl": b'"one"\n"two"\n'}, {"a.jsonl.out": b"{}\n"}, extra_output_keys=[])
        with pytest.raises(RecordCountMismatch):
            handler_module.lambda_handler(copy.deepcopy(EVENT), Context())
