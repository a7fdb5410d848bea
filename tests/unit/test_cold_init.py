"""The front door's init loads what it uses: the X-Ray SDK only when the function is traced.

Each case imports the handler in a fresh Python process, as Lambda's init does. `make bench-api`
measures the times (the SDK is the largest part of the init otherwise); this checks which modules
an init loads, which does not depend on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from front_door.settings import Settings, SettingsError

from sagebert.paths import LAMBDAS_DIR
from tests.unit.front_door_support import HANDLER_ENV

PROBE = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); import front_door.handler as h; "
    "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, 'boto3': 'boto3' in sys.modules, "
    "'tracing': h.settings.tracing}))"
)


def _init(**env: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(LAMBDAS_DIR)],
        env={**os.environ, **HANDLER_ENV, "POWERTOOLS_METRICS_DISABLED": "true", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_an_untraced_init_never_imports_the_xray_sdk_or_boto3() -> None:
    assert _init(SAGEBERT_TRACING="false") == {"xray": False, "boto3": False, "tracing": False}
    assert _init()["xray"] is False  # unset (local runs): untraced


def test_a_traced_init_patches_botocore_with_the_xray_sdk() -> None:
    traced = _init(SAGEBERT_TRACING="true", POWERTOOLS_TRACE_DISABLED="false", AWS_LAMBDA_FUNCTION_NAME="f")
    assert traced == {"xray": True, "boto3": False, "tracing": True}


def test_a_bad_tracing_flag_stops_init_with_its_name() -> None:
    with pytest.raises(SettingsError, match="SAGEBERT_TRACING='yes': use true or false"):
        Settings.from_env({"SAGEBERT_ENDPOINT_NAME": "e", "SAGEBERT_TRACING": "yes"})
