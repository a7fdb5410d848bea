"""The authorization gate: every AWS call the deployed code makes at run time is allowed by the synthesized policies.

A stage can synthesize, pass cdk-nag and cfn-lint, deploy, and still fail at its first request: the front door's
role may call InvokeEndpoint on the endpoint but not on the inference component the call names, the model role may
write the endpoint's log group but not the component's, a consumer account may not read the registry's archive key.
Nothing fails until the call is made. This module makes those calls on paper:

- The calls (`stage_calls`): a declared table of what each principal does at run time, read from the templates it
  runs with (a function's handler and environment, a model's data URL and image, the state machine's tasks, a
  schedule's target, an alarm's actions) and, where a template cannot say, the stage config (a registry model's
  archive location and key). `RUNTIME_OPERATIONS` lists the botocore operations the deployed Lambda code makes;
  tests/call_recorder.py records the operations the tests really make and fails on one this table lacks.
- The resource types each action is authorized against come from the Service Authorization Reference as cfn-lint
  ships it (cfnlint/data/AdditionalSpecs/Policies.json, offline): a call naming a type the action does not have is
  a table error, and a call that omits a type the action has only where a request parameter brings it in
  (`PARAMETER_RESOURCE_TYPES`) is checked with it.
- The evaluation (`evaluate`): the principal's identity policies and the resource's policy (bucket, key, topic,
  queue, model package group) from the templates, intrinsic functions resolved to comparable ARNs; explicit Deny
  wins, wildcards, NotAction and NotResource as IAM has them; same account: identity or resource policy; another
  account: both; a KMS key: its key policy always (naming the account delegates to IAM). Conditions are evaluated on
  the keys a call supplies; a condition on any other key makes the answer "cannot tell", which fails too.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html

What it cannot see: service control policies, permission boundaries, session policies, KMS grants made at run time,
policies of resources outside the synthesized app (their assumed behaviour is listed in `EXTERNAL_RESOURCES`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from infra.config.model import RegistryModel
from infra.config.stage import StageConfig

Template = Mapping[str, Any]

# The Service Authorization Reference as cfn-lint bundles it: service -> Actions (action -> Resources: types) and
# Resources (type -> ARNFormats).
POLICIES_JSON = ("data", "AdditionalSpecs", "Policies.json")

# Resource types an action is authorized against only when the request carries a parameter: the Service
# Authorization data lists both types of InvokeEndpoint; the inference component's is checked when the call names
# one (InferenceComponentName). https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html
PARAMETER_RESOURCE_TYPES: dict[tuple[str, str], str] = {
    ("sagemaker:InvokeEndpoint", "inference-component"): "InferenceComponentName",
    ("sagemaker:InvokeEndpointAsync", "inference-component"): "InferenceComponentName",
}

# The botocore operations the deployed code makes, by code root, and the IAM actions each needs (S3 on SSE-KMS
# objects: Decrypt to read, GenerateDataKey to write; https://docs.aws.amazon.com/AmazonS3/latest/userguide/
# UsingKMSEncryption.html). tests/call_recorder.py fails on a recorded operation of deployed code missing here; the
# gate derives the front door's and the manifest function's calls from these entries.
RUNTIME_OPERATIONS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("lambdas/front_door", "sagemaker-runtime", "InvokeEndpoint"): ("sagemaker:InvokeEndpoint",),
    ("lambdas/batch_manifest", "s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("lambdas/batch_manifest", "s3", "GetObject"): ("s3:GetObject", "kms:Decrypt"),
    ("lambdas/batch_manifest", "s3", "PutObject"): ("s3:PutObject", "kms:GenerateDataKey"),
    # The promotion pipeline's smoke test (python -m sagebert smoke in CodeBuild): it assumes the stage's smoke
    # role, reads the API key (api_key stages) and POSTs a signed request (execute-api:Invoke, no botocore call).
    ("sagebert/local/smoke.py", "sts", "AssumeRole"): ("sts:AssumeRole",),
    ("sagebert/local/smoke.py", "apigateway", "GetApiKey"): ("apigateway:GET",),
    # The pipeline's synth step resolves the latest Approved registry version (python -m sagebert resolve-models).
    ("sagebert/release/registry.py", "sagemaker", "ListModelPackages"): ("sagemaker:ListModelPackages",),
    ("sagebert/release/registry.py", "sagemaker", "DescribeModelPackage"): ("sagemaker:DescribeModelPackage",),
}

# The request parameters of deployed code's operations that bring in a resource type, and that the gate's calls
# model (_front_door checks the component's ARN when SAGEBERT_INFERENCE_COMPONENT is set).
MODELED_PARAMETERS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("lambdas/front_door", "sagemaker-runtime", "InvokeEndpoint"): ("InferenceComponentName",),
}

# Operations the developer CLI makes with the developer's own credentials (register, preflight, remote training,
# packaging): no deployed principal makes them, so no synthesized policy has to allow them. Listed so that a new
# operation is classified on purpose, never dropped.
DEVELOPER_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("s3", "GetBucketEncryption"),
        ("s3", "PutObject"),
        ("s3", "HeadObject"),
        ("s3", "GetObject"),
        ("s3", "ListObjectsV2"),
        ("s3", "HeadBucket"),
        ("s3", "CreateMultipartUpload"),
        ("s3", "UploadPart"),
        ("s3", "CompleteMultipartUpload"),
        ("sagemaker", "CreateModelPackage"),
        ("sagemaker", "DescribeModelPackageGroup"),
        ("sagemaker", "ListModelPackages"),
        ("sagemaker", "DescribeModelPackage"),
        ("sagemaker", "UpdateModelPackage"),
        ("sagemaker", "CreateTrainingJob"),
        ("sagemaker", "DescribeTrainingJob"),
        ("sagemaker", "DescribeEndpoint"),
        ("sagemaker", "DescribeEndpointConfig"),
        ("sagemaker", "DescribeInferenceComponent"),
        ("sagemaker", "ListInferenceComponents"),
        ("sagemaker-runtime", "InvokeEndpoint"),
        ("cloudformation", "DescribeStacks"),
        ("sts", "GetCallerIdentity"),
        ("sts", "AssumeRole"),
        ("apigateway", "GetApiKey"),
        ("iam", "GetRole"),
        ("service-quotas", "GetServiceQuota"),
        ("service-quotas", "ListServiceQuotas"),
        ("ecr", "DescribeImages"),
        ("ecr", "BatchGetImage"),
        ("lambda", "GetAccountSettings"),
        ("ssm", "GetParameter"),
    }
)

# Resources outside the app whose resource policy the gate cannot read, and what it assumes of them.
EXTERNAL_RESOURCES: dict[str, str] = {
    # The Deep Learning Containers' registries allow image pulls by every account.
    # https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/sagemaker-algo-docker-registry-paths.html
    "ecr:repository": "AWS's Deep Learning Container repositories allow pulls by any account",
    # The CDK bootstrap asset bucket: its policy only refuses requests without TLS.
    # https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html
    "s3:cdk-assets": "the CDK bootstrap asset bucket's policy denies only requests without TLS",
}

# The role CloudFormation deploys as: the bootstrap's cfn-exec role, AdministratorAccess by default.
# https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html#bootstrapping-customizing
DEPLOY_ROLE = "cdk-hnb659fds-cfn-exec-role"


# --- Service Authorization data ----------------------------------------------------------------------------------


@cache
def _service_authorization() -> dict[str, Any]:
    import cfnlint

    path = Path(cfnlint.__file__).parent.joinpath(*POLICIES_JSON)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def resource_types(action: str) -> list[str] | None:
    """The resource types the Service Authorization data lists for `action` (lower case; [] for actions that take
    only "*"), None when it does not know the action."""
    service, _, name = action.partition(":")
    spec = _service_authorization().get(service.lower(), {}).get("Actions", {}).get(name.lower())
    if spec is None:
        return None
    return [str(t).lower() for t in spec.get("Resources", [])]


def arn_patterns(service: str, resource_type: str) -> list[str]:
    """The ARN formats of a resource type (`${Partition}` etc. and `.*` as the data spells them)."""
    resources = _service_authorization().get(service.lower(), {}).get("Resources", {})
    for name, spec in resources.items():
        if name.lower() == resource_type:
            return [str(f) for f in spec.get("ARNFormats", [])]
    return []


def arn_fits(arn: str, service: str, resource_type: str) -> bool:
    """Whether `arn` has the shape of the resource type's ARN formats (unknown formats fit)."""
    patterns = arn_patterns(service, resource_type)
    if not patterns or arn == "*":
        return True
    for pattern in patterns:
        regex = re.escape(pattern).replace(r"\.\*", ".*")
        regex = re.sub(r"\\\$\\\{[A-Za-z]+\\\}", "[^:]*", regex)
        if re.fullmatch(regex, arn):
            return True
    return False


