"""`python -m sagebert register` and `resolve-models`: the requests, checked against botocore's service models, and
their answers driven by botocore's Stubber (no AWS account here)."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from infra.config.model import RegistryModel
from sagebert.__main__ import main as cli
from sagebert.release import registry
from sagebert.release.archive import write_tar_gz

GROUP = "sagebert-models"
OWNER_ACCOUNT = "111122223333"
BUCKET = "sagebert-dev-storage-artifacts1a2b3c"
OTHER_KEY = "arn:aws:kms:eu-west-1:444455556666:key/87654321-4321-4321-4321-210987654321"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0d2c3f1e-1111-2222-3333-444455556666"
MANIFEST = {
    "format": 1,
    "served_runtime": "onnx-int8",
    "runtimes": ["onnx"],
    "int8": {"fidelity": {"label_agreement": 0.994792, "p99_gap": 0.052524}, "meets_tolerance": True},
}
METRICS = {
    "validation": {"examples": 4, "accuracy": 1.0},
    "test": {
        "examples": 192,
        "accuracy": 0.8958333333333334,
        "macro_f1": 0.8957,
        "confusion_matrix": {"labels": ["negative", "positive"], "matrix": [[83, 13], [7, 89]]},
    },
}
DEV = f"""
region: eu-west-1
model: {{source: bundled}}
endpoint: {{compute: cpu, instance_type: ml.c6i.large}}
batch: {{schedule: "cron(0 2 * * ? *)", instance_type: ml.m5.large}}
registry: {{owner: true, group: {GROUP}}}
"""
PROD = f"""
region: eu-west-1
model:
  source: registry
  group: {GROUP}
  group_account: "{OWNER_ACCOUNT}"
  model_data_prefix: s3://{BUCKET}/registry/{GROUP}/
  kms_key_arn: {KEY_ARN}
endpoint:
  compute: cpu
  instance_type: ml.c6i.xlarge
  variants:
    - {{name: Candidate, weight: 1, instance_type: ml.c6i.2xlarge, model: {{source: registry, group: other-models,
        group_account: "444455556666", version: 3, model_data_prefix: "s3://other-bucket/registry/other-models/",
        kms_key_arn: {OTHER_KEY}}}}}
"""
STAGING = f"""
region: eu-west-1
model: {{source: registry, group: {GROUP}, model_data_prefix: "s3://{BUCKET}/registry/{GROUP}/",
  kms_key_arn: {KEY_ARN}}}
endpoint:
  compute: cpu
  instance_type: ml.c6i.large
  shadow:
    instance_type: ml.c6i.4xlarge
    model: {{source: registry, group: {GROUP}, version: 2, model_data_prefix: "s3://{BUCKET}/registry/{GROUP}/",
      kms_key_arn: {KEY_ARN}}}
"""
HUB = """
region: eu-west-1
model: {source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, task: text-classification}
registry: {owner: true}
"""


def write_stages(folder: Path, **stages: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in stages.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    """A config folder (dev owns the group; prod and staging deploy from it), a packaged archive and metrics."""
    config = write_stages(tmp_path / "config", dev=DEV, prod=PROD, staging=STAGING)
    archive = tmp_path / "model.tar.gz"
    buffer = io.BytesIO()
    # The members `make package` writes, in its sorted order (the manifest after the graphs).
    write_tar_gz(
        buffer,
        [
            ("code/inference.py", b"# handler\n"),
            ("model.int8.onnx", b"int8 graph"),
            ("sagebert.json", json.dumps(MANIFEST).encode()),
        ],
    )
    archive.write_bytes(buffer.getvalue())
    archive.with_name("model.tar.gz.json").write_text(json.dumps({"served_runtime": "onnx-int8", "runtimes": ["onnx"]}))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS), encoding="utf-8")
    return {"config": config, "archive": archive, "metrics": metrics}


def register_args(project: dict[str, Path], *extra: str) -> list[str]:
    return [
        "register",
        "--config-dir",
        str(project["config"]),
        "--archive",
        str(project["archive"]),
        "--metrics",
        str(project["metrics"]),
        *extra,
    ]


def printed_requests(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    puts_text, rest = out.split("S3 PutObject requests", 1)[1].split("CreateModelPackage request:\n", 1)
    decoder = json.JSONDecoder()
    puts, text = [], puts_text.split(":\n", 1)[1].strip()
    while text:
        put, end = decoder.raw_decode(text)
        puts.append(put)
        text = text[end:].strip()
    request = json.loads(rest.rsplit("\ndry run:", 1)[0])
    return puts, request


def _model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def validate(service: str, operation: str, params: dict[str, Any]) -> None:
    """botocore's own parameter validation: an unknown key, a wrong type or a missing member raises."""
    validate_parameters(params, _model(service).operation_model(operation).input_shape)


