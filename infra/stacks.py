"""Stacks compose constructs and wire permissions; they define no resources of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra import image_catalog
from infra.artifact_store import ArtifactStore
from infra.config import StageConfig
from infra.hugging_face_model import HuggingFaceModel
from infra.realtime_endpoint import RealtimeEndpoint


class StorageStack(Stack):
    """Stateful resources, kept apart so serving can be replaced without touching data."""

    def __init__(self, scope: Construct, id_: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, id_, **kwargs)
        self.store = ArtifactStore(self, "ArtifactStore", retain=config.retain_data)
        CfnOutput(self, "ArtifactBucketName", value=self.store.bucket.bucket_name)


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
