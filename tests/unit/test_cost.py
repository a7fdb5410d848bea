"""The cost report's arithmetic on fixed inputs (expected values worked out by hand), the schedule counter,
the recommendation's break-even, the price table's sanity, and the CLI on the shipped config."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path

import pytest

from infra.catalog import prices as prices_module
from infra.catalog.measured import MEASURED_THROUGHPUT_FILE
from infra.config.stage import StageConfig
from infra.config.traffic import TrafficSettings
from sagebert.report import cost

# Instance types the price table must price: every profile's defaults and the sizes configs use.
REQUIRED_TYPES = (
    "ml.t2.medium ml.c5.large ml.c5.xlarge ml.c5.2xlarge ml.c5d.large ml.c5d.xlarge ml.c6i.large ml.c6i.xlarge "
    "ml.c6i.2xlarge ml.c6i.4xlarge ml.c7i.large ml.c7i.xlarge ml.m5.large ml.m5.xlarge ml.m5.2xlarge "
    "ml.m5d.large ml.m5d.xlarge ml.m6i.large ml.m6i.xlarge ml.r5.large ml.g4dn.xlarge ml.g4dn.2xlarge "
    "ml.g5.xlarge ml.g5.2xlarge ml.g6.xlarge ml.inf2.xlarge ml.inf2.8xlarge"
)


def test_instance_hours_two_c6i_xlarge() -> None:
    # 2 instances x 730 h x $0.204/h
    assert cost.instance_monthly(0.204, 2) == pytest.approx(297.84)
    assert cost.instance_monthly(0.102, 1) == pytest.approx(74.46)


def test_serverless_compute_and_data() -> None:
    # 1,000,000 requests x 0.02 s x 2 GB x $0.00002/GB-s = $0.80
    assert cost.serverless_compute_monthly(1_000_000, 0.02, 2048, 0.00002) == pytest.approx(0.80)
    # 1,048,576 requests x 1 KB in + 1 KB out = 2 GB x $0.016/GB = $0.032
    assert cost.serverless_data_monthly(1_048_576, 1.0, 0.016) == pytest.approx(0.032)
    # 3 units x 1 GB x 730 h x 3600 s x $0.000005/GB-s = $39.42
    assert cost.provisioned_concurrency_monthly(3, 1024, 0.000005) == pytest.approx(39.42)


def test_api_gateway_and_lambda() -> None:
    # 30 M requests x $3.50/M
    assert cost.api_gateway_monthly(30_000_000, 3.5) == pytest.approx(105.0)
    # 1 M x 0.052 s (51.4 ms billed as 52) x 0.5 GB x $0.0000133334 + 1 M x $0.20/M = 0.34666840 + 0.20
    assert cost.lambda_monthly(1_000_000, 51.4, 512, 0.0000133334, 0.2) == pytest.approx(0.5466684)


def test_throughput_scales_with_vcpus_and_cost_per_million() -> None:
    assert cost.scaled_throughput(182.0, 2, "ml.c6i.xlarge") == pytest.approx(364.0)
    assert cost.scaled_throughput(182.0, 2, "ml.c6i.large") == pytest.approx(182.0)
    assert cost.scaled_throughput(182.0, 2, "ml.g4dn.xlarge") is None  # a CPU figure says nothing about a GPU
    assert cost.scaled_throughput(182.0, 2, "ml.inf2.xlarge") is None
    # $0.36/h over 100 texts/s = 360,000 texts/h -> $1 per million
    assert cost.cost_per_million(0.36, 100.0) == pytest.approx(1.0)
    assert cost.instances_for_peak(365.0, 364.0) == 2
    assert cost.instances_for_peak(1.0, 364.0) == 1
    # 2,628,000 predictions on 1 instance of 1 text/s over 730 h = 100 %
    assert cost.utilisation(2_628_000, 1, 1.0) == pytest.approx(1.0)


def test_one_core_lower_bound_counts_physical_cores() -> None:
    # An AWS vCPU is a hyperthread: ml.c6i.large (2 vCPUs) is one core, ml.c6i.xlarge two. With one pinned
    # core giving 55% of the two-core 182 texts/s (100.1), large carries 100.1 and xlarge 200.2 - not the
    # 182 and 364 that scaling by vCPUs gives.
    assert cost.physical_cores("ml.c6i.large") == 1 and cost.physical_cores("ml.c6i.4xlarge") == 8
    assert cost.scaled_throughput(182.0, 2, "ml.c6i.large", 0.55) == pytest.approx(100.1)
    assert cost.scaled_throughput(182.0, 2, "ml.c6i.xlarge", 0.55) == pytest.approx(200.2)
    assert cost.scaled_throughput(182.0, 2, "ml.g5.xlarge", 0.55) is None


def test_the_family_comparison_follows_the_price_at_equal_throughput(repo_root: Path) -> None:
    # Given the dev stage (ml.c6i.large) and the committed figures, the report prices the same size on c6i
    # and c7i from one per-core figure and names the cheaper per million (c6i: 0.102 vs 0.1071 $/h).
    from infra.config.stage import load_stage_config

    usage = cost.usage_of("dev", load_stage_config(repo_root / "config" / "dev.yaml"))
    missing = repo_root / "build" / "absent.json"
    measured = cost.load_measured(bench=missing, bench_api=missing, bench_batch=missing)
    report = cost.stage_report(usage, prices_module.load(), measured)
    rows = {r.profile.split(" (")[0]: r for r in report.per_million}
    c6i, c7i = rows["cpu int8 on ml.c6i.large"], rows["cpu int8 on ml.c7i.large"]
    assert c6i.throughput == c7i.throughput
    assert c7i.full_load is not None and c6i.full_load is not None
    assert c7i.full_load / c6i.full_load == pytest.approx(0.1071 / 0.102)
    assert any(n.startswith("ml.c6i.large costs 4.8% less per million") for n in report.notes), report.notes


def test_batch_run_instance_hours() -> None:
    # 1 instance: 300 s start-up + 180,000 records / 180 per s = 1,300 s = 0.36111 h
    assert cost.batch_run_instance_hours(180_000, 180.0, 1) == pytest.approx(1300 / 3600)
    # 2 instances share the records but both pay the start-up: 2 x (300 + 500) s
    assert cost.batch_run_instance_hours(180_000, 180.0, 2) == pytest.approx(2 * 800 / 3600)
    # Fractions of a second round up; the 60 s floor applies per instance
    assert cost.batch_run_instance_hours(1, 3.0, 1, startup_s=0) == pytest.approx(60 / 3600)
    assert cost.batch_run_instance_hours(100, 3.0, 1, startup_s=0, minimum_s=0) == pytest.approx(34 / 3600)
    # No records: no job
    assert cost.batch_run_instance_hours(0, 180.0, 1) == 0.0


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("cron(0 2 * * ? *)", 30),  # daily
        ("cron(0 2 ? * MON-FRI *)", 5 * 30 / 7),  # weekdays
        ("cron(0 2,14 * * ? *)", 60),  # twice a day
        ("cron(30 6 1 * ? *)", 1),  # monthly
        ("cron(0 2 1,15 * ? *)", 2),  # twice a month
        ("cron(0/15 * * * ? *)", 4 * 24 * 30),  # every 15 minutes
        ("cron(0 2 ? * 2,4,6 *)", 3 * 30 / 7),  # Mon, Wed, Fri by number (SUN=1)
        ("cron(0 3 1 JAN,JUL ? *)", 2 / 12),  # twice a year
        ("cron(0 2 31 * ? *)", 0),  # day 31 does not occur in a 30-day month
    ],
)
def test_runs_per_month(schedule: str, runs: float) -> None:
    assert cost.runs_per_month(schedule) == pytest.approx(runs)


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("cron(0 2 L * ? *)", "uses L"),
        ("cron(0 2 ? * 6#3 *)", "uses #"),
        ("cron(0 2 15W * ? *)", "uses W"),
        ("cron(0 2 * * ? 2027)", "year field"),
        ("rate(1 day)", r"is not cron\("),
        ("cron(0 25 * * ? *)", "outside 0-23"),
    ],
)
def test_unsupported_schedules_are_refused(schedule: str, says: str) -> None:
    with pytest.raises(cost.CronError, match=says) as caught:
        cost.runs_per_month(schedule)
    assert "supported:" in str(caught.value)


def _options(requests: int, serverless_per_request: float = 1e-6, realtime: float = 100.0) -> cost.Options:
    return cost.Options(
        requests_per_month=requests,
        realtime_monthly=realtime,
        realtime_instances=1,
        realtime_utilisation=0.5,
        serverless_monthly=requests * serverless_per_request,
        serverless_per_request=serverless_per_request,
        serverless_peak_concurrency=1.0,
        batch_monthly=5.0,
    )


def test_recommendation_flips_at_the_break_even() -> None:
    # $100/month always-on vs $0.000001 per serverless request: even at 100,000,000 requests/month
    assert cost.break_even_requests(100.0, 1e-6) == pytest.approx(100_000_000)
    below = cost.recommend(_options(99_000_000))
    above = cost.recommend(_options(101_000_000))
    assert below.choice == "serverless" and above.choice == "real time"
    assert below.break_even_requests_per_month == pytest.approx(100_000_000)
    assert "100,000,000 requests/month" in below.reason and "100,000,000 requests/month" in above.reason


def test_recommendation_real_time_when_serverless_cannot_carry_the_peak() -> None:
    options = cost.Options(1000, 100.0, 1, 0.01, 0.001, 1e-6, 250.0, 5.0)
    picked = cost.recommend(options)
    assert picked.choice == "real time" and "over Serverless Inference's 200" in picked.reason


def test_recommendation_batch_without_requests() -> None:
    picked = cost.recommend(_options(0))
    assert picked.choice == "batch" and "$5.00/month" in picked.reason


def test_usage_of_a_config_with_autoscaling_reads_min_and_max() -> None:
    config = StageConfig.model_validate(
        {
            "production": True,
            "endpoint": {
                "instance_type": "ml.c6i.xlarge",
                "instance_count": 2,
                "autoscaling": {"min_instances": 2, "max_instances": 4},
            },
            "traffic": {"requests_per_month": 1000, "peak_requests_per_second": 1},
        }
    )
    usage = cost.usage_of("prod", config)
    assert usage.instances == (cost.InstanceUsage("AllTraffic", "ml.c6i.xlarge", 2, 4),)
    table = prices_module.load()
    report = cost.stage_report(usage, table, cost.load_measured())
    endpoint = report.items[0]
    hourly = table.instance_hourly("ml.c6i.xlarge")
    assert endpoint.monthly_low == pytest.approx(2 * 730 * hourly)
    assert endpoint.monthly_high == pytest.approx(4 * 730 * hourly)
    assert "2-4 x ml.c6i.xlarge" in endpoint.quantity


def test_billed_hours_with_scale_to_zero() -> None:
    # 8 busy hours and a 20-minute scale-in delay a day: 8.333 h x 730 / 24 = 253.5 h a month; never above 730.
    assert cost.billed_hours_with_scale_to_zero(8, 20 / 60) == pytest.approx((8 + 1 / 3) * 730 / 24)
    assert cost.billed_hours_with_scale_to_zero(23.9, 1.0) == 730


def scale_to_zero_stage(traffic: dict[str, object]) -> StageConfig:
    return StageConfig.model_validate(
        {
            "endpoint": {
                "instance_type": "ml.c6i.large",
                "inference_component": {"min_copies": 0, "max_copies": 4, "scale_to_zero": True},
            },
            "traffic": {"requests_per_month": 100_000, "peak_requests_per_second": 5, **traffic},
        }
    )


def test_the_idle_saving_of_scale_to_zero_at_the_stated_busy_hours() -> None:
    # Given a component that scales to zero and requests 6 h a day, when the report prices the stage, then the
    # endpoint line runs from 0 instances, and one instance bills the busy hours plus the scale-in delay
    # (15 min alarm + 300 s cooldown = 20 min) instead of 730 h.
    usage = cost.usage_of("dev", scale_to_zero_stage({"busy_hours_per_day": 6}))
    assert usage.instances == (cost.InstanceUsage("AllTraffic", "ml.c6i.large", 0, 2),)
    assert usage.scale_to_zero == cost.ScaleToZeroUsage("ml.c6i.large", 1, 20 / 60, 6)
    table = prices_module.load()
    report = cost.stage_report(usage, table, cost.load_measured())
    hourly = table.instance_hourly("ml.c6i.large")
    saving = report.idle_saving
    assert saving is not None
    assert saving.hours_with == pytest.approx((6 + 1 / 3) * 730 / 24)
    assert saving.monthly_without == pytest.approx(730 * hourly)
    assert saving.monthly_saving == pytest.approx((730 - (6 + 1 / 3) * 730 / 24) * hourly)
    assert "one block of 6 h a day" in saving.assumption and "20 min" in saving.assumption
    text = cost.render([report], table)
    assert "scale to zero (1 x ml.c6i.large while requests arrive)" in text
    assert f"idle saving                             {730 - saving.hours_with:,.0f}" in text
    assert "assumption: requests arrive in one block of 6 h a day" in text


def test_without_busy_hours_the_report_assumes_requests_all_day() -> None:
    usage = cost.usage_of("dev", scale_to_zero_stage({}))
    report = cost.stage_report(usage, prices_module.load(), cost.load_measured())
    assert report.idle_saving is not None
    assert report.idle_saving.monthly_saving == 0
    assert "traffic.busy_hours_per_day is not set" in report.idle_saving.assumption


def test_busy_hours_are_hours_of_a_day() -> None:
    with pytest.raises(ValueError, match="less than or equal to 24"):
        TrafficSettings(requests_per_month=1, peak_requests_per_second=1, busy_hours_per_day=25)


def test_traffic_settings_are_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        TrafficSettings(requests_per_month=1, peak_requests_per_second=1, colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="below the average"):
        TrafficSettings(requests_per_month=30_000_000, peak_requests_per_second=1)
    for name, field in TrafficSettings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_price_table_is_sane() -> None:
    table = prices_module.load()
    assert table.as_of <= date.today(), "as_of is in the future"
    assert table.region == "us-east-1" and table.currency == "USD"
    assert table.sources and all(s.startswith("https://") for s in table.sources)
    numbers = [
        *table.realtime.values(),
        *table.elastic_inference.values(),
        *table.batch.values(),
        table.serverless.per_gb_second,
        table.serverless.per_gb_processed,
        table.serverless.provisioned_concurrency_per_gb_second,
        table.serverless.provisioned_inference_per_gb_second,
        table.api_gateway.rest_per_million_requests,
        table.lambda_.arm64_per_gb_second,
        table.lambda_.per_million_requests,
    ]
    assert all(isinstance(n, float) and n > 0 and math.isfinite(n) for n in numbers)
    required = REQUIRED_TYPES.split()
    assert not [t for t in required if t not in table.realtime]
    for accelerator in ("ml.eia1.medium", "ml.eia1.large", "ml.eia1.xlarge", "ml.eia2.medium", "ml.eia2.large"):
        assert table.instance_hourly(accelerator) > 0
    assert table.batch_hourly("ml.c6i.xlarge") == table.instance_hourly("ml.c6i.xlarge")
    # Every "unconfirmed" entry names something the table holds.
    known = {*table.realtime, *table.elastic_inference}
    assert all(k in known or k.startswith("serverless.") for k in table.unconfirmed)


def test_unknown_instance_type_lists_the_known_ones() -> None:
    with pytest.raises(KeyError) as caught:
        prices_module.load().instance_hourly("ml.x9.huge")
    assert isinstance(caught.value, prices_module.UnknownInstanceType)
    assert "ml.x9.huge" in str(caught.value) and "ml.c6i.xlarge" in str(caught.value)


def test_price_table_is_read_once() -> None:
    assert prices_module.load() is prices_module.load()


def test_measured_fallback_when_no_benchmark_ran(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    measured = cost.load_measured(bench=missing, bench_api=missing, bench_batch=missing)
    assert measured.vcpus == 2
    committed = json.loads(MEASURED_THROUGHPUT_FILE.read_text())
    assert measured.realtime_batched_texts_s.value == committed["realtime_batched_texts_per_s"]["value"]
    assert measured.realtime_single_texts_s.value == committed["realtime_single_texts_per_s"]["value"]
    assert measured.batch_records_s.value == committed["batch_records_per_s"]["value"]
    assert measured.one_core_share.value == committed["one_core_share"]["value"]
    assert "infra/catalog/measured_throughput.json" in measured.batch_records_s.source
    assert 0 < measured.one_core_share.value <= 1


def test_measured_reads_the_benchmark_results(tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "server": [
                    {"contender": "onnx-int8", "throughput_texts_s": 300.0, "short_p50_ms": 9},
                    {"contender": "onnx-int8 1 core", "throughput_texts_s": 165.0, "short_p50_ms": 12},
                ]
            }
        )
    )
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps({"records": 10, "stock (x)": {"records_per_s": 1.0}, "sagebert (y)": {"records_per_s": 200.0}})
    )
    measured = cost.load_measured(bench=bench, bench_api=tmp_path / "absent.json", bench_batch=batch)
    assert measured.realtime_batched_texts_s.value == 300.0 and measured.latency_single_text_ms.value == 9.0
    assert measured.one_core_share.value == pytest.approx(0.55) and "make bench" in measured.one_core_share.source
    assert measured.batch_records_s.value == 200.0 and "make bench-batch" in measured.batch_records_s.source


def test_cli_prints_a_table_per_stage(repo_root: Path, tmp_path: Path) -> None:
    from infra.config.stage import load_all

    out = io.StringIO()
    with redirect_stdout(out):
        assert cost.main(repo_root / "config", json_path=tmp_path / "cost.json") == 0
    text = out.getvalue()
    for stage in load_all(repo_root / "config"):
        assert f"SageBert-{stage}:" in text
    assert text.count("line item") == len(load_all(repo_root / "config"))
    assert "cost per million predictions" in text and "not measured here" in text and "recommendation:" in text
    document = json.loads((tmp_path / "cost.json").read_text())
    assert set(document["stages"]) == set(load_all(repo_root / "config"))


def test_cli_refuses_an_unknown_stage(repo_root: Path) -> None:
    with pytest.raises(cost.CostError, match="no stage 'nope'"):
        cost.main(repo_root / "config", stage="nope")
