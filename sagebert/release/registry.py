"""The SageMaker Model Registry from the command line: register a packaged archive, resolve approved versions.

`python -m sagebert register --stage S` (S: the stage with `registry.owner: true`) uploads the archive that
`make package` built and a model-quality statistics document to the stage's artifact bucket, then creates a
model package version in the project's group with its inference specification (the stage's DLC image from the
catalog, the uploaded model data, the content types the handler accepts, the instance types the deploying stages
use) and its metrics (test accuracy from training, int8 agreement and p99 gap from packaging), waiting for
approval (PendingManualApproval). `--dry-run` prints every request and calls nothing.

`python -m sagebert resolve-models --stage S` asks the registry for the latest Approved version of each group
that stage deploys from (`model.source: registry` without a pinned `version`) and writes the resolved-models
file that synth reads, so synth itself never calls AWS.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.catalog import images as image_catalog
from infra.config.model import ContainerSettings, ModelSource, RegistryModel
from infra.config.stage import STAGE_PREFIX, StageConfig, load_all
from sagebert.release.remote_training import Upload, put_uploads

# What model_code/inference.py accepts (input_fn) and answers (output_fn): a JSON request for real-time calls,
# JSON Lines for batch transform.
CONTENT_TYPES = ["application/json", "application/jsonlines"]
RESPONSE_TYPES = ["application/json", "application/jsonlines"]
# The handler's file in the archive (code/inference.py): the toolkit's default module, named explicitly so the
# package says what it runs whoever deploys it.
PROGRAM = "inference.py"
MANIFEST = "sagebert.json"  # what `make package` writes into the archive (sagebert.release.package.MANIFEST)
STORAGE_OUTPUT = "ArtifactBucketName"  # the StorageStack output naming the artifact bucket
RESOLVED_FORMAT = 1
METADATA_PREFIX = "sagebert:"


class RegistryError(Exception):
    """Registering or resolving cannot go on; the message says why and what to do."""


# --- the inputs: the archive, its packaging figures, the training metrics --------------------------------------


@dataclass(frozen=True)
class PackagedArchive:
    """The archive's bytes and what `make package` measured (its sagebert.json manifest)."""

    path: Path
    data: bytes
    served_runtime: str
    runtimes: tuple[str, ...]
    int8_label_agreement: float
    int8_p99_gap: float
    int8_meets_tolerance: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_archive(path: Path) -> PackagedArchive:
    """The archive and its manifest. Only `make package` records the int8 figures the registry keeps, so an
    archive without sagebert.json (`sagebert archive`, one built elsewhere) is refused."""
    if not path.is_file():
        raise RegistryError(f"model archive {path} not found; build it with `make package`.")
    data = path.read_bytes()
    manifest: dict[str, Any] | None = None
    try:
        # A stream (BytesIO shares the bytes, no copy): the manifest sits after the graphs; nothing else is kept.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
            for member in tar:
                if member.name == MANIFEST and member.isfile():
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        manifest = json.loads(extracted.read())
                    break
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as err:
        raise RegistryError(f"{path}: not a readable model archive ({err}); rebuild it with `make package`.") from None
    if manifest is None:
        raise RegistryError(
            f"{path} has no {MANIFEST}: only `make package` (python -m sagebert package) records the int8 agreement "
            "the registry keeps with each version. Rebuild the archive that way."
        )
    try:
        fidelity = manifest["int8"]["fidelity"]
        return PackagedArchive(
            path=path,
            data=data,
            served_runtime=str(manifest["served_runtime"]),
            runtimes=tuple(manifest.get("runtimes", ["onnx"])),
            int8_label_agreement=float(fidelity["label_agreement"]),
            int8_p99_gap=float(fidelity["p99_gap"]),
            int8_meets_tolerance=bool(manifest["int8"].get("meets_tolerance", False)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise RegistryError(
            f"{path}: its {MANIFEST} lacks {err} (an older `make package`?); rebuild it with `make package`."
        ) from None


@dataclass(frozen=True)
class SplitMetrics:
    """The test split's figures from training (model_code/train.py writes metrics.json)."""

    accuracy: float
    macro_f1: float | None
    examples: int | None
    labels: list[str]
    matrix: list[list[int]]


def read_metrics(path: Path) -> SplitMetrics:
    if not path.is_file():
        raise RegistryError(
            f"training metrics {path} not found; `make train` writes them (or pass --metrics with the metrics.json "
            "of the training run that produced this archive)."
        )
    try:
        test = json.loads(path.read_text(encoding="utf-8"))["test"]
        matrix = test.get("confusion_matrix") or {}
        return SplitMetrics(
            accuracy=float(test["accuracy"]),
            macro_f1=float(test["macro_f1"]) if "macro_f1" in test else None,
            examples=int(test["examples"]) if "examples" in test else None,
            labels=[str(label) for label in matrix.get("labels", [])],
            matrix=[[int(n) for n in row] for row in matrix.get("matrix", [])],
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
        raise RegistryError(
            f"{path}: no test accuracy in it ({err}); it must be train.py's metrics.json with a `test` section "
            "(train with a test split)."
        ) from None


def statistics_document(metrics: SplitMetrics, archive: PackagedArchive) -> dict[str, Any]:
    """The model-quality statistics the package points to, in SageMaker Model Monitor's layout (what Studio's
    model-quality view reads: `<kind>_classification_metrics` with value and standard deviation per metric) plus a
    `sagebert` section with the packaging figures."""
    kind = "binary" if len(metrics.labels) == 2 else "multiclass"
    figures: dict[str, Any] = {"accuracy": {"value": metrics.accuracy, "standard_deviation": "NaN"}}
    if metrics.labels and metrics.matrix:
        figures["confusion_matrix"] = {
            true: {predicted: metrics.matrix[i][j] for j, predicted in enumerate(metrics.labels)}
            for i, true in enumerate(metrics.labels)
        }
    document: dict[str, Any] = {"version": 0.0, f"{kind}_classification_metrics": figures}
    if metrics.examples is not None:
        document["dataset"] = {"item_count": metrics.examples}
    document["sagebert"] = {
        "test_accuracy": metrics.accuracy,
        "test_macro_f1": metrics.macro_f1,
        "served_runtime": archive.served_runtime,
        "int8_label_agreement": archive.int8_label_agreement,
        "int8_p99_gap": archive.int8_p99_gap,
        "int8_meets_tolerance": archive.int8_meets_tolerance,
        "archive_sha256": archive.sha256,
    }
    return document


# --- which stage registers, and what the package supports --------------------------------------------------------


def owner_stage(stage: str, stages: dict[str, StageConfig]) -> StageConfig:
    """The stage's config when it owns the group; else an error naming the stage that does (or saying none does)."""
    if stage not in stages:
        raise RegistryError(f"no stage {stage!r} in config/; stages: {', '.join(stages)}.")
    config = stages[stage]
    if config.registry is not None and config.registry.owner:
        return config
    owners = [name for name, c in stages.items() if c.registry is not None and c.registry.owner]
    if owners:
        raise RegistryError(
            f"stage {stage!r} does not own the model package group; {owners[0]!r} does (registry.owner: true in "
            f"config/{owners[0]}.yaml). Register there: python -m sagebert register --stage {owners[0]}."
        )
    raise RegistryError(
        "no stage owns a model package group: add `registry: {owner: true}` to the config of the stage whose "
        f"account registers models (e.g. config/{stage}.yaml), deploy it, then register."
    )


def container_of(source: ModelSource) -> ContainerSettings:
    """The container versions that serve the registered archive: the owner stage model's. (An owner whose own
    model comes from the registry names no container: the project's default versions serve it. A Hub owner is
    refused when its stage file loads.)"""
    return ContainerSettings() if isinstance(source, RegistryModel) else source.container


def instance_types(group: str, owner: str, stages: dict[str, StageConfig], flavour: str) -> tuple[list[str], list[str]]:
    """(real-time, transform) instance types this version will run on: the owner stage's model (the archive being
    registered) and every model slot of a stage in config/ that deploys `group` (the main model, a variant, the
    shadow), on endpoints that run the registered image flavour; transform jobs run a stage's main model on the
    CPU image (the batch stack's), so the batch instance type counts where that model is this one."""
    realtime: set[str] = set()
    transform: set[str] = set()

    def deploys(source: ModelSource) -> bool:
        return isinstance(source, RegistryModel) and source.group == group

    for name, config in stages.items():
        endpoint = config.endpoint
        main = name == owner or deploys(config.model)
        slots: list[tuple[bool, str | None]] = [(main, endpoint.instance_type)]
        slots += [(deploys(v.model), v.instance_type or endpoint.instance_type) for v in endpoint.variants]
        if endpoint.shadow is not None:
            shadow = endpoint.shadow
            slots.append((deploys(shadow.model), shadow.instance_type or endpoint.instance_type))
        if endpoint.profile.flavour == flavour and endpoint.profile.instances:
            realtime.update(instance for selected, instance in slots if selected and instance)
        if config.batch is not None and main and flavour == "cpu":
            transform.add(config.batch.instance_type)
    return sorted(realtime), sorted(transform)


# --- the plan: every request, built offline ------------------------------------------------------------------------


@dataclass(frozen=True)
class Placeholders:
    """What only the deployed account knows; a dry run shows these instead."""

    bucket: str
    kms_key: str


def placeholders(stage: str) -> Placeholders:
    return Placeholders(
        bucket=f"<{STORAGE_OUTPUT}-of-{STAGE_PREFIX}{stage}-Storage>",
        kms_key="<the bucket's default KMS key (GetBucketEncryption)>",
    )


@dataclass
class RegisterPlan:
    """The S3 puts and the CreateModelPackage request, in the order they run."""

    uploads: list[Upload]
    puts: list[dict[str, Any]]  # PutObject parameters without Body
    request: dict[str, Any]  # CreateModelPackage parameters

    def describe(self) -> str:
        lines = ["S3 PutObject requests (skipped when the object already exists with the same SHA-256):"]
        for item, put in zip(self.uploads, self.puts, strict=True):
            shown = put | {"Body": f"<{len(item.data)} bytes, sha256 {item.sha256}>"}
            lines.append(json.dumps(shown, indent=2, sort_keys=True))
        lines += ["CreateModelPackage request:", json.dumps(self.request, indent=2, sort_keys=True)]
        return "\n".join(lines)


def build_plan(
    stage: str,
    stages: dict[str, StageConfig],
    archive: PackagedArchive,
    metrics: SplitMetrics,
    *,
    region: str,
    bucket: str,
    kms_key: str,
) -> RegisterPlan:
    config = owner_stage(stage, stages)
    assert config.registry is not None  # owner_stage checked it
    settings = config.registry
    container = container_of(config.model)
    profile = config.endpoint.profile
    flavour = profile.flavour
    if region not in image_catalog.regions():
        raise RegistryError(f"region {region!r} has no Hugging Face DLC registry in the image catalog.")
    try:
        image = image_catalog.image_for(container, flavour).uri(region, flavour)
    except (KeyError, ValueError) as err:
        raise RegistryError(f"config/{stage}.yaml model.container: {err}") from None
    if profile.runtime == "torch" and "torch" not in archive.runtimes:
        raise RegistryError(
            f"{archive.path} holds only the ONNX graphs, but stage {stage!r} runs PyTorch (endpoint.compute: "
            f"{config.endpoint.compute}); rebuild it with `python -m sagebert package --runtimes onnx,torch`."
        )

    # Content-addressed keys: registering the same archive and figures twice reuses the objects.
    statistics = (json.dumps(statistics_document(metrics, archive), indent=1, sort_keys=True) + "\n").encode()
    version_key = hashlib.sha256(archive.sha256.encode() + statistics).hexdigest()
    folder = f"{settings.prefix}{settings.group}/{version_key[:16]}/"
    model_upload = Upload(f"s3://{bucket}/{folder}model.tar.gz", archive.data)
    metrics_upload = Upload(f"s3://{bucket}/{folder}metrics.json", statistics)
    uploads = [model_upload, metrics_upload]
    puts = [
        {
            "Bucket": bucket,
            "Key": item.uri.split("/", 3)[3],
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": item.checksum_sha256,
            # The stage's key, named: the bucket's default encryption would pick it too, but an explicit
            # SSE-KMS header keeps the object on it even where a policy asks every put to say so.
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": kms_key,
            "BucketKeyEnabled": True,
        }
        for item, content_type in ((model_upload, "application/gzip"), (metrics_upload, "application/json"))
    ]

    environment = {"SAGEMAKER_PROGRAM": PROGRAM}
    if flavour != "cpu":  # cpu leaves the handler on auto, as the stacks do
        environment["SAGEBERT_RUNTIME"] = profile.runtime
    realtime, transform = instance_types(settings.group, stage, stages, flavour)
    specification: dict[str, Any] = {
        "Containers": [{"Image": image, "ModelDataUrl": model_upload.uri, "Environment": environment}],
        "SupportedContentTypes": CONTENT_TYPES,
        "SupportedResponseMIMETypes": RESPONSE_TYPES,
    }
    if realtime:
        specification["SupportedRealtimeInferenceInstanceTypes"] = realtime
    if transform:
        specification["SupportedTransformInstanceTypes"] = transform

    figures = {
        "test-accuracy": f"{metrics.accuracy:.6f}",
        "int8-label-agreement": f"{archive.int8_label_agreement:.6f}",
        "int8-p99-gap": f"{archive.int8_p99_gap:.6f}",
        "served-runtime": archive.served_runtime,
        "archive-sha256": archive.sha256,
        "registered-from-stage": stage,
    }
    description = (
        f"sagebert model from stage {stage}: test accuracy {metrics.accuracy:.2%}, int8 label agreement "
        f"{archive.int8_label_agreement:.2%} (p99 probability gap {archive.int8_p99_gap:.4f}), serves "
        f"{archive.served_runtime}; archive sha256 {archive.sha256}."
    )
    request: dict[str, Any] = {
        "ModelPackageGroupName": settings.group,
        "ModelPackageDescription": description,
        "InferenceSpecification": specification,
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "ContentDigest": f"sha256:{metrics_upload.sha256}",
                    "S3Uri": metrics_upload.uri,
                }
            }
        },
        "CustomerMetadataProperties": {METADATA_PREFIX + key: value for key, value in figures.items()},
        "ModelApprovalStatus": "PendingManualApproval",
        "Domain": "NATURAL_LANGUAGE_PROCESSING",
        "Task": "CLASSIFICATION",
        # A retried call with the same archive and figures returns the version it created, not a second one.
        "ClientToken": version_key[:36],
    }
    return RegisterPlan(uploads=uploads, puts=puts, request=request)


