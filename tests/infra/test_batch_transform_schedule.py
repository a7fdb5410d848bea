"""BatchTransformSchedule in a bare stack: schedule, state-machine definition, roles, logs, alarm; the JSONata
job name and run date through their Python twins."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Capture, Match, Template
from batch_manifest.manifest import Run
from hypothesis import given, settings
from hypothesis import strategies as st

from app import feature_flags, project_files
from infra.batch.expressions import (
    CAPACITY_WAIT_MAX_S,
    CAPACITY_WAIT_S,
    JOB_NAME_PREFIX,
    OFFSET_TABLE_YEARS,
    TRANSFORM_JOB_NAME,
    capacity_wait_s,
    job_name_expression,
    job_name_prefix,
    run_date,
    run_date_expression,
    transform_job_name,
    utc_offsets,
)
from infra.batch.manifest import MANIFEST_HANDLER
from infra.batch.state_machine import THROTTLING_ERRORS
from infra.batch.transform_schedule import BatchTransformSchedule
from infra.catalog.images import find
from infra.config.batch import BatchSettings
from infra.config.model import S3Model
from infra.operations.compliance import nag_spelling
from infra.release.hugging_face_model import HuggingFaceModel, ModelLogs

MODEL_NAME = "sagebert-model-name"


def build(**settings: Any) -> tuple[Stack, BatchTransformSchedule]:
    stack = Stack(App(context=feature_flags()), "Bare")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "Bucket", encryption=s3.BucketEncryption.KMS, encryption_key=key)
    batch = BatchTransformSchedule(
        stack,
        "Batch",
        settings=BatchSettings.model_validate(settings),
        stage_name="test",
        model_name=MODEL_NAME,
        bucket=bucket,
        key=key,
        lambda_code=project_files().lambdas,
    )
    return stack, batch


def template(**settings: Any) -> Template:
    return Template.from_stack(build(**settings)[0])


@pytest.fixture(scope="module")
def default() -> Template:
    return template()


def only(tpl: Template, resource_type: str, props: dict[str, Any] | None = None) -> dict[str, Any]:
    found = tpl.find_resources(resource_type, {"Properties": props} if props else None)
    assert len(found) == 1, f"{len(found)} {resource_type}"
    properties: dict[str, Any] = next(iter(found.values()))["Properties"]
    return properties


def definition(tpl: Template) -> dict[str, Any]:
    """The state machine's ASL, each token in it written as cdk-nag spells it (<Ref>, <Resource.Attribute>)."""
    machine = only(tpl, "AWS::StepFunctions::StateMachine")
    delimiter, parts = machine["DefinitionString"]["Fn::Join"]
    text = delimiter.join(part if isinstance(part, str) else nag_spelling(part) for part in parts)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def states(tpl: Template) -> dict[str, Any]:
    result: dict[str, Any] = definition(tpl)["States"]
    return result


def policy_statements(tpl: Template, description_of_role: str) -> list[dict[str, Any]]:
    """Statements of the customer-managed policy attached to the role with this description."""
    roles = tpl.find_resources("AWS::IAM::Role", {"Properties": {"Description": description_of_role}})
    (role_id,) = roles
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in tpl.find_resources("AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    (statements,) = policies
    return list(statements)


def by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements}


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def flat(value: Any) -> str:
    return nag_spelling(value)


# --- the schedule --------------------------------------------------------------------------------


