"""What every per-principal table of calls shares: `Builder`, which collects one stage's calls (typing each resource
by the Service Authorization data, adding the SSE-KMS key an S3 read or write uses), and the ARN helpers.

The action lists in the calls_* modules are written out from the AWS pages cited beside them, never imported from
infra/: the gate checks infra's grants against what the services do, so a list shared with the grants would only
check that the grants equal themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sagebert.checks.authorization.app import App, StageInput
from sagebert.checks.authorization.evaluation import Call
from sagebert.checks.authorization.policy import Principal
from sagebert.checks.authorization.service_data import arn_fits, resource_types
from sagebert.checks.authorization.templates import Stack

# X-Ray tracing of a function or a state machine (tracing on):
# https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html
TRACING_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")

# A publisher to an SSE-KMS topic or queue needs the key: https://docs.aws.amazon.com/sns/latest/dg/
# sns-key-management.html, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
PUBLISH_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


class Builder:
    """Collects one stage's calls."""

    def __init__(self, app: App, stage: StageInput) -> None:
        self.app, self.stage = app, stage
        self.resolver = app.resolvers[stage.name]
        self.calls: list[Call] = []
        self.problems: list[str] = []

    def principal(self, stack: Stack, role_value: Any) -> Principal | None:
        arn = self.resolver.resolve(stack, role_value)
        role = self.app.roles.get(arn)
        if role is None:
            self.problems.append(
                f"{self.stage.name}: role {arn} is not in the synthesized app; its calls are not checked"
            )
        return role

    def add(
        self,
        principal: Principal,
        action: str,
        resource: str,
        source: str,
        *,
        resource_type: str | None = None,
        context: Mapping[str, tuple[str, ...]] | None = None,
        parameters: tuple[str, ...] = (),
        policy_resource: str | None = None,
    ) -> None:
        types = resource_types(action)
        if types is None:
            self.problems.append(f"{self.stage.name}: {action} ({source}) is not in the Service Authorization data")
            return
        if resource_type is None and types and resource != "*":
            service = action.split(":")[0]
            fitting = [t for t in types if arn_fits(resource, service, t)]
            resource_type = fitting[0] if fitting else None
        self.calls.append(
            Call(principal, action, resource, resource_type, source, dict(context or {}), parameters, policy_resource)
        )

    def s3_read(self, principal: Principal, object_arn: str, source: str, policy_object: str | None = None) -> None:
        self.add(principal, "s3:GetObject", object_arn, source, policy_resource=policy_object)
        self.key_use(principal, object_arn, ("kms:Decrypt",), source, policy_object)

    def s3_write(self, principal: Principal, object_arn: str, source: str, key: str | None = None) -> None:
        self.add(principal, "s3:PutObject", object_arn, source)
        self.key_use(principal, object_arn, ("kms:GenerateDataKey",), source, key=key)

    def key_use(
        self,
        principal: Principal,
        object_arn: str,
        actions: tuple[str, ...],
        source: str,
        policy_object: str | None = None,
        key: str | None = None,
    ) -> None:
        """The bucket's default SSE-KMS key (or `key`), used through S3."""
        bucket = (policy_object or object_arn).split("/", 1)[0]
        key = key or self.app.bucket_keys.get(bucket)
        if key is None:
            return
        region = self.region
        for action in actions:
            self.add(
                principal,
                action,
                key,
                f"{source}: the bucket's SSE-KMS key",
                context={"kms:ViaService": (f"s3.{region}.amazonaws.com",)},
            )

    @property
    def region(self) -> str:
        return self.stage.stacks[0].region if self.stage.stacks else "{Region}"

    def each(self, kind: str) -> Iterator[tuple[Stack, str, Mapping[str, Any]]]:
        for stack in self.stage.stacks:
            for logical_id, resource in stack.resources.items():
                if resource["Type"] == kind:
                    yield stack, logical_id, resource.get("Properties", {})

    def output(self, name: str) -> str | None:
        for stack in self.stage.stacks:
            if name in stack.template.get("Outputs", {}):
                return self.resolver.resolve(stack, stack.template["Outputs"][name]["Value"])
        return None

    def batch_prefixes(self) -> tuple[str, str, str] | None:
        """(bucket ARN, input prefix, output prefix) of the stage's batch data (the storage stack's outputs)."""
        inputs, outputs = self.output("BatchInputPrefix"), self.output("BatchOutputPrefix")
        if inputs is None or outputs is None:
            return None
        bucket, input_prefix = inputs.removeprefix("s3://").split("/", 1)
        output_prefix = outputs.removeprefix("s3://").split("/", 1)[1]
        return f"arn:{self.stage.stacks[0].partition}:s3:::{bucket}", input_prefix, output_prefix


def s3_arn(partition: str, uri: str) -> str:
    return f"arn:{partition}:s3:::{uri.removeprefix('s3://')}"


def log_stream(stack: Stack, group: str, stream: str) -> str:
    return f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{group}:log-stream:{stream}"


def log_group(stack: Stack, group: str) -> str:
    """A group-level call's resource as CloudWatch Logs authorizes it (the group's ARN with its ":*" suffix: a grant
    on log-group:<name> alone does not cover it)."""
    return f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{group}:*"


def publish(
    b: Builder, principal: Principal, topic: str, source: str, context: Mapping[str, tuple[str, ...]] | None = None
) -> None:
    b.add(principal, "sns:Publish", topic, source, context=context)
    key = b.app.topic_keys.get(topic)
    if key is not None:
        for action in PUBLISH_KEY_ACTIONS:
            b.add(principal, action, key, f"{source}: the topic's KMS key", context=context)
