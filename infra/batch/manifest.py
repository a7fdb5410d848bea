"""The batch manifest Lambda (lambdas/batch_manifest) as the schedule's state machine invokes it.

After a transform job succeeded, the function counts the run's input and output records and writes
`_manifest.json` under the run's output prefix, failing the run when the counts differ. It has its own
role (the two batch prefixes, the stage key, its log group, X-Ray), the Powertools layer and arm64.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config.batch import BatchSettings
from infra.operations.compliance import acknowledge, acknowledge_resources
from infra.operations.lambda_functions import ASSET_EXCLUDE, RUNTIME, powertools_layer

MANIFEST_HANDLER = "batch_manifest.handler.lambda_handler"
# What the function writes under the run's output prefix; lambdas/ may not be imported here, so the function
# has its own copy (batch_manifest.manifest.MANIFEST_NAME) and a test keeps the two equal.
MANIFEST_NAME = "_manifest.json"


def manifest_function(
    scope: Construct,
    *,
    settings: BatchSettings,
    bucket: s3.IBucket,
    key: kms.IKey,
    retention: logs.RetentionDays,
    code: Path,
) -> lambda_.Function:
    """The manifest Lambda, its log group and its own role, created in `scope` (the schedule's construct);
    `code` is the Lambda code root (lambdas/), of which it ships batch_manifest only."""
    input_objects = bucket.arn_for_objects(f"{settings.input_prefix}*")
    output_objects = bucket.arn_for_objects(f"{settings.output_prefix}*")
    function_logs = logs.LogGroup(scope, "ManifestLogs", encryption_key=key, retention=retention)
    role = iam.Role(
        scope,
        "ManifestRole",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description="sagebert batch manifest Lambda",
    )
    policy = iam.ManagedPolicy(
        scope,
        "ManifestPolicy",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[function_logs.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="Tracing", actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="ListBatchData",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{settings.input_prefix}*", f"{settings.output_prefix}*"]}},
            ),
            iam.PolicyStatement(
                sid="ReadBatchData", actions=["s3:GetObject"], resources=[input_objects, output_objects]
            ),
            iam.PolicyStatement(sid="WriteManifest", actions=["s3:PutObject"], resources=[output_objects]),
            iam.PolicyStatement(
                sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
            ),
        ],
    )
    acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; every other "
        "statement names its resource.",
    )
    acknowledge_resources(
        policy,
        "AwsSolutions-IAM5",
        [input_objects, output_objects],
        f"The function reads the run's input objects (under {settings.input_prefix}) and output objects and "
        f"writes its manifest (under {settings.output_prefix}); object keys are known only at run time, so "
        "the grant is limited to those two prefixes.",
    )
    powertools = powertools_layer(scope)
    function = lambda_.Function(
        scope,
        "ManifestFunction",
        description=f"sagebert batch transform: counts input and output records, writes {MANIFEST_NAME}",
        runtime=RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        code=lambda_.Code.from_asset(str(code), exclude=[*ASSET_EXCLUDE, "front_door"]),
        handler=MANIFEST_HANDLER,
        layers=[powertools],
        # Counting streams every input and output object once; more memory brings more network bandwidth.
        memory_size=1024,
        timeout=Duration.minutes(15),
        tracing=lambda_.Tracing.ACTIVE,
        log_group=function_logs,
        environment={
            "POWERTOOLS_SERVICE_NAME": "sagebert-batch-manifest",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        },
        # The policy above holds every permission (see InferenceApi for why the reference is immutable).
        role=iam.Role.from_role_arn(scope, "ManifestRoleRef", role.role_arn, mutable=False),
    )
    function.node.add_dependency(policy)
    acknowledge(
        function,
        "NIST.800.53.R5-LambdaInsideVPC",
        "The function only calls the S3 API (HTTPS, SigV4, IAM-scoped to the batch prefixes); it reaches no VPC "
        "resources, and a VPC would add NAT or endpoint cost.",
    )
    acknowledge(
        function,
        "NIST.800.53.R5-LambdaDLQ",
        "The state machine invokes the function synchronously: an error returns to the execution, which retries "
        "service errors, notifies the topic and fails (raising the alarm); there is no event to queue.",
    )
    acknowledge(
        function,
        "NIST.800.53.R5-LambdaConcurrency",
        "One invocation per scheduled run: the schedule bounds concurrency; reserving concurrency would take "
        "capacity from the account's unreserved pool for no gain.",
    )
    return function
