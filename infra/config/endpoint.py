"""The `endpoint:` section: compute profile, instances, autoscaling, rollout guardrails, A/B and shadow
variants, data capture and VPC.

Rules SageMaker enforces are enforced here, at synth, with messages that say what to change; the
"Rejected combinations" table in docs/configuration.md lists each one and a test keeps every row failing.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, model_validator

from infra.catalog import compute_profiles
from infra.catalog import sagemaker_api as api
from infra.catalog.compute_profiles import HOURS_PER_MONTH, Compute
from infra.config.base import EXPIRY_DAYS, KEY_PREFIX, ROLE_ARN, VARIANT_NAME, LogRetentionDays, Strict
from infra.config.model import HubModel, ModelSource

ENDPOINT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
# Deployment guardrails watch at most 10 alarms, and sagebert gives each production variant two (5XX errors
# and model latency): at most 5 production variants.
MAX_VARIANTS = 5
# sagebert's own cap on a variant's instances (the API sets none); autoscaling's max_instances shares it.
MAX_INSTANCES = 100
LINEAR_STEP_PERCENT = (10, 50)
# Availability Zones a private network may span (every commercial region has three).
MAX_ZONES = 3
# An inference component's rolling-update batch (RollingUpdatePolicy.MaximumBatchSize): "The value must be between 5%
# to 50% of the copy count of the inference component" (botocore's sagemaker service-2.json,
# InferenceComponentRollingUpdatePolicy; the API only types it as InferenceComponentCapacitySize, Value >= 1). A
# COPY_COUNT batch cannot meet that for every copy count scaling reaches (one copy is 100% of one), so sagebert sends
# CAPACITY_PERCENT with a percent in this range.
ROLLING_BATCH_PERCENT = (5, 50)


class AutoscalingSettings(Strict):
    """Target tracking on the variant's instance count (Application Auto Scaling)."""

    min_instances: int = Field(
        1,
        ge=0,
        le=100,
        description="Fewest instances; 0 only with compute: async (scale to zero on an empty backlog). "
        "Production needs at least 2.",
    )
    max_instances: int = Field(4, ge=1, le=100, description="Most instances.")
    target_invocations_per_minute: int | None = Field(
        None,
        ge=1,
        description="Target of SageMakerVariantInvocationsPerInstance (invocations per instance per minute). Null "
        "on cpu: derived from the measured int8 throughput of one core (120 requests/s) x the instance's cores "
        "(vCPUs / 2: a vCPU is a hyperthread) x 60 x 0.5 headroom, e.g. 3600 for ml.c6i.large. Required on gpu "
        "and inferentia (not measured here).",
    )
    target_backlog_per_instance: float = Field(
        5,
        gt=0,
        description="compute: async only: target of ApproximateBacklogSizePerInstance (queued requests per instance).",
    )
    scale_in_cooldown_s: int = Field(300, ge=0, le=3600, description="Seconds after a scale-in before another.")
    scale_out_cooldown_s: int = Field(60, ge=0, le=3600, description="Seconds after a scale-out before another.")

    @model_validator(mode="after")
    def _range(self) -> AutoscalingSettings:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"endpoint.autoscaling: min_instances = {self.min_instances} is above max_instances = "
                f"{self.max_instances}; raise max_instances or lower min_instances."
            )
        return self


class RolloutSettings(Strict):
    """Deployment guardrails for every endpoint update: blue/green with automatic rollback on alarms."""

    strategy: Literal["all_at_once", "canary", "linear"] = Field(
        "all_at_once",
        description="Blue/green traffic shifting: all_at_once, canary (canary_percent first, then the rest) or "
        "linear (linear_step_percent at a time).",
    )
    canary_percent: int = Field(10, ge=1, le=50, description="strategy: canary: capacity percent shifted first.")
    # Deployment guardrails take linear steps of 10 to 50% of the variant's capacity (the API model only says >= 1).
    # https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green-linear.html
    linear_step_percent: int = Field(
        20,
        ge=LINEAR_STEP_PERCENT[0],
        le=LINEAR_STEP_PERCENT[1],
        description="strategy: linear: capacity percent shifted per step (10 to 50).",
    )
    wait_interval_s: int = Field(
        300,
        ge=api.minimum("TrafficRoutingConfig.WaitIntervalInSeconds"),
        le=api.maximum("TrafficRoutingConfig.WaitIntervalInSeconds"),
        description="Seconds of baking between shifting steps while the alarms are watched.",
    )
    termination_wait_s: int = Field(
        300,
        ge=api.minimum("BlueGreenUpdatePolicy.TerminationWaitInSeconds"),
        le=api.maximum("BlueGreenUpdatePolicy.TerminationWaitInSeconds"),
        description="Seconds the old (blue) fleet is kept after all traffic moved, so a late alarm can still roll "
        "back.",
    )
    max_execution_timeout_s: int = Field(
        3600,
        ge=api.minimum("BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds"),
        le=api.maximum("BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds"),
        description="The whole update's time limit; past it SageMaker rolls back.",
    )
    max_5xx_errors_per_minute: int = Field(
        5,
        ge=1,
        description="Rollback alarm, per production variant: Invocation5XXErrors summed over a minute at or above "
        "this, 2 minutes running.",
    )
    max_model_latency_ms: int = Field(
        1000,
        ge=1,
        description="Rollback alarm, per production variant: ModelLatency p99 over a minute above this many "
        "milliseconds, 2 minutes running.",
    )


