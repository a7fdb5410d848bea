"""The monitoring: section: defaults, limits and the messages a bad value gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config.errors import ConfigError
from infra.config.monitoring import MonitoringSettings
from infra.config.stage import load_all, load_stage_config


def error_for(tmp_path: Path, monitoring: str) -> str:
    path = tmp_path / "dev.yaml"
    path.write_text(f"monitoring:\n{monitoring}", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_stage_config(path)
    message = str(raised.value)
    assert str(path) in message, "the message names the file"
    return message


def test_absent_section_means_no_monitoring(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("", encoding="utf-8")
    assert load_stage_config(path).monitoring is None


def test_empty_section_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text("monitoring: {}\n", encoding="utf-8")
    settings = load_stage_config(path).monitoring
    assert settings == MonitoringSettings()
    assert (settings.period_s, settings.evaluation_periods, settings.datapoints_to_alarm) == (300, 3, 2)
    assert (settings.api_latency_p99_ms, settings.model_latency_p99_ms) == (2000, 1000)
    assert (settings.api_5xx_rate_percent, settings.api_4xx_rate_percent, settings.min_requests) == (1, 10, 10)
    assert settings.alarm_email is None and settings.dashboard is True


def test_committed_stages(repo_root: Path) -> None:
    stages = load_all(repo_root / "config")
    # staging and prod are monitored, without an e-mail in the repository; dev has the section commented out.
    assert stages["dev"].monitoring is None
    for stage in ("staging", "prod"):
        settings = stages[stage].monitoring
        assert settings is not None and settings.dashboard and settings.alarm_email is None


def test_every_field_says_its_default() -> None:
    for name, field in MonitoringSettings.model_fields.items():
        assert field.description and "Default: " in field.description, name


def test_more_breaching_datapoints_than_evaluated_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, "  evaluation_periods: 3\n  datapoints_to_alarm: 4\n")
    assert "monitoring.datapoints_to_alarm = 4 is more than monitoring.evaluation_periods = 3" in message
    assert "Lower datapoints_to_alarm to 3 or less" in message


def test_an_alarm_may_look_back_one_day_at_most(tmp_path: Path) -> None:
    # 288 five-minute periods are exactly a day; one more is too many.
    path = tmp_path / "ok.yaml"
    path.write_text("monitoring: {evaluation_periods: 288}\n", encoding="utf-8")
    assert load_stage_config(path).monitoring is not None
    message = error_for(tmp_path, "  evaluation_periods: 289\n")
    assert "evaluation_periods * period_s = 289 * 300 = 86700 s, over CloudWatch's one day (86400 s)" in message


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("  period_s: 90\n", "monitoring.period_s = 90: Input should be a multiple of 60"),
        ("  period_s: 0\n", "monitoring.period_s = 0: Input should be greater than or equal to 60"),
        (
            "  api_latency_p99_ms: 30000\n",
            "monitoring.api_latency_p99_ms = 30000: Input should be less than or equal to 29000",
        ),
        ("  model_latency_p99_ms: 0\n", "monitoring.model_latency_p99_ms = 0: Input should be greater than 0"),
        (
            "  api_5xx_rate_percent: 101\n",
            "monitoring.api_5xx_rate_percent = 101: Input should be less than or equal to 100",
        ),
        (
            "  cpu_utilization_percent: 150\n",
            "monitoring.cpu_utilization_percent = 150: Input should be less than or equal to 100",
        ),
        (
            "  gpu_utilization_percent: 900\n",
            "monitoring.gpu_utilization_percent = 900: Input should be less than or equal to 800",
        ),
        ("  lambda_errors: 0\n", "monitoring.lambda_errors = 0: Input should be greater than or equal to 1"),
        ("  alarm_email: not-an-address\n", "monitoring.alarm_email = 'not-an-address': String should match pattern"),
        ("  dashbord: true\n", "monitoring.dashbord: unknown key (value True); allowed keys here: period_s,"),
    ],
)
def test_bad_values_name_the_key_and_the_limit(tmp_path: Path, yaml: str, expected: str) -> None:
    assert expected in error_for(tmp_path, yaml)


def test_units_are_explained_where_the_value_is_refused(tmp_path: Path) -> None:
    # The field's description follows the message: ModelLatency's microseconds, CPU per vCPU.
    assert "microseconds" in error_for(tmp_path, "  model_latency_p99_ms: -1\n")
    assert "per vCPU" in error_for(tmp_path, "  cpu_utilization_percent: 0\n")
