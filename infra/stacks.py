"""Stacks compose constructs and wire permissions; they define no resources of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra import image_catalog
from infra.artifact_store import ArtifactStore
from infra.batch_transform_schedule import BatchTransformSchedule
from infra.config import ApiSettings, BatchSettings, StageConfig
from infra.hugging_face_model import HuggingFaceModel
from infra.inference_api import InferenceApi
from infra.monitoring import Monitoring
from infra.monitoring_config import MonitoringSettings
from infra.realtime_endpoint import RealtimeEndpoint


class StorageStack(Stack):
    """Stateful resources, kept apart so serving can be replaced without touching data."""

    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, id_, **kwargs)
        self.store = ArtifactStore(self, "ArtifactStore", retain=config.retain_data)
        CfnOutput(self, "ArtifactBucketName", value=self.store.bucket.bucket_name)
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


class ServingStack(Stack):
    """The model and its real-time endpoint."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        base_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        container = config.model.container
        self.model = HuggingFaceModel(
            self,
            "Model",
            source=config.model,
            image=image_catalog.find(container.transformers_version, container.pytorch_version),
            flavour="cpu",
            base_dir=base_dir,
        )
        self.endpoint = RealtimeEndpoint(
            self, "Endpoint", settings=config.endpoint, model_name=self.model.model_name, key=key
        )
        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name)


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
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.front_door = InferenceApi(
            self, "FrontDoor", settings=settings, endpoint=endpoint, production=production, key=key
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
    """Scheduled batch transform on the serving stack's model, over the storage stack's bucket (whose stack
    outputs the input and output prefixes)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: BatchSettings,
        model: HuggingFaceModel,
        store: ArtifactStore,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.transform = BatchTransformSchedule(
            self,
            "Transform",
            settings=settings,
            model_name=model.model_name,
            bucket=store.bucket,
            key=store.key,
        )
        # The transform job runs as the model's execution role.
        model.grant_batch_io(
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
