"""Monitoring in a bare stack: the dashboard's rows (read from the synthesized DashboardBody), every alarm's
metric, threshold, comparison and action, the encrypted topic; and a whole stage with monitoring through the
gates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from app import build_app, feature_flags, project_files
from infra.batch.transform_schedule import BatchTransformSchedule
from infra.config.api import ApiSettings
from infra.config.batch import BatchSettings
from infra.config.endpoint import EndpointSettings
from infra.config.monitoring import MonitoringSettings
from infra.observability.monitoring import Monitoring
from infra.online.inference_api import InferenceApi
from infra.online.realtime_endpoint import RealtimeEndpoint, VariantModel
from infra.operations.compliance import nag_spelling
from sagebert.report import synth as synth_report

# As SageMaker publishes them (not imported: the test states the contract).
ENDPOINT_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
MICROSECONDS_PER_MS = 1000

# Thresholds unlike the defaults and unlike each other, so each assertion proves where its value came from.
SETTINGS = MonitoringSettings(
    period_s=120,
    evaluation_periods=5,
    datapoints_to_alarm=3,
    min_requests=25,
    api_latency_p99_ms=1500,
    api_5xx_rate_percent=2.5,
    api_4xx_rate_percent=15,
    lambda_errors=3,
    lambda_throttles=4,
    model_latency_p99_ms=750,
    invocation_5xx_errors=6,
    invocation_4xx_errors=7,
    cpu_utilization_percent=70,
    memory_utilization_percent=81,
    disk_utilization_percent=82,
    gpu_utilization_percent=91,
    gpu_memory_utilization_percent=92,
    batch_failed_executions=2,
    alarm_email="ml-oncall@example.com",
)
VARIANT = "AllTraffic"
GT = "GreaterThanThreshold"
GE = "GreaterThanOrEqualToThreshold"


class Built:
    """One synthesized bare stack with a Monitoring construct."""

    def __init__(
        self,
        stack: Stack,
        monitoring: Monitoring,
        endpoint: RealtimeEndpoint,
        api: InferenceApi | None,
        batch: BatchTransformSchedule | None,
    ) -> None:
        self.stack, self.monitoring, self.endpoint, self.api, self.batch = stack, monitoring, endpoint, api, batch
        self.template = Template.from_stack(stack)
        self.json: dict[str, Any] = self.template.to_json()

    def resource(self, construct: Any) -> dict[str, Any]:
        resource: dict[str, Any] = self.json["Resources"][self.logical_id(construct)]
        return resource

    def alarm(self, name: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resource(self.monitoring.alarms[name])["Properties"]
        return properties

    def widgets(self) -> list[dict[str, Any]]:
        """The dashboard's widgets, each token written as cdk-nag spells it (<Resource.Attribute>)."""
        assert self.monitoring.dashboard is not None
        body = self.resource(self.monitoring.dashboard)["Properties"]["DashboardBody"]
        text = "".join(part if isinstance(part, str) else nag_spelling(part) for part in body["Fn::Join"][1])
        widgets: list[dict[str, Any]] = json.loads(text)["widgets"]
        return widgets

    def graphs(self) -> dict[str, dict[str, Any]]:
        return {w["properties"]["title"]: w["properties"] for w in self.widgets() if w["type"] == "metric"}

    def token(self, value: str) -> str:
        return nag_spelling(self.stack.resolve(value))

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)


def endpoint_in(stack: Stack, key: kms.IKey) -> RealtimeEndpoint:
    return RealtimeEndpoint(
        stack,
        "Endpoint",
        settings=EndpointSettings(),
        endpoint_name="sagebert-test",
        variants=[VariantModel(VARIANT, "model-name", "ml.c6i.xlarge", 1, 1.0)],
        shadow=None,
        key=key,
        bucket=s3.Bucket(stack, "CaptureBucket"),
    )