def stubbed(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")


# --- register --dry-run ------------------------------------------------------------------------------------------


def test_dry_run_prints_requests_botocore_accepts(
    no_network: None, project: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(register_args(project, "--stage", "dev", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was uploaded and no model package was created." in out
    puts, request = printed_requests(out)

    for put in puts:  # the Body is shown as its size and hash; botocore gets real bytes
        validate("s3", "PutObject", put | {"Body": b"bytes"})
    validate("sagemaker", "CreateModelPackage", request)

    placeholder = "<ArtifactBucketName-of-SageBert-dev-Storage>"
    assert [p["Bucket"] for p in puts] == [placeholder, placeholder]
    folder = puts[0]["Key"].rsplit("/", 1)[0]
    assert folder.startswith(f"registry/{GROUP}/") and puts[1]["Key"] == f"{folder}/metrics.json"
    assert all(p["ServerSideEncryption"] == "aws:kms" and p["SSEKMSKeyId"].startswith("<") for p in puts)

    assert request["ModelPackageGroupName"] == GROUP
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    container = request["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-inference:"
        "2.6.0-transformers4.51.3-cpu-py312-ubuntu22.04"
    )
    assert container["ModelDataUrl"] == f"s3://{placeholder}/{puts[0]['Key']}"
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    spec = request["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == ["application/json", "application/jsonlines"]
    assert spec["SupportedResponseMIMETypes"] == ["application/json", "application/jsonlines"]
    # The owner's model and every slot that deploys the group: prod's main model, staging's main and shadow; not
    # prod's variant (another group, ml.c6i.2xlarge). Transform: dev's batch runs the owner's model.
    realtime = spec["SupportedRealtimeInferenceInstanceTypes"]
    assert realtime == ["ml.c6i.4xlarge", "ml.c6i.large", "ml.c6i.xlarge"]
    assert spec["SupportedTransformInstanceTypes"] == ["ml.m5.large"]

    statistics = request["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"] == f"s3://{placeholder}/{puts[1]['Key']}"
    assert statistics["ContentType"] == "application/json"
    metadata = request["CustomerMetadataProperties"]
    assert metadata["sagebert:test-accuracy"] == "0.895833"
    assert metadata["sagebert:int8-label-agreement"] == "0.994792"
    assert metadata["sagebert:int8-p99-gap"] == "0.052524"
    assert metadata["sagebert:served-runtime"] == "onnx-int8"
    sha = metadata["sagebert:archive-sha256"]
    assert len(sha) == 64 and sha in request["ModelPackageDescription"]
    assert "89.58%" in request["ModelPackageDescription"]


def test_the_validation_catches_a_wrong_key() -> None:
    """What the dry-run test relies on: botocore refuses a key its service model does not have."""
    from botocore.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="ModelPackageGroup"):
        validate("sagemaker", "CreateModelPackage", {"ModelPackageGroup": GROUP})


def test_the_metrics_document_carries_the_figures(project: dict[str, Path]) -> None:
    archive = registry.read_archive(project["archive"])
    document = registry.statistics_document(registry.read_metrics(project["metrics"]), archive)
    figures = document["binary_classification_metrics"]
    assert figures["accuracy"]["value"] == pytest.approx(0.8958, abs=1e-4)
    assert figures["confusion_matrix"]["negative"] == {"negative": 83, "positive": 13}
    assert document["dataset"] == {"item_count": 192}
    assert document["sagebert"]["int8_label_agreement"] == 0.994792
    assert document["sagebert"]["archive_sha256"] == archive.sha256


def test_the_plan_is_content_addressed(project: dict[str, Path]) -> None:
    """The same archive and figures give the same keys and client token: a retry creates no second version."""
    from infra.config.stage import load_all

    stages = load_all(project["config"])
    archive = registry.read_archive(project["archive"])
    metrics = registry.read_metrics(project["metrics"])

    def plan() -> registry.RegisterPlan:
        return registry.build_plan("dev", stages, archive, metrics, region="eu-west-1", bucket=BUCKET, kms_key=KEY_ARN)

    first, second = plan(), plan()
    assert first.request == second.request and first.puts == second.puts
    assert len(first.request["ClientToken"]) <= 36


def test_a_stage_that_does_not_own_the_group_is_refused(
    no_network: None, project: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(register_args(project, "--stage", "prod", "--dry-run")) == 1
    err = capsys.readouterr().err
    assert "stage 'prod' does not own the model package group; 'dev' does" in err
    assert "python -m sagebert register --stage dev" in err


def test_without_an_owner_the_error_says_how_to_make_one(
    no_network: None, project: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stages(tmp_path / "none", dev=DEV.replace("owner: true", "owner: false"))
    args = register_args(project, "--stage", "dev", "--dry-run")
    args[2] = str(tmp_path / "none")
    assert cli(args) == 1
    assert "no stage owns a model package group: add `registry: {owner: true}`" in capsys.readouterr().err


def test_a_hub_stage_is_refused(
    no_network: None, project: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = register_args(project, "--stage", "hub", "--dry-run")
    args[2] = str(write_stages(tmp_path / "hub", hub=HUB))
    assert cli(args) == 1
    # The stage file itself is refused: an owner registers its archive, and a Hub model has none.
    err = capsys.readouterr().err
    assert "a Hub model has no archive" in err and "remove registry.owner" in err


def test_an_archive_without_the_package_manifest_is_refused(project: dict[str, Path], tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar.gz"
    buffer = io.BytesIO()
    write_tar_gz(buffer, [("config.json", b"{}")])
    plain.write_bytes(buffer.getvalue())
    with pytest.raises(registry.RegistryError, match=r"has no sagebert.json: only `make package`"):
        registry.read_archive(plain)
    with pytest.raises(registry.RegistryError, match=r"not found; build it with `make package`"):
        registry.read_archive(tmp_path / "missing.tar.gz")


def test_metrics_without_a_test_split_are_refused(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"validation": {"accuracy": 0.9}}))
    with pytest.raises(registry.RegistryError, match="no test accuracy"):
        registry.read_metrics(metrics)


def test_a_gpu_owner_needs_the_torch_weights(project: dict[str, Path], tmp_path: Path) -> None:
    from infra.config.stage import load_all

    gpu = DEV.replace("compute: cpu, instance_type: ml.c6i.large", "compute: gpu, instance_type: ml.g5.xlarge")
    stages = load_all(write_stages(tmp_path / "gpu", dev=gpu))
    archive = registry.read_archive(project["archive"])
    metrics = registry.read_metrics(project["metrics"])
    with pytest.raises(registry.RegistryError, match="--runtimes onnx,torch"):
        registry.build_plan("dev", stages, archive, metrics, region="eu-west-1", bucket=BUCKET, kms_key=KEY_ARN)


# --- register, with credentials (Stubber) ------------------------------------------------------------------------


def test_register_uploads_then_creates_the_version(
    project: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    clients = {name: stubbed(name) for name in ("cloudformation", "s3", "sagemaker")}
    stubs = {name: Stubber(client) for name, client in clients.items()}
    from infra.config.stage import load_all

    expected = registry.build_plan(
        "dev",
        load_all(project["config"]),
        registry.read_archive(project["archive"]),
        registry.read_metrics(project["metrics"]),
        region="eu-west-1",
        bucket=BUCKET,
        kms_key=KEY_ARN,
    )
    stubs["cloudformation"].add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "SageBert-dev-Storage",
                    "CreationTime": datetime.datetime(2026, 12, 1),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "ArtifactBucketName", "OutputValue": BUCKET}],
                }
            ]
        },
        {"StackName": "SageBert-dev-Storage"},
    )
    stubs["s3"].add_response(
        "get_bucket_encryption",
        {
            "ServerSideEncryptionConfiguration": {
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}}
                ]
            }
        },
        {"Bucket": BUCKET},
    )
    for item, put in zip(expected.uploads, expected.puts, strict=True):
        stubs["s3"].add_client_error("head_object", service_error_code="404", http_status_code=404)
        stubs["s3"].add_response("put_object", {}, put | {"Body": item.data})
    arn = f"arn:aws:sagemaker:eu-west-1:{OWNER_ACCOUNT}:model-package/{GROUP}/4"
    stubs["sagemaker"].add_response("create_model_package", {"ModelPackageArn": arn}, expected.request)
    for stub in stubs.values():
        stub.activate()

    code = registry.main_register(
        "dev",
        project["config"],
        project["archive"],
        project["metrics"],
        dry_run=False,
        region=None,
        client=lambda service, region: clients[service],
    )

    assert code == 0
    for stub in stubs.values():
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert f"registered {arn} (PendingManualApproval)" in out
    assert f"--model-package-arn {arn} --model-approval-status Approved" in out


