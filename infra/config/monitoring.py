"""Typed settings of a stage's `monitoring:` section: the CloudWatch dashboard and the alarm thresholds.

infra/config/stage.py composes it into StageConfig.monitoring; like every section it stands on the strict base
and shared patterns in infra/config/base.py and must not import infra.config.stage (that would be a cycle).

Every threshold is compared with one CloudWatch datapoint per `period_s`; an alarm fires when
`datapoints_to_alarm` of the last `evaluation_periods` datapoints breach it (except the batch alarm, which
fires on one failed run).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from infra.config.base import API_INTEGRATION_TIMEOUT_S, EMAIL, Strict

# CloudWatch: an alarm on metrics with periods of a minute or more may look back at most one day
# (evaluation_periods * period). https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
MAX_EVALUATION_S = 86_400
# API Gateway gives an integration at most 29 s: a p99 latency threshold above that could never be reached.
# A real-time endpoint's container must answer within 60 s.
API_LATENCY_MAX_MS = API_INTEGRATION_TIMEOUT_S * 1000
MODEL_LATENCY_MAX_MS = 60_000
# The largest GPU count of a SageMaker hosting instance (p4d, p5, g5.48xlarge: 8 GPUs); SageMaker's
# GPUUtilization and GPUMemoryUtilization are summed over the instance's GPUs (0-100 % per GPU).
MAX_GPUS = 8


class MonitoringSettings(Strict):
    """One CloudWatch dashboard for the stage and alarms that notify one KMS-encrypted SNS topic."""

    period_s: int = Field(
        300,
        ge=60,
        le=MAX_EVALUATION_S,
        multiple_of=60,
        description="Seconds per datapoint, for the dashboard's graphs and every alarm (a multiple of 60; "
        "SageMaker, API Gateway and Lambda publish one-minute metrics). Default: 300 (5 minutes).",
    )
    evaluation_periods: int = Field(
        3,
        ge=1,
        description="Datapoints (periods) each alarm looks back at; evaluation_periods * period_s must be at most "
        "86400 s (one day, CloudWatch's limit). Default: 3.",
    )
    datapoints_to_alarm: int = Field(
        2,
        ge=1,
        description="How many of those datapoints must breach before an alarm fires (at most evaluation_periods); "
        "2 of 3 ignores a single bad period. Default: 2.",
    )
    min_requests: int = Field(
        10,
        ge=1,
        description="API error rates count only in periods with at least this many requests (a period with fewer "
        "counts as 0 %), so one failed request in a quiet period does not page. Default: 10 requests.",
    )
    api_latency_p99_ms: float = Field(
        2000,
        gt=0,
        le=API_LATENCY_MAX_MS,
        description="Alarm when the API's p99 latency (API Gateway Latency: request received to response sent, "
        "milliseconds) is above this. Default: 2000 ms.",
    )
    api_5xx_rate_percent: float = Field(
        1,
        gt=0,
        le=100,
        description="Alarm when API Gateway 5XX answers are more than this percentage of requests in a period. "
        "Default: 1 %.",
    )
    api_4xx_rate_percent: float = Field(
        10,
        gt=0,
        le=100,
        description="Alarm when API Gateway 4XX answers (bad requests, auth failures, throttling, quota) are more "
        "than this percentage of requests in a period. Default: 10 %.",
    )
    lambda_errors: int = Field(
        1,
        ge=1,
        description="Alarm when the front-door Lambda has at least this many errors (unhandled exceptions, "
        "timeouts: answered 5XX by API Gateway) in a period. Default: 1 error.",
    )
    lambda_throttles: int = Field(
        1,
        ge=1,
        description="Alarm when at least this many front-door Lambda invocations are throttled (reserved or "
        "account concurrency used up) in a period. Default: 1 throttle.",
    )
    model_latency_p99_ms: float = Field(
        1000,
        gt=0,
        le=MODEL_LATENCY_MAX_MS,
        description="Alarm when an endpoint variant's p99 ModelLatency (time the container took to answer, "
        "milliseconds; SageMaker publishes it in microseconds, the alarm compares this value x 1000) is above "
        "this. Default: 1000 ms.",
    )
    invocation_5xx_errors: int = Field(
        1,
        ge=1,
        description="Alarm when an endpoint variant answers at least this many InvokeEndpoint requests with 5XX "
        "(Invocation5XXErrors: the container or SageMaker failed) in a period. Default: 1 error.",
    )
    invocation_4xx_errors: int = Field(
        5,
        ge=1,
        description="Alarm when an endpoint variant answers at least this many requests with 4XX "
        "(Invocation4XXErrors; the Hugging Face container answers every exception in the model code 400, seen "
        "by callers as ModelError) in a period. Default: 5 errors.",
    )
    cpu_utilization_percent: float = Field(
        80,
        gt=0,
        le=100,
        description="Alarm when a variant's instances average more than this CPU utilization per vCPU (0-100 %). "
        "SageMaker's CPUUtilization is summed over the vCPUs (up to 100 % x vCPUs); sagebert divides it by the "
        "instance type's vCPU count first. Instance-based endpoints only. Default: 80 %.",
    )
    memory_utilization_percent: float = Field(
        85,
        gt=0,
        le=100,
        description="Alarm when a variant's instances average more than this memory utilization (0-100 %). "
        "Instance-based endpoints only. Default: 85 %.",
    )
    disk_utilization_percent: float = Field(
        85,
        gt=0,
        le=100,
        description="Alarm when a variant's instances average more than this disk utilization (0-100 %). "
        "Instance-based endpoints only. Default: 85 %.",
    )
    gpu_utilization_percent: float = Field(
        90,
        gt=0,
        le=100 * MAX_GPUS,
        description="Alarm when a variant's GPUUtilization is above this, as SageMaker reports it: summed over "
        "the instance's GPUs (up to 100 % x GPUs; 90 is 90 % of a one-GPU instance, use 360 for 90 % of a "
        "4-GPU one). GPU endpoints only. Default: 90 %.",
    )
    gpu_memory_utilization_percent: float = Field(
        90,
        gt=0,
        le=100 * MAX_GPUS,
        description="Alarm when a variant's GPUMemoryUtilization is above this, summed over the instance's GPUs "
        "like gpu_utilization_percent. GPU endpoints only. Default: 90 %.",
    )
    batch_failed_executions: int = Field(
        1,
        ge=1,
        description="Alarm when at least this many scheduled batch runs fail, time out or are aborted in a "
        "period (one datapoint is enough: a run fails once). With a batch section only. Default: 1 run.",
    )
    alarm_email: str | None = Field(
        None,
        pattern=EMAIL,
        description="Email address subscribed to the alarm topic (it must confirm the subscription). Null: no "
        "subscription; subscribe to the monitoring stack's AlarmTopicArn output yourself. Default: null.",
    )
    dashboard: bool = Field(
        True,
        description="Create the stage's CloudWatch dashboard (alarms are created either way). Default: true.",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> MonitoringSettings:
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"monitoring.datapoints_to_alarm = {self.datapoints_to_alarm} is more than "
                f"monitoring.evaluation_periods = {self.evaluation_periods}; an alarm cannot need more breaching "
                f"datapoints than it looks at. Lower datapoints_to_alarm to {self.evaluation_periods} or less."
            )
        window = self.evaluation_periods * self.period_s
        if window > MAX_EVALUATION_S:
            raise ValueError(
                f"monitoring: evaluation_periods * period_s = {self.evaluation_periods} * {self.period_s} = "
                f"{window} s, over CloudWatch's one day ({MAX_EVALUATION_S} s); lower one of them."
            )
        return self