def build(
    *,
    settings: MonitoringSettings = SETTINGS,
    gpu: bool = False,
    has_instances: bool = True,
    variants: tuple[str, ...] = (VARIANT,),
    with_api: bool = True,
    with_batch: bool = True,
) -> Built:
    stack = Stack(App(context=feature_flags()), "Bare")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    endpoint = endpoint_in(stack, key)
    # What monitoring reads from the endpoint, set here to cover every shape (GPU, several variants, serverless)
    # without building each profile's endpoint.
    endpoint.variant_names = list(variants)
    endpoint.instance_types = dict.fromkeys(variants, "ml.c6i.xlarge") if has_instances else {}
    endpoint.gpu = gpu
    endpoint.has_instances = has_instances
    api = None
    if with_api:
        api = InferenceApi(
            stack,
            "FrontDoor",
            settings=ApiSettings(),
            endpoint=endpoint,
            production=False,
            key=key,
            lambda_code=project_files().lambdas,
        )
    batch = None
    if with_batch:
        bucket = s3.Bucket(stack, "Bucket", encryption=s3.BucketEncryption.KMS, encryption_key=key)
        batch = BatchTransformSchedule(
            stack,
            "Batch",
            settings=BatchSettings(),
            stage_name="test",
            model_name="model-name",
            bucket=bucket,
            key=key,
            lambda_code=project_files().lambdas,
        )
    monitoring = Monitoring(
        stack,
        "Monitoring",
        settings=settings,
        stage_name="test",
        endpoint=endpoint,
        api=api,
        batch=batch,
        key=key,
    )
    return Built(stack, monitoring, endpoint, api, batch)


@pytest.fixture(scope="module")
def full() -> Built:
    """API, Lambda, one CPU variant with instances, batch: every area."""
    return build()


@pytest.fixture(scope="module")
def gpu() -> Built:
    """Two GPU variants, no API, no batch, default settings."""
    return build(
        settings=MonitoringSettings(), gpu=True, variants=("AllTraffic", "Canary"), with_api=False, with_batch=False
    )


@pytest.fixture(scope="module")
def serverless() -> Built:
    """No instances (serverless), no API, no batch, no dashboard."""
    return build(settings=MonitoringSettings(dashboard=False), has_instances=False, with_api=False, with_batch=False)


