"""HuggingFaceModel: a SageMaker Model on a Hugging Face inference container (DLC)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Annotations, ArnFormat, Aws, CfnMapping, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.catalog import images as image_catalog
from infra.catalog.images import DlcImage, Flavour
from infra.catalog.regions import require_region
from infra.config.model import BundledModel, HubModel, ModelSource, RegistryModel, S3Model
from infra.operations.compliance import acknowledge, acknowledge_resources
from infra.release.model_registry import model_package_arn

# Where SageMaker writes a model's container logs, as its execution role: an endpoint's to the log group
# /aws/sagemaker/Endpoints/<endpoint name> (streams <variant>/<instance id>), every transform job's to the one
# account-wide group /aws/sagemaker/TransformJobs (streams <job name>/<instance id>-<time>).
# https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
# An inference component's containers log to /aws/sagemaker/InferenceComponents/<component name> instead of the
# endpoint's group. https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html
COMPONENT_LOG_GROUP_PREFIX = "/aws/sagemaker/InferenceComponents/"
# CloudWatch namespaces of the instance metrics the container publishes as the execution role.
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
ENDPOINT_METRIC_NAMESPACE = "/aws/sagemaker/Endpoints"
TRANSFORM_METRIC_NAMESPACE = "/aws/sagemaker/TransformJobs"
# An inference component's copies publish theirs (CPUUtilizationNormalized, MemoryUtilizationNormalized ...) here.
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html#cloudwatch-metrics-inference-component
COMPONENT_METRIC_NAMESPACE = "/aws/sagemaker/InferenceComponents"


def _check_packaged_runtime(artifact: Path, source: BundledModel, runtime: str | None) -> None:
    """What `make package` wrote beside the archive (model.tar.gz.json: the runtime it verified and the
    runtimes it ships) against what the stage asks: int8 where model.require_int8 is set, the safetensors
    weights where the handler runs PyTorch (compute: gpu). Archives without that file (`sagebert archive`,
    an archive built elsewhere) are taken as they are."""
    sidecar = artifact.with_name(artifact.name + ".json")
    if not sidecar.is_file():
        if source.require_int8:
            raise ArtifactMissingError(
                f"model.require_int8 = true but {sidecar.name} is missing beside {artifact}: only `make package` "
                "(python -m sagebert package) records whether the archive serves int8; rebuild it that way."
            )
        return
    packaged = json.loads(sidecar.read_text(encoding="utf-8"))
    if source.require_int8 and packaged.get("served_runtime") != "onnx-int8":
        raise ArtifactMissingError(
            f"model.require_int8 = true but {artifact} serves {packaged.get('served_runtime')}: int8 missed its "
            "tolerance on the CPU that packaged it (the package log gives the figures). Package on the CPU family "
            "you deploy to, or set model.require_int8: false to ship fp32 ONNX."
        )
    if runtime == "torch" and "torch" not in packaged.get("runtimes", ["torch"]):
        raise ArtifactMissingError(
            f"{artifact} holds only the ONNX graphs, but this endpoint's compute profile runs PyTorch (gpu); "
            "rebuild it with `python -m sagebert package --runtimes onnx,torch` (make package does when a stage "
            "in config/ uses compute: gpu)."
        )


@dataclass(frozen=True)
class ModelLogs:
    """Whose logs the model's role may write: one endpoint's (its fixed name), the inference component's that serves
    the model on it (its fixed name, in inference-component form), and/or transform jobs whose names start with
    `transform_job_prefix` (sagebert-<stage>-)."""

    endpoint_name: str | None = None
    inference_component_name: str | None = None
    transform_job_prefix: str | None = None

    def own_groups(self) -> list[str]:
        """The log groups of this endpoint and of its inference component (the stack makes both)."""
        groups = [endpoint_log_group_name(self.endpoint_name)] if self.endpoint_name is not None else []
        if self.inference_component_name is not None:
            groups.append(component_log_group_name(self.inference_component_name))
        return groups

    def metric_namespaces(self) -> list[str]:
        """Where the containers of these endpoints, components and jobs publish their instance metrics."""
        return [
            namespace
            for namespace, used in (
                (ENDPOINT_METRIC_NAMESPACE, self.endpoint_name),
                (COMPONENT_METRIC_NAMESPACE, self.inference_component_name),
                (TRANSFORM_METRIC_NAMESPACE, self.transform_job_prefix),
            )
            if used is not None
        ]


def endpoint_log_group_name(endpoint_name: str) -> str:
    """The log group SageMaker writes an endpoint's container logs to."""
    return f"{ENDPOINT_LOG_GROUP_PREFIX}{endpoint_name}"


