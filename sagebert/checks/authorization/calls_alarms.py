"""The calls CloudWatch makes for the stage's alarms: publishing to each SNS topic an alarm notifies, as its service
principal, so the topic policy (and an encrypted topic's key policy) must allow it.
"""

from __future__ import annotations

from sagebert.checks.authorization.calls_builder import Builder, publish
from sagebert.checks.authorization.policy import Principal


def alarms(b: Builder) -> None:
    """An alarm notifying an SNS topic: CloudWatch publishes as its service principal, so the topic policy (and an
    encrypted topic's key policy) must allow it. https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
    AlarmThatSendsEmail.html#alarms-and-encryption"""
    r = b.resolver
    for stack, logical_id, props in b.each("AWS::CloudWatch::Alarm"):
        alarm = r.arn_of(stack, logical_id)
        service = Principal(
            label=f"cloudwatch.amazonaws.com (alarm {stack.name}/{logical_id})",
            arn="cloudwatch.amazonaws.com",
            account=stack.account,
            service="cloudwatch.amazonaws.com",
        )
        context = {"aws:SourceArn": (alarm,), "aws:SourceAccount": (stack.account,)}
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in r.resolve_list(stack, props.get(key)):
                if ":sns:" in action:
                    publish(b, service, action, f"{stack.name}/{logical_id} {key}", context=context)
