"""Synthesized CloudFormation templates as comparable text: a `Stack` with its environment, and the `Resolver` that
turns Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::ImportValue and the rest into the ARNs and names CloudFormation
would give.

Policies name resources through intrinsic functions, the calls through template values; only when both resolve to
the same text can a statement be matched against a call. What cannot be known before deploy (pseudo parameters of
an environment-agnostic stack, parameters, generated names) becomes a stable stand-in ({Region}, {Parameter.X}), so
the same value still resolves to the same text wherever it is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sagebert.checks.authorization.policy import Statement, listed

Template = Mapping[str, Any]

# How CloudFormation answers Ref and Fn::GetAtt for the types the gate reads: (type, attribute or "Ref") -> format
# over {partition}, {region}, {account}, {name} (the physical name: its name property, else a generated stand-in),
# {path} (a role's path). https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html
ARNS: dict[str, str] = {
    "AWS::IAM::Role": "arn:{partition}:iam::{account}:role{path}{name}",
    "AWS::IAM::ManagedPolicy": "arn:{partition}:iam::{account}:policy{path}{name}",
    "AWS::Lambda::Function": "arn:{partition}:lambda:{region}:{account}:function:{name}",
    "AWS::S3::Bucket": "arn:{partition}:s3:::{name}",
    "AWS::KMS::Key": "arn:{partition}:kms:{region}:{account}:key/{name}",
    "AWS::SNS::Topic": "arn:{partition}:sns:{region}:{account}:{name}",
    "AWS::SQS::Queue": "arn:{partition}:sqs:{region}:{account}:{name}",
    "AWS::StepFunctions::StateMachine": "arn:{partition}:states:{region}:{account}:stateMachine:{name}",
    "AWS::Logs::LogGroup": "arn:{partition}:logs:{region}:{account}:log-group:{name}:*",
    "AWS::SageMaker::Endpoint": "arn:{partition}:sagemaker:{region}:{account}:endpoint/{lname}",
    "AWS::SageMaker::EndpointConfig": "arn:{partition}:sagemaker:{region}:{account}:endpoint-config/{lname}",
    "AWS::SageMaker::Model": "arn:{partition}:sagemaker:{region}:{account}:model/{lname}",
    "AWS::SageMaker::InferenceComponent": "arn:{partition}:sagemaker:{region}:{account}:inference-component/{lname}",
    "AWS::SageMaker::ModelPackageGroup": "arn:{partition}:sagemaker:{region}:{account}:model-package-group/{lname}",
    "AWS::CloudWatch::Alarm": "arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}",
    "AWS::ApiGateway::ApiKey": "arn:{partition}:apigateway:{region}::/apikeys/{name}",
}
# Types whose Ref is the ARN (the rest: the physical name or id).
_REF_IS_ARN = {
    "AWS::IAM::ManagedPolicy",
    "AWS::SNS::Topic",
    "AWS::StepFunctions::StateMachine",
    "AWS::SageMaker::Endpoint",
    "AWS::SageMaker::EndpointConfig",
    "AWS::SageMaker::Model",
    "AWS::SageMaker::InferenceComponent",
}
_NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SageMaker::Endpoint": "EndpointName",
    "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
    "AWS::SageMaker::Model": "ModelName",
    "AWS::SageMaker::InferenceComponent": "InferenceComponentName",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::ApiGateway::Stage": "StageName",
}
# Fn::GetAtt attributes that are the physical name rather than the ARN.
_NAME_ATTRIBUTES = {
    "Name",
    "EndpointName",
    "ModelName",
    "EndpointConfigName",
    "InferenceComponentName",
    "TopicName",
    "QueueName",
    "RoleId",
    "KeyId",
    "ModelPackageGroupName",
}


@dataclass
class Stack:
    """One synthesized stack of a stage, with the environment its values resolve in."""

    name: str
    template: Template
    account: str
    region: str
    partition: str
    stack_name: str = ""  # the CloudFormation stack name (generated physical names start with it)

    @property
    def resources(self) -> Mapping[str, Any]:
        resources: Mapping[str, Any] = self.template.get("Resources", {})
        return resources


class Resolver:
    """Resolves template values of a group of stacks (a stage, or the top-level ones) to plain strings: pseudo
    parameters and unresolvable values become stable stand-ins ({Region}, {FindInMap:...}), so the same value
    resolves to the same text wherever it is used, and ARNs compare as text."""

    def __init__(self, stacks: Sequence[Stack]) -> None:
        self.stacks = {stack.name: stack for stack in stacks}
        self.exports: dict[str, tuple[Stack, Any]] = {}
        for stack in stacks:
            for output in stack.template.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if isinstance(name, str):
                    self.exports[name] = (stack, output["Value"])

    def name_of(self, stack: Stack, logical_id: str) -> str:
        resource = stack.resources[logical_id]
        prop = _NAME_PROPERTIES.get(resource["Type"])
        value = resource.get("Properties", {}).get(prop) if prop else None
        if value is not None:
            return self.resolve(stack, value)
        if resource["Type"] == "AWS::KMS::Key":
            return f"{{{stack.stack_name or stack.name}.{logical_id}}}"
        # CloudFormation's generated names start with the stack name and logical id; the rest is random.
        generated = f"{stack.stack_name or stack.name}-{logical_id}"
        return generated.lower() if resource["Type"] == "AWS::S3::Bucket" else generated

    def arn_of(self, stack: Stack, logical_id: str) -> str:
        resource = stack.resources[logical_id]
        fmt = ARNS.get(resource["Type"])
        if fmt is None:
            return f"{{{stack.name}.{logical_id}.Arn}}"
        name = self.name_of(stack, logical_id)
        path = self.resolve(stack, resource.get("Properties", {}).get("Path", "/"))
        return fmt.format(
            partition=stack.partition,
            region=stack.region,
            account=stack.account,
            name=name,
            lname=name.lower(),
            path=path,
        )

    def ref(self, stack: Stack, name: str) -> str:
        pseudo = {
            "AWS::Partition": stack.partition,
            "AWS::Region": stack.region,
            "AWS::AccountId": stack.account,
            "AWS::URLSuffix": "amazonaws.com" if not stack.region.startswith("cn-") else "amazonaws.com.cn",
            "AWS::StackName": stack.name,
            "AWS::NoValue": "",
        }
        if name in pseudo:
            return pseudo[name]
        if name in stack.template.get("Parameters", {}):
            return f"{{Parameter.{name}}}"
        if name not in stack.resources:
            return f"{{{name}}}"
        resource_type = stack.resources[name]["Type"]
        if resource_type in _REF_IS_ARN:
            return self.arn_of(stack, name)
        if resource_type == "AWS::SQS::Queue":
            return f"https://sqs.{stack.region}.amazonaws.com/{stack.account}/{self.name_of(stack, name)}"
        if resource_type in _NAME_PROPERTIES or resource_type == "AWS::KMS::Key":
            return self.name_of(stack, name)
        return f"{{{stack.stack_name or stack.name}.{name}}}"

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> str:
        if logical_id not in stack.resources:
            return f"{{{logical_id}.{attribute}}}"
        if attribute in _NAME_ATTRIBUTES:
            return self.name_of(stack, logical_id)
        if attribute.endswith("Arn") or attribute == "Arn":
            return self.arn_of(stack, logical_id)
        return f"{{{stack.name}.{logical_id}.{attribute}}}"

    def resolve(self, stack: Stack, value: Any) -> str:
        """A template value as one string (lists joined by ","; use resolve_list for lists)."""
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, list):
            return ",".join(self.resolve(stack, v) for v in value)
        if not isinstance(value, dict) or len(value) != 1:
            return json.dumps(value, sort_keys=True)
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.ref(stack, str(argument))
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
            return self.get_att(stack, str(logical_id), str(attribute))
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(self.resolve(stack, p) for p in self._items(stack, parts))
        if function == "Fn::Sub":
            text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})

            def substitute(match: re.Match[str]) -> str:
                name = match[1]
                if name in variables:
                    return self.resolve(stack, variables[name])
                if "." in name:
                    logical_id, attribute = name.split(".", 1)
                    return self.get_att(stack, logical_id, attribute)
                return self.ref(stack, name)

            return re.sub(r"\$\{([^}!]+)\}", substitute, str(text))
        if function == "Fn::ImportValue":
            name = self.resolve(stack, argument)
            if name in self.exports:
                exporter, exported = self.exports[name]
                return self.resolve(exporter, exported)
            return f"{{Import.{name.replace(':', '.')}}}"
        if function == "Fn::FindInMap":
            mapping, first, second = (self.resolve(stack, a) for a in argument[:3])
            found = stack.template.get("Mappings", {}).get(mapping, {}).get(first, {}).get(second)
            return str(found) if found is not None else f"{{FindInMap.{mapping}.{first}.{second}}}"
        if function == "Fn::Select":
            index, items = argument
            listed = self._items(stack, items)
            position = int(self.resolve(stack, index))
            return self.resolve(stack, listed[position]) if position < len(listed) else "{Select}"
        if function == "Fn::Split":
            return self.resolve(stack, argument[1])
        return f"{{{function}}}"

    def _items(self, stack: Stack, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        if isinstance(value, dict) and "Fn::Split" in value:
            separator, source = value["Fn::Split"]
            return list(self.resolve(stack, source).split(str(separator)))
        return [value]

    def resolve_list(self, stack: Stack, value: Any) -> list[str]:
        return [self.resolve(stack, v) for v in listed(value)]

    def statements(self, stack: Stack, document: Any, where: str) -> tuple[Statement, ...]:
        """A policy document's statements with every value resolved."""
        if not isinstance(document, dict):
            return ()
        return tuple(Statement.parse(self._deep(stack, raw), where) for raw in listed(document.get("Statement")))

    def _deep(self, stack: Stack, value: Any) -> Any:
        """Resolve every leaf, keeping lists and the policy grammar's own keys."""
        if isinstance(value, list):
            return [self._deep(stack, v) for v in value]
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
                return self.resolve(stack, value)
            return {k: self._deep(stack, v) for k, v in value.items()}
        return self.resolve(stack, value)

    def find(self, resolved_ref: str) -> tuple[Stack, str] | None:
        """The (stack, logical id) whose Ref or ARN resolves to `resolved_ref`, if the app has it."""
        for stack in self.stacks.values():
            for logical_id, resource in stack.resources.items():
                if resource["Type"] not in ARNS and resource["Type"] != "AWS::KMS::Key":
                    continue
                if resolved_ref in (self.ref(stack, logical_id), self.arn_of(stack, logical_id)):
                    return stack, logical_id
        return None
