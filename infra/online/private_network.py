"""PrivateNetwork: a VPC for the endpoint's containers, with no route to the internet."""

from __future__ import annotations

from aws_cdk import Annotations, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config.endpoint import VpcSettings
from infra.operations.compliance import acknowledge, quiet_cfn_lint_on_cdk_provider
from infra.operations.key_policies import allow_cloudwatch_logs

# What a SageMaker endpoint in a VPC reaches without internet: S3 (model data, captured data, async
# answers) through a gateway endpoint; ECR (the image) and CloudWatch Logs (container logs) through
# interface endpoints.
# https://docs.aws.amazon.com/sagemaker/latest/dg/host-vpc.html
INTERFACE_ENDPOINTS = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
}


class PrivateNetwork(Construct):
    """A VPC with one private (isolated) subnet per Availability Zone, flow logs, a security group for the
    endpoint's containers, and the VPC endpoints they need.

    Exposes `vpc`, `subnet_ids` and `security_group`.
    """

    def __init__(self, scope: Construct, id_: str, *, settings: VpcSettings, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        known_zones = Stack.of(self).availability_zones
        if len(known_zones) < settings.availability_zones:
            # A stack that leaves the zones to CDK knows only two of an environment-agnostic region.
            Annotations.of(self).add_warning_v2(
                "sagebert:vpc-zones",
                f"endpoint.vpc.availability_zones = {settings.availability_zones}, but this stack can place subnets "
                f"in {len(known_zones)} zones only.",
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.cidr),
            max_azs=settings.availability_zones,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="endpoint", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
            # The default group is closed (CDK removes its rules with a custom resource): nothing may use it.
            restrict_default_security_group=True,
        )
        quiet_cfn_lint_on_cdk_provider(Stack.of(self), "Custom::VpcRestrictDefaultSGCustomResourceProvider")
        # The flow-log group is encrypted with the stage key: CloudWatch Logs must be allowed to use it whether or
        # not another construct of the stage (the API's or the batch schedule's logs) already asked for the same.
        allow_cloudwatch_logs(key)
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            encryption_key=key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        flow_log = self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group)
        )
        acknowledge(
            flow_log,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK's flow-log role carries its grant inline; it allows writing to this VPC's flow-log group only.",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="sagebert endpoint containers: HTTPS to the VPC endpoints only",
            allow_all_outbound=False,
        )
        endpoint_group = ec2.SecurityGroup(
            self,
            "VpcEndpointSecurityGroup",
            vpc=self.vpc,
            description="sagebert VPC interface endpoints: HTTPS from the endpoint containers",
            allow_all_outbound=False,
        )
        endpoint_group.add_ingress_rule(self.security_group, ec2.Port.tcp(443), "HTTPS from the endpoint containers")
        # HTTPS out to any address: the isolated subnets have no internet route, so this reaches only the VPC
        # endpoints and S3's gateway endpoint (whose regional prefix list is not known at synth without a lookup).
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC endpoints and S3")
        subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[subnets])
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=subnets,
                security_groups=[endpoint_group],
                private_dns_enabled=True,
                open=False,  # reachable from the endpoint's security group only, not the whole VPC range
            )
        self.subnet_ids: list[str] = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
