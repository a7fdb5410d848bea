"""The Model Registry path: the owner stage's model package group and its resource policy, a stage deploying a model
package version (pinned or from the resolved-models file), the refusal without a version, and the promotion
pipeline that resolves the latest Approved version and starts on an approval. Synthesized from a temporary config
folder through build_app, so both cdk-nag packs run; cfn-lint runs on the templates."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk.cx_api import CloudAssembly

from app import ROOT, build_app
from infra.config.errors import ConfigError
from infra.config.resolved_models import RESOLVED_MODELS_FILE, load_resolved_models
from infra.config.stage import load_all
from infra.pipeline import MODEL_PACKAGE_STATE_CHANGE, PIPELINE_STACK, resolve_command
from infra.release.model_registry import GROUP_DESCRIPTION, SHARED_ACTIONS
from sagebert.checks import authorization, deploy_gates
from sagebert.report import synth as synth_report

OWNER, CONSUMER, TOOLING = "111111111111", "222222222222", "444444444444"
REGION = "eu-west-1"
GROUP = "sagebert-models"
PREFIX = "s3://sagebert-owner-artifacts/registry/"
KEY = f"arn:aws:kms:{REGION}:{OWNER}:key/12345678-1234-1234-1234-123456789012"


def write_config(folder: Path, *, version: int | None = 3, pipeline: bool = False) -> Path:
    """Two stages: `owner` creates the group and shares it with `consumer`'s account; `consumer` deploys from it."""
    folder.mkdir(parents=True, exist_ok=True)
    owner = {
        "account": OWNER,
        "region": REGION,
        "registry": {"owner": True, "group": GROUP, "share_with_accounts": [CONSUMER, TOOLING]},
    }
    model: dict[str, Any] = {
        "source": "registry",
        "group": GROUP,
        "group_account": OWNER,
        "model_data_prefix": PREFIX,
        "kms_key_arn": KEY,
    }
    if version is not None:
        model["version"] = version
    consumer = {"account": CONSUMER, "region": REGION, "model": model}
    (folder / "owner.yaml").write_text(yaml.safe_dump(owner), encoding="utf-8")
    (folder / "consumer.yaml").write_text(yaml.safe_dump(consumer), encoding="utf-8")
    if pipeline:
        settings = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text(encoding="utf-8"))
        settings.update(
            enabled=True, account=TOOLING, region=REGION, stages=["owner", "consumer"], approval_before=["consumer"]
        )
        settings.pop("notification_email", None)
        (folder / "pipeline.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return folder


def resolved_file(folder: Path, version: int) -> Path:
    path = folder / "resolved-models.json"
    entry = {
        "model_package_arn": f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package/{GROUP}/{version}",
        "version": version,
        "approval_status": "Approved",
        "resolved_at": "2026-12-01T08:00:00Z",
    }
    path.write_text(json.dumps({"format": 1, "groups": {GROUP: entry}}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def assembly(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    # Synth raises (cdk-nag ValidationFailed) on any unacknowledged finding of either pack.
    config_dir = write_config(tmp_path_factory.mktemp("config"))
    none = tmp_path_factory.mktemp("resolved") / "absent.json"
    return build_app(config_dir=config_dir, outdir=str(tmp_path_factory.mktemp("out")), resolved_models=none).synth()


def templates(assembly: CloudAssembly, stage: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    nested = assembly.get_nested_assembly(f"assembly-{prefix}SageBert-{stage}")
    return {stack.stack_name.split("-")[-1]: stack.template for stack in nested.stacks}


def resources(template: dict[str, Any], resource_type: str) -> Iterator[dict[str, Any]]:
    return (r for r in template["Resources"].values() if r["Type"] == resource_type)


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for policy in resources(template, "AWS::IAM::ManagedPolicy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_owner_stage_creates_the_group_with_a_least_privilege_resource_policy(assembly: CloudAssembly) -> None:
    storage = templates(assembly, "owner")["Storage"]
    (group,) = resources(storage, "AWS::SageMaker::ModelPackageGroup")
    assert group["Properties"]["ModelPackageGroupName"] == GROUP
    # Kept after deletion, but not after a failed first create (its fixed name would block the retry).
    assert group["DeletionPolicy"] == "RetainExceptOnCreate"
    assert deploy_gates.retained_physical_names({"Storage": storage}) == []
    assert group["Properties"]["ModelPackageGroupDescription"] == GROUP_DESCRIPTION
    # The description is create-only and the name fixed: changing one would replace the group under the same name,
    # which CloudFormation refuses; the named-replacement gate says so.
    edited = json.loads(json.dumps(storage))
    for resource in edited["Resources"].values():
        if resource["Type"] == "AWS::SageMaker::ModelPackageGroup":
            resource["Properties"]["ModelPackageGroupDescription"] = "another description"
    (problem,) = deploy_gates.named_replacements({"Storage": storage}, {"Storage": edited})
    assert "keeps its fixed ModelPackageGroupName" in problem
    share, deploy = group["Properties"]["ModelPackageGroupPolicy"]["Statement"]
    assert share["Effect"] == "Allow"
    assert sorted(share["Action"]) == sorted(SHARED_ACTIONS)
    assert share["Resource"] == [
        f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package-group/{GROUP}",
        f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package/{GROUP}/*",
    ]
    # A consumer account's CreateModel with ModelPackageName is authorized against the version's ARN as well.
    assert deploy["Effect"] == "Allow"
    assert deploy["Action"] == ["sagemaker:CreateModel"]
    assert deploy["Resource"] == [f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package/{GROUP}/*"]
    for statement in (share, deploy):
        principals = json.dumps(statement["Principal"])
        assert CONSUMER in principals and TOOLING in principals and OWNER not in principals
    outputs = storage["Outputs"]
    assert outputs["ModelPackageGroupName"]["Value"] == GROUP
    assert "Fn::GetAtt" in outputs["ModelPackageGroupArn"]["Value"]
    assert "RegistryModelDataPrefix" in outputs
    assert "Fn::GetAtt" in json.dumps(outputs["RegistryModelDataKeyArn"]["Value"])
    # Only the owner has a group.
    assert not list(resources(templates(assembly, "consumer")["Storage"], "AWS::SageMaker::ModelPackageGroup"))


def test_the_shared_accounts_model_roles_may_read_the_registered_archives_only(assembly: CloudAssembly) -> None:
    storage = templates(assembly, "owner")["Storage"]
    (shared,) = (
        s
        for policy in resources(storage, "AWS::S3::BucketPolicy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "SharedRegistryModelData"
    )
    assert shared["Action"] == "s3:GetObject"
    assert json.dumps(shared["Resource"]).endswith('/registry/*"]]}')
    patterns = json.dumps(shared["Condition"]["ArnLike"]["aws:PrincipalArn"])
    assert f":iam::{CONSUMER}:role/sagebert/*/serving/*" in patterns and "/sagebert/*/batch/*" in patterns
    (key,) = resources(storage, "AWS::KMS::Key")
    (decrypt,) = (
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "SharedRegistryModelDataKey"
    )
    assert decrypt["Action"] == "kms:Decrypt" and "kms:ViaService" in json.dumps(decrypt["Condition"])


def test_a_stage_deploys_the_pinned_model_package_version(assembly: CloudAssembly) -> None:
    serving = templates(assembly, "consumer")["Serving"]
    (model,) = resources(serving, "AWS::SageMaker::Model")
    container = model["Properties"]["PrimaryContainer"]
    assert container["ModelPackageName"] == f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package/{GROUP}/3"
    assert "Image" not in container and "ModelDataUrl" not in container
    assert model["Properties"]["EnableNetworkIsolation"] is True


def test_the_role_reads_only_the_registry_prefix_and_pulls_only_catalogued_images(assembly: CloudAssembly) -> None:
    found = {s["Sid"]: s for s in statements(templates(assembly, "consumer")["Serving"])}
    assert found["ReadModelData"]["Action"] == "s3:GetObject"
    assert found["ReadModelData"]["Resource"] == "arn:aws:s3:::sagebert-owner-artifacts/registry/*"
    assert found["DecryptModelData"] == {
        "Sid": "DecryptModelData",
        "Action": "kms:Decrypt",
        "Effect": "Allow",
        "Resource": KEY,
    }
    pulls = found["PullInferenceImage"]["Resource"]
    pulls = pulls if isinstance(pulls, list) else [pulls]
    assert pulls and all(
        r.startswith(f"arn:aws:ecr:{REGION}:") and r.endswith(":repository/huggingface-pytorch-inference")
        for r in pulls
    )
    # Nothing else of S3, and no SageMaker permission: CloudFormation's role creates the model from the package.
    actions = [a for s in found.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert not [a for a in actions if a.startswith("s3:") and a != "s3:GetObject"]
    assert not [a for a in actions if a.startswith("sagemaker:")]


def test_both_nag_packs_and_cfn_lint_pass_on_the_registry_stages(assembly: CloudAssembly) -> None:
    out = Path(assembly.directory)
    assert synth_report.nag_failures(out) == []
    assert synth_report.run_cfn_lint(sorted(out.glob("assembly-SageBert-*/*.template.json"))) == 0


def test_the_resolved_models_file_gives_the_version_when_the_config_pins_none(
    default_artifact: Path, tmp_path: Path
) -> None:
    config_dir = write_config(tmp_path / "config", version=None)
    app = build_app(config_dir=config_dir, outdir=str(tmp_path / "out"), resolved_models=resolved_file(tmp_path, 7))
    serving = app.synth().get_nested_assembly("assembly-SageBert-consumer")
    (stack,) = (s for s in serving.stacks if s.stack_name.endswith("-Serving"))
    (model,) = resources(stack.template, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["ModelPackageName"].endswith(f"model-package/{GROUP}/7")
    # The repository's file is where resolve-models writes.
    assert RESOLVED_MODELS_FILE == "build/resolved-models.json"


def test_the_config_version_wins_over_the_resolved_file(default_artifact: Path, tmp_path: Path) -> None:
    config_dir = write_config(tmp_path / "config", version=2)
    app = build_app(config_dir=config_dir, outdir=str(tmp_path / "out"), resolved_models=resolved_file(tmp_path, 7))
    serving = app.synth().get_nested_assembly("assembly-SageBert-consumer")
    (stack,) = (s for s in serving.stacks if s.stack_name.endswith("-Serving"))
    (model,) = resources(stack.template, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["ModelPackageName"].endswith(f"model-package/{GROUP}/2")


def test_synth_refuses_without_a_version_and_says_how_to_get_one(default_artifact: Path, tmp_path: Path) -> None:
    config_dir = write_config(tmp_path / "config", version=None)
    with pytest.raises(ConfigError) as raised:
        build_app(config_dir=config_dir, outdir=str(tmp_path / "out"), resolved_models=tmp_path / "absent.json")
    message = str(raised.value)
    assert "stage consumer" in message and f"group {GROUP}" in message
    assert "model.version" in message
    assert "python -m sagebert resolve-models --stage consumer" in message
    assert RESOLVED_MODELS_FILE in message and "pipeline" in message


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": 2, "groups": {}}', "format"),
        (
            '{"format": 1, "groups": {"g": {"model_package_arn": "arn:aws:sagemaker:eu-west-1:111111111111:'
            'model-package/g/3", "version": 4, "approval_status": "Approved", "resolved_at": "2026-12-01T08:00:00Z"}}}',
            "does not end in version /4",
        ),
        (
            '{"format": 1, "groups": {"g": {"model_package_arn": "arn:aws:sagemaker:eu-west-1:111111111111:'
            'model-package/g/3", "version": 3, "approval_status": "PendingManualApproval", '
            '"resolved_at": "2026-12-01T08:00:00Z"}}}',
            "approval_status",
        ),
        (
            '{"format": 1, "groups": {"g": {"model_package_arn": "arn:aws:sagemaker:eu-west-1:111111111111:'
            'model-package/h/3", "version": 3, "approval_status": "Approved", "resolved_at": "2026-12-01T08:00:00Z"}}}',
            "is not in group g",
        ),
        (
            '{"format": 1, "groups": {"g": {"model_package_arn": "arn:aws:sagemaker:eu-west-1:111111111111:'
            'model-package/g/3", "version": 3, "approval_status": "Approved", '
            '"resolved_at": "2026-12-01T09:00:00+01:00"}}}',
            "UTC",
        ),
    ],
)
def test_a_bad_resolved_models_file_is_named_with_the_bad_key(tmp_path: Path, content: str, named: str) -> None:
    path = tmp_path / "resolved-models.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_resolved_models(path)
    assert str(path) in str(raised.value) and named in str(raised.value)
    assert "resolve-models" in str(raised.value)


def test_an_absent_resolved_models_file_resolves_nothing(tmp_path: Path) -> None:
    assert load_resolved_models(tmp_path / "absent.json").version(GROUP) is None


# --- the promotion pipeline ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_assembly(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    config_dir = write_config(tmp_path_factory.mktemp("config"), version=None, pipeline=True)
    resolved = resolved_file(tmp_path_factory.mktemp("resolved"), 5)
    return build_app(
        config_dir=config_dir, outdir=str(tmp_path_factory.mktemp("out")), resolved_models=resolved
    ).synth()


def test_the_synth_step_resolves_the_registry_versions_with_read_only_grants(pipeline_assembly: CloudAssembly) -> None:
    template = pipeline_assembly.get_stack_by_name(PIPELINE_STACK).template
    specs = [
        json.loads(p["Properties"]["Source"]["BuildSpec"])
        for p in resources(template, "AWS::CodeBuild::Project")
        if isinstance(p["Properties"]["Source"].get("BuildSpec"), str)
    ]
    (synth,) = (s for s in specs if "make synth" in s["phases"]["build"]["commands"])
    assert synth["phases"]["build"]["commands"] == ["make test", resolve_command("consumer"), "make synth"]
    grants = [
        s
        for policy in resources(template, "AWS::IAM::Policy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "ResolveRegistryModels"
    ]
    (grant,) = grants
    assert sorted(grant["Action"]) == ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]
    assert grant["Resource"] == [
        f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package-group/{GROUP}",
        f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package/{GROUP}/*",
    ]


def test_an_approval_in_the_group_starts_the_pipeline(pipeline_assembly: CloudAssembly) -> None:
    template = pipeline_assembly.get_stack_by_name(PIPELINE_STACK).template
    (rule,) = resources(template, "AWS::Events::Rule")
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [MODEL_PACKAGE_STATE_CHANGE],
        "detail": {"ModelPackageGroupName": [GROUP], "ModelApprovalStatus": ["Approved"]},
    }
    (target,) = rule["Properties"]["Targets"]
    pipelines = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::CodePipeline::Pipeline"}
    assert json.dumps(target["Arn"]).count("Ref") == 1 and any(p in json.dumps(target["Arn"]) for p in pipelines)
    trigger = [
        s
        for policy in resources(template, "AWS::IAM::ManagedPolicy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "StartPipeline"
    ]
    assert [s["Action"] for s in trigger] == ["codepipeline:StartPipelineExecution"]
    out = Path(pipeline_assembly.directory)
    assert synth_report.nag_failures(out) == []
    assert synth_report.run_cfn_lint([out / f"{PIPELINE_STACK}.template.json"]) == 0


def test_the_pipeline_deploys_the_resolved_version(pipeline_assembly: CloudAssembly) -> None:
    serving = templates(pipeline_assembly, "consumer", prefix=f"{PIPELINE_STACK}-Promotion-")["Serving"]
    (model,) = resources(serving, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["ModelPackageName"].endswith(f"model-package/{GROUP}/5")


def test_an_environment_agnostic_registry_stage_maps_the_image_registries_per_region(
    default_artifact: Path, tmp_path: Path
) -> None:
    # No account or region: the package ARN and the image repositories resolve at deploy time, and the nag packs
    # still pass (the acknowledgements spell the partition as cdk-nag does).
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    model = {"source": "registry", "group": GROUP, "version": 3, "model_data_prefix": PREFIX, "kms_key_arn": KEY}
    (config_dir / "agnostic.yaml").write_text(yaml.safe_dump({"model": model}), encoding="utf-8")
    assembly = build_app(config_dir=config_dir, outdir=str(tmp_path / "out"), resolved_models=tmp_path / "x").synth()
    serving = templates(assembly, "agnostic")["Serving"]
    (model_resource,) = resources(serving, "AWS::SageMaker::Model")
    arn = json.dumps(model_resource["Properties"]["PrimaryContainer"]["ModelPackageName"])
    assert "AWS::Region" in arn and "AWS::AccountId" in arn and f":model-package/{GROUP}/3" in arn
    assert any(name.startswith("ModelDlcRegistry") for name in serving.get("Mappings", {}))
    out = Path(assembly.directory)
    assert synth_report.nag_failures(out) == []
    assert synth_report.run_cfn_lint(sorted(out.glob("assembly-SageBert-*/*.template.json"))) == 0


def test_the_pipelines_synth_step_may_read_the_owners_group_across_accounts(
    pipeline_assembly: CloudAssembly, tmp_path: Path
) -> None:
    # The authorization gate models resolve-models in the synth step: the tooling account's CodeBuild role lists the
    # group and describes the version, allowed by its own policy and the owner's group policy (shared with TOOLING).
    config_dir = write_config(tmp_path / "config", version=None, pipeline=True)
    out = tmp_path / "cdk.out"
    shutil.copytree(pipeline_assembly.directory, out)
    report = authorization.check(authorization.read_stages(out, load_all(config_dir)))
    assert report.failures == []
    resolving = [c for stage, c in report.calls if stage == authorization.TOP_LEVEL and "resolve-models" in c.source]
    assert {(c.action, c.resource) for c in resolving} == {
        ("sagemaker:ListModelPackages", f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package-group/{GROUP}"),
        ("sagemaker:DescribeModelPackage", f"arn:aws:sagemaker:{REGION}:{OWNER}:model-package/{GROUP}/5"),
    }
    # Given an owner that does not share with the tooling account, the same calls are denied by the group policy.
    for path in out.glob("assembly-*SageBert-owner/*Storage*.template.json"):
        path.write_text(path.read_text(encoding="utf-8").replace(f"{TOOLING}:root", "999999999999:root"), "utf-8")
    denied = authorization.check(authorization.read_stages(out, load_all(config_dir))).failures
    assert any("sagemaker:ListModelPackages" in d and "does not allow it" in d for d in denied)
