"""Typed per-environment configuration: one YAML file per stage in config/, validated at synth.

Every key is documented by its `description`; the config reference in docs/configuration.md is generated from
these models (`python -m sagebert config-reference`) and a test keeps the two in step.
A bad file fails synth with one message naming the file, each bad key, its value and what is
allowed. A capability a stage does not use is absent from its file; nothing here switches on the
stage's name.
"""

from __future__ import annotations

import math
import re
import types
import typing
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from infra.catalog import compute_profiles
from infra.catalog import images as image_catalog
from infra.catalog import sagemaker_api as api
from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_REGIONS
from infra.config.base import API_INTEGRATION_TIMEOUT_S, EMAIL, EXPIRY_DAYS, LogRetentionDays
from infra.config.base import LOG_RETENTION_DAYS as LOG_RETENTION_DAYS  # re-exported: the README and tests read it here
from infra.config.base import Strict as _Strict
from infra.config.endpoint import VARIANT_NAME, EndpointSettings
from infra.config.model import BundledModel, HubModel, ModelSource
from infra.config.monitoring import MonitoringSettings
from infra.config.traffic import TrafficSettings

STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


# API Gateway REST integrations time out after 29 s
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html); the front-door Lambda's
# worst case (every attempt connecting and reading to its timeout, plus 1 s of its own work) must end
# before that, with a second to spare for API Gateway to turn a Lambda timeout into our 504.
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
# EventBridge Scheduler's cron expression: cron(minutes hours day-of-month month day-of-week year).
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
SCHEDULER_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
CRON_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#\-]+$")
# A key prefix in the artifact bucket: path segments of safe characters, each ending in "/". No IAM
# wildcard characters (* ?), since the prefixes are written into IAM resource ARNs and conditions.
KEY_PREFIX = r"^([A-Za-z0-9_.-]+/)+$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
# CreateTransformJob: at most 16 environment variables; sagebert sets SAGEBERT_BAD_LINES itself.
# MaxPayloadInMB <= 100, and MaxConcurrentTransforms * MaxPayloadInMB <= 100 as well.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html
TRANSFORM_ENVIRONMENT_MAX = api.stated_maximum("CreateTransformJobRequest.Environment")
TRANSFORM_PAYLOAD_BUDGET_MB = 100
BAD_LINES_VARIABLE = "SAGEBERT_BAD_LINES"
CORS_ORIGIN = re.compile(
    r"^(https://[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|http://(localhost|127\.0\.0\.1))(:\d{1,5})?$"
)


class ConfigError(Exception):
    """A stage config file that cannot be used; the message says what, where and what to do."""


class TrainingSettings(_Strict):
    """A SageMaker training job for model_code/train.py (`python -m sagebert train --remote`).

    Not a CDK resource: a training job is launched on demand, not deployed.
    """

    role_arn: str = Field(
        description="IAM role the training job runs as (SageMaker execution role).",
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$",
    )
    input_path: str = Field(
        description="S3 prefix holding the channels as folders: train/, validation/ and (optional) test/, "
        "each with one CSV or JSON Lines file.",
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
    )
    output_path: str = Field(
        description="S3 prefix for the job's model.tar.gz and output.tar.gz (metrics.json).",
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
    )
    base_model: str = Field(
        "bundled",
        pattern=r"^(bundled|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*)$",
        description="Base encoder, mounted as the job's model channel: `bundled` (sagebert uploads the bundled "
        "all-MiniLM-L6-v2 under output_path) or an s3:// prefix holding a Hugging Face model folder.",
    )
    instance_type: str = Field(
        "ml.g4dn.xlarge",
        pattern=r"^ml\.(g4dn|g5|g6|p3|p4d|p5)\.[a-z0-9]+$",
        description="Training instance type. The Hugging Face training images are GPU-only.",
    )
    instance_count: int = Field(1, ge=1, le=1, description="Instances; train.py runs on one (no distribution).")
    volume_size_gb: int = Field(
        30,
        # The API model sets no maximum; EBS volumes end at 16 TiB.
        ge=1,
        le=16384,
        description="EBS volume per instance (GB).",
    )
    max_run_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="Stop the job after this long.")
    kms_key_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$",
        description="KMS key for the output and the training volume (default: AWS managed keys).",
    )
    transformers_version: str = Field("4.49.0", description="Hugging Face training image: transformers version.")
    pytorch_version: str = Field("2.5.1", description="Hugging Face training image: PyTorch version.")
    py_version: str = Field("py311", description="Hugging Face training image: Python version.")
    hyperparameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra train.py arguments, e.g. {epochs: 4, learning-rate: 5e-5}.",
    )

    @field_validator("instance_type")
    @classmethod
    def _training_type(cls, instance_type: str) -> str:
        api.check_instance_type("training.instance_type", instance_type, "TrainingInstanceType")
        return instance_type


