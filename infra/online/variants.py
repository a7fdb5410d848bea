"""The endpoint's variants, planned from the `endpoint:` section: what each one serves and on what.

A plan lists the production variants (the main one first, then each A/B variant) and the optional
shadow, each with its model source, instance type and count, traffic weight and model-server
workers. Plain Python, no CDK: the serving stack creates one model per planned variant and hands
the plan to the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.catalog import compute_profiles
from infra.config.endpoint import EndpointSettings
from infra.config.model import ModelSource


@dataclass(frozen=True)
class PlannedVariant:
    """One variant of the endpoint and the model it serves."""

    name: str
    source: ModelSource
    instance_type: str | None  # None: serverless (no instances)
    instance_count: int
    # Production: the share of requests is weight / (sum of the production weights). Shadow: the share of the
    # main variant's requests it is sent a copy of, as SageMaker reads a shadow variant's weight.
    weight: float
    server_workers: int | None  # SAGEMAKER_MODEL_SERVER_WORKERS; None: the toolkit's layout (a worker per vCPU)


@dataclass(frozen=True)
class VariantPlan:
    """The production variants, the main one first, and the optional shadow."""

    main: PlannedVariant
    variants: tuple[PlannedVariant, ...]
    shadow: PlannedVariant | None

    @property
    def production(self) -> tuple[PlannedVariant, ...]:
        return (self.main, *self.variants)

    @property
    def all(self) -> tuple[PlannedVariant, ...]:
        """Every variant, the shadow last: the order their models are created in."""
        return (*self.production, *(() if self.shadow is None else (self.shadow,)))


def server_workers(endpoint: EndpointSettings, instance_type: str | None) -> int | None:
    """threads_per_worker above 1: fewer, wider model-server workers, sized for this variant's instances."""
    if endpoint.threads_per_worker > 1 and instance_type is not None:
        return compute_profiles.server_workers(instance_type, endpoint.threads_per_worker)
    return None


def plan_variants(endpoint: EndpointSettings, model: ModelSource) -> VariantPlan:
    """The variants of an endpoint whose main variant serves `model` (the stage's). A variant or shadow without
    an instance type runs on the endpoint's."""

    def planned(name: str, source: ModelSource, instance_type: str | None, count: int, weight: float) -> PlannedVariant:
        return PlannedVariant(name, source, instance_type, count, weight, server_workers(endpoint, instance_type))

    main = planned(endpoint.variant_name, model, endpoint.instance_type, endpoint.instance_count, endpoint.weight)
    variants = tuple(
        planned(
            variant.name,
            variant.model,
            variant.instance_type or endpoint.instance_type,
            variant.instance_count,
            variant.weight,
        )
        for variant in endpoint.variants
    )
    shadow = None
    if endpoint.shadow is not None:
        shadow = planned(
            endpoint.shadow.name,
            endpoint.shadow.model,
            endpoint.shadow.instance_type or endpoint.instance_type,
            endpoint.shadow.instance_count,
            endpoint.weight * endpoint.shadow.sampling_percent / 100,
        )
    return VariantPlan(main, variants, shadow)