def metric_rows(graph: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every metric a graph draws or computes with."""
    for row in graph["metrics"]:
        if isinstance(row[0], str):
            namespace, name, *rest = row
            pairs = [item for item in rest if isinstance(item, str)]
            yield namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))


def names(graph: dict[str, Any]) -> set[str]:
    return {name for _, name, _ in metric_rows(graph)}


def expressions(graph: dict[str, Any]) -> list[str]:
    return [row[0]["expression"] for row in graph["metrics"] if isinstance(row[0], dict) and "expression" in row[0]]


def annotations(graph: dict[str, Any]) -> list[float]:
    return [a["value"] for a in graph.get("annotations", {}).get("horizontal", [])]


def single_metric(alarm: dict[str, Any]) -> dict[str, Any]:
    """The one metric an alarm watches: its MetricStat, from the Metrics list CDK writes."""
    (query,) = alarm["Metrics"]
    stat: dict[str, Any] = query["MetricStat"]
    return stat


def expression(alarm: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """An alarm on metric math: the expression and its inputs by id."""
    (expr,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expr["ReturnData"] is True
    inputs = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    return expr["Expression"], inputs


def dimensions(stat: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}


# --- the dashboard ------------------------------------------------------------------------------


def test_one_row_per_area_with_a_note_and_titled_graphs(full: Built) -> None:
    widgets = full.widgets()
    rows: dict[int, list[dict[str, Any]]] = {}
    for widget in widgets:
        rows.setdefault(widget["y"], []).append(widget)
    notes = [row[0]["properties"]["markdown"].splitlines()[0] for row in rows.values()]
    assert notes == ["### API", "### Front-door Lambda", f"### Endpoint, variant {VARIANT}",
                     f"### Instances, variant {VARIANT}", "### Batch transform"]  # fmt: skip
    for row in rows.values():
        assert row[0]["type"] == "text" and {w["type"] for w in row[1:]} == {"metric"}
        assert sum(w["width"] for w in row) == 24
        for graph in row[1:]:
            properties = graph["properties"]
            # Every graph has a title that names its unit, and the same unit on its y axis.
            assert properties["title"].endswith(")") and properties["yAxis"]["left"]["label"]
            assert properties["period"] == SETTINGS.period_s
    dashboard = full.resource(full.monitoring.dashboard)["Properties"]
    assert dashboard["DashboardName"] == {"Fn::Join": ["", ["SageBert-test-", {"Ref": "AWS::Region"}]]}


def test_api_row(full: Built) -> None:
    graphs = full.graphs()
    api_name = {"ApiName": "Bare-front-door"}
    requests = graphs["API requests (count)"]
    assert list(metric_rows(requests)) == [("AWS/ApiGateway", n, api_name) for n in ("Count", "4XXError", "5XXError")]
    rates = graphs["API error rates (%)"]
    assert rates["yAxis"]["left"]["label"] == "%"
    assert expressions(rates) == [
        "IF(FILL(requests, 0) >= 25, 100 * FILL(serverErrors, 0) / FILL(requests, 0), 0)",
        "IF(FILL(requests, 0) >= 25, 100 * FILL(clientErrors, 0) / FILL(requests, 0), 0)",
    ]
    assert annotations(rates) == [2.5, 15]
    latency = graphs["API latency (ms)"]
    assert names(latency) == {"Latency", "IntegrationLatency"} and annotations(latency) == [1500]
    assert latency["yAxis"]["left"]["label"] == "ms"


def test_lambda_row(full: Built) -> None:
    graphs = full.graphs()
    assert full.api is not None
    function = {"FunctionName": full.token(full.api.function.function_name)}
    counts = graphs["Lambda invocations, errors, throttles (count)"]
    assert names(counts) == {"Invocations", "Errors", "Throttles"} and annotations(counts) == [3, 4]
    assert names(graphs["Lambda duration (ms)"]) == {"Duration"}
    assert names(graphs["Lambda concurrent executions (count)"]) == {"ConcurrentExecutions"}
    for title in ("Lambda invocations, errors, throttles (count)", "Lambda duration (ms)"):
        assert {ns for ns, _, _ in metric_rows(graphs[title])} == {"AWS/Lambda"}
        assert all(dims == function for _, _, dims in metric_rows(graphs[title]))


def test_endpoint_row_per_variant(full: Built) -> None:
    graphs = full.graphs()
    variant = {"EndpointName": full.token(full.endpoint.endpoint_name), "VariantName": VARIANT}
    counts = graphs[f"Endpoint {VARIANT} invocations and errors (count)"]
    assert list(metric_rows(counts)) == [
        (ENDPOINT_NAMESPACE, n, variant) for n in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")
    ]
    assert annotations(counts) == [6, 7]
    latency = graphs[f"Endpoint {VARIANT} latency (ms)"]
    # Shown in milliseconds (SageMaker publishes microseconds), with the alarm line in milliseconds too.
    assert expressions(latency) == ["modelLatencyP50 / 1000", "modelLatencyP99 / 1000", "overheadLatencyP99 / 1000"]
    assert names(latency) == {"ModelLatency", "OverheadLatency"}  # ModelSetupTime only for serverless
    assert all(ns == ENDPOINT_NAMESPACE and dims == variant for ns, _, dims in metric_rows(latency))
    assert annotations(latency) == [750] and latency["yAxis"]["left"]["label"] == "ms"


def test_instance_row(full: Built) -> None:
    graphs = full.graphs()
    variant = {"EndpointName": full.token(full.endpoint.endpoint_name), "VariantName": VARIANT}
    cpu = graphs[f"Instances {VARIANT}: CPU per vCPU (%)"]
    assert expressions(cpu) == ["cpu / 4"] and annotations(cpu) == [70]
    assert list(metric_rows(cpu)) == [(INSTANCE_NAMESPACE, "CPUUtilization", variant)]
    memory = graphs[f"Instances {VARIANT}: memory and disk (%)"]
    assert list(metric_rows(memory)) == [
        (INSTANCE_NAMESPACE, "MemoryUtilization", variant),
        (INSTANCE_NAMESPACE, "DiskUtilization", variant),
    ]
    assert annotations(memory) == [81, 82]
    assert not any("GPU" in title for title in graphs)


def test_batch_row(full: Built) -> None:
    graphs = full.graphs()
    assert full.batch is not None
    machine = {"StateMachineArn": full.token(full.batch.state_machine.state_machine_arn)}
    runs = graphs["Batch runs (count)"]
    assert names(runs) == {"ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert all(ns == "AWS/States" and dims == machine for ns, _, dims in metric_rows(runs))
    assert expressions(runs) == ["FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)"]
    assert annotations(runs) == [2]
    duration = graphs["Batch run duration (minutes)"]
    assert names(duration) == {"ExecutionTime"} and expressions(duration) == ["duration / 60000"]


def test_gpu_endpoints_get_gpu_graphs_for_every_variant_and_no_api_or_batch_rows(gpu: Built) -> None:
    graphs = gpu.graphs()
    for variant in ("AllTraffic", "Canary"):
        gpus = graphs[f"Instances {variant}: GPU and GPU memory (% summed over GPUs)"]
        assert names(gpus) == {"GPUUtilization", "GPUMemoryUtilization"}
        assert {dims["VariantName"] for _, _, dims in metric_rows(gpus)} == {variant}
        assert annotations(gpus) == [90, 90]
        assert f"Endpoint {variant} latency (ms)" in graphs
    assert not any(title.startswith(("API", "Lambda", "Batch")) for title in graphs)
    notes = [w["properties"]["markdown"] for w in gpu.widgets() if w["type"] == "text"]
    assert len(notes) == 4  # endpoint and instance rows for each of the two variants


def test_no_dashboard_when_switched_off(serverless: Built) -> None:
    assert serverless.monitoring.dashboard is None
    serverless.template.resource_count_is("AWS::CloudWatch::Dashboard", 0)


# --- alarms -------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_topic_with_the_stages_window(full: Built) -> None:
    topic = {"Ref": full.logical_id(full.monitoring.topic)}
    assert set(full.monitoring.alarms) == {
        "ApiLatencyP99",
        "Api5xxRate",
        "Api4xxRate",
        "LambdaErrors",
        "LambdaThrottles",
        f"ModelLatencyP99/{VARIANT}",
        f"Invocation5XXErrors/{VARIANT}",
        f"Invocation4XXErrors/{VARIANT}",
        f"CPUUtilization/{VARIANT}",
        f"MemoryUtilization/{VARIANT}",
        f"DiskUtilization/{VARIANT}",
        "BatchFailedExecutions",
    }
    for name in full.monitoring.alarms:
        alarm = full.alarm(name)
        assert alarm["AlarmActions"] == [topic], name
        assert "AlarmName" not in alarm  # generated names
        assert alarm["AlarmDescription"].startswith("sagebert test: ")
        for query in alarm["Metrics"]:
            if "MetricStat" in query:
                assert query["MetricStat"]["Period"] == 120
        if name == "BatchFailedExecutions":
            # A run fails once: one datapoint is enough whatever the stage's window.
            assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1)
        else:
            assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 3), name
    # Exactly these alarms notify the topic (the batch construct's and the endpoint's own alarms do not).
    notifying = {
        logical_id
        for logical_id, resource in full.template.find_resources("AWS::CloudWatch::Alarm").items()
        if topic in resource["Properties"].get("AlarmActions", [])
    }
    assert notifying == {full.logical_id(alarm) for alarm in full.monitoring.alarms.values()}


@pytest.mark.parametrize(
    ("name", "metric", "statistic", "threshold", "comparison", "missing"),
    [
        ("ApiLatencyP99", "Latency", "p99", 1500, GT, "notBreaching"),
        ("LambdaErrors", "Errors", "Sum", 3, GE, "notBreaching"),
        ("LambdaThrottles", "Throttles", "Sum", 4, GE, "notBreaching"),
        # ModelLatency is in microseconds: 750 ms is 750,000.
        (f"ModelLatencyP99/{VARIANT}", "ModelLatency", "p99", 750 * MICROSECONDS_PER_MS, GT, "notBreaching"),
        (f"Invocation5XXErrors/{VARIANT}", "Invocation5XXErrors", "Sum", 6, GE, "notBreaching"),
        (f"Invocation4XXErrors/{VARIANT}", "Invocation4XXErrors", "Sum", 7, GE, "notBreaching"),
        # Running instances report every minute: missing data is a variant without instances, not a breach.
        (f"MemoryUtilization/{VARIANT}", "MemoryUtilization", "Average", 81, GT, "missing"),
        (f"DiskUtilization/{VARIANT}", "DiskUtilization", "Average", 82, GT, "missing"),
    ],
)
def test_single_metric_alarms(
    full: Built, name: str, metric: str, statistic: str, threshold: float, comparison: str, missing: str
) -> None:
    alarm = full.alarm(name)
    stat = single_metric(alarm)
    assert stat["Metric"]["MetricName"] == metric and stat["Stat"] == statistic
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
        threshold,
        comparison,
        missing,
    )
    if metric in ("ModelLatency", "Invocation5XXErrors", "Invocation4XXErrors", "MemoryUtilization", "DiskUtilization"):
        namespace = ENDPOINT_NAMESPACE if metric.startswith(("Model", "Invocation")) else INSTANCE_NAMESPACE
        assert stat["Metric"]["Namespace"] == namespace
        assert dimensions(stat) == {
            "EndpointName": full.stack.resolve(full.endpoint.endpoint_name),
            "VariantName": VARIANT,
        }


def test_api_rate_alarms_are_metric_math_with_missing_data_filled(full: Built) -> None:
    for name, errors_id, errors_metric, threshold in (
        ("Api5xxRate", "serverErrors", "5XXError", 2.5),
        ("Api4xxRate", "clientErrors", "4XXError", 15),
    ):
        alarm = full.alarm(name)
        text, inputs = expression(alarm)
        assert text == f"IF(FILL(requests, 0) >= 25, 100 * FILL({errors_id}, 0) / FILL(requests, 0), 0)"
        assert inputs[errors_id]["Metric"]["MetricName"] == errors_metric
        assert inputs["requests"]["Metric"]["MetricName"] == "Count"
        assert {i["Stat"] for i in inputs.values()} == {"Sum"}
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
            threshold,
            GT,
            "notBreaching",
        )


def test_cpu_alarm_is_per_vcpu(full: Built) -> None:
    alarm = full.alarm(f"CPUUtilization/{VARIANT}")
    text, inputs = expression(alarm)
    assert text == "cpu / 4"
    assert inputs["cpu"]["Metric"]["MetricName"] == "CPUUtilization"
    assert inputs["cpu"]["Metric"]["Namespace"] == INSTANCE_NAMESPACE
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (70, GT, "missing")


def test_batch_alarm_counts_failed_timed_out_and_aborted_runs(full: Built) -> None:
    alarm = full.alarm("BatchFailedExecutions")
    text, inputs = expression(alarm)
    assert text == "FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)"
    assert {i["Metric"]["MetricName"] for i in inputs.values()} == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    }
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (2, GE, "notBreaching")


def test_gpu_alarms_only_on_gpu_endpoints(full: Built, gpu: Built) -> None:
    assert not any(name.startswith("GPU") for name in full.monitoring.alarms)
    for variant in ("AllTraffic", "Canary"):
        for name, metric in (("GPUUtilization", "GPUUtilization"), ("GPUMemoryUtilization", "GPUMemoryUtilization")):
            alarm = gpu.alarm(f"{name}/{variant}")
            stat = single_metric(alarm)
            assert stat["Metric"]["MetricName"] == metric and stat["Metric"]["Namespace"] == INSTANCE_NAMESPACE
            assert dimensions(stat)["VariantName"] == variant
            assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (90, GT, "missing")
    # Defaults: 2 of 3 five-minute periods.
    alarm = gpu.alarm("ModelLatencyP99/Canary")
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Threshold"]) == (3, 2, 1_000_000)


def test_no_instance_alarms_without_instances(serverless: Built) -> None:
    assert set(serverless.monitoring.alarms) == {
        f"ModelLatencyP99/{VARIANT}",
        f"Invocation5XXErrors/{VARIANT}",
        f"Invocation4XXErrors/{VARIANT}",
    }


def test_serverless_latency_graph_shows_model_setup_time() -> None:
    built = build(settings=MonitoringSettings(), has_instances=False, with_api=False, with_batch=False)
    graphs = built.graphs()
    assert "ModelSetupTime" in names(graphs[f"Endpoint {VARIANT} latency (ms)"])
    assert not any(title.startswith("Instances") for title in graphs)


def test_instances_need_their_instance_type() -> None:
    stack = Stack(App(context=feature_flags()), "Bare")
    key = kms.Key(stack, "Key")
    endpoint = endpoint_in(stack, key)
    endpoint.instance_types = {}
    with pytest.raises(ValueError, match="AllTraffic has none"):
        Monitoring(
            stack, "Monitoring", settings=SETTINGS, stage_name="t", endpoint=endpoint, api=None, batch=None, key=key
        )


# --- the topic ----------------------------------------------------------------------------------


def test_topic_is_kms_encrypted_tls_only_and_subscribed(full: Built) -> None:
    topic = full.resource(full.monitoring.topic)["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [full.logical_id(full.stack.node.find_child("Key")), "Arn"]}
    full.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-oncall@example.com"}
    )
    topic_ref = {"Ref": full.logical_id(full.monitoring.topic)}
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in full.template.find_resources("AWS::SNS::TopicPolicy").values()
        if p["Properties"]["Topics"] == [topic_ref]
    ]
    (statements,) = policies
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["AllowPublishThroughSSLOnly"]["Effect"] == "Deny"
    alarms = by_sid["CloudWatchAlarms"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and alarms["Action"] == "sns:Publish"
    # Only this stage's alarms may publish.
    assert alarms["Condition"]["ArnLike"]["aws:SourceArn"] == [
        {"Fn::GetAtt": [full.logical_id(alarm), "Arn"]} for alarm in full.monitoring.alarms.values()
    ]
    # CloudWatch may use the key to publish to the encrypted topic.
    full.template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchAlarmsPublishToEncryptedTopics",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                            }
                        )
                    ]
                )
            }
        },
    )


def test_no_subscription_without_an_email(serverless: Built) -> None:
    serverless.template.resource_count_is("AWS::SNS::Subscription", 0)
    assert serverless.resource(serverless.monitoring.topic)["Properties"]["KmsMasterKeyId"]


# --- a whole stage --------------------------------------------------------------------------------


def test_stages_with_monitoring_pass_the_gates(default_artifact: Path, tmp_path: Path) -> None:
    # Given a pinned stage with the API, batch and monitoring (every threshold set, an e-mail) and an
    # environment-agnostic stage with monitoring alone and no dashboard,
    # when the app is synthesized, then no nag finding is left unacknowledged and cfn-lint is clean.
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "eu.yaml").write_text(
        "account: '111122223333'\nregion: eu-west-1\n"
        "api: {auth: iam}\n"
        "batch: {}\n"
        "monitoring:\n"
        "  period_s: 60\n"
        "  evaluation_periods: 5\n"
        "  datapoints_to_alarm: 5\n"
        "  min_requests: 1\n"
        "  api_latency_p99_ms: 29000\n"
        "  model_latency_p99_ms: 500\n"
        "  cpu_utilization_percent: 75\n"
        "  alarm_email: ml-oncall@example.com\n",
        encoding="utf-8",
    )
    (config_dir / "bare.yaml").write_text("monitoring: {dashboard: false}\n", encoding="utf-8")
    out = tmp_path / "out"
    assembly = build_app(config_dir=config_dir, outdir=str(out)).synth()
    assert synth_report.nag_failures(out) == []
    stacks = {
        stage: {
            s.stack_name.split("-")[-1]: s.template
            for s in assembly.get_nested_assembly(f"assembly-SageBert-{stage}").stacks
        }
        for stage in ("eu", "bare")
    }
    assert set(stacks["eu"]) == {"Storage", "Serving", "Api", "Batch", "Monitoring"}
    assert set(stacks["bare"]) == {"Storage", "Serving", "Monitoring"}
    eu = stacks["eu"]["Monitoring"]
    assert set(eu["Outputs"]) == {"DashboardName", "DashboardUrl", "AlarmTopicArn"}
    url = json.dumps(eu["Outputs"]["DashboardUrl"]["Value"])
    assert "https://console.aws.amazon.com/cloudwatch/home?region=" in url and "#dashboards:name=" in url
    assert set(stacks["bare"]["Monitoring"]["Outputs"]) == {"AlarmTopicArn"}
    alarms = [r for r in eu["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    # API 3, Lambda 2, endpoint 3, instances 3 (ml.c6i.large: 2 vCPUs), batch 1.
    assert len(alarms) == 12
    (cpu,) = [a for a in alarms if "CPU" in a["Properties"]["AlarmDescription"]]
    assert any(m.get("Expression") == "cpu / 2" for m in cpu["Properties"]["Metrics"])
    assert cpu["Properties"]["Threshold"] == 75
    template_files = sorted(out.glob("assembly-SageBert-*/*.template.json"))
    assert len(template_files) == 8
    assert synth_report.run_cfn_lint(template_files) == 0