def test_an_undeployed_owner_stage_says_to_deploy_it() -> None:
    cloudformation = stubbed("cloudformation")
    with Stubber(cloudformation) as stub:
        stub.add_client_error("describe_stacks", service_error_code="ValidationError", http_status_code=400)
        with pytest.raises(
            registry.RegistryError, match=r"deploy the stage first \(npx cdk deploy 'SageBert-dev/\*'\)"
        ):
            registry.artifact_bucket(cloudformation, "dev")


# --- resolve-models ------------------------------------------------------------------------------------------------

NOW = datetime.datetime(2026, 12, 2, 7, 30, tzinfo=datetime.UTC)


def list_params(group: str) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "Approved",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 1,
    }


def summary(arn: str, version: int) -> dict[str, Any]:
    return {
        "ModelPackageSummaryList": [
            {
                "ModelPackageArn": arn,
                "ModelPackageGroupName": GROUP,
                "ModelPackageVersion": version,
                "CreationTime": datetime.datetime(2026, 12, 1),
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": "Approved",
            }
        ]
    }


def test_resolve_writes_the_latest_approved_version(project: dict[str, Path], tmp_path: Path) -> None:
    """prod's group lives in another account (its ARN is asked for); the pinned variant is not resolved."""
    sagemaker = stubbed("sagemaker")
    arn = f"arn:aws:sagemaker:eu-west-1:{OWNER_ACCOUNT}:model-package/{GROUP}/7"
    group_arn = f"arn:aws:sagemaker:eu-west-1:{OWNER_ACCOUNT}:model-package-group/{GROUP}"
    validate("sagemaker", "ListModelPackages", list_params(group_arn))
    output = tmp_path / "build" / "resolved-models.json"
    with Stubber(sagemaker) as stub:
        stub.add_response("list_model_packages", summary(arn, 7), list_params(group_arn))
        registry.main_resolve("prod", project["config"], output, region=None, client=lambda *_: sagemaker, now=NOW)
        stub.assert_no_pending_responses()
    assert json.loads(output.read_text()) == {
        "format": 1,
        "groups": {
            GROUP: {
                "model_package_arn": arn,
                "version": 7,
                "approval_status": "Approved",
                "resolved_at": "2026-12-02T07:30:00Z",
            }
        },
    }
    assert [p.name for p in output.parent.iterdir()] == ["resolved-models.json"]  # no temp file left


