"""The calls of each SageMaker model's execution role, wherever the model runs (endpoint variants, inference
components, transform jobs): its data and key, its image, its logs and instance metrics, data capture and async
I/O, VPC interfaces; and for a model on a registry package, CloudFormation's CreateModel from the package and the
role's read of the archive with the owner stage's key.

The log groups and actions come from SageMaker's guide (cited beside each), not from infra/: the VPC actions repeat
infra's on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sagebert.checks.authorization.calls_builder import Builder, log_group, log_stream, publish, s3_arn
from sagebert.checks.authorization.evaluation import Call
from sagebert.checks.authorization.policy import Principal, Statement
from sagebert.checks.authorization.templates import Stack

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

# SageMaker in a VPC: https://docs.aws.amazon.com/sagemaker/latest/dg/host-vpc.html
# Written out from the AWS page, never imported from infra/: the gate checks infra's grants against what the service
# does, and a list shared with the grants would only check that they equal themselves.
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

# register's archive layout: <prefix><group>/<16 hex>/model.tar.gz (sagebert/release/registry.py).
REGISTRY_ARCHIVE = "{prefix}{group}/0123456789abcdef/model.tar.gz"

# The role CloudFormation deploys as: the bootstrap's cfn-exec role, AdministratorAccess by default.
# https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html#bootstrapping-customizing
DEPLOY_ROLE = "cdk-hnb659fds-cfn-exec-role"


def models(b: Builder, transform_models: Mapping[str, tuple[Stack, str]]) -> None:
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
                s3_arn(stack.partition, r.resolve(stack, container["ModelDataUrl"])),
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
                    log_group(stack, group) if action == "logs:DescribeLogStreams" else log_stream(stack, group, stream)
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
                        s3_arn(stack.partition, f"{uri}/{endpoint}/AllTraffic/2026/01/01/00/x.jsonl"),
                        f"{where} DataCaptureConfig",
                        key=key,
                    )
            if asynchronous is not None:
                output = asynchronous.get("OutputConfig", {})
                key = r.resolve(stack, output["KmsKeyId"]) if "KmsKeyId" in output else None
                for path in ("S3OutputPath", "S3FailurePath"):
                    if path in output:
                        uri = r.resolve(stack, output[path]).rstrip("/")
                        b.s3_write(principal, s3_arn(stack.partition, f"{uri}/0123.out"), f"{where} {path}", key=key)
                for topic_key in ("SuccessTopic", "ErrorTopic"):
                    topic = output.get("NotificationConfig", {}).get(topic_key)
                    if topic is not None:
                        publish(b, principal, r.resolve(stack, topic), f"{where} {topic_key}")
                if b.stage.async_input_prefix is not None and "S3OutputPath" in output:
                    bucket = r.resolve(stack, output["S3OutputPath"]).removeprefix("s3://").split("/", 1)[0]
                    b.s3_read(
                        principal,
                        s3_arn(stack.partition, f"{bucket}/{b.stage.async_input_prefix}0123.json"),
                        f"{where} async input (endpoint.async_inference.input_prefix)",
                    )


def _registry_model(b: Builder, stack: Stack, principal: Principal, package: str, where: str) -> None:
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
    literal = s3_arn(stack.partition, archive)
    policy_object: str | None = None
    key = source.kms_key_arn
    if owner_stage is not None:
        prefix = b.app.stages[[s.name for s in b.app.stages].index(owner_stage)]
        owner = Builder(b.app, prefix).output("RegistryModelDataPrefix")
        if owner is not None:
            policy_object = s3_arn(
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
