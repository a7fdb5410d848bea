"""Regions a stage can deploy to, and the CloudFormation rule that refuses the others before anything is created.

An environment-agnostic stage learns its region only at deploy time. Without a rule, a region without the image's
registry or the Powertools layer's SSM parameter fails on a mapping or parameter lookup, with a message that names
neither sagebert nor the way out; the rule says which regions work.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Aws, CfnRule, CfnRuleAssertion, Fn, Stack, Token
from constructs import Construct

from infra.catalog.powertools import POWERTOOLS_REGIONS as POWERTOOLS_REGIONS


def require_region(scope: Construct, rule_id: str, regions: Iterable[str], needs: str) -> None:
    """Add a CloudFormation rule to scope's stack that refuses to deploy outside `regions`, naming what `needs`
    them. Only for stacks whose region is known at deploy time only (the config checks a literal region)."""
    stack = Stack.of(scope)
    if not Token.is_unresolved(stack.region) or stack.node.try_find_child(rule_id) is not None:
        return
    allowed = sorted(regions)
    CfnRule(
        stack,
        rule_id,
        assertions=[
            CfnRuleAssertion(
                assert_=Fn.condition_contains(allowed, Aws.REGION),
                assert_description=f"sagebert: {needs} exists only in {', '.join(allowed)}. Deploy to one of these "
                "regions (or set region in the stage's config file, which then checks it at synth).",
            )
        ],
    )
