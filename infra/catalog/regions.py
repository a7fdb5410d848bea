"""Regions a stage can deploy to, and the CloudFormation rule that refuses the others before anything is created.

An environment-agnostic stage learns its region only at deploy time. Without a rule, a region without the image's
registry or the Powertools layer's SSM parameter fails on a mapping or parameter lookup, and a region without one
of the stage's resource types fails with "Unrecognized resource types" after the stacks before it have deployed;
neither message names sagebert or the way out. So every stack of such a stage gets one rule, `SupportedRegion`,
admitting the same regions: those of the image catalog where every regional artifact that a construct asked for
(`require_region`) exists and every resource type of the stage's stacks exists (resource_regions, from cfn-lint's
provider schemas). The first stack CloudFormation deploys refuses a region that any later one could not use.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import (
    Aws,
    CfnResource,
    CfnRule,
    CfnRuleAssertion,
    Fn,
    IStableListProducer,
    IStableStringProducer,
    Lazy,
    Stack,
    Stage,
    Token,
)
from constructs import Construct

from infra.catalog import images as image_catalog
from infra.catalog import resource_regions
from infra.catalog.powertools import POWERTOOLS_REGIONS as POWERTOOLS_REGIONS
from infra.catalog.resource_regions import RULE_ID


@dataclass(frozen=True)
class Admitted:
    """The regions a stage admits and, for each thing that narrows them, what it is and the regions it removes."""

    regions: list[str]
    limits: list[str]


@jsii.implements(IStableListProducer)
class _List:
    def __init__(self, produce: Callable[[], list[str]]) -> None:
        self._produce = produce

    def produce(self, context: Any = None) -> list[str]:
        return self._produce()


@jsii.implements(IStableStringProducer)
class _String:
    def __init__(self, produce: Callable[[], str]) -> None:
        self._produce = produce

    def produce(self, context: Any = None) -> str:
        return self._produce()


class SupportedRegion(CfnRule):
    """The one region rule of an environment-agnostic stack (logical ID SupportedRegion). Its list is worked out
    at synth, when every stack of the stage is complete: the stage's needs (`need`) and resource types."""

    def __init__(self, scope: Stack) -> None:
        self.needs: dict[str, tuple[str, frozenset[str]]] = {}
        super().__init__(
            scope,
            RULE_ID,
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_contains(Lazy.list(_List(lambda: self.admitted().regions)), Aws.REGION),
                    assert_description=Lazy.string(_String(self._description)),
                )
            ],
        )

    def need(self, key: str, regions: Iterable[str], needs: str) -> None:
        """This stack needs `needs`, which exists only in `regions` (once per key)."""
        self.needs.setdefault(key, (needs, frozenset(regions)))

    def admitted(self) -> Admitted:
        """The regions every stack of this rule's stage can deploy to, and what narrows them."""
        stacks = _stage_stacks(Stack.of(self))
        rules = [rule for stack in stacks if isinstance(rule := stack.node.try_find_child(RULE_ID), SupportedRegion)]
        needs = {key: need for rule in rules for key, need in rule.needs.items()}
        types = {
            node.cfn_resource_type
            for stack in stacks
            for node in stack.node.find_all()
            if isinstance(node, CfnResource)
        }
        return admitted(needs.values(), types)

    def _description(self) -> str:
        found = self.admitted()
        return (
            f"sagebert: this stage deploys only to {', '.join(found.regions) or 'no region'}. "
            + "".join(f"{limit[0].upper()}{limit[1:]}. " for limit in found.limits)
            + "Deploy to one of the regions above (or set region in the stage's config file, which then checks it "
            "at synth)."
        )


def admitted(needs: Iterable[tuple[str, frozenset[str]]], types: Iterable[str]) -> Admitted:
    """The image catalog's regions where every need (what, regions) and every resource type exists."""
    universe = image_catalog.regions()
    allowed = set(universe)
    limits = []
    for what, regions in sorted(needs):
        if universe - regions:
            limits.append(f"{what} is not in {', '.join(sorted(universe - regions))}")
        allowed &= regions
    by_absent: dict[tuple[str, ...], list[str]] = {}
    for type_, absent in resource_regions.lacking(types, universe).items():
        by_absent.setdefault(tuple(absent), []).append(type_)
        allowed -= set(absent)
    unknown = resource_regions.unknown(universe)
    allowed -= set(unknown)
    missing = [f"no {', '.join(found)} in {', '.join(absent)}" for absent, found in sorted(by_absent.items())]
    missing += [f"no resource types known in {', '.join(unknown)}"] if unknown else []
    if missing:
        limits.append(f"CloudFormation ({resource_regions.source()}) has {'; '.join(missing)}")
    return Admitted(regions=sorted(allowed), limits=limits)


def _stage_stacks(stack: Stack) -> list[Stack]:
    """The environment-agnostic stacks of `stack`'s stage (only `stack` when it is in no stage)."""
    stage = Stage.of(stack)
    if stage is None:
        return [stack]
    return [
        node
        for node in stage.node.find_all()
        if isinstance(node, Stack)
        and Token.is_unresolved(node.region)
        and (owner := Stage.of(node)) is not None
        and owner.node.path == stage.node.path
    ]


def supported_region(scope: Construct) -> SupportedRegion | None:
    """The region rule of scope's stack, created on first use; None when the stack's region is known at synth
    (the config checks a literal region)."""
    stack = Stack.of(scope)
    if not Token.is_unresolved(stack.region):
        return None
    found = stack.node.try_find_child(RULE_ID)
    if isinstance(found, SupportedRegion):
        return found
    return SupportedRegion(stack)


def require_region(scope: Construct, key: str, regions: Iterable[str], needs: str) -> None:
    """Scope's stack needs `needs`, which exists only in `regions`: its stage's region rule admits no other (`key`
    names the need once per stack). Nothing for a stack whose region is known at synth."""
    rule = supported_region(scope)
    if rule is not None:
        rule.need(key, regions, needs)
