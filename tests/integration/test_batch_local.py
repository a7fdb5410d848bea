"""A local batch transform run over 10,000+ records on the real model server, split and assembled as
SageMaker does (MultiRecord under the max payload, AssembleWith Line)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sagebert.local.batch import run
from sagebert.local.serve import LocalEndpoint

pytestmark = pytest.mark.server
DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment"


def test_ten_thousand_records_in_give_ten_thousand_answers_in_order(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    # Given 10,000 real reviews (as JSON strings and {"inputs": ...} objects) and 40 bad lines
    texts = [json.loads(line)["text"] for line in (DATA / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    rng = random.Random(7)
    records: list[str] = []
    bad_at: set[int] = set()
    for index in range(10_040):
        if index % 251 == 250:
            bad_at.add(index)
            records.append(rng.choice(["{oops", '""', '{"text": "wrong key"}', "42", ""]))
        else:
            text = texts[index % len(texts)]
            records.append(json.dumps(text) if index % 2 else json.dumps({"inputs": text}))
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(records) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"

    # When it runs in 64 KB mini-batches, two at a time
    manifest = run(endpoint, source, output, max_payload_mb=1 / 16, concurrency=2, progress=False)

    # Then every record has its answer on the same line, the bad ones marked, and the manifest says so
    answers = [json.loads(line) for line in output.read_text(encoding="utf-8").split("\n")[:-1]]
    assert manifest.status == "succeeded" and manifest.requests > 10
    assert len(answers) == len(records) == manifest.input_records == manifest.output_records
    assert {i for i, a in enumerate(answers) if "error" in a} == bad_at and manifest.error_records == len(bad_at)
    assert all(answers[i]["label"] in ("positive", "negative") for i in range(len(records)) if i not in bad_at)
    # Order: the same text gets the same P(positive) wherever its mini-batch ran (dynamic int8 lets it
    # move by ~1e-4 with its batch companions; another text's answer would be far off for most texts)
    by_text: dict[str, list[float]] = {}
    for index, answer in enumerate(answers):
        if index not in bad_at:
            positive = answer["score"] if answer["label"] == "positive" else 1 - answer["score"]
            by_text.setdefault(texts[index % len(texts)], []).append(positive)
    assert max(max(p) - min(p) for p in by_text.values()) < 0.01
    saved = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert saved["output_records"] == len(records) and saved["status"] == "succeeded"


def test_a_run_with_no_input_is_skipped_with_its_reason(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    manifest = run(endpoint, empty, tmp_path / "out.jsonl", progress=False)
    assert (manifest.status, manifest.requests) == ("skipped", 0) and "no records" in manifest.reason
    assert not (tmp_path / "out.jsonl").exists() and (tmp_path / "out.jsonl.manifest.json").exists()


def test_a_record_over_the_max_payload_fails_the_run_and_leaves_no_output(
    endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('"short"\n' + json.dumps("x" * 5000) + "\n", encoding="utf-8")
    manifest = run(endpoint, source, tmp_path / "out.jsonl", max_payload_mb=4000 / (1024 * 1024), progress=False)
    assert manifest.status == "failed" and "record 2 is 5002 bytes, over the max payload of 4000" in manifest.reason
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.partial").exists()
