"""The synthesized app as the evaluation needs it: every role with its identity policies (inline and attached), every
role's trust policy, the resource policies (bucket, key, topic, queue, model package group) and default keys, by
resolved ARN, over all stages at once.

All stages together, because the calls cross them: a consumer stage's model role reads the owner stage's registry
archive with the owner's key, the promotion pipeline assumes each stage's smoke-test role.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sagebert.checks.authorization.evaluation import ResourcePolicy
from sagebert.checks.authorization.policy import Principal, Statement
from sagebert.checks.authorization.templates import ARNS, Resolver, Stack

# Resources outside the app whose resource policy the gate cannot read, and what it assumes of them.
EXTERNAL_RESOURCES: dict[str, str] = {
    # The Deep Learning Containers' registries allow image pulls by every account.
    # https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/sagemaker-algo-docker-registry-paths.html
    "ecr:repository": "AWS's Deep Learning Container repositories allow pulls by any account",
    # The CDK bootstrap asset bucket: its policy only refuses requests without TLS.
    # https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html
    "s3:cdk-assets": "the CDK bootstrap asset bucket's policy denies only requests without TLS",
}


@dataclass(frozen=True)
class RegistrySource:
    """A stage's `model.source: registry` (the config says where register put the archives and with which key)."""

    group: str
    model_data_prefix: str
    kms_key_arn: str | None


@dataclass(frozen=True)
class StageInput:
    """One stage's synthesized stacks and the config facts its templates do not carry."""

    name: str
    stacks: Sequence[Stack]
    registry_sources: tuple[RegistrySource, ...] = ()
    async_input_prefix: str | None = None


