"""The whole app from config/: every stage synthesizes, passes the gates and keeps its invariants."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Stage
from aws_cdk import aws_s3 as s3
from aws_cdk.cx_api import CloudAssembly

from app import ROOT, build_app, feature_flags
from infra.config.stage import load_all
from infra.operations.compliance import add_compliance_checks
from sagebert.assembly import read_assembly
from sagebert.report import synth as synth_report


@pytest.fixture(scope="module")
def assembly(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    # Synth raises (cdk-nag ValidationFailed) on any unacknowledged finding: reaching the asserts
    # below means the compliance gate passed for every stage.
    return build_app(outdir=str(tmp_path_factory.mktemp("cdk.out"))).synth()


def templates(assembly: CloudAssembly, stage: str) -> dict[str, dict[str, Any]]:
    nested = assembly.get_nested_assembly(f"assembly-SageBert-{stage}")
    return {stack.stack_name.split("-")[-1]: stack.template for stack in nested.stacks}


def resources(template: dict[str, Any], resource_type: str) -> Iterator[dict[str, Any]]:
    return (r for r in template["Resources"].values() if r["Type"] == resource_type)


def test_one_stage_per_config_file(assembly: CloudAssembly) -> None:
    stages = sorted(a.id for a in assembly.nested_assemblies)  # type: ignore[attr-defined]
    assert stages == ["assembly-SageBert-dev", "assembly-SageBert-prod", "assembly-SageBert-staging"]
    configs = load_all(ROOT / "config")
    for stage in ("dev", "staging", "prod"):
        expected = {"Storage", "Serving"} | ({"Api"} if configs[stage].api is not None else set())
        expected |= {"Batch"} if configs[stage].batch is not None else set()
        expected |= {"Monitoring"} if configs[stage].monitoring is not None else set()
        assert set(templates(assembly, stage)) == expected


def test_stage_invariants(assembly: CloudAssembly) -> None:
    for stage, min_instances, deletion in (("dev", 1, "Delete"), ("staging", 1, "Retain"), ("prod", 2, "Retain")):
        stacks = templates(assembly, stage)
        (config,) = resources(stacks["Serving"], "AWS::SageMaker::EndpointConfig")
        (variant,) = config["Properties"]["ProductionVariants"]
        assert variant["InitialInstanceCount"] >= min_instances
        assert variant["VariantName"] == "AllTraffic"
        assert "KmsKeyId" in config["Properties"]
        for resource_type in ("AWS::KMS::Key", "AWS::S3::Bucket"):
            assert {r["DeletionPolicy"] for r in resources(stacks["Storage"], resource_type)} == {deletion}
        # Data deleted with the stack (dev): both versioned buckets are emptied first, so `cdk destroy` succeeds.
        emptied = list(resources(stacks["Storage"], "Custom::S3AutoDeleteObjects"))
        assert len(emptied) == (2 if deletion == "Delete" else 0)
    (prod_config,) = resources(templates(assembly, "prod")["Serving"], "AWS::SageMaker::EndpointConfig")
    assert prod_config["Properties"]["ProductionVariants"][0]["InitialInstanceCount"] == 2


def test_no_physical_names_on_replaceable_resources(assembly: CloudAssembly) -> None:
    names = {
        "AWS::SageMaker::Model": "ModelName",
        "AWS::SageMaker::EndpointConfig": "EndpointConfigName",
        "AWS::IAM::Role": "RoleName",
        "AWS::S3::Bucket": "BucketName",
        "AWS::Lambda::Function": "FunctionName",
        "AWS::ApiGateway::ApiKey": "Name",
        "AWS::ApiGateway::UsagePlan": "UsagePlanName",
        "AWS::WAFv2::WebACL": "Name",
        "AWS::StepFunctions::StateMachine": "StateMachineName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Scheduler::Schedule": "Name",
        "AWS::CloudWatch::Alarm": "AlarmName",
    }
    for stage in ("dev", "staging", "prod"):
        for template in templates(assembly, stage).values():
            for resource_type, name_key in names.items():
                for resource in resources(template, resource_type):
                    assert name_key not in resource["Properties"]
    # The endpoint is the exception: updated in place (never replaced by a config change), and named so the
    # rollback alarms its DeploymentConfig lists can watch it before it exists.
    for stage in ("dev", "staging", "prod"):
        names_found = [
            resource["Properties"]["EndpointName"]
            for template in templates(assembly, stage).values()
            for resource in resources(template, "AWS::SageMaker::Endpoint")
        ]
        assert names_found == [f"sagebert-{stage}"]


def test_cfn_lint_finds_nothing(assembly: CloudAssembly) -> None:
    files = [Path(assembly.directory) / f"assembly-SageBert-{s}" for s in ("dev", "staging", "prod")]
    template_files = sorted(p for folder in files for p in folder.glob("*.template.json"))
    stacks = sum(len(templates(assembly, s)) for s in ("dev", "staging", "prod"))
    # Storage, Serving and Api in each stage; Batch in dev and prod; Monitoring in staging and prod.
    assert len(template_files) == stacks == 13
    assert synth_report.run_cfn_lint(template_files) == 0


def test_synth_is_deterministic(assembly: CloudAssembly, tmp_path: Path) -> None:
    again = build_app(outdir=str(tmp_path)).synth()
    for stage in ("dev", "staging", "prod"):
        assert templates(again, stage) == templates(assembly, stage)


def test_summary_reads_the_assembly(assembly: CloudAssembly) -> None:
    stages = read_assembly(Path(assembly.directory))
    table = synth_report.render(stages)
    assert "SageBert-prod" in table and "cpu ml.c6i.xlarge x2" in table
    assert synth_report.nag_failures(Path(assembly.directory)) == []


def test_the_gate_fails_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    # Given a stage with a bucket that breaks AwsSolutions-S1/S10 and NIST rules, synth must fail.
    app = App(context=feature_flags(), outdir=str(tmp_path))
    stack = Stack(Stage(app, "Gate"), "Leaky")
    s3.Bucket(stack, "Leaky")
    add_compliance_checks(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text(encoding="utf-8"))
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-S10" in rules and "NIST.800.53.R5-S3BucketLoggingEnabled" in rules
    assert synth_report.nag_failures(tmp_path)


def test_pinned_environment_and_other_sources_pass_the_gates(default_artifact: Path, tmp_path: Path) -> None:
    # Given stages pinned to an account/region and using the s3 and hub sources,
    # when the app is synthesized, then every gate passes and the image URI is a literal.
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "eu.yaml").write_text(
        "account: '111122223333'\nregion: eu-central-1\n"
        "model: {source: s3, uri: s3://releases-bucket/sagebert/v7/model.tar.gz}\n",
        encoding="utf-8",
    )
    (config_dir / "hub.yaml").write_text(
        "model: {source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, task: text-classification}\n",
        encoding="utf-8",
    )
    assembly = build_app(config_dir=config_dir, outdir=str(tmp_path / "out")).synth()
    eu = templates(assembly, "eu")["Serving"]
    (model,) = resources(eu, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["Image"].startswith(
        "763104351884.dkr.ecr.eu-central-1.amazonaws.com/huggingface-pytorch-inference:"
    )
    assert "Mappings" not in eu
    (hub_model,) = resources(templates(assembly, "hub")["Serving"], "AWS::SageMaker::Model")
    assert hub_model["Properties"]["PrimaryContainer"]["Environment"]["HF_TASK"] == "text-classification"


def test_api_stages_keep_their_front_door_invariants(assembly: CloudAssembly) -> None:
    # dev and staging: IAM; prod: IAM behind a WAF web ACL, concurrency reserved. No stage ships an API key.
    for stage in ("dev", "staging", "prod"):
        api = templates(assembly, stage)["Api"]
        assert {
            m["Properties"]["AuthorizationType"]
            for m in resources(api, "AWS::ApiGateway::Method")
            if m["Properties"]["HttpMethod"] != "OPTIONS"
        } == {"AWS_IAM"}
        assert not list(resources(api, "AWS::ApiGateway::UsagePlan"))
        assert not list(resources(api, "AWS::ApiGateway::ApiKey"))
        # TLS 1.2 or newer on the execute-api endpoint, SNI checked.
        (rest_api,) = resources(api, "AWS::ApiGateway::RestApi")
        assert rest_api["Properties"]["SecurityPolicy"] == "SecurityPolicy_TLS13_1_2_2021_06"
        assert rest_api["Properties"]["EndpointAccessMode"] == "STRICT"
    assert not list(resources(templates(assembly, "staging")["Api"], "AWS::WAFv2::WebACL"))
    prod = templates(assembly, "prod")["Api"]
    (association,) = resources(prod, "AWS::WAFv2::WebACLAssociation")
    assert "/stages/" in json.dumps(association["Properties"]["ResourceArn"])
    (function,) = resources(prod, "AWS::Lambda::Function")
    assert function["Properties"]["ReservedConcurrentExecutions"] == 50
    for stage in ("dev", "staging", "prod"):
        api = templates(assembly, stage)["Api"]
        assert set(api["Outputs"]) >= {"ApiUrl", "HealthUrl"}
        (stage_resource,) = resources(api, "AWS::ApiGateway::Stage")
        assert stage_resource["Properties"]["TracingEnabled"] is True
        (function,) = resources(api, "AWS::Lambda::Function")
        assert function["Properties"]["Timeout"] <= 28


def test_every_api_option_passes_the_gates(default_artifact: Path, tmp_path: Path) -> None:
    # Given stages that use the other auth modes, CORS with several origins, WAF without production,
    # a pinned environment and no account-level CloudWatch role,
    # when the app is synthesized, then no nag finding is left unacknowledged and cfn-lint is clean.
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "cognito.yaml").write_text(
        "account: '111122223333'\nregion: eu-west-1\n"
        "api:\n"
        "  auth: cognito\n"
        "  cognito_user_pool_arn: arn:aws:cognito-idp:eu-west-1:111122223333:userpool/eu-west-1_AbCdEf123\n"
        "  cors_allow_origins: [https://app.example.com, http://localhost:3000]\n"
        "  waf: {rate_limit: 100}\n"
        "  reserved_concurrency: 5\n"
        "  account_cloudwatch_role: false\n",
        encoding="utf-8",
    )
    (config_dir / "keys.yaml").write_text(
        "api: {auth: api_key, cors_allow_origins: ['*'], target_variant: AllTraffic}\n", encoding="utf-8"
    )
    out = tmp_path / "out"
    assembly = build_app(config_dir=config_dir, outdir=str(out)).synth()
    assert synth_report.nag_failures(out) == []
    cognito = templates(assembly, "cognito")
    assert set(cognito) == {"Storage", "Serving", "Api"}
    assert not list(resources(cognito["Api"], "AWS::ApiGateway::Account"))
    (authorizer,) = resources(cognito["Api"], "AWS::ApiGateway::Authorizer")
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    template_files = sorted(out.glob("assembly-SageBert-*/*.template.json"))
    assert len(template_files) == 6
    assert synth_report.run_cfn_lint(template_files) == 0


def test_batch_stages_keep_their_invariants(assembly: CloudAssembly) -> None:
    # dev and prod run scheduled batch transform (prod: 2 x ml.c6i.xlarge, bad lines marked); staging does not.
    for stage, instance_type, count in (("dev", "ml.c6i.large", 1), ("prod", "ml.c6i.xlarge", 2)):
        stacks = templates(assembly, stage)
        batch = stacks["Batch"]
        (machine,) = resources(batch, "AWS::StepFunctions::StateMachine")
        assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
        assert machine["Properties"]["LoggingConfiguration"]["IncludeExecutionData"] is False
        definition = json.dumps(machine["Properties"]["DefinitionString"])
        assert f'\\"InstanceType\\":\\"{instance_type}\\",\\"InstanceCount\\":{count}' in definition
        assert '\\"SAGEBERT_BAD_LINES\\":\\"mark\\"' in definition
        assert "createTransformJob.sync" in definition and "AmazonSageMakerFullAccess" not in json.dumps(batch)
        (schedule,) = resources(batch, "AWS::Scheduler::Schedule")
        assert schedule["Properties"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
        # (CDK's own ExportsOutput* carry the state machine to the monitoring stack.)
        ours = {name for name in batch["Outputs"] if not name.startswith("ExportsOutput")}
        assert ours == {"StateMachineArn", "AlarmTopicArn", "DeadLetterQueueUrl"}
        assert {"BatchInputPrefix", "BatchOutputPrefix"} <= set(stacks["Storage"]["Outputs"])
        assert not list(resources(batch, "AWS::IAM::Policy"))  # customer-managed policies only
        # The transform job runs as the batch stack's own model role: it may read the input and write the output
        # prefix; the endpoint's model role may not.
        statement_ids = [
            {st["Sid"] for st in policy["Properties"]["PolicyDocument"]["Statement"]}
            for policy in resources(batch, "AWS::IAM::ManagedPolicy")
        ]
        (model_sids,) = [sids for sids in statement_ids if "PullInferenceImage" in sids]
        assert {"ListBatchInput", "ReadBatchInput", "WriteBatchOutput", "BatchDataKey"} <= model_sids
        (serving_policy,) = resources(stacks["Serving"], "AWS::IAM::ManagedPolicy")
        assert "ReadBatchInput" not in json.dumps(serving_policy)
    staging = templates(assembly, "staging")
    assert "Batch" not in staging and "BatchInputPrefix" not in staging["Storage"]["Outputs"]
    (staging_policy,) = resources(staging["Serving"], "AWS::IAM::ManagedPolicy")
    assert "ReadBatchInput" not in json.dumps(staging_policy)


def test_every_batch_option_passes_the_gates(default_artifact: Path, tmp_path: Path) -> None:
    # Given a pinned stage with a daylight-saving time zone, custom prefixes, an alarm email, extra
    # environment and every limit at its edge, and an environment-agnostic stage on a Hub model,
    # when the app is synthesized, then no nag finding is left unacknowledged and cfn-lint is clean.
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "eu.yaml").write_text(
        "account: '111122223333'\nregion: eu-west-1\n"
        "batch:\n"
        "  schedule: cron(15 3 ? * MON-FRI *)\n"
        "  timezone: Europe/Berlin\n"
        "  input_prefix: jobs/in/\n"
        "  output_prefix: jobs/out/\n"
        "  instance_type: ml.m6i.2xlarge\n"
        "  instance_count: 4\n"
        "  max_payload_mb: 1\n"
        "  max_concurrent_transforms: 10\n"
        "  invocation_timeout_s: 900\n"
        "  environment: {SAGEBERT_THREADS: '2'}\n"
        "  bad_lines: fail\n"
        "  capacity_retries: 10\n"
        "  retry_attempts: 185\n"
        "  max_event_age_s: 86400\n"
        "  alarm_email: ml-oncall@example.com\n",
        encoding="utf-8",
    )
    (config_dir / "hub.yaml").write_text(
        "model: {source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, task: text-classification}\n"
        "batch: {timezone: America/New_York}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assembly = build_app(config_dir=config_dir, outdir=str(out)).synth()
    assert synth_report.nag_failures(out) == []
    eu = templates(assembly, "eu")
    assert set(eu) == {"Storage", "Serving", "Batch"}
    (subscription,) = resources(eu["Batch"], "AWS::SNS::Subscription")
    assert subscription["Properties"]["Endpoint"] == "ml-oncall@example.com"
    (schedule,) = resources(eu["Batch"], "AWS::Scheduler::Schedule")
    assert schedule["Properties"]["ScheduleExpressionTimezone"] == "Europe/Berlin"
    template_files = sorted(out.glob("assembly-SageBert-*/*.template.json"))
    assert len(template_files) == 6
    assert synth_report.run_cfn_lint(template_files) == 0


# --- docs/compliance.md's "Security model", claim by claim, on the committed stages -----------------------------------


def test_security_model_callers(assembly: CloudAssembly) -> None:
    # Who may call: SigV4 (IAM) on every shipped stage, TLS 1.2 or newer with SNI checked, prod behind a web ACL.
    for stage in ("dev", "staging", "prod"):
        api = templates(assembly, stage)["Api"]
        (rest_api,) = resources(api, "AWS::ApiGateway::RestApi")
        assert (rest_api["Properties"]["SecurityPolicy"], rest_api["Properties"]["EndpointAccessMode"]) == (
            "SecurityPolicy_TLS13_1_2_2021_06",
            "STRICT",
        )
        (stage_resource,) = resources(api, "AWS::ApiGateway::Stage")
        fields = json.loads(stage_resource["Properties"]["AccessLogSetting"]["Format"])
        assert {"caller", "userArn", "apiKeyId", "cognitoSub", "ip"} <= set(fields)
    assert list(resources(templates(assembly, "prod")["Api"], "AWS::WAFv2::WebACLAssociation"))
    # Only the front door's role may invoke the endpoint, and only this stage's.
    for stage in ("dev", "staging", "prod"):
        invokes = [
            statement
            for template in templates(assembly, stage).values()
            for policy in resources(template, "AWS::IAM::ManagedPolicy")
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if "sagemaker:InvokeEndpoint" in json.dumps(statement["Action"])
        ]
        assert len(invokes) == 1 and "*" not in json.dumps(invokes[0]["Resource"])


def test_security_model_readers_and_retention(assembly: CloudAssembly) -> None:
    for stage in ("dev", "staging", "prod"):
        stage_templates = templates(assembly, stage)
        # Every log group: the stage key and a retention, the endpoint's and API Gateway's execution logs included.
        groups = [g for t in stage_templates.values() for g in resources(t, "AWS::Logs::LogGroup")]
        assert groups and all("KmsKeyId" in g["Properties"] and "RetentionInDays" in g["Properties"] for g in groups)
        names = json.dumps([g["Properties"].get("LogGroupName") for g in groups])
        assert f"/aws/sagemaker/Endpoints/sagebert-{stage}" in names
        assert "API-Gateway-Execution-Logs_" in names
        # Old versions of every object, and access logs, expire.
        for bucket in resources(stage_templates["Storage"], "AWS::S3::Bucket"):
            rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
            assert any(r.get("NoncurrentVersionExpiration") == {"NoncurrentDays": 30} for r in rules)
    # Batch data (dev, prod) expires after 90 days; captured data (staging) after 30, and only the stage's endpoint
    # model roles may read or write it.
    for stage, prefixes in (("dev", {"batch/input/": 90, "batch/output/": 90}), ("staging", {"capture/": 30})):
        (artifacts,) = [
            b
            for b in resources(templates(assembly, stage)["Storage"], "AWS::S3::Bucket")
            if "LoggingConfiguration" in b["Properties"]
        ]
        rules = artifacts["Properties"]["LifecycleConfiguration"]["Rules"]
        assert {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r} == prefixes
    statements = [
        s
        for p in resources(templates(assembly, "staging")["Storage"], "AWS::S3::BucketPolicy")
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (guard,) = [s for s in statements if s.get("Sid") == "OnlyCaptureRoles"]
    assert guard["Effect"] == "Deny" and "role/sagebert/staging/serving/*" in json.dumps(guard["Condition"])
    for policy in resources(templates(assembly, "staging")["Serving"], "AWS::IAM::Role"):
        if policy["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "sagemaker.amazonaws.com"
        }:
            assert policy["Properties"]["Path"] == "/sagebert/staging/serving/"


def test_security_model_keys_and_stage_scoped_grants(assembly: CloudAssembly) -> None:
    for stage in ("dev", "prod"):
        batch = templates(assembly, stage)["Batch"]
        (machine,) = resources(batch, "AWS::StepFunctions::StateMachine")
        definition = json.dumps(machine["Properties"]["DefinitionString"])
        assert f"'sagebert-{stage}-'" in definition and "VolumeKmsKeyId" in definition
        text = json.dumps(batch)
        assert f"transform-job/sagebert-{stage}-*" in text
        assert f"/aws/sagemaker/TransformJobs:log-stream:sagebert-{stage}-*" in text
    for stage in ("dev", "staging", "prod"):
        for template in templates(assembly, stage).values():
            for topic in resources(template, "AWS::SNS::Topic"):
                assert "KmsMasterKeyId" in topic["Properties"]
            for queue in resources(template, "AWS::SQS::Queue"):
                assert "KmsMasterKeyId" in queue["Properties"]
            for config in resources(template, "AWS::SageMaker::EndpointConfig"):
                assert "KmsKeyId" in config["Properties"]  # c6i: EBS volumes, encrypted with the stage key
        serving = json.dumps(templates(assembly, stage)["Serving"])
        assert "log-group:/aws/sagemaker/Endpoints/*" not in serving  # not every endpoint's logs
        assert f"log-group:/aws/sagemaker/Endpoints/sagebert-{stage}" in serving
        key_policy = next(resources(templates(assembly, stage)["Storage"], "AWS::KMS::Key"))["Properties"]["KeyPolicy"]
        for statement in key_policy["Statement"]:
            if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}:
                assert {"aws:SourceAccount"} <= set(statement["Condition"]["StringEquals"])
                assert "aws:SourceArn" in statement["Condition"]["ArnLike"]
