"""Stacks compose constructs and wire permissions; they define no resources of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Fn, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.batch.expressions import job_name_prefix
from infra.batch.transform_schedule import BatchTransformSchedule
from infra.catalog import images as image_catalog
from infra.catalog.images import DlcImage, Flavour
from infra.config.api import ApiSettings
from infra.config.batch import BatchSettings
from infra.config.endpoint import MAX_ZONES
from infra.config.model import ModelSource, RegistryModel
from infra.config.monitoring import MonitoringSettings
from infra.config.stage import StageConfig
from infra.observability.monitoring import Monitoring
from infra.online.inference_api import InferenceApi
from infra.online.inference_component import InferenceComponent
from infra.online.private_network import PrivateNetwork
from infra.online.realtime_endpoint import RealtimeEndpoint, VariantModel, inference_component_name
from infra.online.variants import PlannedVariant, plan_variants
from infra.operations.artifact_store import ArtifactStore, GuardedPrefix
from infra.project_files import ProjectFiles
from infra.release.hugging_face_model import HuggingFaceModel, ModelLogs, ModelVpc
from infra.release.model_registry import ModelRegistry, share_model_data


class StorageStack(Stack):
    """Stateful resources, kept apart so serving can be replaced without touching data."""

    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, stage_name: str, **kwargs: Any) -> None:
        super().__init__(scope, id_, **kwargs)
        self.store = ArtifactStore(
            self,
            "ArtifactStore",
            retain=config.retain_data,
            expiring_prefixes=data_expiry(config),
            guarded_prefixes=guarded_prefixes(config, stage_name),
        )
        CfnOutput(self, "ArtifactBucketName", value=self.store.bucket.bucket_name)
        # The project's model registry group lives with the stage data: its versions outlive serving stacks.
        self.registry: ModelRegistry | None = None
        if config.registry is not None and config.registry.owner:
            self.registry = ModelRegistry(self, "ModelRegistry", settings=config.registry, retain=config.retain_data)
            share_model_data(
                bucket=self.store.bucket,
                key=self.store.key,
                prefix=config.registry.prefix,
                accounts=config.registry.share_with_accounts,
                role_path_patterns=[model_role_path("*", "serving"), model_role_path("*", "batch")],
            )
            CfnOutput(self, "ModelPackageGroupName", value=self.registry.group_name)
            CfnOutput(
                self,
                "ModelPackageGroupArn",
                value=self.registry.group.attr_model_package_group_arn,
                description="python -m sagebert register adds versions here; approve them to deploy them",
            )
            CfnOutput(
                self,
                "RegistryModelDataPrefix",
                value=f"s3://{self.store.bucket.bucket_name}/{config.registry.prefix}",
                description="model.model_data_prefix of the stages that deploy from this group",
            )
            CfnOutput(
                self,
                "RegistryModelDataKeyArn",
                value=self.store.key.key_arn,
                description="model.kms_key_arn of the stages that deploy from this group (register encrypts with it)",
            )
        if config.batch is not None:
            # Here rather than in the batch stack: there they would re-export this stack's bucket name
            # (cfn-lint W6001, an output made of an import).
            CfnOutput(
                self,
                "BatchInputPrefix",
                value=f"s3://{self.store.bucket.bucket_name}/{config.batch.input_prefix}",
                description="batch transform input: put a run's JSON Lines under <this>YYYY-MM-DD/",
            )
            CfnOutput(
                self,
                "BatchOutputPrefix",
                value=f"s3://{self.store.bucket.bucket_name}/{config.batch.output_prefix}",
                description="batch transform output: each run writes <this>YYYY-MM-DD/<execution name>/",
            )


def model_role_path(stage_name: str, part: str) -> str:
    """The IAM path of a stage's model execution roles: /sagebert/<stage>/serving/ or /sagebert/<stage>/batch/.
    Bucket policies match it (aws:PrincipalArn), so the storage stack never names the other stacks' roles."""
    return f"/sagebert/{stage_name}/{part}/"


def data_expiry(config: StageConfig) -> dict[str, int]:
    """Key prefix -> days: captured data, async requests and answers, batch input and output."""
    endpoint = config.endpoint
    days: dict[str, int] = {}
    if endpoint.data_capture is not None:
        days[endpoint.data_capture.prefix] = endpoint.data_capture.expire_after_days
    if endpoint.async_inference is not None:
        settings = endpoint.async_inference
        for prefix in (settings.input_prefix, settings.output_prefix, settings.failure_prefix):
            days[prefix] = settings.expire_after_days
    if config.batch is not None:
        days[config.batch.input_prefix] = config.batch.expire_after_days
        days[config.batch.output_prefix] = config.batch.expire_after_days
    return days


def guarded_prefixes(config: StageConfig, stage_name: str) -> list[GuardedPrefix]:
    """Captured requests and answers: only the stage's endpoint model roles (which write them) and the configured
    reader roles may get or put them."""
    capture = config.endpoint.data_capture
    if capture is None:
        return []
    writers = f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role{model_role_path(stage_name, 'serving')}*"
    return [GuardedPrefix(capture.prefix, (writers, *capture.reader_role_arns))]


