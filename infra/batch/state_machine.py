"""The batch run's Step Functions state machine: its states (JSONata), its role and its log group.

A run resolves its date and dated prefixes, skips a day without input (recording why in
`_skipped.json`), runs one transform job (.sync) on the stage's model, retrying with a new job when
SageMaker lacks capacity, and writes the manifest through the manifest Lambda; any failure notifies the
failure topic and fails the execution. The role is least privilege (no AmazonSageMakerFullAccess): this
stage's transform jobs, the batch prefixes, the topic, the function and a grant on the stage key for
the job's volume.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Names, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.batch.expressions import (
    EXECUTION_NAME,
    capacity_retry_condition,
    capacity_wait_expression,
    job_name_expression,
    run_date_expression,
)
from infra.batch.manifest import MANIFEST_NAME
from infra.config.batch import BatchSettings
from infra.operations.compliance import acknowledge, acknowledge_resources

# Errors of the CreateTransformJob call itself (throttling, service errors) that are worth retrying.
# https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html
THROTTLING_ERRORS = ("SageMaker.AmazonSageMakerException", "SageMaker.ThrottlingException", "ThrottlingException")
# What a run without input writes under its output prefix.
SKIPPED_NAME = "_skipped.json"


def state_machine(
    scope: Construct,
    *,
    settings: BatchSettings,
    model_name: str,
    job_name_prefix: str,
    bucket: s3.IBucket,
    key: kms.IKey,
    topic: sns.ITopic,
    manifest_function: lambda_.IFunction,
    retention: logs.RetentionDays,
) -> sfn.StateMachine:
    """The standard state machine (JSONata; logs at level ALL without execution data, to a KMS-encrypted log
    group; X-Ray; 24 h timeout) with its own role, created in `scope` (the schedule's construct)."""
    state_machine_logs = logs.LogGroup(
        scope,
        "StateMachineLogs",
        # Step Functions delivers logs as vended logs: under /aws/vendedlogs/ CloudWatch Logs needs no
        # per-group resource policy, which would otherwise grow the account's 5,120-character limit.
        # https://docs.aws.amazon.com/step-functions/latest/dg/bp-cwl.html
        log_group_name="/aws/vendedlogs/states/" + Names.unique_resource_name(scope, max_length=200, separator="-"),
        encryption_key=key,
        retention=retention,
        # Kept on update and delete, but not when the stack's first create rolls back: a retained group with
        # this fixed name would make every retry fail with AlreadyExists (DeletionPolicy RetainExceptOnCreate).
        removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    )
    role = iam.Role(
        scope,
        "StateMachineRole",
        assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
        description="sagebert batch transform state machine",
    )
    policy = _role_policy(
        scope,
        role,
        settings=settings,
        job_name_prefix=job_name_prefix,
        bucket=bucket,
        key=key,
        topic=topic,
        manifest_function=manifest_function,
    )
    state_machine = sfn.StateMachine(
        scope,
        "StateMachine",
        comment="sagebert scheduled batch transform",
        definition_body=sfn.DefinitionBody.from_chainable(
            definition(
                scope,
                settings=settings,
                model_name=model_name,
                job_name_prefix=job_name_prefix,
                bucket=bucket,
                key=key,
                topic=topic,
                manifest_function=manifest_function,
            )
        ),
        query_language=sfn.QueryLanguage.JSONATA,
        state_machine_type=sfn.StateMachineType.STANDARD,
        timeout=Duration.hours(24),
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=state_machine_logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        # Every permission is in the policy above; an immutable reference keeps CDK from adding an inline
        # default policy with its broader task grants (transform-job/*, sagemaker:ListTags on *).
        role=iam.Role.from_role_arn(scope, "StateMachineRoleRef", role.role_arn, mutable=False),
    )
    # Step Functions checks the role's logging and X-Ray permissions when it creates the state machine.
    state_machine.node.add_dependency(policy)
    return state_machine


def _role_policy(
    scope: Construct,
    role: iam.IRole,
    *,
    settings: BatchSettings,
    job_name_prefix: str,
    bucket: s3.IBucket,
    key: kms.IKey,
    topic: sns.ITopic,
    manifest_function: lambda_.IFunction,
) -> iam.ManagedPolicy:
    """Every permission of the state machine's role: nothing else is attached to it."""
    stack = Stack.of(scope)
    output_objects = bucket.arn_for_objects(f"{settings.output_prefix}*")
    transform_jobs = stack.format_arn(
        service="sagemaker", resource="transform-job", resource_name=f"{job_name_prefix}*"
    )
    policy = iam.ManagedPolicy(
        scope,
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
            iam.PolicyStatement(sid="NotifyFailures", actions=["sns:Publish"], resources=[topic.topic_arn]),
            iam.PolicyStatement(
                sid="WriteManifest",
                actions=["lambda:InvokeFunction"],
                resources=[manifest_function.function_arn],
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
        f"Transform job names are generated per execution ({job_name_prefix}<execution>-<hash>-<attempt>); "
        "the grant is limited to this stage's jobs (that prefix) in this account and region.",
    )
    acknowledge_resources(
        policy,
        "AwsSolutions-IAM5",
        [output_objects],
        f"A run writes {SKIPPED_NAME} under its own dated prefix, named at run time; the grant is limited to "
        f"PutObject under the batch output prefix {settings.output_prefix}.",
    )
    return policy


def definition(
    scope: Construct,
    *,
    settings: BatchSettings,
    model_name: str,
    job_name_prefix: str,
    bucket: s3.IBucket,
    key: kms.IKey,
    topic: sns.ITopic,
    manifest_function: lambda_.IFunction,
) -> sfn.IChainable:
    """The states, created in `scope`: resolve the run, skip a day without input, transform (retrying for
    capacity), write the manifest; any failure notifies the topic and fails."""
    stack = Stack.of(scope)
    run_prefix = f"$runDate & '/' & {EXECUTION_NAME} & '/'"
    catch_failure = {"failure": "{% $states.errorOutput %}"}

    resolve = sfn.Pass.jsonata(
        scope,
        "ResolveRun",
        comment="The run's date: input.date, or input.scheduledTime's date in the schedule's time zone.",
        assign={"bucket": bucket.bucket_name, "runDate": "{% " + run_date_expression(settings.timezone) + " %}"},
    )
    name = sfn.Pass.jsonata(
        scope,
        "NameRun",
        comment="Job name, input prefix and this run's own output prefix (the execution name is unique).",
        assign={
            "attempt": 1,
            "jobName": "{% " + job_name_expression("1", job_name_prefix) + " %}",
            "inputPrefix": "{% '" + settings.input_prefix + "' & $runDate & '/' %}",
            "outputPrefix": "{% '" + settings.output_prefix + "' & " + run_prefix + " %}",
            "inputUri": "{% 's3://' & $bucket & '/" + settings.input_prefix + "' & $runDate & '/' %}",
            "outputUri": "{% 's3://' & $bucket & '/" + settings.output_prefix + "' & " + run_prefix + " %}",
        },
    )
    list_input = tasks.CallAwsService.jsonata(
        scope,
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
        scope,
        "RecordSkip",
        comment="No input: record why under the run's output prefix, then succeed.",
        service="s3",
        action="putObject",
        iam_action="s3:PutObject",
        iam_resources=[bucket.arn_for_objects(f"{settings.output_prefix}*")],
        parameters={
            "Bucket": "{% $bucket %}",
            "Key": "{% $outputPrefix & '" + SKIPPED_NAME + "' %}",
            "ContentType": "application/json",
            "Body": "{% $string({'status': 'skipped', 'reason': 'no input objects under ' & $inputUri, "
            "'input': $inputUri, 'output': $outputUri, 'date': $runDate, 'execution': "
            f"{EXECUTION_NAME}}}) %}}",
        },
    )
    transform = sfn.CustomState(
        scope,
        "Transform",
        state_json={
            "Type": "Task",
            "Comment": "One transform job over the run's input; .sync waits until it ends.",
            "Resource": f"arn:{stack.partition}:states:::sagemaker:createTransformJob.sync",
            "Arguments": transform_arguments(settings, model_name, key),
            "Assign": {
                "jobStarted": "{% $exists($states.result.TransformStartTime) ? $states.result.TransformStartTime"
                " : $states.context.Execution.StartTime %}",
                "jobEnded": "{% $exists($states.result.TransformEndTime) ? $states.result.TransformEndTime : $now() %}",
            },
        },
    )
    capacity = sfn.Choice.jsonata(
        scope, "CapacityRetry", comment="A job that failed for lack of capacity gets a new job after a wait."
    )
    wait = sfn.Wait.jsonata(
        scope,
        "WaitForCapacity",
        time=sfn.WaitTime.seconds("{% " + capacity_wait_expression() + " %}"),
        assign={
            "attempt": "{% $attempt + 1 %}",
            "jobName": "{% " + job_name_expression("$attempt + 1", job_name_prefix) + " %}",
        },
    )
    manifest = tasks.LambdaInvoke.jsonata(
        scope,
        "WriteManifest",
        comment=f"Count input and output records, write {MANIFEST_NAME}; fails the run when they differ.",
        lambda_function=manifest_function,
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
        scope,
        "NotifyFailure",
        topic=topic,
        subject="sagebert batch transform failed",
        message=sfn.TaskInput.from_text(
            "{% $string({'execution': " + EXECUTION_NAME + ", 'executionArn': $states.context.Execution.Id, "
            "'job': $jobName, 'input': $inputUri, 'output': $outputUri, 'error': $failure.Error, "
            "'cause': $failure.Cause}) %}"
        ),
    )
    failed = sfn.Fail.jsonata(
        scope,
        "Failed",
        error="BatchTransformFailed",
        cause="{% 'run ' & " + EXECUTION_NAME + " & ' (job ' & $jobName & ') failed: ' & $failure.Error %}",
    )
    skipped = sfn.Succeed.jsonata(scope, "Skipped", comment=f"No input for this date; see {SKIPPED_NAME}.")
    done = sfn.Succeed.jsonata(scope, "Done")

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
        sfn.Condition.jsonata("{% " + capacity_retry_condition(settings.capacity_retries) + " %}"),
        wait.next(transform),
    ).otherwise(notify)
    has_input = (
        sfn.Choice.jsonata(scope, "HasInput")
        .when(sfn.Condition.jsonata("{% $inputObjects > 0 %}"), transform.next(manifest).next(done))
        .otherwise(record_skip.next(skipped))
    )
    return resolve.next(name).next(list_input).next(has_input)


def transform_arguments(settings: BatchSettings, model_name: str, key: kms.IKey) -> dict[str, Any]:
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