class App:
    """Every stage of one synthesized app: roles with their identity policies, and resource policies, by ARN."""

    def __init__(self, stages: Sequence[StageInput]) -> None:
        self.stages = list(stages)
        self.resolvers = {stage.name: Resolver(stage.stacks) for stage in stages}
        self.roles: dict[str, Principal] = {}
        self.policies: dict[str, ResourcePolicy] = {}
        self.known: dict[str, tuple[str, Stack]] = {}  # ARN -> (stage, stack) of every resource the app creates
        self.bucket_keys: dict[str, str] = {}  # bucket ARN -> its default SSE-KMS key ARN
        self.topic_keys: dict[str, str] = {}
        self.queue_keys: dict[str, str] = {}
        self.groups: dict[tuple[str, str], str] = {}  # (account, group name) -> stage
        self.trust: dict[str, ResourcePolicy] = {}  # role ARN -> its trust policy (sts:AssumeRole's resource policy)
        for stage in stages:
            self._index(stage)

    def _index(self, stage: StageInput) -> None:
        resolver = self.resolvers[stage.name]
        for stack in stage.stacks:
            where = f"{stage.name}/{stack.name}"
            for logical_id, resource in stack.resources.items():
                kind, props = resource["Type"], resource.get("Properties", {})
                if kind in ARNS or kind == "AWS::KMS::Key":
                    self.known[resolver.arn_of(stack, logical_id)] = (stage.name, stack)
                if kind == "AWS::IAM::Role":
                    statements = [
                        s
                        for policy in props.get("Policies", [])
                        for s in resolver.statements(stack, policy.get("PolicyDocument"), f"{where}/{logical_id}")
                    ]
                    self.roles[resolver.arn_of(stack, logical_id)] = Principal(
                        label=f"{where}/{logical_id}",
                        arn=resolver.arn_of(stack, logical_id),
                        account=stack.account,
                        statements=tuple(statements),
                    )
                    self.trust[resolver.arn_of(stack, logical_id)] = ResourcePolicy(
                        stack.account,
                        resolver.statements(stack, props.get("AssumeRolePolicyDocument"), f"{where}/{logical_id}"),
                    )
                elif kind == "AWS::S3::Bucket":
                    for rule in props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
                        default = rule.get("ServerSideEncryptionByDefault", {})
                        if default.get("SSEAlgorithm") == "aws:kms" and "KMSMasterKeyID" in default:
                            key = resolver.resolve(stack, default["KMSMasterKeyID"])
                            self.bucket_keys[resolver.arn_of(stack, logical_id)] = key
                    self.policies.setdefault(resolver.arn_of(stack, logical_id), ResourcePolicy(stack.account, ()))
                elif kind == "AWS::KMS::Key":
                    self.policies[resolver.arn_of(stack, logical_id)] = ResourcePolicy(
                        stack.account,
                        resolver.statements(stack, props.get("KeyPolicy"), f"{where}/{logical_id}"),
                        kms=True,
                    )
                elif kind == "AWS::SNS::Topic":
                    if "KmsMasterKeyId" in props:
                        self.topic_keys[resolver.arn_of(stack, logical_id)] = resolver.resolve(
                            stack, props["KmsMasterKeyId"]
                        )
                elif kind == "AWS::SQS::Queue":
                    if "KmsMasterKeyId" in props:
                        self.queue_keys[resolver.arn_of(stack, logical_id)] = resolver.resolve(
                            stack, props["KmsMasterKeyId"]
                        )
                elif kind == "AWS::SageMaker::ModelPackageGroup":
                    group = resolver.name_of(stack, logical_id)
                    self.groups[(stack.account, group)] = stage.name
                    self.policies[resolver.arn_of(stack, logical_id)] = ResourcePolicy(
                        stack.account,
                        resolver.statements(stack, props.get("ModelPackageGroupPolicy"), f"{where}/{logical_id}"),
                    )
        # Policies attached to roles, and resource policies, once every role is known.
        for stack in stage.stacks:
            where = f"{stage.name}/{stack.name}"
            for logical_id, resource in stack.resources.items():
                kind, props = resource["Type"], resource.get("Properties", {})
                if kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
                    attached = resolver.statements(stack, props.get("PolicyDocument"), f"{where}/{logical_id}")
                    for role in props.get("Roles", []):
                        found = resolver.find(resolver.resolve(stack, role))
                        if found is not None:
                            self._attach(resolver.arn_of(*found), attached)
                elif kind == "AWS::S3::BucketPolicy":
                    bucket = resolver.find(resolver.resolve(stack, props["Bucket"]))
                    if bucket is not None:
                        self._add_policy(
                            resolver.arn_of(*bucket),
                            stack.account,
                            resolver.statements(stack, props.get("PolicyDocument"), f"{where}/{logical_id}"),
                        )
                elif kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
                    for target in props.get("Topics", props.get("Queues", [])):
                        found = resolver.find(resolver.resolve(stack, target))
                        if found is not None:
                            self._add_policy(
                                resolver.arn_of(*found),
                                stack.account,
                                resolver.statements(stack, props.get("PolicyDocument"), f"{where}/{logical_id}"),
                            )

    def _attach(self, role_arn: str, statements: tuple[Statement, ...]) -> None:
        role = self.roles[role_arn]
        self.roles[role_arn] = Principal(role.label, role.arn, role.account, role.service, role.statements + statements)

    def _add_policy(self, arn: str, account: str, statements: tuple[Statement, ...]) -> None:
        old = self.policies.get(arn)
        self.policies[arn] = ResourcePolicy(
            account, (old.statements or () if old else ()) + statements, kms=old.kms if old else False
        )

    def policy_for(self, arn: str) -> ResourcePolicy | None:
        """The resource policy that governs `arn` (a bucket's for its objects, a group's for its versions); for a
        resource outside the app, what can be said of it (its account; unreadable)."""
        if arn in self.policies:
            return self.policies[arn]
        if arn.startswith("arn:") and ":s3:::" in arn:
            bucket = arn.split("/", 1)[0]
            if bucket in self.policies:
                return self.policies[bucket]
            if bucket.split(":::", 1)[1].startswith("cdk-"):
                return ResourcePolicy(None, None, assumed=EXTERNAL_RESOURCES["s3:cdk-assets"])
            return ResourcePolicy(None, None)
        package = re.match(r"^(arn:[^:]+:sagemaker:[^:]*:([^:]*):)model-package/([^/]+)/", arn)
        if package is not None:
            group_arn = f"{package[1]}model-package-group/{package[3].lower()}"
            if group_arn in self.policies:
                return self.policies[group_arn]
        parts = arn.split(":")
        account = parts[4] if len(parts) > 5 and parts[4] else None
        if arn in self.known:
            return ResourcePolicy(account, ())
        if len(parts) > 2 and parts[2] == "ecr":
            return ResourcePolicy(account, None, assumed=EXTERNAL_RESOURCES["ecr:repository"])
        return ResourcePolicy(account, None, kms=len(parts) > 2 and parts[2] == "kms")


def account_of(arn: str) -> str | None:
    """The account field of `arn`; None where it is empty (S3) or the text is no ARN."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None