def test_the_schedule_starts_the_state_machine_on_the_cron_in_its_time_zone() -> None:
    tpl = template(
        schedule="cron(30 1 ? * MON-FRI *)", timezone="Europe/Berlin", retry_attempts=5, max_event_age_s=7200
    )
    schedule = only(tpl, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "cron(30 1 ? * MON-FRI *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 7200}
    assert json.loads(target["Input"]) == {"scheduledTime": "<aws.scheduler.scheduled-time>"}
    assert target["Arn"]["Ref"].startswith("BatchStateMachine")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("BatchDeadLetterQueue")
    assert target["RoleArn"]["Fn::GetAtt"][0].startswith("BatchSchedulerRole")
    assert "Name" not in schedule


def test_the_dead_letter_queue_is_encrypted_with_the_key_and_tls_only(default: Template) -> None:
    queue = only(default, "AWS::SQS::Queue")
    assert queue["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("Key")
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    default.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_the_scheduler_role_may_only_start_this_state_machine_and_dead_letter(default: Template) -> None:
    role = only(default, "AWS::IAM::Role", {"Description": Match.string_like_regexp("batch schedule")})
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert set(trust["Condition"]["StringEquals"]) == {"aws:SourceAccount", "aws:SourceArn"}
    assert "schedule-group/default" in flat(trust["Condition"]["StringEquals"]["aws:SourceArn"])
    statements = by_sid(policy_statements(default, role["Description"]))
    assert set(statements) == {"StartRun", "DeadLetter", "DeadLetterKey"}
    assert actions(statements["StartRun"]) == ["states:StartExecution"]
    assert statements["StartRun"]["Resource"]["Ref"].startswith("BatchStateMachine")
    assert actions(statements["DeadLetter"]) == ["sqs:SendMessage"]
    assert statements["DeadLetter"]["Resource"]["Fn::GetAtt"][0].startswith("BatchDeadLetterQueue")
    assert statements["DeadLetterKey"]["Resource"]["Fn::GetAtt"][0].startswith("Key")


# --- the state machine ---------------------------------------------------------------------------


def test_the_state_machine_is_standard_logs_everything_but_data_and_is_traced(default: Template) -> None:
    machine = only(default, "AWS::StepFunctions::StateMachine")
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert "StateMachineName" not in machine
    asl = definition(default)
    assert asl["QueryLanguage"] == "JSONata" and asl["TimeoutSeconds"] == 24 * 3600
    log_group = Capture()
    default.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": log_group}}}]
            }
        },
    )
    logs = default.find_resources("AWS::Logs::LogGroup")[log_group.as_array()[0]]["Properties"]
    assert logs["KmsKeyId"]["Fn::GetAtt"][0].startswith("Key")
    assert logs["LogGroupName"].startswith("/aws/vendedlogs/states/")


def test_the_states_and_their_transitions(default: Template) -> None:
    asl = definition(default)
    s = asl["States"]
    assert asl["StartAt"] == "ResolveRun"
    assert {name: state["Type"] for name, state in s.items()} == {
        "ResolveRun": "Pass",
        "NameRun": "Pass",
        "ListInput": "Task",
        "HasInput": "Choice",
        "RecordSkip": "Task",
        "Skipped": "Succeed",
        "Transform": "Task",
        "CapacityRetry": "Choice",
        "WaitForCapacity": "Wait",
        "WriteManifest": "Task",
        "Done": "Succeed",
        "NotifyFailure": "Task",
        "Failed": "Fail",
    }
    assert s["ResolveRun"]["Next"] == "NameRun" and s["NameRun"]["Next"] == "ListInput"
    assert s["ListInput"]["Next"] == "HasInput"
    (has_input,) = s["HasInput"]["Choices"]
    assert has_input == {"Condition": "{% $inputObjects > 0 %}", "Next": "Transform"}
    assert s["HasInput"]["Default"] == "RecordSkip" and s["RecordSkip"]["Next"] == "Skipped"
    assert s["Transform"]["Next"] == "WriteManifest" and s["WriteManifest"]["Next"] == "Done"
    (capacity,) = s["CapacityRetry"]["Choices"]
    assert capacity["Next"] == "WaitForCapacity" and s["CapacityRetry"]["Default"] == "NotifyFailure"
    assert s["WaitForCapacity"]["Next"] == "Transform"
    assert s["NotifyFailure"]["Next"] == "Failed"
    assert s["Failed"]["Error"] == "BatchTransformFailed"


def test_the_transform_job_request() -> None:
    # Given a stage's batch settings,
    tpl = template(
        instance_type="ml.m6i.2xlarge",
        instance_count=3,
        max_payload_mb=1,
        max_concurrent_transforms=8,
        invocation_timeout_s=1200,
        invocation_max_retries=1,
        environment={"SAGEBERT_THREADS": "2"},
        bad_lines="fail",
    )
    transform = states(tpl)["Transform"]
    # then the job is a .sync CreateTransformJob with exactly this request.
    assert transform["Resource"] == "arn:<AWS::Partition>:states:::sagemaker:createTransformJob.sync"
    arguments = transform["Arguments"]
    key_arn = arguments["TransformOutput"].pop("KmsKeyId")
    assert re.fullmatch(r"<Key[0-9A-F]{8}\.Arn>", key_arn)
    assert arguments["TransformResources"].pop("VolumeKmsKeyId") == key_arn  # the volume too: the stage key
    assert arguments == {
        "TransformJobName": "{% $jobName %}",
        "ModelName": MODEL_NAME,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "MaxConcurrentTransforms": 8,
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 1200, "InvocationsMaxRetries": 1},
        "Environment": {"SAGEBERT_THREADS": "2", "SAGEBERT_BAD_LINES": "fail"},
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
        },
        "TransformResources": {"InstanceType": "ml.m6i.2xlarge", "InstanceCount": 3},
    }