class ServerlessSettings(Strict):
    """compute: serverless: SageMaker starts and stops the compute per request (CPU only)."""

    memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = Field(
        2048, description="Memory (MB), 1024 to 6144 in 1024 steps; CPU share grows with it."
    )
    max_concurrency: int = Field(
        10,
        ge=api.minimum("ProductionVariantServerlessConfig.MaxConcurrency"),
        le=api.maximum("ProductionVariantServerlessConfig.MaxConcurrency"),
        description="Concurrent invocations before SageMaker throttles.",
    )
    provisioned_concurrency: int = Field(
        0,
        ge=0,  # 0: none (the API's minimum, 1, applies when it is sent)
        le=api.maximum("ProductionVariantServerlessConfig.MaxConcurrency"),
        description="Invocations kept warm (no cold start), billed while provisioned; 0: none. At most "
        "max_concurrency.",
    )

    @model_validator(mode="after")
    def _provisioned(self) -> ServerlessSettings:
        if self.provisioned_concurrency > self.max_concurrency:
            raise ValueError(
                f"endpoint.serverless: provisioned_concurrency = {self.provisioned_concurrency} is above "
                f"max_concurrency = {self.max_concurrency}; SageMaker refuses that. Lower it or raise max_concurrency."
            )
        return self


class AsyncSettings(Strict):
    """compute: async: requests are queued (InvokeEndpointAsync, input in S3) and answered into S3."""

    input_prefix: str = Field(
        "async/input/",
        pattern=KEY_PREFIX,
        description="Key prefix in the stage's artifact bucket where callers put request bodies for "
        "InvokeEndpointAsync (the endpoint may read only these). Ends with /.",
    )
    output_prefix: str = Field(
        "async/output/",
        pattern=KEY_PREFIX,
        description="Key prefix in the stage's artifact bucket for answers. Ends with /.",
    )
    failure_prefix: str = Field(
        "async/failures/",
        pattern=KEY_PREFIX,
        description="Key prefix in the artifact bucket for failed requests' errors. Ends with /.",
    )
    max_concurrent_invocations_per_instance: int = Field(
        4,
        ge=api.minimum("AsyncInferenceClientConfig.MaxConcurrentInvocationsPerInstance"),
        le=api.maximum("AsyncInferenceClientConfig.MaxConcurrentInvocationsPerInstance"),
        description="Requests SageMaker sends to one instance at a time.",
    )
    expire_after_days: int = Field(
        30,
        ge=EXPIRY_DAYS[0],
        le=EXPIRY_DAYS[1],
        description="Days S3 keeps request bodies, answers and failures under the three async prefixes before a "
        "lifecycle rule deletes them (older versions go 30 days later).",
    )
    include_answer_in_notification: bool = Field(
        False,
        description="Put the answer in the success notification (SNS) too; off by default so answers stay in the "
        "encrypted bucket only.",
    )


