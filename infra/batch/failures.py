"""How a failed batch run reaches people: the failure topic and the alarm on failed runs.

The state machine publishes every failure to the topic (KMS-encrypted, TLS only, optionally with an
email subscription); a CloudWatch alarm on failed, timed-out or aborted executions notifies it too,
so a run that dies outside its own error handling is not missed.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


def failure_topic(scope: Construct, *, alarm_email: str | None, key: kms.IKey) -> sns.Topic:
    """The topic failed runs are published to, created in `scope` (the schedule's construct)."""
    topic = sns.Topic(scope, "Topic", display_name="sagebert batch transform", master_key=key, enforce_ssl=True)
    if alarm_email is not None:
        topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
    return topic


def failed_runs_alarm(scope: Construct, *, state_machine: sfn.StateMachine, topic: sns.Topic) -> cloudwatch.Alarm:
    """An alarm on failed, timed-out or aborted executions that notifies `topic`, which lets it (and only it) in."""
    period = Duration.minutes(5)
    metrics = {
        "failed": state_machine.metric_failed(period=period, statistic="Sum"),
        "timedOut": state_machine.metric_timed_out(period=period, statistic="Sum"),
        "aborted": state_machine.metric_aborted(period=period, statistic="Sum"),
    }
    alarm = cloudwatch.Alarm(
        scope,
        "FailedRunsAlarm",
        alarm_description="sagebert batch transform: a run failed, timed out or was aborted",
        metric=cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
            using_metrics=metrics,
            period=period,
            label="failed, timed-out and aborted executions",
        ),
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarm",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "ArnLike": {"aws:SourceArn": alarm.alarm_arn},
                "StringEquals": {"aws:SourceAccount": Stack.of(scope).account},
            },
        )
    )
    return alarm
