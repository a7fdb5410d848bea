"""Typed per-environment configuration: one YAML file per stage in config/, validated at synth.

StageConfig is one stage file: the stage-wide keys (account, region, production, retain_data, tags) and
one section per top-level key, each from its own module (model, endpoint, training, api, batch,
monitoring, traffic); it holds the rules that span sections. load_all reads config/.

Every key is documented by its `description`; the config reference in docs/configuration.md is generated from
these models (`python -m sagebert config-reference`) and a test keeps the two in step.
A bad file fails synth with one message naming the file, each bad key, its value and what is
allowed. A capability a stage does not use is absent from its file; nothing here switches on the
stage's name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from infra.catalog import images as image_catalog
from infra.catalog import resource_regions
from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_REGIONS
from infra.config.api import ApiSettings
from infra.config.base import ACCOUNT_ID, Strict
from infra.config.batch import BatchSettings
from infra.config.endpoint import EndpointSettings
from infra.config.errors import ConfigError, field_doc, walk
from infra.config.model import BundledModel, HubModel, ModelSource, RegistryModel
from infra.config.monitoring import MonitoringSettings
from infra.config.registry import RegistrySettings
from infra.config.traffic import TrafficSettings
from infra.config.training import TrainingSettings

STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class StageConfig(Strict):
    """One environment (stage). The file name is the stage name: config/dev.yaml -> SageBert-dev."""

    account: str | None = Field(
        None,
        pattern=ACCOUNT_ID,
        description="AWS account id (12 digits). With region absent too, the stacks are "
        "environment-agnostic and deploy wherever the CLI's credentials point.",
    )
    region: str | None = Field(
        None,
        description="AWS region, e.g. eu-west-1; must be a commercial region in the image catalog where "
        "CloudFormation offers every SageMaker resource type the stage creates (cfn-lint's provider schemas).",
    )
    production: bool = Field(
        False,
        description="Production safeguards: >= 2 endpoint instances, data retained on stack "
        "deletion, no Hub downloads unless explicitly allowed, an API (if any) with auth iam or cognito (never "
        "api_key) behind a WAF web ACL (api.waf).",
    )
    retain_data: bool = Field(
        True,
        description="Keep the KMS key and buckets when the stack is deleted (must be true in production).",
    )
    model: ModelSource = Field(
        default_factory=lambda: BundledModel(source="bundled"),
        description="Where the model data comes from: bundled (an archive built here, uploaded as a CDK "
        "asset), s3 (an existing object), hub (downloaded by the container at start-up) or registry (an approved "
        "model package version of the project's Model Registry group).",
    )
    endpoint: EndpointSettings = Field(
        default_factory=EndpointSettings,
        description="The real-time endpoint.",
    )
    training: TrainingSettings | None = Field(
        None, description="Remote fine-tuning for this stage (absent: no remote training)."
    )
    api: ApiSettings | None = Field(None, description="The API front door for the endpoint (absent: no API stack).")
    batch: BatchSettings | None = Field(
        None, description="Scheduled batch transform on the stage's model (absent: no batch stack)."
    )
    monitoring: MonitoringSettings | None = Field(
        None,
        description="A CloudWatch dashboard and alarms (to an SNS topic) for the stage's API, endpoint and batch "
        "runs (absent: no monitoring stack).",
    )
    traffic: TrafficSettings | None = Field(
        None,
        description="Expected load, for the cost report only (`make cost`): requests per month, texts per request, "
        "peak rate, batch records per run (absent: the report prices the deployed resources only).",
    )
    registry: RegistrySettings | None = Field(
        None,
        description="The project's SageMaker Model Registry group: created here with `owner: true` (absent: this "
        "stage has no group; it may still deploy from one with `model.source: registry`).",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags added to every resource of the stage.")

    @model_validator(mode="after")
    def _cross_checks(self) -> StageConfig:
        if self.region is not None and self.region not in image_catalog.regions():
            raise ValueError(
                f"region = {self.region!r} has no Hugging Face DLC registry in the image catalog; "
                f"allowed: {', '.join(sorted(image_catalog.regions()))}."
            )
        needs_powertools = [key for key in ("api", "batch") if getattr(self, key) is not None]
        if self.region is not None:
            self._resource_type_checks(self.region, needs_powertools)
        if self.region is not None and needs_powertools and self.region not in POWERTOOLS_REGIONS:
            allowed = ", ".join(sorted(POWERTOOLS_REGIONS & image_catalog.regions()))
            raise ValueError(
                f"region = {self.region!r} with {' and '.join(needs_powertools)}: the Powertools for AWS Lambda "
                "layer, which their functions load, is not published there (no SSM parameter "
                f"{POWERTOOLS_LAYER_PARAMETER}); allowed: {allowed}. Deploy the stage to one of them, or remove "
                f"{' and '.join(needs_powertools)}."
            )
        if self.endpoint.compute == "inferentia":
            if isinstance(self.model, RegistryModel):
                # The package names its Neuron image (chosen at registration): any catalogued one's registries.
                registries = set().union(*(i.registries for i in image_catalog.images() if "neuronx" in i.tags))
            else:
                registries = set(image_catalog.find_neuron(self.model.container.transformers_version).registries)
            if self.region is not None and self.region not in registries:
                raise ValueError(
                    f"region = {self.region!r} with endpoint.compute = inferentia: the Hugging Face Neuron image has "
                    "no "
                    f"registry there; allowed: {', '.join(sorted(registries))}."
                )
        if self.production:
            self._production_checks()
        self._endpoint_checks()
        self._registry_checks()
        return self

    def resource_types(self) -> dict[str, frozenset[str]]:
        """Config key -> the SageMaker resource types it makes the stage create: the ones of sagebert's types that
        some catalogued region lacks (infra/catalog/resource_regions.py). A literal region is checked against these
        here, before any CDK runs; the region rule and the report's region gate read the synthesized templates
        instead, and a test keeps this map equal to what those contain."""
        found = {
            "endpoint": frozenset(
                {"AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"}
            )
        }
        if self.endpoint.inference_component is not None:
            found["endpoint.inference_component"] = frozenset({"AWS::SageMaker::InferenceComponent"})
        if self.registry is not None and self.registry.owner:
            found["registry.owner"] = frozenset({"AWS::SageMaker::ModelPackageGroup"})
        if self.batch is not None:
            found["batch"] = frozenset({"AWS::SageMaker::Model"})
        return found

    def _resource_type_checks(self, region: str, needs_powertools: list[str]) -> None:
        """A literal region must offer every resource type the stage creates (CloudFormation refuses the stack
        otherwise, after the ones before it deployed)."""
        by_key = self.resource_types()
        gaps = {key: missing for key, types in by_key.items() if (missing := resource_regions.missing(region, types))}
        if not gaps:
            return
        candidates = image_catalog.regions() & (POWERTOOLS_REGIONS if needs_powertools else image_catalog.regions())
        working = resource_regions.regions_with(set().union(*by_key.values()), candidates)
        keys = [key for key in gaps if key != "endpoint"]
        listed = "; no ".join(f"{', '.join(types)} (from {key})" for key, types in gaps.items())
        where = (
            f"CloudFormation has no {listed} there"
            if resource_regions.types_in(region) is not None
            else f"the data has no provider schema for it, so nothing shows that {listed.replace('; no ', '; ')} exist "
            "there"
        )
        raise ValueError(
            f"region = {region!r}: {where} ({resource_regions.source()}), and a stack with a resource type its region "
            "lacks fails to deploy. Regions with every resource type this stage creates: "
            f"{', '.join(sorted(working)) or 'none'}."
            + (f" Deploy the stage to one of them, or remove {' and '.join(keys)}." if keys else "")
        )

    def _registry_checks(self) -> None:
        owned = self.registry.group if self.registry is not None and self.registry.owner else None
        for key, model in self.model_sources():
            if isinstance(model, RegistryModel):
                foreign = model.group_account is not None and model.group_account != self.account
                if owned is not None and model.group != owned and not foreign:
                    raise ValueError(
                        f"{key}.group = {model.group!r} on a stage that owns group {owned!r} (registry.group): this "
                        f"stage registers into {owned!r} but would deploy from another group of its own account. Set "
                        f"{key}.group: {owned}, or name the other group's account in {key}.group_account."
                    )
            elif owned is not None and key == "model" and isinstance(model, HubModel):
                raise ValueError(
                    "registry.owner: true with model.source = hub: `register` uploads this stage's packaged archive "
                    "and names its container's image, and a Hub model has no archive. Register from a stage whose "
                    "model is bundled or s3, or remove registry.owner."
                )
        if self.batch is not None and self.endpoint.compute == "inferentia" and isinstance(self.model, RegistryModel):
            raise ValueError(
                "model.source = registry with endpoint.compute = inferentia and batch: the batch stack's model is the "
                "same model package, whose image is the Neuron one the endpoint runs, and transform jobs run on CPU "
                "instances. Deploy the batch path from a CPU stage, or remove batch here."
            )

    def _production_checks(self) -> None:
        endpoint = self.endpoint
        if endpoint.profile.instances and endpoint.instance_count < 2:
            raise ValueError(
                f"endpoint.instance_count = {endpoint.instance_count} with production: true; "
                "a production endpoint needs at least 2 instances so SageMaker spreads them "
                "over Availability Zones. Set endpoint.instance_count: 2 or more."
            )
        if endpoint.autoscaling is not None and endpoint.autoscaling.min_instances < 2 and endpoint.compute != "async":
            raise ValueError(
                f"endpoint.autoscaling.min_instances = {endpoint.autoscaling.min_instances} with production: true; "
                "scaling in below 2 instances leaves one Availability Zone. Set min_instances: 2 or more."
            )
        component = endpoint.inference_component
        if component is not None and component.scale_to_zero and not component.allow_scale_to_zero_in_production:
            raise ValueError(
                "endpoint.inference_component.scale_to_zero = true with production: true; after an idle spell every "
                "request fails with a no-capacity error for the minutes a new instance and model copy take to start. "
                "Set scale_to_zero: false (and min_copies: 2), or accept that with "
                "endpoint.inference_component.allow_scale_to_zero_in_production: true."
            )
        if component is not None and not component.scale_to_zero and component.min_copies < 2:
            raise ValueError(
                f"endpoint.inference_component.min_copies = {component.min_copies} with production: true; one copy "
                "is one instance failure away from none. Set min_copies: 2 or more."
            )
        if not self.retain_data:
            raise ValueError(
                "retain_data = false with production: true; production data must survive a "
                "stack deletion. Remove retain_data or set it to true."
            )
        for key, model in self.model_sources():
            if isinstance(model, HubModel) and not model.allow_download_in_production:
                raise ValueError(
                    f"{key}.source = hub ({model.model_id}) with production: true; every "
                    "start-up would depend on the Hugging Face Hub. Package the model (source: "
                    f"bundled or s3), or set {key}.allow_download_in_production: true."
                )
        if self.api is not None and self.api.auth == "api_key":
            raise ValueError(
                "api.auth = api_key with production: true; an API key identifies a caller for quotas but is no "
                "authentication (anyone holding the key's value is that caller, and it travels in every request). "
                "Use api.auth: iam (SigV4) or cognito. "
                "https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html"
            )
        if self.api is not None and self.api.waf is None:
            raise ValueError(
                "api.waf is missing with production: true; a production API needs a WAF web ACL (managed rules and a "
                "per-IP rate limit) in front of it. Add `waf: {rate_limit: 2000}` under api."
            )
        if self.api is not None and "*" in self.api.cors_allow_origins:
            raise ValueError(
                "api.cors_allow_origins = ['*'] with production: true; a production API lists the origins "
                "that may call it from a browser. Name them, e.g. ['https://app.example.com']."
            )

    def _endpoint_checks(self) -> None:
        endpoint = self.endpoint
        if self.api is not None and not endpoint.profile.realtime:
            raise ValueError(
                "api is set with endpoint.compute = async: the front door calls InvokeEndpoint, which async endpoints "
                "do not answer (they take InvokeEndpointAsync with the input in S3). Remove the api section or use a "
                "real-time profile (cpu, gpu, inferentia, serverless)."
            )
        variants = [endpoint.variant_name, *(v.name for v in endpoint.variants)]
        if self.api is not None and self.api.target_variant is not None and self.api.target_variant not in variants:
            raise ValueError(
                f"api.target_variant = {self.api.target_variant!r} is not a production variant of the endpoint "
                f"({', '.join(variants)}); InvokeEndpoint would fail for every request. Name one of them or remove it."
            )
        for key, model in self.model_sources():
            if (
                endpoint.compute == "serverless"
                and model.network_isolation
                and "network_isolation" in model.model_fields_set
            ):
                raise ValueError(
                    f"{key}.network_isolation = true with endpoint.compute = serverless: serverless endpoints do not "
                    f"support network isolation. Remove {key}.network_isolation (serverless then runs without it)."
                )
            if endpoint.vpc is not None and isinstance(model, HubModel):
                raise ValueError(
                    f"{key}.source = hub with endpoint.vpc: the VPC has no internet route, so the container cannot "
                    "download from the Hub. Package the model (source: bundled or s3) or remove endpoint.vpc."
                )
        if endpoint.compute == "inferentia" and isinstance(self.model, HubModel):
            raise ValueError(
                "model.source = hub with endpoint.compute = inferentia: sagebert's Neuron path runs the packaged "
                "handler (code/inference.py), which a Hub model does not have. Package the model (source: bundled "
                "or s3)."
            )

    def model_sources(self) -> list[tuple[str, ModelSource]]:
        """(config key, model) for the stage model and every variant's model."""
        found: list[tuple[str, ModelSource]] = [("model", self.model)]
        found += [(f"endpoint.variants[{i}].model", v.model) for i, v in enumerate(self.endpoint.variants)]
        if self.endpoint.shadow is not None:
            found.append(("endpoint.shadow.model", self.endpoint.shadow.model))
        return found

    def network_isolation(self, model: ModelSource) -> bool:
        """EnableNetworkIsolation for this model: its setting, except serverless (which does not support it)
        turns the default off."""
        return model.network_isolation and self.endpoint.compute != "serverless"


