"""RealtimeEndpoint in small stacks: guardrails, stable names, autoscaling, variants, capture, serverless,
NVMe storage and async output, as CloudFormation will see them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from app import feature_flags, project_files
from infra.catalog import compute_profiles
from infra.config.endpoint import EndpointSettings
from infra.config.stage import StageConfig
from infra.online.realtime_endpoint import RealtimeEndpoint, VariantModel
from infra.stage import SageBertStage

ENDPOINT_NAME = "sagebert-test"


def _build(settings: dict[str, Any], variants: list[VariantModel], *, invoker: bool = False) -> dict[str, Any]:
    """Synthesize a bare stack holding one RealtimeEndpoint; return its template as JSON."""
    stack = Stack(App(context=feature_flags()), "Bare")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    endpoint = RealtimeEndpoint(
        stack,
        "Endpoint",
        settings=EndpointSettings.model_validate(settings),
        endpoint_name=ENDPOINT_NAME,
        variants=variants,
        shadow=None,
        key=key,
        bucket=s3.Bucket(stack, "Bucket"),
    )
    if invoker:
        caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        endpoint.grant_invoke(caller)
    template: dict[str, Any] = dict(Template.from_stack(stack).to_json())
    return template


# Each scenario is one synth (1-3 s); they are built once for the module.
CANARY = {
    "instance_type": "ml.c6i.large",
    "instance_count": 2,
    "weight": 3,
    "volume_size_gb": 30,
    "autoscaling": {"min_instances": 2, "max_instances": 6, "scale_in_cooldown_s": 600, "scale_out_cooldown_s": 120},
    "rollout": {
        "strategy": "canary",
        "canary_percent": 25,
        "wait_interval_s": 420,
        "termination_wait_s": 900,
        "max_execution_timeout_s": 7200,
        "max_5xx_errors_per_minute": 7,
        "max_model_latency_ms": 750,
    },
    "data_capture": {"sampling_percent": 20, "prefix": "capture/live/", "capture": ["input", "output"]},
}
LINEAR = {
    "compute": "gpu",
    "instance_type": "ml.g4dn.xlarge",
    "variant_name": "Main",
    "autoscaling": {"min_instances": 1, "max_instances": 3, "target_invocations_per_minute": 1200},
    "rollout": {"strategy": "linear", "linear_step_percent": 10, "wait_interval_s": 60},
}
SERVERLESS = {
    "compute": "serverless",
    "serverless": {"memory_mb": 4096, "max_concurrency": 20, "provisioned_concurrency": 2},
}
ASYNC = {
    "compute": "async",
    "instance_type": "ml.c5d.large",
    "autoscaling": {"min_instances": 0, "max_instances": 3, "target_backlog_per_instance": 8},
    "async_inference": {
        "output_prefix": "answers/",
        "failure_prefix": "errors/",
        "max_concurrent_invocations_per_instance": 2,
        "include_answer_in_notification": True,
    },
}
PLAIN = {"instance_type": "ml.c6i.xlarge", "instance_count": 2}


@pytest.fixture(scope="module")
def canary() -> dict[str, Any]:
    return _build(
        CANARY,
        [
            VariantModel("AllTraffic", "model-main", "ml.c6i.large", 2, 3.0),
            VariantModel("Candidate", "model-candidate", "ml.c6i.large", 1, 1.0),
        ],
    )


@pytest.fixture(scope="module")
def linear() -> dict[str, Any]:
    return _build(LINEAR, [VariantModel("Main", "model-gpu", "ml.g4dn.xlarge", 1, 1.0)])


@pytest.fixture(scope="module")
def serverless() -> dict[str, Any]:
    return _build(SERVERLESS, [VariantModel("AllTraffic", "model-serverless", None, 1, 1.0)])


@pytest.fixture(scope="module")
def async_() -> dict[str, Any]:
    return _build(ASYNC, [VariantModel("AllTraffic", "model-async", "ml.c5d.large", 1, 1.0)])


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    return _build(PLAIN, [VariantModel("AllTraffic", "model-plain", "ml.c6i.xlarge", 2, 1.0)], invoker=True)


@pytest.fixture(scope="module")
def shadow_serving(default_artifact: Path) -> dict[str, Any]:
    """A stage's serving stack with a shadow variant: the weight is derived from the config there."""
    config = StageConfig.model_validate(
        {
            "endpoint": {
                "instance_type": "ml.c6i.large",
                "weight": 2,
                "shadow": {
                    "name": "Candidate",
                    "sampling_percent": 25,
                    "model": {"source": "s3", "uri": "s3://releases-bucket/sagebert/v8/model.tar.gz"},
                    "instance_type": "ml.c6i.xlarge",
                },
            }
        }
    )
    stage = SageBertStage(App(context=feature_flags()), "shadow", config=config, files=project_files())
    template: dict[str, Any] = dict(Template.from_stack(stage.serving).to_json())
    return template


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def one(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (found,) = resources(template, resource_type).values()
    props: dict[str, Any] = found["Properties"]
    return props


def endpoint_config(template: dict[str, Any]) -> dict[str, Any]:
    return one(template, "AWS::SageMaker::EndpointConfig")


def blue_green(template: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = one(template, "AWS::SageMaker::Endpoint")["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    return policy


def scaling_policies(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()]


def dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


# --- Deployment guardrails ----------------------------------------------------------------------


def test_canary_rollout_uses_the_configured_guardrails(canary: dict[str, Any]) -> None:
    assert blue_green(canary) == {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            "WaitIntervalInSeconds": 420,
        },
        "TerminationWaitInSeconds": 900,
        "MaximumExecutionTimeoutInSeconds": 7200,
    }


def test_linear_rollout_shifts_in_steps(linear: dict[str, Any]) -> None:
    routing = blue_green(linear)["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        "WaitIntervalInSeconds": 60,
    }
    # Defaults of the rest of the rollout section.
    assert blue_green(linear)["TerminationWaitInSeconds"] == 300
    assert blue_green(linear)["MaximumExecutionTimeoutInSeconds"] == 3600


def test_all_at_once_is_the_default_and_still_blue_green(plain: dict[str, Any], serverless: dict[str, Any]) -> None:
    for template in (plain, serverless):
        routing = blue_green(template)["TrafficRoutingConfiguration"]
        assert routing == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}


def test_rollback_alarms_are_exactly_two_per_production_variant(canary: dict[str, Any]) -> None:
    alarms = resources(canary, "AWS::CloudWatch::Alarm")
    rollback = one(canary, "AWS::SageMaker::Endpoint")["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert sorted(a["AlarmName"]["Ref"] for a in rollback) == sorted(alarms)
    assert len(alarms) == 4
    by_variant: dict[str, dict[str, dict[str, Any]]] = {}
    for alarm in (a["Properties"] for a in alarms.values()):
        dims = dimensions(alarm)
        assert dims["EndpointName"] == ENDPOINT_NAME  # the fixed name: the alarm exists before the endpoint
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert alarm["Period"] == 60
        by_variant.setdefault(dims["VariantName"], {})[alarm["MetricName"]] = alarm
    assert set(by_variant) == {"AllTraffic", "Candidate"}
    for metrics in by_variant.values():
        assert set(metrics) == {"Invocation5XXErrors", "ModelLatency"}
        errors, latency = metrics["Invocation5XXErrors"], metrics["ModelLatency"]
        assert errors["Statistic"] == "Sum"
        assert errors["Threshold"] == 7
        assert errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert latency["ExtendedStatistic"] == "p99"
        # SageMaker reports ModelLatency in microseconds: 750 ms is 750000.
        assert latency["Threshold"] == 750_000
        assert latency["ComparisonOperator"] == "GreaterThanThreshold"


def test_single_variant_gets_two_rollback_alarms_on_its_name(linear: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in resources(linear, "AWS::CloudWatch::Alarm").values()]
    assert sorted(a["MetricName"] for a in alarms) == ["Invocation5XXErrors", "ModelLatency"]
    assert {dimensions(a)["VariantName"] for a in alarms} == {"Main"}
    assert {a["Threshold"] for a in alarms} == {5, 1_000_000}  # the rollout defaults: 5 errors, 1000 ms


# --- Stable names -------------------------------------------------------------------------------


def test_variant_names_are_the_configured_ones_and_only_the_endpoint_is_named(
    canary: dict[str, Any], linear: dict[str, Any]
) -> None:
    assert [v["VariantName"] for v in endpoint_config(canary)["ProductionVariants"]] == ["AllTraffic", "Candidate"]
    assert [v["VariantName"] for v in endpoint_config(linear)["ProductionVariants"]] == ["Main"]
    for template in (canary, linear):
        assert one(template, "AWS::SageMaker::Endpoint")["EndpointName"] == ENDPOINT_NAME
        assert "EndpointConfigName" not in endpoint_config(template)
        # The endpoint follows the generated config name (replaced on every change).
        assert one(template, "AWS::SageMaker::Endpoint")["EndpointConfigName"]["Fn::GetAtt"][1] == (
            "EndpointConfigName"
        )


# --- Autoscaling --------------------------------------------------------------------------------


def test_cpu_autoscaling_tracks_the_derived_invocation_target(canary: dict[str, Any]) -> None:
    target = one(canary, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["ResourceId"] == f"endpoint/{ENDPOINT_NAME}/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert target["ServiceNamespace"] == "sagemaker"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    (policy,) = scaling_policies(canary)
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    # 120 requests/s per physical core x 1 core (ml.c6i.large's 2 vCPUs are one core's hyperthreads) x 60 s x
    # 0.5 headroom; twice that on ml.c6i.xlarge's two cores.
    assert tracking["TargetValue"] == 3600 == compute_profiles.target_invocations_per_minute("ml.c6i.large")
    assert compute_profiles.target_invocations_per_minute("ml.c6i.xlarge") == 7200
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (600, 120)


@pytest.mark.parametrize(
    ("instance_type", "expected"),
    # Per physical core: 2 vCPUs are one core's hyperthreads, except on T2 (one core per vCPU).
    [("ml.c6i.large", 3600), ("ml.c6i.xlarge", 7200), ("ml.m5.4xlarge", 28800), ("ml.t2.medium", 7200)],
)
def test_derived_target_scales_with_cores(instance_type: str, expected: int) -> None:
    settings = EndpointSettings.model_validate({"instance_type": instance_type, "autoscaling": {}})
    assert settings.scaling_target == expected


def test_explicit_target_is_used_on_gpu(linear: dict[str, Any]) -> None:
    target = one(linear, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["ResourceId"] == f"endpoint/{ENDPOINT_NAME}/variant/Main"
    (policy,) = scaling_policies(linear)
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 1200
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (300, 60)  # the defaults


def test_updates_keep_scaled_instance_counts_only_under_autoscaling(
    canary: dict[str, Any], linear: dict[str, Any], plain: dict[str, Any]
) -> None:
    for template in (canary, linear):
        endpoint = one(template, "AWS::SageMaker::Endpoint")
        assert endpoint["RetainAllVariantProperties"] is True
        assert endpoint["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DesiredWeight"}]
    endpoint = one(plain, "AWS::SageMaker::Endpoint")
    assert endpoint.get("RetainAllVariantProperties", False) is False
    assert "ExcludeRetainedVariantProperties" not in endpoint
    assert not resources(plain, "AWS::ApplicationAutoScaling::ScalableTarget")


def test_scalable_target_waits_for_the_endpoint(canary: dict[str, Any]) -> None:
    (endpoint_id,) = resources(canary, "AWS::SageMaker::Endpoint")
    (target,) = resources(canary, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert endpoint_id in target.get("DependsOn", [])


def test_async_scales_on_backlog_and_from_zero(async_: dict[str, Any]) -> None:
    target = one(async_, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 3)
    policies = scaling_policies(async_)
    tracking = [p for p in policies if p["PolicyType"] == "TargetTrackingScaling"]
    steps = [p for p in policies if p["PolicyType"] == "StepScaling"]
    assert len(tracking) == 1
    config = tracking[0]["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 8
    metric = config["CustomizedMetricSpecification"]
    assert metric["MetricName"] == "ApproximateBacklogSizePerInstance"
    assert metric["Namespace"] == "AWS/SageMaker"
    assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": ENDPOINT_NAME}]
    # A step policy adds an instance when requests wait with no instance to take them.
    scale_out = [
        p
        for p in steps
        if any(a["ScalingAdjustment"] > 0 for a in p["StepScalingPolicyConfiguration"]["StepAdjustments"])
    ]
    assert len(scale_out) == 1
    assert scale_out[0]["StepScalingPolicyConfiguration"]["AdjustmentType"] == "ChangeInCapacity"
    step_ids = {k for k, r in resources(async_, "AWS::ApplicationAutoScaling::ScalingPolicy").items()}
    backlog_alarms = [
        a["Properties"]
        for a in resources(async_, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "HasBacklogWithoutCapacity"
    ]
    assert backlog_alarms, "an alarm on HasBacklogWithoutCapacity drives the step policy"
    acted = {action["Ref"] for alarm in backlog_alarms for action in alarm.get("AlarmActions", [])}
    assert acted and acted <= step_ids
    assert all(dimensions(a) == {"EndpointName": ENDPOINT_NAME} for a in backlog_alarms)


# --- Variants -----------------------------------------------------------------------------------


def test_ab_variants_have_their_weights_and_own_models(canary: dict[str, Any]) -> None:
    variants = endpoint_config(canary)["ProductionVariants"]
    assert [
        (v["VariantName"], v["ModelName"], v["InitialVariantWeight"], v["InitialInstanceCount"]) for v in variants
    ] == [
        ("AllTraffic", "model-main", 3, 2),
        ("Candidate", "model-candidate", 1, 1),
    ]
    assert "ShadowProductionVariants" not in endpoint_config(canary)


def test_shadow_variant_gets_its_share_of_the_main_variant(shadow_serving: dict[str, Any]) -> None:
    config = endpoint_config(shadow_serving)
    (main,) = config["ProductionVariants"]
    (shadow,) = config["ShadowProductionVariants"]
    assert (main["VariantName"], main["InitialVariantWeight"]) == ("AllTraffic", 2)
    # 25 % of the production variant's requests: weight 2 x 25 / 100.
    assert (shadow["VariantName"], shadow["InitialVariantWeight"]) == ("Candidate", 0.5)
    assert shadow["InstanceType"] == "ml.c6i.xlarge"
    models = resources(shadow_serving, "AWS::SageMaker::Model")
    assert len(models) == 2
    assert main["ModelName"] != shadow["ModelName"]
    assert {main["ModelName"]["Fn::GetAtt"][0], shadow["ModelName"]["Fn::GetAtt"][0]} == set(models)
    shadow_model = models[shadow["ModelName"]["Fn::GetAtt"][0]]["Properties"]
    assert shadow_model["PrimaryContainer"]["ModelDataUrl"] == "s3://releases-bucket/sagebert/v8/model.tar.gz"
    # The shadow is not a production variant: it gets no rollback alarms of its own.
    alarmed = {
        dimensions(a["Properties"])["VariantName"] for a in resources(shadow_serving, "AWS::CloudWatch::Alarm").values()
    }
    assert alarmed == {"AllTraffic"}


# --- Data capture -------------------------------------------------------------------------------


def test_data_capture_goes_encrypted_under_the_prefix(canary: dict[str, Any]) -> None:
    capture = endpoint_config(canary)["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 20
    assert capture["KmsKeyId"]["Fn::GetAtt"][0].startswith("Key")
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["CaptureContentTypeHeader"] == {"JsonContentTypes": ["application/json", "application/jsonlines"]}
    uri = json.dumps(capture["DestinationS3Uri"])
    assert uri.startswith('{"Fn::Join"') and '"s3://"' in uri and '"/capture/live"' in uri
    assert "Bucket" in uri


def test_no_data_capture_unless_configured(plain: dict[str, Any], linear: dict[str, Any]) -> None:
    for template in (plain, linear):
        assert "DataCaptureConfig" not in endpoint_config(template)


# --- Serverless and instance storage ------------------------------------------------------------


def test_serverless_variant_has_memory_and_concurrency_only(serverless: dict[str, Any]) -> None:
    config = endpoint_config(serverless)
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 20, "ProvisionedConcurrency": 2}
    for absent in (
        "InstanceType",
        "InitialInstanceCount",
        "VolumeSizeInGB",
        "ContainerStartupHealthCheckTimeoutInSeconds",
        "ModelDataDownloadTimeoutInSeconds",
    ):
        assert absent not in variant
    assert "KmsKeyId" not in config  # serverless has no ML storage volume to encrypt
    assert not resources(serverless, "AWS::ApplicationAutoScaling::ScalableTarget")


@pytest.mark.parametrize("nvme", ["linear", "async_"])
def test_nvme_instance_types_get_no_kms_key_and_no_volume_size(nvme: str, request: pytest.FixtureRequest) -> None:
    # ml.g4dn.xlarge (gpu) and ml.c5d.large (cpu, async) carry local NVMe storage.
    config = endpoint_config(request.getfixturevalue(nvme))
    assert "KmsKeyId" not in config
    for variant in config["ProductionVariants"]:
        assert "VolumeSizeInGB" not in variant


def test_ebs_instance_types_are_kms_encrypted_with_the_configured_volume(
    canary: dict[str, Any], plain: dict[str, Any]
) -> None:
    for template in (canary, plain):
        assert endpoint_config(template)["KmsKeyId"]["Fn::GetAtt"][0].startswith("Key")
    assert {v["VolumeSizeInGB"] for v in endpoint_config(canary)["ProductionVariants"]} == {30}
    (variant,) = endpoint_config(plain)["ProductionVariants"]
    assert "VolumeSizeInGB" not in variant  # not set: SageMaker's default
    assert variant["InstanceType"] == "ml.c6i.xlarge"
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 600


# --- Async --------------------------------------------------------------------------------------


def test_async_output_is_encrypted_and_notifies_encrypted_topics(async_: dict[str, Any]) -> None:
    config = endpoint_config(async_)["AsyncInferenceConfig"]
    output = config["OutputConfig"]
    assert '"/answers"' in json.dumps(output["S3OutputPath"])
    assert '"/errors"' in json.dumps(output["S3FailurePath"])
    assert output["KmsKeyId"]["Fn::GetAtt"][0].startswith("Key")
    topics = resources(async_, "AWS::SNS::Topic")
    assert len(topics) == 2
    for topic in topics.values():
        assert topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("Key")
    notification = output["NotificationConfig"]
    assert {notification["SuccessTopic"]["Ref"], notification["ErrorTopic"]["Ref"]} == set(topics)
    assert notification["SuccessTopic"] != notification["ErrorTopic"]
    assert notification["IncludeInferenceResponseIn"] == ["SUCCESS_NOTIFICATION_TOPIC"]
    assert config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 2}


def test_real_time_endpoints_have_no_async_config(plain: dict[str, Any]) -> None:
    assert "AsyncInferenceConfig" not in endpoint_config(plain)
    assert not resources(plain, "AWS::SNS::Topic")


# --- Invoke permission --------------------------------------------------------------------------


def test_grant_invoke_allows_only_invoke_endpoint_on_this_endpoint(plain: dict[str, Any]) -> None:
    (endpoint_id,) = resources(plain, "AWS::SageMaker::Endpoint")
    statements = [
        s for p in resources(plain, "AWS::IAM::Policy").values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert statements == [{"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id}}]
