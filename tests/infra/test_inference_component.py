"""An endpoint in inference-component form, as CloudFormation will see it: the endpoint config without a model,
the component with its copies and resources, copy-count scaling and, with scale_to_zero, the way back from zero;
the whole stage passes both nag packs and cfn-lint, and production refuses scale to zero unless allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.assertions import Template

from app import build_app, feature_flags, project_files
from infra.catalog import compute_profiles
from infra.config.endpoint import EndpointSettings
from infra.config.errors import ConfigError
from infra.config.stage import StageConfig, load_stage_config
from infra.online.inference_component import NO_CAPACITY_METRIC, SCALABLE_DIMENSION
from infra.stage import SageBertStage
from sagebert.checks import service_rules
from sagebert.report import synth as synth_report

SCALE_TO_ZERO = {
    "retain_data": False,
    "endpoint": {
        "instance_type": "ml.c6i.xlarge",
        "inference_component": {
            "copies": 1,
            "min_copies": 0,
            "max_copies": 6,
            "cpu_cores": 2,
            "memory_mb": 2048,
            "scale_to_zero": True,
            "scale_in_cooldown_s": 900,
        },
    },
    "api": {"auth": "iam"},
    "monitoring": {"dashboard": True},
}
ALWAYS_ON = {
    "endpoint": {
        "instance_count": 2,
        "inference_component": {"copies": 2, "min_copies": 2, "max_copies": 4, "max_instances": 3},
    }
}


def stage(config: dict[str, Any], name: str) -> SageBertStage:
    return SageBertStage(
        App(context=feature_flags()), name, config=StageConfig.model_validate(config), files=project_files()
    )


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def one(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (found,) = resources(template, resource_type).values()
    props: dict[str, Any] = found["Properties"]
    return props


@pytest.fixture(scope="module")
def idle(default_artifact: Path) -> SageBertStage:
    return stage(SCALE_TO_ZERO, "idle")


@pytest.fixture(scope="module")
def serving(idle: SageBertStage) -> dict[str, Any]:
    template: dict[str, Any] = dict(Template.from_stack(idle.serving).to_json())
    return template


@pytest.fixture(scope="module")
def always_on(default_artifact: Path) -> dict[str, Any]:
    template: dict[str, Any] = dict(Template.from_stack(stage(ALWAYS_ON, "steady").serving).to_json())
    return template


def test_the_endpoint_config_holds_instances_and_no_model(serving: dict[str, Any]) -> None:
    config = one(serving, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert "ModelName" not in variant
    assert variant["InstanceType"] == "ml.c6i.xlarge" and variant["InitialInstanceCount"] == 1
    # 6 copies of 2 cores / 2 GB: 2 fit on an ml.c6i.xlarge (4 vCPUs, 8 GB), so 3 instances at most.
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 3}
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    # The start-up timeouts move to the component; SageMaker places copies as the model's own role.
    assert "ContainerStartupHealthCheckTimeoutInSeconds" not in variant
    (role,) = [k for k in resources(serving, "AWS::IAM::Role") if k.startswith("ModelExecutionRole")]
    assert config["ExecutionRoleArn"] == {"Fn::GetAtt": [role, "Arn"]}
    (config_id,) = resources(serving, "AWS::SageMaker::EndpointConfig")
    (policy,) = [k for k in resources(serving, "AWS::IAM::ManagedPolicy") if k.startswith("ModelExecutionPolicy")]
    assert policy in serving["Resources"][config_id]["DependsOn"]


def test_the_component_serves_the_stage_model_with_its_copies_and_resources(serving: dict[str, Any]) -> None:
    component = one(serving, "AWS::SageMaker::InferenceComponent")
    (model,) = resources(serving, "AWS::SageMaker::Model")
    (endpoint,) = resources(serving, "AWS::SageMaker::Endpoint")
    assert component["InferenceComponentName"] == "sagebert-idle"
    # The endpoint's attribute: the component waits for the endpoint.
    assert component["EndpointName"] == {"Fn::GetAtt": [endpoint, "EndpointName"]}
    assert component["VariantName"] == "AllTraffic"
    assert component["RuntimeConfig"] == {"CopyCount": 1}
    spec = component["Specification"]
    assert spec["ModelName"] == {"Fn::GetAtt": [model, "ModelName"]}
    assert spec["ComputeResourceRequirements"] == {"NumberOfCpuCoresRequired": 2, "MinMemoryRequiredInMb": 2048}
    assert spec["StartupParameters"] == {
        "ContainerStartupHealthCheckTimeoutInSeconds": 600,
        "ModelDataDownloadTimeoutInSeconds": 600,
    }
    # Copies roll over a quarter at a time (SageMaker takes 5-50% of the copy count; one copy of one is 100%) and roll
    # back, all at once, on the component's 5XX and latency alarms; the endpoint itself has no traffic-shifting
    # guardrails to run (its model is the component's).
    deployment = component["DeploymentConfig"]
    assert deployment["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert "RollbackMaximumBatchSize" not in deployment["RollingUpdatePolicy"]
    assert service_rules.rolling_update_batches({"Serving": serving}) == []
    alarms = {a["AlarmName"]["Ref"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]}
    assert len(alarms) == 2
    for alarm in alarms:
        assert serving["Resources"][alarm]["Properties"]["Dimensions"] == [
            {"Name": "InferenceComponentName", "Value": "sagebert-idle"}
        ]
    assert "DeploymentConfig" not in one(serving, "AWS::SageMaker::Endpoint")
    assert serving["Outputs"]["InferenceComponentName"]["Value"] == "sagebert-idle"


def test_copies_scale_on_invocations_per_copy_down_to_zero(serving: dict[str, Any]) -> None:
    target = one(serving, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["ResourceId"] == "inference-component/sagebert-idle"
    assert target["ScalableDimension"] == SCALABLE_DIMENSION
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 6)
    policies = resources(serving, "AWS::ApplicationAutoScaling::ScalingPolicy")
    (tracking,) = [
        p["Properties"] for p in policies.values() if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]
    config = tracking["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerInferenceComponentInvocationsPerCopy"
    }
    # 2 vCPUs = 1 core x 120 requests/s measured x 60 s x 0.5 headroom.
    assert config["TargetValue"] == 3600
    assert (config["ScaleInCooldown"], config["ScaleOutCooldown"]) == (900, 60)


def test_a_request_that_finds_no_copy_starts_one(serving: dict[str, Any]) -> None:
    policies = resources(serving, "AWS::ApplicationAutoScaling::ScalingPolicy")
    ((step_id, step),) = [
        (k, p["Properties"]) for k, p in policies.items() if p["Properties"]["PolicyType"] == "StepScaling"
    ]
    config = step["StepScalingPolicyConfiguration"]
    assert config["AdjustmentType"] == "ChangeInCapacity"
    assert config["MetricAggregationType"] == "Maximum"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    (alarm,) = [
        a["Properties"]
        for a in resources(serving, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == NO_CAPACITY_METRIC
    ]
    assert alarm["AlarmActions"] == [{"Ref": step_id}]
    assert alarm["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "sagebert-idle"}]
    # One failed request in a minute is enough to wake it.
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Maximum",
        "GreaterThanOrEqualToThreshold",
        0.5,
    )
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, 1)


def test_without_scale_to_zero_the_floor_is_the_instances_min_copies_need(always_on: dict[str, Any]) -> None:
    (variant,) = one(always_on, "AWS::SageMaker::EndpointConfig")["ProductionVariants"]
    # 2 copies of 1 core / 1 GB fit on one ml.c6i.large; max_instances caps the fleet.
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 3}
    target = one(always_on, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    policies = resources(always_on, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert [p["Properties"]["PolicyType"] for p in policies.values()] == ["TargetTrackingScaling"]
    assert not [
        a
        for a in resources(always_on, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == NO_CAPACITY_METRIC
    ]


def test_the_front_door_names_the_component_and_monitoring_reads_its_metrics(idle: SageBertStage) -> None:
    assert idle.api is not None and idle.monitoring is not None
    api = dict(Template.from_stack(idle.api).to_json())
    (function,) = resources(api, "AWS::Lambda::Function").values()
    assert function["Properties"]["Environment"]["Variables"]["SAGEBERT_INFERENCE_COMPONENT"] == "sagebert-idle"
    monitoring = dict(Template.from_stack(idle.monitoring).to_json())
    metrics = [
        query["MetricStat"]["Metric"]
        for alarm in resources(monitoring, "AWS::CloudWatch::Alarm").values()
        for query in alarm["Properties"].get("Metrics", [])
        if "MetricStat" in query and query["MetricStat"]["Metric"]["Namespace"] == "AWS/SageMaker"
    ]
    # ModelLatency, 5XX and 4XX of the component.
    assert {m["MetricName"] for m in metrics} == {"ModelLatency", "Invocation5XXErrors", "Invocation4XXErrors"}
    assert all(m["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "sagebert-idle"}] for m in metrics)


def test_the_front_door_may_invoke_the_component_as_well_as_the_endpoint(idle: SageBertStage) -> None:
    # InvokeEndpoint with InferenceComponentName is authorized against the endpoint and the component: a grant on the
    # endpoint alone is AccessDenied on every call.
    assert idle.api is not None
    api = dict(Template.from_stack(idle.api).to_json())
    (grant,) = (
        statement
        for policy in resources(api, "AWS::IAM::ManagedPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "sagemaker:InvokeEndpoint"
    )
    resources_ = json.dumps(grant["Resource"])
    assert ":inference-component/sagebert-idle" in resources_
    assert "Fn::ImportValue" in resources_  # the endpoint's ARN, from the serving stack


def test_the_component_logs_to_its_own_group_which_the_model_role_may_write(serving: dict[str, Any]) -> None:
    # SageMaker writes a component's container logs to /aws/sagemaker/InferenceComponents/<name> and its instance
    # metrics to that namespace: the stack makes the group (stage key, retention) before the component, and the
    # model's role may write there.
    groups = resources(serving, "AWS::Logs::LogGroup")
    (component_group,) = (
        logical_id
        for logical_id, group in groups.items()
        if group["Properties"]["LogGroupName"] == "/aws/sagemaker/InferenceComponents/sagebert-idle"
    )
    assert "KmsKeyId" in groups[component_group]["Properties"]
    (component,) = resources(serving, "AWS::SageMaker::InferenceComponent").values()
    assert component_group in component["DependsOn"]
    statements = [
        statement
        for policy in resources(serving, "AWS::IAM::ManagedPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    (logs,) = (s for s in statements if s.get("Sid") == "EndpointLogs")
    assert "log-group:/aws/sagemaker/InferenceComponents/sagebert-idle:*" in json.dumps(logs["Resource"])
    (metrics,) = (s for s in statements if s.get("Sid") == "PublishInstanceMetrics")
    assert "/aws/sagemaker/InferenceComponents" in metrics["Condition"]["StringEquals"]["cloudwatch:namespace"]


def test_a_stage_with_scale_to_zero_passes_both_nag_packs_and_cfn_lint(default_artifact: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "idle.yaml").write_text(yaml.safe_dump({**SCALE_TO_ZERO, "batch": {}}), encoding="utf-8")
    out = tmp_path / "out"
    build_app(config_dir=config_dir, outdir=str(out)).synth()
    assert synth_report.nag_failures(out) == []
    templates = sorted(out.glob("assembly-SageBert-idle/*.template.json"))
    assert len(templates) == 5
    assert synth_report.run_cfn_lint(templates) == 0


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "stage.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_production_refuses_scale_to_zero_unless_allowed(tmp_path: Path) -> None:
    component: dict[str, Any] = {"copies": 2, "min_copies": 0, "scale_to_zero": True}
    production = {"production": True, "endpoint": {"instance_count": 2, "inference_component": component}}
    with pytest.raises(ConfigError, match="scale_to_zero = true with production: true"):
        load_stage_config(write(tmp_path, production))
    component["allow_scale_to_zero_in_production"] = True
    allowed = load_stage_config(write(tmp_path, production)).endpoint.inference_component
    assert allowed is not None and allowed.scale_to_zero
    steady = {
        "production": True,
        "endpoint": {"instance_count": 2, "inference_component": {"copies": 2, "min_copies": 2}},
    }
    assert load_stage_config(write(tmp_path, steady)).endpoint.inference_component is not None


def test_allowing_production_without_scale_to_zero_is_refused(tmp_path: Path) -> None:
    config = {"endpoint": {"inference_component": {"allow_scale_to_zero_in_production": True}}}
    with pytest.raises(ConfigError, match="allows nothing"):
        load_stage_config(write(tmp_path, config))


def test_the_catalog_sizes_copies_by_vcpus_and_memory() -> None:
    # ml.c6i.large: 2 vCPUs (1 core), 4 GiB; ml.m6i.xlarge 16 GiB; ml.r5.large 16 GiB; T2 medium 4 GiB.
    assert [compute_profiles.memory_mb(t) for t in ("ml.c6i.large", "ml.m6i.xlarge", "ml.r5.large")] == [
        4096,
        16384,
        16384,
    ]
    assert (compute_profiles.memory_mb("ml.t2.medium"), compute_profiles.memory_mb("ml.t2.xlarge")) == (4096, 16384)
    with pytest.raises(ValueError, match="CPU instance types only"):
        compute_profiles.memory_mb("ml.g4dn.xlarge")
    # Half a core per vCPU (hyperthreads), one core per vCPU on T2.
    assert compute_profiles.target_invocations_per_copy(1, "ml.c6i.large") == 1800
    assert compute_profiles.target_invocations_per_copy(1, "ml.t2.medium") == 3600
    assert compute_profiles.target_invocations_per_copy(0.25, "ml.c6i.large") == 450
    settings = EndpointSettings.model_validate(
        {"instance_type": "ml.c6i.xlarge", "inference_component": {"cpu_cores": 1.5, "memory_mb": 3000}}
    ).inference_component
    assert settings is not None
    # 4 vCPUs / 1.5 = 2 by cores, 8192 / 3000 = 2 by memory.
    assert settings.copies_per_instance("ml.c6i.xlarge") == 2
    assert (settings.min_instances("ml.c6i.xlarge"), settings.instance_limit("ml.c6i.xlarge")) == (1, 2)


def test_dev_scales_to_zero_and_staging_and_prod_keep_the_variant_form(default_artifact: Path, repo_root: Path) -> None:
    # dev bills only the hours it is used; the stages that take production traffic keep whole instances.
    dev = load_stage_config(repo_root / "config" / "dev.yaml").endpoint.inference_component
    assert dev is not None and dev.scale_to_zero and dev.min_copies == 0
    for name in ("staging", "prod"):
        config = load_stage_config(repo_root / "config" / f"{name}.yaml")
        assert config.endpoint.inference_component is None
    template = dict(Template.from_stack(stage({}, "plain").serving).to_json())
    assert not resources(template, "AWS::SageMaker::InferenceComponent")
    (variant,) = one(template, "AWS::SageMaker::EndpointConfig")["ProductionVariants"]
    assert "ModelName" in variant and "ManagedInstanceScaling" not in variant
    assert "ExecutionRoleArn" not in one(template, "AWS::SageMaker::EndpointConfig")
    assert json.dumps(template).count("InferenceComponentName") == 0
