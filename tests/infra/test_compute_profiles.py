"""Compute profiles across the shipped stages: every profile x stage synthesizes and passes the compliance
gates and cfn-lint; a stage with every endpoint option at once does too; every combination SageMaker (or
sagebert) refuses fails at config load with a message that says what to change."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App
from aws_cdk.cx_api import CloudAssembly

from app import ROOT, build_app, feature_flags, project_files
from infra.config.errors import ConfigError
from infra.config.stage import load_stage_config
from infra.stage import SageBertStage
from sagebert.report import synth as synth_report

PROFILES = ("cpu", "gpu", "inferentia", "serverless", "async")
SHIPPED = ("dev", "staging", "prod")
S3_URI = "s3://releases-bucket/sagebert/v8/model.tar.gz"


def _profile_endpoint(endpoint: dict[str, Any], compute: str) -> dict[str, Any]:
    """The shipped stage's endpoint section moved onto one compute profile, keeping the stage's rules."""
    endpoint = dict(endpoint, compute=compute)
    # The model on the variant, for every profile: dev's inference component (its scale-to-zero form, CPU real
    # time only) is tested on its own in test_inference_component.py.
    endpoint.pop("inference_component", None)
    if compute == "gpu":
        endpoint["instance_type"] = "ml.g4dn.xlarge"
    elif compute == "inferentia":
        endpoint["instance_type"] = "ml.inf2.xlarge"
        endpoint["startup_timeout_s"] = 1800
    elif compute == "serverless":
        instance_keys = ("instance_type", "instance_count", "volume_size_gb", "startup_timeout_s")
        for key in (*instance_keys, "model_download_timeout_s", "autoscaling", "data_capture", "vpc", "variants"):
            endpoint.pop(key, None)
        # Traffic shifting steps are capacity percentages of instances: serverless shifts all at once.
        endpoint["rollout"] = {k: v for k, v in endpoint.get("rollout", {}).items() if "percent" not in k}
        endpoint["rollout"]["strategy"] = "all_at_once"
    if compute in ("gpu", "inferentia") and "autoscaling" in endpoint:
        endpoint["autoscaling"] = dict(endpoint["autoscaling"], target_invocations_per_minute=600)
    return endpoint


EVERYTHING = {
    "compute": "cpu",
    "instance_type": "ml.c6i.large",
    "instance_count": 2,
    "autoscaling": {"min_instances": 2, "max_instances": 4},
    "rollout": {"strategy": "canary", "canary_percent": 20, "wait_interval_s": 120},
    "variants": [{"name": "Candidate", "weight": 0.25, "model": {"source": "s3", "uri": S3_URI}}],
    "data_capture": {"sampling_percent": 5},
}
# The same with a private VPC (synthesized on its own: see test_everything_with_vpc_passes_the_gates).
EVERYTHING_VPC = {**EVERYTHING, "vpc": {}}
# The latency layout: fewer, wider model-server workers, sized per variant's instance type.
WIDE_WORKERS = {
    "instance_type": "ml.c6i.xlarge",
    "instance_count": 2,
    "threads_per_worker": 2,
    "variants": [
        {"name": "Candidate", "weight": 1, "instance_type": "ml.c6i.large", "model": {"source": "s3", "uri": S3_URI}}
    ],
}
SHADOW = {
    "instance_type": "ml.c6i.large",
    "shadow": {"name": "Shadow", "sampling_percent": 50, "model": {"source": "s3", "uri": S3_URI}},
}


def _everything(endpoint: dict[str, Any]) -> dict[str, Any]:
    """prod's file (production safeguards, API with WAF, batch) with this endpoint section."""
    prod = yaml.safe_load((ROOT / "config" / "prod.yaml").read_text(encoding="utf-8"))
    return dict(prod, endpoint=endpoint, api=dict(prod.get("api") or {}, target_variant="Candidate"))


@dataclass(frozen=True)
class Synth:
    configs: dict[str, dict[str, Any]]  # stage -> the YAML written for it
    assembly: CloudAssembly
    out: Path


