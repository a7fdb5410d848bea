"""InferenceApi: the API front door for one real-time endpoint, a regional REST API in front of a Lambda.

Creates the REST API and its stage `api` (throttling, X-Ray, metrics, ERROR execution logs and JSON access logs in
KMS-encrypted log groups), `POST /v1/predict` (the body validated against the request schema, then the Lambda) and
`GET /v1/health` (a mock), JSON gateway responses for every error API Gateway answers itself, and CORS when origins
are configured. It composes the parts that each do one thing, all built in its own scope:

- FrontDoorFunction (front_door_function.py): the Lambda behind `POST /v1/predict`, its alias, role and logs;
- ApiAuth (api_auth.py): IAM, API key with a usage plan, or a Cognito authorizer on the methods;
- ApiFirewall (api_firewall.py): with `api.waf`, the WAFv2 web ACL on the stage and its logs.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config.api import ApiSettings
from infra.online.api_auth import ApiAuth
from infra.online.api_firewall import ApiFirewall
from infra.online.front_door_function import FrontDoorFunction
from infra.online.realtime_endpoint import RealtimeEndpoint
from infra.operations.compliance import acknowledge
from infra.operations.key_policies import allow_cloudwatch_logs
from infra.operations.log_retention import RETENTION

# The one source of truth for the request body: API Gateway's model (here), the Lambda and the tests. Relative to
# the Lambda code root.
REQUEST_SCHEMA = PurePosixPath("front_door/predict_request.schema.json")

STAGE_NAME = "api"
PREDICT_PATH = "/v1/predict"
HEALTH_PATH = "/v1/health"

# Errors API Gateway answers itself (the Lambda never runs): (response type, status, code). Every one
# gets the same JSON body as the Lambda's errors: {"code", "message", "requestId"}. A status of None
# keeps the status API Gateway chose (the DEFAULT_* catch-alls cover several).
# https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
GATEWAY_RESPONSES: tuple[tuple[str, int | None, str], ...] = (
    ("BAD_REQUEST_BODY", 400, "InvalidBody"),
    ("BAD_REQUEST_PARAMETERS", 400, "InvalidRequest"),
    ("UNAUTHORIZED", 401, "Unauthorized"),
    ("ACCESS_DENIED", 403, "Forbidden"),
    # API Gateway also answers MISSING_AUTHENTICATION_TOKEN for a route that does not exist.
    ("MISSING_AUTHENTICATION_TOKEN", 403, "Forbidden"),
    ("INVALID_API_KEY", 403, "Forbidden"),
    ("INVALID_SIGNATURE", 403, "Forbidden"),
    ("EXPIRED_TOKEN", 403, "Forbidden"),
    ("WAF_FILTERED", 403, "Forbidden"),
    ("REQUEST_TOO_LARGE", 413, "PayloadTooLarge"),
    ("UNSUPPORTED_MEDIA_TYPE", 415, "UnsupportedMediaType"),
    ("THROTTLED", 429, "Throttled"),
    ("QUOTA_EXCEEDED", 429, "QuotaExceeded"),
    ("INTEGRATION_FAILURE", 502, "BadGateway"),
    ("INTEGRATION_TIMEOUT", 504, "Timeout"),
    ("DEFAULT_4XX", None, "InvalidRequest"),
    ("DEFAULT_5XX", None, "InternalError"),
)
# $context.error.messageString is already a quoted JSON string; the request id is a UUID.
GATEWAY_RESPONSE_TEMPLATE = '{"code": "%s", "message": $context.error.messageString, "requestId": "$context.requestId"}'

# One JSON object per request, never a body or a header value: who called what, how it ended, how long
# it took. API Gateway escapes the values it puts into a JSON access-log format.
# The caller fields say who it was whatever the stage's auth: the IAM principal (iam: caller, user, userArn,
# accountId), the Cognito user (cognito: sub), the API key's id, never its value (api_key: apiKeyId).
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "userArn": "$context.identity.userArn",
    "accountId": "$context.identity.accountId",
    "apiKeyId": "$context.identity.apiKeyId",
    "cognitoSub": "$context.authorizer.claims.sub",
    "tlsVersion": "$context.tlsVersion",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "responseLatency": "$context.responseLatency",
    "errorMessage": "$context.error.message",
}


class SchemaError(ValueError):
    """The request JSON schema uses something API Gateway's models do not support."""