def catalog_image(source: ModelSource, flavour: Flavour) -> DlcImage | None:
    """The catalogued image a model runs on; None for a registry model (its package names the image)."""
    if isinstance(source, RegistryModel):
        return None
    return image_catalog.image_for(source.container, flavour)


def package_version(files: ProjectFiles, source: ModelSource, stage_name: str, key: str) -> int | None:
    """The model package version a registry model deploys (refuses without one); None for other sources."""
    if isinstance(source, RegistryModel):
        return files.model_package_version(source, stage_name, key)
    return None


class ServingStack(Stack):
    """The models (the stage's, each A/B and shadow variant's), the endpoint on the config's compute profile, and
    its private network when it has one."""

    @property
    def availability_zones(self) -> list[str]:
        """The zones the private network may use: picked by CloudFormation at deploy time (Fn::GetAZs), as CDK does
        for an environment-agnostic stack. CDK's default for a stack with an account and region is a context lookup,
        which needs AWS credentials at synth: without this a stage with `account`, `region` and `endpoint.vpc` fails
        `make synth` ("Need to perform AWS calls"). As many as endpoint.vpc.availability_zones may ask for."""
        return [Fn.select(index, Fn.get_azs()) for index in range(MAX_ZONES)]

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        stage_name: str,
        endpoint_name: str,
        store: ArtifactStore,
        files: ProjectFiles,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        endpoint = config.endpoint
        profile = endpoint.profile
        key = store.key
        self.network: PrivateNetwork | None = None
        vpc: ModelVpc | None = None
        if endpoint.vpc is not None:
            self.network = PrivateNetwork(self, "Network", settings=endpoint.vpc, key=key)
            vpc = ModelVpc(self.network.subnet_ids, [self.network.security_group.security_group_id])

        plan = plan_variants(endpoint, config.model)

        def model(id_: str, planned: PlannedVariant, key: str) -> HuggingFaceModel:
            return HuggingFaceModel(
                self,
                id_,
                source=planned.source,
                image=catalog_image(planned.source, profile.flavour),
                flavour=profile.flavour,
                artifact=files.artifact(planned.source),
                model_package_version=package_version(files, planned.source, stage_name, key),
                # cpu leaves the handler on auto (int8 ONNX when the archive has it, else PyTorch).
                runtime=None if profile.flavour == "cpu" else profile.runtime,
                server_workers=planned.server_workers,
                network_isolation=config.network_isolation(planned.source),
                vpc=vpc,
                logs=ModelLogs(
                    endpoint_name=endpoint_name,
                    inference_component_name=inference_component_name(endpoint, endpoint_name),
                ),
                role_path=model_role_path(stage_name, "serving"),
            )

        self.models: list[HuggingFaceModel] = []
        served: list[VariantModel] = []
        # The config key of each planned model (for the message when a registry model has no version).
        keys = ["model", *(f"endpoint.variants[{i}].model" for i in range(len(plan.variants))), "endpoint.shadow.model"]
        for index, planned in enumerate(plan.all):
            # The main variant's model is Model, every other one's Model<variant name>: their logical IDs.
            each = model("Model" if planned is plan.main else f"Model{planned.name}", planned, keys[index])
            self.models.append(each)
            served.append(
                VariantModel(
                    planned.name, each.model_name, planned.instance_type, planned.instance_count, planned.weight
                )
            )
        self.model = self.models[0]
        shadow = served.pop() if plan.shadow is not None else None
        self.endpoint = RealtimeEndpoint(
            self,
            "Endpoint",
            settings=endpoint,
            endpoint_name=endpoint_name,
            variants=served,
            shadow=shadow,
            key=key,
            bucket=store.bucket,
            retain_logs=config.retain_data,
            # In inference-component form SageMaker places the model's copies as the endpoint config's role: the
            # model's own role (it pulls the image and reads the model data already).
            component_role=self.model.role if endpoint.inference_component is not None else None,
        )
        self.inference_component: InferenceComponent | None = None
        if endpoint.inference_component is not None:
            # The role must hold its policy before SageMaker uses it to place a copy.
            self.endpoint.config.node.add_dependency(self.model.policy)
            self.inference_component = InferenceComponent(
                self, "InferenceComponent", settings=endpoint, endpoint=self.endpoint, model_name=self.model.model_name
            )
            # SageMaker finds the component's log group (stage key, retention) rather than making its own.
            assert self.endpoint.component_log_group is not None
            self.inference_component.component.node.add_dependency(self.endpoint.component_log_group)
        reads = [endpoint.async_inference.input_prefix] if endpoint.async_inference else []
        writes = [endpoint.data_capture.prefix] if endpoint.data_capture else []
        if endpoint.async_inference:
            writes += [endpoint.async_inference.output_prefix, endpoint.async_inference.failure_prefix]
        for each in self.models:
            each.grant_endpoint_io(
                bucket=store.bucket,
                key=key,
                read_prefixes=reads,
                write_prefixes=writes,
                topics=self.endpoint.async_topics,
            )
        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name)
        if self.inference_component is not None:
            CfnOutput(
                self,
                "InferenceComponentName",
                value=self.inference_component.component_name,
                description="InvokeEndpoint needs it: --inference-component-name <this>",
            )
        for index, topic in enumerate(self.endpoint.async_topics):
            CfnOutput(
                self,
                ("AsyncSuccessTopicArn", "AsyncErrorTopicArn")[index],
                value=topic.topic_arn,
                description="SNS topic SageMaker notifies when an async request "
                + ("is answered" if index == 0 else "fails"),
            )


