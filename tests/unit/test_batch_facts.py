"""Facts the batch path's runtimes share, kept equal where they cannot import one another.

infra/ builds the transform job's request and the state machine; lambdas/batch_manifest writes the
run's manifest; model_code/ answers the job's requests inside the container; sagebert.local.batch runs
a transform here. infra may import neither lambdas/ nor model_code/, and those import nothing of
infra, so each of them keeps its own copy of what they share and these tests keep the copies equal.
sagebert.local.batch imports its facts from infra (the bad-lines variable, the job's defaults), and
the CLI's defaults are checked against the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from batch_manifest import manifest as lambda_manifest

from infra.batch.manifest import MANIFEST_NAME
from infra.batch.state_machine import transform_arguments
from infra.config.batch import BAD_LINES_VARIABLE, HANDLER_MAX_LINES, BatchSettings
from sagebert.__main__ import main as cli
from sagebert.local import batch as local_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import inference

BAD_LINES_MODES: tuple[str, ...] = get_args(BatchSettings.model_fields["bad_lines"].annotation)


def test_the_manifest_is_named_as_the_function_writes_it() -> None:
    assert MANIFEST_NAME == lambda_manifest.MANIFEST_NAME


@pytest.mark.parametrize("mode", BAD_LINES_MODES)
def test_the_container_reads_the_bad_lines_mode_the_job_sets(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (variable,) = set(BatchSettings(bad_lines=mode).container_environment) - set(BatchSettings().environment)
    assert variable == BAD_LINES_VARIABLE
    monkeypatch.setenv(variable, mode)
    assert inference.bad_lines_mode() == mode


def test_the_container_refuses_a_mode_the_config_does_not_offer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BAD_LINES_VARIABLE, "skip")
    with pytest.raises(ValueError, match=f"{BAD_LINES_VARIABLE}='skip'; allowed: {', '.join(BAD_LINES_MODES)}"):
        inference.bad_lines_mode()


def test_requests_are_sized_by_the_handlers_line_limit() -> None:
    assert HANDLER_MAX_LINES == inference.MAX_LINES


def test_the_job_and_a_local_run_speak_the_content_type_the_container_takes() -> None:
    arguments = transform_arguments(BatchSettings(), "model", kms.Key(Stack(), "Key"))
    assert arguments["TransformInput"]["ContentType"] == arguments["TransformOutput"]["Accept"] == local_batch.JSONL
    assert local_batch.JSONL in inference.JSONL


def test_the_cli_runs_locally_with_a_transform_jobs_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def main(archive: Path, input_path: Path, output_path: Path, **options: Any) -> int:
        seen.update(options)
        return 0

    monkeypatch.setattr(local_batch, "main", main)
    assert cli(["batch-local", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 0
    job = BatchSettings()
    assert (seen["max_payload_mb"], seen["bad_lines"]) == (job.max_payload_mb, job.bad_lines)
    for mode in BAD_LINES_MODES:
        assert cli(["batch-local", "--input", "in", "--output", "out", "--bad-lines", mode]) == 0
        assert seen["bad_lines"] == mode
