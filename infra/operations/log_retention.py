"""CloudWatch Logs retention in days (the config's LogRetentionDays) -> CDK's enum, and how long a stage's encrypted
log groups live."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

# infra.config.base.LOG_RETENTION_DAYS lists the same values; a test keeps the two in step.
RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def delete_with_the_key(scope: Construct) -> None:
    """Every KMS-encrypted log group under `scope` is deleted with its stack: for a stage whose key is deleted with it
    (retain_data: false). CDK keeps a log group by default, and a group that outlives its key holds logs nobody can
    read (CloudWatch Logs cannot decrypt them once the key is gone), while its fixed name, where it has one, blocks the
    next deploy. sagebert.checks.deploy_gates.outlived_keys finds any that stays."""
    for node in scope.node.find_all():
        if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is not None:
            node.apply_removal_policy(RemovalPolicy.DESTROY)
