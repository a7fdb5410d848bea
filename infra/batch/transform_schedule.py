"""BatchTransformSchedule: a scheduled SageMaker batch transform over the day's JSON Lines input.

EventBridge Scheduler starts a Step Functions state machine (JSONata) on the stage's cron; the state
machine resolves the run's dated prefixes, skips a day without input (recording why), runs one
transform job (.sync) on the stage's model, writes a manifest through a small Lambda, and on any
failure notifies an SNS topic, which a CloudWatch alarm on failed, timed-out or aborted executions
also feeds.

The JSONata expressions that name the transform job and date the run are built here by functions
that have Python twins (`transform_job_name`, `run_date`), so the tests can check their results
without AWS.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aws_cdk import Duration, Names, RemovalPolicy, Stack, TimeZone
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_REGIONS
from infra.catalog.regions import require_region
from infra.config.batch import BatchSettings
from infra.online.inference_api import ASSET_EXCLUDE, LAMBDAS_DIR, RUNTIME
from infra.operations.compliance import acknowledge, acknowledge_resources
from infra.operations.key_policies import allow_cloudwatch_alarms, allow_cloudwatch_logs

MANIFEST_HANDLER = "batch_manifest.handler.lambda_handler"
LOG_RETENTION = logs.RetentionDays.ONE_YEAR

# Transform job names: at most 63 characters, [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html). A stage's state
# machine role may only create, stop and tag jobs whose names start with its own prefix, sagebert-<stage>-,
# and its model role may only write those jobs' log streams: one stage cannot touch another's jobs.
JOB_NAME_PREFIX = "sagebert-"
TRANSFORM_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TRANSFORM_JOB_NAME_MAX = 63
# <prefix><execution name, sanitized, as many characters as fit>-<first 8 hex of its SHA-256>-<attempt, 1..11>:
# the hash keeps two execution names that share their first characters (or differ only in characters the job
# name cannot hold) apart; the attempt gives every capacity retry a fresh job name.
HASH_CHARS = 8
MAX_ATTEMPT_DIGITS = 2


def job_name_prefix(stage_name: str) -> str:
    """The prefix of every transform job a stage starts: sagebert-<stage>-."""
    return f"{JOB_NAME_PREFIX}{stage_name}-"


def execution_name_chars(prefix: str) -> int:
    """How many characters of the execution name fit in a job name after `prefix`."""
    return TRANSFORM_JOB_NAME_MAX - len(prefix) - 1 - HASH_CHARS - 1 - MAX_ATTEMPT_DIGITS


# A capacity retry waits CAPACITY_WAIT_S * 2^(attempt - 1) seconds, at most CAPACITY_WAIT_MAX_S.
CAPACITY_WAIT_S = 300
CAPACITY_WAIT_MAX_S = 3600
CAPACITY_FAILURE = "CapacityError|InsufficientCapacity"
# Errors of the CreateTransformJob call itself (throttling, service errors) that are worth retrying.
# https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html
THROTTLING_ERRORS = ("SageMaker.AmazonSageMakerException", "SageMaker.ThrottlingException", "ThrottlingException")

# The run's date in the schedule's time zone: JSONata knows no time zones, only fixed offsets, so the
# zone's offset changes in these years are written into the expression at synth (from the tz database);
# a later instant keeps the last offset, an earlier one the first.
OFFSET_TABLE_YEARS = (2025, 2051)
RUN_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
EXECUTION_NAME = "$states.context.Execution.Name"


def transform_job_name(execution_name: str, attempt: int, prefix: str = JOB_NAME_PREFIX) -> str:
    """The job name `job_name_expression` gives an execution (Python twin of the JSONata)."""
    # JSONata runs on JavaScript strings: $replace sees a character outside the Basic Multilingual Plane
    # as two UTF-16 code units, so it becomes two dashes.
    sanitized = "".join(
        char if re.fullmatch(r"[A-Za-z0-9-]", char) else "-" * (2 if ord(char) > 0xFFFF else 1)
        for char in execution_name
    )
    digest = hashlib.sha256(execution_name.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{prefix}{sanitized[: execution_name_chars(prefix)]}-{digest}-{attempt}"


def job_name_expression(attempt: str, prefix: str = JOB_NAME_PREFIX) -> str:
    """JSONata for the transform job name of attempt `attempt` (a JSONata number expression)."""
    return (
        f"'{prefix}' & $substring($replace({EXECUTION_NAME}, /[^A-Za-z0-9-]/, '-'), 0, "
        f"{execution_name_chars(prefix)}) & '-' & $substring($hash({EXECUTION_NAME}, 'SHA-256'), 0, {HASH_CHARS}) & "
        f"'-' & $string({attempt})"
    )


@functools.cache
def utc_offsets(timezone: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The zone's UTC offset (milliseconds) at the start of OFFSET_TABLE_YEARS and each change within them:
    (epoch milliseconds from which it applies, new offset in milliseconds)."""
    if timezone == "UTC":
        return 0, ()
    zone = ZoneInfo(timezone)

    def offset(epoch_s: int) -> int:
        value = datetime.fromtimestamp(epoch_s, UTC).astimezone(zone).utcoffset()
        assert value is not None
        return int(value.total_seconds()) * 1000

    start = int(datetime(OFFSET_TABLE_YEARS[0], 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(OFFSET_TABLE_YEARS[1], 1, 1, tzinfo=UTC).timestamp())
    current = offset(start)
    initial = current
    changes: list[tuple[int, int]] = []
    day = 86_400
    for low in range(start, end, day):
        high = min(low + day, end)
        if offset(high) == current:
            continue
        while high - low > 1:  # the first second with the new offset
            middle = (low + high) // 2
            low, high = (middle, high) if offset(middle) == current else (low, middle)
        current = offset(high)
        changes.append((high * 1000, current))
    return initial, tuple(changes)


def run_date_expression(timezone: str) -> str:
    """JSONata for the run's date (YYYY-MM-DD) from the execution input: `date` as given, else the date of
    `scheduledTime` in `timezone`; anything else stops the run with an error naming both."""
    initial, changes = utc_offsets(timezone)
    if changes:
        table = ", ".join(f"[{at}, {offset}]" for at, offset in changes)
        offset_expression = f"$reduce([{table}], function($o, $c) {{ $ms >= $c[0] ? $c[1] : $o }}, {initial})"
    else:
        offset_expression = str(initial)
    # The offset is added to the instant rather than given to $fromMillis as '+HHMM': JSONata applies the
    # minutes of a negative offset with the wrong sign (-0230 becomes -01:30).
    return (
        "( $ms := $toMillis($states.input.scheduledTime); "
        f"$offset := {offset_expression}; "
        "$date := $exists($states.input.date) ? $states.input.date : "
        "$fromMillis($ms + $offset, '[Y0001]-[M01]-[D01]'); "
        "$contains($string($date), /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/) ? $date : "
        "$error('The execution input needs scheduledTime (ISO 8601, e.g. 2026-11-26T02:00:00Z) or date "
        "(YYYY-MM-DD).') )"
    )


def run_date(execution_input: Mapping[str, Any], timezone: str) -> str:
    """The date `run_date_expression` gives an execution input (Python twin of the JSONata)."""
    if "date" in execution_input:
        date = str(execution_input["date"])
    else:
        scheduled = datetime.fromisoformat(str(execution_input["scheduledTime"]).replace("Z", "+00:00"))
        epoch_ms = int(scheduled.timestamp() * 1000)
        offset, changes = utc_offsets(timezone)
        for at, new_offset in changes:
            offset = new_offset if epoch_ms >= at else offset
        date = datetime.fromtimestamp((epoch_ms + offset) / 1000, UTC).strftime("%Y-%m-%d")
    if not RUN_DATE.match(date):
        raise ValueError(f"run date {date!r} is not YYYY-MM-DD")
    return date


def capacity_wait_s(attempt: int) -> int:
    """Seconds the state machine waits after attempt `attempt` failed for capacity (twin of the JSONata)."""
    return int(min(CAPACITY_WAIT_MAX_S, CAPACITY_WAIT_S * 2 ** (attempt - 1)))


class BatchTransformSchedule(Construct):
    """Creates the scheduled batch transform of one stage:

    - an EventBridge Scheduler schedule (cron and time zone from `settings`, retry policy, a KMS-encrypted
      SQS dead-letter queue) with its own role: StartExecution on this state machine, SendMessage to the queue;
    - a standard Step Functions state machine (JSONata; logs at level ALL without execution data, to a
      KMS-encrypted log group; X-Ray; 24 h timeout) with its own least-privilege role (no
      AmazonSageMakerFullAccess): transform jobs named sagebert-<stage>-*, the input prefix, the output prefix,
      the topic, the manifest function, a grant on the stage key for the job's volume (VolumeKmsKeyId);
    - the manifest Lambda (lambdas/batch_manifest; Python 3.14, arm64, Powertools layer, X-Ray) that counts
      input and output records and writes `_manifest.json`, failing the run when the counts differ;
    - a KMS-encrypted SNS topic (TLS only) for failures, optionally with an email subscription, and a
      CloudWatch alarm on failed, timed-out or aborted executions that notifies it.

    The transform job runs as the model's execution role, which must be allowed to read the input prefix and
    write the output prefix (`HuggingFaceModel.grant_batch_io`).

    Exposes `state_machine`, `topic`, `schedule`, `alarm`, `dead_letter_queue`, `manifest_function`,
    `input_uri` and `output_uri` (s3:// prefixes).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: BatchSettings,
        stage_name: str,
        model_name: str,
        bucket: s3.IBucket,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        self.job_name_prefix = job_name_prefix(stage_name)
        if len(str(settings.capacity_retries + 1)) > MAX_ATTEMPT_DIGITS:
            raise ValueError("capacity_retries must leave the attempt number at most two digits (<= 98).")
        stack = Stack.of(self)
        allow_cloudwatch_logs(key)
        allow_cloudwatch_alarms(key)
        self.input_uri: str = f"s3://{bucket.bucket_name}/{settings.input_prefix}"
        self.output_uri: str = f"s3://{bucket.bucket_name}/{settings.output_prefix}"
        input_objects = bucket.arn_for_objects(f"{settings.input_prefix}*")
        output_objects = bucket.arn_for_objects(f"{settings.output_prefix}*")

        # --- failure notification -----------------------------------------------------------------
        self.topic = sns.Topic(self, "Topic", display_name="sagebert batch transform", master_key=key, enforce_ssl=True)
        if settings.alarm_email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))

        # --- the manifest Lambda ------------------------------------------------------------------
        self.manifest_function = self._manifest_function(settings, bucket, key, input_objects, output_objects)

        # --- the state machine --------------------------------------------------------------------
        state_machine_logs = logs.LogGroup(
            self,
            "StateMachineLogs",
            # Step Functions delivers logs as vended logs: under /aws/vendedlogs/ CloudWatch Logs needs no
            # per-group resource policy, which would otherwise grow the account's 5,120-character limit.
            # https://docs.aws.amazon.com/step-functions/latest/dg/bp-cwl.html
            log_group_name="/aws/vendedlogs/states/" + Names.unique_resource_name(self, max_length=200, separator="-"),
            encryption_key=key,
            retention=LOG_RETENTION,
            # Kept on update and delete, but not when the stack's first create rolls back: a retained group with
            # this fixed name would make every retry fail with AlreadyExists (DeletionPolicy RetainExceptOnCreate).
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="sagebert batch transform state machine",
        )
        transform_jobs = stack.format_arn(
            service="sagemaker", resource="transform-job", resource_name=f"{self.job_name_prefix}*"
        )
        policy = iam.ManagedPolicy(
            self,
            "StateMachinePolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="TransformJobs",
                    actions=[
                        "sagemaker:CreateTransformJob",
                        "sagemaker:DescribeTransformJob",
                        "sagemaker:StopTransformJob",
                        "sagemaker:AddTags",
                        "sagemaker:ListTags",
                    ],
                    resources=[transform_jobs],
                ),
                # .sync waits for the job through this EventBridge rule, which Step Functions manages.
                # https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html
                iam.PolicyStatement(
                    sid="TransformJobEvents",
                    actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    resources=[
                        stack.format_arn(
                            service="events",
                            resource="rule",
                            resource_name="StepFunctionsGetEventsForSageMakerTransformJobsRule",
                        )
                    ],
                ),
                iam.PolicyStatement(
                    sid="ListInput",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{settings.input_prefix}*"]}},
                ),
                iam.PolicyStatement(sid="RecordSkippedRuns", actions=["s3:PutObject"], resources=[output_objects]),
                # The skip record (SSE-KMS by the bucket's default) and the encrypted topic.
                iam.PolicyStatement(
                    sid="UseDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                ),
                # VolumeKmsKeyId: SageMaker encrypts the job's ML storage volume with the stage key through a grant it
                # creates as the caller of CreateTransformJob, for its own use only.
                # https://docs.aws.amazon.com/sagemaker/latest/dg/api-permissions-reference.html
                iam.PolicyStatement(
                    sid="VolumeKeyGrant",
                    actions=["kms:CreateGrant", "kms:DescribeKey"],
                    resources=[key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(sid="NotifyFailures", actions=["sns:Publish"], resources=[self.topic.topic_arn]),
                iam.PolicyStatement(
                    sid="WriteManifest",
                    actions=["lambda:InvokeFunction"],
                    resources=[self.manifest_function.function_arn],
                ),
                # X-Ray and CloudWatch Logs' log-delivery actions support no resource-level permissions.
                # https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html
                iam.PolicyStatement(
                    sid="Tracing",
                    actions=[
                        "xray:PutTraceSegments",
                        "xray:PutTelemetryRecords",
                        "xray:GetSamplingRules",
                        "xray:GetSamplingTargets",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="LogDelivery",
                    actions=[
                        "logs:CreateLogDelivery",
                        "logs:GetLogDelivery",
                        "logs:UpdateLogDelivery",
                        "logs:DeleteLogDelivery",
                        "logs:ListLogDeliveries",
                        "logs:PutResourcePolicy",
                        "logs:DescribeResourcePolicies",
                        "logs:DescribeLogGroups",
                    ],
                    resources=["*"],
                ),
            ],
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs' log-delivery actions "
            "that Step Functions logging needs support no resource-level permissions; every other statement names "
            "its resource.",
        )
        acknowledge_resources(
            policy,
            "AwsSolutions-IAM5",
            [transform_jobs],
            f"Transform job names are generated per execution ({self.job_name_prefix}<execution>-<hash>-<attempt>); "
            "the grant is limited to this stage's jobs (that prefix) in this account and region.",
        )
        acknowledge_resources(
            policy,
            "AwsSolutions-IAM5",
            [output_objects],
            f"A run writes _skipped.json under its own dated prefix, named at run time; the grant is limited to "
            f"PutObject under the batch output prefix {settings.output_prefix}.",
        )
        self.role = role

        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="sagebert scheduled batch transform",
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(settings, model_name, bucket, key)),
            query_language=sfn.QueryLanguage.JSONATA,
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(24),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=state_machine_logs, level=sfn.LogLevel.ALL, include_execution_data=False),
            # Every permission is in the policy above; an immutable reference keeps CDK from adding an inline
            # default policy with its broader task grants (transform-job/*, sagemaker:ListTags on *).
            role=iam.Role.from_role_arn(self, "StateMachineRoleRef", role.role_arn, mutable=False),
        )
        # Step Functions checks the role's logging and X-Ray permissions when it creates the state machine.
        self.state_machine.node.add_dependency(policy)

        # --- alarm --------------------------------------------------------------------------------
        period = Duration.minutes(5)
        metrics = {
            "failed": self.state_machine.metric_failed(period=period, statistic="Sum"),
            "timedOut": self.state_machine.metric_timed_out(period=period, statistic="Sum"),
            "aborted": self.state_machine.metric_aborted(period=period, statistic="Sum"),
        }
        self.alarm = cloudwatch.Alarm(
            self,
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
        self.alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarm",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": self.alarm.alarm_arn},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )

        # --- the schedule -------------------------------------------------------------------------
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is the dead-letter queue of the batch schedule (EventBridge Scheduler's DeadLetterConfig): "
            "it holds runs the scheduler could not start; a dead-letter queue has no dead-letter queue of its own.",
        )
        scheduler_role = iam.Role(
            self,
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
            self,
            "SchedulerPolicy",
            roles=[scheduler_role],
            statements=[
                iam.PolicyStatement(
                    sid="StartRun",
                    actions=["states:StartExecution"],
                    resources=[self.state_machine.state_machine_arn],
                ),
                iam.PolicyStatement(
                    sid="DeadLetter", actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn]
                ),
                # SendMessage to a queue encrypted with a customer managed key.
                iam.PolicyStatement(
                    sid="DeadLetterKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                ),
            ],
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description=f"sagebert batch transform {settings.schedule} {settings.timezone}",
            schedule=scheduler.ScheduleExpression.expression(settings.schedule, TimeZone.of(settings.timezone)),
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object(
                    {"scheduledTime": scheduler.ContextAttribute.scheduled_time}
                ),
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=settings.retry_attempts,
                max_event_age=Duration.seconds(settings.max_event_age_s),
                role=iam.Role.from_role_arn(self, "SchedulerRoleRef", scheduler_role.role_arn, mutable=False),
            ),
        )
        self.schedule.node.add_dependency(scheduler_policy)

    def _manifest_function(
        self,
        settings: BatchSettings,
        bucket: s3.IBucket,
        key: kms.IKey,
        input_objects: str,
        output_objects: str,
    ) -> lambda_.Function:
        function_logs = logs.LogGroup(self, "ManifestLogs", encryption_key=key, retention=LOG_RETENTION)
        role = iam.Role(
            self,
            "ManifestRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="sagebert batch manifest Lambda",
        )
        policy = iam.ManagedPolicy(
            self,
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
                    conditions={
                        "StringLike": {"s3:prefix": [f"{settings.input_prefix}*", f"{settings.output_prefix}*"]}
                    },
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
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER),
        )
        require_region(
            self,
            "SupportedRegionPowertools",
            POWERTOOLS_REGIONS,
            f"the Powertools layer's SSM parameter {POWERTOOLS_LAYER_PARAMETER}",
        )
        function = lambda_.Function(
            self,
            "ManifestFunction",
            description="sagebert batch transform: counts input and output records, writes _manifest.json",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=[*ASSET_EXCLUDE, "front_door"]),
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
            role=iam.Role.from_role_arn(self, "ManifestRoleRef", role.role_arn, mutable=False),
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

    def _definition(
        self, settings: BatchSettings, model_name: str, bucket: s3.IBucket, key: kms.IKey
    ) -> sfn.IChainable:
        stack = Stack.of(self)
        run_prefix = f"$runDate & '/' & {EXECUTION_NAME} & '/'"
        catch_failure = {"failure": "{% $states.errorOutput %}"}

        resolve = sfn.Pass.jsonata(
            self,
            "ResolveRun",
            comment="The run's date: input.date, or input.scheduledTime's date in the schedule's time zone.",
            assign={"bucket": bucket.bucket_name, "runDate": "{% " + run_date_expression(settings.timezone) + " %}"},
        )
        name = sfn.Pass.jsonata(
            self,
            "NameRun",
            comment="Job name, input prefix and this run's own output prefix (the execution name is unique).",
            assign={
                "attempt": 1,
                "jobName": "{% " + job_name_expression("1", self.job_name_prefix) + " %}",
                "inputPrefix": "{% '" + settings.input_prefix + "' & $runDate & '/' %}",
                "outputPrefix": "{% '" + settings.output_prefix + "' & " + run_prefix + " %}",
                "inputUri": "{% 's3://' & $bucket & '/" + settings.input_prefix + "' & $runDate & '/' %}",
                "outputUri": "{% 's3://' & $bucket & '/" + settings.output_prefix + "' & " + run_prefix + " %}",
            },
        )
        list_input = tasks.CallAwsService.jsonata(
            self,
            "ListInput",
            comment="Is there any input object under the run's dated prefix?",
            service="s3",
            action="listObjectsV2",
            iam_action="s3:ListBucket",
            iam_resources=[bucket.bucket_arn],
            parameters={"Bucket": "{% $bucket %}", "Prefix": "{% $inputPrefix %}", "MaxKeys": 1},
            assign={"inputObjects": "{% $states.result.KeyCount %}"},
        )
        record_skip = tasks.CallAwsService.jsonata(
            self,
            "RecordSkip",
            comment="No input: record why under the run's output prefix, then succeed.",
            service="s3",
            action="putObject",
            iam_action="s3:PutObject",
            iam_resources=[bucket.arn_for_objects(f"{settings.output_prefix}*")],
            parameters={
                "Bucket": "{% $bucket %}",
                "Key": "{% $outputPrefix & '_skipped.json' %}",
                "ContentType": "application/json",
                "Body": "{% $string({'status': 'skipped', 'reason': 'no input objects under ' & $inputUri, "
                "'input': $inputUri, 'output': $outputUri, 'date': $runDate, 'execution': "
                f"{EXECUTION_NAME}}}) %}}",
            },
        )
        transform = sfn.CustomState(
            self,
            "Transform",
            state_json={
                "Type": "Task",
                "Comment": "One transform job over the run's input; .sync waits until it ends.",
                "Resource": f"arn:{stack.partition}:states:::sagemaker:createTransformJob.sync",
                "Arguments": self._transform_arguments(settings, model_name, key),
                "Assign": {
                    "jobStarted": "{% $exists($states.result.TransformStartTime) ? $states.result.TransformStartTime"
                    " : $states.context.Execution.StartTime %}",
                    "jobEnded": "{% $exists($states.result.TransformEndTime) ? $states.result.TransformEndTime"
                    " : $now() %}",
                },
            },
        )
        capacity = sfn.Choice.jsonata(
            self, "CapacityRetry", comment="A job that failed for lack of capacity gets a new job after a wait."
        )
        wait = sfn.Wait.jsonata(
            self,
            "WaitForCapacity",
            time=sfn.WaitTime.seconds(
                f"{{% $min([{CAPACITY_WAIT_MAX_S}, {CAPACITY_WAIT_S} * $power(2, $attempt - 1)]) %}}"
            ),
            assign={
                "attempt": "{% $attempt + 1 %}",
                "jobName": "{% " + job_name_expression("$attempt + 1", self.job_name_prefix) + " %}",
            },
        )
        manifest = tasks.LambdaInvoke.jsonata(
            self,
            "WriteManifest",
            comment="Count input and output records, write _manifest.json; fails the run when they differ.",
            lambda_function=self.manifest_function,
            payload=sfn.TaskInput.from_object(
                {
                    "bucket": "{% $bucket %}",
                    "input_prefix": "{% $inputPrefix %}",
                    "output_prefix": "{% $outputPrefix %}",
                    "job": "{% $jobName %}",
                    "execution": "{% " + EXECUTION_NAME + " %}",
                    "started": "{% $jobStarted %}",
                    "ended": "{% $jobEnded %}",
                }
            ),
            outputs="{% $states.result.Payload %}",
        )
        notify = tasks.SnsPublish.jsonata(
            self,
            "NotifyFailure",
            topic=self.topic,
            subject="sagebert batch transform failed",
            message=sfn.TaskInput.from_text(
                "{% $string({'execution': " + EXECUTION_NAME + ", 'executionArn': $states.context.Execution.Id, "
                "'job': $jobName, 'input': $inputUri, 'output': $outputUri, 'error': $failure.Error, "
                "'cause': $failure.Cause}) %}"
            ),
        )
        failed = sfn.Fail.jsonata(
            self,
            "Failed",
            error="BatchTransformFailed",
            cause="{% 'run ' & " + EXECUTION_NAME + " & ' (job ' & $jobName & ') failed: ' & $failure.Error %}",
        )
        skipped = sfn.Succeed.jsonata(self, "Skipped", comment="No input for this date; see _skipped.json.")
        done = sfn.Succeed.jsonata(self, "Done")

        notify.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(5), backoff_rate=2, max_attempts=3)
        notify.next(failed)
        for task in (list_input, record_skip):
            task.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(5), backoff_rate=2, max_attempts=3)
            task.add_catch(notify, errors=["States.ALL"], assign=catch_failure)
        transform.add_retry(
            errors=list(THROTTLING_ERRORS),
            interval=Duration.seconds(20),
            backoff_rate=2,
            max_attempts=4,
            jitter_strategy=sfn.JitterType.FULL,
        )
        transform.add_catch(capacity, errors=["States.ALL"], assign=catch_failure)
        manifest.add_catch(notify, errors=["States.ALL"], assign=catch_failure)
        capacity.when(
            sfn.Condition.jsonata(
                "{% $failure.Error = 'States.TaskFailed' and "
                f"$contains($string($failure.Cause), /{CAPACITY_FAILURE}/) and "
                f"$attempt <= {settings.capacity_retries} %}}"
            ),
            wait.next(transform),
        ).otherwise(notify)
        has_input = (
            sfn.Choice.jsonata(self, "HasInput")
            .when(sfn.Condition.jsonata("{% $inputObjects > 0 %}"), transform.next(manifest).next(done))
            .otherwise(record_skip.next(skipped))
        )
        return resolve.next(name).next(list_input).next(has_input)

    @staticmethod
    def _transform_arguments(settings: BatchSettings, model_name: str, key: kms.IKey) -> dict[str, Any]:
        """CreateTransformJob's request: JSON Lines in, split at lines, packed MultiRecord, assembled by line."""
        arguments: dict[str, Any] = {
            "TransformJobName": "{% $jobName %}",
            "ModelName": model_name,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": settings.max_payload_mb,
            "ModelClientConfig": {
                "InvocationsTimeoutInSeconds": settings.invocation_timeout_s,
                "InvocationsMaxRetries": settings.invocation_max_retries,
            },
            "Environment": settings.container_environment,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "{% $inputUri %}"}},
                "ContentType": "application/jsonlines",
                "CompressionType": "None",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": "{% $outputUri %}",
                "Accept": "application/jsonlines",
                "AssembleWith": "Line",
                "KmsKeyId": key.key_arn,
            },
            "TransformResources": {
                "InstanceType": settings.instance_type,
                "InstanceCount": settings.instance_count,
            },
        }
        # The job's ML storage volume, with the stage key. batch.instance_type is a CPU type TransformInstanceType
        # lists, and none of those carries NVMe storage (c5d and the like, which reject a key, are not offered).
        arguments["TransformResources"]["VolumeKmsKeyId"] = key.key_arn
        if settings.max_concurrent_transforms:
            arguments["MaxConcurrentTransforms"] = settings.max_concurrent_transforms
        return arguments