@pytest.fixture(scope="module")
def synth(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """One config dir with all 15 profile x stage combinations, the everything-at-once stage (on prod's
    production safeguards) and a shadow stage; one app, synthesized once. `app.synth()` raises on any
    unacknowledged cdk-nag finding, so reaching a test means every stage passed the compliance gates."""
    config_dir = tmp_path_factory.mktemp("config")
    # A stand-in for `make package --runtimes onnx,torch`: synth reads only the record beside the archive.
    with_weights = tmp_path_factory.mktemp("gpu-archive") / "model.tar.gz"
    with_weights.write_bytes(b"stand-in archive with the safetensors weights")
    with_weights.with_name("model.tar.gz.json").write_text(
        '{"served_runtime": "onnx-int8", "runtimes": ["onnx", "torch"]}'
    )
    configs: dict[str, dict[str, Any]] = {}
    for stage in SHIPPED:
        shipped = yaml.safe_load((ROOT / "config" / f"{stage}.yaml").read_text(encoding="utf-8"))
        for compute in PROFILES:
            config = dict(shipped, endpoint=_profile_endpoint(shipped.get("endpoint", {}), compute))
            if compute == "gpu":  # PyTorch fp16 needs an archive with the safetensors weights
                config["model"] = {"source": "bundled", "artifact": str(with_weights)}
            if compute == "async":
                config.pop("api", None)  # the front door calls InvokeEndpoint, which async does not answer
            configs[f"{stage}-{compute}"] = config
    configs["everything"] = _everything(EVERYTHING)
    configs["shadow"] = {"endpoint": SHADOW}
    configs["wide-workers"] = _everything(WIDE_WORKERS)
    for name, config in configs.items():
        (config_dir / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path_factory.mktemp("cdk.out")
    assembly = build_app(config_dir=config_dir, outdir=str(out)).synth()
    return Synth(configs, assembly, out)


@pytest.fixture(scope="module")
def vpc_stage(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Path]]:
    """The everything-at-once stage with endpoint.vpc, synthesized WITHOUT the compliance gates (they fail on
    it: see test_everything_with_vpc_passes_the_gates): its serving template and template files, for the
    network's structure and cfn-lint."""
    config_dir = tmp_path_factory.mktemp("vpc-config")
    (config_dir / "vpc.yaml").write_text(yaml.safe_dump(_everything(EVERYTHING_VPC)), encoding="utf-8")
    out = tmp_path_factory.mktemp("vpc-out")
    app = App(context=feature_flags(), outdir=str(out))
    stage = SageBertStage(app, "vpc", config=load_stage_config(config_dir / "vpc.yaml"), files=project_files())
    assembly = app.synth()
    serving: dict[str, Any] = (
        assembly.get_nested_assembly("assembly-SageBert-vpc").get_stack_by_name(stage.serving.stack_name).template
    )
    return serving, sorted(out.glob("assembly-SageBert-*/*.template.json"))


def stack_names(config: dict[str, Any]) -> set[str]:
    """The stacks a stage config asks for: Storage and Serving, and one per optional section present."""
    optional = {"api": "Api", "batch": "Batch", "monitoring": "Monitoring"}
    return {"Storage", "Serving"} | {stack for key, stack in optional.items() if config.get(key) is not None}


def templates(synth: Synth, stage: str) -> dict[str, dict[str, Any]]:
    nested = synth.assembly.get_nested_assembly(f"assembly-SageBert-{stage}")
    return {stack.stack_name.split("-")[-1]: stack.template for stack in nested.stacks}


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == resource_type}


def combinations() -> Iterator[tuple[str, str]]:
    for stage in SHIPPED:
        for compute in PROFILES:
            yield stage, compute


# --- Every profile x stage ----------------------------------------------------------------------


def test_every_stage_passes_the_gates_and_cfn_lint(synth: Synth) -> None:
    assert synth_report.nag_failures(synth.out) == []
    stages = sorted(a.id.removeprefix("assembly-SageBert-") for a in synth.assembly.nested_assemblies)
    assert stages == sorted(synth.configs)
    template_files = sorted(synth.out.glob("assembly-SageBert-*/*.template.json"))
    assert len(template_files) == sum(len(stack_names(c)) for c in synth.configs.values())
    assert synth_report.run_cfn_lint(template_files) == 0


