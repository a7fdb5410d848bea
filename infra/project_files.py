"""ProjectFiles: the repository files the app is built from, resolved once by app.py.

Constructs never compute repository paths. The stage and its stacks receive this and pass down only concrete
values: the Lambda code directory (InferenceApi, the batch manifest function), a bundled model's archive path
(HuggingFaceModel), the CDK CLI version (the promotion pipeline's self-mutation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.config.model import BundledModel, ModelSource


@dataclass(frozen=True)
class ProjectFiles:
    """`repository`: the root a config's relative paths (model.artifact) are relative to; `lambdas`: the code root
    of every Lambda function (lambdas/); `cdk_cli_version`: the aws-cdk CLI version package.json pins."""

    repository: Path
    lambdas: Path
    cdk_cli_version: str

    def artifact(self, source: ModelSource) -> Path | None:
        """A bundled model's archive, resolved against the repository; None for hub and S3 models."""
        if isinstance(source, BundledModel):
            return (self.repository / source.artifact).resolve()
        return None