def test_resolve_in_the_owner_account_names_the_group(
    project: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker = stubbed("sagemaker")
    monkeypatch.setattr(registry, "_boto_client", lambda service, region: sagemaker)
    output = tmp_path / "resolved.json"
    output.write_text(json.dumps({"format": 1, "groups": {"other-models": {"version": 2}}}))
    arn = f"arn:aws:sagemaker:eu-west-1:{OWNER_ACCOUNT}:model-package/{GROUP}/3"
    with Stubber(sagemaker) as stub:
        stub.add_response("list_model_packages", summary(arn, 3), list_params(GROUP))
        assert (
            cli(
                [
                    "resolve-models",
                    "--stage",
                    "staging",
                    "--config-dir",
                    str(project["config"]),
                    "--output",
                    str(output),
                ]
            )
            == 0
        )
    written = json.loads(output.read_text())
    assert written["groups"][GROUP]["version"] == 3
    assert written["groups"]["other-models"] == {"version": 2}  # another stage's run wrote it: kept


def test_no_approved_version_is_a_clear_error(project: dict[str, Path], tmp_path: Path) -> None:
    sagemaker = stubbed("sagemaker")
    output = tmp_path / "resolved.json"
    with Stubber(sagemaker) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": []}, list_params(GROUP))
        with pytest.raises(registry.RegistryError) as raised:
            registry.main_resolve("staging", project["config"], output, region=None, client=lambda *_: sagemaker)
    message = str(raised.value)
    assert f"model package group {GROUP} has no Approved version" in message
    assert "--model-approval-status Approved" in message and "pin model.version" in message
    assert not output.exists()


def test_a_stage_without_registry_models_has_nothing_to_resolve(project: dict[str, Path], tmp_path: Path) -> None:
    """No call, no error (a pipeline step may run it for every stage), and the file exists afterwards."""

    def no_client(service: str, region: str) -> Any:
        raise AssertionError(f"no {service} call expected")

    output = tmp_path / "r.json"
    assert registry.main_resolve("dev", project["config"], output, region=None, client=no_client) == 0
    assert json.loads(output.read_text()) == {"format": 1, "groups": {}}


def test_a_refused_create_is_a_clear_error(project: dict[str, Path]) -> None:
    from infra.config.stage import load_all

    plan = registry.build_plan(
        "dev",
        load_all(project["config"]),
        registry.read_archive(project["archive"]),
        registry.read_metrics(project["metrics"]),
        region="eu-west-1",
        bucket=BUCKET,
        kms_key=KEY_ARN,
    )
    s3, sagemaker = stubbed("s3"), stubbed("sagemaker")
    with Stubber(s3) as s3_stub, Stubber(sagemaker) as sagemaker_stub:
        for item in plan.uploads:
            s3_stub.add_response("head_object", {"ChecksumSHA256": item.checksum_sha256})  # already there
        sagemaker_stub.add_client_error(
            "create_model_package", service_error_code="ResourceNotFound", http_status_code=400
        )
        with pytest.raises(registry.RegistryError, match=f"CreateModelPackage in group {GROUP} failed"):
            registry.register(plan, s3, sagemaker)


def test_the_cli_writes_the_resolved_models_file_that_synth_reads() -> None:
    # sagebert/paths.py stays standard-library only (the watchdog imports it), so it names the file itself
    from infra.config.resolved_models import RESOLVED_MODELS_FILE
    from sagebert import paths

    assert paths.RESOLVED_MODELS == paths.ROOT / RESOLVED_MODELS_FILE


def test_another_accounts_group_is_named_in_its_regions_partition() -> None:
    # ListModelPackages takes the group's ARN for another account's group: in China or GovCloud that ARN is not arn:aws.
    source = RegistryModel(
        source="registry",
        group=GROUP,
        group_account="444455556666",
        model_data_prefix=f"s3://{BUCKET}/registry/",
        kms_key_arn=KEY_ARN,
    )
    assert registry.group_reference(source, "eu-west-1").startswith("arn:aws:sagemaker:eu-west-1:444455556666:")
    assert registry.group_reference(source, "cn-north-1").startswith("arn:aws-cn:sagemaker:cn-north-1:")
    assert registry.group_reference(source, "us-gov-west-1").startswith("arn:aws-us-gov:sagemaker:us-gov-west-1:")
    same_account = source.model_copy(update={"group_account": None})
    assert registry.group_reference(same_account, "cn-north-1") == GROUP