# --- Policies ------------------------------------------------------------------------------------------------------


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's matching: `*` any run of characters, `?` one character, everything else literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


@dataclass(frozen=True)
class Statement:
    """One policy statement, its values resolved to strings. `where` names its policy for messages."""

    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: tuple[str, ...] | None = None  # resource policies: AWS ARNs/accounts, service names, "*"
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    sid: str = ""
    where: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> Statement:
        principals: tuple[str, ...] | None = None
        if "Principal" in raw:
            principal = raw["Principal"]
            if principal == "*":
                principals = ("*",)
            else:
                principals = tuple(str(p) for values in principal.values() for p in _listed(values))
        conditions = {
            str(op): {str(k): tuple(str(v) for v in _listed(vs)) for k, vs in block.items()}
            for op, block in (raw.get("Condition") or {}).items()
        }
        return cls(
            effect=str(raw.get("Effect", "Allow")),
            actions=tuple(str(a) for a in _listed(raw.get("Action"))),
            not_actions=tuple(str(a) for a in _listed(raw.get("NotAction"))),
            resources=tuple(str(r) for r in _listed(raw.get("Resource")))
            if "Resource" in raw or "NotResource" not in raw
            else ("*",),
            not_resources=tuple(str(r) for r in _listed(raw.get("NotResource"))),
            principals=principals,
            conditions=conditions,
            sid=str(raw.get("Sid", "")),
            where=where,
        )

    @property
    def label(self) -> str:
        return f"{self.where} {self.sid}".strip()

    def matches_action(self, action: str) -> bool:
        if self.not_actions:
            return not any(wildcard_match(a, action, ignore_case=True) for a in self.not_actions)
        return any(wildcard_match(a, action, ignore_case=True) for a in self.actions)

    def matches_resource(self, resource: str) -> bool:
        if self.not_resources:
            return not any(wildcard_match(r, resource) for r in self.not_resources)
        if not self.resources and self.principals:
            return True  # a resource policy without Resource (a role's trust policy) is about its own resource
        return any(r == "*" or wildcard_match(r, resource) for r in self.resources)

    def matches_principal(self, principal: Principal) -> bool:
        """Resource policies: the role itself, its account (arn:...:root or the bare id), "*", or its service."""
        if self.principals is None:
            return True
        for named in self.principals:
            if named == "*" or named == principal.arn or (principal.service is not None and named == principal.service):
                return True
            if principal.account is not None and named in (
                principal.account,
                f"arn:{_partition_of(named)}:iam::{principal.account}:root",
            ):
                return True
        return False

    def names_account_only(self, principal: Principal) -> bool:
        """True when the statement matches the principal through its account (IAM must then allow too)."""
        return (
            self.principals is not None
            and principal.arn not in self.principals
            and "*" not in self.principals
            and (principal.service is None or principal.service not in self.principals)
        )

    def condition(self, context: Mapping[str, tuple[str, ...]]) -> bool | None:
        """True/False for a condition block the context answers; None when it names a key the call does not
        supply (the gate cannot tell)."""
        lowered = {k.lower(): v for k, v in context.items()}
        for operator, block in self.conditions.items():
            for key, expected in block.items():
                result = _condition(operator, lowered.get(key.lower()), expected)
                if result is None or result is False:
                    return result
        return True


def _partition_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 else "aws"


def _condition(operator: str, actual: tuple[str, ...] | None, expected: tuple[str, ...]) -> bool | None:
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists").split(":")[-1]  # ForAnyValue:/ForAllValues: on single values alike
    if op == "Null":
        if actual is None:
            return None
        return (expected[0].lower() == "true") == (len(actual) == 0)
    if actual is None:
        return True if if_exists else None
    if not actual:  # the call supplies the key as absent
        return op.startswith(("StringNot", "ArnNot")) or if_exists
    negate = "Not" in op
    base = op.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        hit = any(a == e for a in actual for e in expected)
    elif base == "StringEqualsIgnoreCase":
        hit = any(a.lower() == e.lower() for a in actual for e in expected)
    elif base in ("StringLike", "ArnLike"):
        hit = any(wildcard_match(e, a) for a in actual for e in expected)
    elif base == "Bool":
        hit = any(a.lower() == e.lower() for a in actual for e in expected)
    else:
        return None  # numeric, date, IP address: no call here supplies those
    return not hit if negate else hit


