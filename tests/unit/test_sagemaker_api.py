"""The config accepts only what the SageMaker API accepts: its instance-type enums and numeric ranges, read from
botocore's service model into infra/catalog/sagemaker_api.json, which a test keeps equal to the installed botocore."""

from __future__ import annotations

import json
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel, ValidationError

from infra.catalog import sagemaker_api
from infra.config.batch import BatchSettings
from infra.config.endpoint import (
    AsyncSettings,
    DataCaptureSettings,
    EndpointSettings,
    InferenceComponentSettings,
    RolloutSettings,
    ServerlessSettings,
    ShadowSettings,
    VariantSettings,
)
from infra.config.training import TrainingSettings
from sagebert.report import catalog

# Config field -> the API member it is sent as.
BINDINGS: list[tuple[type[BaseModel], str, str]] = [
    (EndpointSettings, "instance_count", "ProductionVariant.InitialInstanceCount"),
    (VariantSettings, "instance_count", "ProductionVariant.InitialInstanceCount"),
    (ShadowSettings, "instance_count", "ProductionVariant.InitialInstanceCount"),
    (EndpointSettings, "volume_size_gb", "ProductionVariant.VolumeSizeInGB"),
    (EndpointSettings, "startup_timeout_s", "ProductionVariant.ContainerStartupHealthCheckTimeoutInSeconds"),
    (EndpointSettings, "model_download_timeout_s", "ProductionVariant.ModelDataDownloadTimeoutInSeconds"),
    (RolloutSettings, "wait_interval_s", "TrafficRoutingConfig.WaitIntervalInSeconds"),
    (RolloutSettings, "termination_wait_s", "BlueGreenUpdatePolicy.TerminationWaitInSeconds"),
    (RolloutSettings, "max_execution_timeout_s", "BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds"),
    (ServerlessSettings, "max_concurrency", "ProductionVariantServerlessConfig.MaxConcurrency"),
    (
        AsyncSettings,
        "max_concurrent_invocations_per_instance",
        "AsyncInferenceClientConfig.MaxConcurrentInvocationsPerInstance",
    ),
    (DataCaptureSettings, "sampling_percent", "DataCaptureConfig.InitialSamplingPercentage"),
    (BatchSettings, "instance_count", "TransformResources.InstanceCount"),
    (BatchSettings, "invocation_timeout_s", "ModelClientConfig.InvocationsTimeoutInSeconds"),
    (BatchSettings, "invocation_max_retries", "ModelClientConfig.InvocationsMaxRetries"),
    (BatchSettings, "max_concurrent_transforms", "CreateTransformJobRequest.MaxConcurrentTransforms"),
    (TrainingSettings, "volume_size_gb", "ResourceConfig.VolumeSizeInGB"),
    (
        InferenceComponentSettings,
        "cpu_cores",
        "InferenceComponentComputeResourceRequirements.NumberOfCpuCoresRequired",
    ),
    (InferenceComponentSettings, "memory_mb", "InferenceComponentComputeResourceRequirements.MinMemoryRequiredInMb"),
]


def test_committed_api_model_matches_installed_botocore() -> None:
    # Bump botocore -> `python -m sagebert catalog` regenerates infra/catalog/sagemaker_api.json; this keeps them equal.
    committed = json.loads(sagemaker_api.API_FILE.read_text(encoding="utf-8"))
    fresh = catalog.generate_api()
    assert (committed["enums"], committed["ranges"]) == (fresh["enums"], fresh["ranges"])


def _bounds(model: type[BaseModel], field: str) -> tuple[Any, Any]:
    metadata = model.model_fields[field].metadata
    ge = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    le = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    return ge, le


@pytest.mark.parametrize(("model", "field", "member"), BINDINGS, ids=[f"{m.__name__}.{f}" for m, f, _ in BINDINGS])
def test_config_bounds_lie_within_the_api(model: type[BaseModel], field: str, member: str) -> None:
    ge, le = _bounds(model, field)
    low, high = sagemaker_api.minimum(member), sagemaker_api.maximum(member)
    assert ge is not None and low is not None and ge >= low
    if high is not None:
        assert le is not None and le <= high, f"{model.__name__}.{field} accepts {le}, the API at most {high}"


def test_every_api_range_is_bound_to_a_config_key() -> None:
    # The three not in BINDINGS are checked in their own terms: the transform environment's size (the config's
    # TRANSFORM_ENVIRONMENT_MAX), serverless memory (a list of choices) and the training time limit (minutes).
    from infra.config.batch import TRANSFORM_ENVIRONMENT_MAX

    assert TRANSFORM_ENVIRONMENT_MAX == sagemaker_api.maximum("CreateTransformJobRequest.Environment") == 16
    ge, _ = _bounds(TrainingSettings, "max_run_minutes")
    assert ge * 60 >= (sagemaker_api.minimum("StoppingCondition.MaxRuntimeInSeconds") or 0)
    others = {
        "CreateTransformJobRequest.Environment",
        "ProductionVariantServerlessConfig.MemorySizeInMB",
        "StoppingCondition.MaxRuntimeInSeconds",
    }
    assert {member for _, _, member in BINDINGS} | others == set(sagemaker_api.RANGES)


def test_serverless_memory_choices_lie_within_the_api() -> None:
    choices = ServerlessSettings.model_fields["memory_mb"].annotation.__args__  # type: ignore[union-attr]
    member = "ProductionVariantServerlessConfig.MemorySizeInMB"
    assert min(choices) == sagemaker_api.minimum(member) and max(choices) == sagemaker_api.maximum(member)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: BatchSettings(instance_type="ml.r5.large"),
            r"batch\.instance_type = 'ml\.r5\.large'.*TransformInstanceType",
        ),
        (
            lambda: EndpointSettings(instance_type="ml.c6i.9xlarge"),
            r"endpoint\.instance_type = 'ml\.c6i\.9xlarge'.*ProductionVariantInstanceType.*ml\.c6i\.8xlarge",
        ),
        (lambda: RolloutSettings(linear_step_percent=5), r"greater than or equal to 10"),
        (lambda: RolloutSettings(max_execution_timeout_s=28801), r"less than or equal to 28800"),
        (lambda: EndpointSettings(startup_timeout_s=3601), r"less than or equal to 3600"),
        (
            lambda: TrainingSettings(
                role_arn="arn:aws:iam::111122223333:role/r",
                input_path="s3://bucket-name/in",
                output_path="s3://bucket-name/out",
                instance_type="ml.g5.3xlarge",
            ),
            r"training\.instance_type = 'ml\.g5\.3xlarge'.*TrainingInstanceType",
        ),
    ],
    ids=["transform-type", "hosting-type", "linear-step", "update-timeout", "startup-timeout", "training-type"],
)
def test_values_the_api_rejects_fail_at_config_load(build: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()


def test_every_catalogued_profile_default_is_a_hosting_type() -> None:
    from infra.catalog import compute_profiles

    for profile in compute_profiles.PROFILES.values():
        if profile.default_instance_type:
            assert profile.default_instance_type in sagemaker_api.instance_types("ProductionVariantInstanceType")
    assert "ml.c6i.xlarge" in sagemaker_api.instance_types("TransformInstanceType")