# --- what runs with credentials ------------------------------------------------------------------------------------


def artifact_bucket(cloudformation: Any, stage: str) -> str:
    """The owner stage's artifact bucket: the ArtifactBucketName output of its storage stack."""
    stack = f"{STAGE_PREFIX}{stage}-Storage"
    try:
        found = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except Exception as err:
        raise RegistryError(
            f"cannot read stack {stack} ({err}); deploy the stage first (npx cdk deploy '{STAGE_PREFIX}{stage}/*') "
            "with credentials for its account and region."
        ) from None
    for output in found[0].get("Outputs", []) if found else []:
        if output.get("OutputKey") == STORAGE_OUTPUT:
            return str(output["OutputValue"])
    raise RegistryError(f"stack {stack} has no {STORAGE_OUTPUT} output; deploy the stage again.")


def bucket_key(s3: Any, bucket: str) -> str:
    """The KMS key the bucket encrypts with by default (the stage's key, infra/operations/artifact_store.py)."""
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except Exception as err:
        raise RegistryError(f"cannot read the default encryption of bucket {bucket}: {err}") from None
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") == "aws:kms" and default.get("KMSMasterKeyID"):
            return str(default["KMSMasterKeyID"])
    raise RegistryError(f"bucket {bucket} has no SSE-KMS default encryption; it is not a sagebert artifact bucket.")