def test_defaults_leave_concurrency_to_sagemaker_and_mark_bad_lines(default: Template) -> None:
    arguments = states(default)["Transform"]["Arguments"]
    assert "MaxConcurrentTransforms" not in arguments
    assert arguments["Environment"] == {"SAGEBERT_BAD_LINES": "mark"}
    assert arguments["MaxPayloadInMB"] == 2
    assert arguments["TransformResources"] == {
        "InstanceType": "ml.c6i.xlarge",
        "InstanceCount": 1,
        "VolumeKmsKeyId": arguments["TransformOutput"]["KmsKeyId"],
    }


def test_the_run_reads_its_dated_prefix_and_writes_its_own_output_prefix() -> None:
    s = states(template(input_prefix="in/jsonl/", output_prefix="results/"))
    bucket = s["ResolveRun"]["Assign"]["bucket"]
    assert re.fullmatch(r"<Bucket[0-9A-F]{8}>", bucket)
    assign = s["NameRun"]["Assign"]
    execution = "$states.context.Execution.Name"
    assert assign["inputPrefix"] == "{% 'in/jsonl/' & $runDate & '/' %}"
    assert assign["outputPrefix"] == f"{{% 'results/' & $runDate & '/' & {execution} & '/' %}}"
    assert assign["inputUri"] == "{% 's3://' & $bucket & '/in/jsonl/' & $runDate & '/' %}"
    assert assign["outputUri"] == f"{{% 's3://' & $bucket & '/results/' & $runDate & '/' & {execution} & '/' %}}"
    assert assign["attempt"] == 1
    assert assign["jobName"] == "{% " + job_name_expression("1", "sagebert-test-") + " %}"
    # The manifest and the skip record go under the run's own prefix.
    manifest = s["WriteManifest"]["Arguments"]["Payload"]
    assert manifest["output_prefix"] == "{% $outputPrefix %}" and manifest["input_prefix"] == "{% $inputPrefix %}"
    assert manifest["job"] == "{% $jobName %}" and manifest["bucket"] == "{% $bucket %}"
    assert s["RecordSkip"]["Arguments"]["Key"] == "{% $outputPrefix & '_skipped.json' %}"


def test_the_skip_branch_lists_one_key_and_records_why(default: Template) -> None:
    s = states(default)
    assert s["ListInput"]["Resource"] == "arn:<AWS::Partition>:states:::aws-sdk:s3:listObjectsV2"
    assert s["ListInput"]["Arguments"] == {"Bucket": "{% $bucket %}", "Prefix": "{% $inputPrefix %}", "MaxKeys": 1}
    assert s["ListInput"]["Assign"] == {"inputObjects": "{% $states.result.KeyCount %}"}
    skip = s["RecordSkip"]
    assert skip["Resource"] == "arn:<AWS::Partition>:states:::aws-sdk:s3:putObject"
    assert skip["Arguments"]["ContentType"] == "application/json"
    body = skip["Arguments"]["Body"]
    assert body.startswith("{% $string({'status': 'skipped', 'reason': 'no input objects under ' & $inputUri")
    for field in ("'input': $inputUri", "'output': $outputUri", "'date': $runDate"):
        assert field in body


def test_throttling_is_retried_with_backoff_and_every_failure_is_caught(default: Template) -> None:
    s = states(default)
    (retry,) = s["Transform"]["Retry"]
    assert retry["ErrorEquals"] == list(THROTTLING_ERRORS)
    assert retry["BackoffRate"] == 2 and retry["IntervalSeconds"] == 20 and retry["MaxAttempts"] == 4
    assert retry["JitterStrategy"] == "FULL"
    catch_failure = {"failure": "{% $states.errorOutput %}"}
    assert s["Transform"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "Next": "CapacityRetry", "Assign": catch_failure}
    ]
    for name in ("ListInput", "RecordSkip", "WriteManifest"):
        assert s[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "Next": "NotifyFailure", "Assign": catch_failure}]
    for name in ("ListInput", "RecordSkip", "NotifyFailure"):
        (task_retry,) = s[name]["Retry"]
        assert task_retry["ErrorEquals"] == ["States.TaskFailed"] and task_retry["BackoffRate"] == 2
    assert "Lambda.ServiceException" in s["WriteManifest"]["Retry"][0]["ErrorEquals"]