@dataclass(frozen=True)
class Principal:
    """Who makes a call: a role (arn, account) or a service acting on its own (service, e.g. cloudwatch)."""

    label: str
    arn: str
    account: str | None
    service: str | None = None
    statements: tuple[Statement, ...] = ()


# --- Calls and verdicts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One run-time call: `principal` does `action` on `resource` (of `resource_type`), with `context` the condition
    keys the call supplies; `source` says which template value or config key names the resource."""

    principal: Principal
    action: str
    resource: str
    resource_type: str | None
    source: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    # The ARN the resource's own policy names it by, where the caller names it otherwise (a registry archive in the
    # owner stage's bucket, which the consumer's config names by its literal bucket name).
    policy_resource: str | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    undetermined: bool = False


@dataclass(frozen=True)
class ResourcePolicy:
    """A resource's own policy: `account` owns the resource; `statements` None when the gate cannot read it
    (`assumed` says what it takes instead)."""

    account: str | None
    statements: tuple[Statement, ...] | None
    kms: bool = False
    assumed: str = ""


def evaluate(call: Call, policy: ResourcePolicy | None) -> Verdict:
    """IAM's decision for one call: explicit deny, then identity and resource policy as the accounts require."""
    principal = call.principal
    context = {
        "aws:SecureTransport": ("true",),
        "aws:PrincipalArn": (principal.arn,),
        **({"aws:PrincipalAccount": (principal.account,)} if principal.account else {}),
        **call.context,
    }

    def matching(statements: Iterable[Statement], resource_side: bool) -> list[tuple[Statement, bool | None]]:
        found = []
        for statement in statements:
            if resource_side and not statement.matches_principal(principal):
                continue
            resource = call.policy_resource or call.resource if resource_side else call.resource
            if statement.matches_action(call.action) and statement.matches_resource(resource):
                found.append((statement, statement.condition(context)))
        return found

    identity = matching(principal.statements, resource_side=False)
    resource = matching(policy.statements or (), resource_side=True) if policy is not None else []
    for statement, result in identity + resource:
        if statement.effect == "Deny" and result is True:
            return Verdict(False, f"explicit deny ({statement.label})")
    for statement, result in identity + resource:
        if statement.effect == "Deny" and result is None:
            return Verdict(
                False,
                f"a Deny whose condition the gate cannot evaluate ({statement.label}: {dict(statement.conditions)})",
                undetermined=True,
            )

    def verdict_of(found: list[tuple[Statement, bool | None]]) -> tuple[bool, list[Statement]]:
        allows = [s for s, r in found if s.effect == "Allow" and r is True]
        unknown = [s for s, r in found if s.effect == "Allow" and r is None]
        return bool(allows), unknown

    identity_allows, identity_unknown = verdict_of(identity)
    if principal.service is not None:
        identity_allows, identity_unknown = False, []
    resource_allows_direct = any(
        s.effect == "Allow" and r is True and not s.names_account_only(principal) for s, r in resource
    )
    resource_allows_account = any(
        s.effect == "Allow" and r is True and s.names_account_only(principal) for s, r in resource
    )
    resource_unknown = [s for s, r in resource if s.effect == "Allow" and r is None]
    same_account = policy is None or policy.account is None or policy.account == principal.account
    readable = policy is not None and policy.statements is not None

    def unknown_reason(statements: list[Statement]) -> Verdict:
        labels = "; ".join(f"{s.label}: {dict(s.conditions)}" for s in statements)
        return Verdict(False, f"only allowed under a condition the gate cannot evaluate ({labels})", undetermined=True)

    if policy is not None and policy.kms and readable:
        # A KMS key: the key policy must allow the principal itself, or its account (then IAM must allow too).
        if resource_allows_direct:
            return Verdict(True)
        if resource_allows_account and identity_allows:
            return Verdict(True)
        if resource_allows_account and identity_unknown:
            return unknown_reason(identity_unknown)
        if resource_unknown:
            return unknown_reason(resource_unknown)
        if resource_allows_account:
            return Verdict(False, "the key policy delegates to IAM, and no identity policy statement allows it")
        return Verdict(False, "the key policy allows neither the principal nor its account")
    if same_account:
        if identity_allows or resource_allows_direct:
            return Verdict(True)
        if identity_unknown or resource_unknown:
            return unknown_reason(identity_unknown + resource_unknown)
        if principal.service is not None:
            return Verdict(False, "no statement of the resource policy allows the service principal")
        return Verdict(False, "no identity policy statement allows it")
    # Another account: both sides.
    if not identity_allows:
        if identity_unknown:
            return unknown_reason(identity_unknown)
        if principal.service is None:
            return Verdict(False, "no identity policy statement allows it")
    if not readable:
        assert policy is not None
        if policy.assumed:
            return Verdict(True)
        return Verdict(
            False,
            f"the resource is in account {policy.account}, whose resource policy is not in this app",
            undetermined=True,
        )
    if resource_allows_direct or resource_allows_account:
        return Verdict(True)
    if resource_unknown:
        return unknown_reason(resource_unknown)
    return Verdict(
        False,
        f"the resource policy in account {policy.account if policy else '?'} does not allow it (cross-account calls "
        "need both the identity and the resource policy)",
    )


# --- Templates ---------------------------------------------------------------------------------------------------

# How CloudFormation answers Ref and Fn::GetAtt for the types the gate reads: (type, attribute or "Ref") -> format
# over {partition}, {region}, {account}, {name} (the physical name: its name property, else a generated stand-in),
# {path} (a role's path). https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-template-resource-type-ref.html
_ARNS: dict[str, str] = {
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
        fmt = _ARNS.get(resource["Type"])
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
        return [self.resolve(stack, v) for v in _listed(value)]

    def statements(self, stack: Stack, document: Any, where: str) -> tuple[Statement, ...]:
        """A policy document's statements with every value resolved."""
        if not isinstance(document, dict):
            return ()
        return tuple(Statement.parse(self._deep(stack, raw), where) for raw in _listed(document.get("Statement")))

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
                if resource["Type"] not in _ARNS and resource["Type"] != "AWS::KMS::Key":
                    continue
                if resolved_ref in (self.ref(stack, logical_id), self.arn_of(stack, logical_id)):
                    return stack, logical_id
        return None


# --- The app: principals and resource policies --------------------------------------------------------------------


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
                if kind in _ARNS or kind == "AWS::KMS::Key":
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


# --- The declared run-time calls ----------------------------------------------------------------------------------

# Written out here from the AWS pages cited, never imported from infra/: the gate checks infra's grants against
# what the services do, so a list shared with the grants would only check that the grants equal themselves (the
# VPC and Step Functions logging actions below repeat infra's on purpose).
# Where SageMaker writes container logs and instance metrics as the model's execution role.
# https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/inference-component-logs.html (inference components)
ENDPOINT_LOGS = ("/aws/sagemaker/Endpoints/", "/aws/sagemaker/Endpoints")
COMPONENT_LOGS = ("/aws/sagemaker/InferenceComponents/", "/aws/sagemaker/InferenceComponents")
TRANSFORM_LOGS = ("/aws/sagemaker/TransformJobs", "/aws/sagemaker/TransformJobs")
# What the model role does with its logs: SageMaker's minimum CreateModel policy.
# https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createmodel-perms
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")
IMAGE_ACTIONS = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
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
TRACING_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
SAMPLING_ACTIONS = ("xray:GetSamplingRules", "xray:GetSamplingTargets")
# SageMaker in a VPC: https://docs.aws.amazon.com/sagemaker/latest/dg/host-vpc.html
VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
# A publisher to an SSE-KMS topic or queue needs the key: https://docs.aws.amazon.com/sns/latest/dg/
# sns-key-management.html, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
PUBLISH_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# register's archive layout: <prefix><group>/<16 hex>/model.tar.gz (sagebert/release/registry.py).
REGISTRY_ARCHIVE = "{prefix}{group}/0123456789abcdef/model.tar.gz"


class _Builder:
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


def _s3_arn(partition: str, uri: str) -> str:
    return f"arn:{partition}:s3:::{uri.removeprefix('s3://')}"


def _log_stream(stack: Stack, group: str, stream: str) -> str:
    return f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{group}:log-stream:{stream}"


def _log_group(stack: Stack, group: str) -> str:
    """A group-level call's resource as CloudWatch Logs authorizes it (the group's ARN with its ":*" suffix: a grant
    on log-group:<name> alone does not cover it)."""
    return f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{group}:*"


def _functions(b: _Builder) -> None:
    """The stage's Lambda functions running sagebert code (lambdas/<package>): their RUNTIME_OPERATIONS, their
    log group and X-Ray."""
    for stack, logical_id, props in b.each("AWS::Lambda::Function"):
        handler = str(props.get("Handler", ""))
        code = f"lambdas/{handler.split('.')[0]}"
        operations = [(op, actions) for (root, _, op), actions in RUNTIME_OPERATIONS.items() if root == code]
        if not operations:
            continue  # not sagebert's code (CDK's custom resource providers)
        principal = b.principal(stack, props.get("Role"))
        if principal is None:
            continue
        where = f"{stack.name}/{logical_id}"
        environment = {
            k: b.resolver.resolve(stack, v) for k, v in props.get("Environment", {}).get("Variables", {}).items()
        }
        logs = props.get("LoggingConfig", {}).get("LogGroup")
        if logs is not None:
            group = b.resolver.resolve(stack, logs)
            for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                b.add(principal, action, _log_stream(stack, group, "2026/01/01/[$LATEST]0123"), f"{where} logs")
        if props.get("TracingConfig", {}).get("Mode") == "Active":
            for action in TRACING_ACTIONS:
                b.add(principal, action, "*", f"{where} tracing")
        if code == "lambdas/front_door":
            _front_door(b, stack, principal, environment, where)
        elif code == "lambdas/batch_manifest":
            _batch_manifest(b, principal, where)


def _front_door(b: _Builder, stack: Stack, principal: Principal, environment: Mapping[str, str], where: str) -> None:
    """InvokeEndpoint on SAGEBERT_ENDPOINT_NAME, naming SAGEBERT_INFERENCE_COMPONENT when set
    (lambdas/front_door/proxy.py sends InferenceComponentName then)."""
    endpoint = environment.get("SAGEBERT_ENDPOINT_NAME", "")
    component = environment.get("SAGEBERT_INFERENCE_COMPONENT", "")
    base = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
    parameters = ("EndpointName", "Body", "ContentType", "Accept") + (("InferenceComponentName",) if component else ())
    source = f"{where} SAGEBERT_ENDPOINT_NAME={endpoint}"
    b.add(
        principal,
        "sagemaker:InvokeEndpoint",
        f"{base}:endpoint/{endpoint.lower()}",
        source,
        resource_type="endpoint",
        parameters=parameters,
    )
    if component:
        b.add(
            principal,
            "sagemaker:InvokeEndpoint",
            f"{base}:inference-component/{component.lower()}",
            f"{where} SAGEBERT_INFERENCE_COMPONENT={component} (InvokeEndpoint with InferenceComponentName)",
            resource_type="inference-component",
            parameters=parameters,
        )


def _batch_manifest(b: _Builder, principal: Principal, where: str) -> None:
    """lambdas/batch_manifest: lists and reads a run's input and output, writes _manifest.json beside the output."""
    prefixes = b.batch_prefixes()
    if prefixes is None:
        b.problems.append(f"{b.stage.name}: {where} runs but the stage has no BatchInputPrefix/BatchOutputPrefix")
        return
    bucket, input_prefix, output_prefix = prefixes
    for prefix in (input_prefix, output_prefix):
        b.add(
            principal,
            "s3:ListBucket",
            bucket,
            f"{where} ListObjectsV2 {prefix}",
            context={"s3:prefix": (f"{prefix}2026-01-01/",)},
        )
    b.s3_read(principal, f"{bucket}/{input_prefix}2026-01-01/part-0.jsonl", f"{where} GetObject (input)")
    b.s3_read(principal, f"{bucket}/{output_prefix}2026-01-01/run/part-0.jsonl.out", f"{where} GetObject (output)")
    b.s3_write(principal, f"{bucket}/{output_prefix}2026-01-01/run/_manifest.json", f"{where} PutObject")


def _models(b: _Builder, transform_models: Mapping[str, tuple[Stack, str]]) -> None:
    """Each SageMaker model's execution role: its data (and key), image, logs and metrics wherever it runs (endpoint
    variants, inference components, transform jobs), capture and async I/O, VPC interfaces.
    `transform_models`: model name -> (stack, transform job name prefix) from the state machines."""
    r = b.resolver
    endpoints: dict[str, list[str]] = {}  # endpoint config name -> endpoint names
    for stack, _, props in b.each("AWS::SageMaker::Endpoint"):
        endpoints.setdefault(r.resolve(stack, props.get("EndpointConfigName")), []).append(
            r.resolve(stack, props.get("EndpointName"))
        )
    uses: dict[str, list[tuple[str, str, str, str]]] = {}  # model name -> (log prefix, name, stream, namespace)
    configs: list[tuple[Stack, str, Mapping[str, Any], list[str]]] = []
    for stack, logical_id, props in b.each("AWS::SageMaker::EndpointConfig"):
        names = endpoints.get(r.name_of(stack, logical_id), [])
        configs.append((stack, logical_id, props, names))
        for variant in [*props.get("ProductionVariants", []), *props.get("ShadowProductionVariants", [])]:
            if "ModelName" in variant:
                for endpoint in names:
                    uses.setdefault(r.resolve(stack, variant["ModelName"]), []).append(
                        (ENDPOINT_LOGS[0], endpoint, f"{variant['VariantName']}/i-0123456789abcdef0", ENDPOINT_LOGS[1])
                    )
    for stack, _, props in b.each("AWS::SageMaker::InferenceComponent"):
        model = r.resolve(stack, props.get("Specification", {}).get("ModelName"))
        component = r.resolve(stack, props.get("InferenceComponentName"))
        uses.setdefault(model, []).append(
            (COMPONENT_LOGS[0], component, "copy-0123/i-0123456789abcdef0", COMPONENT_LOGS[1])
        )
    for model, (_, prefix) in transform_models.items():
        uses.setdefault(model, []).append(
            (TRANSFORM_LOGS[0], "", f"{prefix}0123-1/i-0123456789abcdef0-1700000000", TRANSFORM_LOGS[1])
        )
    roles_of_model: dict[str, Principal] = {}
    for stack, logical_id, props in b.each("AWS::SageMaker::Model"):
        principal = b.principal(stack, props.get("ExecutionRoleArn"))
        if principal is None:
            continue
        name = r.name_of(stack, logical_id)
        roles_of_model[name] = principal
        where = f"{stack.name}/{logical_id}"
        container = props.get("PrimaryContainer", {})
        if "ModelDataUrl" in container:
            b.s3_read(
                principal,
                _s3_arn(stack.partition, r.resolve(stack, container["ModelDataUrl"])),
                f"{where} ModelDataUrl",
            )
        if "ModelPackageName" in container:
            _registry_model(b, stack, principal, r.resolve(stack, container["ModelPackageName"]), where)
        if "Image" in container:
            image = r.resolve(stack, container["Image"])
            # <account>.dkr.ecr.<region>.<suffix>/<repository>:<tag>; the account may be a mapping's placeholder
            # ({FindInMap...}, with dots of its own) for an environment-agnostic stack.
            match = re.match(r"^(.+?)\.dkr\.ecr\.([^./]+)\.[^/]+/([^:@]+)", image)
            if match is None:
                b.problems.append(f"{b.stage.name}: {where} Image {image} is no ECR image URI; its pull is not checked")
            else:
                repository = f"arn:{stack.partition}:ecr:{match[2]}:{match[1]}:repository/{match[3]}"
                for action in IMAGE_ACTIONS:
                    b.add(principal, action, repository, f"{where} Image")
                b.add(principal, "ecr:GetAuthorizationToken", "*", f"{where} Image")
        if "VpcConfig" in props:
            for action in VPC_ACTIONS:
                resources = ["*"]
                if action == "ec2:CreateNetworkInterface":
                    base = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}"
                    subnets = r.resolve_list(stack, props["VpcConfig"].get("Subnets"))
                    groups = r.resolve_list(stack, props["VpcConfig"].get("SecurityGroupIds"))
                    resources = [
                        f"{base}:network-interface/*",
                        *(f"{base}:subnet/{s}" for s in subnets),
                        *(f"{base}:security-group/{g}" for g in groups),
                    ]
                for resource in resources:
                    b.add(principal, action, resource, f"{where} VpcConfig")
        for log_prefix, owner, stream, namespace in uses.get(name, []):
            group = f"{log_prefix}{owner}"
            for action in LOG_ACTIONS:
                arn = (
                    _log_group(stack, group)
                    if action == "logs:DescribeLogStreams"
                    else _log_stream(stack, group, stream)
                )
                b.add(principal, action, arn, f"{where} logs of {owner or 'its transform jobs'}")
            b.add(
                principal,
                "cloudwatch:PutMetricData",
                "*",
                f"{where} instance metrics of {owner or 'transforms'}",
                context={"cloudwatch:namespace": (namespace,)},
            )
    # Capture and async I/O, as the role of every model the endpoint config serves.
    for stack, logical_id, props, names in configs:
        where = f"{stack.name}/{logical_id}"
        served = [
            roles_of_model[m]
            for v in props.get("ProductionVariants", []) + props.get("ShadowProductionVariants", [])
            if (m := r.resolve(stack, v.get("ModelName"))) in roles_of_model
        ]
        capture = props.get("DataCaptureConfig")
        asynchronous = props.get("AsyncInferenceConfig")
        for principal in served:
            if capture is not None:
                uri = r.resolve(stack, capture["DestinationS3Uri"]).rstrip("/")
                key = r.resolve(stack, capture["KmsKeyId"]) if "KmsKeyId" in capture else None
                for endpoint in names:
                    b.s3_write(
                        principal,
                        _s3_arn(stack.partition, f"{uri}/{endpoint}/AllTraffic/2026/01/01/00/x.jsonl"),
                        f"{where} DataCaptureConfig",
                        key=key,
                    )
            if asynchronous is not None:
                output = asynchronous.get("OutputConfig", {})
                key = r.resolve(stack, output["KmsKeyId"]) if "KmsKeyId" in output else None
                for path in ("S3OutputPath", "S3FailurePath"):
                    if path in output:
                        uri = r.resolve(stack, output[path]).rstrip("/")
                        b.s3_write(principal, _s3_arn(stack.partition, f"{uri}/0123.out"), f"{where} {path}", key=key)
                for topic_key in ("SuccessTopic", "ErrorTopic"):
                    topic = output.get("NotificationConfig", {}).get(topic_key)
                    if topic is not None:
                        _publish(b, principal, r.resolve(stack, topic), f"{where} {topic_key}")
                if b.stage.async_input_prefix is not None and "S3OutputPath" in output:
                    bucket = r.resolve(stack, output["S3OutputPath"]).removeprefix("s3://").split("/", 1)[0]
                    b.s3_read(
                        principal,
                        _s3_arn(stack.partition, f"{bucket}/{b.stage.async_input_prefix}0123.json"),
                        f"{where} async input (endpoint.async_inference.input_prefix)",
                    )


def _registry_model(b: _Builder, stack: Stack, principal: Principal, package: str, where: str) -> None:
    """A model on a registry package: the deploying account's CloudFormation creates it from the package (another
    account's group must let it: SageMaker guide, "Deploy a model version from a different account",
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-deploy-xaccount.html), and the model role reads
    the archive register uploaded, encrypted with the owner stage's key."""
    match = re.match(r"^arn:[^:]+:sagemaker:[^:]*:([^:]*):model-package/([^/]+)/", package)
    if match is None:
        b.problems.append(f"{b.stage.name}: {where} ModelPackageName {package} is not a model package version ARN")
        return
    owner_account, group = match[1], match[2]
    deployer = Principal(
        label=f"{b.stage.name} CloudFormation ({DEPLOY_ROLE}, AdministratorAccess)",
        arn=f"arn:{stack.partition}:iam::{stack.account}:role/{DEPLOY_ROLE}-{stack.account}-{stack.region}",
        account=stack.account,
        statements=(
            Statement("Allow", actions=("*",), resources=("*",), sid="AdministratorAccess", where="CDK bootstrap"),
        ),
    )
    b.calls.append(
        Call(deployer, "sagemaker:CreateModel", package, "model-package", f"{where} ModelPackageName (deploy time)")
    )
    source = next((s for s in b.stage.registry_sources if s.group == group), None)
    if source is None:
        b.problems.append(f"{b.stage.name}: {where} deploys group {group}, which the stage config does not name")
        return
    owner_stage = b.app.groups.get((owner_account, group))
    archive = REGISTRY_ARCHIVE.format(prefix=source.model_data_prefix.removeprefix("s3://"), group=group)
    literal = _s3_arn(stack.partition, archive)
    policy_object: str | None = None
    key = source.kms_key_arn
    if owner_stage is not None:
        prefix = b.app.stages[[s.name for s in b.app.stages].index(owner_stage)]
        owner = _Builder(b.app, prefix).output("RegistryModelDataPrefix")
        if owner is not None:
            policy_object = _s3_arn(
                stack.partition,
                archive.replace(archive.split("/", 1)[0], owner.removeprefix("s3://").split("/", 1)[0], 1),
            )
    b.add(
        principal,
        "s3:GetObject",
        literal,
        f"{where} registry archive under model.model_data_prefix",
        policy_resource=policy_object,
    )
    owner_key = b.app.bucket_keys.get((policy_object or literal).split("/", 1)[0])
    if key is None and owner_key is None:
        b.problems.append(
            f"{b.stage.name}: {where} deploys registry group {group} without model.kms_key_arn: register encrypts the "
            "archive with the owner stage's KMS key (SSE-KMS), and the model role may not decrypt it. Set "
            "model.kms_key_arn to the owner stage's key ARN."
        )
        return
    context = {"kms:ViaService": (f"s3.{stack.region}.amazonaws.com",)}
    b.add(
        principal,
        "kms:Decrypt",
        key or owner_key or "",
        f"{where} registry archive's key (the owner stage's key"
        + ("" if key else "; model.kms_key_arn is not set")
        + ")",
        context=context,
        policy_resource=owner_key if key and owner_key else None,
    )


