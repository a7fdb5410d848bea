"""InferenceComponent: the stage's model as a SageMaker inference component on an endpoint in inference-component
form, with copy-count scaling and, where allowed, scale to zero."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.config.endpoint import EndpointSettings
from infra.online.realtime_endpoint import RealtimeEndpoint, scale_out_from_zero

# Application Auto Scaling's names for a component's copy count.
# https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html
SCALABLE_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
# Invocations that found no copy to answer them: published while the component has zero copies.
NO_CAPACITY_METRIC = "NoCapacityInvocationFailures"


def resource_id(component_name: str) -> str:
    """The scalable target's resource id of an inference component."""
    return f"inference-component/{component_name}"


class InferenceComponent(Construct):
    """Creates the `AWS::SageMaker::InferenceComponent` that serves `model_name` on the endpoint's production
    variant, with:

    - each copy's reserved CPU cores and memory, and the start-up timeouts of a new copy;
    - rolling updates of the copies, rolling_batch_percent of them per step, rolled back (all at once) on the
      endpoint's rollback alarms (5XX errors and p99 model latency of the component);
    - target tracking of the copy count on invocations per copy (min_copies to max_copies; managed instance scaling
      starts and releases the instances the copies need);
    - with scale_to_zero, min copies 0 and a step-scaling policy whose alarm on NoCapacityInvocationFailures adds
      the first copy when a request finds none.

    Exposes `component_name`, `component` and `scalable_target`.
    """

    def __init__(
        self, scope: Construct, id_: str, *, settings: EndpointSettings, endpoint: RealtimeEndpoint, model_name: str
    ) -> None:
        super().__init__(scope, id_)
        component = settings.inference_component
        if component is None or endpoint.inference_component_name is None:
            raise ValueError("InferenceComponent needs endpoint.inference_component and an endpoint in that form")
        assert settings.instance_type is not None
        self.component_name: str = endpoint.inference_component_name
        rollout = settings.rollout
        self.component = sagemaker.CfnInferenceComponent(
            self,
            "Component",
            inference_component_name=self.component_name,
            # The endpoint's attribute, not its fixed name: CloudFormation creates the component once the endpoint
            # is in service.
            endpoint_name=endpoint.endpoint.attr_endpoint_name,
            variant_name=settings.variant_name,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=model_name,
                compute_resource_requirements=sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                    number_of_cpu_cores_required=component.cpu_cores,
                    min_memory_required_in_mb=component.memory_mb,
                ),
                startup_parameters=sagemaker.CfnInferenceComponent.InferenceComponentStartupParametersProperty(
                    container_startup_health_check_timeout_in_seconds=settings.startup_timeout_s,
                    model_data_download_timeout_in_seconds=settings.model_download_timeout_s,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(
                copy_count=component.copies
            ),
            deployment_config=sagemaker.CfnInferenceComponent.InferenceComponentDeploymentConfigProperty(
                rolling_update_policy=sagemaker.CfnInferenceComponent.InferenceComponentRollingUpdatePolicyProperty(
                    # A percent of the copies, 5 to 50 (the config's rule and its source): valid at any copy count.
                    # RollbackMaximumBatchSize stays unset: SageMaker then rolls back all copies at once (blue/green).
                    maximum_batch_size=sagemaker.CfnInferenceComponent.InferenceComponentCapacitySizeProperty(
                        type="CAPACITY_PERCENT", value=component.rolling_batch_percent
                    ),
                    wait_interval_in_seconds=rollout.wait_interval_s,
                    maximum_execution_timeout_in_seconds=rollout.max_execution_timeout_s,
                ),
                auto_rollback_configuration=sagemaker.CfnInferenceComponent.AutoRollbackConfigurationProperty(
                    alarms=[
                        sagemaker.CfnInferenceComponent.AlarmProperty(alarm_name=alarm.alarm_name)
                        for alarm in endpoint.rollback_alarms
                    ]
                ),
            ),
        )

        # Without a role, Application Auto Scaling uses its service-linked role for SageMaker.
        self.scalable_target = autoscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=resource_id(self.component_name),
            scalable_dimension=SCALABLE_DIMENSION,
            min_capacity=component.min_copies,
            max_capacity=component.max_copies,
        )
        self.scalable_target.node.add_dependency(self.component)
        self.scalable_target.scale_to_track_metric(
            "InvocationsPerCopy",
            target_value=component.scaling_target(settings.instance_type),
            predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
            scale_in_cooldown=Duration.seconds(component.scale_in_cooldown_s),
            scale_out_cooldown=Duration.seconds(component.scale_out_cooldown_s),
        )
        if component.scale_to_zero:
            self._scale_out_from_zero(endpoint, component.scale_out_cooldown_s)

    def _scale_out_from_zero(self, endpoint: RealtimeEndpoint, cooldown_s: int) -> None:
        """Target tracking cannot leave zero copies (invocations per copy is undefined there): a step policy adds
        one copy when a request found none, and managed instance scaling starts an instance for it."""
        failures = endpoint.component_metric(NO_CAPACITY_METRIC, statistic="Maximum")
        scale_out_from_zero(
            self.scalable_target, failures, cooldown_s, aggregation=autoscaling.MetricAggregationType.MAXIMUM
        )
