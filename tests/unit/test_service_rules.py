"""The service-rules gate: constraints the SageMaker API states only in prose, refused by the config and found in
templates (sagebert/checks/service_rules.py), and the create-only properties the resource schemas lack
(sagebert/checks/deploy_gates.py). Templates here are the few properties each rule reads; the shipped stages are
checked in tests/infra (test_inference_component.py, test_batch_transform_schedule.py, test_deploy_fidelity.py)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra.catalog import compute_profiles
from infra.catalog.measured import MEASURED_THROUGHPUT_FILE
from infra.config.batch import (
    HANDLER_MAX_LINES,
    SHORT_LINE_BYTES,
    TRANSFORM_MAX_PAYLOAD_MB,
    BatchSettings,
    largest_payload_mb,
    request_seconds,
)
from infra.config.endpoint import InferenceComponentSettings
from sagebert.checks import service_rules

ROOT = Path(__file__).resolve().parents[2]


def component(batch: dict[str, Any], copies: int = 1, scaling: tuple[int, int] | None = (0, 4)) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Component": {
            "Type": "AWS::SageMaker::InferenceComponent",
            "Properties": {
                "InferenceComponentName": "sagebert-dev",
                "RuntimeConfig": {"CopyCount": copies},
                "DeploymentConfig": {"RollingUpdatePolicy": {"MaximumBatchSize": batch, "WaitIntervalInSeconds": 300}},
            },
        }
    }
    if scaling is not None:
        resources["Target"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": {
                "ResourceId": "inference-component/sagebert-dev",
                "MinCapacity": scaling[0],
                "MaxCapacity": scaling[1],
            },
        }
    return {"Serving": {"Resources": resources}}


def test_a_batch_of_one_copy_is_refused_where_one_copy_is_over_half() -> None:
    # The dev stage before this gate: one copy of at most four, one copy per step (100% of one copy).
    (problem,) = service_rules.rolling_update_batches(component({"Type": "COPY_COUNT", "Value": 1}))
    assert "1 of 1 copies" in problem and "5-50%" in problem and "rolling_batch_percent" in problem
    # One copy of 2..20 copies is 50% .. 5%: accepted; at 21 copies one is under 5%.
    assert service_rules.rolling_update_batches(component({"Type": "COPY_COUNT", "Value": 1}, 2, (2, 20))) == []
    (problem,) = service_rules.rolling_update_batches(component({"Type": "COPY_COUNT", "Value": 1}, 2, (2, 21)))
    assert "1 of 21 copies" in problem


@pytest.mark.parametrize(("percent", "ok"), [(4, False), (5, True), (25, True), (50, True), (51, False)])
def test_a_capacity_percent_batch_is_five_to_fifty(percent: int, ok: bool) -> None:
    found = service_rules.rolling_update_batches(component({"Type": "CAPACITY_PERCENT", "Value": percent}))
    assert (found == []) == ok
    settings: dict[str, Any] = {"rolling_batch_percent": percent}
    if ok:
        assert InferenceComponentSettings.model_validate(settings).rolling_batch_percent == percent
    else:
        with pytest.raises(ValidationError, match="rolling_batch_percent"):
            InferenceComponentSettings.model_validate(settings)


def state_machine(arguments: dict[str, Any]) -> dict[str, Any]:
    """A state machine as CDK writes it: the definition joined around an imported bucket name."""
    definition = json.dumps(
        {
            "StartAt": "Transform",
            "States": {
                "Transform": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sagemaker:createTransformJob.sync",
                    "Arguments": {"BatchStrategy": "MultiRecord", "ModelName": "BUCKET", **arguments},
                    "End": True,
                }
            },
        }
    )
    head, tail = definition.split("BUCKET")
    joined = {"Fn::Join": ["", [head, {"Fn::ImportValue": "Storage:Bucket"}, tail]]}
    return {
        "Batch": {
            "Resources": {"Machine": {"Type": service_rules.STATE_MACHINE, "Properties": {"DefinitionString": joined}}}
        }
    }


def test_the_transform_request_of_todays_templates_is_refused() -> None:
    # SageMaker's 6 MB on dev's ml.c6i.large with the default 600 s: 196,608 short lines, twice the handler's limit.
    resources = {"TransformResources": {"InstanceType": "ml.c6i.large", "InstanceCount": 1}}
    (problem,) = service_rules.transform_request_sizing(
        state_machine({"MaxPayloadInMB": 6, "ModelClientConfig": {"InvocationsTimeoutInSeconds": 600}, **resources})
    )
    assert "MaxPayloadInMB 6 on ml.c6i.large" in problem and "Largest payload that fits: 2 MB" in problem
    # Left out, MaxPayloadInMB and the timeout are SageMaker's defaults (6 MB, 600 s): the same.
    assert service_rules.transform_request_sizing(state_machine(resources))
    fits = {"MaxPayloadInMB": TRANSFORM_MAX_PAYLOAD_MB, **resources}
    assert service_rules.transform_request_sizing(state_machine(fits)) == []
    # Eight requests at a time on one core: each gets an eighth of it.
    crowded = {**fits, "MaxConcurrentTransforms": 8}
    assert "Largest payload that fits: 0 MB" in service_rules.transform_request_sizing(state_machine(crowded))[0]


def test_request_sizing_figures() -> None:
    # One request at a time runs on one core of any instance: 2 MB of 32-byte lines is 65,536 texts, ~279 s at the
    # measured 234.5 texts/s, within half of 600 s; 3 MB (~419 s) needs the timeout raised; 4 MB passes the handler's
    # 100,000-line limit.
    assert TRANSFORM_MAX_PAYLOAD_MB == 2
    assert request_seconds(2, "ml.c6i.large", 0) == pytest.approx(65_536 / 234.5)
    assert request_seconds(2, "ml.c6i.xlarge", 0) == request_seconds(2, "ml.c6i.large", 0)
    assert largest_payload_mb("ml.c6i.large", 0, 600) == 2
    assert largest_payload_mb("ml.c6i.large", 0, 3600) == 3 == HANDLER_MAX_LINES * SHORT_LINE_BYTES // 2**20
    # Two requests at a time share ml.c6i.large's one core, but not ml.c6i.xlarge's two.
    assert largest_payload_mb("ml.c6i.large", 2, 600) == 1
    assert largest_payload_mb("ml.c6i.xlarge", 2, 600) == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_payload_mb": 6}, "over the handler's 100,000 lines per request"),
        ({"max_payload_mb": 3}, "take ~419 s: more than half of invocation_timeout_s = 600"),
        ({"instance_type": "ml.c6i.large", "max_concurrent_transforms": 2}, "set max_payload_mb: 1 or less"),
        ({"environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "5"}}, "SAGEMAKER_MODEL_SERVER_TIMEOUT = '5'"),
        ({"environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS": "60"}}, "counts seconds"),
    ],
)
def test_the_config_refuses_requests_that_outlast_the_timeout(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BatchSettings.model_validate(settings)


def test_what_fits_is_accepted() -> None:
    assert BatchSettings.model_validate({"max_payload_mb": 3, "invocation_timeout_s": 900}).max_payload_mb == 3
    raised = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "60", "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS": "3600"}
    assert BatchSettings.model_validate({"invocation_timeout_s": 3600, "environment": raised}).environment == raised


def test_the_measured_rate_is_the_measured_files() -> None:
    measured = json.loads(MEASURED_THROUGHPUT_FILE.read_text(encoding="utf-8"))
    rate = measured["realtime_batched_texts_per_s"]["value"] * measured["one_core_share"]["value"]
    assert pytest.approx(rate, abs=0.1) == compute_profiles.MEASURED_CPU_BATCHED_TEXTS_PER_S_PER_CORE


def test_short_lines_are_shorter_than_the_shipped_reviews() -> None:
    # A request of SHORT_LINE_BYTES lines is the pessimistic case: the shipped reviews, as batch input lines (a JSON
    # string and its newline), are longer on average, and none is shorter than 18 bytes.
    texts = [json.loads(line)["text"] for line in (ROOT / "data/sentiment/train.jsonl").read_text().splitlines()]
    sizes = [len(json.dumps(text, ensure_ascii=False).encode()) + 1 for text in texts]
    assert min(sizes) >= 18 and statistics.mean(sizes) > 2 * SHORT_LINE_BYTES