@pytest.mark.parametrize(("stage", "compute"), list(combinations()))
def test_profile_sets_image_runtime_and_isolation(synth: Synth, stage: str, compute: str) -> None:
    stacks = templates(synth, f"{stage}-{compute}")
    serving = stacks["Serving"]
    assert set(stacks) == stack_names(synth.configs[f"{stage}-{compute}"])
    if compute == "async":
        assert "Api" not in stacks  # dropped: the front door calls InvokeEndpoint
    models = resources(serving, "AWS::SageMaker::Model")
    config = next(iter(resources(serving, "AWS::SageMaker::EndpointConfig").values()))
    (variant,) = config["ProductionVariants"]
    model = models[variant["ModelName"]["Fn::GetAtt"][0]]
    image = json.dumps(model["PrimaryContainer"]["Image"])
    environment = model["PrimaryContainer"].get("Environment", {})
    if compute == "inferentia":
        assert "/huggingface-pytorch-inference-neuronx:" in image
        assert environment["SAGEBERT_RUNTIME"] == "neuron"
        assert variant["InstanceType"] == "ml.inf2.xlarge"
        assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 1800
    else:
        assert "/huggingface-pytorch-inference:" in image
        assert ("-gpu-" in image) == (compute == "gpu")
        assert ("-cpu-" in image) == (compute != "gpu")
    if compute == "gpu":
        assert environment["SAGEBERT_RUNTIME"] == "torch"
        assert variant["InstanceType"] == "ml.g4dn.xlarge"
    if compute in ("cpu", "serverless", "async"):
        assert "SAGEBERT_RUNTIME" not in environment  # the handler picks int8 ONNX when the archive has it
    assert model["EnableNetworkIsolation"] is (compute != "serverless")
    if compute == "serverless":
        assert set(variant["ServerlessConfig"]) >= {"MemorySizeInMB", "MaxConcurrency"}
        assert "InstanceType" not in variant and "KmsKeyId" not in config
    else:
        expected_count = 2 if stage == "prod" else 1
        assert variant["InitialInstanceCount"] == expected_count
    assert ("AsyncInferenceConfig" in config) == (compute == "async")
    # KmsKeyId only where an ML storage volume exists and is not NVMe (g4dn).
    assert ("KmsKeyId" in config) == (compute in ("cpu", "inferentia", "async"))


@pytest.mark.parametrize(("stage", "compute"), [(s, c) for s, c in combinations() if s in ("dev", "prod")])
def test_batch_runs_on_a_cpu_model(synth: Synth, stage: str, compute: str) -> None:
    # dev and prod ship a batch section: transform jobs run on CPU instances, so the batch stack has a CPU model
    # of its own whatever the endpoint's profile, and imports nothing from the serving stack (a model is renamed by
    # every update, and CloudFormation refuses to change an imported export).
    stacks = templates(synth, f"{stage}-{compute}")
    assert "batch" in synth.configs[f"{stage}-{compute}"]
    assert len(resources(stacks["Serving"], "AWS::SageMaker::Model")) == 1
    (batch_model,) = resources(stacks["Batch"], "AWS::SageMaker::Model").values()
    image = json.dumps(batch_model["PrimaryContainer"]["Image"])
    assert "/huggingface-pytorch-inference:" in image and "-cpu-" in image
    assert "SAGEBERT_RUNTIME" not in batch_model["PrimaryContainer"].get("Environment", {})
    imported = re.findall(r'"Fn::ImportValue": "([^"]+)"', json.dumps(stacks["Batch"]))
    assert imported and not any("Serving" in name for name in imported)


# --- Everything at once -------------------------------------------------------------------------


