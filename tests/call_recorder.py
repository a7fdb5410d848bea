"""Records the AWS operations the tests really make, and fails the run on one the authorization gate does not know.

Every botocore client created during the run gets a `before-parameter-build` hook (it fires before Stubber's
`before-call` answers, so stubbed calls are seen too). The hook records the operation, its parameter names and the
calling code: the first frame under lambdas/ (deployed Lambda code) or sagebert/ (the CLI). At the end of the
session each recorded operation must be classified in sagebert/checks/authorization/operations.py: deployed code's in
RUNTIME_OPERATIONS (the gate checks their IAM actions against the synthesized policies), the developer CLI's (run
with the developer's own credentials) in RUNTIME_OPERATIONS or DEVELOPER_OPERATIONS. A parameter that brings in a
resource type (PARAMETER_RESOURCE_TYPES: InvokeEndpoint's InferenceComponentName) must be one the gate's calls send.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session

from sagebert.checks import authorization

REPO_ROOT = Path(__file__).resolve().parent.parent
CODE_ROOTS = ("lambdas", "sagebert")


@dataclass(frozen=True)
class Recorded:
    code: str  # lambdas/<package> or sagebert/<path>.py
    service: str
    operation: str
    parameters: tuple[str, ...]


RECORDED: set[Recorded] = set()


def _caller() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(REPO_ROOT):
            parts = path.relative_to(REPO_ROOT).parts
            if parts and parts[0] == "lambdas" and len(parts) > 2:
                return f"lambdas/{parts[1]}"
            if parts and parts[0] == "sagebert":
                return "/".join(parts)
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _record(params: dict[str, Any], model: Any, **_: Any) -> None:
    code = _caller()
    if code is not None:
        RECORDED.add(Recorded(code, model.service_model.service_name, model.name, tuple(sorted(params))))


_original_create_client = botocore.session.Session.create_client


def _create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
    client = _original_create_client(self, *args, **kwargs)
    client.meta.events.register("before-parameter-build", _record)
    return client


def install() -> None:
    botocore.session.Session.create_client = _create_client  # type: ignore[method-assign]


def unclassified(recorded: set[Recorded]) -> list[str]:
    """One message per recorded operation the gate's tables do not classify."""
    problems = []
    runtime = authorization.RUNTIME_OPERATIONS
    for call in sorted(recorded, key=lambda r: (r.code, r.service, r.operation)):
        key = (call.code, call.service, call.operation)
        if call.code.startswith("lambdas/"):
            if key not in runtime:
                problems.append(
                    f"{call.code} calls {call.service} {call.operation} at run time, but "
                    "sagebert/checks/authorization/operations.py RUNTIME_OPERATIONS has no entry for it: add the IAM "
                    "actions it needs, and its resources to the gate's calls"
                )
                continue
            modeled = authorization.MODELED_PARAMETERS.get(key, ())
            for (action, resource_type), parameter in authorization.PARAMETER_RESOURCE_TYPES.items():
                if action in runtime[key] and parameter in call.parameters and parameter not in modeled:
                    problems.append(
                        f"{call.code} sends {parameter} on {call.operation}, which brings in the {resource_type} "
                        "resource type, but the authorization gate's calls do not model it (MODELED_PARAMETERS)"
                    )
        elif key not in runtime and (call.service, call.operation) not in authorization.DEVELOPER_OPERATIONS:
            problems.append(
                f"{call.code} calls {call.service} {call.operation}: classify it in "
                "sagebert/checks/authorization/operations.py (RUNTIME_OPERATIONS when a deployed principal runs it, "
                "e.g. in the pipeline; DEVELOPER_OPERATIONS when only a developer's own credentials do)"
            )
    return problems
