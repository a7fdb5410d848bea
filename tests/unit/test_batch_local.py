"""How the local batch run splits records into requests, as SageMaker's MultiRecord does."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagebert.local.batch import BatchError, mini_batches, read_records


def test_records_are_packed_in_order_up_to_the_max_payload() -> None:
    records = [b"a" * 3, b"b" * 3, b"c" * 3, b"d" * 8]  # 4, 4, 4 and 9 bytes with their newlines
    assert list(mini_batches(records, 9, multi_record=True)) == [(0, 2), (2, 3), (3, 4)]
    assert list(mini_batches(records, 100, multi_record=True)) == [(0, 4)]
    assert list(mini_batches(records, 100, multi_record=False)) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_a_record_over_the_max_payload_is_refused_with_its_number() -> None:
    with pytest.raises(BatchError, match="record 2 is 10 bytes, over the max payload of 9 bytes"):
        list(mini_batches([b"ok", b"x" * 10], 9, multi_record=True))


def test_records_are_lines_split_at_newline_only(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes('"a\u2028b"\n"c"\n\n"d"'.encode())
    assert read_records(path) == ['"a\u2028b"'.encode(), b'"c"', b"", b'"d"']
    path.write_bytes(b"")
    assert read_records(path) == []


def test_batch_local_runs_with_a_transform_jobs_default_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI stays free of the config schema (the pipeline's smoke step runs it with botocore alone), so it
    # states the default itself; this keeps it the transform job's.
    from infra.config.batch import TRANSFORM_MAX_PAYLOAD_MB
    from sagebert import __main__ as cli
    from sagebert.local import batch

    passed: dict[str, object] = {}
    monkeypatch.setattr(batch, "main", lambda *args, **kwargs: passed.update(kwargs) or 0)
    assert cli.main(["batch-local", "--input", "in.jsonl", "--output", "out.jsonl"]) == 0
    assert passed["max_payload_mb"] == TRANSFORM_MAX_PAYLOAD_MB
