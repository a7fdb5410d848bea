"""Each construct in a bare stack: the properties a reviewer cares about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Capture, Match, Template

from app import feature_flags
from infra.catalog import images as image_catalog
from infra.config.endpoint import EndpointSettings, VpcSettings
from infra.config.model import BundledModel, HubModel, S3Model
from infra.online.private_network import PrivateNetwork
from infra.online.realtime_endpoint import RealtimeEndpoint, VariantModel
from infra.operations.artifact_store import ArtifactStore, GuardedPrefix
from infra.operations.compliance import nag_spelling
from infra.release.hugging_face_model import ArtifactMissingError, HuggingFaceModel, ModelLogs

IMAGE = image_catalog.find("4.51.3", "2.6.0")


def bare_stack(region: str | None = None) -> Stack:
    env = Environment(account="111122223333", region=region) if region else None
    return Stack(App(context=feature_flags()), "Bare", env=env)


def policy_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    assert len(policies) == 1
    statements: list[dict[str, Any]] = next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]
    return statements


# --- ArtifactStore ------------------------------------------------------------------------------


@pytest.mark.parametrize(("retain", "policy"), [(True, "Retain"), (False, "Delete")])
def test_artifact_store_is_encrypted_private_logged(retain: bool, policy: str) -> None:
    stack = bare_stack()
    ArtifactStore(stack, "Store", retain=retain)
    template = Template.from_stack(stack)

    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    key = Capture()
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
                        }
                    )
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.object_like({"DestinationBucketName": Match.any_value()}),
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    assert "Fn::GetAtt" in key.as_object()  # the stage's own key, not an AWS managed one
    # TLS only on both buckets.
    deny_insecure = Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    bucket_policies = template.find_resources(
        "AWS::S3::BucketPolicy", {"Properties": {"PolicyDocument": {"Statement": Match.array_with([deny_insecure])}}}
    )
    assert len(bucket_policies) == 2
    for resource_type in ("AWS::KMS::Key", "AWS::S3::Bucket"):
        for resource in template.find_resources(resource_type).values():
            assert resource["DeletionPolicy"] == policy
    # Data deleted with the stack: both versioned buckets are emptied (every version) first, or S3 refuses to
    # delete them and `cdk destroy` ends in DELETE_FAILED. Retained data: nothing deletes objects.
    emptied = template.find_resources("Custom::S3AutoDeleteObjects")
    buckets = template.find_resources("AWS::S3::Bucket")
    assert sorted(r["Properties"]["BucketName"]["Ref"] for r in emptied.values()) == ([] if retain else sorted(buckets))


def test_data_prefixes_expire_old_versions_go_and_capture_is_guarded() -> None:
    # Given captured data kept 30 days, batch data 90, and the capture prefix guarded for one role path,
    stack = bare_stack()
    writers = "arn:aws:iam::111122223333:role/sagebert/dev/serving/*"
    reader = "arn:aws:iam::111122223333:role/monitor"
    ArtifactStore(
        stack,
        "Store",
        retain=True,
        expiring_prefixes={"capture/": 30, "batch/input/": 90, "batch/output/": 90},
        guarded_prefixes=[GuardedPrefix("capture/", (writers, reader))],
    )
    template = Template.from_stack(stack)
    buckets = {logical: r["Properties"] for logical, r in template.find_resources("AWS::S3::Bucket").items()}
    artifacts = next(p for p in buckets.values() if "LoggingConfiguration" in p)
    access_logs = next(p for p in buckets.values() if "LoggingConfiguration" not in p)
    rules = artifacts["LifecycleConfiguration"]["Rules"]
    # then each data prefix expires after its days, every old version after 30 days, unfinished uploads after 7,
    expiring = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r}
    assert expiring == {"capture/": 30, "batch/input/": 90, "batch/output/": 90}
    (versions,) = [r for r in rules if "Prefix" not in r]
    assert versions["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert versions["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert all(r["Status"] == "Enabled" for r in rules)
    # the access logs expire after a year and their old versions too,
    (log_rule,) = access_logs["LifecycleConfiguration"]["Rules"]
    assert log_rule["ExpirationInDays"] == 365 and log_rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    # and every principal but the writers' role path and the reader is denied capture/ objects.
    (policy,) = template.find_resources(
        "AWS::S3::BucketPolicy",
        {
            "Properties": {
                "PolicyDocument": {"Statement": Match.array_with([Match.object_like({"Sid": "OnlyCaptureRoles"})])}
            }
        },
    ).values()
    (guard,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "OnlyCaptureRoles"]
    assert guard["Effect"] == "Deny" and guard["Principal"] == {"AWS": "*"}
    assert sorted(guard["Action"]) == ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    assert nag_spelling(guard["Resource"]).endswith(".Arn>/capture/*")
    assert guard["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [writers, reader]}}


# --- HuggingFaceModel ---------------------------------------------------------------------------


def test_bundled_model_uploads_the_archive_and_reads_only_it(default_artifact: Path) -> None:
    stack = bare_stack()
    HuggingFaceModel(
        stack,
        "Model",
        source=BundledModel(source="bundled"),
        image=IMAGE,
        flavour="cpu",
        artifact=default_artifact,
        logs=ModelLogs(endpoint_name="sagebert-test"),
    )
    template = Template.from_stack(stack)

    model_data = Capture()
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": True,
            "PrimaryContainer": {"Image": Match.any_value(), "ModelDataUrl": model_data},
        },
    )
    assert model_data.as_object()["Fn::Sub"].startswith("s3://cdk-")  # the CDK file asset
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "sagemaker.amazonaws.com"}})]
            },
        },
    )
    statements = {s["Sid"]: s for s in policy_statements(template)}
    assert set(statements) == {
        "ReadModelData",
        "PullInferenceImage",
        "EcrLogin",
        "EndpointLogs",
        "PublishInstanceMetrics",
    }
    # Logs: this endpoint's log group and its streams only, not every endpoint's in the account.
    endpoint_logs = statements["EndpointLogs"]
    resources = [nag_spelling(r) for r in endpoint_logs["Resource"]]
    assert resources == [
        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/sagebert-test",
        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/sagebert-test:*",
    ]
    # Instance metrics (the CPU, memory and disk alarms' data) come from the container, as this role; only into
    # SageMaker's instance-metric namespaces.
    metrics = statements["PublishInstanceMetrics"]
    assert (metrics["Action"], metrics["Resource"]) == ("cloudwatch:PutMetricData", "*")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints"]}}
    assert statements["ReadModelData"]["Action"] == "s3:GetObject"
    # One object: the asset's key, not the bucket's contents.
    assert str(statements["ReadModelData"]["Resource"]).count(".gz") == 1
    for statement in statements.values():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a], "no wildcard actions"
    assert statements["EcrLogin"]["Resource"] == "*"  # the only form GetAuthorizationToken takes
    assert "huggingface-pytorch-inference" in str(statements["PullInferenceImage"]["Resource"])
    assert template.find_resources("AWS::IAM::Policy") == {}, "no inline policies (NIST IAMNoInlinePolicy)"


def test_env_agnostic_image_uses_a_region_mapping(default_artifact: Path) -> None:
    stack = bare_stack()
    HuggingFaceModel(
        stack,
        "Model",
        source=BundledModel(source="bundled"),
        image=IMAGE,
        flavour="cpu",
        artifact=default_artifact,
        logs=ModelLogs(endpoint_name="sagebert-test"),
    )
    template = Template.from_stack(stack).to_json()
    mapping = next(iter(template["Mappings"].values()))
    assert mapping["us-east-1"] == {"account": "763104351884"}
    assert mapping["af-south-1"] == {"account": IMAGE.registries["af-south-1"]}
    image = next(r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model")
    assert "Fn::FindInMap" in str(image["Properties"]["PrimaryContainer"]["Image"])


def test_known_region_gets_a_literal_image_uri(default_artifact: Path) -> None:
    stack = bare_stack(region="eu-west-1")
    HuggingFaceModel(
        stack,
        "Model",
        source=BundledModel(source="bundled"),
        image=IMAGE,
        flavour="cpu",
        artifact=default_artifact,
        logs=ModelLogs(endpoint_name="sagebert-test"),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like({"Image": IMAGE.uri("eu-west-1", "cpu")}),
        },
    )
    # The config checked the region at synth: no deploy-time region rule.
    assert not [r for r in Template.from_stack(stack).to_json().get("Rules", {}) if r.startswith("SupportedRegion")]


def test_s3_model_reads_exactly_that_object() -> None:
    stack = bare_stack(region="us-east-1")
    key_arn = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"
    source = S3Model(source="s3", uri="s3://releases-bucket/sagebert/v7/model.tar.gz", kms_key_arn=key_arn)
    HuggingFaceModel(
        stack,
        "Model",
        source=source,
        image=IMAGE,
        flavour="cpu",
        logs=ModelLogs(endpoint_name="sagebert-test"),
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like({"ModelDataUrl": source.uri}),
        },
    )
    statements = {s["Sid"]: s for s in policy_statements(template)}
    assert statements["ReadModelData"]["Resource"] == "arn:aws:s3:::releases-bucket/sagebert/v7/model.tar.gz"
    assert statements["DecryptModelData"] == {
        "Action": "kms:Decrypt",
        "Effect": "Allow",
        "Resource": key_arn,
        "Sid": "DecryptModelData",
    }


def test_hub_model_sets_the_toolkit_env_and_warns() -> None:
    stack = bare_stack()
    source = HubModel(
        source="hub", model_id="distilbert-base-uncased-finetuned-sst-2-english", task="text-classification"
    )
    HuggingFaceModel(
        stack,
        "Model",
        source=source,
        image=IMAGE,
        flavour="cpu",
        logs=ModelLogs(endpoint_name="sagebert-test"),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": False,
            "PrimaryContainer": Match.object_like(
                {
                    "Environment": {"HF_MODEL_ID": source.model_id, "HF_TASK": "text-classification"},
                    "ModelDataUrl": Match.absent(),
                }
            ),
        },
    )
    Annotations.from_stack(stack).has_warning("*", Match.string_like_regexp("downloaded from the Hugging Face Hub"))
    statements = {s["Sid"] for s in policy_statements(Template.from_stack(stack))}
    assert "ReadModelData" not in statements


def test_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactMissingError, match=r"make synth"):
        HuggingFaceModel(
            bare_stack(),
            "Model",
            source=BundledModel(source="bundled"),
            image=IMAGE,
            flavour="cpu",
            artifact=tmp_path / "build" / "model.tar.gz",
            logs=ModelLogs(endpoint_name="sagebert-test"),
        )


# --- RealtimeEndpoint ---------------------------------------------------------------------------


def test_endpoint_is_encrypted_unnamed_and_sized_from_config() -> None:
    stack = bare_stack()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    settings = EndpointSettings(instance_type="ml.c6i.xlarge", instance_count=3, variant_name="Primary")
    endpoint = RealtimeEndpoint(
        stack,
        "Endpoint",
        settings=settings,
        endpoint_name="sagebert-test",
        variants=[VariantModel("Primary", "model-name", "ml.c6i.xlarge", 3, 1.0)],
        shadow=None,
        key=key,
        bucket=s3.Bucket(stack, "Bucket"),
    )
    caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    endpoint.grant_invoke(caller)
    template = Template.from_stack(stack)

    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^Key"), "Arn"]},
            "ProductionVariants": [
                {
                    "VariantName": "Primary",
                    "ModelName": "model-name",
                    "InstanceType": "ml.c6i.xlarge",
                    "InitialInstanceCount": 3,
                    "InitialVariantWeight": 1,
                }
            ],
        },
    )
    # A generated config name (a config is immutable and replaced on every change); a fixed endpoint name,
    # which the rollback alarms watch.
    for resource in template.find_resources("AWS::SageMaker::EndpointConfig").values():
        assert "EndpointConfigName" not in resource["Properties"]
    template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "sagebert-test"})
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "sagemaker:InvokeEndpoint",
                        "Effect": "Allow",
                        "Resource": {"Ref": Match.string_like_regexp("^Endpoint")},
                    }
                ]
            },
        },
    )


def packaged(tmp_path: Path, served: str, runtimes: list[str]) -> Path:
    """An archive with the record `make package` writes beside it (model.tar.gz.json)."""
    (tmp_path / "build").mkdir(exist_ok=True)
    (tmp_path / "build" / "model.tar.gz").write_bytes(b"archive")
    (tmp_path / "build" / "model.tar.gz.json").write_text(json.dumps({"served_runtime": served, "runtimes": runtimes}))
    return tmp_path / "build" / "model.tar.gz"


@pytest.mark.parametrize(
    ("served", "require", "runtime", "refused"),
    [
        ("onnx-fp32", True, None, "model.require_int8 = true but .* serves onnx-fp32"),
        ("onnx-int8", True, None, None),
        ("onnx-fp32", False, None, None),
        ("onnx-int8", False, "torch", "holds only the ONNX graphs, but this endpoint's compute profile runs PyTorch"),
    ],
    ids=["fp32-but-int8-required", "int8-required-and-served", "fp32-accepted", "gpu-without-weights"],
)
def test_the_packaged_runtime_must_fit_the_stage(
    tmp_path: Path, served: str, require: bool, runtime: str | None, refused: str | None
) -> None:
    # Given an archive whose packaging record says what it serves and ships, when a stage asks for int8 or
    # for PyTorch, then synth refuses what the archive cannot give, naming the fix; else it builds the model.
    archive = packaged(tmp_path, served, ["onnx"])
    source = BundledModel(source="bundled", require_int8=require)

    def build() -> None:
        HuggingFaceModel(
            bare_stack(),
            "Model",
            source=source,
            image=IMAGE,
            flavour="cpu",
            artifact=archive,
            runtime=runtime,
            logs=ModelLogs(endpoint_name="sagebert-test"),
        )

    if refused is None:
        build()
    else:
        with pytest.raises(ArtifactMissingError, match=refused):
            build()


# --- PrivateNetwork -----------------------------------------------------------------------------


def test_private_network_lets_cloudwatch_logs_use_the_key_for_its_flow_logs() -> None:
    # Given a stage with a VPC but neither api nor batch (the constructs that used to add the statement), the
    # flow-log group is encrypted with the stage key and the key policy lets CloudWatch Logs use it.
    app = App(context=feature_flags())
    storage = Stack(app, "Storage")
    store = ArtifactStore(storage, "Store", retain=False)
    serving = Stack(app, "Serving")
    PrivateNetwork(serving, "Network", settings=VpcSettings(), key=store.key)
    Template.from_stack(serving).has_resource_properties(
        "AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value(), "RetentionInDays": 365}
    )
    Template.from_stack(storage).has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchLogsEncryption",
                                "Action": Match.array_with(["kms:Encrypt*", "kms:GenerateDataKey*"]),
                                "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": Match.any_value()}},
                            }
                        )
                    ]
                )
            }
        },
    )
