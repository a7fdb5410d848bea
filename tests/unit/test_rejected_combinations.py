"""Every row of the "Rejected combinations" tables (docs/configuration.md) is refused at synth with its message: the
one-stage table through load_stage_config, the stage-set table through load_all and load_pipeline_config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra.config.errors import ConfigError
from infra.config.pipeline import load_pipeline_config
from infra.config.stage import PIPELINE_FILE, load_all, load_stage_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN, END = "<!-- rejected-combinations:begin -->", "<!-- rejected-combinations:end -->"
ROW = re.compile(r"^\| `(?P<config>[^`]+)` \| (?P<why>[^|]+) \| `(?P<message>[^`]+)` \|$")


SET_BEGIN, SET_END = "<!-- rejected-stage-sets:begin -->", "<!-- rejected-stage-sets:end -->"


def table_rows(begin: str, end: str) -> list[tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    table = text[text.index(begin) + len(begin) : text.index(end)]
    return [(m["config"], m["message"]) for line in table.splitlines() if (m := ROW.match(line.strip()))]


def rows() -> list[tuple[str, str]]:
    found = table_rows(BEGIN, END)
    assert len(found) >= 25, "the table lost rows (or its format changed)"
    return found


def set_rows() -> list[tuple[str, str]]:
    found = table_rows(SET_BEGIN, SET_END)
    assert len(found) >= 7, "the stage-set table lost rows (or its format changed)"
    return found


def as_stage(snippet: str) -> dict[str, object]:
    """A row's YAML: either a whole stage (`{model: ..., endpoint: ...}`) or one section (`endpoint: {...}`)."""
    loaded = yaml.safe_load(snippet)
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize(("snippet", "message"), rows(), ids=[r[0][:60] for r in rows()])
def test_each_rejected_combination_fails_with_its_message(snippet: str, message: str, tmp_path: Path) -> None:
    # Given a stage file with only that combination, when it is loaded (as synth does), then it is refused and
    # the message names the problem as the page says.
    path = tmp_path / "stage.yaml"
    path.write_text(yaml.safe_dump(as_stage(snippet)), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_stage_config(path)
    assert message in str(refused.value)


@pytest.mark.parametrize(("snippet", "message"), set_rows(), ids=[r[0][:60] for r in set_rows()])
def test_each_rejected_stage_set_fails_with_its_message(snippet: str, message: str, tmp_path: Path) -> None:
    # Given the row's files (each stage file valid on its own), when the folder is loaded as synth loads it (the
    # stages, then pipeline.yaml against them), then it is refused as a whole with the row's message.
    files = as_stage(snippet)
    for stem, content in files.items():
        name = PIPELINE_FILE if stem == "pipeline" else f"{stem}.yaml"
        (tmp_path / name).write_text(yaml.safe_dump(content), encoding="utf-8")
    for stem in files:
        if stem != "pipeline":
            load_stage_config(tmp_path / f"{stem}.yaml")  # each file alone is fine
    with pytest.raises(ConfigError) as refused:
        load_pipeline_config(tmp_path, load_all(tmp_path))
    assert message in str(refused.value)


def test_registry_stages_that_name_the_owners_group_where_it_is_are_accepted(tmp_path: Path) -> None:
    # The refusals are about the combinations: an owner sharing with a consumer that names it is fine.
    owner = {
        "account": "111111111111",
        "region": "eu-west-1",
        "registry": {"owner": True, "share_with_accounts": ["222222222222"]},
    }
    consumer = {
        "account": "222222222222",
        "region": "eu-west-1",
        "model": {
            "source": "registry",
            "group": "sagebert-models",
            "group_account": "111111111111",
            "model_data_prefix": "s3://bucket-a/registry/",
            "kms_key_arn": "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
        },
    }
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(owner), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(consumer), encoding="utf-8")
    stages = load_all(tmp_path)
    assert load_pipeline_config(tmp_path, stages) is None
    assert set(stages) == {"a", "b"}


def test_each_profile_alone_is_accepted(tmp_path: Path) -> None:
    # The refusals are about the combinations: every profile but elastic-inference is fine on its own.
    for compute in ("cpu", "gpu", "inferentia", "serverless", "async"):
        path = tmp_path / f"{compute}.yaml"
        path.write_text(yaml.safe_dump({"endpoint": {"compute": compute}}), encoding="utf-8")
        assert load_stage_config(path).endpoint.compute == compute
