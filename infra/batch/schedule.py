"""The batch run's EventBridge Scheduler schedule, its role and its dead-letter queue.

The schedule starts the state machine on the stage's cron in its time zone, passing the scheduled time
(the run's date comes from it), retries a start that failed, and sends what it could not start to a
KMS-encrypted SQS dead-letter queue. Its role may only start this state machine and send to that queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config.batch import BatchSettings
from infra.operations.compliance import acknowledge


@dataclass(frozen=True)
class RunSchedule:
    """What `run_schedule` created."""

    schedule: scheduler.Schedule
    dead_letter_queue: sqs.Queue


def run_schedule(
    scope: Construct, *, settings: BatchSettings, state_machine: sfn.IStateMachine, key: kms.IKey
) -> RunSchedule:
    """The schedule, its role and its dead-letter queue, created in `scope` (the schedule's construct)."""
    stack = Stack.of(scope)
    dead_letter_queue = sqs.Queue(
        scope,
        "DeadLetterQueue",
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        dead_letter_queue,
        "AwsSolutions-SQS3",
        "This queue is the dead-letter queue of the batch schedule (EventBridge Scheduler's DeadLetterConfig): "
        "it holds runs the scheduler could not start; a dead-letter queue has no dead-letter queue of its own.",
    )
    scheduler_role = iam.Role(
        scope,
        "SchedulerRole",
        # Confused-deputy guard: only schedules of this account's default group may assume it.
        # https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            conditions={
                "StringEquals": {
                    "aws:SourceAccount": stack.account,
                    "aws:SourceArn": stack.format_arn(
                        service="scheduler", resource="schedule-group", resource_name="default"
                    ),
                }
            },
        ),
        description="sagebert batch schedule: starts the batch transform state machine",
    )
    scheduler_policy = iam.ManagedPolicy(
        scope,
        "SchedulerPolicy",
        roles=[scheduler_role],
        statements=[
            iam.PolicyStatement(
                sid="StartRun",
                actions=["states:StartExecution"],
                resources=[state_machine.state_machine_arn],
            ),
            iam.PolicyStatement(sid="DeadLetter", actions=["sqs:SendMessage"], resources=[dead_letter_queue.queue_arn]),
            # SendMessage to a queue encrypted with a customer managed key.
            iam.PolicyStatement(
                sid="DeadLetterKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
            ),
        ],
    )
    schedule = scheduler.Schedule(
        scope,
        "Schedule",
        description=f"sagebert batch transform {settings.schedule} {settings.timezone}",
        schedule=scheduler.ScheduleExpression.expression(settings.schedule, TimeZone.of(settings.timezone)),
        target=scheduler_targets.StepFunctionsStartExecution(
            state_machine,
            input=scheduler.ScheduleTargetInput.from_object(
                {"scheduledTime": scheduler.ContextAttribute.scheduled_time}
            ),
            dead_letter_queue=dead_letter_queue,
            retry_attempts=settings.retry_attempts,
            max_event_age=Duration.seconds(settings.max_event_age_s),
            role=iam.Role.from_role_arn(scope, "SchedulerRoleRef", scheduler_role.role_arn, mutable=False),
        ),
    )
    schedule.node.add_dependency(scheduler_policy)
    return RunSchedule(schedule, dead_letter_queue)