def test_a_capacity_failure_gets_a_new_job_after_an_exponential_wait() -> None:
    s = states(template(capacity_retries=5))
    (choice,) = s["CapacityRetry"]["Choices"]
    condition = choice["Condition"]
    assert "$failure.Error = 'States.TaskFailed'" in condition
    assert "$contains($string($failure.Cause), /CapacityError|InsufficientCapacity/)" in condition
    assert "$attempt <= 5" in condition
    wait = s["WaitForCapacity"]
    assert wait["Seconds"] == f"{{% $min([{CAPACITY_WAIT_MAX_S}, {CAPACITY_WAIT_S} * $power(2, $attempt - 1)]) %}}"
    assert wait["Assign"] == {
        "attempt": "{% $attempt + 1 %}",
        "jobName": "{% " + job_name_expression("$attempt + 1", "sagebert-test-") + " %}",
    }
    assert [capacity_wait_s(a) for a in range(1, 7)] == [300, 600, 1200, 2400, 3600, 3600]


def test_a_failure_notifies_the_topic_then_fails(default: Template) -> None:
    s = states(default)
    notify = s["NotifyFailure"]
    assert notify["Resource"] == "arn:<AWS::Partition>:states:::sns:publish"
    assert re.fullmatch(r"<BatchTopic[0-9A-F]{8}>", notify["Arguments"]["TopicArn"])
    message = notify["Arguments"]["Message"]
    for field in ("'execution': $states.context.Execution.Name", "'job': $jobName", "'cause': $failure.Cause"):
        assert field in message
    assert "$jobName" in s["Failed"]["Cause"] and "$failure.Error" in s["Failed"]["Cause"]


def test_success_writes_the_manifest_through_the_lambda(default: Template) -> None:
    s = states(default)
    manifest = s["WriteManifest"]
    assert manifest["Resource"] == "arn:<AWS::Partition>:states:::lambda:invoke"
    assert re.fullmatch(r"<BatchManifestFunction[0-9A-F]{8}\.Arn>", manifest["Arguments"]["FunctionName"])
    assert set(manifest["Arguments"]["Payload"]) == {
        "bucket",
        "input_prefix",
        "output_prefix",
        "job",
        "execution",
        "started",
        "ended",
    }
    # lambdas/ may not be imported by infra: the event the function reads is checked here.
    assert set(manifest["Arguments"]["Payload"]) == {field.name for field in dataclasses.fields(Run)}
    assert set(s["Transform"]["Assign"]) == {"jobStarted", "jobEnded"}


# --- the job name and the run date: the JSONata's Python twins ------------------------------------

TRICKY_NAMES = [
    "1b4e28ba-2fa1-11d2-883f-0016d3cca427",  # what Step Functions generates for the scheduler
    "a" * 80,  # the longest execution name
    "nightly_run.2026-11-26",  # underscores and dots
    "x" * 41 + "_y",
    "under_score_and.dot.name-" + "z" * 55,
    "-leading-dash",
    "trailing_",
    "ünïcödé-ñame",
    "emoji-\U0001f600",
    "日本語",
]


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_job_names_fit_sagemaker_for_tricky_execution_names(name: str) -> None:
    for attempt in range(1, 12):
        job = transform_job_name(name, attempt)
        assert len(job) <= 63 and TRANSFORM_JOB_NAME.match(job), job
        assert job.startswith(JOB_NAME_PREFIX) and job.endswith(f"-{attempt}")


def test_job_names_keep_executions_and_attempts_apart() -> None:
    # Names that agree on their first 42 characters, or differ only where the job name has dashes.
    names = ["a" * 80, "a" * 79 + "b", "a" * 42 + "_x", "run_1", "run.1", "run-1", *TRICKY_NAMES]
    jobs = {transform_job_name(name, attempt) for name in names for attempt in range(1, 12)}
    assert len(jobs) == len(set(names)) * 11


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=80), st.integers(min_value=1, max_value=11))
def test_any_execution_name_gives_a_valid_job_name(name: str, attempt: int) -> None:
    job = transform_job_name(name, attempt)
    assert len(job) <= 63 and TRANSFORM_JOB_NAME.match(job)