def load_stage_config(path: Path) -> StageConfig:
    """Read and validate one stage file; raise ConfigError naming the file and every bad key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}.")
    try:
        return StageConfig.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(error) for error in err.errors()]
        raise ConfigError(f"{path}: invalid configuration:\n" + "\n".join(f"  - {x}" for x in lines)) from None


# A stage named `dev` (config/dev.yaml) is the cdk.Stage `SageBert-dev`.
STAGE_PREFIX = "SageBert-"
# The promotion pipeline's settings (infra/config/pipeline.py) sit beside the stage files; `pipeline` is no stage.
PIPELINE_FILE = "pipeline.yaml"


def stage_files(config_dir: Path) -> list[Path]:
    """The stage files in config_dir, in name order (pipeline.yaml is no stage)."""
    return sorted(file for file in config_dir.glob("*.yaml") if file.name != PIPELINE_FILE)


def load_all(config_dir: Path) -> dict[str, StageConfig]:
    """Every stage in config_dir, keyed by stage name (the file stem), in name order.

    `pipeline` is a reserved name, not a stage: config/pipeline.yaml holds the promotion pipeline's
    settings (infra/config/pipeline.py) and is skipped here.
    """
    files = stage_files(config_dir)
    if not files:
        raise ConfigError(f"{config_dir}: no stage files (*.yaml); add e.g. {config_dir}/dev.yaml.")
    stages: dict[str, StageConfig] = {}
    for file in files:
        if not STAGE_NAME.match(file.stem):
            raise ConfigError(
                f"{file}: the file name is the stage name and must match {STAGE_NAME.pattern} "
                "(lower case letters, digits, dashes; up to 20 characters; `pipeline` is reserved: "
                "pipeline.yaml holds the promotion pipeline's settings and is never a stage)."
            )
        stages[file.stem] = load_stage_config(file)
    # A stage's roles may touch only transform jobs named sagebert-<stage>-*; with stages `dev` and `dev-2` that
    # pattern of dev would also match dev-2's jobs.
    for name in stages:
        shadowed = sorted(other for other in stages if other != name and other.startswith(f"{name}-"))
        if shadowed:
            raise ConfigError(
                f"{config_dir}: stage names {name!r} and {shadowed[0]!r}: {name}'s transform-job grant "
                f"(sagebert-{name}-*) would also match {shadowed[0]}'s jobs. Rename one so that no stage name is "
                "another's followed by '-', e.g. dev2 instead of dev-2."
            )
    _registry_set_checks(config_dir, stages)
    return stages


def _registry_set_checks(config_dir: Path, stages: dict[str, StageConfig]) -> None:
    """Rules over the stage set for the Model Registry: one owner, and every stage that deploys from the owner's
    group names it where it is (account, region) and may read it (the owner's share_with_accounts)."""
    owners = [name for name, config in stages.items() if config.registry is not None and config.registry.owner]
    if len(owners) > 1:
        raise ConfigError(
            f"{config_dir}: registry.owner: true in {', '.join(f'{o}.yaml' for o in owners)}; a project has one "
            "model package group, created by one stage (the one whose account registers models). Keep it on one "
            "and remove it from the others (they deploy from it with model.source: registry)."
        )
    if not owners:
        return
    owner = stages[owners[0]]
    assert owner.registry is not None
    group = owner.registry.group
    for name, config in stages.items():
        for key, model in config.model_sources():
            if not isinstance(model, RegistryModel):
                continue
            where = f"{config_dir / (name + '.yaml')}: {key}"
            account = model.group_account or config.account
            if model.group != group:
                if model.group_account is None or model.group_account == owner.account:
                    raise ConfigError(
                        f"{where}.group = {model.group!r}, but the project's group is {group!r} (registry.group in "
                        f"{owners[0]}.yaml); no stage creates {model.group!r}. Set {key}.group: {group}, or name the "
                        f"account of that other group in {key}.group_account."
                    )
                continue
            key_prefix = model.model_data_prefix.removeprefix("s3://").split("/", 1)[1]
            if not key_prefix.startswith(owner.registry.prefix):
                raise ConfigError(
                    f"{where}.model_data_prefix = {model.model_data_prefix!r}: `register` uploads {group}'s archives "
                    f"under {owner.registry.prefix!r} ({owners[0]}.yaml registry.prefix), so the execution role could "
                    f"read none of them. Set it to s3://<{owners[0]}'s ArtifactBucketName>/{owner.registry.prefix} "
                    "(the owner's RegistryModelDataPrefix stack output)."
                )
            if name == owners[0]:
                continue
            if owner.account is not None and account != owner.account:
                raise ConfigError(
                    f"{where}: group {group} is created in account {owner.account} ({owners[0]}.yaml), but this "
                    f"stage would look for it in {account or 'the deploying account'}. Set {key}.group_account: "
                    f"'{owner.account}'."
                )
            if owner.region is not None and config.region != owner.region:
                raise ConfigError(
                    f"{where}: group {group} lives in {owner.region} ({owners[0]}.yaml) and a model package is "
                    f"deployed in its own region, but this stage deploys to {config.region or 'any region'}. Deploy "
                    f"the stage to {owner.region}, or register a copy of the model in a group there."
                )
            shared = owner.registry.share_with_accounts
            if config.account is not None and config.account != owner.account and config.account not in shared:
                raise ConfigError(
                    f"{where}: stage {name} (account {config.account}) deploys from group {group}, but "
                    f"{owners[0]}.yaml's registry.share_with_accounts does not list {config.account}: the group's "
                    "resource policy would refuse it. Add it there."
                )


def _describe(error: Any) -> str:
    """One line per pydantic error: key, bad value, what is allowed."""
    model, key_parts = walk(StageConfig, error["loc"])
    key = ".".join(key_parts) or "(top level)"
    if error["type"] == "extra_forbidden" and model is not None:
        return f"{key}: unknown key (value {error['input']!r}); allowed keys here: {', '.join(model.model_fields)}."
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])  # our own cross-field messages already name key and value
    if error["type"] == "missing":
        return f"{key}: required key is missing. {field_doc(StageConfig, error['loc'])}".rstrip()
    return f"{key} = {error['input']!r}: {error['msg']}. {field_doc(StageConfig, error['loc'])}".rstrip()
