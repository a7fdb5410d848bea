"""Which CloudFormation resource types exist in which region, read from the provider schemas cfn-lint bundles.

CloudFormation fails a stack whose template names a resource type the region does not offer ("Template format
error: Unrecognized resource types"), after the stacks before it in the stage have deployed. Neither cdk-nag nor
a plain `cfn-lint` run (which lints for us-east-1) sees that. cfn-lint ships one file per region
(cfnlint/data/schemas/providers/<region>.json, keys are the resource types CloudFormation's registry lists there;
`cfn-lint --regions <region>` reports the missing ones as E3006). sagebert reads the files bundled with the pinned
cfn-lint (requirements/lock.txt), not a newer copy that `cfn-lint --update-specs` may have put in the user's cache,
so synth gives the same templates everywhere. Plain data (no CDK, no cfn-lint import), for the config and the
region rule alike. https://github.com/aws-cloudformation/cfn-lint (src/cfnlint/data/schemas/providers)

What the data cannot tell: its age (schema_date in cfn-lint's data/schemas/version.json) and how exactly it
matches what CloudFormation accepts today. A region with no provider file (me-south-1 in cfn-lint 1.58.0; cfn-lint
itself then lints it as us-east-1) has nothing to show, so sagebert admits no stack there.

me-central-1: botocore's endpoints.json and the AWS General Reference ("Amazon SageMaker AI endpoints and quotas")
list the SageMaker API in me-central-1, yet its provider schema lists newer SageMaker types (e.g.
AWS::SageMaker::InferenceComponent, ModelPackageGroup) but not AWS::SageMaker::Model, EndpointConfig or Endpoint.
Without a deployment there to show otherwise, the schema is taken as the truth: every stage (each has a model and
an endpoint) refuses me-central-1. A cfn-lint whose data lists them lifts that with no change here.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable
from functools import cache
from importlib.metadata import version
from pathlib import Path

# The logical id of every stack's region rule (infra/catalog/regions.py); the region gate reads it back (here, so that
# the gate needs no CDK import).
RULE_ID = "SupportedRegion"

# CDK's own metadata resource: CDK adds it only under a condition on the regions that have it, so it never stops
# a deployment. Custom:: types are not in the data: they are backed by a Lambda function, which is.
_IGNORED = frozenset({"AWS::CDK::Metadata"})


def _data_dir() -> Path:
    """cfn-lint's bundled data/schemas folder, found without importing cfn-lint (its import is slow)."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed; it is a synth dependency (pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "schemas"


@cache
def source() -> str:
    """The data's name for messages: 'cfn-lint 1.58.0 provider schemas of 2026-10-20'."""
    stamp = json.loads((_data_dir() / "version.json").read_text(encoding="utf-8")).get("schema_date", "undated")
    return f"cfn-lint {version('cfn-lint')} provider schemas of {stamp[:10]}"


@cache
def types_in(region: str) -> frozenset[str] | None:
    """Every resource type CloudFormation offers in `region`, or None when the data has no file for it."""
    path = _data_dir() / "providers" / f"{region}.json"
    if not path.is_file():
        return None
    return frozenset(json.loads(path.read_text(encoding="utf-8")))


def checked(types: Iterable[str]) -> frozenset[str]:
    """The types the data can speak for: AWS:: types, less CDK's metadata resource."""
    return frozenset(t for t in types if t.startswith("AWS::") and t not in _IGNORED)


def missing(region: str, types: Iterable[str]) -> list[str]:
    """The types of `types` that `region` lacks, sorted (all of them when the data has no file for it)."""
    offered = types_in(region)
    return sorted(t for t in checked(types) if offered is None or t not in offered)


def regions_with(types: Iterable[str], among: Iterable[str]) -> frozenset[str]:
    """The regions of `among` that offer every type of `types`."""
    wanted = checked(types)
    return frozenset(r for r in among if (offered := types_in(r)) is not None and wanted <= offered)


def lacking(types: Iterable[str], among: Iterable[str]) -> dict[str, list[str]]:
    """Type -> the regions of `among` without it (sorted), for the types some region lacks; a region the data
    has no file for is left out here (see `unknown`)."""
    found: dict[str, list[str]] = {}
    known = sorted(r for r in among if types_in(r) is not None)
    for type_ in sorted(checked(types)):
        absent = [r for r in known if type_ not in (types_in(r) or ())]
        if absent:
            found[type_] = absent
    return found


def unknown(among: Iterable[str]) -> list[str]:
    """The regions of `among` the data has no file for (sorted)."""
    return sorted(r for r in among if types_in(r) is None)