class DataCaptureSettings(Strict):
    """Store a sample of requests and answers in the artifact bucket (KMS-encrypted), e.g. for Model Monitor."""

    sampling_percent: int = Field(
        10,
        ge=1,  # the API's 0 would capture nothing
        le=api.maximum("DataCaptureConfig.InitialSamplingPercentage"),
        description="Percent of invocations captured.",
    )
    prefix: str = Field(
        "capture/", pattern=KEY_PREFIX, description="Key prefix in the artifact bucket for captured data."
    )
    capture: list[Literal["input", "output"]] = Field(
        ["input", "output"], min_length=1, description="What is captured: input, output or both."
    )
    json_content_types: list[str] = Field(
        ["application/json", "application/jsonlines"],
        min_length=1,
        description="Content types stored as JSON text (others are base64-encoded).",
    )
    expire_after_days: int = Field(
        30,
        ge=EXPIRY_DAYS[0],
        le=EXPIRY_DAYS[1],
        description="Days S3 keeps captured requests and answers before a lifecycle rule deletes them (older "
        "versions go 30 days later).",
    )
    reader_role_arns: list[str] = Field(
        [],
        description="IAM roles that may read the captured data (e.g. a Model Monitor or analysis role). The bucket "
        "policy denies reading and writing under the capture prefix to every other principal except the stage's "
        "endpoint model roles, which write it.",
    )

    @model_validator(mode="after")
    def _readers(self) -> DataCaptureSettings:
        for index, arn in enumerate(self.reader_role_arns):
            if not re.match(ROLE_ARN, arn):
                raise ValueError(
                    f"endpoint.data_capture.reader_role_arns[{index}] = {arn!r} is not an IAM role ARN; expected "
                    "arn:aws:iam::<12-digit account>:role/<name>."
                )
        return self


class VpcSettings(Strict):
    """A VPC for the endpoint: private subnets in several Availability Zones, no internet route, and the VPC
    endpoints SageMaker needs."""

    cidr: str = Field(
        "10.64.0.0/16",
        pattern=r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/(1[6-9]|2[0-4])$",
        description="The VPC's IPv4 range (/16 to /24).",
    )
    availability_zones: int = Field(
        2, ge=2, le=MAX_ZONES, description="Availability Zones with a private subnet each (at least 2)."
    )


class VariantSettings(Strict):
    """An extra production variant for A/B tests: its own model, its share of the traffic."""

    name: str = Field(pattern=VARIANT_NAME, description="Variant name; unique on the endpoint; keep it stable.")
    weight: float = Field(
        description="Traffic weight; a variant gets weight / (sum of all weights) of the requests.", gt=0, le=1000
    )
    model: ModelSource = Field(
        description="The variant's model (bundled, s3, hub or registry), e.g. a BERT-size candidate."
    )
    instance_type: str | None = Field(
        None, description="Instance type (same profile as the endpoint); null: the endpoint's instance_type."
    )
    instance_count: int = Field(
        1,
        ge=api.minimum("ProductionVariant.InitialInstanceCount"),
        le=MAX_INSTANCES,
        description="Instances behind the variant.",
    )


class ShadowSettings(Strict):
    """A shadow variant: gets a copy of live requests; its answers are logged, never returned."""

    name: str = Field("Shadow", pattern=VARIANT_NAME, description="Shadow variant name; keep it stable.")
    model: ModelSource = Field(description="The candidate model (bundled, s3, hub or registry).")
    sampling_percent: int = Field(
        100, ge=1, le=100, description="Percent of the production variant's requests copied to the shadow."
    )
    instance_type: str | None = Field(
        None, description="Instance type (same profile as the endpoint); null: the endpoint's instance_type."
    )
    instance_count: int = Field(
        1,
        ge=api.minimum("ProductionVariant.InitialInstanceCount"),
        le=MAX_INSTANCES,
        description="Instances behind the shadow variant.",
    )


