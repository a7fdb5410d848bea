"""The handler inside the toolkit's own HuggingFaceHandlerService, in-process (no Java, no HTTP)."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from sagebert.paths import SERVE_PYTHON

pytestmark = pytest.mark.server
DRIVER = Path(__file__).with_name("handler_service_driver.py")


def test_handler_service_loads_and_serves_the_archive(default_artifact: Path, tmp_path: Path) -> None:
    with tarfile.open(default_artifact) as tar:
        tar.extractall(tmp_path, filter="data")
    cases = [
        ['{"inputs": ["Loved every minute.", "A waste of money."]}', "application/json", "application/json"],
        ["{broken", "application/json", "application/json"],
        ['{"inputs": "x", "parameters": {"top_p": 1}}', "application/json", "application/json"],
        ['"Great staff."\n{oops', "application/jsonlines", "application/jsonlines"],
        ['{"inputs": "Still serving after errors."}', "application/json", "*/*"],
    ]
    done = subprocess.run(
        [str(SERVE_PYTHON), str(DRIVER), str(tmp_path), json.dumps(cases)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    good, broken, unknown, lines, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert [a["label"] for a in json.loads(good["ok"])] == ["positive", "negative"]
    assert broken["code"] == 400 and "not valid JSON" in broken["error"]
    assert unknown["code"] == 400 and "unknown parameters ['top_p']" in unknown["error"]
    records = [json.loads(line) for line in lines["ok"].splitlines()]
    assert records[0]["label"] == "positive" and "line 2" in records[1]["error"]
    assert json.loads(after["ok"])[0]["label"] in {"positive", "negative"}
