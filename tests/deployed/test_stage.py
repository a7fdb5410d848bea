"""A deployed stage answers through its API, runs a batch, has its alarms and (from the registry) runs an Approved
model package version."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest

from infra.config.model import RegistryModel
from infra.config.stage import StageConfig
from infra.pipeline import SCALE_FROM_ZERO_RETRY_WAIT_S, SCALE_FROM_ZERO_WAIT_S
from sagebert.local import smoke

pytestmark = pytest.mark.deployed

BATCH_TIMEOUT_S = 45 * 60  # a transform job starts instances: minutes, not seconds
TEXTS = ["A wonderful, reliable app.", "It broke on the first day and support never answered."]


def test_the_endpoint_is_in_service(aws: Any, outputs: dict[str, str]) -> None:
    endpoint = aws.create_client("sagemaker").describe_endpoint(EndpointName=outputs["EndpointName"])
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")


def test_the_api_answers_a_prediction(aws: Any, stage_config: StageConfig, outputs: dict[str, str]) -> None:
    if stage_config.api is None:
        pytest.skip("this stage has no api: section")
    component = stage_config.endpoint.inference_component
    # A stage that scales to zero may be at zero instances: keep trying through the cold start, as the pipeline does.
    waits = (
        {
            "attempts": SCALE_FROM_ZERO_WAIT_S // SCALE_FROM_ZERO_RETRY_WAIT_S + 1,
            "retry_wait_s": SCALE_FROM_ZERO_RETRY_WAIT_S,
        }
        if component is not None and component.scale_to_zero
        else {}
    )
    predictions = smoke.smoke(
        outputs["ApiUrl"], region=aws.get_config_variable("region"), api_key_id=outputs.get("ApiKeyId"), **waits
    )
    assert predictions[0]["label"] in {"positive", "negative"}


def test_a_small_batch_runs_to_its_manifest(aws: Any, stage_config: StageConfig, outputs: dict[str, str]) -> None:
    if stage_config.batch is None:
        pytest.skip("this stage has no batch: section")
    s3 = aws.create_client("s3")
    bucket = outputs["ArtifactBucketName"]
    # A date of its own far in the past, so the run cannot meet real input.
    date = (dt.date(2000, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 3000)).isoformat()
    key = f"{stage_config.batch.input_prefix}{date}/deployed-test.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(json.dumps(t) for t in TEXTS).encode("utf-8"))
    sfn = aws.create_client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=outputs["StateMachineArn"], input=json.dumps({"date": date}))
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    status = "RUNNING"
    while status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(30)
        status = sfn.describe_execution(executionArn=execution["executionArn"])["status"]
    assert status == "SUCCEEDED", f"batch run {execution['executionArn']} ended {status}"
    prefix = f"{stage_config.batch.output_prefix}{date}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    manifest_key = next(o["Key"] for o in listed if o["Key"].endswith("_manifest.json"))
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["input_records"] == manifest["output_records"] == len(TEXTS), manifest


def test_the_alarms_exist(aws: Any, stage_config: StageConfig, outputs: dict[str, str]) -> None:
    # The rollback alarms watch the endpoint by name (an inference component's, by the component's name);
    # monitoring adds its own to the stage's topic.
    cloudwatch = aws.create_client("cloudwatch")
    watched = [{"Name": "EndpointName", "Value": outputs["EndpointName"]}]
    if "InferenceComponentName" in outputs:
        watched.append({"Name": "InferenceComponentName", "Value": outputs["InferenceComponentName"]})
    alarms = [
        alarm
        for page in cloudwatch.get_paginator("describe_alarms").paginate()
        for alarm in page["MetricAlarms"]
        if any(dimension in alarm.get("Dimensions", []) for dimension in watched)
    ]
    metrics = {alarm["MetricName"] for alarm in alarms}
    assert {"Invocation5XXErrors", "ModelLatency"} <= metrics, sorted(metrics)
    if stage_config.monitoring is not None:
        topics = {action for alarm in alarms for action in alarm.get("AlarmActions", [])}
        assert topics, "monitoring is configured but no endpoint alarm notifies a topic"


def test_the_registry_model_is_an_approved_version_of_its_group(
    aws: Any, stage_config: StageConfig, outputs: dict[str, str]
) -> None:
    # A stage with model.source: registry runs a model package version: the deployed model names one of its group,
    # and that version is Approved (an approval is what promotes it; a rejected or pending one must not be serving).
    if not isinstance(stage_config.model, RegistryModel):
        pytest.skip("this stage's model does not come from the registry (model.source is not registry)")
    sagemaker = aws.create_client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=outputs["EndpointName"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    package_arn = model["PrimaryContainer"]["ModelPackageName"]
    assert f":model-package/{stage_config.model.group}/" in package_arn, package_arn
    if stage_config.model.version is not None:
        assert package_arn.endswith(f"/{stage_config.model.version}"), package_arn
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    assert package["ModelApprovalStatus"] == "Approved", f"{package_arn} is {package['ModelApprovalStatus']}"