def component_log_group_name(component_name: str) -> str:
    """The log group SageMaker writes an inference component's container logs to."""
    return f"{COMPONENT_LOG_GROUP_PREFIX}{component_name}"


@dataclass(frozen=True)
class ModelVpc:
    """Where the model's containers run in a VPC: private subnets and security groups."""

    subnet_ids: list[str]
    security_group_ids: list[str]


class ArtifactMissingError(Exception):
    """The configured model archive is not on disk, or cannot serve what the stage asks of it."""


class HuggingFaceModel(Construct):
    """Creates the model's execution role (least privilege: read this model's data, pull this image
    repository, write its own logs and instance metrics) and the `AWS::SageMaker::Model` on the catalogued DLC image,
    or, for a registry source, on a model package version (its image and model data are the package's).

    Exposes `model_name` (generated by CloudFormation), `role`, `policy`, `model_package_arn` (registry sources,
    else None), and `grant_batch_io` for batch transform jobs, which run as this role.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        source: ModelSource,
        image: DlcImage | None,
        flavour: Flavour,
        artifact: Path | None = None,
        model_package_version: int | None = None,
        runtime: str | None = None,
        server_workers: int | None = None,
        network_isolation: bool | None = None,
        vpc: ModelVpc | None = None,
        logs: ModelLogs,
        role_path: str = "/",
    ) -> None:
        """`image` is the catalogued DLC the model runs (None for a registry source: the package names its image);
        `artifact` is a bundled source's model archive, resolved by the caller (None for hub and S3 models);
        `model_package_version` the registry source's version to deploy (ProjectFiles.model_package_version);
        `runtime` sets SAGEBERT_RUNTIME (the handler mode of the compute profile); `server_workers` the
        model server's worker count (SAGEMAKER_MODEL_SERVER_WORKERS; the handler then takes the cores
        divided among them as its threads; None: one worker per core); `network_isolation`
        overrides the source's setting (serverless does not support isolation); `vpc` puts the model's
        containers in those subnets and security groups; `logs` names the endpoint and transform jobs whose
        logs the role may write; `role_path` is the execution role's IAM path (bucket policies match it)."""
        super().__init__(scope, id_)
        stack = Stack.of(self)
        statements: list[iam.PolicyStatement] = []
        environment: dict[str, str] = {}
        model_data_url: str | None = None
        self.model_package_arn: str | None = None

        if isinstance(source, BundledModel):
            if artifact is None:
                raise ValueError("a bundled model needs its archive's path (artifact)")
            if not artifact.is_file():
                raise ArtifactMissingError(
                    f"model archive {artifact} not found (model.artifact = {source.artifact!r}); "
                    "`make synth` builds the default one, or run `python -m sagebert archive`."
                )
            _check_packaged_runtime(artifact, source, runtime)
            asset = s3_assets.Asset(self, "ModelData", path=str(artifact))
            model_data_url = asset.s3_object_url
            statements.append(_read_object(asset.bucket.arn_for_objects(asset.s3_object_key)))
        elif isinstance(source, S3Model):
            bucket, key = source.uri.removeprefix("s3://").split("/", 1)
            model_data_url = source.uri
            statements.append(
                _read_object(
                    stack.format_arn(
                        service="s3",
                        region="",
                        account="",
                        resource=bucket,
                        resource_name=key,
                    )
                )
            )
            if source.kms_key_arn:
                statements.append(
                    iam.PolicyStatement(
                        sid="DecryptModelData",
                        actions=["kms:Decrypt"],
                        resources=[source.kms_key_arn],
                    )
                )
        elif isinstance(source, RegistryModel):
            if model_package_version is None or image is not None:
                raise ValueError("a registry model needs its version (model_package_version) and no image")
            self.model_package_arn = model_package_arn(
                self, source.group, model_package_version, account=source.group_account
            )
            # The package's model data is one of the registered archives under the prefix (which version's is
            # fixed in the package; the role may read the prefix's objects, nothing else in the bucket).
            bucket, prefix = source.model_data_prefix.removeprefix("s3://").split("/", 1)
            statements.append(
                _read_object(
                    stack.format_arn(service="s3", region="", account="", resource=bucket, resource_name=f"{prefix}*")
                )
            )
            statements.append(
                iam.PolicyStatement(sid="DecryptModelData", actions=["kms:Decrypt"], resources=[source.kms_key_arn])
            )
        elif isinstance(source, HubModel):
            environment = {"HF_MODEL_ID": source.model_id, "HF_TASK": source.task}
            Annotations.of(self).add_warning_v2(
                "sagebert:hub-download",
                f"model {source.model_id} is downloaded from the Hugging Face Hub at every container "
                "start: start-up needs internet access and depends on the Hub being up and the model "
                "unchanged. Package it instead (model.source: bundled or s3).",
            )

        if runtime is not None and not isinstance(source, HubModel):
            # A Hub model runs the toolkit's own handler, which does not read this.
            environment["SAGEBERT_RUNTIME"] = runtime
        if server_workers is not None and not isinstance(source, HubModel):
            environment["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(server_workers)
        if vpc is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="VpcNetworkInterfaces",
                    # SageMaker creates the containers' network interfaces in the VPC as this role. The
                    # Describe* and CreateNetworkInterface calls have no resource-level scoping that survives
                    # SageMaker's generated names, and no condition is added: SageMaker's calls carry no key that
                    # would keep them to this VPC for every action here (the Describe* calls carry none at all).
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],
                )
            )
        if image is not None:
            image_uri: str | None
            image_uri, repository_arn = _image(self, image, flavour)
            repositories = [repository_arn]
        else:
            # A registered package names one catalogued DLC of this flavour (register picks it from the catalog);
            # which one is known only to the registry, so the role may pull the catalog's repositories of it.
            image_uri, repositories = None, _catalog_repositories(self, flavour)
        statements += [
            iam.PolicyStatement(
                sid="PullInferenceImage",
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=repositories,
            ),
            # ecr:GetAuthorizationToken has no resource-level permissions: "*" is the only form.
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            *_log_statements(stack, logs),
            # The container publishes the instance metrics (CPUUtilization, MemoryUtilization, DiskUtilization,
            # GPU*) under /aws/sagemaker/Endpoints, /aws/sagemaker/InferenceComponents or
            # /aws/sagemaker/TransformJobs, as this role; SageMaker's minimum CreateModel policy lists it.
            # PutMetricData takes no resource ARN: the namespace condition keeps the role to those namespaces.
            # https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createmodel-perms
            iam.PolicyStatement(
                sid="PublishInstanceMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": logs.metric_namespaces()}},
            ),
        ]

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="sagebert model execution role",
            path=role_path,
        )
        # A customer-managed policy rather than an inline one (NIST 800-53 IAMNoInlinePolicy).
        self.policy = iam.ManagedPolicy(self, "ExecutionPolicy", statements=statements, roles=[self.role])

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=source.network_isolation if network_isolation is None else network_isolation,
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                subnets=vpc.subnet_ids, security_group_ids=vpc.security_group_ids
            )
            if vpc is not None
            else None,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                model_data_url=model_data_url,
                model_package_name=self.model_package_arn,
                environment=environment or None,
            ),
        )
        acknowledge(
            self.policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions; image "
            "pulls are limited to the "
            + ("one DLC repository ARN" if image is not None else "catalogued DLC repository ARNs")
            + ", metrics to SageMaker's instance-metric namespaces (cloudwatch:namespace condition)."
            + (
                " The EC2 network-interface actions SageMaker needs to place the containers in the VPC take no "
                "resource scoping that works with SageMaker's generated interface names."
                if vpc is not None
                else ""
            ),
        )
        if isinstance(source, RegistryModel):
            partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
            objects = source.model_data_prefix.removeprefix("s3://")
            acknowledge(
                self.policy,
                f"AwsSolutions-IAM5[Resource::arn:{partition}:s3:::{objects}*]",
                f"The registered versions' archives under {source.model_data_prefix}: the model package names one of "
                "them (its version is chosen at deploy time); s3:GetObject only, nothing else in the bucket.",
            )
        for group in logs.own_groups():
            acknowledge(
                self.policy,
                f"AwsSolutions-IAM5[Resource::{_nag_arn(stack, 'logs')}:log-group:{group}:*]",
                f"The streams of this model's own log group {group} (its endpoint's, or its inference component's), "
                "which SageMaker names as instances or copies start (<variant>/<instance id>, per copy).",
            )
        if logs.transform_job_prefix is not None:
            acknowledge(
                self.policy,
                f"AwsSolutions-IAM5[Resource::{_nag_arn(stack, 'logs')}:log-group:{TRANSFORM_LOG_GROUP}:*]",
                f"CreateLogGroup and DescribeLogStreams only, on the account's {TRANSFORM_LOG_GROUP} group that "
                "every transform job logs to; writing is limited to this stage's streams (next statement).",
            )
            acknowledge(
                self.policy,
                f"AwsSolutions-IAM5[Resource::{_nag_arn(stack, 'logs')}:log-group:{TRANSFORM_LOG_GROUP}:log-stream:"
                f"{logs.transform_job_prefix}*]",
                f"SageMaker names a transform job's streams <job name>/<instance id>-<time>; the grant is the "
                f"streams of this stage's jobs ({logs.transform_job_prefix}*) only.",
            )
        # CloudFormation must not create the model before its role can read the model data.
        self.model.node.add_dependency(self.policy)
        self.model_name: str = self.model.attr_model_name

    def grant_endpoint_io(
        self,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        read_prefixes: list[str],
        write_prefixes: list[str],
        topics: list[sns.ITopic],
    ) -> None:
        """What the endpoint does as this role: write captured data and async answers under `write_prefixes`,
        read async requests under `read_prefixes`, publish async notifications to `topics`."""
        statements: list[iam.PolicyStatement] = []
        objects: list[str] = []
        if read_prefixes:
            arns = [bucket.arn_for_objects(f"{p}*") for p in read_prefixes]
            objects += arns
            statements.append(iam.PolicyStatement(sid="ReadEndpointInput", actions=["s3:GetObject"], resources=arns))
        if write_prefixes:
            arns = [bucket.arn_for_objects(f"{p}*") for p in write_prefixes]
            objects += arns
            statements.append(
                iam.PolicyStatement(
                    sid="WriteEndpointOutput", actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=arns
                )
            )
        if read_prefixes or write_prefixes:
            statements.append(
                iam.PolicyStatement(
                    sid="EndpointDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
                )
            )
        if topics:
            statements.append(
                iam.PolicyStatement(
                    sid="PublishAsyncNotifications", actions=["sns:Publish"], resources=[t.topic_arn for t in topics]
                )
            )
        if not statements:
            return
        self.policy.add_statements(*statements)
        acknowledge_resources(
            self.policy,
            "AwsSolutions-IAM5",
            objects,
            "The endpoint writes captured requests and async answers, and reads async requests, under object keys "
            "SageMaker or the caller name at run time; the grant is limited to those prefixes of the stage bucket.",
        )

    def grant_batch_io(self, *, bucket: s3.IBucket, input_prefix: str, output_prefix: str, key: kms.IKey) -> None:
        """Let transform jobs on this model (they run as its execution role) list and read the objects under
        `input_prefix`, write under `output_prefix`, and use `key` for that data (SSE-KMS input, KmsKeyId
        output). Nothing else in the bucket."""
        input_objects = bucket.arn_for_objects(f"{input_prefix}*")
        output_objects = bucket.arn_for_objects(f"{output_prefix}*")
        self.policy.add_statements(
            iam.PolicyStatement(
                sid="ListBatchInput",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{input_prefix}*"]}},
            ),
            iam.PolicyStatement(sid="ReadBatchInput", actions=["s3:GetObject"], resources=[input_objects]),
            iam.PolicyStatement(
                sid="WriteBatchOutput", actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[output_objects]
            ),
            iam.PolicyStatement(
                sid="BatchDataKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]
            ),
        )
        acknowledge_resources(
            self.policy,
            "AwsSolutions-IAM5",
            [input_objects, output_objects],
            f"Batch transform jobs run as this role: they read whatever objects a run finds under {input_prefix} "
            f"and write results under {output_prefix}, named at run time; the grant is limited to those prefixes.",
        )


