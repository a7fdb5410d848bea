"""Deploy-time rules cdk-nag and cfn-lint cannot see, checked by synthesizing the shipped stages twice: before and
after the changes users make most (a new model archive, another image, a container variable), a failed first
create (retained physical names), and an instance type change under autoscaling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from aws_cdk import App, CfnOutput, Stack
from botocore.stub import Stubber

from app import ROOT, build_app, feature_flags
from infra.catalog import images as image_catalog
from infra.catalog import resource_regions
from infra.catalog.powertools import POWERTOOLS_REGIONS
from infra.config.model import BundledModel
from infra.config.stage import STAGE_PREFIX, load_stage_config
from infra.release.hugging_face_model import HuggingFaceModel, ModelLogs
from sagebert.assembly import stage_templates
from sagebert.checks import deploy_gates, preflight, region_gate

Templates = dict[str, dict[str, dict[str, Any]]]
Edit = Callable[[str, dict[str, Any], Path], None]


def synth_stages(tmp_path: Path, edit: Edit | None = None, only: tuple[str, ...] = ()) -> Templates:
    """The shipped config/ (optionally edited per stage, optionally only some stages) synthesized into tmp_path."""
    config_dir = tmp_path / "config"
    config_dir.mkdir(parents=True)
    for file in sorted((ROOT / "config").glob("*.yaml")):
        if only and file.stem not in (*only, "pipeline"):
            continue
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        if edit is not None and file.stem != "pipeline":
            edit(file.stem, data, tmp_path)
        (config_dir / file.name).write_text(yaml.safe_dump(data), encoding="utf-8")
    if only:  # the pipeline file lists every shipped stage; without them it would not load
        (config_dir / "pipeline.yaml").unlink()
    out = tmp_path / "out"
    build_app(config_dir=config_dir, outdir=str(out)).synth()
    return stage_templates(out)


@pytest.fixture(scope="module")
def baseline(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return synth_stages(tmp_path_factory.mktemp("baseline"))


def _new_archive(stage: str, data: dict[str, Any], folder: Path) -> None:
    archive = folder / "retrained.tar.gz"
    if not archive.exists():
        archive.write_bytes(b"a retrained model: only its bytes (the asset hash) matter to the templates")
    data["model"]["artifact"] = str(archive)


def _other_image(stage: str, data: dict[str, Any], folder: Path) -> None:
    current = data["model"].get("container", {}).get("transformers_version", "4.51.3")
    other = next(i for i in image_catalog.images() if "cpu" in i.tags and i.transformers_version != current)
    data["model"]["container"] = {
        "transformers_version": other.transformers_version,
        "pytorch_version": other.pytorch_version,
    }


def _container_variable(stage: str, data: dict[str, Any], folder: Path) -> None:
    # Two threads per worker: SAGEMAKER_MODEL_SERVER_WORKERS changes on the endpoint's models. (A stage whose
    # model runs as an inference component has no worker layout to change: it is left as it is.)
    endpoint = data["endpoint"]
    if "inference_component" in endpoint:
        return
    endpoint["threads_per_worker"] = 2
    if "autoscaling" in endpoint:
        endpoint["autoscaling"]["target_invocations_per_minute"] = 3000


@pytest.mark.parametrize("edit", [_new_archive, _other_image, _container_variable], ids=["archive", "image", "env"])
def test_model_updates_change_no_imported_export(baseline: Templates, tmp_path: Path, edit: Edit) -> None:
    # Given the shipped stages deployed, when the model changes (it is replaced and renamed), then no value another
    # stack imports changes: CloudFormation would refuse the update.
    after = synth_stages(tmp_path, edit)
    replaced_models = 0
    for stage, templates in baseline.items():
        assert deploy_gates.changed_exports(templates, after[stage]) == []
        # Everything the change replaces has a generated name (or takes a new one with it).
        assert deploy_gates.named_replacements(templates, after[stage]) == []
        replaced = deploy_gates.replaced_resources(templates["Serving"], after[stage]["Serving"])
        replaced_models += sum(
            templates["Serving"]["Resources"][r]["Type"] == "AWS::SageMaker::Model" for r in replaced
        )
    # The change did reach the models (else the check above proves nothing).
    untouched = sum(
        edit is _container_variable
        and load_stage_config(ROOT / "config" / f"{stage.removeprefix(STAGE_PREFIX)}.yaml").endpoint.inference_component
        is not None
        for stage in baseline
    )
    assert replaced_models >= len(baseline) - untouched


def test_the_export_gate_catches_an_imported_model_name(default_artifact: Path, tmp_path: Path) -> None:
    # Given a stack that imports a model's generated name (the batch stack once did), a new archive blocks it.
    def synth(archive: Path) -> dict[str, dict[str, Any]]:
        app = App(context=feature_flags(), outdir=str(tmp_path / archive.stem))
        serving = Stack(app, "Serving")
        model = HuggingFaceModel(
            serving,
            "Model",
            source=BundledModel(source="bundled", artifact=str(archive)),
            image=image_catalog.find("4.51.3", "2.6.0"),
            flavour="cpu",
            artifact=archive,
            logs=ModelLogs(endpoint_name="sagebert-test"),
        )
        CfnOutput(Stack(app, "Batch"), "ModelName", value=model.model_name)
        assembly = app.synth()
        return {stack.stack_name: stack.template for stack in assembly.stacks}

    retrained = tmp_path / "retrained.tar.gz"
    retrained.write_bytes(b"a retrained model: only its bytes (the asset hash) matter to the templates")
    before = synth(default_artifact)
    problems = deploy_gates.changed_exports(before, synth(retrained))
    assert len(problems) == 1
    assert "Serving export" in problems[0] and "PrimaryContainer" in problems[0]
    # The one-synth form (in `make synth`'s report) sees it without a second synth.
    (fragile,) = deploy_gates.fragile_exports(before)
    assert "AWS::SageMaker::Model" in fragile and "every property it sets is create-only" in fragile


def test_no_imported_export_names_a_resource_every_change_replaces(baseline: Templates) -> None:
    for templates in baseline.values():
        assert deploy_gates.fragile_exports(templates) == []


def test_no_retained_resource_has_a_physical_name(baseline: Templates) -> None:
    for templates in baseline.values():
        assert deploy_gates.retained_physical_names(templates) == []
    # The named log groups are still there, kept on update and delete but not after a failed first create.
    named = [
        resource
        for templates in baseline.values()
        for template in templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]
    ]
    # dev's and prod's state machine logs, prod's WAF logs; every stage's endpoint logs and API execution logs; dev's
    # inference component's logs.
    assert len(named) == 3 + 3 + 3 + 1
    # Deleted with dev's data and key (retain_data: false): dev's four, whose fixed names a later deploy reuses.
    policies = sorted(r.get("DeletionPolicy", "Delete") for r in named)
    assert policies == ["Delete"] * 4 + ["RetainExceptOnCreate"] * 6


def test_nothing_outlives_the_key_that_encrypts_it(baseline: Templates) -> None:
    # dev deletes its key with the stacks: every log group it encrypts goes too (CDK keeps log groups by default).
    for templates in baseline.values():
        assert deploy_gates.outlived_keys(templates) == []
    dev_groups = [
        resource
        for template in baseline["SageBert-dev"].values()
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    ]
    assert dev_groups and {r.get("DeletionPolicy", "Delete") for r in dev_groups} == {"Delete"}


def test_the_retain_gate_catches_a_retained_fixed_name(baseline: Templates) -> None:
    (waf,) = [
        (logical_id, resource)
        for logical_id, resource in baseline["SageBert-prod"]["Api"]["Resources"].items()
        if str(resource["Properties"].get("LogGroupName", "")).startswith("aws-waf-logs-")
    ]
    api = dict(baseline["SageBert-prod"]["Api"])
    api["Resources"] = {**api["Resources"], waf[0]: {**waf[1], "DeletionPolicy": "Retain"}}
    (found,) = deploy_gates.retained_physical_names({"Api": api})
    assert found.logical_id == waf[0] and found.properties == ("LogGroupName",)
    assert "AlreadyExists" in str(found)
    # An allow-listed one passes.
    assert deploy_gates.retained_physical_names({"Api": api}, {("AWS::Logs::LogGroup", waf[0][:8]): "why"}) == []


def _prod_type(instance_type: str, autoscaling: bool = True) -> Edit:
    def edit(stage: str, data: dict[str, Any], folder: Path) -> None:
        data["endpoint"]["instance_type"] = instance_type
        if not autoscaling:
            del data["endpoint"]["autoscaling"]

    return edit


def test_an_instance_type_change_under_autoscaling_takes_two_deploys(tmp_path: Path, default_artifact: Path) -> None:
    before = synth_stages(tmp_path / "before", only=("prod",))["SageBert-prod"]
    # One step: SageMaker would refuse the update; the gate says so and how to get through.
    direct = synth_stages(tmp_path / "direct", _prod_type("ml.c6i.2xlarge"), only=("prod",))["SageBert-prod"]
    (problem,) = deploy_gates.stuck_scaling_updates(before, direct)
    assert "ml.c6i.xlarge -> ml.c6i.2xlarge" in problem and "two steps" in problem
    # Before a deploy, preflight compares the deployed Serving template (here: `before`) with cdk.out and says the same.
    cloudformation = botocore.session.get_session().create_client(
        "cloudformation", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(cloudformation) as stub:
        stub.add_response(
            "get_template",
            {"TemplateBody": json.dumps(before["Serving"])},
            {"StackName": "SageBert-prod-Serving", "TemplateStage": "Original"},
        )
        check = preflight.check_update_path(cloudformation, "prod", tmp_path / "direct" / "out")
    assert check.verdict == "FAIL" and "two steps" in check.detail
    # Step 1: autoscaling removed, instance type kept: the endpoint config keeps its instance type.
    step1 = synth_stages(tmp_path / "step1", _prod_type("ml.c6i.xlarge", autoscaling=False), only=("prod",))
    assert deploy_gates.stuck_scaling_updates(before, step1["SageBert-prod"]) == []
    assert not [
        r for r in step1["SageBert-prod"]["Serving"]["Resources"].values() if r["Type"] == deploy_gates.SCALABLE_TARGET
    ]
    # Step 2: the new type with autoscaling back: nothing is registered while the type changes.
    assert deploy_gates.stuck_scaling_updates(step1["SageBert-prod"], direct) == []


def test_batch_stack_owns_its_model(baseline: Templates) -> None:
    for stage in ("SageBert-dev", "SageBert-prod"):
        batch = baseline[stage]["Batch"]
        models = [r for r in batch["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
        assert len(models) == 1
        assert "-cpu-" in str(models[0]["Properties"]["PrimaryContainer"]["Image"])
        assert not [name for name in deploy_gates.imported_names({"Batch": batch}) if "Serving" in name]


# cfn-lint's provider schemas have no AWS::SageMaker::InferenceComponent in these (finding A1: dev's rule admitted
# them).
NO_INFERENCE_COMPONENT = {
    "af-south-1", "ap-east-1", "ap-northeast-3", "ap-south-2", "ap-southeast-4", "ca-west-1",
    "eu-central-2", "eu-south-1", "eu-south-2", "eu-west-3", "il-central-1", "us-west-1",
}  # fmt: skip


def test_environment_agnostic_stacks_refuse_unsupported_regions_up_front(baseline: Templates) -> None:
    # The shipped stages are environment-agnostic: every stack carries one rule, the same across the stage, that
    # CloudFormation checks before it creates anything: the image's and the Powertools layer's regions, less those
    # without one of the stage's resource types.
    image = image_catalog.find("4.51.3", "2.6.0")
    for stage in ("SageBert-dev", "SageBert-staging", "SageBert-prod"):
        types = {r["Type"] for stack in baseline[stage].values() for r in stack["Resources"].values()}
        expected = resource_regions.regions_with(types, set(image.registries) & POWERTOOLS_REGIONS)
        for stack, template in baseline[stage].items():
            assert [name for name in template.get("Rules", {}) if name.startswith("SupportedRegion")] == [
                "SupportedRegion"
            ], stack
            (assertion,) = template["Rules"]["SupportedRegion"]["Assertions"]
            regions, region = assertion["Assert"]["Fn::Contains"]
            assert region == {"Ref": "AWS::Region"}
            assert set(regions) == expected, (stage, stack)
            assert assertion["AssertDescription"].startswith("sagebert: this stage deploys only to ")
        assert "me-central-1" not in expected and "me-south-1" not in expected
    dev = region_gate.admitted(baseline["SageBert-dev"]["Serving"]) or []
    assert len(dev) == 15 and not NO_INFERENCE_COMPONENT & set(dev)
    assert (
        "AWS::SageMaker::InferenceComponent"
        in baseline["SageBert-dev"]["Serving"]["Rules"]["SupportedRegion"]["Assertions"][0]["AssertDescription"]
    )
    assert set(region_gate.admitted(baseline["SageBert-prod"]["Serving"]) or []) >= NO_INFERENCE_COMPONENT
    stacks = [region_gate.Stack(f"{stage}/{name}", None, t) for stage, st in baseline.items() for name, t in st.items()]
    assert region_gate.problems(stacks) == []


def _endpoint_name(name: str) -> Edit:
    def edit(stage: str, data: dict[str, Any], folder: Path) -> None:
        data["endpoint"]["name"] = name

    return edit


def test_an_endpoint_name_change_replaces_the_inference_component(tmp_path: Path, default_artifact: Path) -> None:
    # The component's schema marks nothing create-only, but UpdateInferenceComponent cannot rename a component or
    # move it to another endpoint: the supplement makes replaced_resources see it (dev serves one).
    before = synth_stages(tmp_path / "before", only=("dev",))["SageBert-dev"]["Serving"]
    after = synth_stages(tmp_path / "after", _endpoint_name("sagebert-dev-2"), only=("dev",))["SageBert-dev"]["Serving"]
    (component,) = [k for k, r in after["Resources"].items() if r["Type"] == "AWS::SageMaker::InferenceComponent"]
    (endpoint,) = [k for k, r in after["Resources"].items() if r["Type"] == "AWS::SageMaker::Endpoint"]
    replaced = deploy_gates.replaced_resources(before, after)
    assert replaced[endpoint] == "its create-only property EndpointName changes"
    assert deploy_gates.named_replacements({"Serving": before}, {"Serving": after}) == []  # new names with it
    assert replaced[component] == "its create-only property InferenceComponentName changes"
    # A new archive only updates it (its Specification is updatable): the component keeps its copies.
    archive = synth_stages(tmp_path / "archive", _new_archive, only=("dev",))["SageBert-dev"]["Serving"]
    assert component not in deploy_gates.replaced_resources(before, archive)


def test_declared_resource_types_match_the_templates(default_artifact: Path, tmp_path: Path) -> None:
    # StageConfig.resource_types (the config-time check's map) against what the stages synthesize: the shipped
    # ones, a registry owner with an inference component, serverless and async endpoints and a pinned stage.
    extra = {
        "owner": {"registry": {"owner": True}, "endpoint": {"inference_component": {"min_copies": 1}}},
        "serverless": {"endpoint": {"compute": "serverless"}, "batch": {}},
        "queued": {"endpoint": {"compute": "async", "instance_type": "ml.c6i.large"}},
        "pinned": {"account": "111122223333", "region": "eu-west-1", "api": {"auth": "iam"}},
    }

    def add_stages(stage: str, data: dict[str, Any], folder: Path) -> None:
        if stage == "dev":
            for name, config in extra.items():
                (folder / "config" / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    stages = synth_stages(tmp_path, add_stages, only=("dev", "staging", "prod"))
    assert len(stages) == 3 + len(extra)
    universe = image_catalog.regions()
    for stage, stacks in stages.items():
        name = stage.removeprefix(STAGE_PREFIX)
        path = tmp_path / "config" / f"{name}.yaml"
        declared = set().union(*load_stage_config(path).resource_types().values())
        types = {r["Type"] for stack in stacks.values() for r in stack["Resources"].values()}
        assert declared == {t for t in types if t.startswith("AWS::SageMaker::")}, stage
        # Every type some catalogued region lacks is declared (so the config-time check sees it).
        assert set(resource_regions.lacking(types, universe)) <= declared, stage


def _variant_form(stage: str, data: dict[str, Any], folder: Path) -> None:
    data["endpoint"].pop("inference_component", None)


def test_switching_the_endpoint_between_its_forms_in_place_is_reported(baseline: Templates, tmp_path: Path) -> None:
    # Given dev deployed in the variant form, when endpoint.inference_component is added (today's dev), then the
    # update-path gate (preflight runs it against the deployed template) reports the in-place move with the way round.
    before = synth_stages(tmp_path / "before", _variant_form, only=("dev",))["SageBert-dev"]
    after = baseline["SageBert-dev"]
    (problem,) = deploy_gates.endpoint_form_switches(before, after)
    assert problem.startswith(
        "Serving: endpoint sagebert-dev would move from the variant form to the inference-component"
    )
    assert "new endpoint.name" in problem
    (back,) = deploy_gates.endpoint_form_switches(after, before)
    assert "from the inference-component form to the variant form" in back
    # The same form, or another name, is no switch.
    assert deploy_gates.endpoint_form_switches(after, after) == []
    renamed = synth_stages(tmp_path / "renamed", _endpoint_name("sagebert-dev-2"), only=("dev",))["SageBert-dev"]
    assert deploy_gates.endpoint_form_switches(before, {"Serving": renamed["Serving"]}) == []
