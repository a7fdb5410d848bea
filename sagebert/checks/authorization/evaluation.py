"""IAM's decision for one run-time call: who calls (`Call`), the resource's own policy (`ResourcePolicy`), and
`evaluate`, which returns a `Verdict`.

Explicit Deny wins; same account: the identity or the resource policy may allow; another account: both must; a KMS
key: its key policy always (naming the account delegates to IAM). A Deny or an Allow under a condition the gate
cannot evaluate makes the verdict "undetermined", which fails like a denial.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sagebert.checks.authorization.policy import Principal, Statement


@dataclass(frozen=True)
class Call:
    """One run-time call: `principal` does `action` on `resource` (of `resource_type`), with `context` the condition
    keys the call supplies; `source` says which template value or config key names the resource."""

    principal: Principal
    action: str
    resource: str
    resource_type: str | None
    source: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    # The ARN the resource's own policy names it by, where the caller names it otherwise (a registry archive in the
    # owner stage's bucket, which the consumer's config names by its literal bucket name).
    policy_resource: str | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    undetermined: bool = False


@dataclass(frozen=True)
class ResourcePolicy:
    """A resource's own policy: `account` owns the resource; `statements` None when the gate cannot read it
    (`assumed` says what it takes instead)."""

    account: str | None
    statements: tuple[Statement, ...] | None
    kms: bool = False
    assumed: str = ""


def evaluate(call: Call, policy: ResourcePolicy | None) -> Verdict:
    """IAM's decision for one call: explicit deny, then identity and resource policy as the accounts require."""
    principal = call.principal
    context = {
        "aws:SecureTransport": ("true",),
        "aws:PrincipalArn": (principal.arn,),
        **({"aws:PrincipalAccount": (principal.account,)} if principal.account else {}),
        **call.context,
    }

    def matching(statements: Iterable[Statement], resource_side: bool) -> list[tuple[Statement, bool | None]]:
        found = []
        for statement in statements:
            if resource_side and not statement.matches_principal(principal):
                continue
            resource = call.policy_resource or call.resource if resource_side else call.resource
            if statement.matches_action(call.action) and statement.matches_resource(resource):
                found.append((statement, statement.condition(context)))
        return found

    identity = matching(principal.statements, resource_side=False)
    resource = matching(policy.statements or (), resource_side=True) if policy is not None else []
    for statement, result in identity + resource:
        if statement.effect == "Deny" and result is True:
            return Verdict(False, f"explicit deny ({statement.label})")
    for statement, result in identity + resource:
        if statement.effect == "Deny" and result is None:
            return Verdict(
                False,
                f"a Deny whose condition the gate cannot evaluate ({statement.label}: {dict(statement.conditions)})",
                undetermined=True,
            )

    def verdict_of(found: list[tuple[Statement, bool | None]]) -> tuple[bool, list[Statement]]:
        allows = [s for s, r in found if s.effect == "Allow" and r is True]
        unknown = [s for s, r in found if s.effect == "Allow" and r is None]
        return bool(allows), unknown

    identity_allows, identity_unknown = verdict_of(identity)
    if principal.service is not None:
        identity_allows, identity_unknown = False, []
    resource_allows_direct = any(
        s.effect == "Allow" and r is True and not s.names_account_only(principal) for s, r in resource
    )
    resource_allows_account = any(
        s.effect == "Allow" and r is True and s.names_account_only(principal) for s, r in resource
    )
    resource_unknown = [s for s, r in resource if s.effect == "Allow" and r is None]
    same_account = policy is None or policy.account is None or policy.account == principal.account
    readable = policy is not None and policy.statements is not None

    def unknown_reason(statements: list[Statement]) -> Verdict:
        labels = "; ".join(f"{s.label}: {dict(s.conditions)}" for s in statements)
        return Verdict(False, f"only allowed under a condition the gate cannot evaluate ({labels})", undetermined=True)

    if policy is not None and policy.kms and readable:
        # A KMS key: the key policy must allow the principal itself, or its account (then IAM must allow too).
        if resource_allows_direct:
            return Verdict(True)
        if resource_allows_account and identity_allows:
            return Verdict(True)
        if resource_allows_account and identity_unknown:
            return unknown_reason(identity_unknown)
        if resource_unknown:
            return unknown_reason(resource_unknown)
        if resource_allows_account:
            return Verdict(False, "the key policy delegates to IAM, and no identity policy statement allows it")
        return Verdict(False, "the key policy allows neither the principal nor its account")
    if same_account:
        if identity_allows or resource_allows_direct:
            return Verdict(True)
        if identity_unknown or resource_unknown:
            return unknown_reason(identity_unknown + resource_unknown)
        if principal.service is not None:
            return Verdict(False, "no statement of the resource policy allows the service principal")
        return Verdict(False, "no identity policy statement allows it")
    # Another account: both sides.
    if not identity_allows:
        if identity_unknown:
            return unknown_reason(identity_unknown)
        if principal.service is None:
            return Verdict(False, "no identity policy statement allows it")
    if not readable:
        assert policy is not None
        if policy.assumed:
            return Verdict(True)
        return Verdict(
            False,
            f"the resource is in account {policy.account}, whose resource policy is not in this app",
            undetermined=True,
        )
    if resource_allows_direct or resource_allows_account:
        return Verdict(True)
    if resource_unknown:
        return unknown_reason(resource_unknown)
    return Verdict(
        False,
        f"the resource policy in account {policy.account if policy else '?'} does not allow it (cross-account calls "
        "need both the identity and the resource policy)",
    )