def test_the_job_name_expression_is_the_twins_recipe() -> None:
    expression = job_name_expression("$attempt + 1")
    assert expression == (
        "'sagebert-' & $substring($replace($states.context.Execution.Name, /[^A-Za-z0-9-]/, '-'), 0, 42) & '-' & "
        "$substring($hash($states.context.Execution.Name, 'SHA-256'), 0, 8) & '-' & $string($attempt + 1)"
    )


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/St_Johns", "Asia/Kolkata", "UTC"]
)
def test_the_run_date_is_the_scheduled_dates_in_the_time_zone_daylight_saving_included(zone: str) -> None:
    rng = random.Random(zone)
    start = datetime(OFFSET_TABLE_YEARS[0], 1, 1, tzinfo=UTC)
    seconds = (datetime(OFFSET_TABLE_YEARS[1], 1, 1, tzinfo=UTC) - start).total_seconds()
    instants = [start + timedelta(seconds=rng.randrange(int(seconds))) for _ in range(2000)]
    # Around each change of offset too: the second before and the second it applies.
    _, changes = utc_offsets(zone)
    for at, _offset in changes[:6]:
        instants += [datetime.fromtimestamp(at / 1000 - 1, UTC), datetime.fromtimestamp(at / 1000, UTC)]
    for instant in instants:
        scheduled = instant.strftime("%Y-%m-%dT%H:%M:%SZ")
        expected = instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d")
        assert run_date({"scheduledTime": scheduled}, zone) == expected, scheduled


def test_the_offset_table_is_written_into_the_expression() -> None:
    initial, changes = utc_offsets("Europe/Berlin")
    assert initial == 3_600_000 and len(changes) == 2 * (OFFSET_TABLE_YEARS[1] - OFFSET_TABLE_YEARS[0])
    assert changes[0] == (int(datetime(2025, 3, 30, 1, tzinfo=UTC).timestamp()) * 1000, 7_200_000)
    expression = run_date_expression("Europe/Berlin")
    assert f"[{changes[0][0]}, {changes[0][1]}]" in expression and ", 3600000)" in expression
    assert "$reduce" not in run_date_expression("UTC") and "$offset := 0;" in run_date_expression("UTC")
    assert "$reduce" not in run_date_expression("Asia/Kolkata")  # no daylight saving: one fixed offset


def test_a_manual_run_may_name_its_date_and_bad_input_is_refused() -> None:
    assert run_date({"date": "2026-11-26"}, "Europe/Berlin") == "2026-11-26"
    assert run_date({"scheduledTime": "2026-11-25T23:30:00Z"}, "Europe/Berlin") == "2026-11-26"
    assert run_date({"scheduledTime": "2026-11-25T23:30:00Z"}, "UTC") == "2026-11-25"
    with pytest.raises(ValueError, match="not YYYY-MM-DD"):
        run_date({"date": "26.11.2026"}, "UTC")


def test_the_resolve_state_carries_the_date_expression() -> None:
    s = states(template(timezone="America/New_York"))
    assert s["ResolveRun"]["Assign"]["runDate"] == "{% " + run_date_expression("America/New_York") + " %}"


# --- roles -----------------------------------------------------------------------------------------