class QuotaSettings(_Strict):
    """A usage-plan quota: requests per API key per period."""

    limit: int = Field(
        gt=0,
        description="Requests each API key may make per period (usage-plan quota). The quota section is optional "
        "and allowed only with api.auth: api_key.",
    )
    period: Literal["DAY", "WEEK", "MONTH"] = Field(description="The period the quota counts over.")


class WafSettings(_Strict):
    """A regional AWS WAF web ACL in front of the API stage."""

    rate_limit: int = Field(
        2000,
        ge=10,
        le=2_000_000_000,
        description="With the api.waf section present, a regional WAFv2 web ACL guards the stage (AWS managed "
        "common and known-bad-inputs rule sets, plus this rate-based rule): requests per 5 minutes per client IP "
        "before WAF blocks that IP. Absent: no web ACL.",
    )


class ApiSettings(_Strict):
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
        "max_attempts * (connect_timeout_s + read_timeout_s) + 1 must be at most 28 s (API Gateway gives up "
        "after 29 s); the Lambda's timeout is that worst case, rounded up.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        le=INVOKE_ENDPOINT_MAX_BYTES,
        description="Largest request body (bytes) the Lambda forwards; at most 6000000 (InvokeEndpoint's 6 MB "
        "payload limit).",
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
        """The Lambda's timeout: the worst case rounded up to whole seconds (at most 28)."""
        return math.ceil(self.worst_case_s)


