"""ApiAuth: how callers of the front door are let in, by the stage's `api.auth`.

- `iam`: methods with AWS_IAM authorization (SigV4-signed requests; IAM policies decide who may call);
- `api_key`: methods that require an API key, the key, and a usage plan on the stage with the per-key throttle
  and quota (a shared secret for metering, not authentication: production refuses it);
- `cognito`: a Cognito user pools authorizer on the configured user pool.

Also the cdk-nag acknowledgements each choice needs on the methods it guards, with their reasons.
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cognito as cognito
from constructs import Construct, IConstruct

from infra.config.api import ApiSettings
from infra.operations.compliance import acknowledge


class ApiAuth:
    """The auth of one REST API. Built before its methods (the Cognito authorizer, in `scope`): its
    `authorization_type`, `authorizer` and `api_key_required` go on every non-preflight method, `acknowledge` then
    takes those methods, and `add_usage_plan` binds the API key to the stage (api_key only).

    Not a construct of its own: it adds its resources to `scope` (InferenceApi), so they keep the logical IDs
    they had when InferenceApi created them itself; a construct level between would rename, and so replace,
    every deployed one.

    Exposes `api_key` (None unless auth is api_key, and until `add_usage_plan`).
    """

    def __init__(self, scope: Construct, *, settings: ApiSettings) -> None:
        self._scope = scope
        self._settings = settings
        self.api_key: apigateway.IApiKey | None = None
        self.authorizer: apigateway.IAuthorizer | None = None
        if settings.auth == "iam":
            self.authorization_type = apigateway.AuthorizationType.IAM
        elif settings.auth == "api_key":
            self.authorization_type = apigateway.AuthorizationType.NONE
        else:
            assert settings.cognito_user_pool_arn is not None  # the config refuses cognito without it
            pool = cognito.UserPool.from_user_pool_arn(scope, "UserPool", settings.cognito_user_pool_arn)
            self.authorizer = apigateway.CognitoUserPoolsAuthorizer(scope, "Authorizer", cognito_user_pools=[pool])
            self.authorization_type = apigateway.AuthorizationType.COGNITO
        self.api_key_required = settings.auth == "api_key"

    def acknowledge(self, methods: list[IConstruct]) -> None:
        """The cdk-nag findings the stage's auth leaves on these methods, acknowledged with the reason."""
        for method in methods:
            if self._settings.auth == "iam":
                acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    "api.auth = iam for this stage: callers sign requests with SigV4 and IAM policies decide "
                    "who may call; no Cognito user pool is involved.",
                )
            elif self._settings.auth == "api_key":
                reason = (
                    "api.auth = api_key for this stage (refused with production: true): API Gateway checks only that "
                    "the x-api-key header holds a key of the usage plan, for its throttle and quota, and the access "
                    "log records the key's id; the key is a shared secret, not authentication. Choose auth iam or "
                    "cognito to authenticate callers."
                )
                acknowledge(method, "AwsSolutions-APIG4", reason)
                acknowledge(method, "AwsSolutions-COG4", reason)

    def add_usage_plan(self, api: apigateway.RestApi, stage: apigateway.Stage) -> None:
        """With auth api_key: the caller key, and the usage plan that applies the stage's throttle and the
        configured quota to it. Nothing otherwise."""
        settings = self._settings
        if settings.auth != "api_key":
            return
        self.api_key = apigateway.ApiKey(self._scope, "ApiKey", description="sagebert front door caller key")
        plan = api.add_usage_plan(
            "UsagePlan",
            description="sagebert front door: per-key throttle and quota",
            throttle=apigateway.ThrottleSettings(
                rate_limit=settings.throttle_rate_limit, burst_limit=settings.throttle_burst_limit
            ),
            quota=(
                apigateway.QuotaSettings(limit=settings.quota.limit, period=apigateway.Period[settings.quota.period])
                if settings.quota is not None
                else None
            ),
            api_stages=[apigateway.UsagePlanPerApiStage(api=api, stage=stage)],
        )
        plan.add_api_key(self.api_key)
