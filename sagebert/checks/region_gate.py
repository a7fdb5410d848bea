"""The region gate: every resource type of every synthesized stack exists in every region that stack can deploy to.

CloudFormation refuses a template naming a type its region lacks ("Unrecognized resource types"); the stacks of the
stage deployed before it stay. The regions a stack can deploy to are its literal region, or for an
environment-agnostic stack the list its `SupportedRegion` rule admits (infra/catalog/regions.py). The types per
region are cfn-lint's provider schemas (infra/catalog/resource_regions.py): the data `cfn-lint --regions` checks
as E3006. This reads only the templates and manifests, so it also catches a rule that admits too much, whatever
wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.catalog import resource_regions
from infra.catalog.resource_regions import RULE_ID
from sagebert.assembly import environment_region, read_assembly


@dataclass(frozen=True)
class Stack:
    name: str  # <stage>/<stack>, or the stack name of a top-level stack
    region: str | None  # literal region; None when environment-agnostic
    template: dict[str, Any]


def admitted(template: dict[str, Any]) -> list[str] | None:
    """The regions the template's SupportedRegion rule admits (Fn::Contains [regions, AWS::Region]); None without
    one."""
    rule = template.get("Rules", {}).get(RULE_ID)
    if rule is None:
        return None
    (assertion,) = rule["Assertions"]
    regions, region = assertion["Assert"]["Fn::Contains"]
    if region != {"Ref": "AWS::Region"}:
        raise ValueError(f"{RULE_ID}: expected Fn::Contains over AWS::Region, got {region!r}")
    return list(regions)


def problems(stacks: list[Stack]) -> list[str]:
    """'<stack>: <type> does not exist in <region>' for each type a region the stack admits lacks (and a line for
    an environment-agnostic stack with no rule, which admits every region)."""
    found = []
    for stack in stacks:
        regions = [stack.region] if stack.region is not None else admitted(stack.template)
        if regions is None:
            found.append(f"{stack.name}: environment-agnostic with no {RULE_ID} rule: it admits every region")
            continue
        types = {resource["Type"] for resource in stack.template.get("Resources", {}).values()}
        for region in regions:
            if resource_regions.types_in(region) is None:
                found.append(f"{stack.name}: admits {region}, which {resource_regions.source()} have no data for")
                continue
            found += [
                f"{stack.name}: {type_} does not exist in {region}" for type_ in resource_regions.missing(region, types)
            ]
    return found


def assembly_stacks(outdir: Path) -> list[Stack]:
    """Every stack of a synthesized assembly: the stages' and the top-level ones (the promotion pipeline's)."""
    found = [
        Stack(
            name=f"{stage.name}/{stack.name.split('/')[-1]}",
            region=stack.region,
            template=json.loads(stack.template.read_text(encoding="utf-8")),
        )
        for stage in read_assembly(outdir)
        for stack in stage.stacks
    ]
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    for name, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact["type"] == "aws:cloudformation:stack":
            template = json.loads((outdir / artifact["properties"]["templateFile"]).read_text(encoding="utf-8"))
            found.append(
                Stack(name=name, region=environment_region(artifact.get("environment", "")), template=template)
            )
    return found


def summary(stacks: list[Stack]) -> str:
    """'dev: 15 regions, prod: eu-west-1, ...': per stage (or top-level stack), what it admits."""
    by_owner: dict[str, set[str]] = {}
    for stack in stacks:
        owner = stack.name.split("/")[0].removeprefix("SageBert-")
        by_owner.setdefault(owner, set()).update([stack.region] if stack.region else admitted(stack.template) or [])
    return ", ".join(
        f"{owner}: {next(iter(regions)) if len(regions) == 1 else f'{len(regions)} regions'}"
        for owner, regions in by_owner.items()
    )
