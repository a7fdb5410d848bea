"""Service rules: constraints the SageMaker API states only in its documentation, which CloudFormation passes through
unchecked and cfn-lint cannot see (its schemas carry the types and ranges, not the prose). A template that breaks one
deploys its first version and fails on an update, or fails a nightly job hours later. The config refuses what it can
(each rule sits beside its setting, with its source); these checks read the synthesized templates, so a value that
reached a template some other way is caught too.

- Rolling updates (`rolling_update_batches`): an inference component's RollingUpdatePolicy.MaximumBatchSize "must be
  between 5% to 50% of the copy count of the inference component" (botocore's sagemaker service-2.json,
  InferenceComponentRollingUpdatePolicy). A CAPACITY_PERCENT batch must be 5-50; a COPY_COUNT batch must be 5-50% of
  every copy count the component can have: its RuntimeConfig.CopyCount and every count between its scalable
  target's MinCapacity (at least 1) and MaxCapacity.
- Transform sizing (`transform_request_sizing`): a MultiRecord request must be answered within
  ModelClientConfig.InvocationsTimeoutInSeconds (default 600); the state machine's CreateTransformJob arguments are
  read back and sized as infra/config/batch.py sizes them (MaxPayloadInMB of short lines, the instance's cores, the
  measured texts per second, MaxConcurrentTransforms, a margin of 2).

Create-only semantics the resource schemas lack live in sagebert/checks/deploy_gates.py (CREATE_ONLY_SUPPLEMENT).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from infra.config.batch import (
    HANDLER_MAX_LINES,
    MB,
    REQUEST_TIME_MARGIN,
    SHORT_LINE_BYTES,
    TRANSFORM_INVOCATION_TIMEOUT_S,
    largest_payload_mb,
    request_seconds,
)
from infra.config.endpoint import ROLLING_BATCH_PERCENT

Template = Mapping[str, Any]
INFERENCE_COMPONENT = "AWS::SageMaker::InferenceComponent"
SCALABLE_TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"
# SageMaker's default MaxPayloadInMB when a request leaves it out (CreateTransformJob in botocore's service model).
DEFAULT_MAX_PAYLOAD_MB = 6


def _resources(template: Template, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in sorted(template.get("Resources", {}).items()):
        if resource.get("Type") == resource_type:
            yield logical_id, resource.get("Properties", {})


def copy_counts(template: Template, component: Mapping[str, Any]) -> list[int]:
    """The copy counts an inference component can have: its CopyCount, and its scalable target's range (from 1)."""
    counts = {int(component.get("RuntimeConfig", {}).get("CopyCount", 1))}
    name = component.get("InferenceComponentName")
    for _, target in _resources(template, SCALABLE_TARGET):
        if isinstance(name, str) and target.get("ResourceId") == f"inference-component/{name}":
            counts |= set(range(max(1, int(target["MinCapacity"])), int(target["MaxCapacity"]) + 1))
    return sorted(n for n in counts if n >= 1)


def rolling_update_batches(templates: Mapping[str, Template]) -> list[str]:
    """Inference components whose rolling-update batch SageMaker would refuse at some copy count (one message each)."""
    low, high = ROLLING_BATCH_PERCENT
    problems = []
    for stack, template in sorted(templates.items()):
        for logical_id, component in _resources(template, INFERENCE_COMPONENT):
            policy = component.get("DeploymentConfig", {}).get("RollingUpdatePolicy")
            if not policy:
                continue
            size = policy["MaximumBatchSize"]
            kind, value = size["Type"], int(size["Value"])
            if kind == "CAPACITY_PERCENT":
                bad = [] if low <= value <= high else [f"{value}%"]
            else:
                bad = [
                    f"{value} of {n} copies"
                    for n in copy_counts(template, component)
                    if not low <= 100 * value / n <= high
                ]
            if bad:
                problems.append(
                    f"{stack}: {logical_id} rolling update MaximumBatchSize {kind} {value}: {', '.join(bad[:3])} is "
                    f"outside the {low}-{high}% of the copy count SageMaker accepts "
                    "(InferenceComponentRollingUpdatePolicy); the first update of the component fails. Use "
                    "CAPACITY_PERCENT "
                    f"(endpoint.inference_component.rolling_batch_percent, {low} to {high})."
                )
    return problems


def _definition(definition: Any) -> dict[str, Any] | None:
    """A state machine's DefinitionString as JSON, with each intrinsic (a Ref or an import inside a string) as "X"."""
    if isinstance(definition, str):
        text = definition
    elif isinstance(definition, dict) and "Fn::Join" in definition:
        separator, parts = definition["Fn::Join"]
        text = separator.join(part if isinstance(part, str) else "X" for part in parts)
    else:
        return None
    try:
        parsed: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        return None
    return parsed


def _transform_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition.get("States", {}).items():
        if re.search(r"createTransformJob(\.sync)?$", str(state.get("Resource", ""))):
            yield name, state.get("Arguments") or state.get("Parameters") or {}
        for branch in state.get("Branches", []):  # Parallel states
            yield from _transform_states(branch)


def transform_request_sizing(templates: Mapping[str, Template]) -> list[str]:
    """CreateTransformJob requests in state machines whose MultiRecord requests of short lines would outlast the
    invocation timeout (with the margin) or the handler's line limit."""
    problems = []
    for stack, template in sorted(templates.items()):
        for logical_id, machine in _resources(template, STATE_MACHINE):
            definition = _definition(machine.get("DefinitionString"))
            if definition is None:
                continue
            for state, arguments in _transform_states(definition):
                if arguments.get("BatchStrategy") != "MultiRecord":
                    continue
                payload = int(arguments.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB))
                timeout = int(
                    arguments.get("ModelClientConfig", {}).get(
                        "InvocationsTimeoutInSeconds", TRANSFORM_INVOCATION_TIMEOUT_S
                    )
                )
                concurrent = int(arguments.get("MaxConcurrentTransforms", 0))
                instance_type = arguments.get("TransformResources", {}).get("InstanceType")
                if not isinstance(instance_type, str):
                    continue
                largest = largest_payload_mb(instance_type, concurrent, timeout)
                if payload <= largest:
                    continue
                seconds = request_seconds(payload, instance_type, concurrent)
                lines = payload * MB // SHORT_LINE_BYTES
                problems.append(
                    f"{stack}: {logical_id} state {state}: MaxPayloadInMB {payload} on {instance_type} "
                    f"(MaxConcurrentTransforms {concurrent or 'SageMaker default, 1'}) is {lines:,} lines of "
                    f"{SHORT_LINE_BYTES} bytes, ~{seconds:.0f} s per request (handler limit {HANDLER_MAX_LINES:,} "
                    f"lines); InvocationsTimeoutInSeconds {timeout} needs at most "
                    f"{timeout / REQUEST_TIME_MARGIN:.0f} s. "
                    f"Largest payload that fits: {largest} MB (batch.max_payload_mb)."
                )
    return problems


def problems(templates: Mapping[str, Template]) -> list[str]:
    """Every service-rule problem in one stage's (or one group's) templates."""
    return rolling_update_batches(templates) + transform_request_sizing(templates)
