"""Facts that live on both sides of the import boundary: infra/ may not import lambdas/ or model_code/, and
they may not import infra, so each side keeps its copy and these tests keep the copies equal. sagebert/ keeps
a copy of a handler limit too: the handler is a script in the model archive, not a module sagebert imports.

The front door's time budget and defaults, and the request limits it shares with the model, are kept
equal in tests/unit/test_front_door.py; the front door's environment variables in
tests/infra/test_inference_api.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

import pytest
from batch_manifest.manifest import MANIFEST_NAME

from infra.catalog.compute_profiles import PROFILES
from infra.config.batch import BAD_LINES_VARIABLE, BatchSettings
from sagebert.release import quantize

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import inference


def test_the_bad_lines_variable_and_its_modes_are_the_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    field = BatchSettings.model_fields["bad_lines"]
    for mode in get_args(field.annotation):
        monkeypatch.setenv(BAD_LINES_VARIABLE, mode)
        assert inference.bad_lines_mode() == mode
    monkeypatch.delenv(BAD_LINES_VARIABLE)
    assert inference.bad_lines_mode() == field.default  # unset in the container: the config's default


def test_every_profiles_runtime_is_a_handler_mode() -> None:
    # The profile's runtime becomes SAGEBERT_RUNTIME, which the handler refuses unless it names one of its modes.
    assert {profile.runtime for profile in PROFILES.values()} <= set(inference.RUNTIMES)


def test_the_batch_config_names_the_manifest_the_lambda_writes() -> None:
    assert f"`{MANIFEST_NAME}`" in (BatchSettings.model_fields["output_prefix"].description or "")


def test_the_tools_truncate_texts_where_the_handler_does() -> None:
    assert quantize.MAX_TOKENS == inference.MAX_TOKENS
