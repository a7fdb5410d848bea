"""The authorization gate on synthesized apps: the shipped stages, and one test app with a registry owner and a
consumer in two accounts, an inference component behind the front door, async, serverless and an everything-at-once
stage (variants, capture, batch, monitoring). Each app is synthesized once (module-scoped) through build_app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app import ROOT, build_app
from infra.config.stage import load_all
from sagebert.checks import authorization

OWNER, CONSUMER, REGION = "111111111111", "222222222222", "eu-west-1"
GROUP = "sagebert-models"
KEY = f"arn:aws:kms:{REGION}:{OWNER}:key/12345678-1234-1234-1234-123456789012"
S3_URI = "s3://releases-bucket/sagebert/v8/model.tar.gz"


def _check(outdir: Path, config_dir: Path) -> authorization.Report:
    return authorization.check(authorization.read_stages(outdir, load_all(config_dir)))


@pytest.fixture(scope="module")
def shipped(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> authorization.Report:
    outdir = tmp_path_factory.mktemp("shipped")
    build_app(outdir=str(outdir)).synth()
    return _check(outdir, ROOT / "config")


def _write(folder: Path, name: str, config: dict[str, Any]) -> None:
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.fixture(scope="module")
def test_app(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> authorization.Report:
    config_dir = tmp_path_factory.mktemp("config")
    dev = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text(encoding="utf-8"))
    dev.pop("training", None)
    _write(config_dir, "component", dev)
    _write(
        config_dir,
        "owner",
        {
            "account": OWNER,
            "region": REGION,
            "registry": {"owner": True, "group": GROUP, "share_with_accounts": [CONSUMER]},
        },
    )
    _write(
        config_dir,
        "consumer",
        {
            "account": CONSUMER,
            "region": REGION,
            "model": {
                "source": "registry",
                "group": GROUP,
                "group_account": OWNER,
                "version": 3,
                "model_data_prefix": "s3://sagebert-owner-artifacts/registry/",
                "kms_key_arn": KEY,
            },
        },
    )
    _write(config_dir, "asynchronous", {"endpoint": {"compute": "async", "instance_type": "ml.c6i.large"}})
    _write(config_dir, "serverless", {"endpoint": {"compute": "serverless"}})
    _write(
        config_dir,
        "everything",
        {
            "endpoint": {
                "compute": "cpu",
                "instance_type": "ml.c6i.large",
                "instance_count": 2,
                "variants": [{"name": "Candidate", "weight": 0.25, "model": {"source": "s3", "uri": S3_URI}}],
                "data_capture": {"sampling_percent": 5},
            },
            "api": {"auth": "iam"},
            "batch": {"schedule": "cron(0 2 * * ? *)", "instance_type": "ml.c6i.large"},
            "monitoring": {"dashboard": True},
        },
    )
    outdir = tmp_path_factory.mktemp("out")
    none = tmp_path_factory.mktemp("resolved") / "absent.json"
    build_app(config_dir=config_dir, outdir=str(outdir), resolved_models=none).synth()
    return _check(outdir, config_dir)


def test_the_shipped_stages_pass(shipped: authorization.Report) -> None:
    assert shipped.failures == []
    stages = {stage for stage, _ in shipped.calls}
    assert stages == {"SageBert-dev", "SageBert-staging", "SageBert-prod"}
    actions = {call.action for _, call in shipped.calls}
    # Every principal class of the issue is there: front door, manifest function, state machine, scheduler, model
    # roles, alarms to encrypted topics.
    assert {
        "sagemaker:InvokeEndpoint",
        "s3:ListBucket",
        "sagemaker:CreateTransformJob",
        "states:StartExecution",
        "logs:PutLogEvents",
        "cloudwatch:PutMetricData",
        "sns:Publish",
        "kms:GenerateDataKey",
    } <= actions
    alarms = [c for _, c in shipped.calls if c.principal.service == "cloudwatch.amazonaws.com"]
    assert {c.action for c in alarms} == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey"}


def test_dev_checks_the_inference_component_calls(shipped: authorization.Report) -> None:
    dev = [c for stage, c in shipped.calls if stage == "SageBert-dev"]
    assert any(c.action == "sagemaker:InvokeEndpoint" and c.resource_type == "inference-component" for c in dev)
    assert any("/aws/sagemaker/InferenceComponents/sagebert-dev" in c.resource for c in dev)


def test_the_test_apps_pass(test_app: authorization.Report) -> None:
    assert test_app.failures == []
    stages = {stage for stage, _ in test_app.calls}
    assert {
        "SageBert-component",
        "SageBert-consumer",
        "SageBert-asynchronous",
        "SageBert-serverless",
        "SageBert-everything",
    } <= stages
    consumer = [c for stage, c in test_app.calls if stage == "SageBert-consumer"]
    # The consumer's model role reads the owner's archive and key; CloudFormation creates the model from the package.
    assert {"s3:GetObject", "kms:Decrypt", "sagemaker:CreateModel"} <= {c.action for c in consumer}
    asynchronous = [c for stage, c in test_app.calls if stage == "SageBert-asynchronous"]
    assert any(c.action == "sns:Publish" for c in asynchronous)
    everything = [c for stage, c in test_app.calls if stage == "SageBert-everything"]
    assert any("capture" in c.resource and c.action == "s3:PutObject" for c in everything)
