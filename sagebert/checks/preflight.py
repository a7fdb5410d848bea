"""`python -m sagebert preflight --stage S`: what no synth can know, checked in the target account and region.

With credentials, each check is one read-only API call (or a few) and prints a verdict:

- the credentials' account is the stage's (when its config names one);
- the Powertools layer's SSM parameter exists in the region (api or batch);
- the Hugging Face inference image tag exists in its registry (every model's image);
- the SageMaker quotas cover blue/green: an update runs the new fleet beside the old one, so twice the fleet at its
  maximum, per instance type (endpoint usage), and the transform job's instances (transform job usage);
- Lambda keeps at least 100 unreserved concurrent executions after the front door reserves its share;
- the CDK bootstrap stack is at least the version the synthesized templates require;
- the update path: a deployed endpoint whose autoscaled variant would change instance type (SageMaker refuses that
  update) is caught here, against cdk.out, with the two-step way through.

Without credentials it lists what it would check and exits 0. Nothing here writes to AWS.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infra.catalog import images as image_catalog
from infra.catalog.images import Flavour
from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER
from infra.config.model import ContainerModel, ModelSource, RegistryModel
from infra.config.stage import STAGE_PREFIX, StageConfig, load_stage_config, stage_files
from sagebert.assembly import stage_templates
from sagebert.checks import deploy_gates
from sagebert.tables import columns

Verdict = Literal["PASS", "FAIL", "WARN", "SKIP"]
# Lambda refuses to reserve concurrency that leaves fewer unreserved executions than this.
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
LAMBDA_MIN_UNRESERVED = 100
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
# What every CDK template's CheckBootstrapVersion rule requires when cdk.out does not say more.
DEFAULT_BOOTSTRAP_VERSION = 6
IMAGE_MEDIA_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
]


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str


def _error_code(err: Exception) -> str:
    response = getattr(err, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


# --- the checks: each takes a real (or Stubber-driven) botocore client ------------------------------------------


def check_account(sts: Any, config: StageConfig) -> Check:
    """The credentials point at the stage's account (when its config names one)."""
    name = "account"
    try:
        account = str(sts.get_caller_identity()["Account"])
    except Exception as err:
        return Check(name, "FAIL", f"the credentials do not work: {err}")
    if config.account is not None and account != config.account:
        return Check(name, "FAIL", f"the credentials are for {account}, the stage's config names {config.account}")
    return Check(name, "PASS", account + (" (the stage's)" if config.account else " (environment-agnostic stage)"))


def check_powertools(ssm: Any) -> Check:
    name = "Powertools layer parameter"
    try:
        value = ssm.get_parameter(Name=POWERTOOLS_LAYER_PARAMETER)["Parameter"]["Value"]
    except Exception as err:
        if _error_code(err) == "ParameterNotFound":
            return Check(name, "FAIL", f"{POWERTOOLS_LAYER_PARAMETER} does not exist here: deploy to another region")
        return Check(name, "WARN", f"could not read {POWERTOOLS_LAYER_PARAMETER}: {err}")
    return Check(name, "PASS", f"{POWERTOOLS_LAYER_PARAMETER} -> {value}")


def check_image(ecr: Any, image: image_catalog.DlcImage, flavour: Flavour, region: str) -> Check:
    tag = image.tag(flavour)
    name = f"image {image.repository}:{tag}"
    account = image.registries.get(region)
    if account is None:
        return Check(name, "FAIL", f"the catalog has no registry for it in {region}")
    try:
        answer = ecr.batch_get_image(
            registryId=account,
            repositoryName=image.repository,
            imageIds=[{"imageTag": tag}],
            acceptedMediaTypes=IMAGE_MEDIA_TYPES,
        )
    except Exception as err:
        return Check(name, "WARN", f"could not look it up in {account}: {err}")
    if answer.get("images"):
        return Check(name, "PASS", f"found in {account}.dkr.ecr.{region}")
    reasons = ", ".join(f["failureCode"] for f in answer.get("failures", [])) or "not found"
    return Check(name, "FAIL", f"{account}.dkr.ecr.{region}: {reasons}")


def endpoint_instances(config: StageConfig) -> dict[str, int]:
    """Instance type -> instances the endpoint runs at most (autoscaling's maximum for the main variant)."""
    endpoint = config.endpoint
    if not endpoint.profile.instances or endpoint.instance_type is None:
        return {}
    counts: dict[str, int] = {}
    main = endpoint.autoscaling.max_instances if endpoint.autoscaling else endpoint.instance_count
    counts[endpoint.instance_type] = main
    extras: list[tuple[str | None, int]] = [(v.instance_type, v.instance_count) for v in endpoint.variants]
    if endpoint.shadow is not None:
        extras.append((endpoint.shadow.instance_type, endpoint.shadow.instance_count))
    for extra_type, count in extras:
        instance_type = extra_type or endpoint.instance_type
        counts[instance_type] = counts.get(instance_type, 0) + count
    return counts