class BatchSettings(_Strict):
    """Scheduled batch transform: EventBridge Scheduler starts a Step Functions state machine that runs a
    SageMaker transform job over the day's JSON Lines input on the stage's model."""

    schedule: str = Field(
        "cron(0 2 * * ? *)",
        description="When runs start: an EventBridge Scheduler cron expression, cron(minutes hours day-of-month "
        "month day-of-week year), with ? in day-of-month or day-of-week. Default: every day at 02:00.",
    )
    timezone: str = Field(
        "UTC",
        description="IANA time zone of the schedule (e.g. Europe/Berlin). A run's date (the YYYY-MM-DD in its "
        "input and output prefixes) is the scheduled time's date in this time zone, daylight saving included "
        "(changes through 2050 are built in; later ones keep the offset in force then).",
    )
    input_prefix: str = Field(
        "batch/input/",
        pattern=KEY_PREFIX,
        description="Key prefix in the stage's artifact bucket (KMS-encrypted) that holds the input: a run reads "
        "every object under `<input_prefix><YYYY-MM-DD>/`, one text per line (JSON Lines). Ends with /.",
    )
    output_prefix: str = Field(
        "batch/output/",
        pattern=KEY_PREFIX,
        description="Key prefix in the artifact bucket for results: a run writes `<output_prefix><YYYY-MM-DD>/"
        "<execution name>/` (a `.out` object per input object and `_manifest.json`, or `_skipped.json` when there "
        "was no input), so a run never overwrites an earlier one. Ends with /; must not overlap input_prefix.",
    )
    expire_after_days: int = Field(
        90,
        ge=EXPIRY_DAYS[0],
        le=EXPIRY_DAYS[1],
        description="Days S3 keeps objects under input_prefix and output_prefix before a lifecycle rule deletes them "
        "(older versions go 30 days later). Copy results you keep longer elsewhere.",
    )
    instance_type: str = Field(
        "ml.c6i.xlarge",
        description="Transform instance type, ml.<family>.<size>; CPU families: "
        + ", ".join(compute_profiles.PROFILES["cpu"].families)
        + ".",
    )
    instance_count: int = Field(
        1,
        ge=api.minimum("TransformResources.InstanceCount"),
        le=100,  # sagebert's cap: the API sets none
        description="Transform instances; input objects are spread over them.",
    )
    max_payload_mb: int = Field(
        6,
        ge=1,
        le=TRANSFORM_PAYLOAD_BUDGET_MB,
        description="MaxPayloadInMB: lines are packed into requests of at most this many MB (MultiRecord); a line "
        "larger than this fails the job.",
    )
    max_concurrent_transforms: int = Field(
        0,
        ge=api.minimum("CreateTransformJobRequest.MaxConcurrentTransforms"),
        le=TRANSFORM_PAYLOAD_BUDGET_MB,
        description="Parallel requests per instance (MaxConcurrentTransforms); 0 lets SageMaker choose. "
        "max_concurrent_transforms * max_payload_mb must be at most 100.",
    )
    invocation_timeout_s: int = Field(
        600,
        ge=api.minimum("ModelClientConfig.InvocationsTimeoutInSeconds"),
        le=api.maximum("ModelClientConfig.InvocationsTimeoutInSeconds"),
        description="Seconds the container has to answer one request (ModelClientConfig).",
    )
    invocation_max_retries: int = Field(
        3,
        ge=api.minimum("ModelClientConfig.InvocationsMaxRetries"),
        le=api.maximum("ModelClientConfig.InvocationsMaxRetries"),
        description="Retries of a request that failed or timed out (ModelClientConfig).",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables for the model container in transform jobs (at most 15; "
        f"`{BAD_LINES_VARIABLE}` comes from bad_lines).",
    )
    bad_lines: Literal["mark", "fail"] = Field(
        "mark",
        description="A line that is not a text: mark answers it with an error record and carries on; fail fails "
        f"the job. Passed to the container as `{BAD_LINES_VARIABLE}`.",
    )
    retry_attempts: int = Field(
        2,
        ge=0,
        le=185,
        description="Times EventBridge Scheduler retries starting a run it could not start; then the event goes to "
        "the dead-letter queue.",
    )
    max_event_age_s: int = Field(
        3600,
        ge=60,
        le=86400,
        description="Seconds EventBridge Scheduler keeps trying to start a run before it goes to the dead-letter "
        "queue.",
    )
    capacity_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Times a run starts a new transform job after one failed for lack of capacity (waiting 5, 10, "
        "20 ... minutes, at most an hour, in between); then the run fails.",
    )
    alarm_email: str | None = Field(
        None,
        pattern=EMAIL,
        description="Email address subscribed to the failure topic (it must confirm the subscription). Null: no "
        "subscription; subscribe to the batch stack's AlarmTopicArn output yourself.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str) -> str:
        match = SCHEDULER_CRON.match(schedule.strip())
        fields = match["fields"].split() if match else []
        example = "e.g. cron(0 2 * * ? *) for 02:00 every day"
        if len(fields) != len(CRON_FIELDS):
            raise ValueError(
                f"batch.schedule = {schedule!r} is not an EventBridge Scheduler cron expression; write "
                f"cron({' '.join(CRON_FIELDS)}), six fields, {example}."
            )
        for name, field in zip(CRON_FIELDS, fields, strict=True):
            if not CRON_FIELD.match(field):
                raise ValueError(
                    f"batch.schedule = {schedule!r}: the {name} field {field!r} has characters cron does not allow; "
                    f"use digits, names and * ? , - / L W #, {example}."
                )
        day_of_month, day_of_week = fields[2], fields[4]
        if (day_of_month == "?") == (day_of_week == "?"):
            raise ValueError(
                f"batch.schedule = {schedule!r}: exactly one of day-of-month ({day_of_month!r}) and day-of-week "
                f"({day_of_week!r}) must be ?, {example}."
            )
        return schedule.strip()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, timezone: str) -> str:
        if timezone != "UTC" and timezone not in zoneinfo.available_timezones():
            raise ValueError(
                f"batch.timezone = {timezone!r} is not an IANA time zone name; use e.g. UTC, Europe/Berlin or "
                "America/New_York."
            )
        return timezone

    @field_validator("environment")
    @classmethod
    def _environment(cls, environment: dict[str, str]) -> dict[str, str]:
        for name in environment:
            if not ENV_NAME.match(name):
                raise ValueError(
                    f"batch.environment: {name!r} is not an environment variable name; use letters, digits and _, "
                    "not starting with a digit."
                )
        if BAD_LINES_VARIABLE in environment:
            raise ValueError(
                f"batch.environment sets {BAD_LINES_VARIABLE}; set batch.bad_lines (mark or fail) instead."
            )
        if len(environment) > TRANSFORM_ENVIRONMENT_MAX - 1:
            raise ValueError(
                f"batch.environment has {len(environment)} variables; a transform job takes at most "
                f"{TRANSFORM_ENVIRONMENT_MAX}, and {BAD_LINES_VARIABLE} is one of them: keep at most "
                f"{TRANSFORM_ENVIRONMENT_MAX - 1}."
            )
        return environment

    @model_validator(mode="after")
    def _cross_checks(self) -> BatchSettings:
        compute_profiles.check_instance("batch.instance_type", self.instance_type, "cpu")
        api.check_instance_type("batch.instance_type", self.instance_type, "TransformInstanceType")
        if self.input_prefix.startswith(self.output_prefix) or self.output_prefix.startswith(self.input_prefix):
            raise ValueError(
                f"batch.input_prefix = {self.input_prefix!r} and batch.output_prefix = {self.output_prefix!r} "
                "overlap: a run would read its own or earlier results as input. Use separate prefixes, e.g. "
                "batch/input/ and batch/output/."
            )
        budget = self.max_concurrent_transforms * self.max_payload_mb
        if budget > TRANSFORM_PAYLOAD_BUDGET_MB:
            raise ValueError(
                f"batch: max_concurrent_transforms * max_payload_mb = {self.max_concurrent_transforms} * "
                f"{self.max_payload_mb} = {budget}, over SageMaker's {TRANSFORM_PAYLOAD_BUDGET_MB} MB; lower one of "
                "them (or set max_concurrent_transforms: 0 to let SageMaker choose)."
            )
        return self

    @property
    def container_environment(self) -> dict[str, str]:
        """The transform job's Environment: the configured variables and SAGEBERT_BAD_LINES."""
        return {**self.environment, BAD_LINES_VARIABLE: self.bad_lines}


class StageConfig(_Strict):
    """One environment (stage). The file name is the stage name: config/dev.yaml -> SageBert-dev."""

    account: str | None = Field(
        None,
        pattern=r"^\d{12}$",
        description="AWS account id (12 digits). With region absent too, the stacks are "
        "environment-agnostic and deploy wherever the CLI's credentials point.",
    )
    region: str | None = Field(
        None,
        description="AWS region, e.g. eu-west-1; must be a commercial region in the image catalog.",
    )
    production: bool = Field(
        False,
        description="Production safeguards: >= 2 endpoint instances, data retained on stack "
        "deletion, no Hub downloads unless explicitly allowed, an API (if any) with auth iam or cognito (never "
        "api_key) behind a WAF web ACL (api.waf).",
    )
    retain_data: bool = Field(
        True,
        description="Keep the KMS key and buckets when the stack is deleted (must be true in production).",
    )
    model: ModelSource = Field(
        default_factory=lambda: BundledModel(source="bundled"),
        description="Where the model data comes from: bundled (an archive built here, uploaded as a CDK "
        "asset), s3 (an existing object) or hub (downloaded by the container at start-up).",
    )
    endpoint: EndpointSettings = Field(
        default_factory=EndpointSettings,
        description="The real-time endpoint.",
    )
    training: TrainingSettings | None = Field(
        None, description="Remote fine-tuning for this stage (absent: no remote training)."
    )
    api: ApiSettings | None = Field(None, description="The API front door for the endpoint (absent: no API stack).")
    batch: BatchSettings | None = Field(
        None, description="Scheduled batch transform on the stage's model (absent: no batch stack)."
    )
    monitoring: MonitoringSettings | None = Field(
        None,
        description="A CloudWatch dashboard and alarms (to an SNS topic) for the stage's API, endpoint and batch "
        "runs (absent: no monitoring stack).",
    )
    traffic: TrafficSettings | None = Field(
        None,
        description="Expected load, for the cost report only (`make cost`): requests per month, texts per request, "
        "peak rate, batch records per run (absent: the report prices the deployed resources only).",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags added to every resource of the stage.")

    @model_validator(mode="after")
    def _cross_checks(self) -> StageConfig:
        if self.region is not None and self.region not in image_catalog.regions():
            raise ValueError(
                f"region = {self.region!r} has no Hugging Face DLC registry in the image catalog; "
                f"allowed: {', '.join(sorted(image_catalog.regions()))}."
            )
        needs_powertools = [key for key in ("api", "batch") if getattr(self, key) is not None]
        if self.region is not None and needs_powertools and self.region not in POWERTOOLS_REGIONS:
            allowed = ", ".join(sorted(POWERTOOLS_REGIONS & image_catalog.regions()))
            raise ValueError(
                f"region = {self.region!r} with {' and '.join(needs_powertools)}: the Powertools for AWS Lambda "
                "layer, which their functions load, is not published there (no SSM parameter "
                f"{POWERTOOLS_LAYER_PARAMETER}); allowed: {allowed}. Deploy the stage to one of them, or remove "
                f"{' and '.join(needs_powertools)}."
            )
        if self.endpoint.compute == "inferentia":
            neuron = image_catalog.find_neuron(self.model.container.transformers_version)
            if self.region is not None and self.region not in neuron.registries:
                raise ValueError(
                    f"region = {self.region!r} with endpoint.compute = inferentia: the Hugging Face Neuron image has "
                    "no "
                    f"registry there; allowed: {', '.join(sorted(neuron.registries))}."
                )
        if self.production:
            self._production_checks()
        self._endpoint_checks()
        return self

    def _production_checks(self) -> None:
        endpoint = self.endpoint
        if endpoint.profile.instances and endpoint.instance_count < 2:
            raise ValueError(
                f"endpoint.instance_count = {endpoint.instance_count} with production: true; "
                "a production endpoint needs at least 2 instances so SageMaker spreads them "
                "over Availability Zones. Set endpoint.instance_count: 2 or more."
            )
        if endpoint.autoscaling is not None and endpoint.autoscaling.min_instances < 2 and endpoint.compute != "async":
            raise ValueError(
                f"endpoint.autoscaling.min_instances = {endpoint.autoscaling.min_instances} with production: true; "
                "scaling in below 2 instances leaves one Availability Zone. Set min_instances: 2 or more."
            )
        if not self.retain_data:
            raise ValueError(
                "retain_data = false with production: true; production data must survive a "
                "stack deletion. Remove retain_data or set it to true."
            )
        for key, model in self._models():
            if isinstance(model, HubModel) and not model.allow_download_in_production:
                raise ValueError(
                    f"{key}.source = hub ({model.model_id}) with production: true; every "
                    "start-up would depend on the Hugging Face Hub. Package the model (source: "
                    f"bundled or s3), or set {key}.allow_download_in_production: true."
                )
        if self.api is not None and self.api.auth == "api_key":
            raise ValueError(
                "api.auth = api_key with production: true; an API key identifies a caller for quotas but is no "
                "authentication (anyone holding the key's value is that caller, and it travels in every request). "
                "Use api.auth: iam (SigV4) or cognito. "
                "https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html"
            )
        if self.api is not None and self.api.waf is None:
            raise ValueError(
                "api.waf is missing with production: true; a production API needs a WAF web ACL (managed rules and a "
                "per-IP rate limit) in front of it. Add `waf: {rate_limit: 2000}` under api."
            )
        if self.api is not None and "*" in self.api.cors_allow_origins:
            raise ValueError(
                "api.cors_allow_origins = ['*'] with production: true; a production API lists the origins "
                "that may call it from a browser. Name them, e.g. ['https://app.example.com']."
            )

    def _endpoint_checks(self) -> None:
        endpoint = self.endpoint
        if self.api is not None and not endpoint.profile.realtime:
            raise ValueError(
                "api is set with endpoint.compute = async: the front door calls InvokeEndpoint, which async endpoints "
                "do not answer (they take InvokeEndpointAsync with the input in S3). Remove the api section or use a "
                "real-time profile (cpu, gpu, inferentia, serverless)."
            )
        variants = [endpoint.variant_name, *(v.name for v in endpoint.variants)]
        if self.api is not None and self.api.target_variant is not None and self.api.target_variant not in variants:
            raise ValueError(
                f"api.target_variant = {self.api.target_variant!r} is not a production variant of the endpoint "
                f"({', '.join(variants)}); InvokeEndpoint would fail for every request. Name one of them or remove it."
            )
        for key, model in self._models():
            if (
                endpoint.compute == "serverless"
                and model.network_isolation
                and "network_isolation" in model.model_fields_set
            ):
                raise ValueError(
                    f"{key}.network_isolation = true with endpoint.compute = serverless: serverless endpoints do not "
                    f"support network isolation. Remove {key}.network_isolation (serverless then runs without it)."
                )
            if endpoint.vpc is not None and isinstance(model, HubModel):
                raise ValueError(
                    f"{key}.source = hub with endpoint.vpc: the VPC has no internet route, so the container cannot "
                    "download from the Hub. Package the model (source: bundled or s3) or remove endpoint.vpc."
                )
        if endpoint.compute == "inferentia" and isinstance(self.model, HubModel):
            raise ValueError(
                "model.source = hub with endpoint.compute = inferentia: sagebert's Neuron path runs the packaged "
                "handler (code/inference.py), which a Hub model does not have. Package the model (source: bundled "
                "or s3)."
            )

    def _models(self) -> list[tuple[str, ModelSource]]:
        """(config key, model) for the stage model and every variant's model."""
        found: list[tuple[str, ModelSource]] = [("model", self.model)]
        found += [(f"endpoint.variants[{i}].model", v.model) for i, v in enumerate(self.endpoint.variants)]
        if self.endpoint.shadow is not None:
            found.append(("endpoint.shadow.model", self.endpoint.shadow.model))
        return found

    def network_isolation(self, model: ModelSource) -> bool:
        """EnableNetworkIsolation for this model: its setting, except serverless (which does not support it)
        turns the default off."""
        return model.network_isolation and self.endpoint.compute != "serverless"


def load_stage_config(path: Path) -> StageConfig:
    """Read and validate one stage file; raise ConfigError naming the file and every bad key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}.")
    try:
        return StageConfig.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(error) for error in err.errors()]
        raise ConfigError(f"{path}: invalid configuration:\n" + "\n".join(f"  - {x}" for x in lines)) from None


# A stage named `dev` (config/dev.yaml) is the cdk.Stage `SageBert-dev`.
STAGE_PREFIX = "SageBert-"


def stage_files(config_dir: Path) -> list[Path]:
    """The stage files in config_dir, in name order (pipeline.yaml is no stage)."""
    return sorted(file for file in config_dir.glob("*.yaml") if file.stem != "pipeline")


def load_all(config_dir: Path) -> dict[str, StageConfig]:
    """Every stage in config_dir, keyed by stage name (the file stem), in name order.

    `pipeline` is a reserved name, not a stage: config/pipeline.yaml holds the promotion pipeline's
    settings (infra/config/pipeline.py) and is skipped here.
    """
    files = stage_files(config_dir)
    if not files:
        raise ConfigError(f"{config_dir}: no stage files (*.yaml); add e.g. {config_dir}/dev.yaml.")
    stages: dict[str, StageConfig] = {}
    for file in files:
        if not STAGE_NAME.match(file.stem):
            raise ConfigError(
                f"{file}: the file name is the stage name and must match {STAGE_NAME.pattern} "
                "(lower case letters, digits, dashes; up to 20 characters; `pipeline` is reserved: "
                "pipeline.yaml holds the promotion pipeline's settings and is never a stage)."
            )
        stages[file.stem] = load_stage_config(file)
    # A stage's roles may touch only transform jobs named sagebert-<stage>-*; with stages `dev` and `dev-2` that
    # pattern of dev would also match dev-2's jobs.
    for name in stages:
        shadowed = sorted(other for other in stages if other != name and other.startswith(f"{name}-"))
        if shadowed:
            raise ConfigError(
                f"{config_dir}: stage names {name!r} and {shadowed[0]!r}: {name}'s transform-job grant "
                f"(sagebert-{name}-*) would also match {shadowed[0]}'s jobs. Rename one so that no stage name is "
                "another's followed by '-', e.g. dev2 instead of dev-2."
            )
    return stages


def _describe(error: Any) -> str:
    """One line per pydantic error: key, bad value, what is allowed."""
    model, key_parts = _walk(StageConfig, error["loc"])
    key = ".".join(key_parts) or "(top level)"
    if error["type"] == "extra_forbidden" and model is not None:
        return f"{key}: unknown key (value {error['input']!r}); allowed keys here: {', '.join(model.model_fields)}."
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])  # our own cross-field messages already name key and value
    if error["type"] == "missing":
        return f"{key}: required key is missing. {_field_doc(error['loc'])}".rstrip()
    return f"{key} = {error['input']!r}: {error['msg']}. {_field_doc(error['loc'])}".rstrip()


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, list[str]]:
    """Follow an error location through the schema; drop discriminator tags from the key path.

    Returns the model that owns the last key (for "allowed keys" and its description) and the
    dotted key parts.
    """
    current: Any = model
    parts: list[str] = []
    owner: type[BaseModel] | None = None
    for seg in loc:
        members = _union_members(current)
        if members is not None:
            # A discriminated union puts the tag ("bundled", "s3", "hub") in the location.
            current = next((m for m in members if _tag(m) == seg), None)
            if current is not None:
                continue
        parts.append(str(seg))
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            field = current.model_fields.get(str(seg))
            current = _unwrap(field.annotation) if field is not None else None
        else:
            owner, current = None, None
    return owner, parts


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] -> X and Optional[Model] -> Model (an optional section is still a section)."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return args[0]
    return annotation


def _union_members(annotation: Any) -> tuple[type[BaseModel], ...] | None:
    """The members of a discriminated union of models (told apart by `source`), else None."""
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        members = tuple(a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel))
        return members if members and all(_tag(m) for m in members) else None
    return None


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("source")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if args else None


def _field_doc(loc: tuple[Any, ...]) -> str:
    owner, parts = _walk(StageConfig, loc)
    field = owner.model_fields.get(parts[-1]) if owner is not None and parts else None
    return f"({field.description})" if field is not None and field.description else ""
