"""Compliance gates that run inside every synth: cdk-nag AwsSolutions and NIST 800-53 R5 packs.

A finding fails synth (cdk-nag 3 reports through CDK's validation plugins; `app.synth()` raises
and `cdk synth` exits non-zero, with details in cdk.out/validation-report.json) unless it is
acknowledged on the construct it concerns, with a reason specific to that construct.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct


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
