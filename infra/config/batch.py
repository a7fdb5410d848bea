"""The `batch:` section: scheduled batch transform on the stage's model, its cron schedule and time zone,
input and output prefixes, and the transform job's limits.

infra/batch/ builds the schedule, state machine and manifest Lambda from it; the model container reads
`SAGEBERT_BAD_LINES` (model_code/inference.py, which may not import infra: a test keeps the name equal).
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.catalog import compute_profiles
from infra.catalog import sagemaker_api as api
from infra.config.base import EMAIL, EXPIRY_DAYS, KEY_PREFIX, Strict

# EventBridge Scheduler's cron expression: cron(minutes hours day-of-month month day-of-week year).
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
SCHEDULER_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
CRON_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/#\-]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
# CreateTransformJob: at most 16 environment variables; sagebert sets SAGEBERT_BAD_LINES itself.
# MaxPayloadInMB <= 100, and MaxConcurrentTransforms * MaxPayloadInMB <= 100 as well.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html
TRANSFORM_ENVIRONMENT_MAX = api.stated_maximum("CreateTransformJobRequest.Environment")
TRANSFORM_PAYLOAD_BUDGET_MB = 100
# SageMaker's own defaults for a transform job's ModelClientConfig, which sagebert keeps; `make batch-local` runs
# with them too. https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ModelClientConfig.html
TRANSFORM_INVOCATION_TIMEOUT_S = 600
TRANSFORM_INVOCATION_MAX_RETRIES = 3
# SageMaker's own default MaxPayloadInMB (6) is not sagebert's: see request sizing below.
SAGEMAKER_MAX_PAYLOAD_MB = 6
BAD_LINES_VARIABLE = "SAGEBERT_BAD_LINES"

# Request sizing (the service rule behind finding A7). A MultiRecord request must be answered within
# ModelClientConfig.InvocationsTimeoutInSeconds, or SageMaker retries it and then fails the job; the service model
# says only "The timeout value in seconds for an invocation request" (botocore sagemaker service-2.json,
# ModelClientConfig), so the payload that fits is sagebert's to work out. Inside the Hugging Face DLC the model
# server's own response timeout is longer: sagemaker-inference-toolkit writes default_response_timeout =
# SAGEMAKER_MODEL_SERVER_TIMEOUT (default "60", environment.py), and multi-model-server 1.1.x reads that property as
# minutes (ConfigManager.getDefaultResponseTimeoutSeconds: 60 * the value; its docs say seconds), so 3600 s, the
# API's maximum InvocationsTimeoutInSeconds. A job whose environment lowers it is refused below.
#
# Texts in one request: payload / the average line of a request of short texts, at most the handler's line limit.
# 32 bytes is a 29-character text as a JSON string with its newline; the shipped reviews average ~85 bytes and the
# shortest is 18 (data/sentiment), so a whole request this short is the pessimistic case, not the usual one.
SHORT_LINE_BYTES = 32
# model_code/inference.py refuses a request of more lines (a 400, which fails the job); a test keeps them equal.
HANDLER_MAX_LINES = 100_000
# A request must finish within half the invocation timeout at the measured rate: the rate was measured on the
# project's development CPU, not on the transform instance, and texts longer than the measured ones run slower.
REQUEST_TIME_MARGIN = 2.0
MODEL_SERVER_TIMEOUT_VARIABLES = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": 60, "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS": 1}
MB = 1024 * 1024


def concurrent_requests(max_concurrent_transforms: int) -> int:
    """Requests an instance serves at once: MaxConcurrentTransforms, or with 0 SageMaker's default, 1, for a
    container without the optional execution-parameters endpoint (CreateTransformJob's MaxConcurrentTransforms in
    botocore's service model); multi-model-server serves none (it documents it only as a plugin example)."""
    return max(1, max_concurrent_transforms)


def request_seconds(payload_mb: int, instance_type: str, max_concurrent_transforms: int) -> float:
    """Seconds the slowest of the concurrent requests of `payload_mb` short lines takes on one instance of
    `instance_type`: each worker runs one text at a time on one core (compute_profiles'
    MEASURED_CPU_BATCHED_TEXTS_PER_S_PER_CORE), and requests beyond the physical cores share them."""
    texts = min(payload_mb * MB / SHORT_LINE_BYTES, HANDLER_MAX_LINES)
    concurrent = concurrent_requests(max_concurrent_transforms)
    per_request = compute_profiles.MEASURED_CPU_BATCHED_TEXTS_PER_S_PER_CORE * min(
        1.0, compute_profiles.cores(instance_type) / concurrent
    )
    return texts / per_request


def largest_payload_mb(instance_type: str, max_concurrent_transforms: int, invocation_timeout_s: int) -> int:
    """The largest whole MaxPayloadInMB whose requests of short lines stay within the handler's line limit and finish
    within the invocation timeout with the margin; 0 when not even 1 MB does."""
    by_lines = HANDLER_MAX_LINES * SHORT_LINE_BYTES // MB
    fits = [
        mb
        for mb in range(1, by_lines + 1)
        if request_seconds(mb, instance_type, max_concurrent_transforms) * REQUEST_TIME_MARGIN <= invocation_timeout_s
    ]
    return max(fits, default=0)


# sagebert's default MaxPayloadInMB: the largest that fits with SageMaker's default timeout and one request at a time
# (the same on every instance type: one request runs on one core). `make batch-local` uses it too.
TRANSFORM_MAX_PAYLOAD_MB = largest_payload_mb("ml.c6i.large", 0, TRANSFORM_INVOCATION_TIMEOUT_S)


class BatchSettings(Strict):
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
        TRANSFORM_MAX_PAYLOAD_MB,
        ge=1,
        le=TRANSFORM_PAYLOAD_BUDGET_MB,
        description="MaxPayloadInMB: lines are packed into requests of at most this many MB (MultiRecord); a line "
        f"larger than this fails the job. At most what a request of {SHORT_LINE_BYTES}-byte lines answers within "
        f"half of invocation_timeout_s at the measured rate and within the handler's {HANDLER_MAX_LINES:,} lines "
        f"(see docs/batch.md, Request sizing); default {TRANSFORM_MAX_PAYLOAD_MB} (SageMaker's own: "
        f"{SAGEMAKER_MAX_PAYLOAD_MB}).",
    )
    max_concurrent_transforms: int = Field(
        0,
        ge=api.minimum("CreateTransformJobRequest.MaxConcurrentTransforms"),
        le=TRANSFORM_PAYLOAD_BUDGET_MB,
        description="Parallel requests per instance (MaxConcurrentTransforms); 0 lets SageMaker choose. "
        f"max_concurrent_transforms * max_payload_mb must be at most {TRANSFORM_PAYLOAD_BUDGET_MB}.",
    )
    invocation_timeout_s: int = Field(
        TRANSFORM_INVOCATION_TIMEOUT_S,
        ge=api.minimum("ModelClientConfig.InvocationsTimeoutInSeconds"),
        le=api.maximum("ModelClientConfig.InvocationsTimeoutInSeconds"),
        description="Seconds the container has to answer one request (ModelClientConfig).",
    )
    invocation_max_retries: int = Field(
        TRANSFORM_INVOCATION_MAX_RETRIES,
        ge=api.minimum("ModelClientConfig.InvocationsMaxRetries"),
        le=api.maximum("ModelClientConfig.InvocationsMaxRetries"),
        description="Retries of a request that failed or timed out (ModelClientConfig).",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables for the model container in transform jobs (at most "
        f"{TRANSFORM_ENVIRONMENT_MAX - 1}; `{BAD_LINES_VARIABLE}` comes from bad_lines).",
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
        self._request_sizing()
        return self

    def _request_sizing(self) -> None:
        """MaxPayloadInMB against the invocation timeout and the handler's line limit (see request_seconds), and no
        model-server timeout below the invocation timeout."""
        for name, unit_s in MODEL_SERVER_TIMEOUT_VARIABLES.items():
            value = self.environment.get(name)
            if value is not None and (not value.isdigit() or int(value) * unit_s < self.invocation_timeout_s):
                raise ValueError(
                    f"batch.environment {name} = {value!r}: the model server would give up on a request before "
                    f"invocation_timeout_s = {self.invocation_timeout_s} s ({name} counts "
                    f"{'minutes' if unit_s == 60 else 'seconds'}). Remove it (the toolkit's default is 60 minutes) or "
                    "raise it to at least the invocation timeout."
                )
        largest = largest_payload_mb(self.instance_type, self.max_concurrent_transforms, self.invocation_timeout_s)
        if self.max_payload_mb <= largest:
            return
        texts = min(self.max_payload_mb * MB // SHORT_LINE_BYTES, HANDLER_MAX_LINES)
        seconds = request_seconds(self.max_payload_mb, self.instance_type, self.max_concurrent_transforms)
        concurrent = concurrent_requests(self.max_concurrent_transforms)
        if self.max_payload_mb * MB / SHORT_LINE_BYTES > HANDLER_MAX_LINES:
            why = (
                f"{self.max_payload_mb} MB of {SHORT_LINE_BYTES}-byte lines is over the handler's "
                f"{HANDLER_MAX_LINES:,} lines per request, which it refuses (the job fails)"
            )
        else:
            why = (
                f"{texts:,} texts of {SHORT_LINE_BYTES} bytes in one request, {concurrent} at a time on "
                f"{compute_profiles.cores(self.instance_type)} core(s) of {self.instance_type} at the measured "
                f"{compute_profiles.MEASURED_CPU_BATCHED_TEXTS_PER_S_PER_CORE:g} texts/s per core, take ~{seconds:.0f} "
                f"s: more than half of invocation_timeout_s = {self.invocation_timeout_s}"
            )
        fix = f"set max_payload_mb: {largest} or less" if largest else "lower max_concurrent_transforms"
        raise ValueError(
            f"batch.max_payload_mb = {self.max_payload_mb}: {why}. SageMaker retries a request that times out and "
            f"then fails the job; {fix}, or raise invocation_timeout_s (at most "
            f"{api.maximum('ModelClientConfig.InvocationsTimeoutInSeconds')})."
        )

    @property
    def container_environment(self) -> dict[str, str]:
        """The transform job's Environment: the configured variables and SAGEBERT_BAD_LINES."""
        return {**self.environment, BAD_LINES_VARIABLE: self.bad_lines}
