"""After `cdk synth`: the gates (cdk-nag findings, cfn-lint, sagebert's deploy gates) over every synthesized
template, and a per-stage summary."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.catalog import compute_profiles
from infra.config.stage import STAGE_PREFIX, load_all, stage_files
from sagebert import paths
from sagebert.assembly import StageSummary, read_assembly, stage_templates
from sagebert.checks import authorization, deploy_gates, region_gate, service_rules
from sagebert.tables import columns


@dataclass(frozen=True)
class TemplateGate:
    """A check over one group of templates (a stage's stacks, or the top-level ones) that `make synth` runs: what it
    is, the problems it finds (one message each), its failure header and its verdict when it finds none."""

    name: str
    problems: Callable[[Mapping[str, Any]], Sequence[object]]
    failure: str
    success: str


TEMPLATE_GATES = (
    TemplateGate(
        "retry safety",
        deploy_gates.retained_physical_names,
        "retained resources with a fixed physical name",
        "no retained resource has a fixed physical name (a failed first create can be retried)",
    ),
    TemplateGate(
        "export stability",
        deploy_gates.fragile_exports,
        "imported exports that any change renames",
        "no imported export names a resource that every change replaces",
    ),
    TemplateGate(
        "key lifetime",
        deploy_gates.outlived_keys,
        "kept resources whose encryption key is deleted",
        "nothing kept after deletion is encrypted with a key deleted with its stack",
    ),
    TemplateGate(
        "service rules",
        service_rules.problems,
        "values SageMaker's documentation refuses",
        "rolling-update batches and transform request sizes within SageMaker's documented limits",
    ),
)


def endpoints(stage: StageSummary) -> list[str]:
    """'<profile> <instance type> x<count>' (or 'serverless <MB> MB') for every production variant."""
    found = []
    for stack in stage.stacks:
        template = json.loads(stack.template.read_text(encoding="utf-8"))
        for resource in template.get("Resources", {}).values():
            if resource["Type"] == "AWS::SageMaker::EndpointConfig":
                is_async = "AsyncInferenceConfig" in resource["Properties"]
                for variant in resource["Properties"]["ProductionVariants"]:
                    found.append(_variant_summary(variant, is_async))
    return found


def _variant_summary(variant: dict[str, Any], is_async: bool) -> str:
    serverless = variant.get("ServerlessConfig")
    if serverless is not None:
        return f"serverless {serverless['MemorySizeInMB']} MB x{serverless['MaxConcurrency']} concurrent"
    instance_type = variant["InstanceType"]
    family = compute_profiles.family(instance_type)
    profile = next((p.name for p in compute_profiles.PROFILES.values() if family in p.families), "?")
    return f"{'async' if is_async else profile} {instance_type} x{variant['InitialInstanceCount']}"


def run_cfn_lint(templates: list[Path]) -> int:
    """cfn-lint with the project's config (ignored checks and their reasons live there)."""
    command = [
        str(Path(sys.executable).with_name("cfn-lint")),
        "--config-file",
        str(paths.CFN_LINT_CONFIG),
        "--",
        *map(str, templates),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.stdout.strip():
        print(result.stdout.rstrip(), file=sys.stderr)
    if result.stderr.strip():
        print(result.stderr.rstrip(), file=sys.stderr)
    return result.returncode


def nag_failures(outdir: Path) -> list[str]:
    """Unacknowledged cdk-nag findings recorded by the last synth (rule and construct paths).

    `app.synth()` raises on them, but the CDK CLI has been seen to exit 0 all the same, so the
    report file is checked too."""
    report = outdir / "validation-report.json"
    if not report.is_file():
        return []
    failures = []
    for plugin in json.loads(report.read_text(encoding="utf-8")).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            where = ", ".join(c["constructPath"] for c in violation["violatingConstructs"])
            failures.append(f"{violation['ruleName']}: {where}")
    return failures


def render(stages: list[StageSummary]) -> str:
    """One row per stage of the app (the promotion pipeline's copies deploy the same stacks: not repeated)."""
    rows = [("stage", "stacks (resources)", "resources", "endpoint")]
    for stage in stages:
        if stage.in_pipeline:
            continue
        stacks = ", ".join(f"{s.name.split('/')[-1]} ({sum(s.resources.values())})" for s in stage.stacks)
        total = sum(sum(s.resources.values()) for s in stage.stacks)
        serving = "; ".join(endpoints(stage)) or "-"
        rows.append((stage.name, stacks, str(total), serving))
    return "\n".join(columns(rows))


def stale_stages(stages: list[StageSummary], config_dir: Path) -> str | None:
    """None when the assembly holds exactly the stages config_dir defines, else what differs. The promotion
    pipeline's copies of those stages are no stages of their own."""
    synthesized = {stage.name for stage in stages if stage.name.startswith(STAGE_PREFIX) and not stage.in_pipeline}
    configured = {f"{STAGE_PREFIX}{file.stem}" for file in stage_files(config_dir)}
    if synthesized == configured:
        return None
    extra, missing = sorted(synthesized - configured), sorted(configured - synthesized)
    return f"stages without a config file: {extra or 'none'}; config files without a stage: {missing or 'none'}"


def authorization_gate(outdir: Path, config_dir: Path, stages: int) -> int:
    """Every run-time call of every stage allowed by its synthesized policies (sagebert.checks.authorization); the
    details, and the grants no call uses, go to authorization-report.json beside the templates."""
    report = authorization.check(authorization.read_stages(outdir, load_all(config_dir)))
    details = outdir / "authorization-report.json"
    details.write_text(json.dumps(report.as_json(), indent=1) + "\n", encoding="utf-8")
    if report.failures:
        print("authorization: run-time calls the synthesized policies do not allow:", file=sys.stderr)
        for failure in report.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"{authorization.summary(report, stages)} ({details})")
    return 0


def main(outdir: Path, config_dir: Path = paths.CONFIG_DIR) -> int:
    if not (outdir / "manifest.json").is_file():
        print(f"{outdir}/manifest.json not found; run `make synth` first.", file=sys.stderr)
        return 1
    stale = stale_stages(read_assembly(outdir), config_dir)
    if stale:
        print(f"{outdir} is stale against {config_dir}/ ({stale}): run `make synth` again.", file=sys.stderr)
        return 1
    failures = nag_failures(outdir)
    if failures:
        print(
            "cdk-nag: unacknowledged findings (fix them, or acknowledge each with a specific reason "
            "via infra.operations.compliance.acknowledge):",
            file=sys.stderr,
        )
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print("cdk-nag: AwsSolutions and NIST 800-53 R5 - no unacknowledged findings")
    stages = read_assembly(outdir)
    # The stages' stacks, and top-level stacks outside any stage (the promotion pipeline, when enabled).
    templates = [stack.template for stage in stages for stack in stage.stacks]
    templates += sorted(outdir.glob("*.template.json"))
    code = run_cfn_lint(templates)
    if code != 0:
        print(
            f"cfn-lint found problems (exit {code}); fix them or, for a warning that is wrong for "
            f"sagebert, list it with its reason in {paths.CFN_LINT_CONFIG.name}.",
            file=sys.stderr,
        )
        return 1
    print(f"cfn-lint: {len(templates)} templates, no errors or warnings")
    # Every stage's stacks, and the top-level ones (the promotion pipeline's).
    groups = [*stage_templates(outdir).values()]
    groups.append({path.name: json.loads(path.read_text(encoding="utf-8")) for path in outdir.glob("*.template.json")})
    for gate in TEMPLATE_GATES:
        if problems := [problem for group in groups for problem in gate.problems(group)]:
            print(f"{gate.name}: {gate.failure}:", file=sys.stderr)
            print("\n".join(f"  - {problem}" for problem in problems), file=sys.stderr)
            return 1
        print(f"{gate.name}: {gate.success}")
    stacks = region_gate.assembly_stacks(outdir)
    if missing := region_gate.problems(stacks):
        print("regions: a resource type missing from a region its stack can deploy to:", file=sys.stderr)
        print("\n".join(f"  - {problem}" for problem in missing), file=sys.stderr)
        return 1
    print(f"regions: every resource type exists in every region each stage admits ({region_gate.summary(stacks)})")
    code = authorization_gate(outdir, config_dir, len(stages))
    if code != 0:
        return code
    print(render(stages))
    return 0
