"""The calls of the batch path: each state machine's role, task by task from its definition (Step Functions' service
integrations and the calls each makes as that role), the transform job's reads and writes as its model's role, and
the EventBridge Scheduler role that starts the state machine.

The integration actions come from the Step Functions guide (cited beside them), not from infra/: the logging
actions repeat infra's on purpose. A task whose integration has no entry here is reported, never skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from sagebert.checks.authorization.calls_builder import PUBLISH_KEY_ACTIONS, TRACING_ACTIONS, Builder, publish
from sagebert.checks.authorization.policy import Principal
from sagebert.checks.authorization.templates import Stack

# Step Functions' service integrations and the calls each makes as the state machine's role.
# https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html (createTransformJob.sync)
# https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html (aws-sdk:<service>:<api>)
# .sync also tags the job it starts (MANAGED_BY_AWS: STARTED_BY_STEP_FUNCTIONS): sagemaker:AddTags on it
# (https://github.com/aws/aws-cdk/issues/26012, fixed in CDK's task by aws/aws-cdk#27264).
TRANSFORM_SYNC_ACTIONS = (
    "sagemaker:CreateTransformJob",
    "sagemaker:DescribeTransformJob",
    "sagemaker:StopTransformJob",
    "sagemaker:AddTags",
    "sagemaker:ListTags",
)
TRANSFORM_SYNC_RULE = "StepFunctionsGetEventsForSageMakerTransformJobsRule"
TRANSFORM_SYNC_RULE_ACTIONS = ("events:PutTargets", "events:PutRule", "events:DescribeRule")
# Logging and tracing of a state machine: https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html,
# https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html
# Written out from the AWS page, never imported from infra/: the gate checks infra's grants against what the service
# does, and a list shared with the grants would only check that they equal themselves.
STATE_MACHINE_LOG_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)

SAMPLING_ACTIONS = ("xray:GetSamplingRules", "xray:GetSamplingTargets")


def state_machines(b: Builder) -> dict[str, tuple[Stack, str]]:
    """Each state machine's role, task by task from its definition; returns the transform jobs' models."""
    r = b.resolver
    transform_models: dict[str, tuple[Stack, str]] = {}
    for stack, logical_id, props in b.each("AWS::StepFunctions::StateMachine"):
        principal = b.principal(stack, props.get("RoleArn"))
        if principal is None:
            continue
        where = f"{stack.name}/{logical_id}"
        definition = json.loads(r.resolve(stack, props.get("DefinitionString")))
        assigned = {
            k: v for _, state in _all_states(definition.get("States", {})) for k, v in state.get("Assign", {}).items()
        }
        for name, state in _all_states(definition.get("States", {})):
            if state.get("Type") == "Task":
                _task(b, stack, principal, f"{where} state {name}", state, transform_models, assigned)
        if props.get("LoggingConfiguration", {}).get("Destinations"):
            for action in STATE_MACHINE_LOG_ACTIONS:
                b.add(principal, action, "*", f"{where} LoggingConfiguration")
        if props.get("TracingConfiguration", {}).get("Enabled"):
            for action in TRACING_ACTIONS + SAMPLING_ACTIONS:
                b.add(principal, action, "*", f"{where} TracingConfiguration")
    return transform_models


def _all_states(states: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state, parallel branches and map iterations included."""
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _all_states(branch.get("States", {}))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _all_states(processor.get("States", {}))