def _log_statements(stack: Stack, logs: ModelLogs) -> list[iam.PolicyStatement]:
    """Write the logs of this endpoint and of this stage's transform jobs, nothing else."""

    def arn(name: str) -> str:
        return stack.format_arn(
            service="logs", resource="log-group", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )

    statements: list[iam.PolicyStatement] = []
    # The stack creates these groups (with the stage key and a retention); SageMaker creates the streams.
    # CloudWatch Logs checks group-level calls against log-group:<name> or log-group:<name>:*.
    groups = logs.own_groups()
    if groups:
        statements.append(
            iam.PolicyStatement(
                sid="EndpointLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[each for group in groups for each in (arn(group), arn(f"{group}:*"))],
            )
        )
    if logs.transform_job_prefix is not None:
        statements += [
            iam.PolicyStatement(
                sid="TransformLogGroup",
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                resources=[arn(TRANSFORM_LOG_GROUP), arn(f"{TRANSFORM_LOG_GROUP}:*")],
            ),
            iam.PolicyStatement(
                sid="TransformLogStreams",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[arn(f"{TRANSFORM_LOG_GROUP}:log-stream:{logs.transform_job_prefix}*")],
            ),
        ]
    return statements


def _nag_arn(stack: Stack, service: str) -> str:
    """The ARN prefix as cdk-nag spells it in finding ids: literals for a pinned environment,
    <AWS::...> placeholders for an environment-agnostic one."""
    parts = [
        "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition,
        "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region,
        "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account,
    ]
    return f"arn:{parts[0]}:{service}:{parts[1]}:{parts[2]}"


