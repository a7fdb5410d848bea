"""FrontDoorFunction: the front-door Lambda, which validates a predict request and calls the SageMaker endpoint.

Creates the function (Python 3.14, arm64, the Powertools layer, X-Ray with `settings.tracing`, SnapStart with
`settings.snap_start`) from the Lambda code root, the alias `live` that API Gateway calls, the function's own
KMS-encrypted log group, and its role with one customer-managed policy: write its logs, send traces (when traced),
InvokeEndpoint on this one endpoint. Also home of what every function built from lambdas/ shares: the runtime and
the files each asset leaves out.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config.api import ApiSettings
from infra.online.realtime_endpoint import RealtimeEndpoint
from infra.operations.compliance import acknowledge
from infra.operations.key_policies import allow_cloudwatch_logs
from infra.operations.lambda_functions import ASSET_EXCLUDE, RUNTIME, powertools_layer

HANDLER = "front_door.handler.lambda_handler"


class FrontDoorFunction:
    """The front-door Lambda for one endpoint, built from `code` (the Lambda code root, lambdas/).

    Not a construct of its own: it adds its resources to `scope` (InferenceApi), so they keep the logical IDs
    they had when InferenceApi created them itself; a construct level between would rename, and so replace,
    every deployed one.

    Exposes `function`, `alias` (`live`, the published version API Gateway invokes), `role`, `policy` and
    `log_group`.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        settings: ApiSettings,
        endpoint: RealtimeEndpoint,
        key: kms.IKey,
        retention: logs.RetentionDays,
        code: Path,
    ) -> None:
        allow_cloudwatch_logs(key)
        self.log_group = logs.LogGroup(scope, "FunctionLogs", encryption_key=key, retention=retention)
        self.role = iam.Role(
            scope,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="sagebert front-door Lambda",
        )
        # Every permission in one customer-managed policy (NIST 800-53 IAMNoInlinePolicy; no
        # AWSLambdaBasicExecutionRole, AwsSolutions-IAM4): write its own log group, send traces,
        # invoke this one endpoint.
        self.policy = iam.ManagedPolicy(
            scope,
            "FunctionPolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
            ],
        )
        if settings.tracing:
            # X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.
            self.policy.add_statements(
                iam.PolicyStatement(
                    sid="Tracing",
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                )
            )
            acknowledge(
                self.policy,
                "AwsSolutions-IAM5[Resource::*]",
                "xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; every "
                "other statement names its one resource.",
            )
        endpoint.grant_invoke(self.policy)

        powertools = powertools_layer(scope)
        self.function = lambda_.Function(
            scope,
            "Function",
            description="sagebert front door: validates a predict request and calls the SageMaker endpoint",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(code), exclude=[*ASSET_EXCLUDE, "batch_manifest"]),
            handler=HANDLER,
            layers=[powertools],
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.lambda_timeout_s),
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            # SnapStart: init runs when a version is published, cold starts resume from its snapshot.
            # Python 3.12+ on x86_64 and arm64; not with provisioned concurrency, EFS or more than 512 MB of
            # ephemeral storage (none used here); published versions only, so API Gateway calls an alias.
            # https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snap_start else None,
            # Each version's snapshot is billed while the version is active: delete the old one on update.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
            log_group=self.log_group,
            environment=environment(settings, endpoint.endpoint_name, endpoint.inference_component_name),
            # The policy above holds every permission. An immutable reference keeps CDK from adding an
            # inline default policy (for tracing) beside it, and from a DependsOn on the role that the
            # Role attribute already implies (cfn-lint W3005).
            role=iam.Role.from_role_arn(scope, "FunctionRoleRef", self.role.role_arn, mutable=False),
        )
        # Lambda checks the role's X-Ray permission when it creates a traced function.
        self.function.node.add_dependency(self.policy)
        # API Gateway calls the alias: SnapStart applies to published versions only, never to $LATEST.
        self.alias = lambda_.Alias(scope, "Live", alias_name="live", version=self.function.current_version)
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls the SageMaker runtime API (HTTPS, SigV4-signed, IAM-scoped to one "
            "endpoint); it reaches no VPC resources, and a VPC would add NAT or endpoint cost and cold-start time.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaDLQ",
            "API Gateway invokes the function synchronously: every error returns to the caller as an HTTP "
            "response, so there is no failed event to queue.",
        )
        if settings.reserved_concurrency is None:
            acknowledge(
                self.function,
                "NIST.800.53.R5-LambdaConcurrency",
                "api.reserved_concurrency is not set for this stage: the stage throttle "
                f"({settings.throttle_rate_limit:g} requests/s, burst {settings.throttle_burst_limit}) bounds "
                "concurrency; set api.reserved_concurrency to reserve and cap it.",
            )


def environment(settings: ApiSettings, endpoint_name: str, inference_component: str | None = None) -> dict[str, str]:
    """The function's environment: the endpoint (and its inference component, which InvokeEndpoint must name when
    the endpoint has one), the call budget and limits, Powertools, tracing, CORS."""
    variables = {
        "SAGEBERT_ENDPOINT_NAME": endpoint_name,
        "SAGEBERT_READ_TIMEOUT_S": f"{settings.read_timeout_s:g}",
        "SAGEBERT_CONNECT_TIMEOUT_S": f"{settings.connect_timeout_s:g}",
        "SAGEBERT_MAX_ATTEMPTS": str(settings.max_attempts),
        "SAGEBERT_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "POWERTOOLS_SERVICE_NAME": "sagebert-front-door",
        "POWERTOOLS_METRICS_NAMESPACE": "SageBert",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # The handler imports the X-Ray SDK (~190 ms of init) only when the function is traced.
        "SAGEBERT_TRACING": "true" if settings.tracing else "false",
    }
    if settings.target_variant is not None:
        variables["SAGEBERT_TARGET_VARIANT"] = settings.target_variant
    if inference_component is not None:
        variables["SAGEBERT_INFERENCE_COMPONENT"] = inference_component
    if settings.cors_allow_origins:
        variables["SAGEBERT_CORS_ALLOW_ORIGINS"] = ",".join(settings.cors_allow_origins)
    return variables
