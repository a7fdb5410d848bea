"""ApiFirewall: the WAFv2 web ACL in front of an API Gateway stage (the stage's `api.waf`).

Creates a regional web ACL (AWS managed rule groups Common and KnownBadInputs, a per-IP rate limit that blocks),
its association with the stage, and its logging: blocked and counted requests, credentials redacted, to a
KMS-encrypted log group named aws-waf-logs-<unique>.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Names, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config.api import WafSettings
from infra.operations.key_policies import allow_cloudwatch_logs

# WAF logs carry request headers: these hold credentials and are redacted.
REDACTED_HEADERS = ("authorization", "x-api-key", "x-amz-security-token")


class ApiFirewall:
    """The web ACL on the stage `stage_arn`, logging to a log group encrypted with `key`.

    Not a construct of its own: it adds its resources to `scope` (InferenceApi), so they keep the logical IDs
    (and the log group its name) they had when InferenceApi created them itself; a construct level between would
    rename, and so replace, every deployed one.

    Exposes `web_acl` and `log_group`.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        settings: WafSettings,
        stage_arn: str,
        key: kms.IKey,
        retention: logs.RetentionDays,
    ) -> None:
        allow_cloudwatch_logs(key)
        self.web_acl = wafv2.CfnWebACL(
            scope,
            "WebAcl",
            scope="REGIONAL",
            description="sagebert front door",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("SageBertFrontDoor"),
            rules=[
                # SizeRestrictions_BODY blocks bodies over 8 KB, but a predict request may legitimately
                # carry up to api.max_body_bytes (64 texts of up to 10,000 characters): count it instead
                # of blocking, and let the request model and the Lambda enforce the real limits.
                # https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html
                _managed("AWSManagedRulesCommonRuleSet", 0, ["SizeRestrictions_BODY"]),
                _managed("AWSManagedRulesKnownBadInputsRuleSet", 1, []),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=2,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP", limit=settings.rate_limit, evaluation_window_sec=300
                        )
                    ),
                    visibility_config=_visibility("RateLimitPerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            scope, "WebAclAssociation", resource_arn=stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        # WAF delivers logs only to a log group whose name starts with aws-waf-logs-, hence the
        # physical name (unique per stage: it is derived from the construct path).
        self.log_group = logs.LogGroup(
            scope,
            "WafLogs",
            log_group_name="aws-waf-logs-" + Names.unique_resource_name(scope, max_length=200, separator="-"),
            encryption_key=key,
            retention=retention,
            # Kept on update and delete, but not when the stack's first create rolls back: a retained group with
            # this fixed name would make every retry fail with AlreadyExists (DeletionPolicy RetainExceptOnCreate).
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        wafv2.CfnLoggingConfiguration(
            scope,
            "WafLogging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[
                Stack.of(scope).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=self.log_group.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": header})
                for header in REDACTED_HEADERS
            ],
            # Blocked and counted requests only: the access log already records every request.
            logging_filter={
                "DefaultBehavior": "DROP",
                "Filters": [
                    {
                        "Behavior": "KEEP",
                        "Requirement": "MEETS_ANY",
                        "Conditions": [
                            {"ActionCondition": {"Action": "BLOCK"}},
                            {"ActionCondition": {"Action": "COUNT"}},
                        ],
                    }
                ],
            },
        )


def _visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _managed(name: str, priority: int, overrides: list[str]) -> wafv2.CfnWebACL.RuleProperty:
    """An AWS managed rule group, its own actions kept except the `overrides`, which only count."""
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                rule_action_overrides=[
                    wafv2.CfnWebACL.RuleActionOverrideProperty(
                        name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                    )
                    for rule in overrides
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )
