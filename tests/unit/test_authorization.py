"""The authorization gate's evaluator on hand-written policies (Deny, NotAction, NotResource, wildcards, conditions,
cross-account, KMS key policies), and the classes of deploy failure it exists for, each on a small hand-built
template that has the defect: a front door naming an inference component it may not invoke (A2), a consumer account
whose model package group policy does not allow CreateModel (A3), a registry model whose archive key the role may not
use (A5), an inference component's logs and metrics outside the model role's grants (A6)."""

from __future__ import annotations

from typing import Any

import pytest

from sagebert.checks import authorization as auth
from sagebert.checks.authorization import Call, Principal, ResourcePolicy, Stack, StageInput, Statement

ACCOUNT, OTHER, REGION = "111111111111", "222222222222", "eu-west-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app/worker"
OBJECT = "arn:aws:s3:::bucket/data/part-0"


def statement(**raw: Any) -> Statement:
    return Statement.parse({"Effect": "Allow", **raw}, "test")


def role(*statements: Statement, arn: str = ROLE, account: str = ACCOUNT) -> Principal:
    return Principal("worker", arn, account, statements=statements)


def call(principal: Principal, action: str = "s3:GetObject", resource: str = OBJECT, **context: str) -> Call:
    return Call(principal, action, resource, None, "test", {k.replace("_", ":", 1): (v,) for k, v in context.items()})


def test_wildcards_match_as_iam_does() -> None:
    assert auth.wildcard_match("arn:aws:s3:::bucket/data/*", OBJECT)
    assert auth.wildcard_match("arn:aws:s3:::bucket/dat?/part-0", OBJECT)
    assert not auth.wildcard_match("arn:aws:s3:::bucket/other/*", OBJECT)
    assert auth.wildcard_match("S3:Get*", "s3:GetObject", ignore_case=True)


def test_identity_allow_and_no_statement() -> None:
    allowed = role(statement(Action="s3:GetObject", Resource="arn:aws:s3:::bucket/data/*"))
    assert auth.evaluate(call(allowed), ResourcePolicy(ACCOUNT, ())).allowed
    verdict = auth.evaluate(call(allowed, "s3:PutObject"), ResourcePolicy(ACCOUNT, ()))
    assert not verdict.allowed and "no identity policy statement" in verdict.reason


def test_explicit_deny_wins_over_allow() -> None:
    principal = role(
        statement(Action="s3:*", Resource="*"),
        statement(Effect="Deny", Action="s3:GetObject", Resource="arn:aws:s3:::bucket/*", Sid="NoReads"),
    )
    verdict = auth.evaluate(call(principal), None)
    assert not verdict.allowed and "explicit deny" in verdict.reason and "NoReads" in verdict.reason


def test_not_action_and_not_resource() -> None:
    everything_but_puts = role(statement(NotAction="s3:Put*", Resource="*"))
    assert auth.evaluate(call(everything_but_puts), None).allowed
    assert not auth.evaluate(call(everything_but_puts, "s3:PutObject"), None).allowed
    outside_secret = role(statement(Action="s3:GetObject", NotResource="arn:aws:s3:::bucket/secret/*"))
    assert auth.evaluate(call(outside_secret), None).allowed
    assert not auth.evaluate(call(outside_secret, resource="arn:aws:s3:::bucket/secret/x"), None).allowed


def test_conditions_on_keys_the_call_supplies_and_unknown_ones() -> None:
    metrics = role(
        statement(
            Action="cloudwatch:PutMetricData",
            Resource="*",
            Condition={"StringEquals": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints"]}},
        )
    )
    assert auth.evaluate(
        call(metrics, "cloudwatch:PutMetricData", "*", cloudwatch_namespace="/aws/sagemaker/Endpoints"), None
    ).allowed
    outside = auth.evaluate(
        call(metrics, "cloudwatch:PutMetricData", "*", cloudwatch_namespace="/aws/sagemaker/InferenceComponents"), None
    )
    assert not outside.allowed and not outside.undetermined
    # A key the call does not supply: the gate cannot tell, and says so instead of passing.
    unknown = auth.evaluate(call(metrics, "cloudwatch:PutMetricData", "*"), None)
    assert not unknown.allowed and unknown.undetermined and "cannot evaluate" in unknown.reason
    # A Deny on TLS never applies to the SDK's calls (aws:SecureTransport is true).
    tls = ResourcePolicy(
        ACCOUNT,
        (
            statement(
                Effect="Deny",
                Principal={"AWS": "*"},
                Action="s3:*",
                Resource="*",
                Condition={"Bool": {"aws:SecureTransport": "false"}},
            ),
        ),
    )
    assert auth.evaluate(call(role(statement(Action="s3:GetObject", Resource="*"))), tls).allowed


def test_cross_account_needs_both_sides() -> None:
    consumer = role(statement(Action="s3:GetObject", Resource="*"), arn=f"arn:aws:iam::{OTHER}:role/r", account=OTHER)
    no_share = ResourcePolicy(ACCOUNT, ())
    verdict = auth.evaluate(call(consumer), no_share)
    assert not verdict.allowed and "cross-account" in verdict.reason
    shared = ResourcePolicy(
        ACCOUNT,
        (
            statement(
                Principal={"AWS": f"arn:aws:iam::{OTHER}:root"}, Action="s3:GetObject", Resource="arn:aws:s3:::bucket/*"
            ),
        ),
    )
    assert auth.evaluate(call(consumer), shared).allowed
    # The resource policy alone is not enough from another account.
    assert not auth.evaluate(call(role(arn=f"arn:aws:iam::{OTHER}:role/r", account=OTHER)), shared).allowed
    # A principal ARN condition on the share: evaluated on the caller's ARN.
    by_path = ResourcePolicy(
        ACCOUNT,
        (
            statement(
                Principal={"AWS": OTHER},
                Action="s3:GetObject",
                Resource="*",
                Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/x/*"}},
            ),
        ),
    )
    assert not auth.evaluate(call(consumer), by_path).allowed


def test_a_key_policy_is_always_needed() -> None:
    decrypt = role(statement(Action="kms:Decrypt", Resource="*"))
    key = "arn:aws:kms:eu-west-1:111111111111:key/k"
    root = statement(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Action="kms:*", Resource="*")
    assert auth.evaluate(call(decrypt, "kms:Decrypt", key), ResourcePolicy(ACCOUNT, (root,), kms=True)).allowed
    # The account delegates to IAM: without an identity statement, no.
    verdict = auth.evaluate(call(role(), "kms:Decrypt", key), ResourcePolicy(ACCOUNT, (root,), kms=True))
    assert not verdict.allowed and "delegates to IAM" in verdict.reason
    # A key policy that names neither the role nor its account refuses even with an identity statement.
    verdict = auth.evaluate(call(decrypt, "kms:Decrypt", key), ResourcePolicy(ACCOUNT, (), kms=True))
    assert not verdict.allowed and "key policy" in verdict.reason


def test_the_service_authorization_data_is_read() -> None:
    assert auth.resource_types("sagemaker:InvokeEndpoint") == ["endpoint", "inference-component"]
    assert auth.resource_types("ecr:GetAuthorizationToken") == []
    assert auth.resource_types("sagemaker:NoSuchAction") is None
    assert auth.arn_fits("arn:aws:logs:eu-west-1:1:log-group:/x:log-stream:y", "logs", "log-stream")


# --- The defect classes, each on a small template ------------------------------------------------------------------


def _stage(name: str, templates: dict[str, dict[str, Any]], account: str = ACCOUNT, **facts: Any) -> StageInput:
    stacks = [
        Stack(stack, template, account, REGION, "aws", f"{name}-{stack}") for stack, template in templates.items()
    ]
    return StageInput(name, stacks, **facts)


def _role(path: str = "/", service: str = "sagemaker.amazonaws.com") -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Path": path,
            "AssumeRolePolicyDocument": {
                "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
            },
        },
    }


def _policy(role_id: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {"Roles": [{"Ref": role_id}], "PolicyDocument": {"Statement": list(statements)}},
    }


def _arn(service: str, resource: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, f":{service}:", {"Ref": "AWS::Region"}, f":{account}:{resource}"],
        ]
    }


def _serving(*, component_logs: bool) -> dict[str, Any]:
    """An endpoint serving its model as an inference component; the model role writes the Endpoints log group and
    metrics only (component_logs=False), or the component's too."""
    logs = [_arn("logs", "log-group:/aws/sagemaker/Endpoints/ep:*")]
    namespaces = ["/aws/sagemaker/Endpoints"]
    if component_logs:
        logs.append(_arn("logs", "log-group:/aws/sagemaker/InferenceComponents/ep:*"))
        namespaces.append("/aws/sagemaker/InferenceComponents")
    return {
        "Resources": {
            "Role": _role(),
            "Policy": _policy(
                "Role",
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": logs,
                },
                {
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": namespaces}},
                },
            ),
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {"ExecutionRoleArn": {"Fn::GetAtt": ["Role", "Arn"]}, "PrimaryContainer": {}},
            },
            "Config": {
                "Type": "AWS::SageMaker::EndpointConfig",
                "Properties": {
                    "ExecutionRoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "ProductionVariants": [{"VariantName": "AllTraffic", "InstanceType": "ml.c6i.large"}],
                },
            },
            "Endpoint": {
                "Type": "AWS::SageMaker::Endpoint",
                "Properties": {
                    "EndpointName": "ep",
                    "EndpointConfigName": {"Fn::GetAtt": ["Config", "EndpointConfigName"]},
                },
            },
            "Component": {
                "Type": "AWS::SageMaker::InferenceComponent",
                "Properties": {
                    "InferenceComponentName": "ep",
                    "EndpointName": {"Fn::GetAtt": ["Endpoint", "EndpointName"]},
                    "Specification": {"ModelName": {"Fn::GetAtt": ["Model", "ModelName"]}},
                },
            },
        }
    }


def _front_door(*, component_grant: bool) -> dict[str, Any]:
    resources: list[Any] = [{"Ref": "Endpoint"}]
    if component_grant:
        resources.append(_arn("sagemaker", "inference-component/ep"))
    return {
        "Resources": {
            "FunctionRole": _role(service="lambda.amazonaws.com"),
            "FunctionPolicy": _policy(
                "FunctionRole", {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": resources}
            ),
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "front_door.handler.lambda_handler",
                    "Role": {"Fn::GetAtt": ["FunctionRole", "Arn"]},
                    "Environment": {
                        "Variables": {"SAGEBERT_ENDPOINT_NAME": "ep", "SAGEBERT_INFERENCE_COMPONENT": "ep"}
                    },
                },
            },
        }
    }


def _with_endpoint(front_door: dict[str, Any], serving: dict[str, Any]) -> dict[str, Any]:
    merged = {"Resources": {**serving["Resources"], **front_door["Resources"]}}
    return merged


def test_a2_a_front_door_naming_a_component_needs_the_component_arn() -> None:
    broken = auth.check(
        [_stage("dev", {"App": _with_endpoint(_front_door(component_grant=False), _serving(component_logs=True))})]
    )
    (failure,) = broken.failures
    assert "sagemaker:InvokeEndpoint on arn:aws:sagemaker:eu-west-1:111111111111:inference-component/ep" in failure
    assert "SAGEBERT_INFERENCE_COMPONENT" in failure and "no identity policy statement" in failure
    fixed = auth.check(
        [_stage("dev", {"App": _with_endpoint(_front_door(component_grant=True), _serving(component_logs=True))})]
    )
    assert fixed.failures == []


def test_a6_a_component_logs_and_publishes_metrics_under_its_own_names() -> None:
    broken = auth.check([_stage("dev", {"Serving": _serving(component_logs=False)})])
    text = "\n".join(broken.failures)
    assert (
        "logs:PutLogEvents on arn:aws:logs:eu-west-1:111111111111:log-group:/aws/sagemaker/InferenceComponents/ep"
        in text
    )
    assert "cloudwatch:PutMetricData on * with cloudwatch:namespace=/aws/sagemaker/InferenceComponents" in text
    assert auth.check([_stage("dev", {"Serving": _serving(component_logs=True)})]).failures == []


GROUP = "models"
PREFIX = "s3://owner-artifacts/registry/"


def _owner(*, create_model: bool) -> dict[str, Any]:
    """The registry owner: bucket with its key, the group shared with OTHER (Describe/List, and CreateModel when
    `create_model`), and the archive share to OTHER's model roles."""
    actions = ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]
    if create_model:
        actions.append("sagemaker:CreateModel")
    roles = {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{OTHER}:role/sagebert/*/serving/*"}}
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                "Action": "kms:*",
                                "Resource": "*",
                            },
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
                                "Action": "kms:Decrypt",
                                "Resource": "*",
                                "Condition": {
                                    **roles,
                                    "StringEquals": {
                                        "kms:ViaService": {
                                            "Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
                                        }
                                    },
                                },
                            },
                        ]
                    }
                },
            },
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
                                }
                            }
                        ]
                    }
                },
            },
            "BucketPolicy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Bucket"},
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
                                "Action": "s3:GetObject",
                                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/registry/*"]]},
                                "Condition": roles,
                            }
                        ]
                    },
                },
            },
            "Group": {
                "Type": "AWS::SageMaker::ModelPackageGroup",
                "Properties": {
                    "ModelPackageGroupName": GROUP,
                    "ModelPackageGroupPolicy": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": [f"arn:aws:iam::{OTHER}:root"]},
                                "Action": actions,
                                "Resource": [
                                    _arn("sagemaker", f"model-package-group/{GROUP}"),
                                    _arn("sagemaker", f"model-package/{GROUP}/*"),
                                ],
                            }
                        ]
                    },
                },
            },
        },
        "Outputs": {
            "RegistryModelDataPrefix": {"Value": {"Fn::Join": ["", ["s3://", {"Ref": "Bucket"}, "/registry/"]]}}
        },
    }


def _consumer(*, decrypt: str | None) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::owner-artifacts/registry/*"}
    ]
    if decrypt is not None:
        statements.append({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": decrypt})
    return {
        "Resources": {
            "Role": _role(path="/sagebert/consumer/serving/"),
            "Policy": _policy("Role", *statements),
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {
                    "ExecutionRoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "PrimaryContainer": {"ModelPackageName": _arn("sagemaker", f"model-package/{GROUP}/3", ACCOUNT)},
                },
            },
        }
    }


def _registry_app(*, create_model: bool, key_arn: str | None, decrypt: str | None) -> auth.Report:
    owner = _stage("owner", {"Storage": _owner(create_model=create_model)})
    source = auth.RegistrySource(GROUP, PREFIX, key_arn)
    consumer = _stage("consumer", {"Serving": _consumer(decrypt=decrypt)}, account=OTHER, registry_sources=(source,))
    return auth.check([owner, consumer])


OWNER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/12345678-1234-1234-1234-123456789012"


def test_a3_a_consumer_account_may_create_a_model_only_if_the_group_policy_allows_it() -> None:
    broken = _registry_app(create_model=False, key_arn=OWNER_KEY, decrypt=OWNER_KEY)
    (failure,) = broken.failures
    assert f"sagemaker:CreateModel on arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3" in failure
    assert "resource policy in account 111111111111 does not allow it" in failure
    assert _registry_app(create_model=True, key_arn=OWNER_KEY, decrypt=OWNER_KEY).failures == []


@pytest.mark.parametrize("owner_in_app", [True, False])
def test_a5_a_registry_model_without_the_archive_key_cannot_decrypt_it(owner_in_app: bool) -> None:
    if owner_in_app:
        failures = _registry_app(create_model=True, key_arn=None, decrypt=None).failures
        (failure,) = failures
        assert "kms:Decrypt" in failure and "registry archive's key" in failure
    else:
        source = auth.RegistrySource(GROUP, PREFIX, None)
        alone = _stage("consumer", {"Serving": _consumer(decrypt=None)}, account=OTHER, registry_sources=(source,))
        failures = auth.check([alone]).failures
        assert any("without model.kms_key_arn" in f for f in failures), failures


def test_a_state_machine_task_without_an_entry_fails() -> None:
    template = {
        "Resources": {
            "Role": _role(service="states.amazonaws.com"),
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "DefinitionString": '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":'
                    '"arn:aws:states:::dynamodb:putItem","End":true}}}',
                },
            },
        }
    }
    (failure,) = auth.check([_stage("dev", {"Batch": template})]).failures
    assert "dynamodb:putItem" in failure and "no entry" in failure