class InferenceApi(Construct):
    """Creates the API front door for one real-time endpoint:

    - a regional REST API, stage `api`: `POST /v1/predict` (Lambda proxy, body validated against
      front_door/predict_request.schema.json in the Lambda code root) and `GET /v1/health` (a mock answering 200
      `{"status": "ok"}` without running the Lambda), both behind `settings.auth` (ApiAuth: IAM, API key with a
      usage plan, or a Cognito user pool); CORS preflight when origins are configured;
    - JSON gateway responses for every error API Gateway answers itself;
    - stage throttling, X-Ray tracing, metrics, ERROR execution logs without data, JSON access logs
      (no bodies) in KMS-encrypted log groups;
    - the front-door Lambda (FrontDoorFunction) from `lambda_code`, behind the alias `live` that API Gateway calls;
    - with `settings.waf`, a regional WAFv2 web ACL on the stage (ApiFirewall), logging blocked and counted requests.

    Exposes `url` (the predict URL), `health_url`, `api`, `function`, `alias`, `role`, `policy`, `execution_logs`,
    `api_key` (None unless auth is api_key) and `web_acl` (None without `settings.waf`).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: ApiSettings,
        endpoint: RealtimeEndpoint,
        production: bool,
        key: kms.IKey,
        lambda_code: Path,
    ) -> None:
        super().__init__(scope, id_)
        if production and "*" in settings.cors_allow_origins:
            raise ValueError("cors_allow_origins '*' is refused in production; list the allowed origins.")
        if production and (settings.auth == "api_key" or settings.waf is None):
            raise ValueError("a production API needs auth iam or cognito (not api_key) and a WAF web ACL (api.waf).")
        retention = RETENTION[settings.log_retention_days]
        allow_cloudwatch_logs(key)

        # Each part adds its resources to this construct: their logical IDs stay those of one flat construct.
        door = FrontDoorFunction(
            self, settings=settings, endpoint=endpoint, key=key, retention=retention, code=lambda_code
        )
        self.function = door.function
        self.alias = door.alias
        self.role = door.role
        self.policy = door.policy

        self.api = self._rest_api(settings, key, retention)
        stage = self.api.deployment_stage
        # Keep the order below: the deployment's logical ID hashes the validator, model, authorizer, methods and
        # gateway responses in the order they are added (a new hash is a new deployment), and the template lists
        # resources in the order they are created.
        # Request validation: body against the shared schema; parameters (none are declared) too.
        validator = self.api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        model = self.api.add_model(
            "PredictRequest",
            content_type="application/json",
            description=f"POST /v1/predict body (lambdas/{REQUEST_SCHEMA})",
            schema=to_json_schema(json.loads((lambda_code / REQUEST_SCHEMA).read_text(encoding="utf-8"))),
        )
        auth = ApiAuth(self, settings=settings)
        self._methods(settings, auth, validator, model)
        origins = settings.cors_allow_origins
        for type_name, status, code in GATEWAY_RESPONSES:
            self.api.add_gateway_response(
                "".join(part.title() for part in type_name.split("_")),
                type=apigateway.ResponseType.of(type_name),
                status_code=str(status) if status is not None else None,
                response_headers={"Content-Type": "'application/json'", **_gateway_cors_headers(origins)},
                templates={"application/json": GATEWAY_RESPONSE_TEMPLATE % code},
            )
        auth.add_usage_plan(self.api, stage)
        self.api_key = auth.api_key

        self.web_acl: wafv2.CfnWebACL | None = None
        if settings.waf is not None:
            self.web_acl = ApiFirewall(
                self, settings=settings.waf, stage_arn=stage.stage_arn, key=key, retention=retention
            ).web_acl
        else:
            reason = (
                "api.waf is not set for this stage, so no web ACL guards it; the stage throttle still limits "
                "request rates. Add api.waf to the stage's config to associate one."
            )
            acknowledge(stage, "AwsSolutions-APIG3", reason)
            acknowledge(stage, "NIST.800.53.R5-APIGWAssociatedWithWAF", reason)

        self.url: str = self.api.url_for_path(PREDICT_PATH)
        self.health_url: str = self.api.url_for_path(HEALTH_PATH)

    def _rest_api(self, settings: ApiSettings, key: kms.IKey, retention: logs.RetentionDays) -> apigateway.RestApi:
        """The REST API and its stage: TLS policy, throttling, tracing, metrics, execution and access logs."""
        access_logs = logs.LogGroup(self, "AccessLogs", encryption_key=key, retention=retention)
        api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=f"{Stack.of(self).stack_name}-front-door",
            description="sagebert front door: POST /v1/predict, GET /v1/health",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=settings.account_cloudwatch_role,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=settings.throttle_rate_limit,
                throttling_burst_limit=settings.throttle_burst_limit,
                tracing_enabled=settings.tracing,
                metrics_enabled=True,
                # Errors only, and never request or response data (texts may be personal data).
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.custom(
                    json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
                ),
            ),
        )
        # The execute-api endpoint's TLS policy. RestApi (the L2) has no property for it in this CDK version, but
        # AWS::ApiGateway::RestApi takes SecurityPolicy and EndpointAccessMode on a regional API without a custom
        # domain; the access mode is required with the enhanced (SecurityPolicy_) policies only.
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-security-policies.html
        cfn_api = api.node.default_child
        assert isinstance(cfn_api, apigateway.CfnRestApi)
        cfn_api.security_policy = settings.tls_security_policy
        if settings.tls_security_policy.startswith("SecurityPolicy_"):
            cfn_api.endpoint_access_mode = settings.endpoint_access_mode
        stage = api.deployment_stage
        # The execution-log group API Gateway would otherwise create itself (unencrypted, kept forever), made with
        # the stage key and the API's retention before the stage that logs to it.
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
        self.execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{api.rest_api_id}/{STAGE_NAME}",
            encryption_key=key,
            retention=retention,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        stage.node.add_dependency(self.execution_logs)
        if settings.account_cloudwatch_role:
            cloudwatch_role = api.node.find_child("CloudWatchRole")
            # CDK writes this managed policy's ARN with the AWS::Partition pseudo parameter even in a stack pinned to
            # an account and region, so the finding is always named with the placeholder.
            acknowledge(
                cloudwatch_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level CloudWatch Logs role uses the AWS managed policy "
                "AmazonAPIGatewayPushToCloudWatchLogs that API Gateway documents for it: execution logs of "
                "any API in the account and region go through this one role.",
            )
        acknowledge(
            stage,
            "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted",
            "No cache: every prediction request is a distinct POST whose answer must come from the model; "
            "a cache would only add cost and hold texts outside the request path.",
        )
        acknowledge(
            stage,
            "NIST.800.53.R5-APIGWSSLEnabled",
            "Client certificates let an HTTP backend authenticate API Gateway; the backend here is a Lambda "
            "function that API Gateway invokes through the AWS API with IAM.",
        )
        return api

    def _methods(
        self,
        settings: ApiSettings,
        auth: ApiAuth,
        validator: apigateway.IRequestValidator,
        model: apigateway.IModel,
    ) -> None:
        """`POST /v1/predict` (the alias, body validated), `GET /v1/health` (a mock), both behind the stage's auth,
        and their CORS preflights when origins are configured."""
        v1 = self.api.root.add_resource("v1")
        predict = v1.add_resource("predict")
        health = v1.add_resource("health")
        predict.add_method(
            "POST",
            apigateway.LambdaIntegration(self.alias, proxy=True, allow_test_invoke=False),
            authorization_type=auth.authorization_type,
            authorizer=auth.authorizer,
            api_key_required=auth.api_key_required,
            request_validator=validator,
            request_models={"application/json": model},
        )
        origins = settings.cors_allow_origins
        health.add_method(
            "GET",
            apigateway.MockIntegration(
                request_templates={"application/json": '{"statusCode": 200}'},
                passthrough_behavior=apigateway.PassthroughBehavior.NEVER,
                integration_responses=[
                    apigateway.IntegrationResponse(
                        status_code="200",
                        response_templates={"application/json": _cors_template(origins) + '{"status": "ok"}'},
                        response_parameters=_static_cors_header(origins),
                    )
                ],
            ),
            authorization_type=auth.authorization_type,
            authorizer=auth.authorizer,
            api_key_required=auth.api_key_required,
            method_responses=[
                apigateway.MethodResponse(
                    status_code="200",
                    response_parameters=(
                        {"method.response.header.Access-Control-Allow-Origin": True} if len(origins) == 1 else None
                    ),
                )
            ],
        )
        auth.acknowledge([predict.node.find_child("POST"), health.node.find_child("GET")])
        if origins:
            for resource, method in ((predict, "POST"), (health, "GET")):
                # Browsers send the preflight without credentials: it cannot carry auth.
                options = resource.add_cors_preflight(
                    allow_origins=origins,
                    allow_methods=[method, "OPTIONS"],
                    allow_headers=apigateway.Cors.DEFAULT_HEADERS,
                    max_age=Duration.hours(1),
                )
                reason = (
                    "CORS preflight (OPTIONS): browsers send it without credentials, so it cannot require "
                    "authorization; it is a mock that returns only the CORS headers."
                )
                acknowledge(options, "AwsSolutions-APIG4", reason)
                acknowledge(options, "AwsSolutions-COG4", reason)


# API Gateway models: JSON schema draft 4 (https://docs.aws.amazon.com/apigateway/latest/developerguide/models-mappings-models.html).
# Keywords whose value is a plain value, keyed by JSON name -> CDK JsonSchema field.
_PLAIN_KEYWORDS = {
    "title": "title",
    "description": "description",
    "required": "required",
    "enum": "enum",
    "default": "default",
    "format": "format",
    "pattern": "pattern",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "multipleOf": "multiple_of",
    "minItems": "min_items",
    "maxItems": "max_items",
    "uniqueItems": "unique_items",
    "minProperties": "min_properties",
    "maxProperties": "max_properties",
}
# Keywords whose value is a list of schemas.
_SCHEMA_LISTS = {"anyOf": "any_of", "allOf": "all_of", "oneOf": "one_of"}
# Keywords whose value is a schema (or, for items, a list of them; for additionalProperties, a bool).
_SCHEMA_VALUES = {"items": "items", "additionalProperties": "additional_properties", "not": "not_"}
_KNOWN = sorted(["$schema", "type", "properties", *_PLAIN_KEYWORDS, *_SCHEMA_LISTS, *_SCHEMA_VALUES])
DRAFT_04 = "http://json-schema.org/draft-04/schema#"


def to_json_schema(schema: Any, path: str = "#") -> apigateway.JsonSchema:
    """A JSON schema (draft 4, as parsed JSON) as CDK's JsonSchema. Raises SchemaError on a keyword
    or type it does not know, so the shared schema stays inside what API Gateway models support."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: a schema must be a JSON object, got {schema!r}")
    props: dict[str, Any] = {}
    for keyword, value in schema.items():
        where = f"{path}/{keyword}"
        if keyword == "$schema":
            if value != DRAFT_04:
                raise SchemaError(f"{where}: API Gateway models are JSON schema draft 4 ({DRAFT_04}), got {value!r}")
            props["schema"] = apigateway.JsonSchemaVersion.DRAFT4
        elif keyword == "type":
            types = [_schema_type(name, where) for name in (value if isinstance(value, list) else [value])]
            props["type"] = types if isinstance(value, list) else types[0]
        elif keyword == "properties":
            props["properties"] = {name: to_json_schema(sub, f"{where}/{name}") for name, sub in value.items()}
        elif keyword in _SCHEMA_LISTS:
            props[_SCHEMA_LISTS[keyword]] = [to_json_schema(sub, f"{where}/{i}") for i, sub in enumerate(value)]
        elif keyword in _SCHEMA_VALUES:
            target = _SCHEMA_VALUES[keyword]
            if isinstance(value, bool) and keyword == "additionalProperties":
                props[target] = value
            elif isinstance(value, list) and keyword == "items":
                props[target] = [to_json_schema(sub, f"{where}/{i}") for i, sub in enumerate(value)]
            else:
                props[target] = to_json_schema(value, where)
        elif keyword in _PLAIN_KEYWORDS:
            props[_PLAIN_KEYWORDS[keyword]] = value
        else:
            raise SchemaError(
                f"{where}: keyword {keyword!r} is not supported by this converter (API Gateway models are "
                f"draft 4); known keywords: {', '.join(_KNOWN)}."
            )
    return apigateway.JsonSchema(**props)


