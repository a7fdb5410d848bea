"""`make synth` re-synthesizes when a config file is added, removed or renamed, and its summary
never shows a stage whose file is gone.

The real Makefile runs in a scratch tree holding just the files its synth rule reads; `make -q`
(question mode: exit 0 when the target is up to date, 1 when it would be remade) asks whether the
synth stamp is current, without running cdk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sagebert.assembly import read_assembly
from sagebert.report import synth as synth_report

REPO_ROOT = Path(__file__).resolve().parents[2]
STAMP = "cdk.out/.gates-passed"
OLD = 1_700_000_000  # every input's mtime: long before the stamp
FILES = [
    "app.py",
    "cdk.json",
    "config/dev.yaml",
    "config/staging.yaml",
    "config/pipeline.yaml",
    "infra/stage.py",
    "lambdas/front_door/handler.py",
    "requirements/lock.txt",
    "requirements/weights.txt",
    "package.json",
    "package-lock.json",
    ".venv/.installed",
    "node_modules/.installed",
    "model_code/train.py",
    "model_code/inference.py",
    "sagebert/release/package.py",
    "sagebert/release/archive.py",
    "sagebert/release/quantize.py",
    "sagebert/report/synth.py",
    "sagebert/assembly.py",
    "sagebert/tables.py",
    "data/sentiment/train.jsonl",
    "data/sentiment/validation.jsonl",
    "data/sentiment/test.jsonl",
    "build/demo-classifier/config.json",
    "build/model.tar.gz",
]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    if shutil.which("make") is None:
        pytest.fail("GNU make is missing: the README's verbs need it")
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    (tmp_path / "cdk.out").mkdir()
    (tmp_path / STAMP).touch()
    _synthesized(tmp_path)
    return tmp_path


def _synthesized(root: Path) -> None:
    """As if `make synth` had just run: the list of inputs is written, every input older than the stamp."""
    _up_to_date(root)  # the first run writes build/synth-inputs.txt
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))
    os.utime(root / STAMP, (OLD + 100, OLD + 100))


def _up_to_date(root: Path) -> bool:
    done = subprocess.run(["make", "-q", STAMP], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def test_an_unchanged_tree_is_not_synthesized_again(tree: Path) -> None:
    assert _up_to_date(tree)
    assert _up_to_date(tree)  # asking again does not rewrite the list of inputs


def test_removing_a_stage_config_resynthesizes(tree: Path) -> None:
    (tree / "config/staging.yaml").unlink()
    assert not _up_to_date(tree)


def test_adding_a_stage_config_resynthesizes_even_with_an_old_mtime(tree: Path) -> None:
    # Given a file copied in with its old modification time kept (cp -p, git checkout of an old commit)
    added = tree / "config/qa.yaml"
    added.write_text("x\n", encoding="utf-8")
    os.utime(added, (OLD, OLD))
    assert not _up_to_date(tree)


def test_renaming_a_stage_config_resynthesizes(tree: Path) -> None:
    (tree / "config/staging.yaml").rename(tree / "config/qa.yaml")  # a rename keeps the mtime
    assert not _up_to_date(tree)
    _synthesized(tree)
    assert _up_to_date(tree)


def test_editing_a_file_resynthesizes(tree: Path) -> None:
    (tree / "infra/stage.py").touch()
    assert not _up_to_date(tree)


def test_editing_a_gate_reruns_the_gates(tree: Path) -> None:
    _synthesized(tree)
    (tree / "sagebert/report/synth.py").touch()
    assert not _up_to_date(tree)


def _assembly(out: Path, stages: list[str]) -> Path:
    """A cloud assembly's manifests with one (empty) nested assembly per stage; a stage path with '/' is nested in
    another construct, as the promotion pipeline's copies are (display name SageBert-Pipeline/Promotion/SageBert-dev,
    directory assembly-SageBert-Pipeline-Promotion-SageBert-dev)."""
    artifacts = {}
    for stage in stages:
        display = f"SageBert-{stage}"
        directory = "assembly-" + display.replace("/", "-")
        (out / directory).mkdir(parents=True)
        (out / directory / "manifest.json").write_text(json.dumps({"artifacts": {}}), encoding="utf-8")
        artifacts[directory] = {
            "type": "cdk:cloud-assembly",
            "properties": {"directoryName": directory, "displayName": display},
        }
    (out / "manifest.json").write_text(json.dumps({"artifacts": artifacts}), encoding="utf-8")
    return out


def test_the_report_refuses_an_assembly_that_is_stale_against_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("dev", "prod", "pipeline"):
        (config / f"{name}.yaml").write_text("x: 1\n", encoding="utf-8")
    out = _assembly(tmp_path / "cdk.out", ["dev", "staging"])
    stages = read_assembly(out)
    assert synth_report.stale_stages(stages, config) == (
        "stages without a config file: ['SageBert-staging']; config files without a stage: ['SageBert-prod']"
    )
    assert synth_report.main(out, config) == 1
    assert "run `make synth` again" in capsys.readouterr().err
    (config / "staging.yaml").write_text("x: 1\n", encoding="utf-8")
    (config / "prod.yaml").unlink()
    assert synth_report.stale_stages(stages, config) is None


def test_the_promotion_pipelines_copies_of_the_stages_are_no_stray_stages(tmp_path: Path) -> None:
    # Given config/pipeline.yaml enabled: the assembly holds each stage and the pipeline's copy of it
    # (SageBert-Pipeline/Promotion/SageBert-dev). They are not stages without a config file.
    config = tmp_path / "config"
    config.mkdir()
    for name in ("dev", "prod", "pipeline"):
        (config / f"{name}.yaml").write_text("x: 1\n", encoding="utf-8")
    pipeline = ["Pipeline/Promotion/SageBert-dev", "Pipeline/Promotion/SageBert-prod"]
    stages = read_assembly(_assembly(tmp_path / "cdk.out", ["dev", "prod", *pipeline]))
    assert [stage.name for stage in stages if stage.in_pipeline] == [f"SageBert-{p}" for p in pipeline]
    assert synth_report.stale_stages(stages, config) is None
    # A stray stage of the app is still found beside them.
    (config / "prod.yaml").unlink()
    assert synth_report.stale_stages(stages, config) == (
        "stages without a config file: ['SageBert-prod']; config files without a stage: none"
    )