def _sagemaker_quotas(quotas: Any) -> dict[str, float]:
    found: dict[str, float] = {}
    for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker"):
        for quota in page["Quotas"]:
            found[quota["QuotaName"]] = quota["Value"]
    return found


def check_quotas(quotas: Any, config: StageConfig) -> list[Check]:
    try:
        values = _sagemaker_quotas(quotas)
    except Exception as err:
        return [Check("SageMaker quotas", "WARN", f"could not list them: {err}")]
    needs: list[tuple[str, int, str]] = [
        # Blue/green: the new fleet starts beside the old one at its full size.
        (f"{instance_type} for endpoint usage", 2 * count, f"2 x {count} (blue/green at the maximum fleet)")
        for instance_type, count in sorted(endpoint_instances(config).items())
    ]
    if config.batch is not None:
        count = config.batch.instance_count
        needs.append((f"{config.batch.instance_type} for transform job usage", count, f"{count} (one transform job)"))
    checks = []
    for quota, needed, why in needs:
        value = values.get(quota)
        if value is None:
            checks.append(Check(f"quota {quota}", "WARN", "not listed for this account and region"))
        elif value < needed:
            checks.append(Check(f"quota {quota}", "FAIL", f"{value:g} < {why}: request an increase in Service Quotas"))
        else:
            checks.append(Check(f"quota {quota}", "PASS", f"{value:g} >= {why}"))
    return checks


def check_lambda_concurrency(lambda_: Any, config: StageConfig) -> Check:
    name = "Lambda unreserved concurrency"
    reserved = config.api.reserved_concurrency if config.api is not None else None
    try:
        settings = lambda_.get_account_settings()
    except Exception as err:
        return Check(name, "WARN", f"could not read the account settings: {err}")
    unreserved = int(settings["AccountLimit"]["UnreservedConcurrentExecutions"])
    after = unreserved - (reserved or 0)
    detail = f"{unreserved} unreserved now" + (f", {after} after reserving {reserved}" if reserved else "")
    if after < LAMBDA_MIN_UNRESERVED:
        return Check(
            name,
            "FAIL",
            f"{detail}: Lambda keeps at least {LAMBDA_MIN_UNRESERVED} unreserved; lower api.reserved_concurrency or "
            "raise the account's concurrency quota (if the front door is deployed, its reservation is already "
            "counted in the first figure)",
        )
    return Check(name, "PASS", f"{detail} (>= {LAMBDA_MIN_UNRESERVED})")


def required_bootstrap_version(outdir: Path) -> int:
    """The highest bootstrap version cdk.out's stacks require (DEFAULT_BOOTSTRAP_VERSION without cdk.out)."""
    versions = [DEFAULT_BOOTSTRAP_VERSION]
    for manifest in outdir.glob("**/manifest.json"):
        for artifact in json.loads(manifest.read_text(encoding="utf-8")).get("artifacts", {}).values():
            version = artifact.get("properties", {}).get("requiresBootstrapStackVersion")
            if isinstance(version, int):
                versions.append(version)
    return max(versions)


