"""Monitoring: one CloudWatch dashboard per stage and alarms that notify a KMS-encrypted SNS topic.

The dashboard has one row per area (API, front-door Lambda, each endpoint variant, each variant's
instances, batch runs); each row starts with a note on how to read it, and every graph that has an alarm
draws the alarm's threshold as a horizontal line. Thresholds come from the stage's `monitoring:` section
(infra/config/monitoring.py); docs/monitoring.md explains each alarm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.batch.transform_schedule import BatchTransformSchedule
from infra.catalog import compute_profiles
from infra.config.base import API_INTEGRATION_TIMEOUT_S
from infra.config.monitoring import MonitoringSettings
from infra.config.stage import STAGE_PREFIX
from infra.online.inference_api import InferenceApi
from infra.online.realtime_endpoint import MICROSECONDS_PER_MS, RealtimeEndpoint
from infra.operations.key_policies import allow_cloudwatch_alarms

# Dashboard layout: 24 columns; each row is a 6-column note and graphs sharing the other 18.
ROW_WIDTH = 24
NOTE_WIDTH = 6
HEIGHT = 6
ALARM_COLOUR = cloudwatch.Color.RED


@dataclass(frozen=True)
class _Graph:
    """One graph of a dashboard row: title, y-axis unit, metrics and (value, label) alarm thresholds."""

    title: str
    unit: str
    metrics: list[cloudwatch.IMetric]
    thresholds: list[tuple[float, str]] = field(default_factory=list)


class Monitoring(Construct):
    """Creates, for one stage:

    - a KMS-encrypted SNS topic (TLS only) that every alarm notifies, optionally with an e-mail subscription;
    - alarms (generated names) on the API (p99 latency, 5XX and 4XX rates), the front-door Lambda (errors,
      throttles), each endpoint variant (p99 ModelLatency, Invocation5XXErrors, Invocation4XXErrors), each
      variant's instances (CPU per vCPU, memory, disk; GPU and GPU memory on GPU endpoints) and the batch
      runs (failed, timed-out or aborted executions), with thresholds from `settings`;
    - with `settings.dashboard`, a CloudWatch dashboard named SageBert-<stage>-<region>, one row per area.

    `api` and `batch` are optional (the stage may have neither); `endpoint.has_instances` False (serverless)
    leaves out the instance row and alarms; `endpoint.gpu` adds the GPU metrics. CPU is shown per vCPU of
    each variant's instance type (`endpoint.instance_types`).

    Exposes `topic`, `dashboard` (None without one) and `alarms` (name -> Alarm; per-variant names end in
    /<variant>).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: MonitoringSettings,
        stage_name: str,
        endpoint: RealtimeEndpoint,
        api: InferenceApi | None,
        batch: BatchTransformSchedule | None,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        vcpus: dict[str, int] = {}
        if endpoint.has_instances:
            unknown = [variant for variant in endpoint.variant_names if variant not in endpoint.instance_types]
            if unknown:
                raise ValueError(
                    f"Monitoring needs the instance type of every variant of an endpoint with instances (to show CPU "
                    f"per vCPU); {', '.join(unknown)} has none."
                )
            vcpus = {v: compute_profiles.vcpus(endpoint.instance_types[v]) for v in endpoint.variant_names}
        self._settings = settings
        self._stage_name = stage_name
        self._period = Duration.seconds(settings.period_s)
        self._minutes = settings.period_s // 60
        # CloudWatch asks KMS for a data key when it publishes to the encrypted topic.
        allow_cloudwatch_alarms(key)
        self.topic = sns.Topic(
            self, "Topic", display_name=f"sagebert {stage_name} alarms", master_key=key, enforce_ssl=True
        )
        if settings.alarm_email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        rows: list[list[cloudwatch.IWidget]] = []

        if api is not None:
            rows.append(self._api_row(api))
            rows.append(self._lambda_row(api))
        for variant in endpoint.variant_names:
            rows.append(self._endpoint_row(endpoint, variant))
            if endpoint.has_instances:
                rows.append(self._instance_row(endpoint, variant, vcpus[variant]))
        if batch is not None:
            rows.append(self._batch_row(batch))

        # enforce_ssl gives the topic a resource policy, which replaces SNS's default one: CloudWatch must be
        # allowed to publish, and only for this stage's alarms.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": [alarm.alarm_arn for alarm in self.alarms.values()]},
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                },
            )
        )

        self.dashboard: cloudwatch.Dashboard | None = None
        if settings.dashboard:
            self.dashboard = cloudwatch.Dashboard(
                self,
                "Dashboard",
                # Dashboard names are unique per account, not per region: the region keeps two deployments of
                # one stage apart.
                dashboard_name=f"{STAGE_PREFIX}{stage_name}-{Aws.REGION}",
                default_interval=Duration.hours(6),
                widgets=rows,
            )

    # --- alarms -------------------------------------------------------------------------------------

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        missing: cloudwatch.TreatMissingData,
        description: str,
        evaluation_periods: int | None = None,
        datapoints_to_alarm: int | None = None,
    ) -> cloudwatch.Alarm:
        settings = self._settings
        alarm = cloudwatch.Alarm(
            self,
            name.replace("/", "-"),
            alarm_description=f"sagebert {self._stage_name}: {description}",
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods or settings.evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm or settings.datapoints_to_alarm,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        self.alarms[name] = alarm
        return alarm

    def _window(self) -> str:
        settings = self._settings
        return f"in {settings.datapoints_to_alarm} of {settings.evaluation_periods} {self._minutes}-minute periods"

    def _rate(
        self, errors_id: str, errors: cloudwatch.IMetric, requests: cloudwatch.IMetric, label: str
    ) -> cloudwatch.MathExpression:
        """errors / requests * 100, missing datapoints as 0; 0 in periods with fewer than min_requests requests.

        `errors_id` names the errors metric in the expression: a graph may not use one id for two metrics.
        """
        minimum = self._settings.min_requests
        return cloudwatch.MathExpression(
            expression=f"IF(FILL(requests, 0) >= {minimum}, 100 * FILL({errors_id}, 0) / FILL(requests, 0), 0)",
            using_metrics={errors_id: errors, "requests": requests},
            period=self._period,
            label=label,
        )

    # --- rows ---------------------------------------------------------------------------------------

    def _row(self, note: str, *graphs: _Graph) -> list[cloudwatch.IWidget]:
        """A note on how to read the row, then its graphs side by side (units on the y axis, alarm lines)."""
        width = (ROW_WIDTH - NOTE_WIDTH) // len(graphs)
        widgets: list[cloudwatch.IWidget] = [cloudwatch.TextWidget(markdown=note, width=NOTE_WIDTH, height=HEIGHT)]
        for graph in graphs:
            widgets.append(
                cloudwatch.GraphWidget(
                    title=graph.title,
                    left=graph.metrics,
                    left_y_axis=cloudwatch.YAxisProps(label=graph.unit, min=0, show_units=False),
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=value, label=label, color=ALARM_COLOUR)
                        for value, label in graph.thresholds
                    ],
                    period=self._period,
                    height=HEIGHT,
                    width=width,
                )
            )
        return widgets

    def _api_row(self, front_door: InferenceApi) -> list[cloudwatch.IWidget]:
        settings, period = self._settings, self._period
        api = front_door.api
        requests = api.metric_count(period=period, statistic="Sum", label="requests")
        client_errors = api.metric_client_error(period=period, statistic="Sum", label="4XX")
        server_errors = api.metric_server_error(period=period, statistic="Sum", label="5XX")
        server_rate = self._rate("serverErrors", server_errors, requests, "5XX rate (%)")
        client_rate = self._rate("clientErrors", client_errors, requests, "4XX rate (%)")
        latency_p99 = api.metric_latency(period=period, statistic="p99", label="latency p99")
        # No requests in a period means no latency and no errors: quiet is not broken.
        self._alarm(
            "ApiLatencyP99",
            latency_p99,
            threshold=settings.api_latency_p99_ms,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"API p99 latency above {settings.api_latency_p99_ms:g} ms {self._window()}",
        )
        # The rate expressions fill missing counts with 0; if no metric exists at all, there was no traffic.
        self._alarm(
            "Api5xxRate",
            server_rate,
            threshold=settings.api_5xx_rate_percent,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"API 5XX answers above {settings.api_5xx_rate_percent:g} % of requests {self._window()} "
            f"(periods with {settings.min_requests}+ requests)",
        )
        self._alarm(
            "Api4xxRate",
            client_rate,
            threshold=settings.api_4xx_rate_percent,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"API 4XX answers above {settings.api_4xx_rate_percent:g} % of requests {self._window()} "
            f"(periods with {settings.min_requests}+ requests)",
        )
        return self._row(
            "### API\nRequests through API Gateway. **Healthy:** 5XX near 0 %, 4XX low and steady, p99 well under "
            "its line. **Unhealthy:** 5XX above its line (the model, the Lambda or API Gateway failing), a 4XX "
            "jump (a client sending bad requests, auth failing, or 429 throttling), p99 climbing toward "
            f"{API_INTEGRATION_TIMEOUT_S} s.",
            _Graph("API requests (count)", "requests", [requests, client_errors, server_errors]),
            _Graph(
                "API error rates (%)",
                "%",
                [server_rate, client_rate],
                [
                    (settings.api_5xx_rate_percent, "5XX alarm"),
                    (settings.api_4xx_rate_percent, "4XX alarm"),
                ],
            ),
            _Graph(
                "API latency (ms)",
                "ms",
                [
                    api.metric_latency(period=period, statistic="p50", label="latency p50"),
                    latency_p99,
                    api.metric("IntegrationLatency", period=period, statistic="p99", label="integration latency p99"),
                ],
                [(settings.api_latency_p99_ms, "p99 alarm")],
            ),
        )

    def _lambda_row(self, front_door: InferenceApi) -> list[cloudwatch.IWidget]:
        settings, period = self._settings, self._period
        function = front_door.function
        errors = function.metric_errors(period=period, statistic="Sum", label="errors")
        throttles = function.metric_throttles(period=period, statistic="Sum", label="throttles")
        # Lambda publishes Errors and Throttles only for periods with invocations: no data, nothing failed.
        self._alarm(
            "LambdaErrors",
            errors,
            threshold=settings.lambda_errors,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"front-door Lambda errors >= {settings.lambda_errors} per period {self._window()}",
        )
        self._alarm(
            "LambdaThrottles",
            throttles,
            threshold=settings.lambda_throttles,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"front-door Lambda throttles >= {settings.lambda_throttles} per period {self._window()}",
        )
        return self._row(
            "### Front-door Lambda\n**Healthy:** invocations follow API requests, no errors, no throttles, "
            "duration p99 far below the timeout. **Unhealthy:** errors (crashes or timeouts: callers got 502/504), "
            "throttles (concurrency used up: raise api.reserved_concurrency), duration near the timeout (the "
            "endpoint is slow).",
            _Graph(
                "Lambda invocations, errors, throttles (count)",
                "count",
                [function.metric_invocations(period=period, statistic="Sum", label="invocations"), errors, throttles],
                [(settings.lambda_errors, "errors alarm"), (settings.lambda_throttles, "throttles alarm")],
            ),
            _Graph(
                "Lambda duration (ms)",
                "ms",
                [
                    function.metric_duration(period=period, statistic="p50", label="duration p50"),
                    function.metric_duration(period=period, statistic="p99", label="duration p99"),
                ],
            ),
            _Graph(
                "Lambda concurrent executions (count)",
                "executions",
                [function.metric("ConcurrentExecutions", period=period, statistic="Maximum", label="maximum")],
            ),
        )

    def _endpoint_row(self, endpoint: RealtimeEndpoint, variant: str) -> list[cloudwatch.IWidget]:
        settings = self._settings

        def metric(name: str, statistic: str, label: str) -> cloudwatch.Metric:
            if endpoint.inference_component_name is not None:
                # In inference-component form the model's invocations are published per component.
                return endpoint.component_metric(name, statistic=statistic, period=self._period, label=label)
            return endpoint.metric(name, variant=variant, statistic=statistic, period=self._period, label=label)

        invocations = metric("Invocations", "Sum", "invocations")
        errors_4xx = metric("Invocation4XXErrors", "Sum", "4XX")
        errors_5xx = metric("Invocation5XXErrors", "Sum", "5XX")
        model_latency_p99 = metric("ModelLatency", "p99", "ModelLatency p99 (µs)")
        # SageMaker publishes metrics only for periods with invocations: no data means no traffic, not failure.
        self._alarm(
            f"ModelLatencyP99/{variant}",
            model_latency_p99,
            # ModelLatency is in microseconds; the setting is in milliseconds.
            threshold=settings.model_latency_p99_ms * MICROSECONDS_PER_MS,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"endpoint variant {variant}: p99 ModelLatency above {settings.model_latency_p99_ms:g} ms "
            f"{self._window()}",
        )
        self._alarm(
            f"Invocation5XXErrors/{variant}",
            errors_5xx,
            threshold=settings.invocation_5xx_errors,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"endpoint variant {variant}: Invocation5XXErrors >= {settings.invocation_5xx_errors} per "
            f"period {self._window()}",
        )
        self._alarm(
            f"Invocation4XXErrors/{variant}",
            errors_4xx,
            threshold=settings.invocation_4xx_errors,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"endpoint variant {variant}: Invocation4XXErrors (model errors) >= "
            f"{settings.invocation_4xx_errors} per period {self._window()}",
        )

        def in_ms(name: str, statistic: str, label: str) -> cloudwatch.MathExpression:
            # One id per metric: the graph shows several of these expressions.
            metric_id = f"{name[0].lower()}{name[1:]}{statistic.title()}"
            return cloudwatch.MathExpression(
                expression=f"{metric_id} / {MICROSECONDS_PER_MS}",
                using_metrics={metric_id: metric(name, statistic, name)},
                period=self._period,
                label=label,
            )

        latencies: list[cloudwatch.IMetric] = [
            in_ms("ModelLatency", "p50", "ModelLatency p50"),
            in_ms("ModelLatency", "p99", "ModelLatency p99"),
            in_ms("OverheadLatency", "p99", "OverheadLatency p99"),
        ]
        if not endpoint.has_instances:
            # ModelSetupTime (a serverless cold start) exists only for serverless endpoints.
            latencies.append(in_ms("ModelSetupTime", "Maximum", "ModelSetupTime max"))
        return self._row(
            f"### Endpoint, variant {variant}\n**Healthy:** invocations follow the API's, no 5XX, 4XX rare, "
            "ModelLatency p99 steady under its line; OverheadLatency (SageMaker's own) a few ms. **Unhealthy:** "
            "5XX (the container failing or restarting), 4XX (the model code raising: callers see ModelError), "
            "ModelLatency rising with invocations (the instances are saturated: see the next row).",
            _Graph(
                f"Endpoint {variant} invocations and errors (count)",
                "count",
                [invocations, errors_4xx, errors_5xx],
                [(settings.invocation_5xx_errors, "5XX alarm"), (settings.invocation_4xx_errors, "4XX alarm")],
            ),
            _Graph(
                f"Endpoint {variant} latency (ms)",
                "ms",
                latencies,
                [(settings.model_latency_p99_ms, "ModelLatency p99 alarm")],
            ),
        )

    def _instance_row(self, endpoint: RealtimeEndpoint, variant: str, vcpus: int) -> list[cloudwatch.IWidget]:
        settings = self._settings

        def metric(name: str, label: str) -> cloudwatch.Metric:
            return endpoint.metric(
                name, variant=variant, instance=True, statistic="Average", period=self._period, label=label
            )

        cpu = cloudwatch.MathExpression(
            # CPUUtilization is summed over the instance's vCPUs (up to 100 % x vCPUs): per vCPU it reads 0-100 %.
            expression=f"cpu / {vcpus}",
            using_metrics={"cpu": metric("CPUUtilization", "CPUUtilization")},
            period=self._period,
            label=f"CPU per vCPU ({vcpus} vCPUs)",
        )
        memory = metric("MemoryUtilization", "memory")
        disk = metric("DiskUtilization", "disk")
        # Running instances report every minute. Missing data means the variant has no running instance (being
        # created, updated or deleted): INSUFFICIENT_DATA shows that without paging as a capacity problem.
        missing = cloudwatch.TreatMissingData.MISSING
        gt = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        prefix = f"endpoint variant {variant} instances:"
        self._alarm(
            f"CPUUtilization/{variant}",
            cpu,
            threshold=settings.cpu_utilization_percent,
            comparison=gt,
            missing=missing,
            description=f"{prefix} CPU above {settings.cpu_utilization_percent:g} % per vCPU {self._window()}",
        )
        self._alarm(
            f"MemoryUtilization/{variant}",
            memory,
            threshold=settings.memory_utilization_percent,
            comparison=gt,
            missing=missing,
            description=f"{prefix} memory above {settings.memory_utilization_percent:g} % {self._window()}",
        )
        self._alarm(
            f"DiskUtilization/{variant}",
            disk,
            threshold=settings.disk_utilization_percent,
            comparison=gt,
            missing=missing,
            description=f"{prefix} disk above {settings.disk_utilization_percent:g} % {self._window()}",
        )
        graphs = [
            _Graph(f"Instances {variant}: CPU per vCPU (%)", "%", [cpu], [(settings.cpu_utilization_percent, "alarm")]),
            _Graph(
                f"Instances {variant}: memory and disk (%)",
                "%",
                [memory, disk],
                [
                    (settings.memory_utilization_percent, "memory alarm"),
                    (settings.disk_utilization_percent, "disk alarm"),
                ],
            ),
        ]
        if endpoint.gpu:
            gpu = metric("GPUUtilization", "GPU")
            gpu_memory = metric("GPUMemoryUtilization", "GPU memory")
            self._alarm(
                f"GPUUtilization/{variant}",
                gpu,
                threshold=settings.gpu_utilization_percent,
                comparison=gt,
                missing=missing,
                description=f"{prefix} GPUUtilization (summed over GPUs) above {settings.gpu_utilization_percent:g} "
                f"% {self._window()}",
            )
            self._alarm(
                f"GPUMemoryUtilization/{variant}",
                gpu_memory,
                threshold=settings.gpu_memory_utilization_percent,
                comparison=gt,
                missing=missing,
                description=f"{prefix} GPUMemoryUtilization (summed over GPUs) above "
                f"{settings.gpu_memory_utilization_percent:g} % {self._window()}",
            )
            graphs.append(
                _Graph(
                    f"Instances {variant}: GPU and GPU memory (% summed over GPUs)",
                    "% (100 per GPU)",
                    [gpu, gpu_memory],
                    [
                        (settings.gpu_utilization_percent, "GPU alarm"),
                        (settings.gpu_memory_utilization_percent, "GPU memory alarm"),
                    ],
                )
            )
        return self._row(
            f"### Instances, variant {variant}\nAverages over the variant's instances. **Healthy:** CPU per vCPU "
            "well under its line at peak, memory flat, disk flat. **Unhealthy:** CPU at its line while "
            "ModelLatency rises (add instances or a larger type), memory climbing without falling back (a leak: "
            "the container will be restarted), disk filling up.",
            *graphs,
        )

    def _batch_row(self, batch: BatchTransformSchedule) -> list[cloudwatch.IWidget]:
        settings, period = self._settings, self._period
        machine = batch.state_machine
        metrics: dict[str, cloudwatch.IMetric] = {
            "failed": machine.metric_failed(period=period, statistic="Sum"),
            "timedOut": machine.metric_timed_out(period=period, statistic="Sum"),
            "aborted": machine.metric_aborted(period=period, statistic="Sum"),
        }
        failures = cloudwatch.MathExpression(
            expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
            using_metrics=metrics,
            period=period,
            label="failed, timed out or aborted",
        )
        # A run fails once: one datapoint must be enough, whatever the stage's M of N. Periods without a run have
        # no data, which is normal for a nightly schedule.
        self._alarm(
            "BatchFailedExecutions",
            failures,
            threshold=settings.batch_failed_executions,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cloudwatch.TreatMissingData.NOT_BREACHING,
            description=f"{settings.batch_failed_executions}+ batch transform runs failed, timed out or were "
            f"aborted in {self._minutes} minutes",
            evaluation_periods=1,
            datapoints_to_alarm=1,
        )
        return self._row(
            "### Batch transform\nScheduled runs (Step Functions executions). **Healthy:** one succeeded run per "
            "schedule, duration steady from night to night. **Unhealthy:** a failed, timed-out or aborted run "
            "(the run's SNS message names the job and the cause), duration growing (more input: add instances).",
            _Graph(
                "Batch runs (count)",
                "runs",
                [machine.metric_succeeded(period=period, statistic="Sum", label="succeeded"), failures],
                [(settings.batch_failed_executions, "failure alarm")],
            ),
            _Graph(
                "Batch run duration (minutes)",
                "minutes",
                [
                    cloudwatch.MathExpression(
                        expression="duration / 60000",
                        using_metrics={"duration": machine.metric_time(period=period, statistic="Maximum")},
                        period=period,
                        label="longest run",
                    )
                ],
            ),
        )
