"""RealtimeEndpoint: a SageMaker endpoint on one compute profile, with its variants, guardrails and scaling."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.catalog import compute_profiles
from infra.config.endpoint import EndpointSettings
from infra.operations.compliance import acknowledge
from infra.operations.key_policies import allow_cloudwatch_logs
from infra.operations.log_retention import RETENTION
from infra.release.hugging_face_model import (
    ENDPOINT_METRIC_NAMESPACE,
    component_log_group_name,
    endpoint_log_group_name,
)

# SageMaker publishes invocation metrics (EndpointName, VariantName) and, for instance-backed variants,
# instance metrics (CPU, memory, disk, GPU) under ENDPOINT_METRIC_NAMESPACE (kept with the execution role that may
# publish there).
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
ENDPOINT_NAMESPACE = "AWS/SageMaker"
# ModelLatency and OverheadLatency are published in microseconds.
MICROSECONDS_PER_MS = 1000


def inference_component_name(settings: EndpointSettings, endpoint_name: str) -> str | None:
    """The name of the endpoint's inference component (None in the variant form): the endpoint's own, so alarms,
    scaling, log permissions and the front door can name it before it exists."""
    return endpoint_name if settings.inference_component is not None else None


@dataclass(frozen=True)
class VariantModel:
    """A production or shadow variant and the SageMaker model it serves."""

    name: str
    model_name: str
    instance_type: str | None
    instance_count: int
    weight: float


def scale_out_from_zero(
    target: autoscaling.ScalableTarget,
    signal: cloudwatch.IMetric,
    cooldown_s: int,
    aggregation: autoscaling.MetricAggregationType | None = None,
) -> None:
    """Add one unit when `signal` (a 0/1 "work is waiting and nothing serves it" metric) is 1: target tracking
    cannot leave zero capacity, where its per-unit metric is undefined. Policy id ScaleOutFromZero on `target`."""
    target.scale_on_metric(
        "ScaleOutFromZero",
        metric=signal,
        scaling_steps=[
            autoscaling.ScalingInterval(upper=0.5, change=0),
            autoscaling.ScalingInterval(lower=0.5, change=1),
        ],
        adjustment_type=autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
        cooldown=Duration.seconds(cooldown_s),
        metric_aggregation_type=aggregation,
        evaluation_periods=1,
    )


class RealtimeEndpoint(Construct):
    """Creates the endpoint config (generated name: configs are immutable and replaced on change) and the
    endpoint (fixed name, so the rollback alarms can watch it before it exists), with:

    - the compute profile's variant form: instances, or serverless memory and concurrency;
    - A/B production variants and an optional shadow variant;
    - deployment guardrails on every update: blue/green (all at once, canary or linear) with automatic
      rollback on per-variant 5XX and model-latency alarms, and retained instance counts under autoscaling;
    - target-tracking autoscaling (invocations per instance; backlog per instance and scale to zero for async);
    - with `settings.inference_component`, the inference-component form: a variant without a model, with managed
      instance scaling and least-outstanding-requests routing, the config's execution role, rollback alarms on the
      component's metrics and no endpoint-level traffic shifting (the component itself is `InferenceComponent`);
    - data capture and async output into the stage's bucket, encrypted with the stage's key;
    - the endpoint's log group /aws/sagemaker/Endpoints/<name> (stage key, `settings.log_retention_days`).

    Exposes `endpoint_name`, `endpoint_arn`, `variant_names` (production variants), `instance_types`, `has_instances`,
    `gpu`, `inference_component_name` (None in the variant form), `rollback_alarms`, `async_topics`, `metric`,
    `component_metric` and `grant_invoke(grantee)`.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: EndpointSettings,
        endpoint_name: str,
        variants: list[VariantModel],
        shadow: VariantModel | None,
        key: kms.IKey,
        bucket: s3.IBucket,
        retain_logs: bool = True,
        component_role: iam.IRole | None = None,
    ) -> None:
        """`component_role` is the endpoint config's execution role in inference-component form
        (`settings.inference_component`): the role SageMaker assumes to place the component's copies."""
        super().__init__(scope, id_)
        profile = settings.profile
        self.settings = settings
        self.variant_name = settings.variant_name
        self.variant_names: list[str] = [v.name for v in variants]
        # Production variant name -> instance type (none for serverless).
        self.instance_types: dict[str, str] = {v.name: v.instance_type for v in variants if v.instance_type}
        self.has_instances: bool = profile.instances
        self.gpu: bool = settings.compute == "gpu"
        self.endpoint_name: str = endpoint_name
        self.async_topics: list[sns.ITopic] = []
        # Inference-component form: the endpoint holds instances, the component holds the model.
        self.inference_component_name = inference_component_name(settings, endpoint_name)
        if self.inference_component_name is not None and component_role is None:
            raise ValueError("an endpoint in inference-component form needs the config's execution role")

        instance_types = [v.instance_type for v in [*variants, *([shadow] if shadow else [])] if v.instance_type]
        # NVMe instance storage is encrypted in hardware and SageMaker rejects a KMS key for it; serverless
        # has no ML storage volume to encrypt.
        volume_key = profile.instances and not any(compute_profiles.has_nvme(t) for t in instance_types)
        self.config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            kms_key_id=key.key_arn if volume_key else None,
            production_variants=[self._variant(settings, v) for v in variants],
            execution_role_arn=component_role.role_arn if component_role is not None else None,
            shadow_production_variants=[self._variant(settings, shadow)] if shadow else None,
            data_capture_config=self._data_capture(settings, bucket, key),
            async_inference_config=self._async(settings, bucket, key),
        )
        if not volume_key:
            reason = (
                "serverless endpoints have no ML storage volume to encrypt"
                if not profile.instances
                else f"{', '.join(sorted(set(instance_types)))} carries local NVMe storage, which SageMaker encrypts "
                "in hardware and for which it rejects KmsKeyId"
            )
            acknowledge(self.config, "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured", reason)

        self.rollback_alarms = self._rollback_alarms(settings)
        rollout = settings.rollout
        routing = sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
            type=rollout.strategy.upper(),
            wait_interval_in_seconds=rollout.wait_interval_s,
            canary_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                type="CAPACITY_PERCENT", value=rollout.canary_percent
            )
            if rollout.strategy == "canary"
            else None,
            linear_step_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                type="CAPACITY_PERCENT", value=rollout.linear_step_percent
            )
            if rollout.strategy == "linear"
            else None,
        )
        # In inference-component form the model is updated on the component, which rolls its copies over with these
        # alarms (InferenceComponent); the endpoint itself changes only with its instances.
        endpoint_guardrails = self.inference_component_name is None
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.config.attr_endpoint_config_name,
            deployment_config=None
            if not endpoint_guardrails
            else sagemaker.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=routing,
                    termination_wait_in_seconds=rollout.termination_wait_s,
                    maximum_execution_timeout_in_seconds=rollout.max_execution_timeout_s,
                ),
                auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[
                        sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name)
                        for alarm in self.rollback_alarms
                    ]
                ),
            ),
            # Under autoscaling an update keeps the instance counts it has reached (a deployment must not
            # undo a scale-out); weights still come from the config so an A/B split can be changed.
            retain_all_variant_properties=settings.autoscaling is not None,
            exclude_retained_variant_properties=[
                sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type="DesiredWeight")
            ]
            if settings.autoscaling is not None
            else None,
        )
        # The container log group SageMaker would otherwise create itself, unencrypted and kept forever: made here
        # with the stage key and the configured retention, before the endpoint, so SageMaker finds it.
        allow_cloudwatch_logs(key)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=endpoint_log_group_name(endpoint_name),
            encryption_key=key,
            retention=RETENTION[settings.log_retention_days],
            # Fixed name: RetainExceptOnCreate, so a rolled-back first create leaves nothing behind; deleted with the
            # stack where the stage's data is (retain_data: false), so a later deploy can create it again.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain_logs else RemovalPolicy.DESTROY,
        )
        self.endpoint.node.add_dependency(self.log_group)
        # In inference-component form the containers log to the component's own group: made here likewise.
        self.component_log_group: logs.LogGroup | None = None
        if self.inference_component_name is not None:
            self.component_log_group = logs.LogGroup(
                self,
                "ComponentLogs",
                log_group_name=component_log_group_name(self.inference_component_name),
                encryption_key=key,
                retention=RETENTION[settings.log_retention_days],
                removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain_logs else RemovalPolicy.DESTROY,
            )
        # Ref on AWS::SageMaker::Endpoint is its ARN.
        self.endpoint_arn: str = self.endpoint.ref
        if settings.autoscaling is not None:
            self._autoscaling(settings)

    @staticmethod
    def _variant(
        settings: EndpointSettings, variant: VariantModel
    ) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
        component = settings.inference_component
        if component is not None:
            assert variant.instance_type is not None
            return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                # No model: the inference component brings it. Managed instance scaling starts and releases
                # instances as the component's copies need them (to zero with scale_to_zero).
                variant_name=variant.name,
                instance_type=variant.instance_type,
                initial_instance_count=variant.instance_count,
                volume_size_in_gb=settings.volume_size_gb,
                managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                    status="ENABLED",
                    min_instance_count=component.min_instances(variant.instance_type),
                    max_instance_count=component.instance_limit(variant.instance_type),
                ),
                routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                    routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                ),
            )
        if not settings.profile.instances:
            assert settings.serverless is not None
            serverless = settings.serverless
            return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=variant.name,
                model_name=variant.model_name,
                initial_variant_weight=variant.weight,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=serverless.memory_mb,
                    max_concurrency=serverless.max_concurrency,
                    provisioned_concurrency=serverless.provisioned_concurrency or None,
                ),
            )
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            # Stable across updates: deployment guardrails match variants by name.
            variant_name=variant.name,
            model_name=variant.model_name,
            instance_type=variant.instance_type,
            initial_instance_count=variant.instance_count,
            initial_variant_weight=variant.weight,
            volume_size_in_gb=settings.volume_size_gb,
            container_startup_health_check_timeout_in_seconds=settings.startup_timeout_s,
            model_data_download_timeout_in_seconds=settings.model_download_timeout_s,
        )

    @staticmethod
    def _data_capture(
        settings: EndpointSettings, bucket: s3.IBucket, key: kms.IKey
    ) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty | None:
        capture = settings.data_capture
        if capture is None:
            return None
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=True,
            initial_sampling_percentage=capture.sampling_percent,
            destination_s3_uri=bucket.s3_url_for_object(capture.prefix.rstrip("/")),
            kms_key_id=key.key_arn,
            capture_options=[
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode=mode.capitalize())
                for mode in capture.capture
            ],
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                json_content_types=capture.json_content_types
            ),
        )

    def _async(
        self, settings: EndpointSettings, bucket: s3.IBucket, key: kms.IKey
    ) -> sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty | None:
        config = settings.async_inference
        if config is None:
            return None
        success = sns.Topic(
            self, "AsyncSuccess", display_name="sagebert async answers", master_key=key, enforce_ssl=True
        )
        error = sns.Topic(self, "AsyncError", display_name="sagebert async failures", master_key=key, enforce_ssl=True)
        self.async_topics = [success, error]
        return sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
            output_config=sagemaker.CfnEndpointConfig.AsyncInferenceOutputConfigProperty(
                s3_output_path=bucket.s3_url_for_object(config.output_prefix.rstrip("/")),
                s3_failure_path=bucket.s3_url_for_object(config.failure_prefix.rstrip("/")),
                kms_key_id=key.key_arn,
                notification_config=sagemaker.CfnEndpointConfig.AsyncInferenceNotificationConfigProperty(
                    success_topic=success.topic_arn,
                    error_topic=error.topic_arn,
                    include_inference_response_in=["SUCCESS_NOTIFICATION_TOPIC"]
                    if config.include_answer_in_notification
                    else None,
                ),
            ),
            client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                max_concurrent_invocations_per_instance=config.max_concurrent_invocations_per_instance
            ),
        )

    def _rollback_alarms(self, settings: EndpointSettings) -> list[cloudwatch.Alarm]:
        """Per production variant: 5XX errors and p99 model latency. SageMaker watches them during every
        update's baking periods and rolls back to the old fleet when one fires."""
        rollout = settings.rollout
        alarms: list[cloudwatch.Alarm] = []
        for variant in self.variant_names:
            errors = self.metric("Invocation5XXErrors", variant=variant, statistic="Sum")
            latency = self.metric("ModelLatency", variant=variant, statistic="p99")  # microseconds
            if self.inference_component_name is not None:
                # The component's invocations are published per component (InferenceComponentName).
                errors = self.component_metric("Invocation5XXErrors", statistic="Sum")
                latency = self.component_metric("ModelLatency", statistic="p99")
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"Rollback5xx{variant}",
                    metric=errors,
                    threshold=rollout.max_5xx_errors_per_minute,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=2,
                    # No invocations in a minute means no errors: not a reason to roll back.
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"Rolls back an update of {self.endpoint_name}: variant {variant} answers 5XX.",
                )
            )
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"RollbackLatency{variant}",
                    metric=latency,
                    threshold=rollout.max_model_latency_ms * MICROSECONDS_PER_MS,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=2,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"Rolls back an update of {self.endpoint_name}: variant {variant} p99 model "
                    f"latency above {rollout.max_model_latency_ms} ms.",
                )
            )
        owner = "endpoint's" if self.inference_component_name is None else "inference component's"
        for alarm in alarms:
            acknowledge(
                alarm,
                "NIST.800.53.R5-CloudWatchAlarmAction",
                f"A rollback alarm acts through the {owner} DeploymentConfig: SageMaker reads its state during an "
                "update and rolls back; the stage's Monitoring alarms notify people.",
            )
        return alarms

    def _autoscaling(self, settings: EndpointSettings) -> None:
        scaling = settings.autoscaling
        assert scaling is not None
        # Without a role, Application Auto Scaling uses its service-linked role for SageMaker endpoints.
        self.scalable_target = autoscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{settings.variant_name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=scaling.min_instances,
            max_capacity=scaling.max_instances,
        )
        self.scalable_target.node.add_dependency(self.endpoint)
        scale_in = Duration.seconds(scaling.scale_in_cooldown_s)
        scale_out = Duration.seconds(scaling.scale_out_cooldown_s)
        if settings.compute != "async":
            target = settings.scaling_target
            assert target is not None
            self.scalable_target.scale_to_track_metric(
                "InvocationsPerInstance",
                target_value=target,
                predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
                scale_in_cooldown=scale_in,
                scale_out_cooldown=scale_out,
            )
            return
        backlog = self.metric("ApproximateBacklogSizePerInstance", statistic="Average")
        self.scalable_target.scale_to_track_metric(
            "BacklogPerInstance",
            target_value=scaling.target_backlog_per_instance,
            custom_metric=backlog,
            scale_in_cooldown=scale_in,
            scale_out_cooldown=scale_out,
        )
        # Target tracking cannot leave zero instances (backlog per instance is undefined there): a step policy on
        # HasBacklogWithoutCapacity starts the first instance when requests wait.
        waiting = self.metric("HasBacklogWithoutCapacity", statistic="Average")
        scale_out_from_zero(self.scalable_target, waiting, scaling.scale_out_cooldown_s)

    def metric(
        self,
        name: str,
        *,
        statistic: str,
        variant: str | None = None,
        instance: bool = False,
        period: Duration | None = None,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        """A CloudWatch metric of this endpoint: of one variant when `variant` is given (else endpoint-wide,
        as async backlog metrics are), an instance metric (CPU, memory, GPU ...) when `instance`; one-minute
        periods unless `period` says otherwise."""
        dimensions = {"EndpointName": self.endpoint_name}
        if variant is not None:
            dimensions["VariantName"] = variant
        return cloudwatch.Metric(
            namespace=ENDPOINT_METRIC_NAMESPACE if instance else ENDPOINT_NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period or Duration.minutes(1),
            label=label,
        )

    def component_metric(
        self, name: str, *, statistic: str, period: Duration | None = None, label: str | None = None
    ) -> cloudwatch.Metric:
        """A CloudWatch metric of this endpoint's inference component (dimension InferenceComponentName), one-minute
        periods unless `period` says otherwise."""
        if self.inference_component_name is None:
            raise ValueError(f"{self.endpoint_name} has no inference component")
        return cloudwatch.Metric(
            namespace=ENDPOINT_NAMESPACE,
            metric_name=name,
            dimensions_map={"InferenceComponentName": self.inference_component_name},
            statistic=statistic,
            period=period or Duration.minutes(1),
            label=label,
        )

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow grantee sagemaker:InvokeEndpoint on this endpoint and, in inference-component form, on its
        component: IAM authorizes a call that names InferenceComponentName against both the `endpoint` and the
        `inference-component` resource (Service Authorization Reference, Amazon SageMaker AI, InvokeEndpoint;
        https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:InvokeEndpoint"],
            resource_arns=[self.endpoint_arn, *self.component_arns()],
        )

    def component_arns(self) -> list[str]:
        """The ARN of this endpoint's inference component (none in the variant form), built from its fixed name so
        that no stack imports it. SageMaker writes the names in its ARNs in lower case; a name with capitals gets
        both spellings, which name the same component."""
        name = self.inference_component_name
        if name is None:
            return []
        stack = Stack.of(self)
        return [
            stack.format_arn(service="sagemaker", resource="inference-component", resource_name=spelling)
            for spelling in sorted({name, name.lower()})
        ]
