"""A synthesized cloud assembly (cdk.out) read back: its stages, their stacks and templates.

The synth report (sagebert.report.synth) summarizes it; the deploy gates and the preflight
(sagebert.checks) compare its templates. Only the manifests and templates are read: no CDK import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StackSummary:
    name: str
    template: Path
    resources: dict[str, int]  # resource type -> count
    region: str | None = None  # None: environment-agnostic (the region is known at deploy time only)


@dataclass(frozen=True)
class StageSummary:
    """A stage's stacks. `name` is the stage's construct path: SageBert-dev for a stage of the app, and
    SageBert-Pipeline/Promotion/SageBert-dev for the copy the promotion pipeline deploys (the same CloudFormation
    stacks, nested in the pipeline's stack)."""

    name: str
    stacks: list[StackSummary]

    @property
    def in_pipeline(self) -> bool:
        """A stage nested in another construct: the promotion pipeline's copy of an app stage."""
        return "/" in self.name


def read_assembly(outdir: Path) -> list[StageSummary]:
    """Stages (nested cloud assemblies) and their stacks, from cdk.out's manifests."""
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    stages = []
    for artifact_id, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        stage_dir = outdir / artifact["properties"]["directoryName"]
        stage_manifest = json.loads((stage_dir / "manifest.json").read_text(encoding="utf-8"))
        stacks = []
        for stack_id, stack in sorted(stage_manifest["artifacts"].items()):
            if stack["type"] != "aws:cloudformation:stack":
                continue
            template = stage_dir / stack["properties"]["templateFile"]
            counts: dict[str, int] = {}
            for resource in json.loads(template.read_text(encoding="utf-8")).get("Resources", {}).values():
                counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
            stacks.append(
                StackSummary(
                    name=stack.get("displayName", stack_id),
                    template=template,
                    resources=counts,
                    region=environment_region(stack.get("environment", "")),
                )
            )
        name = artifact["properties"].get("displayName") or artifact_id.removeprefix("assembly-")
        stages.append(StageSummary(name=name, stacks=stacks))
    return stages


def environment_region(environment: str) -> str | None:
    """The region of a manifest's `aws://<account>/<region>`, None for CDK's `unknown-region`."""
    region = environment.rsplit("/", 1)[-1]
    return None if region in ("", "unknown-region") else region


def stage_templates(outdir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Stage name -> stack name -> template, from a synthesized cloud assembly (cdk.out)."""
    return {
        stage.name: {
            stack.name.split("/")[-1]: json.loads(stack.template.read_text(encoding="utf-8")) for stack in stage.stacks
        }
        for stage in read_assembly(outdir)
    }