class ApiStack(Stack):
    """The API front door (API Gateway + Lambda) for the serving stack's endpoint."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: ApiSettings,
        production: bool,
        endpoint: RealtimeEndpoint,
        key: kms.IKey,
        lambda_code: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.front_door = InferenceApi(
            self,
            "FrontDoor",
            settings=settings,
            endpoint=endpoint,
            production=production,
            key=key,
            lambda_code=lambda_code,
        )
        # Kept as attributes: the promotion pipeline's smoke test reads them (env_from_cfn_outputs).
        self.api_url_output = CfnOutput(
            self, "ApiUrl", value=self.front_door.url, description="POST a predict request here"
        )
        CfnOutput(self, "HealthUrl", value=self.front_door.health_url, description='GET: 200 {"status": "ok"}')
        self.api_key_id_output: CfnOutput | None = None
        if self.front_door.api_key is not None:
            self.api_key_id_output = CfnOutput(
                self,
                "ApiKeyId",
                value=self.front_door.api_key.key_id,
                description="aws apigateway get-api-key --include-value --api-key <this id> prints the key",
            )


class BatchStack(Stack):
    """Scheduled batch transform on a model of its own, over the storage stack's bucket (whose stack outputs the
    input and output prefixes).

    The transform job's model lives here, not in the serving stack: a SageMaker Model is replaced (and renamed) by
    every change of its archive, image or environment, and CloudFormation refuses to change a value another stack
    imports, so importing the serving model's generated name would block every model update. Its own copy also
    runs the CPU image with the toolkit's worker layout whatever the endpoint's compute profile (transform jobs run
    on CPU instances), as its own execution role (the endpoint's role gets no batch data access).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: BatchSettings,
        source: ModelSource,
        stage_name: str,
        store: ArtifactStore,
        files: ProjectFiles,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        prefix = job_name_prefix(stage_name)
        self.model = HuggingFaceModel(
            self,
            "Model",
            source=source,
            image=catalog_image(source, "cpu"),
            flavour="cpu",
            artifact=files.artifact(source),
            model_package_version=package_version(files, source, stage_name, "model"),
            network_isolation=source.network_isolation,
            logs=ModelLogs(transform_job_prefix=prefix),
            role_path=model_role_path(stage_name, "batch"),
        )
        self.transform = BatchTransformSchedule(
            self,
            "Transform",
            settings=settings,
            stage_name=stage_name,
            model_name=self.model.model_name,
            bucket=store.bucket,
            key=store.key,
            lambda_code=files.lambdas,
        )
        # The transform job runs as the model's execution role.
        self.model.grant_batch_io(
            bucket=store.bucket,
            input_prefix=settings.input_prefix,
            output_prefix=settings.output_prefix,
            key=store.key,
        )
        CfnOutput(
            self,
            "StateMachineArn",
            value=self.transform.state_machine.state_machine_arn,
            description="aws stepfunctions start-execution --state-machine-arn <this> --input "
            '\'{"scheduledTime": "2026-11-26T02:00:00Z"}\' runs a date by hand',
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.transform.topic.topic_arn,
            description="SNS topic notified when a run fails; subscribe to it",
        )
        CfnOutput(
            self,
            "DeadLetterQueueUrl",
            value=self.transform.dead_letter_queue.queue_url,
            description="scheduled runs EventBridge Scheduler could not start",
        )


class MonitoringStack(Stack):
    """The stage's CloudWatch dashboard and alarms over the serving, API and batch stacks, and the SNS topic the
    alarms notify (encrypted with the storage stack's key)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: MonitoringSettings,
        stage_name: str,
        endpoint: RealtimeEndpoint,
        api: InferenceApi | None,
        batch: BatchTransformSchedule | None,
        key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            settings=settings,
            stage_name=stage_name,
            endpoint=endpoint,
            api=api,
            batch=batch,
            key=key,
        )
        dashboard = self.monitoring.dashboard
        if dashboard is not None:
            CfnOutput(self, "DashboardName", value=dashboard.dashboard_name)
            CfnOutput(
                self,
                "DashboardUrl",
                value=f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
                f"#dashboards:name={dashboard.dashboard_name}",
                description="the stage's CloudWatch dashboard",
            )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="SNS topic every monitoring alarm notifies; subscribe to it",
        )