def test_no_role_has_managed_aws_policies_wildcard_actions_or_inline_policies(default: Template) -> None:
    for role in default.find_resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
        assert "RoleName" not in role["Properties"]
    default.resource_count_is("AWS::IAM::Policy", 0)
    text = json.dumps(default.to_json())
    assert "AmazonSageMakerFullAccess" not in text
    for policy in default.find_resources("AWS::IAM::ManagedPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert all("*" not in action for action in actions(statement)), statement
            assert statement["Effect"] == "Allow"


def test_the_state_machine_role_is_least_privilege(default: Template) -> None:
    role = only(default, "AWS::IAM::Role", {"Description": "sagebert batch transform state machine"})
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}
    statements = by_sid(policy_statements(default, "sagebert batch transform state machine"))
    assert set(statements) == {
        "TransformJobs",
        "TransformJobEvents",
        "ListInput",
        "RecordSkippedRuns",
        "UseDataKey",
        "VolumeKeyGrant",
        "NotifyFailures",
        "WriteManifest",
        "Tracing",
        "LogDelivery",
    }
    jobs = statements["TransformJobs"]
    assert set(actions(jobs)) == {
        "sagemaker:CreateTransformJob",
        "sagemaker:DescribeTransformJob",
        "sagemaker:StopTransformJob",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
    }
    assert flat(jobs["Resource"]) == (
        "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:transform-job/sagebert-test-*"
    )
    assert flat(statements["TransformJobEvents"]["Resource"]).endswith(
        ":rule/StepFunctionsGetEventsForSageMakerTransformJobsRule"
    )
    listing = statements["ListInput"]
    assert actions(listing) == ["s3:ListBucket"] and re.fullmatch(
        r"<Bucket[0-9A-F]{8}\.Arn>", flat(listing["Resource"])
    )
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["batch/input/*"]}}
    assert actions(statements["RecordSkippedRuns"]) == ["s3:PutObject"]
    assert flat(statements["RecordSkippedRuns"]["Resource"]).endswith(".Arn>/batch/output/*")
    assert flat(statements["NotifyFailures"]["Resource"]).startswith("<BatchTopic")
    assert actions(statements["WriteManifest"]) == ["lambda:InvokeFunction"]
    assert flat(statements["WriteManifest"]["Resource"]).startswith("<BatchManifestFunction")
    wildcard = {sid for sid, statement in statements.items() if statement["Resource"] == "*"}
    assert wildcard == {"Tracing", "LogDelivery"}


def test_the_manifest_function_reads_both_prefixes_and_writes_only_output() -> None:
    tpl = template(input_prefix="in/", output_prefix="out/")
    function = only(tpl, "AWS::Lambda::Function")
    assert function["Runtime"] == "python3.14" and function["Architectures"] == ["arm64"]
    assert function["Handler"] == MANIFEST_HANDLER and function["TracingConfig"] == {"Mode": "Active"}
    assert function["Timeout"] == 900 and "FunctionName" not in function
    statements = by_sid(policy_statements(tpl, "sagebert batch manifest Lambda"))
    assert statements["ListBatchData"]["Condition"] == {"StringLike": {"s3:prefix": ["in/*", "out/*"]}}
    assert [flat(r).split(".Arn>")[1] for r in statements["ReadBatchData"]["Resource"]] == ["/in/*", "/out/*"]
    assert flat(statements["WriteManifest"]["Resource"]).endswith(".Arn>/out/*")
    assert actions(statements["UseDataKey"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    s3_actions = {a for s in statements.values() for a in actions(s) if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}
    logs = tpl.find_resources("AWS::Logs::LogGroup", {"Properties": {"LogGroupName": Match.absent()}})
    (log_group,) = logs.values()
    assert log_group["Properties"]["KmsKeyId"]["Fn::GetAtt"][0].startswith("Key")


def test_each_function_ships_only_its_own_package(tmp_path: Path) -> None:
    app = App(context=feature_flags(), outdir=str(tmp_path))
    stack = Stack(app, "Bare")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "Bucket")
    BatchTransformSchedule(
        stack,
        "Batch",
        settings=BatchSettings(),
        stage_name="test",
        model_name="m",
        bucket=bucket,
        key=key,
        lambda_code=project_files().lambdas,
    )
    assembly = app.synth()
    (function,) = (
        r
        for r in assembly.get_stack_by_name("Bare").template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    )
    asset = tmp_path / ("asset." + function["Properties"]["Code"]["S3Key"].removesuffix(".zip"))
    assert (asset / "batch_manifest" / "handler.py").is_file()
    assert not (asset / "front_door").exists() and not (asset / "README.md").exists()


# --- topic and alarm -------------------------------------------------------------------------------


def test_the_alarm_sums_failed_timed_out_and_aborted_runs_and_notifies_the_topic(default: Template) -> None:
    alarm = only(default, "AWS::CloudWatch::Alarm")
    assert alarm["Threshold"] == 1 and alarm["EvaluationPeriods"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    (action,) = alarm["AlarmActions"]
    assert action["Ref"].startswith("BatchTopic")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["expr_1"]["Expression"] == "FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)"
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m}
    assert names == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}