def _publish(
    b: _Builder, principal: Principal, topic: str, source: str, context: Mapping[str, tuple[str, ...]] | None = None
) -> None:
    b.add(principal, "sns:Publish", topic, source, context=context)
    key = b.app.topic_keys.get(topic)
    if key is not None:
        for action in PUBLISH_KEY_ACTIONS:
            b.add(principal, action, key, f"{source}: the topic's KMS key", context=context)


def _state_machines(b: _Builder) -> dict[str, tuple[Stack, str]]:
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
    b: _Builder,
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
        _publish(b, principal, str(arguments.get("TopicArn")), where)
    elif integration.startswith("lambda:invoke"):
        function = str(arguments.get("FunctionName"))
        b.add(principal, "lambda:InvokeFunction", function, where)
    else:
        b.problems.append(
            f"{b.stage.name}: {where} calls {resource}, which has no entry in the authorization gate's task table "
            "(sagebert/checks/authorization.py _task): add the calls that integration makes as the role"
        )


def _literal_prefix(jsonata: str, assigned: Mapping[str, Any]) -> str:
    """The literal start of a JSONata job name ("{% 'sagebert-dev-' & ... %}" -> "sagebert-dev-"), through a
    variable the definition assigns ("{% $jobName %}")."""
    variable = re.fullmatch(r"\{%\s*\$(\w+)\s*%\}", jsonata)
    if variable is not None and variable[1] in assigned:
        jsonata = str(assigned[variable[1]])
    match = re.match(r"^\{%\s*'([^']*)'", jsonata)
    return match[1] if match else jsonata


def _transform_io(b: _Builder, stack: Stack, model: str, arguments: Mapping[str, Any], where: str) -> None:
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


def _schedules(b: _Builder) -> None:
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


def _alarms(b: _Builder) -> None:
    """An alarm notifying an SNS topic: CloudWatch publishes as its service principal, so the topic policy (and an
    encrypted topic's key policy) must allow it. https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
    AlarmThatSendsEmail.html#alarms-and-encryption"""
    r = b.resolver
    for stack, logical_id, props in b.each("AWS::CloudWatch::Alarm"):
        alarm = r.arn_of(stack, logical_id)
        service = Principal(
            label=f"cloudwatch.amazonaws.com (alarm {stack.name}/{logical_id})",
            arn="cloudwatch.amazonaws.com",
            account=stack.account,
            service="cloudwatch.amazonaws.com",
        )
        context = {"aws:SourceArn": (alarm,), "aws:SourceAccount": (stack.account,)}
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in r.resolve_list(stack, props.get(key)):
                if ":sns:" in action:
                    _publish(b, service, action, f"{stack.name}/{logical_id} {key}", context=context)


# The promotion pipeline's own run-time calls (infra/pipeline.py), from its CodeBuild projects: a smoke test runs
# `python -m sagebert smoke --role-arn "$SMOKE_ROLE_ARN"` as its runner role, which assumes the stage account's
# smoke-test role (sts:AssumeRole: the runner's policy and the role's trust policy) and, as that role, POSTs a signed
# request to the stage's ApiUrl (execute-api:Invoke) or reads its API key (apigateway:GET on /apikeys/<id>); the
# synth step runs `resolve-models --stage S`, reading S's registry group and versions (ListModelPackages,
# DescribeModelPackage), across accounts through the group's resource policy.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-invoke-api.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram.html
SMOKE_ROLE_VARIABLE = "SMOKE_ROLE_ARN"
RESOLVE_COMMAND = re.compile(r"resolve-models --stage (\S+)")
API_URL = re.compile(r"^https://(.+?)\.execute-api\.([^./]+)\.[^/]+/([^/]+)(/.*)$")


