"""SageBertStage: one environment (dev, staging, prod ...) built from its config file."""

from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from infra.catalog.regions import supported_region
from infra.config.stage import STAGE_PREFIX, StageConfig
from infra.operations.log_retention import delete_with_the_key
from infra.project_files import ProjectFiles
from infra.stacks import ApiStack, BatchStack, MonitoringStack, ServingStack, StorageStack


class SageBertStage(Stage):
    """Composes the stage's stacks: Storage (stateful), Serving (model + endpoint) and, when the
    config has the section, Api (the front door, `api`), Batch (scheduled batch transform, `batch`) and
    Monitoring (dashboard and alarms over all of them, `monitoring`). `files` are the repository files the stacks
    build from (Lambda code, model archives)."""

    def __init__(self, scope: Construct, name: str, *, config: StageConfig, files: ProjectFiles, **kwargs: Any) -> None:
        env = None
        if config.account or config.region:
            env = Environment(account=config.account, region=config.region)
        super().__init__(scope, f"{STAGE_PREFIX}{name}", env=env, **kwargs)
        self.config = config
        self.storage = StorageStack(
            self,
            "Storage",
            config=config,
            stage_name=name,
            description=f"sagebert {name}: KMS key and artifact buckets",
        )
        self.serving = ServingStack(
            self,
            "Serving",
            config=config,
            stage_name=name,
            endpoint_name=config.endpoint.name or f"sagebert-{name}",
            store=self.storage.store,
            files=files,
            description=f"sagebert {name}: Hugging Face model and {config.endpoint.compute} endpoint",
        )
        self.api: ApiStack | None = None
        if config.api is not None:
            self.api = ApiStack(
                self,
                "Api",
                settings=config.api,
                production=config.production,
                endpoint=self.serving.endpoint,
                key=self.storage.store.key,
                lambda_code=files.lambdas,
                description=f"sagebert {name}: API front door (API Gateway + Lambda) for the endpoint",
            )
        self.batch: BatchStack | None = None
        if config.batch is not None:
            self.batch = BatchStack(
                self,
                "Batch",
                settings=config.batch,
                source=config.model,
                stage_name=name,
                store=self.storage.store,
                files=files,
                description=f"sagebert {name}: scheduled batch transform (EventBridge Scheduler + Step Functions)",
            )
        self.monitoring: MonitoringStack | None = None
        if config.monitoring is not None:
            self.monitoring = MonitoringStack(
                self,
                "Monitoring",
                settings=config.monitoring,
                stage_name=name,
                endpoint=self.serving.endpoint,
                api=self.api.front_door if self.api is not None else None,
                batch=self.batch.transform if self.batch is not None else None,
                key=self.storage.store.key,
                description=f"sagebert {name}: CloudWatch dashboard and alarms",
            )
        if not config.retain_data:
            # The stage key goes with the stacks: so do the log groups it encrypts.
            delete_with_the_key(self)
        # Every stack of an environment-agnostic stage refuses the regions any of them cannot use, so the first one
        # deployed stops a region the later ones would fail in (infra/catalog/regions.py).
        for stack in (self.storage, self.serving, self.api, self.batch, self.monitoring):
            if stack is not None:
                supported_region(stack)
        Tags.of(self).add("sagebert:stage", name)
        for key, value in sorted(config.tags.items()):
            Tags.of(self).add(key, value)
