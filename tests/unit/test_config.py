"""Stage config: the committed files load; every kind of bad file fails with a useful message."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.catalog import images as image_catalog
from infra.catalog import resource_regions
from infra.catalog.powertools import POWERTOOLS_REGIONS
from infra.config.errors import ConfigError
from infra.config.model import BundledModel, HubModel, S3Model
from infra.config.stage import StageConfig, load_all, load_stage_config, stage_files


def write(tmp_path: Path, text: str, name: str = "dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_stage_config(path)
    message = str(raised.value)
    assert str(path) in message, "the message names the file"
    return message


def test_committed_stages_load(repo_root: Path) -> None:
    stages = load_all(repo_root / "config")
    assert list(stages) == ["dev", "prod", "staging"]
    assert stages["prod"].production and stages["prod"].endpoint.instance_count >= 2
    assert not stages["dev"].production and not stages["dev"].retain_data
    assert all(isinstance(s.model, BundledModel) for s in stages.values())


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    config = load_stage_config(write(tmp_path, ""))
    assert config.account is None and config.region is None  # environment-agnostic
    assert config.endpoint.instance_type == "ml.c6i.large"
    assert config.model.source == "bundled" and config.model.network_isolation


def test_sources_parse(tmp_path: Path) -> None:
    s3 = load_stage_config(write(tmp_path, "model: {source: s3, uri: s3://my-bucket/models/v1/model.tar.gz}"))
    assert isinstance(s3.model, S3Model)
    hub = load_stage_config(
        write(
            tmp_path,
            (
                "model: {source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, "
                "task: text-classification}"
            ),
        )
    )
    assert isinstance(hub.model, HubModel) and not hub.model.network_isolation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys: the key and the keys allowed at that level
        ("endpiont: {}", ["endpiont", "unknown key", "allowed keys here: account, region"]),
        (
            "endpoint: {instance_typ: ml.c6i.large}",
            ["endpoint.instance_typ", "allowed keys here: compute, name, instance_type"],
        ),
        ("model: {source: bundled, uri: s3://b/k.tar.gz}", ["model.uri", "allowed keys here: source, artifact"]),
        # wrong types and values: key, value, what is allowed
        ("endpoint: {instance_count: many}", ["endpoint.instance_count", "'many'", "valid integer"]),
        ("endpoint: {instance_count: 0}", ["endpoint.instance_count", "0", "greater than or equal to 1"]),
        ("endpoint: {instance_type: ml.g4dn.xlarge}", ["endpoint.instance_type", "ml.g4dn.xlarge", "c6i"]),
        ("endpoint: {compute: elastic-inference}", ["endpoint.compute", "elastic-inference", "end of life"]),
        ("endpoint: {compute: tpu}", ["endpoint.compute", "'tpu'", "'cpu'", "'inferentia'"]),
        ("model: {source: ftp}", ["model", "ftp", "'bundled', 's3', 'hub'"]),
        (
            "model: {source: s3, uri: https://example.com/m.tar.gz}",
            ["model.uri", "https://example.com/m.tar.gz", "s3://"],
        ),
        ("account: '1234'", ["account", "'1234'", "12 digits"]),
        ("region: mars-north-1", ["region = 'mars-north-1'", "eu-west-1"]),
        ("model: {source: bundled, container: {transformers_version: '4.51'}}", ["'4.51'", "4.51.3"]),
        # impossible combinations
        ("production: true\nendpoint: {instance_count: 1}", ["endpoint.instance_count = 1", "at least 2"]),
        ("production: true\nretain_data: false\nendpoint: {instance_count: 2}", ["retain_data = false", "production"]),
        (
            "production: true\nendpoint: {instance_count: 2}\n"
            "model: {source: hub, model_id: org/m, task: text-classification}",
            ["model.source = hub", "allow_download_in_production"],
        ),
        (
            "model: {source: hub, model_id: org/m, task: text-classification, network_isolation: true}",
            ["model.network_isolation = true", "source = hub"],
        ),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_for(tmp_path, text)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


POOL = "arn:aws:cognito-idp:eu-west-1:111122223333:userpool/eu-west-1_AbCdEf123"


def test_api_section_defaults_and_committed_front_doors(repo_root: Path, tmp_path: Path) -> None:
    assert load_stage_config(write(tmp_path, "")).api is None  # absent: no API stack
    api = load_stage_config(write(tmp_path, "api: {}")).api
    assert api is not None
    assert (api.auth, api.throttle_rate_limit, api.throttle_burst_limit) == ("iam", 50, 100)
    assert (api.read_timeout_s, api.connect_timeout_s, api.max_attempts) == (8, 2, 2)
    assert api.lambda_timeout_s == 21  # ceil(2 * (2 + 8) + 1)
    assert (api.max_body_bytes, api.memory_mb, api.log_retention_days) == (1_048_576, 512, 90)
    assert api.account_cloudwatch_role and api.quota is None and api.waf is None and api.cors_allow_origins == []
    stages = load_all(repo_root / "config")
    dev, staging, prod = (stages[name].api for name in ("dev", "staging", "prod"))
    assert dev is not None and dev.auth == "iam" and dev.quota is None
    assert staging is not None and staging.auth == "iam"
    assert prod is not None and prod.auth == "iam" and prod.waf is not None


def test_api_options_that_fit_are_accepted(tmp_path: Path) -> None:
    config = load_stage_config(
        write(
            tmp_path,
            f"api: {{auth: cognito, cognito_user_pool_arn: '{POOL}', max_attempts: 3, connect_timeout_s: 1, "
            "read_timeout_s: 8, cors_allow_origins: ['https://app.example.com:8443', 'http://localhost:3000'], "
            "waf: {}, target_variant: AllTraffic, reserved_concurrency: 10, log_retention_days: 365}",
        )
    )
    assert config.api is not None
    assert config.api.worst_case_s == 28 and config.api.lambda_timeout_s == 28
    assert config.api.waf is not None and config.api.waf.rate_limit == 2000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api: {auth: oauth}", ["api.auth", "'oauth'", "'iam', 'api_key' or 'cognito'"]),
        ("api: {auth: cognito}", ["api.auth = cognito without api.cognito_user_pool_arn"]),
        (f"api: {{auth: iam, cognito_user_pool_arn: '{POOL}'}}", ["api.cognito_user_pool_arn is set", "auth = iam"]),
        (
            "api: {auth: cognito, cognito_user_pool_arn: 'arn:aws:iam::111122223333:role/x'}",
            ["api.cognito_user_pool_arn = 'arn:aws:iam::111122223333:role/x'", "userpool/"],
        ),
        ("api: {quota: {limit: 10, period: DAY}}", ["api.quota is set with api.auth = iam", "api_key"]),
        ("api: {auth: api_key, quota: {limit: 0, period: DAY}}", ["api.quota.limit", "greater than 0"]),
        ("api: {auth: api_key, quota: {limit: 5, period: YEAR}}", ["api.quota.period", "'YEAR'", "'MONTH'"]),
        ("api: {throttle_rate_limit: 0}", ["api.throttle_rate_limit", "greater than 0"]),
        ("api: {throttle_burst_limit: 0}", ["api.throttle_burst_limit", "greater than or equal to 1"]),
        ("api: {waf: {rate_limit: 5}}", ["api.waf.rate_limit", "greater than or equal to 10"]),
        ("api: {waf: {limit: 100}}", ["api.waf.limit", "unknown key", "rate_limit"]),
        ("api: {cors_allow_origins: [example.com]}", ["api.cors_allow_origins[0] = 'example.com'", "https://"]),
        (
            "api: {cors_allow_origins: ['https://ok.example.com', 'https://x.example.com/app']}",
            ["api.cors_allow_origins[1]", "no path"],
        ),
        ("api: {cors_allow_origins: ['http://app.example.com']}", ["api.cors_allow_origins[0]", "https://"]),
        ("api: {cors_allow_origins: ['*', 'https://a.example.com']}", ["'*' already allows every origin"]),
        (
            "production: true\nendpoint: {instance_count: 2}\napi: {cors_allow_origins: ['*'], waf: {}}",
            ["api.cors_allow_origins = ['*'] with production: true"],
        ),
        (
            "production: true\nendpoint: {instance_count: 2}\napi: {auth: api_key, waf: {}}",
            ["api.auth = api_key with production: true", "no authentication", "api.auth: iam"],
        ),
        ("production: true\nendpoint: {instance_count: 2}\napi: {}", ["api.waf is missing with production: true"]),
        ("api: {tls_security_policy: TLS_1_0}", ["api.tls_security_policy = 'TLS_1_0'", "SecurityPolicy_TLS13_1_2"]),
        ("api: {endpoint_access_mode: LOOSE}", ["api.endpoint_access_mode = 'LOOSE'", "'STRICT' or 'BASIC'"]),
        (
            "api: {max_attempts: 3, connect_timeout_s: 2, read_timeout_s: 10}",
            ["3 * (2 + 10) + 1 = 37 s, over 28 s", "29 s", "api.read_timeout_s"],
        ),
        ("api: {max_attempts: 4}", ["api.max_attempts", "less than or equal to 3"]),
        ("api: {read_timeout_s: 0}", ["api.read_timeout_s", "greater than 0"]),
        ("api: {max_body_bytes: 7000000}", ["api.max_body_bytes", "6000000", "6 MB"]),
        ("api: {max_body_bytes: 100}", ["api.max_body_bytes", "greater than or equal to 1024"]),
        ("api: {memory_mb: 64}", ["api.memory_mb", "greater than or equal to 128"]),
        ("api: {reserved_concurrency: 0}", ["api.reserved_concurrency", "greater than or equal to 1"]),
        ("api: {log_retention_days: 42}", ["api.log_retention_days = 42", "30", "3653"]),
        ("api: {target_variant: 'bad name!'}", ["api.target_variant", "'bad name!'"]),
        (
            "api: {target_variant: Canary}",
            ["api.target_variant = 'Canary'", "not a production variant of the endpoint (AllTraffic)"],
        ),
        ("api: {stage_name: v2}", ["api.stage_name", "unknown key", "allowed keys here: auth"]),
    ],
)
def test_bad_api_settings_are_named(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_for(tmp_path, text)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    message = error_for(tmp_path, "endpoint: {instance_count: 0, variant_name: 'bad name!'}\nfoo: 1")
    assert "endpoint.instance_count" in message
    assert "endpoint.variant_name" in message
    assert "foo" in message


def test_hub_in_production_is_allowed_only_explicitly(tmp_path: Path) -> None:
    config = load_stage_config(
        write(
            tmp_path,
            (
                "production: true\nendpoint: {instance_count: 2}\n"
                "model: {source: hub, model_id: org/m, task: text-classification, allow_download_in_production: true}"
            ),
        )
    )
    assert isinstance(config.model, HubModel)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in error_for(tmp_path, "endpoint: [unclosed")
    assert "must be a mapping" in error_for(tmp_path, "- a\n- b")


def test_stage_file_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no stage files"):
        load_all(tmp_path)
    write(tmp_path, "", name="Prod_EU.yaml")
    with pytest.raises(ConfigError, match=r"Prod_EU\.yaml: the file name is the stage name"):
        load_all(tmp_path)


def test_batch_section_defaults_and_committed_stages(repo_root: Path, tmp_path: Path) -> None:
    assert load_stage_config(write(tmp_path, "")).batch is None  # absent: no batch stack
    batch = load_stage_config(write(tmp_path, "batch: {}")).batch
    assert batch is not None
    assert (batch.schedule, batch.timezone) == ("cron(0 2 * * ? *)", "UTC")
    assert (batch.input_prefix, batch.output_prefix) == ("batch/input/", "batch/output/")
    assert (batch.instance_type, batch.instance_count, batch.max_payload_mb) == ("ml.c6i.xlarge", 1, 2)
    assert (batch.max_concurrent_transforms, batch.invocation_timeout_s, batch.invocation_max_retries) == (0, 600, 3)
    assert (batch.retry_attempts, batch.max_event_age_s, batch.capacity_retries) == (2, 3600, 3)
    assert batch.environment == {} and batch.bad_lines == "mark" and batch.alarm_email is None
    assert batch.container_environment == {"SAGEBERT_BAD_LINES": "mark"}
    stages = load_all(repo_root / "config")
    dev, staging, prod = (stages[name].batch for name in ("dev", "staging", "prod"))
    assert dev is not None and (dev.instance_type, dev.instance_count) == ("ml.c6i.large", 1)
    assert prod is not None
    assert (prod.instance_type, prod.instance_count, prod.bad_lines) == ("ml.c6i.xlarge", 2, "mark")
    assert staging is None


def test_batch_options_that_fit_are_accepted(tmp_path: Path) -> None:
    config = load_stage_config(
        write(
            tmp_path,
            "batch: {schedule: 'cron(0/30 8-17 ? * MON-FRI *)', timezone: America/St_Johns, input_prefix: a/b/, "
            "output_prefix: a/c/, instance_type: ml.m6i.4xlarge, max_payload_mb: 1, max_concurrent_transforms: 10, "
            "environment: {SAGEBERT_THREADS: '1'}, bad_lines: fail, capacity_retries: 10, "
            "alarm_email: ml-oncall@example.com}",
        )
    )
    assert config.batch is not None
    assert config.batch.container_environment == {"SAGEBERT_THREADS": "1", "SAGEBERT_BAD_LINES": "fail"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("batch: {schedule: 'cron(0 2 * * *)'}", ["batch.schedule = 'cron(0 2 * * *)'", "six fields"]),
        ("batch: {schedule: 'rate(1 day)'}", ["batch.schedule = 'rate(1 day)'", "cron(minutes hours"]),
        ("batch: {schedule: 'cron(0 2 * * 1 *)'}", ["exactly one of day-of-month ('*') and day-of-week ('1')"]),
        ("batch: {schedule: 'cron(0 2 ? * ? *)'}", ["exactly one of day-of-month ('?')"]),
        ("batch: {schedule: 'cron(0 2 $ * ? *)'}", ["the day-of-month field '$'"]),
        ("batch: {timezone: Mars/Olympus}", ["batch.timezone = 'Mars/Olympus'", "IANA", "Europe/Berlin"]),
        ("batch: {timezone: CET+1}", ["batch.timezone = 'CET+1'"]),
        ("batch: {input_prefix: batch/input}", ["batch.input_prefix = 'batch/input'", "pattern"]),
        ("batch: {input_prefix: /batch/input/}", ["batch.input_prefix = '/batch/input/'"]),
        ("batch: {output_prefix: 'batch/*/'}", ["batch.output_prefix = 'batch/*/'"]),
        ("batch: {output_prefix: batch//}", ["batch.output_prefix = 'batch//'"]),
        ("batch: {input_prefix: batch/, output_prefix: batch/out/}", ["overlap", "'batch/'", "'batch/out/'"]),
        ("batch: {input_prefix: same/, output_prefix: same/}", ["overlap"]),
        ("batch: {instance_type: ml.g5.xlarge}", ["batch.instance_type = 'ml.g5.xlarge'", "c6i"]),
        ("batch: {instance_type: ml.c6i.huge}", ["batch.instance_type = 'ml.c6i.huge'"]),
        ("batch: {instance_count: 0}", ["batch.instance_count", "greater than or equal to 1"]),
        ("batch: {instance_count: 101}", ["batch.instance_count", "less than or equal to 100"]),
        ("batch: {max_payload_mb: 0}", ["batch.max_payload_mb", "greater than or equal to 1"]),
        ("batch: {max_payload_mb: 101}", ["batch.max_payload_mb", "less than or equal to 100"]),
        ("batch: {max_concurrent_transforms: -1}", ["batch.max_concurrent_transforms"]),
        (
            "batch: {max_concurrent_transforms: 20, max_payload_mb: 6}",
            ["20 * 6 = 120", "over SageMaker's 100 MB", "max_concurrent_transforms: 0"],
        ),
        ("batch: {invocation_timeout_s: 0}", ["batch.invocation_timeout_s", "greater than or equal to 1"]),
        ("batch: {invocation_timeout_s: 3601}", ["batch.invocation_timeout_s", "less than or equal to 3600"]),
        ("batch: {invocation_max_retries: 4}", ["batch.invocation_max_retries", "less than or equal to 3"]),
        ("batch: {environment: {1BAD: x}}", ["batch.environment: '1BAD' is not an environment variable name"]),
        ("batch: {environment: {SAGEBERT_BAD_LINES: fail}}", ["sets SAGEBERT_BAD_LINES", "batch.bad_lines"]),
        (
            "batch: {environment: {" + ", ".join(f"V{i}: x" for i in range(16)) + "}}",
            ["batch.environment has 16 variables", "at most 15"],
        ),
        ("batch: {environment: {A: 1}}", ["batch.environment.A", "valid string"]),
        ("batch: {bad_lines: skip}", ["batch.bad_lines", "'skip'", "'mark' or 'fail'"]),
        ("batch: {retry_attempts: 186}", ["batch.retry_attempts", "less than or equal to 185"]),
        ("batch: {max_event_age_s: 59}", ["batch.max_event_age_s", "greater than or equal to 60"]),
        ("batch: {max_event_age_s: 86401}", ["batch.max_event_age_s", "less than or equal to 86400"]),
        ("batch: {capacity_retries: 11}", ["batch.capacity_retries", "less than or equal to 10"]),
        ("batch: {alarm_email: oncall}", ["batch.alarm_email = 'oncall'"]),
        ("batch: {cron: 'cron(0 2 * * ? *)'}", ["batch.cron", "unknown key", "allowed keys here: schedule"]),
    ],
)
def test_bad_batch_settings_are_named(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_for(tmp_path, text)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_a_region_without_the_powertools_layer_is_refused_for_api_and_batch(tmp_path: Path) -> None:
    # me-south-1 has the Hugging Face image but no Powertools layer parameter, and (in cfn-lint's provider schemas)
    # no resource types at all: the stage is refused for that first, and the regions offered are ones where the
    # API's and the batch schedule's functions can load the layer too.
    message = error_for(tmp_path, "region: me-south-1\napi: {}\nbatch: {}\n")
    assert "region = 'me-south-1'" in message and "no provider schema" in message
    offered = message.split("Regions with every resource type this stage creates: ")[1].split(".")[0].split(", ")
    assert "eu-west-1" in offered and set(offered) <= POWERTOOLS_REGIONS
    # Today every catalogued region without the layer is refused for its resource types first; the Powertools
    # check stands for a catalog or schema update that changes that.
    assert not (image_catalog.regions() - POWERTOOLS_REGIONS) & resource_regions.regions_with(
        StageConfig().resource_types()["endpoint"], image_catalog.regions()
    )


def test_a_literal_region_must_offer_every_resource_type(tmp_path: Path) -> None:
    # CloudFormation has no AWS::SageMaker::InferenceComponent in eu-west-3 (cfn-lint's provider schemas).
    component = "endpoint: {compute: cpu, inference_component: {min_copies: 1}}\n"
    message = error_for(tmp_path, "region: eu-west-3\n" + component)
    assert "region = 'eu-west-3'" in message and "AWS::SageMaker::InferenceComponent" in message
    assert "remove endpoint.inference_component" in message and "cfn-lint" in message
    offered = message.split("Regions with every resource type this stage creates: ")[1].split(".")[0].split(", ")
    assert "eu-west-1" in offered and "eu-west-3" not in offered
    assert load_stage_config(write(tmp_path, "region: eu-west-3\n")).region == "eu-west-3"
    assert load_stage_config(write(tmp_path, "region: eu-west-1\n" + component)).region == "eu-west-1"
    # No model package groups in ap-south-2.
    message = error_for(tmp_path, "region: ap-south-2\nregistry: {owner: true}\n")
    assert "AWS::SageMaker::ModelPackageGroup (from registry.owner)" in message


def test_me_central_1_is_refused_for_every_stage(repo_root: Path, tmp_path: Path) -> None:
    # botocore and the General Reference list the SageMaker API in me-central-1, but CloudFormation's schema there
    # (cfn-lint's copy) has no Model, EndpointConfig or Endpoint: every stage has them.
    for file in stage_files(repo_root / "config"):
        text = file.read_text(encoding="utf-8") + "\nregion: me-central-1\n"
        message = error_for(tmp_path, text)
        for type_ in ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"):
            assert type_ in message, file.name


def test_no_stage_name_is_another_followed_by_a_dash(tmp_path: Path) -> None:
    # sagebert-dev-* (dev's transform-job grant) would match sagebert-dev-2-... (dev-2's jobs).
    for name in ("dev", "dev-2"):
        (tmp_path / f"{name}.yaml").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'dev' and 'dev-2'.*sagebert-dev-\*"):
        load_all(tmp_path)
    (tmp_path / "dev-2.yaml").rename(tmp_path / "dev2.yaml")
    assert set(load_all(tmp_path)) == {"dev", "dev2"}