def _account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def _stage_named(b: _Builder, stage: str) -> StageInput | None:
    """The pipeline's copy of stage `stage` (SageBert-Pipeline/Promotion/SageBert-<stage>: the stacks the pipeline
    deploys), else the app's own stage."""
    copies = [s for s in b.app.stages if s.name.endswith(f"/SageBert-{stage}")]
    own = [s for s in b.app.stages if s.name == f"SageBert-{stage}"]
    return (copies + own)[0] if copies + own else None


def _pipeline(b: _Builder) -> None:
    for stack, logical_id, props in b.each("AWS::CodeBuild::Project"):
        where = f"{stack.name}/{logical_id}"
        spec = props.get("Source", {}).get("BuildSpec")
        commands: list[str] = []
        if isinstance(spec, str) and spec.lstrip().startswith("{"):
            phases = json.loads(spec).get("phases", {})
            commands = [str(c) for phase in phases.values() for c in phase.get("commands", [])]
        variables = {
            v["Name"]: b.resolver.resolve(stack, v["Value"])
            for v in props.get("Environment", {}).get("EnvironmentVariables", [])
        }
        resolving = [m[1] for c in commands for m in RESOLVE_COMMAND.finditer(c)]
        if SMOKE_ROLE_VARIABLE not in variables and not resolving:
            continue
        runner = b.principal(stack, props.get("ServiceRole"))
        if runner is None:
            continue
        if SMOKE_ROLE_VARIABLE in variables:
            _smoke_test(b, runner, variables[SMOKE_ROLE_VARIABLE], where)
        for stage in resolving:
            _resolve_models(b, runner, stage, where)


def _smoke_test(b: _Builder, runner: Principal, role_arn: str, where: str) -> None:
    b.add(
        runner,
        "sts:AssumeRole",
        role_arn,
        f"{where} {SMOKE_ROLE_VARIABLE}",
        context={"aws:PrincipalArn": (runner.arn,)},
    )
    role = b.app.roles.get(role_arn)
    stage = _stage_named(b, role_arn.rsplit("/", 1)[-1].removeprefix("sagebert-smoke-test-"))
    if role is None or stage is None:
        b.problems.append(f"{b.stage.name}: {where} assumes {role_arn}, which is not in the synthesized app")
        return
    for stack in stage.stacks:
        outputs = stack.template.get("Outputs", {})
        if "ApiUrl" not in outputs:
            continue
        resolver = b.app.resolvers[stage.name]
        source = f"{where} smoke test of {stage.name}/{stack.name}"
        if "ApiKeyId" in outputs:
            key_id = resolver.resolve(stack, outputs["ApiKeyId"]["Value"])
            key = f"arn:{stack.partition}:apigateway:{stack.region}::/apikeys/{key_id}"
            b.add(role, "apigateway:GET", key, f"{source} (GetApiKey)", resource_type="apikey")
            continue
        url = API_URL.match(resolver.resolve(stack, outputs["ApiUrl"]["Value"]))
        if url is None:
            b.problems.append(f"{b.stage.name}: {source}: ApiUrl is not an execute-api URL")
            continue
        api, region, api_stage, path = url.groups()
        invoke = f"arn:{stack.partition}:execute-api:{region}:{stack.account}:{api}/{api_stage}/POST{path}"
        b.add(role, "execute-api:Invoke", invoke, f"{source} (POST ApiUrl)")


def _resolve_models(b: _Builder, runner: Principal, stage_name: str, where: str) -> None:
    stage = _stage_named(b, stage_name)
    if stage is None:
        b.problems.append(f"{b.stage.name}: {where} resolves stage {stage_name}, which is not in the synthesized app")
        return
    resolver = b.app.resolvers[stage.name]
    for stack in stage.stacks:
        for resource in stack.resources.values():
            if resource["Type"] != "AWS::SageMaker::Model":
                continue
            package = resource.get("Properties", {}).get("PrimaryContainer", {}).get("ModelPackageName")
            if package is None:
                continue
            arn = resolver.resolve(stack, package)
            group = re.sub(r":model-package/([^/]+)/[^/]+$", r":model-package-group/\1", arn)
            source = f"{where} resolve-models --stage {stage_name}"
            b.add(runner, "sagemaker:ListModelPackages", group, source, resource_type="model-package-group")
            b.add(runner, "sagemaker:DescribeModelPackage", arn, source)


# --- The gate ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Denied:
    stage: str
    call: Call
    verdict: Verdict

    def __str__(self) -> str:
        context = "".join(
            f" with {key}={','.join(values)}" for key, values in self.call.context.items() if not key.startswith("aws:")
        )
        return (
            f"{self.stage}: {self.call.principal.label} may not {self.call.action} on {self.call.resource}{context} "
            f"({self.call.source}): {self.verdict.reason}"
        )


@dataclass(frozen=True)
class Unused:
    principal: str
    statement: str
    action: str
    resource: str


@dataclass
class Report:
    calls: list[tuple[str, Call]] = field(default_factory=list)
    denied: list[Denied] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unused: list[Unused] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [str(d) for d in self.denied] + self.problems

    @property
    def principals(self) -> int:
        return len({call.principal.label for _, call in self.calls})

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": [
                {
                    "stage": stage,
                    "principal": c.principal.label,
                    "action": c.action,
                    "resource": c.resource,
                    "resource_type": c.resource_type,
                    "source": c.source,
                }
                for stage, c in self.calls
            ],
            "failures": self.failures,
            "unused_grants": [u.__dict__ for u in self.unused],
        }


def stage_calls(app: App, stage: StageInput) -> tuple[list[Call], list[str]]:
    """The declared run-time calls of one stage, and what the table could not model."""
    b = _Builder(app, stage)
    _functions(b)
    transform_models = _state_machines(b)
    _models(b, transform_models)
    _schedules(b)
    _alarms(b)
    _pipeline(b)
    for call in b.calls:
        b.problems += _table_errors(stage.name, call)
    return b.calls, b.problems


