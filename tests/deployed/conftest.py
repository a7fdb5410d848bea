"""Deployed tests: run against a stage that `cdk deploy` (or the promotion pipeline) has deployed.

    SAGEBERT_DEPLOYED_STAGE=dev AWS_PROFILE=... AWS_REGION=... .venv/bin/python -m pytest -m deployed

They read the stage's stack outputs (CloudFormation), call its API, run a small batch and check that its
alarms exist. Without credentials, or without SAGEBERT_DEPLOYED_STAGE, every test here skips and says why;
with both, a stack that is missing is a failure (the stage is not deployed as its config says).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config.stage import STAGE_PREFIX, StageConfig, load_stage_config

STAGE_VARIABLE = "SAGEBERT_DEPLOYED_STAGE"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="session")
def aws() -> Any:
    """A botocore session with credentials and a region, else skip (with the reason)."""
    import botocore.session

    session = botocore.session.get_session()
    if session.get_credentials() is None:
        pytest.skip("deployed tests need AWS credentials (none found: set AWS_PROFILE or the AWS_* variables)")
    if not session.get_config_variable("region"):
        pytest.skip("deployed tests need a region: set AWS_REGION to the stage's region")
    return session


@pytest.fixture(scope="session")
def stage_name() -> str:
    name = os.environ.get(STAGE_VARIABLE)
    if not name:
        pytest.skip(f"deployed tests need {STAGE_VARIABLE}=<stage> (e.g. dev): the stage to test")
    return name


@pytest.fixture(scope="session")
def stage_config(stage_name: str) -> StageConfig:
    path = CONFIG_DIR / f"{stage_name}.yaml"
    if not path.is_file():
        pytest.fail(f"{STAGE_VARIABLE}={stage_name}: no {path.name} in config/")
    return load_stage_config(path)


@pytest.fixture(scope="session")
def outputs(aws: Any, stage_name: str) -> Iterator[dict[str, str]]:
    """Every output of the stage's stacks, by output key (stack names are SageBert-<stage>-<Stack>)."""
    cloudformation = aws.create_client("cloudformation")
    prefix = f"{STAGE_PREFIX}{stage_name}-"
    found: dict[str, str] = {}
    paginator = cloudformation.get_paginator("describe_stacks")
    for page in paginator.paginate():
        for stack in page["Stacks"]:
            if stack["StackName"].startswith(prefix) and stack["StackStatus"].endswith("_COMPLETE"):
                for output in stack.get("Outputs", []):
                    found[output["OutputKey"]] = output["OutputValue"]
    if "EndpointName" not in found:
        pytest.fail(f"no deployed serving stack {prefix}Serving with an EndpointName output in this account/region")
    yield found
