#!/usr/bin/env python3
"""CDK entry point: one SageBert-<stage> Stage per file in config/, the promotion pipeline when
config/pipeline.yaml enables it, compliance checks on all."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aws_cdk import App

from infra.config.errors import ConfigError
from infra.config.pipeline import load_pipeline_config
from infra.config.resolved_models import RESOLVED_MODELS_FILE, load_resolved_models
from infra.config.stage import load_all
from infra.operations.compliance import add_compliance_checks
from infra.pipeline import PIPELINE_STACK, PipelineStack
from infra.project_files import ProjectFiles
from infra.release.hugging_face_model import ArtifactMissingError
from infra.stage import SageBertStage

# The one place infra's paths are resolved: the constructs take what they need as arguments.
ROOT = Path(__file__).resolve().parent


def feature_flags() -> dict[str, object]:
    """cdk.json's context (feature flags only): the constructs are written against these."""
    flags: dict[str, object] = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return flags


def project_files(resolved_models: Path = ROOT / RESOLVED_MODELS_FILE) -> ProjectFiles:
    """The repository files the stages build from: Lambda code, model archives (config paths are relative to
    the root), the registry versions `resolve-models` wrote (read once, here), and the CDK CLI version
    package.json pins."""
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    return ProjectFiles(
        repository=ROOT,
        lambdas=ROOT / "lambdas",
        cdk_cli_version=str(package["devDependencies"]["aws-cdk"]),
        resolved_models=load_resolved_models(resolved_models),
    )


def build_app(
    config_dir: Path = ROOT / "config", outdir: str | None = None, resolved_models: Path = ROOT / RESOLVED_MODELS_FILE
) -> App:
    """The whole app. cdk.json's feature flags are applied here too, so tests and `python app.py`
    synthesize exactly what `cdk synth` does (the CLI's own context still takes precedence).
    `resolved_models` is the resolved-models file (absent: no registry group is resolved)."""
    app = App(context=feature_flags(), outdir=outdir)
    stages = load_all(config_dir)
    pipeline = load_pipeline_config(config_dir, stages)
    files = project_files(resolved_models)
    # The plain stages stay with the pipeline enabled: `cdk deploy 'SageBert-dev/*'` by hand keeps
    # working. The pipeline's own copies are nested in its stack (other construct paths, the same
    # CloudFormation stack names), so both routes update the same stacks in the stage's account.
    for name, config in stages.items():
        SageBertStage(app, name, config=config, files=files)
    if pipeline is not None and pipeline.enabled:
        PipelineStack(
            app,
            PIPELINE_STACK,
            config=pipeline,
            stages=stages,
            files=files,
            description="sagebert: promotion pipeline (CDK Pipelines) dev -> staging -> approval -> prod",
        )
    add_compliance_checks(app)
    return app


# Another set of stage files than config/ (`SAGEBERT_CONFIG_DIR=dir npx cdk synth`): how the tests run `make synth`'s
# own path over stage files with every optional capability switched on.
CONFIG_DIR_VARIABLE = "SAGEBERT_CONFIG_DIR"


def main() -> int:
    try:
        app = build_app(config_dir=Path(os.environ.get(CONFIG_DIR_VARIABLE) or ROOT / "config"))
    except (ConfigError, ArtifactMissingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
