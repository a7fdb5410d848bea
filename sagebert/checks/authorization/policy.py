"""IAM policy statements as the gate reads them: parsing, and matching an action, a resource, a principal and a
condition block the way IAM does.

Wildcards, NotAction and NotResource follow the IAM grammar; conditions are answered only on the keys a call
supplies, and a condition on any other key answers "cannot tell" (None) so that the gate never passes on a guess.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's matching: `*` any run of characters, `?` one character, everything else literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


@dataclass(frozen=True)
class Statement:
    """One policy statement, its values resolved to strings. `where` names its policy for messages."""

    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: tuple[str, ...] | None = None  # resource policies: AWS ARNs/accounts, service names, "*"
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    sid: str = ""
    where: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> Statement:
        principals: tuple[str, ...] | None = None
        if "Principal" in raw:
            principal = raw["Principal"]
            if principal == "*":
                principals = ("*",)
            else:
                principals = tuple(str(p) for values in principal.values() for p in listed(values))
        conditions = {
            str(op): {str(k): tuple(str(v) for v in listed(vs)) for k, vs in block.items()}
            for op, block in (raw.get("Condition") or {}).items()
        }
        return cls(
            effect=str(raw.get("Effect", "Allow")),
            actions=tuple(str(a) for a in listed(raw.get("Action"))),
            not_actions=tuple(str(a) for a in listed(raw.get("NotAction"))),
            resources=tuple(str(r) for r in listed(raw.get("Resource")))
            if "Resource" in raw or "NotResource" not in raw
            else ("*",),
            not_resources=tuple(str(r) for r in listed(raw.get("NotResource"))),
            principals=principals,
            conditions=conditions,
            sid=str(raw.get("Sid", "")),
            where=where,
        )

    @property
    def label(self) -> str:
        return f"{self.where} {self.sid}".strip()

    def matches_action(self, action: str) -> bool:
        if self.not_actions:
            return not any(wildcard_match(a, action, ignore_case=True) for a in self.not_actions)
        return any(wildcard_match(a, action, ignore_case=True) for a in self.actions)

    def matches_resource(self, resource: str) -> bool:
        if self.not_resources:
            return not any(wildcard_match(r, resource) for r in self.not_resources)
        if not self.resources and self.principals:
            return True  # a resource policy without Resource (a role's trust policy) is about its own resource
        return any(r == "*" or wildcard_match(r, resource) for r in self.resources)

    def matches_principal(self, principal: Principal) -> bool:
        """Resource policies: the role itself, its account (arn:...:root or the bare id), "*", or its service."""
        if self.principals is None:
            return True
        for named in self.principals:
            if named == "*" or named == principal.arn or (principal.service is not None and named == principal.service):
                return True
            if principal.account is not None and named in (
                principal.account,
                f"arn:{_partition_of(named)}:iam::{principal.account}:root",
            ):
                return True
        return False

    def names_account_only(self, principal: Principal) -> bool:
        """True when the statement matches the principal through its account (IAM must then allow too)."""
        return (
            self.principals is not None
            and principal.arn not in self.principals
            and "*" not in self.principals
            and (principal.service is None or principal.service not in self.principals)
        )

    def condition(self, context: Mapping[str, tuple[str, ...]]) -> bool | None:
        """True/False for a condition block the context answers; None when it names a key the call does not
        supply (the gate cannot tell)."""
        lowered = {k.lower(): v for k, v in context.items()}
        for operator, block in self.conditions.items():
            for key, expected in block.items():
                result = _condition(operator, lowered.get(key.lower()), expected)
                if result is None or result is False:
                    return result
        return True


def _partition_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 else "aws"


def _condition(operator: str, actual: tuple[str, ...] | None, expected: tuple[str, ...]) -> bool | None:
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists").split(":")[-1]  # ForAnyValue:/ForAllValues: on single values alike
    if op == "Null":
        if actual is None:
            return None
        return (expected[0].lower() == "true") == (len(actual) == 0)
    if actual is None:
        return True if if_exists else None
    if not actual:  # the call supplies the key as absent
        return op.startswith(("StringNot", "ArnNot")) or if_exists
    negate = "Not" in op
    base = op.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        hit = any(a == e for a in actual for e in expected)
    elif base == "StringEqualsIgnoreCase":
        hit = any(a.lower() == e.lower() for a in actual for e in expected)
    elif base in ("StringLike", "ArnLike"):
        hit = any(wildcard_match(e, a) for a in actual for e in expected)
    elif base == "Bool":
        hit = any(a.lower() == e.lower() for a in actual for e in expected)
    else:
        return None  # numeric, date, IP address: no call here supplies those
    return not hit if negate else hit


@dataclass(frozen=True)
class Principal:
    """Who makes a call: a role (arn, account) or a service acting on its own (service, e.g. cloudwatch)."""

    label: str
    arn: str
    account: str | None
    service: str | None = None
    statements: tuple[Statement, ...] = ()