class InferenceComponentSettings(Strict):
    """Run the model as a SageMaker inference component: the endpoint holds instances (managed instance scaling),
    the component holds copies of the model on them, and copies scale on their own; with scale_to_zero the endpoint
    releases every instance when idle."""

    copies: int = Field(
        1,
        ge=1,
        le=MAX_INSTANCES,
        description="Copies of the model at deployment (RuntimeConfig.CopyCount); within [min_copies, max_copies].",
    )
    min_copies: int = Field(
        1,
        ge=0,
        le=MAX_INSTANCES,
        description="Fewest copies copy-count scaling keeps; 0 only with scale_to_zero. Production needs at least 2.",
    )
    max_copies: int = Field(4, ge=1, le=MAX_INSTANCES, description="Most copies copy-count scaling starts.")
    rolling_batch_percent: int = Field(
        25,
        ge=ROLLING_BATCH_PERCENT[0],
        le=ROLLING_BATCH_PERCENT[1],
        description="Rolling updates replace this percent of the copies per step (RollingUpdatePolicy.MaximumBatchSize"
        ", CAPACITY_PERCENT); SageMaker takes 5 to 50% of the copy count. A rollback restores all copies at once.",
    )
    max_instances: int | None = Field(
        None,
        ge=1,
        le=MAX_INSTANCES,
        description="Most instances managed instance scaling may run (ManagedInstanceScaling.MaxInstanceCount); "
        "null: enough for max_copies (the copies that fit on one instance_type instance by cpu_cores and "
        "memory_mb).",
    )
    cpu_cores: float = Field(
        1,
        ge=api.minimum("InferenceComponentComputeResourceRequirements.NumberOfCpuCoresRequired"),
        description="CPU cores reserved for each copy (NumberOfCpuCoresRequired, from 0.25); an instance holds as "
        "many copies as its vCPUs and memory allow. At most the instance's vCPUs.",
    )
    memory_mb: int = Field(
        1024,
        ge=api.minimum("InferenceComponentComputeResourceRequirements.MinMemoryRequiredInMb"),
        description="Memory reserved for each copy (MinMemoryRequiredInMb, MB, from 128); at most what the instance "
        "has (e.g. 4096 on ml.c6i.large).",
    )
    target_invocations_per_copy_per_minute: int | None = Field(
        None,
        ge=1,
        description="Target of SageMakerInferenceComponentInvocationsPerCopy (invocations per copy per minute); "
        "null: the measured int8 throughput of one core (120 requests/s) x the physical cores cpu_cores makes "
        "(a vCPU is a hyperthread: cpu_cores / 2) x 60 x 0.5 headroom, e.g. 1800 for cpu_cores 1. Required with "
        "threads_per_worker above 1.",
    )
    scale_in_cooldown_s: int = Field(300, ge=0, le=3600, description="Seconds after a scale-in before another.")
    scale_out_cooldown_s: int = Field(60, ge=0, le=3600, description="Seconds after a scale-out before another.")
    scale_to_zero: bool = Field(
        False,
        description="Let the endpoint go to zero instances when idle (min_copies 0 and ManagedInstanceScaling "
        "MinInstanceCount 0); a step-scaling policy on NoCapacityInvocationFailures starts the first copy again. "
        "The first request after zero fails until an instance and a copy are up (minutes): see docs/endpoint.md.",
    )
    allow_scale_to_zero_in_production: bool = Field(
        False,
        description="With production: true, allow scale_to_zero anyway (requests fail for minutes after an idle "
        "spell). Off: production refuses scale_to_zero.",
    )

    @model_validator(mode="after")
    def _copies(self) -> InferenceComponentSettings:
        key = "endpoint.inference_component"
        if self.min_copies > self.max_copies:
            raise ValueError(
                f"{key}: min_copies = {self.min_copies} is above max_copies = {self.max_copies}; raise max_copies or "
                "lower min_copies."
            )
        if not max(self.min_copies, 1) <= self.copies <= self.max_copies:
            raise ValueError(
                f"{key}: copies = {self.copies} is outside [{max(self.min_copies, 1)}, {self.max_copies}] (min_copies, "
                "at least 1, to max_copies); copy-count scaling would change it right after the deployment. Set "
                "copies within the range."
            )
        if self.scale_to_zero and self.min_copies != 0:
            raise ValueError(
                f"{key}: scale_to_zero = true with min_copies = {self.min_copies}: the endpoint can release its last "
                "instance only when the component may have no copy. Set min_copies: 0 or scale_to_zero: false."
            )
        if self.min_copies == 0 and not self.scale_to_zero:
            raise ValueError(
                f"{key}: min_copies = 0 without scale_to_zero: true: with no copy nothing answers, and only the "
                "scale_to_zero step policy starts one again. Set scale_to_zero: true or min_copies: 1 or more."
            )
        if self.allow_scale_to_zero_in_production and not self.scale_to_zero:
            raise ValueError(
                f"{key}: allow_scale_to_zero_in_production = true without scale_to_zero: true allows nothing. Remove "
                "it or set scale_to_zero: true."
            )
        return self

    def scaling_target(self, instance_type: str) -> int:
        """Invocations per copy per minute the component's copy count is scaled on."""
        if self.target_invocations_per_copy_per_minute is not None:
            return self.target_invocations_per_copy_per_minute
        return compute_profiles.target_invocations_per_copy(self.cpu_cores, instance_type)

    def copies_per_instance(self, instance_type: str) -> int:
        """Copies of this size that fit on one instance (cores and memory)."""
        by_cores = math.floor(compute_profiles.vcpus(instance_type) / self.cpu_cores)
        by_memory = compute_profiles.memory_mb(instance_type) // self.memory_mb
        return max(1, min(by_cores, by_memory))

    def min_instances(self, instance_type: str) -> int:
        """ManagedInstanceScaling.MinInstanceCount: 0 with scale_to_zero, else the instances min_copies need."""
        if self.scale_to_zero:
            return 0
        return max(1, math.ceil(self.min_copies / self.copies_per_instance(instance_type)))

    def instance_limit(self, instance_type: str) -> int:
        """ManagedInstanceScaling.MaxInstanceCount: max_instances, or enough instances for max_copies."""
        if self.max_instances is not None:
            return self.max_instances
        return math.ceil(self.max_copies / self.copies_per_instance(instance_type))


