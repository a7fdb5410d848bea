"""The gate itself: every stage's declared calls evaluated against the app's synthesized policies (`check`), the
denials and the problems as a `Report`, and the converse, identity grants of the calling principals that no
declared call uses (`unused_grants`: a report, not a failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sagebert.checks.authorization.app import App, StageInput, account_of
from sagebert.checks.authorization.calls import stage_calls
from sagebert.checks.authorization.evaluation import Call, ResourcePolicy, Verdict, evaluate
from sagebert.checks.authorization.operations import PARAMETER_RESOURCE_TYPES
from sagebert.checks.authorization.policy import Principal, wildcard_match


@dataclass(frozen=True)
class Denied:
    stage: str
    call: Call
    verdict: Verdict

    def __str__(self) -> str:
        context = "".join(
            f" with {key}={','.join(values)}" for key, values in self.call.context.items() if not key.startswith("aws:")
        )
        return (
            f"{self.stage}: {self.call.principal.label} may not {self.call.action} on {self.call.resource}{context} "
            f"({self.call.source}): {self.verdict.reason}"
        )


@dataclass(frozen=True)
class Unused:
    principal: str
    statement: str
    action: str
    resource: str


@dataclass
class Report:
    calls: list[tuple[str, Call]] = field(default_factory=list)
    denied: list[Denied] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unused: list[Unused] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [str(d) for d in self.denied] + self.problems

    @property
    def principals(self) -> int:
        return len({call.principal.label for _, call in self.calls})

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": [
                {
                    "stage": stage,
                    "principal": c.principal.label,
                    "action": c.action,
                    "resource": c.resource,
                    "resource_type": c.resource_type,
                    "source": c.source,
                }
                for stage, c in self.calls
            ],
            "failures": self.failures,
            "unused_grants": [u.__dict__ for u in self.unused],
        }


def check(stages: Sequence[StageInput]) -> Report:
    """Every stage's declared calls, evaluated against the app's synthesized policies; and the converse, identity
    grants of the same principals that no call uses."""
    app = App(stages)
    report = Report()
    for stage in stages:
        calls, problems = stage_calls(app, stage)
        report.problems += problems
        for call in calls:
            report.calls.append((stage.name, call))
            policy: ResourcePolicy | None
            if call.action == "sts:AssumeRole":
                # A role's trust policy is the resource policy of AssumeRole; a role outside the app is unknown.
                policy = app.trust.get(call.resource, ResourcePolicy(account_of(call.resource), None))
            else:
                policy = None if call.resource == "*" else app.policy_for(call.policy_resource or call.resource)
            verdict = evaluate(call, policy)
            if not verdict.allowed:
                report.denied.append(Denied(stage.name, call, verdict))
        report.problems += _component_coverage(stage.name, calls)
    report.unused = unused_grants([c for _, c in report.calls])
    return report


def _component_coverage(stage: str, calls: Sequence[Call]) -> list[str]:
    """A call that sends a parameter which brings in a resource type (InferenceComponentName) must be checked on
    that type too."""
    problems = []
    for call in calls:
        for (action, resource_type), parameter in PARAMETER_RESOURCE_TYPES.items():
            if call.action != action or parameter not in call.parameters:
                continue
            if not any(
                c.principal == call.principal and c.action == action and c.resource_type == resource_type for c in calls
            ):
                problems.append(
                    f"{stage}: {call.principal.label} {action} sends {parameter}, but no call checks "
                    f"its {resource_type} resource"
                )
    return sorted(set(problems))


def unused_grants(calls: Sequence[Call]) -> list[Unused]:
    """Identity Allow statements (action, resource) of the calling principals that no declared call uses."""
    by_principal: dict[str, tuple[Principal, list[Call]]] = {}
    for call in calls:
        if call.principal.service is None:
            by_principal.setdefault(call.principal.arn, (call.principal, []))[1].append(call)
    unused = []
    for principal, own in by_principal.values():
        for statement in principal.statements:
            if statement.effect != "Allow" or statement.not_actions or statement.sid == "AdministratorAccess":
                continue
            for action in statement.actions:
                for resource in statement.resources or ("*",):
                    if not any(
                        wildcard_match(action, c.action, ignore_case=True)
                        and (resource == "*" or wildcard_match(resource, c.resource))
                        for c in own
                    ):
                        unused.append(Unused(principal.label, statement.label, action, resource))
    return unused


def summary(report: Report, stages: int) -> str:
    return (
        f"authorization: {len(report.calls)} run-time calls of {report.principals} principals allowed by the "
        f"synthesized policies ({stages} stages); {len(report.unused)} grants no declared call uses"
    )
