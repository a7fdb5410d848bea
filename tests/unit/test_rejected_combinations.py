"""Every row of the "Rejected combinations" table (docs/configuration.md) is refused at synth with its message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra.config.errors import ConfigError
from infra.config.stage import load_stage_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN, END = "<!-- rejected-combinations:begin -->", "<!-- rejected-combinations:end -->"
ROW = re.compile(r"^\| `(?P<config>[^`]+)` \| (?P<why>[^|]+) \| `(?P<message>[^`]+)` \|$")


def rows() -> list[tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    table = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    found = [(m["config"], m["message"]) for line in table.splitlines() if (m := ROW.match(line.strip()))]
    assert len(found) >= 25, "the table lost rows (or its format changed)"
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


def test_each_profile_alone_is_accepted(tmp_path: Path) -> None:
    # The refusals are about the combinations: every profile but elastic-inference is fine on its own.
    for compute in ("cpu", "gpu", "inferentia", "serverless", "async"):
        path = tmp_path / f"{compute}.yaml"
        path.write_text(yaml.safe_dump({"endpoint": {"compute": compute}}), encoding="utf-8")
        assert load_stage_config(path).endpoint.compute == compute
