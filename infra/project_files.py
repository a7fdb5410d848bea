"""ProjectFiles: the repository files the app is built from, resolved once by app.py.

Constructs never compute repository paths. The stage and its stacks receive this and pass down only concrete
values: the Lambda code directory (InferenceApi, the batch manifest function), a bundled model's archive path
(HuggingFaceModel), a registry model's version (read from the resolved-models file once), the CDK CLI version
(the promotion pipeline's self-mutation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infra.config.errors import ConfigError
from infra.config.model import BundledModel, ModelSource, RegistryModel
from infra.config.resolved_models import RESOLVED_MODELS_FILE, ResolvedModels


@dataclass(frozen=True)
class ProjectFiles:
    """`repository`: the root a config's relative paths (model.artifact) are relative to; `lambdas`: the code root
    of every Lambda function (lambdas/); `cdk_cli_version`: the aws-cdk CLI version package.json pins;
    `resolved_models`: the resolved-models file's content (RESOLVED_MODELS_FILE; empty when there is none)."""

    repository: Path
    lambdas: Path
    cdk_cli_version: str
    resolved_models: ResolvedModels = field(default_factory=lambda: ResolvedModels(format=1))

    def artifact(self, source: ModelSource) -> Path | None:
        """A bundled model's archive, resolved against the repository; None for hub and S3 models."""
        if isinstance(source, BundledModel):
            return (self.repository / source.artifact).resolve()
        return None

    def model_package_version(self, source: RegistryModel, stage_name: str, key: str = "model") -> int:
        """The model package version a registry model deploys: its `version`, else the one the resolved-models file
        names for its group. Neither: ConfigError saying how to get one (synth never asks the registry itself)."""
        if source.version is not None:
            return source.version
        resolved = self.resolved_models.version(source.group)
        if resolved is not None:
            return resolved
        raise ConfigError(
            f"stage {stage_name}: {key}.source = registry (group {source.group}) has no version to deploy: synth never "
            f"calls AWS, and {RESOLVED_MODELS_FILE} does not name the group. Either set {key}.version in "
            f"config/{stage_name}.yaml, or run `python -m sagebert resolve-models --stage {stage_name}` with "
            f"credentials for the group's account (it writes the latest Approved version to {RESOLVED_MODELS_FILE}), "
            "or let the promotion pipeline do it (its synth step resolves before it synthesizes)."
        )