def approve_command(arn: str, region: str) -> str:
    return (
        f"aws sagemaker update-model-package --region {region} --model-package-arn {arn} "
        '--model-approval-status Approved --approval-description "<who checked what>"'
    )


def register(plan: RegisterPlan, s3: Any, sagemaker: Any) -> str:
    """Upload, then create the version (its ModelDataUrl must exist first); returns the package ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        put_uploads(s3, plan.uploads, [_without_location(put) for put in plan.puts])
    except (BotoCoreError, ClientError) as err:
        raise RegistryError(
            f"uploading to s3://{plan.puts[0]['Bucket']}/ failed: {err}. The caller needs s3:PutObject and "
            "s3:GetObject under the registry prefix and kms:GenerateDataKey on the stage's key."
        ) from None
    try:
        return str(sagemaker.create_model_package(**plan.request)["ModelPackageArn"])
    except (BotoCoreError, ClientError) as err:
        group = plan.request["ModelPackageGroupName"]
        raise RegistryError(
            f"CreateModelPackage in group {group} failed: {err}. Is the owner stage deployed (it creates the group), "
            "and may the caller sagemaker:CreateModelPackage there?"
        ) from None


def _without_location(put: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in put.items() if k not in ("Bucket", "Key", "ChecksumAlgorithm", "ChecksumSHA256")}


def _region(config: StageConfig, stage: str, region: str | None) -> str:
    found = region or config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise RegistryError(f"no region: set `region` in config/{stage}.yaml, pass --region, or set AWS_REGION.")
    return found


ClientFactory = Callable[[str, str], Any]  # (service, region) -> botocore client


def _boto_client(service: str, region: str) -> Any:
    import boto3

    return boto3.Session(region_name=region).client(service)


def main_register(
    stage: str,
    config_dir: Path,
    archive_path: Path,
    metrics_path: Path,
    *,
    dry_run: bool,
    region: str | None,
    bucket: str | None = None,
    client: ClientFactory | None = None,
) -> int:
    client = client or _boto_client
    stages = load_all(config_dir)
    config = owner_stage(stage, stages)
    region = _region(config, stage, region)
    archive = read_archive(archive_path)
    metrics = read_metrics(metrics_path)
    if dry_run:
        shown = placeholders(stage)
        plan = build_plan(
            stage, stages, archive, metrics, region=region, bucket=bucket or shown.bucket, kms_key=shown.kms_key
        )
        print(plan.describe())
        print("dry run: nothing was uploaded and no model package was created.")
        return 0
    s3 = client("s3", region)
    bucket = bucket or artifact_bucket(client("cloudformation", region), stage)
    plan = build_plan(stage, stages, archive, metrics, region=region, bucket=bucket, kms_key=bucket_key(s3, bucket))
    arn = register(plan, s3, client("sagemaker", region))
    print(f"registered {arn} (PendingManualApproval).")
    print(f"approve it once checked:\n  {approve_command(arn, region)}")
    print("stages with `model.source: registry` deploy the latest Approved version after `resolve-models`.")
    return 0


# --- resolve-models ------------------------------------------------------------------------------------------------


def group_reference(source: RegistryModel, region: str) -> str:
    """ListModelPackages' ModelPackageGroupName: the name in this account, the group's ARN in another (in the
    region's partition: aws, aws-cn, aws-us-gov ..., from botocore's endpoint data)."""
    if source.group_account is None:
        return source.group
    import botocore.session

    partition = botocore.session.get_session().get_partition_for_region(region)
    return f"arn:{partition}:sagemaker:{region}:{source.group_account}:model-package-group/{source.group}"


def latest_approved(sagemaker: Any, source: RegistryModel, region: str) -> dict[str, Any]:
    reference = group_reference(source, region)
    try:
        answer = sagemaker.list_model_packages(
            ModelPackageGroupName=reference,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except Exception as err:
        raise RegistryError(f"cannot list model packages of group {reference}: {err}") from None
    found = answer.get("ModelPackageSummaryList", [])
    if not found:
        raise RegistryError(
            f"model package group {reference} has no Approved version. Register one (python -m sagebert register "
            "--stage <owner stage>) and approve it: aws sagemaker update-model-package --model-package-arn <arn> "
            "--model-approval-status Approved; or pin model.version in the stage config."
        )
    summary: dict[str, Any] = found[0]
    return summary


def _version(summary: dict[str, Any]) -> int:
    if "ModelPackageVersion" in summary:
        return int(summary["ModelPackageVersion"])
    return int(str(summary["ModelPackageArn"]).rsplit("/", 1)[1])  # ...:model-package/<group>/<version>


def resolve(
    stage: str, config: StageConfig, sagemaker: Any, region: str, now: datetime.datetime
) -> dict[str, dict[str, Any]]:
    """Group name -> its latest Approved version, for every unpinned registry source of the stage."""
    groups: dict[str, dict[str, Any]] = {}
    for key, source in config.model_sources():
        if not isinstance(source, RegistryModel):
            continue
        if source.version is not None:
            print(f"{key}: group {source.group} pinned to version {source.version} in config/{stage}.yaml")
            continue
        if source.group in groups:
            continue
        summary = latest_approved(sagemaker, source, region)
        groups[source.group] = {
            "model_package_arn": str(summary["ModelPackageArn"]),
            "version": _version(summary),
            "approval_status": str(summary.get("ModelApprovalStatus", "Approved")),
            "resolved_at": now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        print(f"{key}: group {source.group} -> version {groups[source.group]['version']}")
    return groups


def write_resolved(output: Path, groups: dict[str, dict[str, Any]]) -> None:
    """Write the resolved-models file atomically (a temp file beside it, then a rename): synth never reads half a
    file. Groups already in it that this run did not resolve are kept (another stage's run wrote them)."""
    existing: dict[str, Any] = {}
    if output.is_file():
        try:
            previous = json.loads(output.read_text(encoding="utf-8"))
            if previous.get("format") == RESOLVED_FORMAT and isinstance(previous.get("groups"), dict):
                existing = previous["groups"]
        except (json.JSONDecodeError, AttributeError):
            existing = {}
    document = {"format": RESOLVED_FORMAT, "groups": dict(sorted((existing | groups).items()))}
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}-", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def main_resolve(
    stage: str,
    config_dir: Path,
    output: Path,
    *,
    region: str | None,
    client: ClientFactory | None = None,
    now: datetime.datetime | None = None,
) -> int:
    client = client or _boto_client
    stages = load_all(config_dir)
    if stage not in stages:
        raise RegistryError(f"no stage {stage!r} in config/; stages: {', '.join(stages)}.")
    config = stages[stage]
    if any(isinstance(m, RegistryModel) for _, m in config.model_sources()):
        region = _region(config, stage, region)
        groups = resolve(stage, config, client("sagemaker", region), region, now or datetime.datetime.now(datetime.UTC))
    else:
        # Not an error: a pipeline step may run this for every stage; the file still exists for synth afterwards.
        print(f"config/{stage}.yaml deploys no model from the registry: nothing to resolve.")
        groups = {}
    write_resolved(output, groups)
    print(f"wrote {output}")
    return 0