class EndpointSettings(Strict):
    """The SageMaker endpoint: where it runs, how it scales, how updates roll out."""

    compute: Compute = Field(
        "cpu",
        description="Compute profile: cpu (int8 ONNX Runtime), gpu (G4 and newer, PyTorch fp16), inferentia "
        "(Inferentia2, Neuron), serverless, async, or elastic-inference (refused: end of life; the message names "
        "the replacement).",
    )
    name: str | None = Field(
        None,
        pattern=ENDPOINT_NAME,
        description="Endpoint name; null: sagebert-<stage>. Fixed so rollback alarms can name it before it exists.",
    )
    instance_type: str | None = Field(
        None,
        description="Instance type, ml.<family>.<size>, of the profile's families (see Compute profiles); null: "
        "the profile's default (cpu/async ml.c6i.large, gpu ml.g4dn.xlarge, inferentia ml.inf2.xlarge). Not with "
        "serverless.",
    )
    instance_count: int = Field(
        1,
        ge=api.minimum("ProductionVariant.InitialInstanceCount"),
        le=MAX_INSTANCES,
        description="Instances at deployment (production needs >= 2). Not with serverless.",
    )
    accelerator_type: str | None = Field(
        None, description="Elastic Inference accelerator (ml.eia2.*): refused, Elastic Inference has ended."
    )
    variant_name: str = Field(
        "AllTraffic",
        pattern=VARIANT_NAME,
        description="Production variant name. Keep it stable: deployment guardrails need the same name across updates.",
    )
    weight: float = Field(1.0, gt=0, le=1000, description="The main variant's traffic weight (with variants).")
    log_retention_days: LogRetentionDays = Field(
        90,
        description="Days CloudWatch Logs keeps the endpoint's container logs (the log group "
        "/aws/sagemaker/Endpoints/<name>, created by the stack and encrypted with the stage key).",
    )
    threads_per_worker: int = Field(
        1,
        ge=1,
        le=192,
        description="compute: cpu or async: ONNX Runtime threads per model-server worker; the container runs "
        "vCPUs / threads_per_worker workers. 1 (the toolkit's layout): most requests per second under "
        "concurrent load. The instance's vCPUs (one worker): lowest latency for one request at a time. Must "
        "divide the vCPUs; above 1, autoscaling needs target_invocations_per_minute.",
    )
    volume_size_gb: int | None = Field(
        None,
        ge=api.minimum("ProductionVariant.VolumeSizeInGB"),
        le=api.maximum("ProductionVariant.VolumeSizeInGB"),
        description="ML storage volume per instance (GB); null: SageMaker's default. Refused on instance types "
        "with local NVMe storage (g4dn, g5, g6, g6e, p4d, p5, c5d, m5d, r5d).",
    )
    startup_timeout_s: int = Field(
        600,
        ge=api.minimum("ProductionVariant.ContainerStartupHealthCheckTimeoutInSeconds"),
        le=api.maximum("ProductionVariant.ContainerStartupHealthCheckTimeoutInSeconds"),
        description="Seconds a new instance's container has to answer /ping (ContainerStartupHealthCheckTimeout); "
        "inferentia compiles at start-up: give it 1800.",
    )
    model_download_timeout_s: int = Field(
        600,
        ge=api.minimum("ProductionVariant.ModelDataDownloadTimeoutInSeconds"),
        le=api.maximum("ProductionVariant.ModelDataDownloadTimeoutInSeconds"),
        description="Seconds to download the model data onto a new instance.",
    )
    serverless: ServerlessSettings | None = Field(
        None, description="compute: serverless only: memory and concurrency (absent: the defaults)."
    )
    async_inference: AsyncSettings | None = Field(
        None, description="compute: async only: output locations and concurrency (absent: the defaults)."
    )
    autoscaling: AutoscalingSettings | None = Field(
        None, description="Target-tracking autoscaling of the main variant (absent: a fixed instance_count)."
    )
    rollout: RolloutSettings = Field(
        default_factory=RolloutSettings,
        description="Deployment guardrails: how an update shifts traffic and when it rolls back.",
    )
    variants: list[VariantSettings] = Field(
        [], description="Extra production variants for A/B tests (empty: one variant)."
    )
    shadow: ShadowSettings | None = Field(None, description="A shadow variant (absent: none).")
    data_capture: DataCaptureSettings | None = Field(None, description="Request/answer capture (absent: off).")
    vpc: VpcSettings | None = Field(None, description="Run the endpoint in a new private VPC (absent: no VPC).")
    inference_component: InferenceComponentSettings | None = Field(
        None,
        description="compute: cpu only: serve the model as an inference component with copy-count scaling and "
        "optionally scale to zero (absent: the model is the variant's, scaled by autoscaling).",
    )

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: object) -> object:
        """Fill in the profile's default instance type and its section, so `compute: gpu` alone is complete."""
        if not isinstance(data, dict):
            return data
        compute = data.get("compute", "cpu")
        if compute not in compute_profiles.PROFILES:
            return data  # elastic-inference (refused below) or a bad value (the Literal says which)
        data = dict(data)
        profile = compute_profiles.profile(compute)
        # An Elastic Inference setup keeps its own host type: the refusal prices that host.
        if profile.instances and "accelerator_type" not in data:
            data.setdefault("instance_type", profile.default_instance_type)
        if compute == "serverless":
            data.setdefault("serverless", {})
        if compute == "async":
            data.setdefault("async_inference", {})
        return data

    @model_validator(mode="after")
    def _rules(self) -> EndpointSettings:
        if self.compute == "elastic-inference" or self.accelerator_type is not None:
            raise ValueError(elastic_inference_refusal(self))
        profile = compute_profiles.profile(self.compute)
        if self.serverless is not None and self.compute != "serverless":
            raise ValueError(
                f"endpoint.serverless is set with endpoint.compute = {self.compute}; remove it or set "
                "compute: serverless."
            )
        if self.async_inference is not None and self.compute != "async":
            raise ValueError(
                f"endpoint.async_inference is set with endpoint.compute = {self.compute}; remove it or set "
                "compute: async."
            )
        if profile.instances:
            assert self.instance_type is not None  # the profile default fills it in
            compute_profiles.check_instance("endpoint.instance_type", self.instance_type, self.compute)
            api.check_instance_type("endpoint.instance_type", self.instance_type, "ProductionVariantInstanceType")
            if self.volume_size_gb is not None and compute_profiles.has_nvme(self.instance_type):
                raise ValueError(
                    f"endpoint.volume_size_gb = {self.volume_size_gb} with {self.instance_type}: this instance type "
                    "has local NVMe storage and SageMaker rejects VolumeSizeInGB for it. Remove volume_size_gb."
                )
        else:
            self._serverless_rules()
        extras: list[VariantSettings | ShadowSettings] = [*self.variants, *([self.shadow] if self.shadow else [])]
        for extra in extras:
            if extra.instance_type is not None:
                key = f"endpoint variant {extra.name}: instance_type"
                compute_profiles.check_instance(key, extra.instance_type, self.compute)
                api.check_instance_type(key, extra.instance_type, "ProductionVariantInstanceType")
        self._variant_rules()
        self._autoscaling_rules()
        self._worker_layout_rules()
        self._inference_component_rules()
        return self

    def _inference_component_rules(self) -> None:
        component = self.inference_component
        if component is None:
            return
        if self.compute != "cpu":
            raise ValueError(
                f"endpoint.inference_component with compute: {self.compute}: sagebert runs inference components on "
                "CPU real-time endpoints only (serverless and async endpoints host no inference components; on gpu "
                "and inferentia sagebert sizes no accelerator devices per copy). Use compute: cpu or remove "
                "endpoint.inference_component."
            )
        unsupported = {
            "autoscaling": "the component scales its copies (inference_component.min_copies / max_copies) and "
            "managed instance scaling follows; variant autoscaling does not apply",
            "variants": "sagebert puts its one component on the one production variant; A/B-test with two stages "
            "or without inference components",
            "shadow": "a shadow variant serves a model of its own, which an endpoint in inference-component form "
            "does not have",
            "data_capture": "sagebert does not combine data capture with inference components",
            "threads_per_worker": "the worker layout is sized for whole instances, a copy gets "
            "inference_component.cpu_cores of one",
        }
        for key, reason in unsupported.items():
            if key in self.model_fields_set and getattr(self, key) not in (None, [], 1):
                raise ValueError(f"endpoint.{key} is set with endpoint.inference_component: {reason}. Remove it.")
        assert self.instance_type is not None
        vcpus = compute_profiles.vcpus(self.instance_type)
        if component.cpu_cores > vcpus:
            raise ValueError(
                f"endpoint.inference_component.cpu_cores = {component.cpu_cores:g} is above the {vcpus} vCPUs of "
                f"{self.instance_type}: no instance could place a copy. Lower cpu_cores or choose a larger instance."
            )
        memory = compute_profiles.memory_mb(self.instance_type)
        if component.memory_mb > memory:
            raise ValueError(
                f"endpoint.inference_component.memory_mb = {component.memory_mb} is above the {memory} MB of "
                f"{self.instance_type}: no instance could place a copy. Lower memory_mb or choose a larger instance."
            )
        fits = component.copies_per_instance(self.instance_type)
        if component.max_instances is not None and component.max_copies > fits * component.max_instances:
            raise ValueError(
                f"endpoint.inference_component.max_copies = {component.max_copies} do not fit on max_instances = "
                f"{component.max_instances} x {self.instance_type} ({fits} copies each by cpu_cores and memory_mb); "
                "copy-count scaling would wait for instances it may not start. Raise max_instances or lower "
                "max_copies."
            )
        if component.instance_limit(self.instance_type) < self.instance_count:
            raise ValueError(
                f"endpoint.inference_component.max_instances = {component.max_instances} is below instance_count = "
                f"{self.instance_count}. Raise max_instances or lower instance_count."
            )

    def _worker_layout_rules(self) -> None:
        if self.threads_per_worker == 1:
            return
        if self.compute not in ("cpu", "async"):
            raise ValueError(
                f"endpoint.threads_per_worker = {self.threads_per_worker} with compute: {self.compute}: it sets the "
                "ONNX Runtime worker layout of CPU instances (compute: cpu or async). Remove it."
            )
        types = [self.instance_type, *(extra.instance_type for extra in [*self.variants, self.shadow] if extra)]
        for instance_type in dict.fromkeys(t for t in types if t):
            count = compute_profiles.vcpus(instance_type)
            if count % self.threads_per_worker:
                divisors = ", ".join(str(n) for n in range(1, count + 1) if count % n == 0)
                raise ValueError(
                    f"endpoint.threads_per_worker = {self.threads_per_worker} does not divide the {count} vCPUs of "
                    f"{instance_type}: workers x threads must use every vCPU and no more. Use one of {divisors}."
                )
        if self.autoscaling is not None and self.autoscaling.target_invocations_per_minute is None:
            raise ValueError(
                f"endpoint.autoscaling.target_invocations_per_minute is required with endpoint.threads_per_worker = "
                f"{self.threads_per_worker}: sagebert derives the target from throughput measured with one thread per "
                "worker, and fewer, wider workers answer fewer requests per second. Load-test one instance and set "
                "about half its sustained invocations per minute."
            )

    def _serverless_rules(self) -> None:
        unsupported = {
            "instance_type": "serverless has no instances; size it with endpoint.serverless.memory_mb",
            "instance_count": "serverless has no instances; endpoint.serverless.max_concurrency bounds it",
            "volume_size_gb": "serverless has no ML storage volume",
            "startup_timeout_s": "serverless manages container start-up itself",
            "model_download_timeout_s": "serverless manages model download itself",
            "autoscaling": "serverless scales itself up to max_concurrency",
            "variants": "serverless endpoints take one production variant",
            "shadow": "serverless endpoints take no shadow variant",
            "data_capture": "serverless endpoints do not support data capture",
            "vpc": "serverless endpoints do not support a VPC",
        }
        for key, reason in unsupported.items():
            if key in self.model_fields_set and getattr(self, key) not in (None, []):
                raise ValueError(f"endpoint.{key} is set with endpoint.compute = serverless: {reason}. Remove it.")
        if self.rollout.strategy != "all_at_once":
            raise ValueError(
                f"endpoint.rollout.strategy = {self.rollout.strategy} with endpoint.compute = serverless: traffic "
                "shifting steps are capacity percentages of instances, which serverless does not have. Use "
                "all_at_once (still blue/green with automatic rollback)."
            )

    def _variant_rules(self) -> None:
        names = [self.variant_name, *(v.name for v in self.variants), *([self.shadow.name] if self.shadow else [])]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"endpoint: variant name {duplicates[0]!r} is used twice; every variant needs its own name."
            )
        production = 1 + len(self.variants)
        if production > MAX_VARIANTS:
            raise ValueError(
                f"endpoint: {production} production variants; deployment guardrails watch at most 10 rollback alarms "
                f"and each variant has two, so at most {MAX_VARIANTS}."
            )
        if self.compute == "async" and (self.variants or self.shadow):
            raise ValueError(
                "endpoint.variants / endpoint.shadow with compute: async: sagebert scales async endpoints to zero on "
                "one variant's backlog; run the A/B test on a real-time endpoint (cpu, gpu or inferentia)."
            )
        if self.shadow is not None and self.variants:
            raise ValueError(
                "endpoint.shadow with endpoint.variants: SageMaker shadow tests take exactly one production variant "
                "and one shadow variant. Remove the extra production variants or the shadow."
            )

    def _autoscaling_rules(self) -> None:
        scaling = self.autoscaling
        if scaling is None:
            return
        if scaling.min_instances == 0 and self.compute != "async":
            raise ValueError(
                f"endpoint.autoscaling.min_instances = 0 with compute: {self.compute}: only async endpoints scale "
                "to zero (a real-time endpoint needs an instance to answer). Use min_instances: 1 or more, or serve "
                "the model as an inference component that scales to zero (endpoint.inference_component with "
                "scale_to_zero: true)."
            )
        if not scaling.min_instances <= self.instance_count <= scaling.max_instances:
            raise ValueError(
                f"endpoint.instance_count = {self.instance_count} is outside endpoint.autoscaling's "
                f"[{scaling.min_instances}, {scaling.max_instances}]; autoscaling would change it right after the "
                "deployment. Set instance_count within the range."
            )
        if self.compute in ("gpu", "inferentia") and scaling.target_invocations_per_minute is None:
            raise ValueError(
                f"endpoint.autoscaling.target_invocations_per_minute is required with compute: {self.compute}: "
                "sagebert derives the target from throughput measured on CPUs only. Load-test one instance and set "
                "about half its sustained invocations per minute."
            )

    @property
    def profile(self) -> compute_profiles.Profile:
        return compute_profiles.profile(self.compute)

    @property
    def scaling_target(self) -> int | None:
        """Invocations per instance per minute the main variant is scaled on (None: no autoscaling)."""
        if self.autoscaling is None:
            return None
        if self.autoscaling.target_invocations_per_minute is not None:
            return self.autoscaling.target_invocations_per_minute
        assert self.instance_type is not None
        return compute_profiles.target_invocations_per_minute(self.instance_type)

    @property
    def models(self) -> list[ModelSource]:
        """Every variant's model other than the stage's own `model:`."""
        return [v.model for v in self.variants] + ([self.shadow.model] if self.shadow else [])

    def uses_hub(self) -> bool:
        return any(isinstance(m, HubModel) for m in self.models)


