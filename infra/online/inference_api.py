"""InferenceApi: the API front door, a regional REST API and a Lambda that calls the endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, Duration, Names, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct, IConstruct

from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_REGIONS
from infra.catalog.regions import require_region
from infra.config.api import ApiSettings, WafSettings
from infra.online.realtime_endpoint import RealtimeEndpoint
from infra.operations.compliance import acknowledge
from infra.operations.key_policies import allow_cloudwatch_logs
from infra.operations.log_retention import RETENTION

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = REPO_ROOT / "lambdas"
# The one source of truth for the request body: API Gateway's model (here), the Lambda and the tests.
REQUEST_SCHEMA = LAMBDAS_DIR / "front_door" / "predict_request.schema.json"
HANDLER = "front_door.handler.lambda_handler"
# lambdas/ is the code root of every function; each one's asset leaves out the other packages.
ASSET_EXCLUDE = ("**/__pycache__", "**/*.pyc", "README.md", "**/.mypy_cache", "**/.pytest_cache")
RUNTIME = lambda_.Runtime.PYTHON_3_14


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
      lambdas/front_door/predict_request.schema.json) and `GET /v1/health` (a mock answering 200
      `{"status": "ok"}` without running the Lambda), both behind `settings.auth` (IAM, API key with a
      usage plan, or a Cognito user pool); CORS preflight when origins are configured;
    - JSON gateway responses for every error API Gateway answers itself;
    - stage throttling, X-Ray tracing, metrics, ERROR execution logs without data, JSON access logs
      (no bodies) in a KMS-encrypted log group;
    - the front-door Lambda (Python 3.14, arm64, Powertools layer, X-Ray with `settings.tracing`,
      SnapStart with `settings.snap_start`) behind the alias `live` that API Gateway calls, with its
      own encrypted log group and a customer-managed policy: its logs, X-Ray (when traced), and
      InvokeEndpoint on this endpoint only;
    - with `settings.waf`, a regional WAFv2 web ACL on the stage, logging blocked and counted requests.

    Exposes `url` (the predict URL), `health_url`, `api`, `function`, `alias`, `role`, `policy`, and `api_key`
    (None unless auth is api_key).
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
    ) -> None:
        super().__init__(scope, id_)
        if production and "*" in settings.cors_allow_origins:
            raise ValueError("cors_allow_origins '*' is refused in production; list the allowed origins.")
        if production and (settings.auth == "api_key" or settings.waf is None):
            raise ValueError("a production API needs auth iam or cognito (not api_key) and a WAF web ACL (api.waf).")
        stack = Stack.of(self)
        retention = RETENTION[settings.log_retention_days]
        allow_cloudwatch_logs(key)

        # --- the Lambda --------------------------------------------------------------------------
        function_logs = logs.LogGroup(self, "FunctionLogs", encryption_key=key, retention=retention)
        self.role = iam.Role(
            self,
            "FunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="sagebert front-door Lambda",
        )
        # Every permission in one customer-managed policy (NIST 800-53 IAMNoInlinePolicy; no
        # AWSLambdaBasicExecutionRole, AwsSolutions-IAM4): write its own log group, send traces,
        # invoke this one endpoint.
        self.policy = iam.ManagedPolicy(
            self,
            "FunctionPolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[function_logs.log_group_arn],
                ),
            ],
        )
        if settings.tracing:
            # X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.
            self.policy.add_statements(
                iam.PolicyStatement(
                    sid="Tracing",
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                )
            )
            acknowledge(
                self.policy,
                "AwsSolutions-IAM5[Resource::*]",
                "xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions; every "
                "other statement names its one resource.",
            )
        endpoint.grant_invoke(self.policy)

        environment = {
            "SAGEBERT_ENDPOINT_NAME": endpoint.endpoint_name,
            "SAGEBERT_READ_TIMEOUT_S": f"{settings.read_timeout_s:g}",
            "SAGEBERT_CONNECT_TIMEOUT_S": f"{settings.connect_timeout_s:g}",
            "SAGEBERT_MAX_ATTEMPTS": str(settings.max_attempts),
            "SAGEBERT_MAX_BODY_BYTES": str(settings.max_body_bytes),
            "POWERTOOLS_SERVICE_NAME": "sagebert-front-door",
            "POWERTOOLS_METRICS_NAMESPACE": "SageBert",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # The handler imports the X-Ray SDK (~190 ms of init) only when the function is traced.
            "SAGEBERT_TRACING": "true" if settings.tracing else "false",
        }
        if settings.target_variant is not None:
            environment["SAGEBERT_TARGET_VARIANT"] = settings.target_variant
        if settings.cors_allow_origins:
            environment["SAGEBERT_CORS_ALLOW_ORIGINS"] = ",".join(settings.cors_allow_origins)

        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER),
        )
        require_region(
            self,
            "SupportedRegionPowertools",
            POWERTOOLS_REGIONS,
            f"the Powertools layer's SSM parameter {POWERTOOLS_LAYER_PARAMETER}",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="sagebert front door: validates a predict request and calls the SageMaker endpoint",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(
                str(LAMBDAS_DIR),
                exclude=[*ASSET_EXCLUDE, "batch_manifest"],
            ),
            handler=HANDLER,
            layers=[powertools],
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.lambda_timeout_s),
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE if settings.tracing else lambda_.Tracing.DISABLED,
            # SnapStart: init runs when a version is published, cold starts resume from its snapshot.
            # Python 3.12+ on x86_64 and arm64; not with provisioned concurrency, EFS or more than 512 MB of
            # ephemeral storage (none used here); published versions only, so API Gateway calls an alias.
            # https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if settings.snap_start else None,
            # Each version's snapshot is billed while the version is active: delete the old one on update.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
            log_group=function_logs,
            environment=environment,
            # The policy above holds every permission. An immutable reference keeps CDK from adding an
            # inline default policy (for tracing) beside it, and from a DependsOn on the role that the
            # Role attribute already implies (cfn-lint W3005).
            role=iam.Role.from_role_arn(self, "FunctionRoleRef", self.role.role_arn, mutable=False),
        )
        # Lambda checks the role's X-Ray permission when it creates a traced function.
        self.function.node.add_dependency(self.policy)
        # API Gateway calls the alias: SnapStart applies to published versions only, never to $LATEST.
        self.alias = lambda_.Alias(self, "Live", alias_name="live", version=self.function.current_version)
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls the SageMaker runtime API (HTTPS, SigV4-signed, IAM-scoped to one "
            "endpoint); it reaches no VPC resources, and a VPC would add NAT or endpoint cost and cold-start time.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaDLQ",
            "API Gateway invokes the function synchronously: every error returns to the caller as an HTTP "
            "response, so there is no failed event to queue.",
        )
        if settings.reserved_concurrency is None:
            acknowledge(
                self.function,
                "NIST.800.53.R5-LambdaConcurrency",
                "api.reserved_concurrency is not set for this stage: the stage throttle "
                f"({settings.throttle_rate_limit:g} requests/s, burst {settings.throttle_burst_limit}) bounds "
                "concurrency; set api.reserved_concurrency to reserve and cap it.",
            )

        # --- the REST API ------------------------------------------------------------------------
        access_logs = logs.LogGroup(self, "AccessLogs", encryption_key=key, retention=retention)
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=f"{stack.stack_name}-front-door",
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
        cfn_api = self.api.node.default_child
        assert isinstance(cfn_api, apigateway.CfnRestApi)
        cfn_api.security_policy = settings.tls_security_policy
        if settings.tls_security_policy.startswith("SecurityPolicy_"):
            cfn_api.endpoint_access_mode = settings.endpoint_access_mode
        stage = self.api.deployment_stage
        # The execution-log group API Gateway would otherwise create itself (unencrypted, kept forever), made with
        # the stage key and the API's retention before the stage that logs to it.
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
        self.execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{STAGE_NAME}",
            encryption_key=key,
            retention=retention,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        stage.node.add_dependency(self.execution_logs)
        if settings.account_cloudwatch_role:
            cloudwatch_role = self.api.node.find_child("CloudWatchRole")
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

        # Request validation: body against the shared schema; parameters (none are declared) too.
        validator = self.api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        model = self.api.add_model(
            "PredictRequest",
            content_type="application/json",
            description="POST /v1/predict body (lambdas/front_door/predict_request.schema.json)",
            schema=to_json_schema(json.loads(REQUEST_SCHEMA.read_text(encoding="utf-8"))),
        )

        authorization_type, authorizer, api_key_required = self._auth(settings)
        v1 = self.api.root.add_resource("v1")
        predict = v1.add_resource("predict")
        health = v1.add_resource("health")
        predict.add_method(
            "POST",
            apigateway.LambdaIntegration(self.alias, proxy=True, allow_test_invoke=False),
            authorization_type=authorization_type,
            authorizer=authorizer,
            api_key_required=api_key_required,
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
            authorization_type=authorization_type,
            authorizer=authorizer,
            api_key_required=api_key_required,
            method_responses=[
                apigateway.MethodResponse(
                    status_code="200",
                    response_parameters=(
                        {"method.response.header.Access-Control-Allow-Origin": True} if len(origins) == 1 else None
                    ),
                )
            ],
        )
        self._acknowledge_auth(settings, [predict.node.find_child("POST"), health.node.find_child("GET")])
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

        for type_name, status, code in GATEWAY_RESPONSES:
            self.api.add_gateway_response(
                "".join(part.title() for part in type_name.split("_")),
                type=apigateway.ResponseType.of(type_name),
                status_code=str(status) if status is not None else None,
                response_headers={"Content-Type": "'application/json'", **_gateway_cors_headers(origins)},
                templates={"application/json": GATEWAY_RESPONSE_TEMPLATE % code},
            )

        self.api_key: apigateway.IApiKey | None = None
        if settings.auth == "api_key":
            self.api_key = apigateway.ApiKey(self, "ApiKey", description="sagebert front door caller key")
            plan = self.api.add_usage_plan(
                "UsagePlan",
                description="sagebert front door: per-key throttle and quota",
                throttle=apigateway.ThrottleSettings(
                    rate_limit=settings.throttle_rate_limit, burst_limit=settings.throttle_burst_limit
                ),
                quota=(
                    apigateway.QuotaSettings(
                        limit=settings.quota.limit, period=apigateway.Period[settings.quota.period]
                    )
                    if settings.quota is not None
                    else None
                ),
                api_stages=[apigateway.UsagePlanPerApiStage(api=self.api, stage=stage)],
            )
            plan.add_api_key(self.api_key)

        if settings.waf is not None:
            self._web_acl(settings.waf, stage, key, retention)
        else:
            reason = (
                "api.waf is not set for this stage, so no web ACL guards it; the stage throttle still limits "
                "request rates. Add api.waf to the stage's config to associate one."
            )
            acknowledge(stage, "AwsSolutions-APIG3", reason)
            acknowledge(stage, "NIST.800.53.R5-APIGWAssociatedWithWAF", reason)

        self.url: str = self.api.url_for_path(PREDICT_PATH)
        self.health_url: str = self.api.url_for_path(HEALTH_PATH)

    def _auth(self, settings: ApiSettings) -> tuple[apigateway.AuthorizationType, apigateway.IAuthorizer | None, bool]:
        """(authorization type, authorizer, API key required) for every non-preflight method."""
        if settings.auth == "iam":
            return apigateway.AuthorizationType.IAM, None, False
        if settings.auth == "api_key":
            return apigateway.AuthorizationType.NONE, None, True
        assert settings.cognito_user_pool_arn is not None  # the config refuses cognito without it
        pool = cognito.UserPool.from_user_pool_arn(self, "UserPool", settings.cognito_user_pool_arn)
        authorizer = apigateway.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[pool])
        return apigateway.AuthorizationType.COGNITO, authorizer, False

    @staticmethod
    def _acknowledge_auth(settings: ApiSettings, methods: list[IConstruct]) -> None:
        for method in methods:
            if settings.auth == "iam":
                acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    "api.auth = iam for this stage: callers sign requests with SigV4 and IAM policies decide "
                    "who may call; no Cognito user pool is involved.",
                )
            elif settings.auth == "api_key":
                reason = (
                    "api.auth = api_key for this stage (refused with production: true): API Gateway checks only that "
                    "the x-api-key header holds a key of the usage plan, for its throttle and quota, and the access "
                    "log records the key's id; the key is a shared secret, not authentication. Choose auth iam or "
                    "cognito to authenticate callers."
                )
                acknowledge(method, "AwsSolutions-APIG4", reason)
                acknowledge(method, "AwsSolutions-COG4", reason)

    def _web_acl(self, waf: WafSettings, stage: apigateway.Stage, key: kms.IKey, retention: logs.RetentionDays) -> None:
        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        def managed(name: str, priority: int, overrides: list[str]) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in overrides
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(name),
            )

        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="sagebert front door",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("SageBertFrontDoor"),
            rules=[
                # SizeRestrictions_BODY blocks bodies over 8 KB, but a predict request may legitimately
                # carry up to api.max_body_bytes (64 texts of up to 10,000 characters): count it instead
                # of blocking, and let the request model and the Lambda enforce the real limits.
                # https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html
                managed("AWSManagedRulesCommonRuleSet", 0, ["SizeRestrictions_BODY"]),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 1, []),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=2,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP", limit=waf.rate_limit, evaluation_window_sec=300
                        )
                    ),
                    visibility_config=visibility("RateLimitPerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        # WAF delivers logs only to a log group whose name starts with aws-waf-logs-, hence the
        # physical name (unique per stage: it is derived from the construct path).
        waf_logs = logs.LogGroup(
            self,
            "WafLogs",
            log_group_name="aws-waf-logs-" + Names.unique_resource_name(self, max_length=200, separator="-"),
            encryption_key=key,
            retention=retention,
            # Kept on update and delete, but not when the stack's first create rolls back: a retained group with
            # this fixed name would make every retry fail with AlreadyExists (DeletionPolicy RetainExceptOnCreate).
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "WafLogging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=waf_logs.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            # WAF logs carry request headers: keep the credentials out of them.
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": header})
                for header in ("authorization", "x-api-key", "x-amz-security-token")
            ],
            # Blocked and counted requests only: the access log already records every request.
            logging_filter={
                "DefaultBehavior": "DROP",
                "Filters": [
                    {
                        "Behavior": "KEEP",
                        "Requirement": "MEETS_ANY",
                        "Conditions": [
                            {"ActionCondition": {"Action": "BLOCK"}},
                            {"ActionCondition": {"Action": "COUNT"}},
                        ],
                    }
                ],
            },
        )


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