def _read_object(object_arn: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="ReadModelData", actions=["s3:GetObject"], resources=[object_arn])


def _catalog_repositories(scope: Construct, flavour: Flavour) -> list[str]:
    """The ARNs of the catalogued DLC repositories of `flavour` in the stack's region: one per repository and
    registry account (a CfnMapping per repository when the region is known only at deploy time)."""
    stack = Stack.of(scope)
    catalogued = [image for image in image_catalog.images() if flavour in image.tags]
    arns: list[str] = []
    for repository in sorted({image.repository for image in catalogued}):
        registries: dict[str, set[str]] = {}
        for image in catalogued:
            if image.repository == repository:
                for region, account in image.registries.items():
                    registries.setdefault(region, set()).add(account)
        if Token.is_unresolved(stack.region):
            # One registry account per region for a repository (true of the catalog; checked here so a catalog
            # that ever differs fails synth instead of granting the wrong account).
            if any(len(accounts) != 1 for accounts in registries.values()):
                raise ValueError(f"catalog: {repository} has more than one registry account in a region")
            mapping = CfnMapping(
                scope,
                "DlcRegistry" + re.sub(r"[^A-Za-z0-9]", "", repository.title()),
                mapping={region: {"account": next(iter(a))} for region, a in sorted(registries.items())},
            )
            accounts = [mapping.find_in_map(Aws.REGION, "account")]
            region = Aws.REGION
        else:
            accounts = sorted(registries.get(stack.region, set()))
            region = stack.region
        arns += [
            stack.format_arn(
                service="ecr", region=region, account=account, resource="repository", resource_name=repository
            )
            for account in accounts
        ]
    return arns


def _image(scope: Construct, image: DlcImage, flavour: Flavour) -> tuple[str, str]:
    """Image URI and repository ARN; a region -> registry-account mapping when the region is
    only known at deploy time (environment-agnostic stacks)."""
    stack = Stack.of(scope)
    if Token.is_unresolved(stack.region):
        mapping = CfnMapping(
            scope,
            "DlcRegistry",
            mapping={region: {"account": account} for region, account in sorted(image.registries.items())},
        )
        account = mapping.find_in_map(Aws.REGION, "account")
        region = Aws.REGION
        uri = f"{account}.dkr.ecr.{region}.{Aws.URL_SUFFIX}/{image.repository}:{image.tag(flavour)}"
        require_region(
            scope,
            "SupportedRegionImage" + re.sub(r"[^A-Za-z0-9]", "", image.tag(flavour)),
            image.registries,
            f"the Hugging Face inference image {image.repository}:{image.tag(flavour)}",
        )
    else:
        account = image.registries[stack.region]
        region = stack.region
        uri = image.uri(region, flavour)
    repository_arn = stack.format_arn(
        service="ecr", region=region, account=account, resource="repository", resource_name=image.repository
    )
    return uri, repository_arn
