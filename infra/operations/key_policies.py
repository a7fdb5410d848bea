"""Statements on the stage's KMS key (ArtifactStore) that let AWS services use it for this stage's data.

A construct in another stack adds them through the key object; they name only services and ARN
patterns, never that stack's resources, so the storage stack never depends on the stacks that use it.
CDK keeps one copy of identical statements, so several constructs may add the same one.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms


def allow_cloudwatch_logs(key: kms.IKey) -> None:
    """Let CloudWatch Logs encrypt this account's and region's log groups with the key.

    https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
    The condition names log groups by pattern, not by ARN: the key lives in another stack, and naming
    this stack's log groups there would make the two stacks depend on each other.
    """
    key_stack = Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsEncryption",
            principals=[iam.ServicePrincipal(f"logs.{key_stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": key_stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )


def allow_cloudwatch_alarms(key: kms.IKey) -> None:
    """Let CloudWatch alarms publish to an SNS topic encrypted with the key.

    SNS asks KMS for a data key on behalf of the publisher, so the key policy must allow the
    publishing service (an IAM policy cannot be given to a service principal).
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
    Confused-deputy guard: only alarms of this account and region (the key's) may have the key used for them;
    alarm names are generated, so the source is every alarm there, never another account's.
    """
    key_stack = Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublishToEncryptedTopics",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],
            conditions={
                "StringEquals": {"aws:SourceAccount": key_stack.account},
                "ArnLike": {
                    "aws:SourceArn": key_stack.format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                },
            },
        )
    )