# Resource types the SageMaker guide authorizes an action against beyond the Service Authorization data's: CreateModel
# from a package checks the package (https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-deploy-xaccount.html),
# ListModelPackages of another account's group checks the group (its resource policy's example,
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram.html).
EXTRA_RESOURCE_TYPES = {
    ("sagemaker:CreateModel", "model-package"),
    ("sagemaker:ListModelPackages", "model-package-group"),
}


def _table_errors(stage: str, call: Call) -> list[str]:
    """A call must name a resource type the Service Authorization data lists for its action (or none for "*"
    actions), and every type it lists unless a request parameter brings that type in."""
    types = resource_types(call.action) or []
    if (call.action, call.resource_type) in EXTRA_RESOURCE_TYPES:
        return []
    if call.resource == "*" or not types:
        return []
    if call.resource_type not in types:
        return [
            f"{stage}: {call.action} on {call.resource} ({call.source}): resource type {call.resource_type} is "
            f"not one the Service Authorization data lists for it ({', '.join(types)})"
        ]
    return []


def check(stages: Sequence[StageInput]) -> Report:
    """Every stage's declared calls, evaluated against the app's synthesized policies; and the converse, identity
    grants of the same principals that no call uses."""
    app = App(stages)
    report = Report()
    for stage in stages:
        calls, problems = stage_calls(app, stage)
        report.problems += problems
        for call in calls:
            report.calls.append((stage.name, call))
            policy: ResourcePolicy | None
            if call.action == "sts:AssumeRole":
                # A role's trust policy is the resource policy of AssumeRole; a role outside the app is unknown.
                policy = app.trust.get(call.resource, ResourcePolicy(_account_of(call.resource), None))
            else:
                policy = None if call.resource == "*" else app.policy_for(call.policy_resource or call.resource)
            verdict = evaluate(call, policy)
            if not verdict.allowed:
                report.denied.append(Denied(stage.name, call, verdict))
        report.problems += _component_coverage(stage.name, calls)
    report.unused = unused_grants([c for _, c in report.calls])
    return report


def _component_coverage(stage: str, calls: Sequence[Call]) -> list[str]:
    """A call that sends a parameter which brings in a resource type (InferenceComponentName) must be checked on
    that type too."""
    problems = []
    for call in calls:
        for (action, resource_type), parameter in PARAMETER_RESOURCE_TYPES.items():
            if call.action != action or parameter not in call.parameters:
                continue
            if not any(
                c.principal == call.principal and c.action == action and c.resource_type == resource_type for c in calls
            ):
                problems.append(
                    f"{stage}: {call.principal.label} {action} sends {parameter}, but no call checks "
                    f"its {resource_type} resource"
                )
    return sorted(set(problems))


def unused_grants(calls: Sequence[Call]) -> list[Unused]:
    """Identity Allow statements (action, resource) of the calling principals that no declared call uses."""
    by_principal: dict[str, tuple[Principal, list[Call]]] = {}
    for call in calls:
        if call.principal.service is None:
            by_principal.setdefault(call.principal.arn, (call.principal, []))[1].append(call)
    unused = []
    for principal, own in by_principal.values():
        for statement in principal.statements:
            if statement.effect != "Allow" or statement.not_actions or statement.sid == "AdministratorAccess":
                continue
            for action in statement.actions:
                for resource in statement.resources or ("*",):
                    if not any(
                        wildcard_match(action, c.action, ignore_case=True)
                        and (resource == "*" or wildcard_match(resource, c.resource))
                        for c in own
                    ):
                        unused.append(Unused(principal.label, statement.label, action, resource))
    return unused


def summary(report: Report, stages: int) -> str:
    return (
        f"authorization: {len(report.calls)} run-time calls of {report.principals} principals allowed by the "
        f"synthesized policies ({stages} stages); {len(report.unused)} grants no declared call uses"
    )


# --- Reading a synthesized app -------------------------------------------------------------------------------------


def stage_facts(config: StageConfig) -> tuple[tuple[RegistrySource, ...], str | None]:
    """What a stage's calls need from its config: registry sources (archive prefix and key), the async input
    prefix."""
    sources = tuple(
        RegistrySource(source.group, source.model_data_prefix, source.kms_key_arn)
        for _, source in config.model_sources()
        if isinstance(source, RegistryModel)
    )
    asynchronous = config.endpoint.async_inference
    return sources, asynchronous.input_prefix if asynchronous is not None else None


def _stacks(directory: Path, manifest: Mapping[str, Any]) -> list[Stack]:
    """The CloudFormation stacks of one cloud assembly manifest, with their environments."""
    stacks = []
    for stack_id, stack in sorted(manifest.get("artifacts", {}).items()):
        if stack["type"] != "aws:cloudformation:stack":
            continue
        account, region = (
            stack.get("environment", "aws://unknown-account/unknown-region").removeprefix("aws://").split("/")
        )
        known = not region.startswith("unknown")
        stacks.append(
            Stack(
                name=str(stack.get("displayName", stack_id)).split("/")[-1],
                template=json.loads((directory / stack["properties"]["templateFile"]).read_text(encoding="utf-8")),
                account="{Account}" if account.startswith("unknown") else account,
                region=region if known else "{Region}",
                partition=("aws-cn" if region.startswith("cn-") else "aws") if known else "{Partition}",
                stack_name=str(stack["properties"].get("stackName", stack_id)),
            )
        )
    return stacks


# The top-level stacks of the app (the promotion pipeline's, when enabled), checked as one more "stage".
TOP_LEVEL = "(top-level stacks)"


def read_stages(outdir: Path, configs: Mapping[str, StageConfig]) -> list[StageInput]:
    """The stages of a synthesized cloud assembly (cdk.out) with their environments, and each stage's config facts
    (`configs` by stage name without the SageBert- prefix; a stage without one gets none); the top-level stacks
    (the promotion pipeline) as one more, TOP_LEVEL."""
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    stages = []
    for artifact_id, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        # SageBert-dev, or SageBert-Pipeline/Promotion/SageBert-dev for the promotion pipeline's copy of it.
        name = artifact["properties"].get("displayName") or artifact_id.removeprefix("assembly-")
        stage_dir = outdir / artifact["properties"]["directoryName"]
        stacks = _stacks(stage_dir, json.loads((stage_dir / "manifest.json").read_text(encoding="utf-8")))
        config = configs.get(name.split("/")[-1].split("-", 1)[-1])
        sources, async_prefix = stage_facts(config) if config is not None else ((), None)
        stages.append(StageInput(name, stacks, sources, async_prefix))
    top = _stacks(outdir, manifest)
    if top:
        stages.append(StageInput(TOP_LEVEL, top))
    return stages
