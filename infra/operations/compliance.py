"""Compliance gates that run inside every synth: cdk-nag AwsSolutions and NIST 800-53 R5 packs.

A finding fails synth (cdk-nag 3 reports through CDK's validation plugins; `app.synth()` raises
and `cdk synth` exits non-zero, with details in cdk.out/validation-report.json) unless it is
acknowledged on the construct it concerns, with a reason specific to that construct.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import Acknowledgment, App, CfnResource, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct, IValidation


def add_compliance_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Accept one finding on one construct (and its children), for the reason given."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def nag_partition(scope: IConstruct) -> str:
    """The partition as cdk-nag spells it in finding ids: a literal when the stack knows it, else the
    <AWS::Partition> placeholder."""
    partition = Stack.of(scope).partition
    return "<AWS::Partition>" if Token.is_unresolved(partition) else partition


def acknowledge_resources(scope: IConstruct, rule: str, resources: Sequence[str], reason: str) -> None:
    """Accept `rule[Resource::<arn>]` on scope for each resource ARN, spelled as cdk-nag spells it.

    cdk-nag names a finding after the ARN as it stands in the synthesized template, and an ARN built from
    another stack's resource (the artifact bucket, say) only becomes its `Fn::ImportValue` form when CDK
    resolves cross-stack references during synthesis. So the acknowledgment is made then: in a validation
    callback, which CDK runs after resolving references and before the validation plugins (cdk-nag).
    """
    scope.node.add_validation(_AcknowledgeResolved(scope, rule, list(resources), reason))


@jsii.implements(IValidation)
class _AcknowledgeResolved:
    def __init__(self, scope: IConstruct, rule: str, resources: list[str], reason: str) -> None:
        self._scope, self._rule, self._resources, self._reason = scope, rule, resources, reason

    def validate(self) -> list[str]:
        stack = Stack.of(self._scope)
        for resource in self._resources:
            finding = f"{self._rule}[Resource::{nag_spelling(stack.resolve(resource))}]"
            acknowledge(self._scope, finding, self._reason)
        return []


def nag_spelling(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag flattens it into a finding id (its flattenCfnReference):
    Fn::Join joined, Ref -> <name>, Fn::GetAtt -> <resource.attribute>, Fn::ImportValue -> the export name."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return str(delimiter).join(nag_spelling(item) for item in items)
        if "Fn::Sub" in value:
            return nag_spelling(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{nag_spelling(resource)}.{nag_spelling(attribute)}>"
        if "Fn::ImportValue" in value:
            return nag_spelling(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{nag_spelling(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def quiet_cfn_lint_on_cdk_provider(stack: Stack, provider_id: str) -> None:
    """CDK's custom-resource providers (`Custom::...CustomResourceProvider` at the stack's root) give their handler
    both a DependsOn its role and a GetAtt of it; cfn-lint calls that redundant (W3005). It is CDK's template,
    correct as it stands, so the handler carries cfn-lint's ignore metadata."""
    provider = stack.node.try_find_child(provider_id)
    handler = provider.node.try_find_child("Handler") if provider is not None else None
    if isinstance(handler, CfnResource):
        handler.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