def check_bootstrap(ssm: Any, required: int) -> Check:
    name = "CDK bootstrap version"
    try:
        value = int(ssm.get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"])
    except Exception as err:
        if _error_code(err) == "ParameterNotFound":
            return Check(name, "FAIL", "this account and region are not bootstrapped: run `npx cdk bootstrap`")
        return Check(name, "WARN", f"could not read {BOOTSTRAP_PARAMETER}: {err}")
    if value < required:
        return Check(name, "FAIL", f"{value} < {required}: run `npx cdk bootstrap` to upgrade it")
    return Check(name, "PASS", f"{value} >= {required}")


def check_update_path(cloudformation: Any, stage: str, outdir: Path) -> Check:
    name = "endpoint update path"
    stack_name = f"{STAGE_PREFIX}{stage}-Serving"
    synthesized = None
    if (outdir / "manifest.json").is_file():
        synthesized = stage_templates(outdir).get(f"{STAGE_PREFIX}{stage}")
    if not synthesized or "Serving" not in synthesized:
        return Check(name, "SKIP", f"no {outdir}/ for this stage: run `make synth` first to compare")
    try:
        body = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    except Exception as err:
        if _error_code(err) == "ValidationError":
            return Check(name, "PASS", f"{stack_name} is not deployed yet: a first create")
        return Check(name, "WARN", f"could not read {stack_name}'s template: {err}")
    deployed = json.loads(body) if isinstance(body, str) else body
    before, after = {"Serving": deployed}, {"Serving": synthesized["Serving"]}
    problems = [
        *deploy_gates.stuck_scaling_updates(before, after),
        *deploy_gates.endpoint_form_switches(before, after),
        *deploy_gates.named_replacements(before, after),
    ]
    if problems:
        return Check(name, "FAIL", " ".join(problems))
    return Check(
        name,
        "PASS",
        "no autoscaled variant changes its instance type; no endpoint changes form in place; nothing named is replaced",
    )


# --- running them ----------------------------------------------------------------------------------------------


def _models(config: StageConfig) -> list[tuple[ContainerModel, Flavour]]:
    """The models whose image the stage picks from the catalog, with the flavour each runs. A registry model's
    image is the one its model package names (chosen when it was registered), so it has none here."""
    flavour = config.endpoint.profile.flavour
    models: list[tuple[ModelSource, Flavour]] = [
        (config.model, flavour),
        *((m, flavour) for m in config.endpoint.models),
    ]
    if config.batch is not None:
        models.append((config.model, "cpu"))  # the batch stack's own model runs the CPU image
    return [(m, f) for m, f in models if not isinstance(m, RegistryModel)]


def planned(config: StageConfig) -> list[str]:
    """What `run` would check for this stage, one line each (the no-credentials answer)."""
    lines = ["the credentials' account is the stage's (`account` in its config, when set)"]
    if config.api is not None or config.batch is not None:
        lines.append(f"SSM parameter {POWERTOOLS_LAYER_PARAMETER} exists (the Powertools layer)")
    images = {
        (image_catalog.image_for(s.container, f).repository, image_catalog.image_for(s.container, f).tag(f))
        for s, f in _models(config)
    }
    lines += [f"image {repository}:{tag} exists in the region's DLC registry" for repository, tag in sorted(images)]
    for instance_type, count in sorted(endpoint_instances(config).items()):
        lines.append(f"quota '{instance_type} for endpoint usage' >= {2 * count} (blue/green)")
    if config.batch is not None:
        lines.append(f"quota '{config.batch.instance_type} for transform job usage' >= {config.batch.instance_count}")
    if config.api is not None:
        lines.append(f"Lambda unreserved concurrency stays >= {LAMBDA_MIN_UNRESERVED} after the front door's share")
    lines.append(f"CDK bootstrap version ({BOOTSTRAP_PARAMETER}) is recent enough")
    lines.append("a deployed endpoint's autoscaled variant keeps its instance type (compared with cdk.out)")
    return lines


def run(config: StageConfig, stage: str, region: str, client: Callable[[str], Any], outdir: Path) -> list[Check]:
    """Every check for the stage; `client(service)` makes a botocore client for the target region."""
    ssm = client("ssm")
    checks: list[Check] = [check_account(client("sts"), config)]
    if config.api is not None or config.batch is not None:
        checks.append(check_powertools(ssm))
    ecr = client("ecr")
    seen: set[tuple[str, str]] = set()
    for source, flavour in _models(config):
        image = image_catalog.image_for(source.container, flavour)
        if (image.repository, image.tag(flavour)) not in seen:
            seen.add((image.repository, image.tag(flavour)))
            checks.append(check_image(ecr, image, flavour, region))
    checks += check_quotas(client("service-quotas"), config)
    if config.api is not None:
        checks.append(check_lambda_concurrency(client("lambda"), config))
    checks.append(check_bootstrap(ssm, required_bootstrap_version(outdir)))
    checks.append(check_update_path(client("cloudformation"), stage, outdir))
    return checks


def render(checks: list[Check]) -> str:
    rows = [("check", "verdict", "detail")] + [(c.name, c.verdict, c.detail) for c in checks]
    return "\n".join(columns(rows))


def main(stage: str, config_dir: Path, region: str | None, outdir: Path) -> int:
    import botocore.session

    config_file = config_dir / f"{stage}.yaml"
    if not config_file.is_file():
        stages = [file.stem for file in stage_files(config_dir)]
        print(f"error: {config_file} not found; stages: {stages}.", file=sys.stderr)
        return 2
    config = load_stage_config(config_file)
    session = botocore.session.get_session()
    target = region or config.region or session.get_config_variable("region")
    if session.get_credentials() is None or not target:
        missing = "AWS credentials" if session.get_credentials() is None else "a region (--region or AWS_REGION)"
        print(f"preflight for stage {stage}: no {missing}, so nothing was checked. With them it checks:")
        for line in planned(config):
            print(f"  - {line}")
        return 0
    if config.region is not None and target != config.region:
        print(f"error: --region {target} differs from {config_file}'s region {config.region}.", file=sys.stderr)
        return 2
    checks = run(config, stage, target, lambda service: session.create_client(service, region_name=target), outdir)
    print(f"preflight for stage {stage} in {target}:")
    print(render(checks))
    failed = [c for c in checks if c.verdict == "FAIL"]
    if failed:
        print(f"{len(failed)} check(s) failed: fix them before `npx cdk deploy '{STAGE_PREFIX}{stage}/*'`.")
        return 1
    return 0