def _schema_type(name: Any, where: str) -> apigateway.JsonSchemaType:
    try:
        return apigateway.JsonSchemaType[str(name).upper()]
    except KeyError:
        allowed = ", ".join(t.name.lower() for t in apigateway.JsonSchemaType)
        raise SchemaError(f"{where}: unknown type {name!r}; allowed: {allowed}.") from None


def _static_cors_header(origins: list[str]) -> dict[str, str] | None:
    """One allowed origin (or '*'): a fixed Access-Control-Allow-Origin header on the mock's answer."""
    if len(origins) != 1:
        return None
    return {"method.response.header.Access-Control-Allow-Origin": f"'{origins[0]}'"}


def _cors_template(origins: list[str]) -> str:
    """Several allowed origins: a mapping-template prelude that echoes the request's Origin only
    when it is one of them (the technique CDK's own CORS preflight uses)."""
    if len(origins) < 2:
        return ""
    condition = " || ".join(f'$origin == "{origin}"' for origin in origins)
    return (
        '#set($origin = $input.params().header.get("Origin"))\n'
        '#if($origin == "")#set($origin = $input.params().header.get("origin"))#end\n'
        f"#if({condition})\n"
        "#set($context.responseOverride.header.Access-Control-Allow-Origin = $origin)\n"
        '#set($context.responseOverride.header.Vary = "Origin")\n'
        "#end\n"
    )


def _gateway_cors_headers(origins: list[str]) -> dict[str, str]:
    """CORS headers on API Gateway's own error responses, so a browser can read them.

    Gateway responses take no mapping logic for headers: with several origins the request's Origin
    is echoed. These bodies hold only an error code, API Gateway's message and the request id, and
    no credentials are allowed, so echoing exposes nothing a browser on another origin could misuse.
    """
    if not origins:
        return {}
    if len(origins) == 1:
        return {"Access-Control-Allow-Origin": f"'{origins[0]}'"}
    return {"Access-Control-Allow-Origin": "method.request.header.Origin", "Vary": "'Origin'"}