def _task(
    b: Builder,
    stack: Stack,
    principal: Principal,
    where: str,
    state: Mapping[str, Any],
    transform_models: dict[str, tuple[Stack, str]],
    assigned: Mapping[str, Any],
) -> None:
    resource = str(state.get("Resource", ""))
    integration = resource.split(":states:::", 1)[-1]
    arguments = state.get("Arguments", state.get("Parameters", {}))

    def base(service: str) -> str:
        return f"arn:{stack.partition}:{service}:{stack.region}:{stack.account}"

    prefixes = b.batch_prefixes()
    if integration in ("sagemaker:createTransformJob.sync", "sagemaker:createTransformJob"):
        job_prefix = _literal_prefix(str(arguments.get("TransformJobName", "")), assigned)
        job = f"{base('sagemaker')}:transform-job/{job_prefix.lower()}0123-1"
        actions = TRANSFORM_SYNC_ACTIONS if integration.endswith(".sync") else TRANSFORM_SYNC_ACTIONS[:1]
        for action in actions + (("sagemaker:AddTags",) if "Tags" in arguments else ()):
            b.add(principal, action, job, where, resource_type="transform-job")
        if integration.endswith(".sync"):
            rule = f"{base('events')}:rule/{TRANSFORM_SYNC_RULE}"
            for action in TRANSFORM_SYNC_RULE_ACTIONS:
                b.add(principal, action, rule, where)
        volume_key = arguments.get("TransformResources", {}).get("VolumeKmsKeyId")
        if volume_key:
            for action in ("kms:CreateGrant", "kms:DescribeKey"):
                b.add(
                    principal,
                    action,
                    volume_key,
                    f"{where} VolumeKmsKeyId",
                    context={
                        "kms:GrantIsForAWSResource": ("true",),
                        "kms:ViaService": (f"sagemaker.{stack.region}.amazonaws.com",),
                    },
                )
        transform_models[str(arguments.get("ModelName"))] = (stack, job_prefix)
        _transform_io(b, stack, str(arguments.get("ModelName")), arguments, where)
    elif integration == "aws-sdk:s3:listObjectsV2" and prefixes is not None:
        b.add(principal, "s3:ListBucket", prefixes[0], where, context={"s3:prefix": (f"{prefixes[1]}2026-01-01/",)})
    elif integration == "aws-sdk:s3:putObject" and prefixes is not None:
        b.s3_write(principal, f"{prefixes[0]}/{prefixes[2]}2026-01-01/run/_skipped.json", where)
    elif integration == "sns:publish":
        publish(b, principal, str(arguments.get("TopicArn")), where)
    elif integration.startswith("lambda:invoke"):
        function = str(arguments.get("FunctionName"))
        b.add(principal, "lambda:InvokeFunction", function, where)
    else:
        b.problems.append(
            f"{b.stage.name}: {where} calls {resource}, which has no entry in the authorization gate's task table "
            "(sagebert/checks/authorization/calls_batch.py _task): add the calls that integration makes as "
            "the role"
        )


def _literal_prefix(jsonata: str, assigned: Mapping[str, Any]) -> str:
    """The literal start of a JSONata job name ("{% 'sagebert-dev-' & ... %}" -> "sagebert-dev-"), through a
    variable the definition assigns ("{% $jobName %}")."""
    variable = re.fullmatch(r"\{%\s*\$(\w+)\s*%\}", jsonata)
    if variable is not None and variable[1] in assigned:
        jsonata = str(assigned[variable[1]])
    match = re.match(r"^\{%\s*'([^']*)'", jsonata)
    return match[1] if match else jsonata


def _transform_io(b: Builder, stack: Stack, model: str, arguments: Mapping[str, Any], where: str) -> None:
    """What a transform job does as its model's role: read the input prefix, write the output (with its KmsKeyId)."""
    prefixes = b.batch_prefixes()
    role = next(
        (
            b.principal(s, p.get("ExecutionRoleArn"))
            for s, lid, p in b.each("AWS::SageMaker::Model")
            if b.resolver.name_of(s, lid) == model
        ),
        None,
    )
    if role is None or prefixes is None:
        return
    bucket, input_prefix, output_prefix = prefixes
    b.add(
        role, "s3:ListBucket", bucket, f"{where} TransformInput", context={"s3:prefix": (f"{input_prefix}2026-01-01/",)}
    )
    b.s3_read(role, f"{bucket}/{input_prefix}2026-01-01/part-0.jsonl", f"{where} TransformInput")
    key = arguments.get("TransformOutput", {}).get("KmsKeyId")
    b.s3_write(
        role,
        f"{bucket}/{output_prefix}2026-01-01/run/part-0.jsonl.out",
        f"{where} TransformOutput",
        key=str(key) if key else None,
    )


def schedules(b: Builder) -> None:
    """EventBridge Scheduler: its role starts the target and sends missed runs to the dead-letter queue."""
    r = b.resolver
    for stack, logical_id, props in b.each("AWS::Scheduler::Schedule"):
        target = props.get("Target", {})
        principal = b.principal(stack, target.get("RoleArn"))
        if principal is None:
            continue
        where = f"{stack.name}/{logical_id}"
        arn = r.resolve(stack, target.get("Arn"))
        if ":states:" in arn:
            b.add(principal, "states:StartExecution", arn, f"{where} Target")
        else:
            b.problems.append(f"{b.stage.name}: {where} targets {arn}, which the gate does not model")
        dead_letter = target.get("DeadLetterConfig", {}).get("Arn")
        if dead_letter is not None:
            queue = r.resolve(stack, dead_letter)
            b.add(principal, "sqs:SendMessage", queue, f"{where} DeadLetterConfig")
            key = b.app.queue_keys.get(queue)
            if key is not None:
                for action in PUBLISH_KEY_ACTIONS:
                    b.add(principal, action, key, f"{where} DeadLetterConfig: the queue's KMS key")