def test_the_topic_is_encrypted_tls_only_and_open_to_its_alarm(default: Template) -> None:
    topic = only(default, "AWS::SNS::Topic")
    assert topic["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("Key")
    assert "TopicName" not in topic
    policy = only(default, "AWS::SNS::TopicPolicy")["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    (alarm,) = [s for s in policy if s.get("Sid") == "CloudWatchAlarm"]
    assert alarm["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and alarm["Action"] == "sns:Publish"
    assert flat(alarm["Condition"]["ArnLike"]["aws:SourceArn"]).startswith("<BatchFailedRunsAlarm")
    default.resource_count_is("AWS::SNS::Subscription", 0)


def test_an_alarm_email_is_subscribed() -> None:
    tpl = template(alarm_email="ml-oncall@example.com")
    subscription = only(tpl, "AWS::SNS::Subscription")
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ml-oncall@example.com"


def test_the_key_lets_cloudwatch_logs_and_alarms_use_it(default: Template) -> None:
    statements = only(default, "AWS::KMS::Key")["KeyPolicy"]["Statement"]
    sids = {s.get("Sid"): s for s in statements}
    assert sids["CloudWatchAlarmsPublishToEncryptedTopics"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sids["CloudWatchAlarmsPublishToEncryptedTopics"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    # Confused-deputy guard: only this account's alarms in this region.
    condition = sids["CloudWatchAlarmsPublishToEncryptedTopics"]["Condition"]
    assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert flat(condition["ArnLike"]["aws:SourceArn"]) == (
        "arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*"
    )
    assert "CloudWatchLogsEncryption" in sids


def test_the_jobs_volume_uses_the_stage_key_through_a_grant_for_sagemaker(default: Template) -> None:
    transform = states(default)["Transform"]
    # The same key as the output's KmsKeyId: the stage key.
    volume_key = transform["Arguments"]["TransformResources"]["VolumeKmsKeyId"]
    assert re.fullmatch(r"<Key[0-9A-F]+\.Arn>", volume_key)
    assert volume_key == transform["Arguments"]["TransformOutput"]["KmsKeyId"]
    statements = by_sid(policy_statements(default, "sagebert batch transform state machine"))
    grant = statements["VolumeKeyGrant"]
    assert set(actions(grant)) == {"kms:CreateGrant", "kms:DescribeKey"}
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert flat(grant["Resource"]).startswith("<Key")


def test_a_stages_job_names_carry_the_stage_and_fit_sagemaker() -> None:
    prefix = job_name_prefix("a-twenty-char-stage1")
    assert prefix == "sagebert-a-twenty-char-stage1-"
    for name in ["a" * 80, *TRICKY_NAMES]:
        for attempt in (1, 11):
            job = transform_job_name(name, attempt, prefix)
            assert len(job) <= 63 and TRANSFORM_JOB_NAME.match(job) and job.startswith(prefix), job


# --- the model's grant -----------------------------------------------------------------------------


def test_the_models_role_may_read_the_input_and_write_the_output_prefix() -> None:
    stack = Stack(App(context=feature_flags()), "Bare")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "Bucket")
    model = HuggingFaceModel(
        stack,
        "Model",
        source=S3Model(source="s3", uri="s3://releases-bucket/v1/model.tar.gz"),
        image=find("4.51.3", "2.6.0"),
        flavour="cpu",
        logs=ModelLogs(transform_job_prefix="sagebert-test-"),
    )
    model.grant_batch_io(bucket=bucket, input_prefix="batch/input/", output_prefix="batch/output/", key=key)
    (policy,) = Template.from_stack(stack).find_resources("AWS::IAM::ManagedPolicy").values()
    statements = by_sid(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statements["ListBatchInput"]["Condition"] == {"StringLike": {"s3:prefix": ["batch/input/*"]}}
    assert flat(statements["ReadBatchInput"]["Resource"]).endswith(".Arn>/batch/input/*")
    assert set(actions(statements["WriteBatchOutput"])) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    assert flat(statements["WriteBatchOutput"]["Resource"]).endswith(".Arn>/batch/output/*")
    assert actions(statements["BatchDataKey"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert "ReadModelData" in statements  # the existing grants stay
    # Logs: the account's transform-job group, and writing only this stage's jobs' streams.
    assert [flat(r) for r in statements["TransformLogGroup"]["Resource"]] == [
        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TransformJobs",
        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TransformJobs:*",
    ]
    assert set(actions(statements["TransformLogGroup"])) == {"logs:CreateLogGroup", "logs:DescribeLogStreams"}
    assert flat(statements["TransformLogStreams"]["Resource"]) == (
        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TransformJobs:log-stream:"
        "sagebert-test-*"
    )
    assert set(actions(statements["TransformLogStreams"])) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert "EndpointLogs" not in statements
