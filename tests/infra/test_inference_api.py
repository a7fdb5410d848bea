"""InferenceApi in a bare stack: auth, validation, stage settings, logs, the Lambda, IAM, WAF, CORS; and its parts
(FrontDoorFunction, ApiAuth, ApiFirewall) each alone in a stack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Capture, Match, Template
from pydantic import ValidationError

from app import feature_flags, project_files
from infra.catalog.powertools import POWERTOOLS_VERSION
from infra.config.api import ApiSettings, WafSettings
from infra.config.base import LOG_RETENTION_DAYS
from infra.config.endpoint import EndpointSettings
from infra.online import front_door_function
from infra.online.api_auth import ApiAuth
from infra.online.api_firewall import ApiFirewall
from infra.online.front_door_function import FrontDoorFunction
from infra.online.inference_api import (
    ACCESS_LOG_FIELDS,
    GATEWAY_RESPONSES,
    HEALTH_PATH,
    PREDICT_PATH,
    REQUEST_SCHEMA,
    RETENTION,
    STAGE_NAME,
    InferenceApi,
    SchemaError,
    to_json_schema,
)
from infra.online.realtime_endpoint import RealtimeEndpoint, VariantModel

POOL_ARN = "arn:aws:cognito-idp:eu-west-1:111122223333:userpool/eu-west-1_AbCdEf123"
LAMBDA_CODE = project_files().lambdas


def endpoint_in(stack: Stack, key: kms.IKey) -> RealtimeEndpoint:
    return RealtimeEndpoint(
        stack,
        "Endpoint",
        settings=EndpointSettings(),
        endpoint_name="sagebert-test",
        variants=[VariantModel("AllTraffic", "model-name", "ml.c6i.large", 1, 1.0)],
        shadow=None,
        key=key,
        bucket=s3.Bucket(stack, "Bucket"),
    )


def build(production: bool = False, region: str | None = None, **settings: Any) -> tuple[Stack, InferenceApi]:
    env = Environment(account="111122223333", region=region) if region else None
    stack = Stack(App(context=feature_flags()), "Bare", env=env)
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    api = InferenceApi(
        stack,
        "FrontDoor",
        settings=ApiSettings.model_validate(settings),
        endpoint=endpoint_in(stack, key),
        production=production,
        key=key,
        lambda_code=LAMBDA_CODE,
    )
    return stack, api


def template(**settings: Any) -> Template:
    return Template.from_stack(build(**settings)[0])


def methods(tpl: Template, http_method: str) -> list[dict[str, Any]]:
    found = tpl.find_resources("AWS::ApiGateway::Method", {"Properties": {"HttpMethod": http_method}})
    return [resource["Properties"] for resource in found.values()]


def only(tpl: Template, resource_type: str) -> dict[str, Any]:
    found = tpl.find_resources(resource_type)
    assert len(found) == 1, f"{len(found)} {resource_type}"
    properties: dict[str, Any] = next(iter(found.values()))["Properties"]
    return properties


# --- auth ---------------------------------------------------------------------------------------


def test_iam_auth_on_both_methods() -> None:
    tpl = template(auth="iam")
    for verb in ("POST", "GET"):
        (method,) = methods(tpl, verb)
        assert method["AuthorizationType"] == "AWS_IAM"
        assert method["ApiKeyRequired"] is False
    for resource_type in ("AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::Authorizer"):
        tpl.resource_count_is(resource_type, 0)


def test_api_key_auth_creates_a_key_and_a_usage_plan_with_quota_and_throttle() -> None:
    tpl = template(
        auth="api_key",
        quota={"limit": 5000, "period": "WEEK"},
        throttle_rate_limit=7,
        throttle_burst_limit=9,
    )
    for verb in ("POST", "GET"):
        (method,) = methods(tpl, verb)
        assert method["ApiKeyRequired"] is True
        assert method["AuthorizationType"] == "NONE"
    plan = only(tpl, "AWS::ApiGateway::UsagePlan")
    assert plan["Quota"] == {"Limit": 5000, "Period": "WEEK"}
    assert plan["Throttle"] == {"RateLimit": 7, "BurstLimit": 9}
    (stage,) = plan["ApiStages"]
    assert stage["Stage"]["Ref"].startswith("FrontDoorApiDeploymentStageapi")
    tpl.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    key = Capture()
    tpl.has_resource_properties("AWS::ApiGateway::UsagePlanKey", {"KeyId": {"Ref": key}, "KeyType": "API_KEY"})
    assert key.as_string().startswith("FrontDoorApiKey")


def test_api_key_auth_without_quota_has_no_quota() -> None:
    assert "Quota" not in only(template(auth="api_key"), "AWS::ApiGateway::UsagePlan")


def test_cognito_auth_uses_the_pool() -> None:
    tpl = template(auth="cognito", cognito_user_pool_arn=POOL_ARN)
    authorizer = only(tpl, "AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["ProviderARNs"] == [POOL_ARN]
    for verb in ("POST", "GET"):
        (method,) = methods(tpl, verb)
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert "Ref" in method["AuthorizerId"]


# --- request validation -------------------------------------------------------------------------


def test_body_is_validated_against_the_shared_schema() -> None:
    tpl = template()
    validator = only(tpl, "AWS::ApiGateway::RequestValidator")
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True
    model = only(tpl, "AWS::ApiGateway::Model")
    assert model["ContentType"] == "application/json"
    # The model is the file, keyword for keyword: nothing lost in the conversion.
    schema = json.loads((LAMBDA_CODE / REQUEST_SCHEMA).read_text(encoding="utf-8"))
    assert model["Schema"] == schema
    inputs = model["Schema"]["properties"]["inputs"]["anyOf"]
    assert inputs[1]["maxItems"] == 64
    assert inputs[0]["maxLength"] == inputs[1]["items"]["maxLength"] == 10000
    assert model["Schema"]["additionalProperties"] is False
    (post,) = methods(tpl, "POST")
    assert set(post["RequestModels"]) == {"application/json"}
    assert "Ref" in post["RequestValidatorId"]
    assert post["Integration"]["Type"] == "AWS_PROXY"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "$ref": "#/definitions/x"}, r"#/\$ref: keyword '\$ref' is not supported"),
        ({"properties": {"a": {"type": "string", "const": "x"}}}, r"#/properties/a/const"),
        ({"type": "text"}, r"#/type: unknown type 'text'"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, r"draft 4"),
        ({"anyOf": [{"type": "string"}, "nope"]}, r"#/anyOf/1: a schema must be a JSON object"),
    ],
)
def test_schema_converter_refuses_what_it_does_not_know(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        to_json_schema(schema)


# --- stage --------------------------------------------------------------------------------------


def test_stage_throttles_traces_and_logs_errors_without_data() -> None:
    tpl = template(throttle_rate_limit=12.5, throttle_burst_limit=30)
    rest_api = only(tpl, "AWS::ApiGateway::RestApi")
    assert rest_api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    stage = only(tpl, "AWS::ApiGateway::Stage")
    assert stage["StageName"] == "api"
    assert stage["TracingEnabled"] is True
    assert stage["MethodSettings"] == [
        {
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
            "MetricsEnabled": True,
            "ThrottlingRateLimit": 12.5,
            "ThrottlingBurstLimit": 30,
        }
    ]
    # Execution logging needs the account-level CloudWatch role.
    tpl.resource_count_is("AWS::ApiGateway::Account", 1)
    assert template(account_cloudwatch_role=False).find_resources("AWS::ApiGateway::Account") == {}


def test_access_log_is_json_without_bodies_in_an_encrypted_log_group() -> None:
    tpl = template(log_retention_days=30)
    setting = only(tpl, "AWS::ApiGateway::Stage")["AccessLogSetting"]
    fields = json.loads(setting["Format"])
    assert set(fields) == {
        "requestId",
        "ip",
        "caller",
        "user",
        "userArn",
        "accountId",
        "apiKeyId",
        "cognitoSub",
        "tlsVersion",
        "requestTime",
        "httpMethod",
        "resourcePath",
        "status",
        "protocol",
        "responseLength",
        "integrationLatency",
        "responseLatency",
        "errorMessage",
    }
    assert fields == ACCESS_LOG_FIELDS
    # Who called, whatever the auth: the IAM principal, the Cognito user, the API key's id (never its value).
    assert (fields["userArn"], fields["apiKeyId"], fields["cognitoSub"]) == (
        "$context.identity.userArn",
        "$context.identity.apiKeyId",
        "$context.authorizer.claims.sub",
    )
    assert '$context.identity.apiKey"' not in setting["Format"]
    assert not re.search(r"body|\$input|requestOverride|responseOverride", setting["Format"], re.IGNORECASE)
    destination = setting["DestinationArn"]["Fn::GetAtt"][0]
    log_group = tpl.to_json()["Resources"][destination]["Properties"]
    assert log_group["RetentionInDays"] == 30
    assert log_group["KmsKeyId"]["Fn::GetAtt"][0].startswith("Key")  # the stage's key
    # CloudWatch Logs may use the key for this account's log groups.
    tpl.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [Match.object_like({"Sid": "CloudWatchLogsEncryption", "Effect": "Allow"})]
                )
            }
        },
    )


def test_every_retention_the_config_allows_maps_to_cdk() -> None:
    assert set(RETENTION) == set(LOG_RETENTION_DAYS)


# --- the Lambda ---------------------------------------------------------------------------------


def test_function_runtime_settings_and_environment() -> None:
    tpl = template(
        read_timeout_s=5,
        connect_timeout_s=1.5,
        max_attempts=3,
        max_body_bytes=2048,
        memory_mb=1024,
        reserved_concurrency=7,
        cors_allow_origins=["https://app.example.com"],
        target_variant="AllTraffic",
    )
    function = only(tpl, "AWS::Lambda::Function")
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "front_door.handler.lambda_handler"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["MemorySize"] == 1024
    assert function["ReservedConcurrentExecutions"] == 7
    assert function["Timeout"] == 21  # ceil(3 * (1.5 + 5) + 1) = ceil(20.5)
    variables = function["Environment"]["Variables"]
    assert variables["SAGEBERT_ENDPOINT_NAME"] == "sagebert-test"  # the endpoint's fixed name
    assert {k: v for k, v in variables.items() if k != "SAGEBERT_ENDPOINT_NAME"} == {
        "SAGEBERT_TARGET_VARIANT": "AllTraffic",
        "SAGEBERT_READ_TIMEOUT_S": "5",
        "SAGEBERT_CONNECT_TIMEOUT_S": "1.5",
        "SAGEBERT_MAX_ATTEMPTS": "3",
        "SAGEBERT_MAX_BODY_BYTES": "2048",
        "SAGEBERT_CORS_ALLOW_ORIGINS": "https://app.example.com",
        "POWERTOOLS_SERVICE_NAME": "sagebert-front-door",
        "POWERTOOLS_METRICS_NAMESPACE": "SageBert",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "SAGEBERT_TRACING": "true",
    }
    # Its own encrypted log group; the Powertools layer from AWS's public SSM parameter.
    log_group = tpl.to_json()["Resources"][function["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert "KmsKeyId" in log_group and log_group["RetentionInDays"] == 90
    (layer,) = function["Layers"]
    parameter = tpl.to_json()["Parameters"][layer["Ref"]]
    assert parameter == {
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": f"/aws/service/powertools/python/arm64/python3.14/{POWERTOOLS_VERSION}",
    }


def test_optional_environment_is_absent_by_default() -> None:
    function = only(template(), "AWS::Lambda::Function")
    assert "ReservedConcurrentExecutions" not in function
    assert function["Timeout"] == 21  # ceil(2 * (2 + 8) + 1)
    assert not {"SAGEBERT_TARGET_VARIANT", "SAGEBERT_CORS_ALLOW_ORIGINS"} & set(function["Environment"]["Variables"])


def test_the_front_door_reads_back_what_the_stack_sets() -> None:
    # infra/ and lambdas/ may not import each other: the variable names and their formatting live in both.
    from front_door.settings import Settings

    settings = ApiSettings.model_validate(
        {
            "read_timeout_s": 4.5,
            "connect_timeout_s": 1.5,
            "max_attempts": 3,
            "max_body_bytes": 4096,
            "cors_allow_origins": ["https://a.example", "http://localhost:3000"],
            "target_variant": "AllTraffic",
            "tracing": False,
        }
    )
    function = only(template(**settings.model_dump()), "AWS::Lambda::Function")
    read = Settings.from_env(function["Environment"]["Variables"])
    assert read == Settings(
        endpoint_name="sagebert-test",
        target_variant=settings.target_variant,
        read_timeout_s=settings.read_timeout_s,
        connect_timeout_s=settings.connect_timeout_s,
        max_attempts=settings.max_attempts,
        max_body_bytes=settings.max_body_bytes,
        cors_allow_origins=tuple(settings.cors_allow_origins),
        tracing=settings.tracing,
    )


def test_the_local_front_door_and_the_openapi_document_use_the_deployed_names() -> None:
    # `make serve` and `make openapi` do not load CDK to read these from the construct; the construct is the
    # reference.
    from sagebert.local import front_door as local_front_door
    from sagebert.report.openapi import document

    deployed = only(template(), "AWS::Lambda::Function")["Environment"]["Variables"]
    local = local_front_door.handler_environment("http://127.0.0.1:9", "sagebert-test")
    for name in ("SAGEBERT_ENDPOINT_NAME", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
        assert local[name] == deployed[name], name
    assert (local_front_door.PREDICT, local_front_door.HEALTH, local_front_door.STAGE) == (
        PREDICT_PATH,
        HEALTH_PATH,
        STAGE_NAME,
    )
    openapi = document()
    assert set(openapi["paths"]) == {PREDICT_PATH, HEALTH_PATH}
    assert all(server["url"].endswith(f"/{STAGE_NAME}") for server in openapi["servers"])


def test_function_may_invoke_only_this_endpoint() -> None:
    tpl = template()
    policy = only(tpl, "AWS::IAM::ManagedPolicy")
    statements = policy["PolicyDocument"]["Statement"]
    invoke = [s for s in statements if s["Action"] == "sagemaker:InvokeEndpoint"]
    assert len(invoke) == 1
    assert invoke[0]["Resource"]["Ref"].startswith("Endpoint")  # Ref on AWS::SageMaker::Endpoint: its ARN
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a], "no wildcard actions"
        if statement["Resource"] == "*":
            # X-Ray takes no resource-level permissions; nothing else may use "*".
            assert set(actions) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert tpl.find_resources("AWS::IAM::Policy") == {}, "no inline policies (NIST IAMNoInlinePolicy)"
    function_role = only(tpl, "AWS::Lambda::Function")["Role"]["Fn::GetAtt"][0]
    role = tpl.to_json()["Resources"][function_role]["Properties"]
    assert "ManagedPolicyArns" not in role, "no AWS managed policies (AWSLambdaBasicExecutionRole)"
    assert policy["Roles"] == [{"Ref": function_role}]
    # API Gateway may invoke the function for POST /v1/predict on this API only.
    tpl.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "apigateway.amazonaws.com", "SourceArn": Match.any_value()},
    )
    tpl.resource_count_is("AWS::Lambda::Permission", 1)


def test_snap_start_on_a_published_version_that_api_gateway_calls_through_an_alias() -> None:
    tpl = template()
    function = only(tpl, "AWS::Lambda::Function")
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    (version_id,) = tpl.find_resources("AWS::Lambda::Version")
    # The old version (and its billed snapshot) is deleted when a new one replaces it.
    assert tpl.to_json()["Resources"][version_id]["DeletionPolicy"] == "Delete"
    alias = only(tpl, "AWS::Lambda::Alias")
    assert alias["Name"] == "live" and alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    (alias_id,) = tpl.find_resources("AWS::Lambda::Alias")
    # API Gateway invokes the alias (a published version), never $LATEST, and may invoke only it.
    (post,) = methods(tpl, "POST")
    assert alias_id in json.dumps(post["Integration"]["Uri"])
    permission = only(tpl, "AWS::Lambda::Permission")
    assert permission["FunctionName"] == {"Ref": alias_id}


def test_snap_start_and_tracing_can_be_turned_off() -> None:
    tpl = template(snap_start=False, tracing=False)
    function = only(tpl, "AWS::Lambda::Function")
    assert "SnapStart" not in function
    assert function.get("TracingConfig", {"Mode": "PassThrough"}) == {"Mode": "PassThrough"}
    assert function["Environment"]["Variables"]["SAGEBERT_TRACING"] == "false"
    assert only(tpl, "AWS::ApiGateway::Stage")["TracingEnabled"] is False
    # No X-Ray permission is left, so no statement needs Resource "*".
    statements = only(tpl, "AWS::IAM::ManagedPolicy")["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements if s.get("Resource") == "*"] == []
    assert not [s for s in statements if "xray" in json.dumps(s["Action"])]


# --- WAF ----------------------------------------------------------------------------------------


def test_waf_guards_the_stage_and_counts_large_bodies() -> None:
    tpl = template(waf={"rate_limit": 500})
    acl = only(tpl, "AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL"
    assert acl["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert "AWSManagedRulesKnownBadInputsRuleSet" in rules
    rate = rules["RateLimitPerIp"]
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 500
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Action"] == {"Block": {}}
    assert all(rule["VisibilityConfig"]["SampledRequestsEnabled"] for rule in acl["Rules"])
    association = only(tpl, "AWS::WAFv2::WebACLAssociation")
    assert "/stages/" in json.dumps(association["ResourceArn"])
    logging = only(tpl, "AWS::WAFv2::LoggingConfiguration")
    assert {f["SingleHeader"]["Name"] for f in logging["RedactedFields"]} >= {"authorization", "x-api-key"}
    tpl.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": Match.string_like_regexp("^aws-waf-logs-"), "KmsKeyId": Match.any_value()},
    )


def test_no_waf_without_the_section() -> None:
    tpl = template()
    for resource_type in ("AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation", "AWS::WAFv2::LoggingConfiguration"):
        tpl.resource_count_is(resource_type, 0)


def test_production_refuses_api_keys_no_waf_and_any_origin() -> None:
    build(production=True, waf={})  # iam behind a web ACL: accepted
    for settings in ({}, {"auth": "api_key", "waf": {}}):
        with pytest.raises(ValueError, match=r"auth iam or cognito .* WAF web ACL"):
            build(production=True, **settings)
    with pytest.raises(ValueError, match="refused in production"):
        build(production=True, waf={}, cors_allow_origins=["*"])


def test_tls_security_policy_defaults_to_tls12_or_newer_with_strict_sni() -> None:
    # A regional REST API without a custom domain takes SecurityPolicy and EndpointAccessMode on the API itself.
    api = only(template(), "AWS::ApiGateway::RestApi")
    assert (api["SecurityPolicy"], api["EndpointAccessMode"]) == ("SecurityPolicy_TLS13_1_2_2021_06", "STRICT")
    api = only(template(tls_security_policy="SecurityPolicy_TLS13_1_3_2025_09"), "AWS::ApiGateway::RestApi")
    assert (api["SecurityPolicy"], api["EndpointAccessMode"]) == ("SecurityPolicy_TLS13_1_3_2025_09", "STRICT")
    # The legacy TLS_1_2 policy takes no access mode.
    api = only(template(tls_security_policy="TLS_1_2"), "AWS::ApiGateway::RestApi")
    assert api["SecurityPolicy"] == "TLS_1_2" and "EndpointAccessMode" not in api
    with pytest.raises(ValidationError):
        ApiSettings.model_validate({"tls_security_policy": "TLS_1_0"})


# --- gateway responses and CORS -----------------------------------------------------------------


def gateway_responses(tpl: Template) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in tpl.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }


def test_gateway_responses_are_json_with_the_request_id() -> None:
    responses = gateway_responses(template())
    assert set(responses) == {name for name, _, _ in GATEWAY_RESPONSES}
    for name, status, code in GATEWAY_RESPONSES:
        response = responses[name]
        assert response.get("StatusCode") == (str(status) if status is not None else None)
        body = response["ResponseTemplates"]["application/json"]
        assert f'"code": "{code}"' in body
        assert '"requestId": "$context.requestId"' in body
        assert '"message": $context.error.messageString' in body
        assert response["ResponseParameters"] == {"gatewayresponse.header.Content-Type": "'application/json'"}
    expected = {
        "BAD_REQUEST_BODY": ("400", "InvalidBody"),
        "REQUEST_TOO_LARGE": ("413", "PayloadTooLarge"),
        "UNSUPPORTED_MEDIA_TYPE": ("415", "UnsupportedMediaType"),
        "THROTTLED": ("429", "Throttled"),
        "QUOTA_EXCEEDED": ("429", "QuotaExceeded"),
        "INTEGRATION_TIMEOUT": ("504", "Timeout"),
    }
    for name, (status_code, code) in expected.items():
        assert responses[name]["StatusCode"] == status_code
        assert code in responses[name]["ResponseTemplates"]["application/json"]
    # With the message substituted by a JSON string, the body is JSON.
    sample = responses["THROTTLED"]["ResponseTemplates"]["application/json"]
    rendered = sample.replace("$context.error.messageString", '"Too Many Requests"').replace("$context.requestId", "id")
    assert json.loads(rendered) == {"code": "Throttled", "message": "Too Many Requests", "requestId": "id"}


def test_no_cors_without_origins() -> None:
    tpl = template()
    assert methods(tpl, "OPTIONS") == []
    for response in gateway_responses(tpl).values():
        assert not any("Access-Control" in header for header in response["ResponseParameters"])


def test_cors_preflight_and_headers_for_one_origin() -> None:
    tpl = template(auth="api_key", cors_allow_origins=["https://app.example.com"])
    options = methods(tpl, "OPTIONS")
    assert len(options) == 2  # /v1/predict and /v1/health
    for method in options:
        # Browsers send preflights without credentials.
        assert method["AuthorizationType"] == "NONE"
        assert method["ApiKeyRequired"] is False
        headers = method["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"
    for response in gateway_responses(tpl).values():
        header = response["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert header == "'https://app.example.com'"
    (health,) = methods(tpl, "GET")
    (answer,) = health["Integration"]["IntegrationResponses"]
    assert answer["ResponseParameters"] == {
        "method.response.header.Access-Control-Allow-Origin": "'https://app.example.com'"
    }


def test_cors_for_several_origins_echoes_only_listed_ones() -> None:
    origins = ["https://a.example.com", "http://localhost:3000"]
    tpl = template(cors_allow_origins=origins)
    (health,) = methods(tpl, "GET")
    template_text = health["Integration"]["IntegrationResponses"][0]["ResponseTemplates"]["application/json"]
    assert '$origin == "https://a.example.com" || $origin == "http://localhost:3000"' in template_text
    assert template_text.endswith('{"status": "ok"}')
    for response in gateway_responses(tpl).values():
        assert response["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == (
            "method.request.header.Origin"
        )


def test_health_is_a_mock_that_needs_no_lambda() -> None:
    (health,) = methods(template(), "GET")
    integration = health["Integration"]
    assert integration["Type"] == "MOCK"
    assert integration["RequestTemplates"] == {"application/json": '{"statusCode": 200}'}
    assert integration["IntegrationResponses"][0]["ResponseTemplates"] == {"application/json": '{"status": "ok"}'}
    assert health["MethodResponses"] == [{"StatusCode": "200"}]


# --- versions -----------------------------------------------------------------------------------


def test_powertools_layer_version_matches_the_locked_package(repo_root: Path) -> None:
    lock = (repo_root / "requirements" / "lock.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^aws-lambda-powertools==(\S+)", lock, re.MULTILINE)
    assert pinned, "aws-lambda-powertools is not pinned in requirements/lock.txt"
    assert pinned.group(1) == POWERTOOLS_VERSION, (
        f"the Lambda layer is Powertools {POWERTOOLS_VERSION} (infra/catalog/powertools.py) but tests run "
        f"{pinned.group(1)} (requirements/lock.txt): move them together"
    )


# --- the parts, each alone in a stack -----------------------------------------------------------


def bare_stack(tmp_path: Path | None = None) -> tuple[Stack, kms.Key]:
    app = App(context=feature_flags(), outdir=str(tmp_path) if tmp_path is not None else None)
    stack = Stack(app, "Bare", env=Environment(account="111122223333", region="eu-west-1"))
    return stack, kms.Key(stack, "Key", enable_key_rotation=True)


def test_front_door_function_builds_from_the_code_directory_it_is_given(tmp_path: Path) -> None:
    # Given a Lambda code root of its own (not the repository's lambdas/), when FrontDoorFunction alone builds
    # the function in a stack, then the asset is that directory without the other functions' packages, and the
    # function, its alias, log group and policy land directly in the given scope.
    code = tmp_path / "code"
    for package in ("front_door", "batch_manifest"):
        (code / package).mkdir(parents=True)
        (code / package / "handler.py").write_text("", encoding="utf-8")
    stack, key = bare_stack(tmp_path / "out")
    door = FrontDoorFunction(
        stack,
        settings=ApiSettings(tracing=False),
        endpoint=endpoint_in(stack, key),
        key=key,
        retention=RETENTION[30],
        code=code,
    )
    tpl = Template.from_stack(stack)
    function = only(tpl, "AWS::Lambda::Function")
    assert function["Handler"] == "front_door.handler.lambda_handler"
    assert only(tpl, "AWS::Lambda::Alias")["Name"] == "live"
    assert door.alias.alias_name == "live"
    (function_id,) = tpl.find_resources("AWS::Lambda::Function")
    assert function_id.startswith("Function")  # no construct level of its own: the IDs InferenceApi's scope gives
    statements = only(tpl, "AWS::IAM::ManagedPolicy")["PolicyDocument"]["Statement"]
    assert [s.get("Sid") for s in statements if s.get("Sid")] == ["WriteOwnLogs"]  # not traced: no X-Ray
    assert [s["Action"] for s in statements if not s.get("Sid")] == ["sagemaker:InvokeEndpoint"]
    log_group = tpl.to_json()["Resources"][function["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
    assert log_group["RetentionInDays"] == 30 and "KmsKeyId" in log_group
    app = stack.node.root
    assert isinstance(app, App)
    assembly = app.synth()
    asset = Path(assembly.directory) / ("asset." + function["Code"]["S3Key"].removesuffix(".zip"))
    assert (asset / "front_door" / "handler.py").is_file()
    assert not (asset / "batch_manifest").exists()


@pytest.mark.parametrize(
    ("auth", "authorization", "key_required"),
    [("iam", "AWS_IAM", False), ("api_key", "NONE", True), ("cognito", "COGNITO_USER_POOLS", False)],
)
def test_api_auth_alone_guards_a_method_and_meters_api_keys(auth: str, authorization: str, key_required: bool) -> None:
    # Given ApiAuth alone on a bare REST API, when a method takes its options and the usage plan is added, then
    # the method authorizes as the stage's auth says, and only api_key gets a key and a usage plan on the stage.
    stack, _ = bare_stack()
    settings = ApiSettings.model_validate(
        {"auth": auth, "cognito_user_pool_arn": POOL_ARN if auth == "cognito" else None}
    )
    api = apigateway.RestApi(stack, "Api", deploy_options=apigateway.StageOptions(stage_name="api"))
    guard = ApiAuth(stack, settings=settings)
    api.root.add_method(
        "GET",
        apigateway.MockIntegration(),
        authorization_type=guard.authorization_type,
        authorizer=guard.authorizer,
        api_key_required=guard.api_key_required,
    )
    guard.add_usage_plan(api, api.deployment_stage)
    tpl = Template.from_stack(stack)
    (method,) = methods(tpl, "GET")
    assert (method["AuthorizationType"], method["ApiKeyRequired"]) == (authorization, key_required)
    tpl.resource_count_is("AWS::ApiGateway::Authorizer", 1 if auth == "cognito" else 0)
    tpl.resource_count_is("AWS::ApiGateway::ApiKey", 1 if auth == "api_key" else 0)
    tpl.resource_count_is("AWS::ApiGateway::UsagePlan", 1 if auth == "api_key" else 0)
    assert (guard.api_key is not None) == (auth == "api_key")
    if auth == "api_key":
        (stage,) = only(tpl, "AWS::ApiGateway::UsagePlan")["ApiStages"]
        assert stage["Stage"]["Ref"].startswith("ApiDeploymentStageapi")


def test_api_firewall_alone_guards_the_stage_it_is_given_and_logs_what_it_stops() -> None:
    # Given ApiFirewall alone in a stack with a stage ARN, then it creates the web ACL with the configured rate
    # limit, associates it with that ARN, and logs blocked and counted requests (credentials redacted) to an
    # encrypted aws-waf-logs- log group.
    stack, key = bare_stack()
    stage_arn = "arn:aws:apigateway:eu-west-1::/restapis/abc123/stages/api"
    firewall = ApiFirewall(
        stack, settings=WafSettings(rate_limit=700), stage_arn=stage_arn, key=key, retention=RETENTION[7]
    )
    tpl = Template.from_stack(stack)
    acl = only(tpl, "AWS::WAFv2::WebACL")
    (rate,) = (rule for rule in acl["Rules"] if rule["Name"] == "RateLimitPerIp")
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 700
    (acl_id,) = tpl.find_resources("AWS::WAFv2::WebACL")
    assert acl_id.startswith("WebAcl")
    assert only(tpl, "AWS::WAFv2::WebACLAssociation") == {
        "ResourceArn": stage_arn,
        "WebACLArn": {"Fn::GetAtt": [acl_id, "Arn"]},
    }
    logging = only(tpl, "AWS::WAFv2::LoggingConfiguration")
    assert logging["ResourceArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert {f["SingleHeader"]["Name"] for f in logging["RedactedFields"]} == {
        "authorization",
        "x-api-key",
        "x-amz-security-token",
    }
    assert logging["LoggingFilter"]["DefaultBehavior"] == "DROP"
    (log_group_id,) = tpl.find_resources("AWS::Logs::LogGroup")
    log_group = tpl.to_json()["Resources"][log_group_id]
    assert log_group["Properties"]["LogGroupName"].startswith("aws-waf-logs-")
    assert log_group["Properties"]["RetentionInDays"] == 7 and "KmsKeyId" in log_group["Properties"]
    assert log_group["DeletionPolicy"] == "RetainExceptOnCreate"
    assert stack.resolve(firewall.web_acl.attr_arn) == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert stack.resolve(firewall.log_group.log_group_name) == {"Ref": log_group_id}


def test_the_front_door_reads_back_the_inference_component_the_stack_sets() -> None:
    # An endpoint in inference-component form: the stack names the component, the function sends it.
    from front_door.settings import Settings

    variables = front_door_function.environment(ApiSettings(), "sagebert-test", "sagebert-test")
    assert Settings.from_env(variables).inference_component == "sagebert-test"
    assert "SAGEBERT_INFERENCE_COMPONENT" not in front_door_function.environment(ApiSettings(), "sagebert-test")
