"""The `api:` section: the API front door (a regional API Gateway REST API and the Lambda that calls the
endpoint), with its usage-plan quota and WAF web ACL.

lambdas/front_door/settings.py reads what infra/online/inference_api.py passes on from here; it may not
import infra, so it keeps its own copy of the defaults and the time budget: tests/unit/test_front_door.py
keeps those equal, tests/infra/test_inference_api.py the environment variables that carry them.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.config.base import API_INTEGRATION_TIMEOUT_S, VARIANT_NAME, LogRetentionDays, Strict

# The front-door Lambda's worst case (every attempt connecting and reading to its timeout, plus 1 s of its own
# work) must end before API Gateway's integration timeout, with a second to spare for API Gateway to turn a
# Lambda timeout into our 504.
LAMBDA_BUDGET_S = API_INTEGRATION_TIMEOUT_S - 1
# InvokeEndpoint accepts at most 6 MB of payload
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html).
INVOKE_ENDPOINT_MAX_BYTES = 6_000_000
# The security policies API Gateway accepts for a regional (or private) REST API's own endpoint, TLS 1.2 or newer:
# every value of botocore's apigateway SecurityPolicy enum except TLS_1_0 and the edge-optimized (_EDGE) ones.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-security-policies-list.html
TlsSecurityPolicy = Literal[
    "SecurityPolicy_TLS13_1_2_2021_06",
    "SecurityPolicy_TLS13_1_3_2025_09",
    "SecurityPolicy_TLS13_1_3_FIPS_2025_09",
    "SecurityPolicy_TLS13_1_2_PFS_PQ_2025_09",
    "SecurityPolicy_TLS13_1_2_FIPS_PQ_2025_09",
    "SecurityPolicy_TLS13_1_2_FIPS_PFS_PQ_2025_09",
    "SecurityPolicy_TLS13_1_2_PQ_2025_09",
    "TLS_1_2",
]
COGNITO_USER_POOL_ARN = re.compile(
    r"^arn:aws[-a-z]*:cognito-idp:[a-z]{2}(-[a-z]+)+-\d:\d{12}:userpool/[a-z]{2}(-[a-z]+)+-\d_[0-9A-Za-z]+$"
)
# A browser origin: scheme, host and optional port; no path. https only, except a local development
# server on http://localhost or http://127.0.0.1.
CORS_ORIGIN = re.compile(
    r"^(https://[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|http://(localhost|127\.0\.0\.1))(:\d{1,5})?$"
)


class QuotaSettings(Strict):
    """A usage-plan quota: requests per API key per period."""

    limit: int = Field(
        gt=0,
        description="Requests each API key may make per period (usage-plan quota). The quota section is optional "
        "and allowed only with api.auth: api_key.",
    )
    period: Literal["DAY", "WEEK", "MONTH"] = Field(description="The period the quota counts over.")


class WafSettings(Strict):
    """A regional AWS WAF web ACL in front of the API stage."""

    rate_limit: int = Field(
        2000,
        ge=10,
        le=2_000_000_000,
        description="With the api.waf section present, a regional WAFv2 web ACL guards the stage (AWS managed "
        "common and known-bad-inputs rule sets, plus this rate-based rule): requests per 5 minutes per client IP "
        "before WAF blocks that IP. Absent: no web ACL.",
    )


class ApiSettings(Strict):
    """The API front door: a regional API Gateway REST API and a Lambda that calls the endpoint."""

    auth: Literal["iam", "api_key", "cognito"] = Field(
        "iam",
        description="How callers authenticate: iam (SigV4-signed requests, allowed by IAM policy), api_key "
        "(x-api-key header; an API key and usage plan are created) or cognito (a Cognito user pool JWT in the "
        "Authorization header).",
    )
    cognito_user_pool_arn: str | None = Field(
        None,
        description="ARN of the Cognito user pool whose tokens are accepted; required with auth: cognito, "
        "refused otherwise.",
    )
    throttle_rate_limit: float = Field(
        50,
        gt=0,
        description="Stage-wide steady-state request rate (requests per second) before API Gateway answers 429; "
        "with auth: api_key also each key's rate in the usage plan.",
    )
    throttle_burst_limit: int = Field(
        100,
        ge=1,
        description="Stage-wide burst (requests) API Gateway admits above the steady rate; with auth: api_key "
        "also each key's burst in the usage plan.",
    )
    quota: QuotaSettings | None = Field(
        None, description="Usage-plan quota per API key (auth: api_key only; absent: no quota)."
    )
    waf: WafSettings | None = Field(None, description="A regional WAFv2 web ACL on the stage (absent: none).")
    cors_allow_origins: list[str] = Field(
        [],
        description="Browser origins allowed to call the API (CORS), each https://host[:port] or "
        "http://localhost[:port]; '*' (any origin) is refused in production. Empty: no CORS (no preflight, no "
        "CORS headers).",
    )
    read_timeout_s: float = Field(
        8,
        gt=0,
        description="The Lambda's sagemaker-runtime client: seconds to wait for the endpoint's answer.",
    )
    connect_timeout_s: float = Field(
        2,
        gt=0,
        description="The Lambda's sagemaker-runtime client: seconds to wait for a connection.",
    )
    max_attempts: int = Field(
        2,
        ge=1,
        le=3,
        description="The front door's InvokeEndpoint attempts per request, the first included; it tries again only "
        "after throttling or a connection that never opened, never after a read timeout. "
        f"max_attempts * (connect_timeout_s + read_timeout_s) + 1 must be at most {LAMBDA_BUDGET_S} s (API Gateway "
        f"gives up after {API_INTEGRATION_TIMEOUT_S} s); the Lambda's timeout is that worst case, rounded up.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=INVOKE_ENDPOINT_MAX_BYTES,
        description=f"Largest request body (bytes) the Lambda forwards; at most {INVOKE_ENDPOINT_MAX_BYTES} "
        "(InvokeEndpoint's 6 MB payload limit).",
    )
    reserved_concurrency: int | None = Field(
        None,
        ge=1,
        description="Reserved concurrent executions of the Lambda: caps concurrent calls to the endpoint and "
        "keeps that capacity for the API (null: the account's unreserved pool, bounded by the stage throttle).",
    )
    memory_mb: int = Field(512, ge=128, le=10240, description="Lambda memory (MB); CPU scales with it.")
    target_variant: str | None = Field(
        None,
        pattern=VARIANT_NAME,
        description="Production variant every request is sent to (TargetVariant); must be endpoint.variant_name "
        "(null: SageMaker spreads requests by variant weight).",
    )
    log_retention_days: LogRetentionDays = Field(
        90,
        description="Days CloudWatch keeps the API's access and execution logs, the WAF's and the Lambda's logs (a "
        "value CloudWatch Logs accepts).",
    )
    tracing: bool = Field(
        True,
        description="AWS X-Ray for the front door: API Gateway stage tracing, Lambda active tracing, and an X-Ray "
        "SDK subsegment for each InvokeEndpoint call. Importing the SDK adds about 190 ms to the Lambda's init "
        "(`make bench-api` measures it). false: no tracing, and the SDK is never imported.",
    )
    snap_start: bool = Field(
        True,
        description="Lambda SnapStart: the front door's init (imports, settings, the SageMaker client) runs once "
        "when a version is published, and new execution environments resume from its snapshot, so a cold start "
        "skips the init. For Python it is billed: a cache charge per GB-second of memory_mb for as long as the "
        "version is active (at least 3 hours; about USD 1.95 a month at 512 MB in us-east-1) and a restore "
        "charge per GB each time an environment is resumed (about USD 0.00007 at 512 MB). Old versions are "
        "deleted on update, so only the live one is cached. false: off (init on every cold start).",
    )
    tls_security_policy: TlsSecurityPolicy = Field(
        "SecurityPolicy_TLS13_1_2_2021_06",
        description="The REST API's TLS security policy on its execute-api endpoint (CreateRestApi's securityPolicy): "
        "the TLS versions and cipher suites API Gateway accepts from callers. Default: TLS 1.3 and 1.2 (a regional "
        "API left without one gets TLS_1_0). SecurityPolicy_TLS13_1_3_2025_09: TLS 1.3 only; the _FIPS_ and _PQ_ "
        "policies add FIPS ciphers and post-quantum key exchange; TLS_1_2 is the legacy TLS 1.2 policy.",
    )
    endpoint_access_mode: Literal["STRICT", "BASIC"] = Field(
        "STRICT",
        description="The REST API's endpoint access mode, required with a SecurityPolicy_ policy (ignored with "
        "TLS_1_2): STRICT refuses requests whose TLS SNI does not name this API's regional endpoint; BASIC does "
        "not check.",
    )
    account_cloudwatch_role: bool = Field(
        True,
        description="Create API Gateway's account-level CloudWatch Logs role, which execution logging needs. "
        "It is one setting per account and region, shared by every API there: set false if the account already "
        "has one (another stack or stage manages it).",
    )

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for index, origin in enumerate(origins):
            if origin != "*" and not CORS_ORIGIN.match(origin):
                raise ValueError(
                    f"api.cors_allow_origins[{index}] = {origin!r} is not a browser origin; use "
                    "https://host[:port] (no path, no trailing slash), http://localhost[:port] for local "
                    "development, or '*' for any origin (not in production)."
                )
        if "*" in origins and len(origins) > 1:
            raise ValueError(
                f"api.cors_allow_origins = {origins!r}: '*' already allows every origin; use it alone or list "
                "the origins without it."
            )
        if len(set(origins)) != len(origins):
            raise ValueError(f"api.cors_allow_origins = {origins!r} lists an origin twice; list each once.")
        return origins

    @model_validator(mode="after")
    def _cross_checks(self) -> ApiSettings:
        if self.auth == "cognito" and self.cognito_user_pool_arn is None:
            raise ValueError(
                "api.auth = cognito without api.cognito_user_pool_arn; name the user pool whose tokens the API "
                "accepts, e.g. arn:aws:cognito-idp:eu-west-1:111122223333:userpool/eu-west-1_AbCdEf123."
            )
        if self.auth != "cognito" and self.cognito_user_pool_arn is not None:
            raise ValueError(
                f"api.cognito_user_pool_arn is set with api.auth = {self.auth}; a user pool is only used with "
                "auth: cognito. Remove api.cognito_user_pool_arn or set api.auth: cognito."
            )
        if self.cognito_user_pool_arn is not None and not COGNITO_USER_POOL_ARN.match(self.cognito_user_pool_arn):
            raise ValueError(
                f"api.cognito_user_pool_arn = {self.cognito_user_pool_arn!r} is not a Cognito user pool ARN; "
                "expected arn:aws:cognito-idp:<region>:<12-digit account>:userpool/<region>_<id>."
            )
        if self.quota is not None and self.auth != "api_key":
            raise ValueError(
                f"api.quota is set with api.auth = {self.auth}; a usage-plan quota is counted per API key, so it "
                "needs api.auth: api_key. Remove api.quota or set api.auth: api_key."
            )
        worst = self.worst_case_s
        if worst > LAMBDA_BUDGET_S:
            raise ValueError(
                f"api: max_attempts * (connect_timeout_s + read_timeout_s) + 1 = {self.max_attempts} * "
                f"({self.connect_timeout_s:g} + {self.read_timeout_s:g}) + 1 = {worst:g} s, over {LAMBDA_BUDGET_S} s: "
                f"API Gateway ends the request after {API_INTEGRATION_TIMEOUT_S} s, so later attempts would "
                "never be answered. Lower api.read_timeout_s, api.connect_timeout_s or api.max_attempts."
            )
        return self

    @property
    def worst_case_s(self) -> float:
        """Every attempt connecting and reading to its timeout, plus 1 s of the Lambda's own work."""
        return self.max_attempts * (self.connect_timeout_s + self.read_timeout_s) + 1

    @property
    def lambda_timeout_s(self) -> int:
        """The Lambda's timeout: the worst case rounded up to whole seconds (at most LAMBDA_BUDGET_S)."""
        return math.ceil(self.worst_case_s)
