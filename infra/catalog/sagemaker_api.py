"""What the SageMaker API itself accepts: instance-type enums and numeric ranges from its service model.

The data lives in sagemaker_api.json beside this file, generated from botocore's service model
(botocore/data/sagemaker/<version>/service-2.json) by `python -m sagebert catalog`; a test keeps it equal to the
installed botocore. The config schema reads its bounds from here, so a value the API would reject at deploy time
fails at synth instead, and a new botocore moves the bounds with it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

API_FILE = Path(__file__).with_name("sagemaker_api.json")

# The enums the config's instance types must be in: endpoint variants, transform jobs, training jobs.
InstanceKind = Literal["ProductionVariantInstanceType", "TransformInstanceType", "TrainingInstanceType"]
INSTANCE_ENUMS: tuple[InstanceKind, ...] = (
    "ProductionVariantInstanceType",
    "TransformInstanceType",
    "TrainingInstanceType",
)
_PURPOSE = {
    "ProductionVariantInstanceType": "endpoint variants",
    "TransformInstanceType": "batch transform jobs",
    "TrainingInstanceType": "training jobs",
}
# "Structure.Member" of every numeric range the config binds to (sagemaker_api.json holds their min and max).
RANGES = (
    "ProductionVariant.InitialInstanceCount",
    "ProductionVariant.VolumeSizeInGB",
    "ProductionVariant.ContainerStartupHealthCheckTimeoutInSeconds",
    "ProductionVariant.ModelDataDownloadTimeoutInSeconds",
    "TrafficRoutingConfig.WaitIntervalInSeconds",
    "BlueGreenUpdatePolicy.TerminationWaitInSeconds",
    "BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds",
    "ProductionVariantServerlessConfig.MaxConcurrency",
    "ProductionVariantServerlessConfig.MemorySizeInMB",
    "AsyncInferenceClientConfig.MaxConcurrentInvocationsPerInstance",
    "DataCaptureConfig.InitialSamplingPercentage",
    "TransformResources.InstanceCount",
    "ModelClientConfig.InvocationsTimeoutInSeconds",
    "ModelClientConfig.InvocationsMaxRetries",
    "CreateTransformJobRequest.Environment",
    "CreateTransformJobRequest.MaxConcurrentTransforms",
    "ResourceConfig.VolumeSizeInGB",
    "StoppingCondition.MaxRuntimeInSeconds",
    "InferenceComponentComputeResourceRequirements.NumberOfCpuCoresRequired",
    "InferenceComponentComputeResourceRequirements.MinMemoryRequiredInMb",
)


@cache
def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(API_FILE.read_text(encoding="utf-8"))
    return data


def instance_types(kind: InstanceKind) -> tuple[str, ...]:
    """Every instance type the API's enum `kind` lists."""
    return tuple(_load()["enums"][kind])


def minimum(member: str) -> int | float | None:
    """The API's minimum of "Structure.Member" (None: it states none; a float for float members, e.g. CPU cores)."""
    value: int | float | None = _load()["ranges"][member]["min"]
    return value


def maximum(member: str) -> int | None:
    """The API's maximum of "Structure.Member" (None: it states none)."""
    value: int | None = _load()["ranges"][member]["max"]
    return value


def stated_maximum(member: str) -> int:
    """The API's maximum of "Structure.Member", which it must state (a KeyError-like ValueError if not)."""
    value = maximum(member)
    if value is None:
        raise ValueError(f"the SageMaker API states no maximum for {member}")
    return value


def check_instance_type(key: str, instance_type: str, kind: InstanceKind) -> None:
    """Raise ValueError naming the config key unless the API's enum `kind` lists instance_type."""
    known = instance_types(kind)
    if instance_type in known:
        return
    family = instance_type.rsplit(".", 1)[0] + "."
    same_family = [t for t in known if t.startswith(family)]
    if same_family:
        offer = f"{family.rstrip('.')} sizes it accepts: {', '.join(same_family)}"
    else:
        families = sorted({t.rsplit(".", 1)[0] for t in known})
        offer = f"it lists no {family.rstrip('.')} type at all; its families: {', '.join(families)}"
    raise ValueError(
        f"{key} = {instance_type!r} is not an instance type SageMaker accepts for {_PURPOSE[kind]} ({kind} in the "
        f"SageMaker API); {offer}."
    )
