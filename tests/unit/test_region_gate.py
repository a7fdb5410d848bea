"""The region gate (sagebert.checks.region_gate) on hand-built templates, and cfn-lint agreeing with its data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.catalog import resource_regions
from sagebert.checks.region_gate import Stack, admitted, problems, summary


def template(regions: list[str] | None, *types: str) -> dict[str, Any]:
    """A stack of `types` whose SupportedRegion rule (as infra/catalog/regions.py writes it) admits `regions`."""
    found: dict[str, Any] = {
        "Resources": {f"R{i}": {"Type": t, "Properties": {}} for i, t in enumerate(types)},
    }
    if regions is not None:
        contains = {"Fn::Contains": [regions, {"Ref": "AWS::Region"}]}
        found["Rules"] = {"SupportedRegion": {"Assertions": [{"Assert": contains, "AssertDescription": "sagebert"}]}}
    return found


def test_a_rule_admitting_a_region_without_a_type_fails() -> None:
    serving = template(["eu-west-1", "eu-west-3"], "AWS::SageMaker::InferenceComponent", "AWS::S3::Bucket")
    stacks = [Stack("SageBert-x/Serving", None, serving)]
    assert admitted(serving) == ["eu-west-1", "eu-west-3"]
    assert problems(stacks) == ["SageBert-x/Serving: AWS::SageMaker::InferenceComponent does not exist in eu-west-3"]
    assert problems([Stack("SageBert-x/Serving", None, template(["eu-west-1"], "AWS::SageMaker::Model"))]) == []
    assert summary(stacks) == "x: 2 regions"


def test_pinned_regions_unknown_regions_and_missing_rules_fail() -> None:
    model = template(None, "AWS::SageMaker::Model")
    assert problems([Stack("SageBert-x/Serving", "me-central-1", model)]) == [
        "SageBert-x/Serving: AWS::SageMaker::Model does not exist in me-central-1"
    ]
    assert problems([Stack("SageBert-x/Serving", "eu-west-1", model)]) == []
    assert "admits every region" in problems([Stack("SageBert-x/Serving", None, model)])[0]
    assert "have no data for" in problems([Stack("SageBert-x/Serving", "me-south-1", model)])[0]


def test_cfn_lint_reports_the_same_gap(tmp_path: Path) -> None:
    # The gate's data is what `cfn-lint --regions` checks as E3006: the two agree on a hand-built template.
    path = tmp_path / "serving.json"
    path.write_text(json.dumps(template(None, "AWS::SageMaker::InferenceComponent")), encoding="utf-8")
    lint = [str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable", "--regions"]
    result = subprocess.run([*lint, "eu-west-1", "eu-west-3", "--", str(path)], capture_output=True, text=True)
    assert result.returncode != 0 and "E3006" in result.stdout
    assert [line for line in result.stdout.splitlines() if "E3006" in line and "eu-west-3" in line]
    assert not [line for line in result.stdout.splitlines() if "eu-west-1" in line]
    assert resource_regions.missing("eu-west-3", ["AWS::SageMaker::InferenceComponent"]) == [
        "AWS::SageMaker::InferenceComponent"
    ]


def test_the_gates_run_without_starting_the_cdk() -> None:
    # `make synth`'s report runs every gate in its own process: importing aws_cdk there would start jsii (seconds,
    # and Node's banners in the output) for nothing.
    import subprocess
    import sys

    probe = "import sys, sagebert.report.synth; print('aws_cdk' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
