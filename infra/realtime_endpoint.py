"""RealtimeEndpoint: a SageMaker real-time endpoint with one production variant."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.config import EndpointSettings


class RealtimeEndpoint(Construct):
    """Creates an endpoint config (generated name: configs are immutable and replaced on change)
    with its ML storage volume encrypted by `key`, and the endpoint (generated name).

    Exposes `endpoint_name`, `endpoint_arn` and `grant_invoke(grantee)`.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: EndpointSettings,
        model_name: str,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        self.variant_name = settings.variant_name
        # What monitoring needs to know: every production variant, and which instance metrics exist.
        self.variant_names: list[str] = [settings.variant_name]
        self.has_instances: bool = True
        self.gpu: bool = False
        self.config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            kms_key_id=key.key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    # Stable across updates: deployment guardrails match variants by name.
                    variant_name=settings.variant_name,
                    model_name=model_name,
                    instance_type=settings.instance_type,
                    initial_instance_count=settings.instance_count,
                    initial_variant_weight=1.0,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.config.attr_endpoint_config_name
        )
        self.endpoint_name: str = self.endpoint.attr_endpoint_name
        # Ref on AWS::SageMaker::Endpoint is its ARN.
        self.endpoint_arn: str = self.endpoint.ref

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow grantee sagemaker:InvokeEndpoint on this endpoint only."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=[self.endpoint_arn]
        )