def test_everything_at_once_builds_the_whole_endpoint(synth: Synth) -> None:
    stacks = templates(synth, "everything")
    assert set(stacks) == stack_names(synth.configs["everything"]) >= {"Storage", "Serving", "Api", "Batch"}
    serving = stacks["Serving"]
    (config,) = resources(serving, "AWS::SageMaker::EndpointConfig").values()
    variants = config["ProductionVariants"]
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in variants] == [("AllTraffic", 1), ("Candidate", 0.25)]
    models = resources(serving, "AWS::SageMaker::Model")
    assert len(models) == 2 and variants[0]["ModelName"] != variants[1]["ModelName"]
    candidate = models[variants[1]["ModelName"]["Fn::GetAtt"][0]]
    assert candidate["PrimaryContainer"]["ModelDataUrl"] == S3_URI
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 5
    (endpoint,) = resources(serving, "AWS::SageMaker::Endpoint").values()
    routing = endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY" and routing["CanarySize"] == {"Type": "CAPACITY_PERCENT", "Value": 20}
    assert len(endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]) == 4  # 2 variants x 2
    (target,) = resources(serving, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert target["ResourceId"] == "endpoint/sagebert-everything/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)


def test_everything_with_vpc_passes_the_gates(default_artifact: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "vpc.yaml").write_text(yaml.safe_dump(_everything(EVERYTHING_VPC)), encoding="utf-8")
    out = tmp_path / "out"
    build_app(config_dir=config_dir, outdir=str(out)).synth()  # raises ValidationFailed on a finding
    assert synth_report.nag_failures(out) == []


def test_everything_with_vpc_passes_cfn_lint(vpc_stage: tuple[dict[str, Any], list[Path]]) -> None:
    _, template_files = vpc_stage
    assert len(template_files) == len(stack_names(_everything(EVERYTHING_VPC)))
    assert synth_report.run_cfn_lint(template_files) == 0


def test_everything_with_vpc_runs_in_a_private_vpc(vpc_stage: tuple[dict[str, Any], list[Path]]) -> None:
    serving, _ = vpc_stage
    subnets = resources(serving, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    zones = {json.dumps(s["AvailabilityZone"]) for s in subnets.values()}
    assert len(zones) == 2  # one subnet in each of two Availability Zones
    assert all(s.get("MapPublicIpOnLaunch") in (None, False) for s in subnets.values())
    for absent in (
        "AWS::EC2::NatGateway",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::EIP",
    ):
        assert not resources(serving, absent), absent
    routes = resources(serving, "AWS::EC2::Route")
    assert not any("GatewayId" in r or "NatGatewayId" in r for r in routes.values())
    (flow_log,) = resources(serving, "AWS::EC2::FlowLog").values()
    assert flow_log["ResourceType"] == "VPC" and flow_log["TrafficType"] == "ALL"
    endpoints = resources(serving, "AWS::EC2::VPCEndpoint").values()
    services = {(e.get("VpcEndpointType", "Gateway"), json.dumps(e["ServiceName"])) for e in endpoints}
    gateways = [s for t, s in services if t == "Gateway"]
    interfaces = [s for t, s in services if t == "Interface"]
    assert len(gateways) == 1 and ".s3" in gateways[0]
    assert sorted(re.sub(r"^.*\.", "", s.rstrip('"]} ')) for s in interfaces) == ["api", "dkr", "logs"]
    assert all(".ecr." in s for s in interfaces if not s.rstrip('"]} ').endswith("logs"))
    (group_id,) = [k for k in resources(serving, "AWS::EC2::SecurityGroup") if k.startswith("NetworkEndpointSecurity")]
    models = resources(serving, "AWS::SageMaker::Model").values()
    for model in models:
        vpc_config = model["VpcConfig"]
        assert sorted(ref["Ref"] for ref in vpc_config["Subnets"]) == sorted(subnets)
        assert vpc_config["SecurityGroupIds"] == [{"Fn::GetAtt": [group_id, "GroupId"]}]


def test_shadow_stage_passes_with_its_own_model(synth: Synth) -> None:
    serving = templates(synth, "shadow")["Serving"]
    (config,) = resources(serving, "AWS::SageMaker::EndpointConfig").values()
    (shadow,) = config["ShadowProductionVariants"]
    assert (shadow["VariantName"], shadow["InitialVariantWeight"]) == ("Shadow", 0.5)
    assert len(resources(serving, "AWS::SageMaker::Model")) == 2


def test_threads_per_worker_sizes_each_variants_model_server(synth: Synth) -> None:
    stacks = templates(synth, "wide-workers")
    models = resources(stacks["Serving"], "AWS::SageMaker::Model")
    (config,) = resources(stacks["Serving"], "AWS::SageMaker::EndpointConfig").values()
    by_variant = {v["VariantName"]: models[v["ModelName"]["Fn::GetAtt"][0]] for v in config["ProductionVariants"]}

    def workers(model: dict[str, Any]) -> str | None:
        return model["PrimaryContainer"].get("Environment", {}).get("SAGEMAKER_MODEL_SERVER_WORKERS")

    # 4 vCPUs / 2 threads = 2 workers on the main variant's c6i.xlarge; 2 / 2 = 1 on the candidate's c6i.large.
    assert workers(by_variant["AllTraffic"]) == "2" and workers(by_variant["Candidate"]) == "1"
    # Transform jobs get their own model with the toolkit's layout: the endpoint's was sized for its instances.
    (batch,) = resources(stacks["Batch"], "AWS::SageMaker::Model").values()
    assert workers(batch) is None


# --- Rejected combinations ----------------------------------------------------------------------

_HUB = "{source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, task: text-classification}"
_S3 = f"{{source: s3, uri: {S3_URI}}}"

REJECTED: list[tuple[str, str, str]] = [
    (
        "accelerator_type on cpu",
        "endpoint: {accelerator_type: ml.eia2.medium}",
        "Amazon Elastic Inference closed to new customers",
    ),
    (
        "gpu instance type on cpu",
        "endpoint: {instance_type: ml.g4dn.xlarge}",
        "endpoint.instance_type = 'ml.g4dn.xlarge' is not a cpu instance type; use ml.<family>.<size> with family "
        "one of c5, c6i",
    ),
    ("gpu instance type on cpu names gpu", "endpoint: {instance_type: ml.g5.2xlarge}", "set endpoint.compute: gpu."),
    (
        "cpu instance type on gpu names cpu",
        "endpoint: {compute: gpu, instance_type: ml.c6i.large}",
        "ml.c6i.large is a cpu instance type: set endpoint.compute: cpu.",
    ),
    (
        "inf2 on cpu names inferentia",
        "endpoint: {instance_type: ml.inf2.xlarge}",
        "ml.inf2.xlarge is a inferentia instance type: set endpoint.compute: inferentia.",
    ),
    (
        "gpu instance type on async names gpu",
        "endpoint: {compute: async, instance_type: ml.g4dn.xlarge}",
        "is not an async instance type",
    ),
    (
        "inf1",
        "endpoint: {compute: inferentia, instance_type: ml.inf1.xlarge}",
        "Inferentia1 (inf1) needs the Neuron SDK 1",
    ),
    ("a size the family lacks", "endpoint: {compute: gpu, instance_type: ml.g4dn.large}", "is not a gpu instance type"),
    (
        "variant instance type of another profile",
        f"endpoint: {{variants: [{{name: Candidate, weight: 1, model: {_S3}, instance_type: ml.g4dn.xlarge}}]}}",
        "endpoint variant Candidate: instance_type = 'ml.g4dn.xlarge' is not a cpu instance type",
    ),
    (
        "volume_size_gb on g4dn",
        "endpoint: {compute: gpu, instance_type: ml.g4dn.xlarge, volume_size_gb: 50}",
        "endpoint.volume_size_gb = 50 with ml.g4dn.xlarge: this instance type has local NVMe storage",
    ),
    (
        "volume_size_gb on c5d",
        "endpoint: {instance_type: ml.c5d.large, volume_size_gb: 50}",
        "has local NVMe storage and SageMaker rejects VolumeSizeInGB",
    ),
    (
        "serverless with instance_count",
        "endpoint: {compute: serverless, instance_count: 1}",
        "endpoint.instance_count is set with endpoint.compute = serverless",
    ),
    (
        "serverless with instance_type",
        "endpoint: {compute: serverless, instance_type: ml.c6i.large}",
        "endpoint.instance_type is set with endpoint.compute = serverless",
    ),
    (
        "serverless with autoscaling",
        "endpoint: {compute: serverless, autoscaling: {}}",
        "endpoint.autoscaling is set with endpoint.compute = serverless: serverless scales itself",
    ),
    (
        "serverless with variants",
        f"endpoint: {{compute: serverless, variants: [{{name: Candidate, weight: 1, model: {_S3}}}]}}",
        "endpoint.variants is set with endpoint.compute = serverless: serverless endpoints take one production",
    ),
    (
        "serverless with shadow",
        f"endpoint: {{compute: serverless, shadow: {{model: {_S3}}}}}",
        "endpoint.shadow is set with endpoint.compute = serverless",
    ),
    (
        "serverless with data_capture",
        "endpoint: {compute: serverless, data_capture: {}}",
        "endpoint.data_capture is set with endpoint.compute = serverless: serverless endpoints do not support data",
    ),
    (
        "serverless with vpc",
        "endpoint: {compute: serverless, vpc: {}}",
        "endpoint.vpc is set with endpoint.compute = serverless: serverless endpoints do not support a VPC",
    ),
    (
        "serverless with volume_size_gb",
        "endpoint: {compute: serverless, volume_size_gb: 20}",
        "endpoint.volume_size_gb is set with endpoint.compute = serverless",
    ),
    (
        "serverless with canary rollout",
        "endpoint: {compute: serverless, rollout: {strategy: canary}}",
        "endpoint.rollout.strategy = canary with endpoint.compute = serverless",
    ),
    (
        "serverless with linear rollout",
        "endpoint: {compute: serverless, rollout: {strategy: linear}}",
        "endpoint.rollout.strategy = linear with endpoint.compute = serverless",
    ),
    (
        "serverless with model.network_isolation true",
        "model: {source: bundled, network_isolation: true}\nendpoint: {compute: serverless}",
        "model.network_isolation = true with endpoint.compute = serverless",
    ),
    (
        "serverless memory not a 1 GB step",
        "endpoint: {compute: serverless, serverless: {memory_mb: 1500}}",
        "endpoint.serverless.memory_mb = 1500",
    ),
    (
        "serverless concurrency above 200",
        "endpoint: {compute: serverless, serverless: {max_concurrency: 201}}",
        "endpoint.serverless.max_concurrency = 201",
    ),
    (
        "provisioned_concurrency above max_concurrency",
        "endpoint: {compute: serverless, serverless: {max_concurrency: 5, provisioned_concurrency: 6}}",
        "provisioned_concurrency = 6 is above max_concurrency = 5",
    ),
    (
        "serverless section on cpu",
        "endpoint: {serverless: {}}",
        "endpoint.serverless is set with endpoint.compute = cpu",
    ),
    (
        "async_inference section on gpu",
        "endpoint: {compute: gpu, async_inference: {}}",
        "endpoint.async_inference is set with endpoint.compute = gpu",
    ),
    ("async with api", "endpoint: {compute: async}\napi: {auth: iam}", "api is set with endpoint.compute = async"),
    (
        "async with variants",
        f"endpoint: {{compute: async, variants: [{{name: Candidate, weight: 1, model: {_S3}}}]}}",
        "endpoint.variants / endpoint.shadow with compute: async",
    ),
    (
        "async with shadow",
        f"endpoint: {{compute: async, shadow: {{model: {_S3}}}}}",
        "endpoint.variants / endpoint.shadow with compute: async",
    ),
    (
        "shadow together with variants",
        f"endpoint: {{variants: [{{name: Candidate, weight: 1, model: {_S3}}}], shadow: {{model: {_S3}}}}}",
        "endpoint.shadow with endpoint.variants: SageMaker shadow tests take exactly one production variant",
    ),
    (
        "duplicate variant names",
        f"endpoint: {{variants: [{{name: AllTraffic, weight: 1, model: {_S3}}}]}}",
        "variant name 'AllTraffic' is used twice",
    ),
    (
        "shadow named like the production variant",
        f"endpoint: {{variant_name: Main, shadow: {{name: Main, model: {_S3}}}}}",
        "variant name 'Main' is used twice",
    ),
    (
        "more than 5 production variants",
        "endpoint: {variants: [" + ", ".join(f"{{name: V{i}, weight: 1, model: {_S3}}}" for i in range(5)) + "]}",
        "6 production variants; deployment guardrails watch at most 10 rollback alarms",
    ),
    (
        "min_instances 0 on cpu",
        "endpoint: {autoscaling: {min_instances: 0}}",
        "endpoint.autoscaling.min_instances = 0 with compute: cpu: only async endpoints scale to zero",
    ),
    (
        "instance_count above the autoscaling range",
        "endpoint: {instance_count: 5, autoscaling: {min_instances: 1, max_instances: 4}}",
        "endpoint.instance_count = 5 is outside endpoint.autoscaling's [1, 4]",
    ),
    (
        "instance_count below the autoscaling range",
        "endpoint: {instance_count: 1, autoscaling: {min_instances: 2, max_instances: 4}}",
        "endpoint.instance_count = 1 is outside endpoint.autoscaling's [2, 4]",
    ),
    (
        "autoscaling min above max",
        "endpoint: {autoscaling: {min_instances: 5, max_instances: 3}}",
        "min_instances = 5 is above max_instances = 3",
    ),
    (
        "gpu autoscaling without target",
        "endpoint: {compute: gpu, autoscaling: {}}",
        "endpoint.autoscaling.target_invocations_per_minute is required with compute: gpu",
    ),
    (
        "inferentia autoscaling without target",
        "endpoint: {compute: inferentia, autoscaling: {}}",
        "endpoint.autoscaling.target_invocations_per_minute is required with compute: inferentia",
    ),
    (
        "production with autoscaling min 1",
        "production: true\nendpoint: {instance_count: 2, autoscaling: {min_instances: 1, max_instances: 4}}",
        "endpoint.autoscaling.min_instances = 1 with production: true",
    ),
    (
        "production with one instance",
        "production: true\nendpoint: {compute: gpu, instance_count: 1}",
        "endpoint.instance_count = 1 with production: true",
    ),
    (
        "hub model with vpc",
        f"model: {_HUB}\nendpoint: {{vpc: {{}}}}",
        "model.source = hub with endpoint.vpc: the VPC has no internet route",
    ),
    (
        "hub variant model with vpc",
        f"endpoint: {{vpc: {{}}, variants: [{{name: Candidate, weight: 1, model: {_HUB}}}]}}",
        "endpoint.variants[0].model.source = hub with endpoint.vpc",
    ),
    (
        "hub model with inferentia",
        f"model: {_HUB}\nendpoint: {{compute: inferentia}}",
        "model.source = hub with endpoint.compute = inferentia",
    ),
    (
        "api.target_variant not a variant",
        f"endpoint: {{variants: [{{name: Candidate, weight: 1, model: {_S3}}}]}}\napi: {{target_variant: Shadow}}",
        "api.target_variant = 'Shadow' is not a production variant of the endpoint (AllTraffic, Candidate)",
    ),
    (
        "threads_per_worker on gpu",
        "endpoint: {compute: gpu, threads_per_worker: 2}",
        "endpoint.threads_per_worker = 2 with compute: gpu",
    ),
    (
        "threads_per_worker that does not divide the vCPUs",
        "endpoint: {instance_type: ml.c6i.xlarge, threads_per_worker: 3}",
        "does not divide the 4 vCPUs of ml.c6i.xlarge: workers x threads must use every vCPU and no more. Use one "
        "of 1, 2, 4.",
    ),
    (
        "threads_per_worker above a variant's vCPUs",
        f"endpoint: {{instance_type: ml.c6i.xlarge, threads_per_worker: 4, variants: [{{name: Small, weight: 1, "
        f"instance_type: ml.c6i.large, model: {_S3}}}]}}",
        "does not divide the 2 vCPUs of ml.c6i.large",
    ),
    (
        "threads_per_worker with a derived autoscaling target",
        "endpoint: {threads_per_worker: 2, autoscaling: {max_instances: 3}}",
        "target_invocations_per_minute is required with endpoint.threads_per_worker = 2",
    ),
    (
        "vpc with one availability zone",
        "endpoint: {vpc: {availability_zones: 1}}",
        "endpoint.vpc.availability_zones = 1",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stage.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("snippet", "fragment"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejected_combination_fails_with_its_message(tmp_path: Path, snippet: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_stage_config(_write(tmp_path, snippet))
    assert fragment in str(raised.value)
    assert str(tmp_path / "stage.yaml") in str(raised.value)  # the message names the file


# Neighbours of the rejected rows that must stay accepted: the rules refuse exactly the combination.
ACCEPTED = [
    ("gpu instance on gpu", "endpoint: {compute: gpu, instance_type: ml.g5.2xlarge}"),
    ("volume_size_gb on an EBS cpu type", "endpoint: {instance_type: ml.c6i.large, volume_size_gb: 50}"),
    ("serverless alone", "endpoint: {compute: serverless}"),
    ("serverless keeps model defaults", "model: {source: bundled}\nendpoint: {compute: serverless}"),
    (
        "serverless with all_at_once and provisioned = max",
        "endpoint: {compute: serverless, rollout: {strategy: all_at_once}, "
        "serverless: {max_concurrency: 5, provisioned_concurrency: 5}}",
    ),
    ("async alone", "endpoint: {compute: async}"),
    ("async scales to zero", "endpoint: {compute: async, autoscaling: {min_instances: 0, max_instances: 2}}"),
    (
        "async production scales to zero",
        "production: true\nendpoint: {compute: async, instance_count: 2, autoscaling: {min_instances: 0}}",
    ),
    ("gpu autoscaling with target", "endpoint: {compute: gpu, autoscaling: {target_invocations_per_minute: 300}}"),
    (
        "production autoscaling min 2",
        "production: true\nendpoint: {instance_count: 2, autoscaling: {min_instances: 2, max_instances: 4}}",
    ),
    (
        "five production variants",
        "endpoint: {variants: [" + ", ".join(f"{{name: V{i}, weight: 1, model: {_S3}}}" for i in range(4)) + "]}",
    ),
    (
        "api.target_variant names a variant",
        f"endpoint: {{variants: [{{name: Candidate, weight: 1, model: {_S3}}}]}}\napi: {{target_variant: Candidate}}",
    ),
    ("hub model on cpu without vpc", f"model: {_HUB}"),
    ("one worker on a 2-vCPU instance", "endpoint: {threads_per_worker: 2}"),
    (
        "wide workers with an autoscaling target",
        "endpoint: {compute: async, instance_type: ml.c6i.2xlarge, threads_per_worker: 4, "
        "autoscaling: {target_invocations_per_minute: 3000}}",
    ),
]


@pytest.mark.parametrize("snippet", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_neighbour_of_a_rejected_combination_is_accepted(tmp_path: Path, snippet: str) -> None:
    load_stage_config(_write(tmp_path, snippet))


@pytest.mark.parametrize(
    ("snippet", "g4", "host"),
    [
        ("endpoint: {compute: elastic-inference}", "ml.g4dn.xlarge", "ml.m5.large + ml.eia2.medium"),
        (
            "endpoint: {compute: elastic-inference, instance_type: ml.c5.large, accelerator_type: ml.eia2.xlarge}",
            "ml.g4dn.2xlarge",
            "ml.c5.large + ml.eia2.xlarge",
        ),
    ],
)
def test_elastic_inference_names_end_of_life_replacements_and_cost(
    tmp_path: Path, snippet: str, g4: str, host: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_stage_config(_write(tmp_path, snippet))
    message = str(raised.value)
    assert "end of life in April 2024" in message
    assert f"`compute: gpu` + `instance_type: {g4}`" in message
    assert "`compute: inferentia` + `instance_type: ml.inf2.xlarge`" in message
    # The monthly cost of the old setup and of each replacement, with the difference.
    assert re.search(
        rf"monthly for 1 instance\(s\) at [a-z0-9-]+ prices of \d{{4}}-\d{{2}}-\d{{2}}: {re.escape(host)} \$[\d,]+",
        message,
    )
    assert re.search(rf"{g4} \$[\d,]+ \([+-][\d,]+\), ml\.inf2\.xlarge \$[\d,]+ \([+-][\d,]+\)", message)


def test_elastic_inference_cost_uses_the_configured_host_and_count(tmp_path: Path) -> None:
    snippet = "endpoint: {instance_type: ml.m5.xlarge, instance_count: 2, accelerator_type: ml.eia2.large}"
    with pytest.raises(ConfigError) as raised:
        load_stage_config(_write(tmp_path, snippet))
    assert "monthly for 2 instance(s)" in str(raised.value)
    assert "ml.m5.xlarge + ml.eia2.large" in str(raised.value)
