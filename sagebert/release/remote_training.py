"""Launch model_code/train.py as a SageMaker training job (`python -m sagebert train --remote`).

Built on the sagemaker SDK v2 `HuggingFace` estimator: it resolves the Hugging Face training image
for pinned versions and writes the script-mode hyperparameters the training toolkit expects (v3
dropped the framework estimators; see docs/release-and-packaging.md, SDK v3). sagebert uploads the
code and, by default, the bundled base model itself — content-addressed under the output path — and
hands the SDK their S3 URIs, so the SDK uploads nothing on its own and `--dry-run` can print the
complete CreateTrainingJob request while calling no AWS API at all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config.stage import StageConfig
from infra.config.training import TrainingSettings
from sagebert.paths import MODEL_CODE_DIR
from sagebert.release.archive import MODEL_FILES, bundled_model_dir, write_tar_gz
from sagebert.report.catalog import import_sdk

ENTRY_POINT = "train.py"


class RemoteTrainingError(Exception):
    """The stage cannot launch a training job; the message says why and what to do."""


@dataclass(frozen=True)
class Upload:
    """One object sagebert puts in S3 before the job starts."""

    uri: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def checksum_sha256(self) -> str:
        """The SHA-256 as S3 stores and returns it (ChecksumSHA256: base64 of the digest)."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode("ascii")


@dataclass
class TrainingPlan:
    request: dict[str, Any]
    uploads: list[Upload]

    def describe(self) -> str:
        lines = ["uploads (skipped when the object already exists with the same SHA-256):"]
        lines += [f"  {u.uri}  ({len(u.data) / 1e6:.1f} MB, sha256 {u.sha256[:16]}...)" for u in self.uploads]
        lines += ["CreateTrainingJob request:", json.dumps(self.request, indent=2, sort_keys=True, default=str)]
        return "\n".join(lines)


def _join(prefix: str, *parts: str) -> str:
    return "/".join([prefix.rstrip("/"), *parts])


def plan_uploads(settings: TrainingSettings, code_dir: Path = MODEL_CODE_DIR) -> tuple[Upload, list[Upload], str]:
    """The code archive, the base-model files when base_model is `bundled`, and the model channel URI."""
    buffer = io.BytesIO()
    write_tar_gz(buffer, [(ENTRY_POINT, (code_dir / ENTRY_POINT).read_bytes())])
    code = buffer.getvalue()
    code_upload = Upload(
        _join(settings.output_path, "code", hashlib.sha256(code).hexdigest()[:16], "sourcedir.tar.gz"), code
    )
    if settings.base_model != "bundled":
        return code_upload, [], settings.base_model
    folder = bundled_model_dir()
    files = [(name, (folder / name).read_bytes()) for name in MODEL_FILES if (folder / name).is_file()]
    digest = hashlib.sha256(b"".join(name.encode() + hashlib.sha256(data).digest() for name, data in files))
    prefix = _join(settings.output_path, "base-model", digest.hexdigest()[:16])
    return code_upload, [Upload(_join(prefix, name), data) for name, data in files], prefix + "/"


def hyperparameters(settings: TrainingSettings) -> dict[str, Any]:
    """train.py arguments; paths come from the SM_* variables of the channels."""
    reserved = {"model-dir", "model-name-or-path", "train", "validation", "test", "output-data-dir", "teacher"}
    clash = sorted(reserved & {k.replace("_", "-") for k in settings.hyperparameters})
    if clash:
        raise RemoteTrainingError(
            f"training.hyperparameters sets {clash}; on SageMaker those paths come from the channels and "
            "SM_* variables. Remove them."
        )
    return {k.replace("_", "-"): v for k, v in sorted(settings.hyperparameters.items())}


