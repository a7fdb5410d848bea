"""PromotionPipeline: its settings file, and the pipeline the app builds from the shipped stage files once each
pins an account and region (in a temporary config folder; the shipped files stay environment-agnostic)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.cx_api import CloudAssembly

from app import ROOT, build_app, feature_flags, project_files
from infra.config.errors import ConfigError
from infra.config.pipeline import PipelineConfig, load_pipeline_config
from infra.config.stage import StageConfig, load_all
from infra.pipeline import (
    PIPELINE_STACK,
    SCALE_FROM_ZERO_RETRY_WAIT_S,
    SCALE_FROM_ZERO_WAIT_S,
    PipelineStack,
    smoke_role_name,
    smoke_runner_role_name,
)
from sagebert.report import synth as synth_report

ACCOUNTS = {"dev": "111111111111", "staging": "222222222222", "prod": "333333333333"}
TOOLING = "444444444444"
REGION = "eu-west-1"


def pinned_config(folder: Path, *, notification_email: str | None = "ml-oncall@example.com") -> Path:
    """The shipped stage files with account and region added (dev with API keys), and config/pipeline.yaml
    enabled."""
    folder.mkdir(parents=True, exist_ok=True)
    for stage, account in ACCOUNTS.items():
        settings = yaml.safe_load((ROOT / "config" / f"{stage}.yaml").read_text(encoding="utf-8"))
        settings.update(account=account, region=REGION)
        if stage == "dev":
            # A non-production stage may keep API keys for per-key quotas: dev does here, so the pipeline's smoke
            # test covers both ways of calling (the shipped stages all use IAM).
            settings["api"].update(auth="api_key", quota={"limit": 10000, "period": "DAY"})
        (folder / f"{stage}.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    pipeline = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text(encoding="utf-8"))
    pipeline.update(enabled=True, account=TOOLING, region=REGION, notification_email=notification_email)
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def assembly(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    # Synth raises (cdk-nag ValidationFailed) on any unacknowledged finding: reaching the tests means the
    # compliance gates passed for the pipeline stack and every stage it deploys.
    config_dir = pinned_config(tmp_path_factory.mktemp("config"))
    return build_app(config_dir=config_dir, outdir=str(tmp_path_factory.mktemp("cdk.out"))).synth()


def pipeline_template(assembly: CloudAssembly) -> dict[str, Any]:
    template: dict[str, Any] = assembly.get_stack_by_name(PIPELINE_STACK).template
    return template


def resources(template: dict[str, Any], resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((k, r) for k, r in template["Resources"].items() if r["Type"] == resource_type)


def pipeline_stages(assembly: CloudAssembly) -> list[dict[str, Any]]:
    ((_, pipeline),) = resources(pipeline_template(assembly), "AWS::CodePipeline::Pipeline")
    stages: list[dict[str, Any]] = pipeline["Properties"]["Stages"]
    return stages


def project(assembly: CloudAssembly, action: dict[str, Any]) -> dict[str, Any]:
    project: dict[str, Any] = pipeline_template(assembly)["Resources"][action["Configuration"]["ProjectName"]["Ref"]]
    return project


def buildspec(project: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(project["Properties"]["Source"]["BuildSpec"])
    return spec


def stage_templates(assembly: CloudAssembly, stage: str) -> dict[str, dict[str, Any]]:
    nested = assembly.get_nested_assembly(f"assembly-{PIPELINE_STACK}-Promotion-SageBert-{stage}")
    return {stack.stack_name.split("-")[-1]: stack.template for stack in nested.stacks}


def action(stage: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (a for a in stage["Actions"] if a["Name"] == name)
    return found


# --- config/pipeline.yaml -----------------------------------------------------------------------------------


@pytest.fixture
def stage_dir(tmp_path: Path) -> tuple[Path, dict[str, StageConfig]]:
    for stage in ACCOUNTS:
        shutil.copy(ROOT / "config" / f"{stage}.yaml", tmp_path / f"{stage}.yaml")
    return tmp_path, load_all(tmp_path)


VALID = {
    "enabled": False,
    "repository": "example-org/sagebert",
    "connection_arn": "arn:aws:codeconnections:eu-west-1:111122223333:connection/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "account": "111122223333",
    "region": "eu-west-1",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"repository": "sagebert"}, "repository = 'sagebert': does not match"),
        ({"connection_arn": "arn:aws:iam::111122223333:role/x"}, "connection_arn = 'arn:aws:iam::111122223333:role/x'"),
        ({"account": "1234"}, "account = '1234': does not match ^\\d{12}$"),
        ({"region": "Ireland"}, "region = 'Ireland': does not match"),
        ({"branch": "release..2"}, "branch = 'release..2' is not a git branch name"),
        ({"stages": []}, "stages = []: List should have at least 1 item"),
        ({"stages": ["dev", "dev"]}, "stages = ['dev', 'dev'] lists a stage twice"),
        ({"stages": ["pipeline"]}, "stages[0] = 'pipeline': `pipeline` is reserved"),
        ({"stages": ["Dev"]}, "stages[0] = 'Dev' is not a stage name"),
        ({"stages": ["dev", "qa", "prod"]}, "stages[1] = 'qa' has no stage file"),
        ({"approval_before": ["qa"]}, "approval_before[0] = 'qa' is not a promoted stage; allowed: dev, staging, prod"),
        ({"notification_email": "ops"}, "notification_email = 'ops': does not match"),
        ({"enabled": "sometimes"}, "enabled = 'sometimes': Input should be a valid boolean"),
        ({"approvals": ["prod"]}, "approvals: unknown key (value ['prod']); allowed keys: enabled, repository"),
        ({"repository": None}, "repository = None: Input should be a valid string"),
        ({"enabled": True}, "stages[0] = 'dev': "),
    ],
)
def test_bad_pipeline_settings_name_file_key_value_and_what_is_allowed(
    stage_dir: tuple[Path, dict[str, StageConfig]], change: dict[str, Any], message: str
) -> None:
    folder, stages = stage_dir
    (folder / "pipeline.yaml").write_text(yaml.safe_dump({**VALID, **change}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline_config(folder, stages)
    assert str(caught.value).startswith(f"{folder / 'pipeline.yaml'}: invalid configuration:")
    assert message in str(caught.value)


def test_an_enabled_pipeline_needs_account_and_region_in_every_promoted_stage(
    stage_dir: tuple[Path, dict[str, StageConfig]],
) -> None:
    folder, stages = stage_dir
    (folder / "pipeline.yaml").write_text(yaml.safe_dump({**VALID, "enabled": True}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline_config(folder, stages)
    for stage in ("dev", "staging", "prod"):
        assert (
            f"stages[{list(ACCOUNTS).index(stage)}] = '{stage}': {folder / (stage + '.yaml')} has no account and "
            in (str(caught.value))
        )
    assert "CDK Pipelines deploys each stage to an explicit environment" in str(caught.value)


def test_a_missing_key_is_named_with_what_it_means(stage_dir: tuple[Path, dict[str, StageConfig]]) -> None:
    folder, stages = stage_dir
    (folder / "pipeline.yaml").write_text(
        yaml.safe_dump({k: v for k, v in VALID.items() if k != "repository"}), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"repository: required key is missing\. \(GitHub repository"):
        load_pipeline_config(folder, stages)
    (folder / "pipeline.yaml").write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_pipeline_config(folder, stages)


def test_the_shipped_pipeline_file_is_a_disabled_example_and_never_a_stage(tmp_path: Path) -> None:
    stages = load_all(ROOT / "config")
    assert "pipeline" not in stages
    shipped = load_pipeline_config(ROOT / "config", stages)
    assert shipped is not None and shipped.enabled is False
    assert shipped.stages == ["dev", "staging", "prod"] and shipped.approval_before == ["prod"]
    assert load_pipeline_config(tmp_path, stages) is None  # no file: no pipeline
    app = build_app(outdir=str(tmp_path / "out"))  # constructed only: disabled means no pipeline stack
    assert PIPELINE_STACK not in {child.node.id for child in app.node.children}


def test_the_promotion_page_documents_every_pipeline_key(repo_root: Path) -> None:
    page = (repo_root / "docs" / "promotion.md").read_text(encoding="utf-8")
    section = page[page.index("### `config/pipeline.yaml`") : page.index("## Defaults")]
    for key, field in PipelineConfig.model_fields.items():
        assert f"| `{key}` |" in section, f"docs/promotion.md's pipeline reference lacks {key}"
        assert field.description, f"{key} has no description"


# --- the pipeline ---------------------------------------------------------------------------------------------


def test_stages_are_promoted_in_order_with_an_approval_before_prod_only(assembly: CloudAssembly) -> None:
    stages = pipeline_stages(assembly)
    assert [s["Name"] for s in stages] == [
        "Source",
        "Build",
        "UpdatePipeline",
        "Assets",
        "SageBert-dev",
        "SageBert-staging",
        "SageBert-prod",
    ]
    source = stages[0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["FullRepositoryId"] == "example-org/sagebert"
    assert source["Configuration"]["BranchName"] == "main"
    assert source["Configuration"]["ConnectionArn"].startswith("arn:aws:codestar-connections:")
    approvals = {s["Name"]: [a for a in s["Actions"] if a["ActionTypeId"]["Provider"] == "Manual"] for s in stages}
    assert {name for name, found in approvals.items() if found} == {"SageBert-prod"}
    prod = stages[-1]
    first = min(a["RunOrder"] for a in prod["Actions"])
    assert [a["Name"] for a in prod["Actions"] if a["RunOrder"] == first] == ["Approve-prod"]
    # Each stage deploys to its own account, through that account's bootstrap roles.
    for stage in stages[4:]:
        account = ACCOUNTS[stage["Name"].removeprefix("SageBert-")]
        deploys = [a for a in stage["Actions"] if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        assert deploys and all(account in json.dumps(a["RoleArn"]) for a in deploys)


def test_a_smoke_test_runs_after_every_stage_with_an_api(assembly: CloudAssembly) -> None:
    for stage in pipeline_stages(assembly)[4:]:
        name = stage["Name"].removeprefix("SageBert-")
        smoke = action(stage, f"SmokeTest-{name}")
        assert smoke["RunOrder"] == max(a["RunOrder"] for a in stage["Actions"])  # after every deploy
        variables = {v["name"]: v["value"] for v in json.loads(smoke["Configuration"]["EnvironmentVariables"])}
        assert re.fullmatch(r"#\{SageBertPipelinePromotionSageBert\w+Api\w+\.ApiUrl\}", variables["API_URL"])
        commands = buildspec(project(assembly, smoke))["phases"]["build"]["commands"]
        (command,) = commands
        assert command.startswith(f'python -m sagebert smoke --url "$API_URL" --region {REGION} --role-arn ')
        # dev (here) authorizes with an API key; staging and prod with IAM (SigV4).
        assert ('--api-key-id "$API_KEY_ID"' in command) == (name == "dev")
        assert ("API_KEY_ID" in variables) == (name == "dev")
        # dev scales to zero: its smoke test keeps trying through a cold start (15 min), and its build may last that
        # long; the others fail fast.
        cold_start = f"--attempts {SCALE_FROM_ZERO_WAIT_S // SCALE_FROM_ZERO_RETRY_WAIT_S + 1} --retry-wait 30"
        assert (cold_start in command) == (name == "dev")
        timeout = project(assembly, smoke)["Properties"]["TimeoutInMinutes"]
        assert timeout == (10 + SCALE_FROM_ZERO_WAIT_S // 60 if name == "dev" else 10)


def test_smoke_test_permissions_are_least_privilege(assembly: CloudAssembly) -> None:
    template = pipeline_template(assembly)
    roles = {r["Properties"].get("RoleName"): key for key, r in resources(template, "AWS::IAM::Role")}
    for stage, account in ACCOUNTS.items():
        # The runner (tooling account) may only assume the stage's smoke-test role.
        runner = roles[smoke_runner_role_name(stage)]
        (policy,) = (
            p for _, p in resources(template, "AWS::IAM::Policy") if p["Properties"]["Roles"] == [{"Ref": runner}]
        )
        (assume,) = (
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "AssumeSmokeTestRole"
        )
        assert assume["Action"] == "sts:AssumeRole"
        assert json.dumps(assume["Resource"]).endswith(f':iam::{account}:role/{smoke_role_name(stage)}"]]}}')
        # The stage's role trusts only that runner, and may do only what a caller of this API needs.
        smoke_stack = stage_templates(assembly, stage)["SmokeTest"]
        ((_, role),) = resources(smoke_stack, "AWS::IAM::Role")
        assert role["Properties"]["RoleName"] == smoke_role_name(stage)
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert f":iam::{TOOLING}:root" in json.dumps(trust["Principal"])
        assert json.dumps(trust["Condition"]["ArnEquals"]["aws:PrincipalArn"]).endswith(
            f':iam::{TOOLING}:role/{smoke_runner_role_name(stage)}"]]}}'
        )
        ((_, managed),) = resources(smoke_stack, "AWS::IAM::ManagedPolicy")
        (statement,) = managed["Properties"]["PolicyDocument"]["Statement"]
        resource = json.dumps(statement["Resource"])
        if stage == "dev":
            assert statement["Action"] == "apigateway:GET"
            assert "::/apikeys/" in resource and "*" not in resource
        else:
            assert statement["Action"] == "execute-api:Invoke"
            assert resource.endswith('/api/POST/v1/predict"]]}') and "*" not in resource
        assert not list(resources(smoke_stack, "AWS::IAM::Policy"))  # no inline policy


def test_the_synth_step_runs_the_readme_commands_on_python_node_and_java(assembly: CloudAssembly) -> None:
    build = pipeline_stages(assembly)[1]
    synth = project(assembly, action(build, "Synth"))
    spec = buildspec(synth)
    assert spec["phases"]["build"]["commands"] == ["make test", "make synth"]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20", "java": "corretto17"}
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    assert synth["Properties"]["Environment"]["Image"] == "aws/codebuild/standard:7.0"
    assert synth["Properties"]["Environment"]["PrivilegedMode"] is False  # no Docker
    assert "EncryptionKey" in synth["Properties"]


def test_the_pipeline_mutates_itself_with_the_pinned_cli(assembly: CloudAssembly) -> None:
    update = pipeline_stages(assembly)[2]
    spec = buildspec(project(assembly, action(update, "SelfMutate")))
    cli = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["aws-cdk"]
    assert f"npm install -g aws-cdk@{cli}" in spec["phases"]["install"]["commands"]
    assert any(f"deploy {PIPELINE_STACK}" in c for c in spec["phases"]["build"]["commands"])


def test_the_same_model_archive_is_promoted_through_every_stage(assembly: CloudAssembly) -> None:
    keys = {}
    for stage in ACCOUNTS:
        ((_, model),) = resources(stage_templates(assembly, stage)["Serving"], "AWS::SageMaker::Model")
        url = model["Properties"]["PrimaryContainer"]["ModelDataUrl"]
        keys[stage] = url.rsplit("/", 1)[1]
    assert len(set(keys.values())) == 1, keys
    archive_hash = keys["dev"].split(".")[0]
    # Published once, by that hash, to every stage's account.
    assets = pipeline_stages(assembly)[3]
    (publish,) = (a for a in assets["Actions"] if archive_hash in json.dumps(buildspec(project(assembly, a))))
    commands = json.dumps(buildspec(project(assembly, publish)))
    assert all(f"{archive_hash}:{account}-{REGION}" in commands for account in ACCOUNTS.values())


def test_the_artifact_bucket_is_encrypted_versioned_and_logged(assembly: CloudAssembly) -> None:
    template = pipeline_template(assembly)
    buckets = dict(resources(template, "AWS::S3::Bucket"))
    (artifacts,) = (b for b in buckets.values() if "LoggingConfiguration" in b["Properties"])
    encryption = artifacts["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert artifacts["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    keys = [k for _, k in resources(template, "AWS::KMS::Key")]
    assert keys and all(k["Properties"]["EnableKeyRotation"] is True for k in keys)
    (topic,) = (t for _, t in resources(template, "AWS::SNS::Topic"))
    assert "KmsMasterKeyId" in topic["Properties"]
    (rule,) = (r for _, r in resources(template, "AWS::CodeStarNotifications::NotificationRule"))
    assert set(rule["Properties"]["EventTypeIds"]) == {
        "codepipeline-pipeline-manual-approval-needed",
        "codepipeline-pipeline-pipeline-execution-failed",
    }


def test_the_pipeline_templates_pass_cdk_nag_and_cfn_lint(assembly: CloudAssembly) -> None:
    out = Path(assembly.directory)
    assert synth_report.nag_failures(out) == []
    smoke_stacks = sorted(out.glob(f"assembly-{PIPELINE_STACK}-*/*SmokeTest*.template.json"))
    assert len(smoke_stacks) == 3
    assert synth_report.run_cfn_lint(smoke_stacks) == 0
    # The pipeline's own template too, with the project's settings (the two findings in CDK Pipelines' pipeline
    # resource are silenced on that resource, with the reason, by the construct).
    assert synth_report.run_cfn_lint([out / f"{PIPELINE_STACK}.template.json"]) == 0


def test_the_pipeline_stages_deploy_the_same_stacks_as_by_hand(assembly: CloudAssembly) -> None:
    # Same CloudFormation stack names: a manual `cdk deploy 'SageBert-dev/*'` and the pipeline update the same stacks.
    for stage in ACCOUNTS:
        by_hand = {s.stack_name for s in assembly.get_nested_assembly(f"assembly-SageBert-{stage}").stacks}
        piped = {
            s.stack_name
            for s in assembly.get_nested_assembly(f"assembly-{PIPELINE_STACK}-Promotion-SageBert-{stage}").stacks
        }
        assert piped == by_hand | {f"SageBert-{stage}-SmokeTest"}


def test_a_stage_without_an_api_gets_a_warning_and_no_smoke_test(tmp_path: Path) -> None:
    # Constructed only (no synth): annotations are recorded when the pipeline is built.
    (tmp_path / "qa.yaml").write_text(
        f"account: '{ACCOUNTS['dev']}'\nregion: {REGION}\n"
        "model: {source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, task: text-classification}\n",
        encoding="utf-8",
    )
    stages = load_all(tmp_path)
    config = PipelineConfig.model_validate({**VALID, "enabled": True, "stages": ["qa"], "approval_before": []})
    app = App(context=feature_flags(), outdir=str(tmp_path / "out"))
    stack = PipelineStack(app, PIPELINE_STACK, config=config, stages=stages, files=project_files())
    warnings = [
        str(entry.data)
        for construct in stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == "aws:cdk:warning"
    ]
    assert any("stage qa has no api: section" in w and "no smoke test" in w for w in warnings)
    assert "SmokeTest" not in {c.node.id for c in stack.promotion.stages["qa"].node.children}
