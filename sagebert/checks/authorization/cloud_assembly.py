"""Reading a synthesized cloud assembly (cdk.out) into the gate's input: each stage's stacks with their environments,
the promotion pipeline's copies of the stages, the top-level stacks as one more (`TOP_LEVEL`), and from each
stage's config the facts its templates do not carry (a registry model's archive prefix and key, the async input
prefix).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.config.model import RegistryModel
from infra.config.stage import StageConfig
from sagebert.checks.authorization.app import RegistrySource, StageInput
from sagebert.checks.authorization.templates import Stack


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