def build_plan(stage: str, config: StageConfig, session: Any, job_name: str | None = None) -> TrainingPlan:
    """Create the estimator and run its fit() against `session`, which records the request."""
    settings = config.training
    if settings is None:
        raise RemoteTrainingError(
            f"stage {stage!r} has no `training:` section in config/{stage}.yaml; add one (see the configuration "
            "reference in docs/configuration.md, keys training.*)."
        )
    import_sdk()
    from sagemaker.huggingface import HuggingFace

    code_upload, model_uploads, model_uri = plan_uploads(settings)
    try:
        estimator = HuggingFace(
            entry_point=ENTRY_POINT,
            source_dir=code_upload.uri,  # an S3 URI: the SDK stages nothing itself
            role=settings.role_arn,
            instance_type=settings.instance_type,
            instance_count=settings.instance_count,
            volume_size=settings.volume_size_gb,
            max_run=settings.max_run_minutes * 60,
            transformers_version=settings.transformers_version,
            pytorch_version=settings.pytorch_version,
            py_version=settings.py_version,
            hyperparameters=hyperparameters(settings),
            output_path=settings.output_path,
            output_kms_key=settings.kms_key_arn,
            volume_kms_key=settings.kms_key_arn,
            base_job_name=f"sagebert-{stage}",
            disable_profiler=True,
            debugger_hook_config=False,
            tags=[{"Key": "sagebert:stage", "Value": stage}],
            sagemaker_session=session,
        )
        channels = {name: _join(settings.input_path, name) + "/" for name in ("train", "validation", "test")}
        channels["model"] = model_uri
        name = job_name or f"sagebert-{stage}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        estimator.fit(inputs=channels, wait=False, logs=False, job_name=name)
    except ValueError as err:  # e.g. no training image for these versions
        raise RemoteTrainingError(f"config/{stage}.yaml training: {err}") from None
    requests = [request for func, request in session.captured if func == "train"]
    if len(requests) != 1:
        raise RemoteTrainingError("the sagemaker SDK did not produce exactly one training request")
    return TrainingPlan(request=requests[0], uploads=[code_upload, *model_uploads])


def recording_session(region: str, *, dry_run: bool) -> Any:
    """A sagemaker Session that records create requests; with dry_run it also never submits them."""
    sagemaker = import_sdk()
    import boto3

    class RecordingSession(sagemaker.Session):  # type: ignore[misc, name-defined]
        captured: list[tuple[str, dict[str, Any]]]

        def _intercept_create_request(self, request: dict[str, Any], create: Any, func_name: str | None = None) -> Any:
            self.captured.append((func_name or "", request))
            return None if dry_run else create(request)

    if dry_run:
        # Credentials that cannot work: a dry run must not reach AWS, and if it tried, it would fail.
        boto_session = boto3.Session(region_name=region, aws_access_key_id="dry-run", aws_secret_access_key="dry-run")
    else:
        boto_session = boto3.Session(region_name=region)
    # The SDK's own telemetry would otherwise send a request per call: sagebert opts out.
    sdk_config = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
    session = RecordingSession(boto_session=boto_session, sagemaker_config=sdk_config)
    session.captured = []
    return session


def upload(uploads: list[Upload], session: Any, kms_key_arn: str | None) -> None:
    """Put the code and base model in S3 (see put_uploads), SSE-KMS with `kms_key_arn` when one is set."""
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn} if kms_key_arn else {}
    put_uploads(session.boto_session.client("s3"), uploads, [extra] * len(uploads))


def put_uploads(s3: Any, uploads: list[Upload], extras: list[dict[str, Any]]) -> None:
    """Put each upload with its PutObject parameters from `extras` (encryption, content type). The keys are
    content-addressed, but a key says nothing about the bytes stored under it (an interrupted or foreign upload,
    another tool): an existing object is kept only when S3's SHA-256 checksum of it is this upload's, and is
    replaced otherwise. Every upload sends its SHA-256, so S3 refuses bytes that were changed on the way and stores
    the checksum for the next comparison."""
    for item, extra in zip(uploads, extras, strict=True):
        bucket, key = item.uri.removeprefix("s3://").split("/", 1)
        try:
            head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except s3.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            head = None
        if head is not None and head.get("ChecksumSHA256") == item.checksum_sha256:
            print(f"exists   {item.uri} (sha256 matches)", flush=True)
            continue
        if head is not None:
            found = head.get("ChecksumSHA256") or "none stored"
            print(f"replace  {item.uri}: its sha256 ({found}) is not this upload's", flush=True)
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=item.data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=item.checksum_sha256,
            **extra,
        )
        print(f"uploaded {item.uri}", flush=True)


def main(stage: str, config: StageConfig, *, dry_run: bool, region: str | None) -> int:
    if config.training is None:
        raise RemoteTrainingError(
            f"stage {stage!r} has no `training:` section in config/{stage}.yaml; add one (see the configuration "
            "reference in docs/configuration.md, keys training.*)."
        )
    region = region or config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise RemoteTrainingError(f"no region: set `region` in config/{stage}.yaml, pass --region, or set AWS_REGION.")
    session = recording_session(region, dry_run=dry_run)
    if dry_run:
        plan = build_plan(stage, config, session)
        print(plan.describe())
        print("dry run: nothing was uploaded and no job was created.")
        return 0
    code_upload, model_uploads, _ = plan_uploads(config.training)
    upload([code_upload, *model_uploads], session, config.training.kms_key_arn)  # before the job needs them
    plan = build_plan(stage, config, session)  # submits CreateTrainingJob
    print(
        f"started training job {plan.request['TrainingJobName']} in {region}; follow it in the SageMaker "
        "console or with `aws sagemaker describe-training-job`."
    )
    return 0
