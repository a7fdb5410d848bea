"""`make synth`'s own path with every optional capability switched on: the stage files in synth_matrix/ (the promotion
pipeline, a registry owner that keeps its data and a consumer in another account, an inference component, VPC, GPU,
serverless, async, data capture, variants and shadow) go through the CDK CLI and then the report with every gate, as
they would for a user who enabled them. A capability that breaks `make synth` once enabled is the first failure a
user meets; `app.synth()` alone skips the CLI, the report and the gates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from app import CONFIG_DIR_VARIABLE
from infra.config.stage import STAGE_PREFIX, load_all, stage_files
from sagebert.assembly import read_assembly
from sagebert.checks import authorization

MATRIX = Path(__file__).resolve().parent / "synth_matrix"


@dataclass(frozen=True)
class Run:
    out: Path
    synth: subprocess.CompletedProcess[str]
    report: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def run(default_artifact: Path, repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("matrix") / "cdk.out"
    env = {**os.environ, CONFIG_DIR_VARIABLE: str(MATRIX), "CDK_DISABLE_CLI_TELEMETRY": "true"}
    env["CDK_DISABLE_VERSION_CHECK"] = "true"
    # The Makefile's synth recipe: the CDK CLI (cdk.json's app), then the report that runs every gate.
    synth = subprocess.run(
        ["npx", "cdk", "synth", "--quiet", "--no-notices", "--output", str(out)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    report = subprocess.run(
        [sys.executable, "-m", "sagebert", "report", "--outdir", str(out), "--config-dir", str(MATRIX)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return Run(out, synth, report)


def test_the_matrix_switches_every_optional_capability_on() -> None:
    # Given the stage files, then between them they enable what the README lists as optional (so the test below
    # exercises all of it, and a capability dropped from the files is noticed).
    stages = {file.stem: yaml.safe_load(file.read_text(encoding="utf-8")) for file in stage_files(MATRIX)}
    pipeline = yaml.safe_load((MATRIX / "pipeline.yaml").read_text(encoding="utf-8"))
    endpoints = [stage.get("endpoint", {}) for stage in stages.values()]
    models = [stage.get("model", {}) for stage in stages.values()]
    assert pipeline["enabled"] is True and set(pipeline["stages"]) <= set(stages)
    assert {e.get("compute") for e in endpoints} >= {"cpu", "gpu", "serverless", "async"}
    for key in ("inference_component", "vpc", "data_capture", "variants", "shadow"):
        assert any(key in e for e in endpoints), key
    assert any(s.get("registry", {}).get("owner") and s.get("retain_data", True) for s in stages.values())
    assert any(m.get("source") == "registry" and m.get("group_account") for m in models)
    assert {"api", "batch", "monitoring"} <= {key for s in stages.values() for key in s}
    assert any("account" not in s for s in stages.values())  # an environment-agnostic stage too


def test_make_synth_passes_with_every_capability_on(run: Run) -> None:
    # When the CLI synthesizes them and the report runs the gates, then both succeed, as `make synth` would.
    assert run.synth.returncode == 0, run.synth.stdout[-4000:] + run.synth.stderr[-4000:]
    assert run.report.returncode == 0, run.report.stdout[-4000:] + run.report.stderr[-4000:]
    assert "no unacknowledged findings" in run.report.stdout
    assert "no errors or warnings" in run.report.stdout
    for gate in ("retry safety", "export stability", "key lifetime", "service rules", "regions", "authorization"):
        assert f"\n{gate}: " in run.report.stdout, gate


def test_the_summary_has_one_row_per_stage_file_and_the_pipeline_copies_are_synthesized(run: Run) -> None:
    names = [f"{STAGE_PREFIX}{file.stem}" for file in stage_files(MATRIX)]
    rows = [line.split()[0] for line in run.report.stdout.splitlines() if line.startswith(STAGE_PREFIX)]
    assert rows == sorted(names)
    pipeline = yaml.safe_load((MATRIX / "pipeline.yaml").read_text(encoding="utf-8"))
    copies = {stage.name for stage in read_assembly(run.out) if stage.in_pipeline}
    assert copies == {f"SageBert-Pipeline/Promotion/{STAGE_PREFIX}{name}" for name in pipeline["stages"]}


def test_the_pipelines_smoke_tests_may_reach_each_stages_api(run: Run) -> None:
    # The pipeline's own run-time calls are checked too: each smoke test's runner assumes the stage account's role
    # (its trust policy names the runner), which may POST to the stage's predict route.
    report = authorization.check(authorization.read_stages(run.out, load_all(MATRIX)))
    assert report.failures == []
    pipeline = yaml.safe_load((MATRIX / "pipeline.yaml").read_text(encoding="utf-8"))
    calls = [call for stage, call in report.calls if stage == authorization.TOP_LEVEL]
    assumed = {call.resource.rsplit("/", 1)[-1] for call in calls if call.action == "sts:AssumeRole"}
    assert assumed == {f"sagebert-smoke-test-{name}" for name in pipeline["stages"]}
    # gpu's API takes an API key: its smoke test reads the key's value; the others sign the request.
    invokes = [call for call in calls if call.action == "execute-api:Invoke"]
    assert len(invokes) == len(pipeline["stages"]) - 1 and all(c.resource.endswith("/POST/v1/predict") for c in invokes)
    (key,) = [call for call in calls if call.action == "apigateway:GET"]
    assert ":apigateway:eu-west-1::/apikeys/" in key.resource and "SageBert-gpu" in key.source


def test_a_smoke_role_that_trusts_another_runner_is_denied(run: Run, tmp_path: Path) -> None:
    # Given the owner's smoke-test role trusting some other role of the tooling account, then the runner's
    # AssumeRole is denied by the trust policy (cross-account: both sides must allow).
    copy = tmp_path / "cdk.out"
    shutil.copytree(run.out, copy)
    (template,) = (copy / "assembly-SageBert-Pipeline-Promotion-SageBert-owner").glob("*SmokeTest*.template.json")
    text = template.read_text(encoding="utf-8").replace("sagebert-pipeline-smoke-owner", "someone-else")
    template.write_text(text, encoding="utf-8")
    report = authorization.check(authorization.read_stages(copy, load_all(MATRIX)))
    (denied,) = report.failures
    assert "may not sts:AssumeRole on arn:aws:iam::111122223333:role/sagebert-smoke-test-owner" in denied
    assert "the resource policy in account 111122223333 does not allow it" in denied