def elastic_inference_refusal(settings: EndpointSettings) -> str:
    """The refusal for Elastic Inference: the facts, the replacement config and the monthly cost difference."""
    from infra.catalog import prices  # the dated price table; read only when this message is needed

    host = settings.instance_type or "ml.m5.large"
    accelerator = settings.accelerator_type or "ml.eia2.medium"
    g4, inf2 = compute_profiles.ei_replacement(accelerator)
    count = settings.instance_count
    table = prices.load()

    def monthly(*types: str) -> float:
        return sum(table.instance_hourly(t) for t in types) * HOURS_PER_MONTH * count

    try:
        current = monthly(host, accelerator)
        costs = f"; monthly for {count} instance(s) at {table.region} prices of {table.as_of}: {host} + {accelerator} "
        costs += f"${current:,.0f}, {g4} ${monthly(g4):,.0f} ({monthly(g4) - current:+,.0f}), "
        costs += f"{inf2} ${monthly(inf2):,.0f} ({monthly(inf2) - current:+,.0f})"
    except prices.UnknownPriceError as err:
        costs = f" (no monthly figure: {err})"
    return (
        f"endpoint.compute = elastic-inference / endpoint.accelerator_type = {accelerator}: Amazon Elastic Inference "
        "closed to new customers on 2023-04-15 and reached end of life in April 2024, and it never supported the "
        "Hugging Face containers (only PyTorch 1.5 / TensorFlow 2.3 EI images); SageMaker no longer accepts "
        "AcceleratorType. AWS recommends G4 or Inferentia instead. Replace the endpoint section's compute lines with "
        f"`compute: gpu` + `instance_type: {g4}` + `autoscaling: {{target_invocations_per_minute: ...}}` if you "
        f"autoscale, or `compute: inferentia` + `instance_type: {inf2}` + `startup_timeout_s: 1800`, or plain "
        f"`compute: cpu` (int8 ONNX, often enough for BERT-size models: see make bench){costs}."
    )
