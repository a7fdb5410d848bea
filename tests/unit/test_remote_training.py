"""`python -m sagebert train --remote --dry-run`: the full CreateTrainingJob request, no AWS call."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from infra.config.stage import load_stage_config
from sagebert.__main__ import main as cli
from sagebert.release import remote_training


def dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli(["train", "--remote", "--dry-run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def request_from(output: str) -> dict[str, Any]:
    body = output.split("CreateTrainingJob request:\n", 1)[1].rsplit("\ndry run:", 1)[0]
    request: dict[str, Any] = json.loads(body)
    return request


def test_dry_run_prints_the_whole_request(
    no_network: None, capsys: pytest.CaptureFixture[str], repo_root: Path
) -> None:
    code, out, _ = dry_run(capsys, "--stage", "dev", "--region", "eu-west-1")
    assert code == 0 and "nothing was uploaded and no job was created" in out
    request = request_from(out)
    training = load_stage_config(repo_root / "config" / "dev.yaml").training
    assert training is not None

    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-training:"
        "2.5.1-transformers4.49.0-gpu-py311-cu124-ubuntu22.04"
    )
    assert request["RoleArn"] == training.role_arn
    assert request["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.g4dn.xlarge", "VolumeSizeInGB": 30}
    assert request["OutputDataConfig"]["S3OutputPath"] == training.output_path
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["TrainingJobName"].startswith("sagebert-dev-")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["train"] == f"{training.input_path}/train/"
    assert channels["validation"] == f"{training.input_path}/validation/"
    assert channels["test"] == f"{training.input_path}/test/"
    assert channels["model"].startswith(f"{training.output_path}/base-model/")  # the bundled weights
    hyper = request["HyperParameters"]
    assert hyper["epochs"] == "4" and hyper["learning-rate"] == "0.0001"
    assert hyper["sagemaker_program"] == '"train.py"'
    code_uri = json.loads(hyper["sagemaker_submit_directory"])
    assert code_uri.startswith(f"{training.output_path}/code/") and code_uri in out  # listed as an upload


def test_the_uploaded_code_is_the_training_script(repo_root: Path, no_network: None) -> None:
    config = load_stage_config(repo_root / "config" / "dev.yaml")
    assert config.training is not None
    code, model_files, model_uri = remote_training.plan_uploads(config.training)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(code.data))) as tar:
        member = tar.extractfile("train.py")
        assert member is not None and member.read() == (repo_root / "model_code" / "train.py").read_bytes()
    assert {u.uri.rsplit("/", 1)[1] for u in model_files} >= {"config.json", "model.safetensors", "vocab.txt"}
    assert all(u.uri.startswith(model_uri) for u in model_files)
    # Content-addressed: the same inputs give the same keys, so a re-run uploads nothing new.
    again = remote_training.plan_uploads(config.training)
    assert again[0].uri == code.uri and again[2] == model_uri


def test_s3_base_model_and_kms(tmp_path: Path, no_network: None, capsys: pytest.CaptureFixture[str]) -> None:
    key = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    (tmp_path / "ml.yaml").write_text(
        "region: us-east-1\ntraining:\n  role_arn: arn:aws:iam::111122223333:role/train\n"
        "  input_path: s3://data-bucket/in\n  output_path: s3://data-bucket/out\n"
        f"  base_model: s3://models-bucket/bert-base/\n  kms_key_arn: {key}\n  max_run_minutes: 90\n",
        encoding="utf-8",
    )
    code, out, _ = dry_run(capsys, "--stage", "ml", "--config-dir", str(tmp_path))
    assert code == 0
    request = request_from(out)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["model"] == "s3://models-bucket/bert-base/"
    assert request["OutputDataConfig"]["KmsKeyId"] == key
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == key
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 5400
    assert "base-model" not in out  # nothing of the bundled model is uploaded


@pytest.mark.parametrize(
    ("yaml_text", "args", "message"),
    [
        ("region: eu-west-1\n", ["--stage", "st"], "has no `training:` section"),
        (
            "training:\n  role_arn: arn:aws:iam::111122223333:role/t\n  input_path: s3://bkt/in\n"
            "  output_path: s3://bkt/out\n",
            ["--stage", "st"],
            "no region",
        ),
        (
            "region: eu-west-1\ntraining:\n  role_arn: arn:aws:iam::111122223333:role/t\n  input_path: s3://bkt/in\n"
            "  output_path: s3://bkt/out\n  hyperparameters: {model_dir: /tmp}\n",
            ["--stage", "st"],
            "model-dir",
        ),
        (
            "region: eu-west-1\ntraining:\n  role_arn: arn:aws:iam::111122223333:role/t\n  input_path: s3://bkt/in\n"
            "  output_path: s3://bkt/out\n  transformers_version: '9.9.9'\n",
            ["--stage", "st"],
            "9.9.9",
        ),
        ("region: eu-west-1\n", ["--stage", "missing"], "missing.yaml not found"),
    ],
)
def test_clear_errors(
    tmp_path: Path,
    no_network: None,
    capsys: pytest.CaptureFixture[str],
    yaml_text: str,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    (tmp_path / "st.yaml").write_text(yaml_text, encoding="utf-8")
    code, out, err = dry_run(capsys, *args, "--config-dir", str(tmp_path))
    assert code != 0 and message in err, err
    assert "CreateTrainingJob" not in out


class _Session:
    """What `upload` reads of the SDK session: boto_session.client("s3")."""

    def __init__(self, client: Any) -> None:
        self.boto_session = self
        self._client = client

    def client(self, name: str) -> Any:
        assert name == "s3"
        return self._client


def test_an_existing_object_is_kept_only_when_its_sha256_matches(capsys: pytest.CaptureFixture[str]) -> None:
    # Given three content-addressed uploads: one already stored with the same bytes, one stored under its key
    # with other bytes, one missing,
    import boto3
    from botocore.stub import Stubber

    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
    same = remote_training.Upload("s3://bucket/code/a/sourcedir.tar.gz", b"same bytes")
    other = remote_training.Upload("s3://bucket/code/b/sourcedir.tar.gz", b"new bytes")
    missing = remote_training.Upload("s3://bucket/code/c/sourcedir.tar.gz", b"more bytes")
    with Stubber(s3) as stub:
        head = {"Bucket": "bucket", "ChecksumMode": "ENABLED"}
        stub.add_response(
            "head_object", {"ChecksumSHA256": same.checksum_sha256}, {**head, "Key": "code/a/sourcedir.tar.gz"}
        )
        stub.add_response(
            "head_object", {"ChecksumSHA256": same.checksum_sha256}, {**head, "Key": "code/b/sourcedir.tar.gz"}
        )
        stub.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": "code/b/sourcedir.tar.gz",
                "Body": b"new bytes",
                "ChecksumAlgorithm": "SHA256",
                "ChecksumSHA256": other.checksum_sha256,
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "arn:aws:kms:eu-west-1:111122223333:key/k",
            },
        )
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        stub.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": "code/c/sourcedir.tar.gz",
                "Body": b"more bytes",
                "ChecksumAlgorithm": "SHA256",
                "ChecksumSHA256": missing.checksum_sha256,
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": "arn:aws:kms:eu-west-1:111122223333:key/k",
            },
        )
        # when they are uploaded, then only the matching object is skipped, and each put carries its SHA-256.
        remote_training.upload([same, other, missing], _Session(s3), "arn:aws:kms:eu-west-1:111122223333:key/k")
        stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "exists   s3://bucket/code/a/sourcedir.tar.gz (sha256 matches)" in out
    assert "replace  s3://bucket/code/b/sourcedir.tar.gz" in out
    assert "uploaded s3://bucket/code/c/sourcedir.tar.gz" in out
    assert same.checksum_sha256 == "WBANyPwGVizj5XgjHclI4INSDuScS07lpaKLtLQAP+s="  # base64 of the digest, S3's form


def test_an_access_error_on_the_existing_object_stops_the_upload() -> None:
    import boto3
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
        with pytest.raises(ClientError):
            remote_training.upload([remote_training.Upload("s3://bucket/k", b"x")], _Session(s3), None)
