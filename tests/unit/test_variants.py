"""The endpoint's variant plan (infra/online/variants.py): instances, weights and model-server workers per
variant, from the `endpoint:` section alone."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from infra.config.endpoint import EndpointSettings
from infra.config.model import ModelSource
from infra.online.variants import plan_variants

STAGE_MODEL: ModelSource = TypeAdapter(ModelSource).validate_python(
    {"source": "hub", "model_id": "org/stage-model", "task": "text-classification"}
)


def hub(model_id: str) -> dict[str, str]:
    return {"source": "hub", "model_id": model_id, "task": "text-classification"}


def endpoint(**settings: Any) -> EndpointSettings:
    return EndpointSettings.model_validate({"instance_type": "ml.c6i.xlarge", **settings})


def test_the_main_variant_serves_the_stages_model_on_the_endpoints_instances() -> None:
    plan = plan_variants(endpoint(instance_count=3, variant_name="Main", weight=2.0), STAGE_MODEL)
    assert (plan.variants, plan.shadow) == ((), None)
    assert plan.production == plan.all == (plan.main,)
    main = plan.main
    assert (main.name, main.source, main.instance_type, main.instance_count, main.weight) == (
        "Main",
        STAGE_MODEL,
        "ml.c6i.xlarge",
        3,
        2.0,
    )


def test_one_thread_per_worker_leaves_the_workers_to_the_toolkit() -> None:
    assert plan_variants(endpoint(), STAGE_MODEL).main.server_workers is None


@pytest.mark.parametrize(
    ("instance_type", "threads", "workers"),
    [("ml.c6i.xlarge", 2, 2), ("ml.c6i.xlarge", 4, 1), ("ml.c6i.2xlarge", 2, 4), ("ml.c6i.4xlarge", 4, 4)],
)
def test_wider_workers_share_the_instances_vcpus(instance_type: str, threads: int, workers: int) -> None:
    plan = plan_variants(
        endpoint(
            instance_type=instance_type, threads_per_worker=threads, autoscaling={"target_invocations_per_minute": 600}
        ),
        STAGE_MODEL,
    )
    assert plan.main.server_workers == workers


def test_a_variant_runs_on_the_endpoints_instance_type_unless_it_names_its_own() -> None:
    plan = plan_variants(
        endpoint(
            threads_per_worker=2,
            autoscaling={"target_invocations_per_minute": 600},
            variants=[
                {"name": "Same", "weight": 1, "model": hub("org/same")},
                {
                    "name": "Bigger",
                    "weight": 3,
                    "model": hub("org/bigger"),
                    "instance_type": "ml.c6i.2xlarge",
                    "instance_count": 2,
                },
            ],
        ),
        STAGE_MODEL,
    )
    same, bigger = plan.variants
    assert [v.name for v in plan.production] == ["AllTraffic", "Same", "Bigger"]
    assert (same.instance_type, same.instance_count, same.weight, same.server_workers) == ("ml.c6i.xlarge", 1, 1, 2)
    assert (bigger.instance_type, bigger.instance_count, bigger.weight, bigger.server_workers) == (
        "ml.c6i.2xlarge",
        2,
        3,
        4,
    )
    assert bigger.source.model_dump()["model_id"] == "org/bigger"


def test_the_shadow_weight_is_its_share_of_the_main_variants_requests() -> None:
    plan = plan_variants(
        endpoint(weight=4.0, shadow={"name": "Candidate", "model": hub("org/candidate"), "sampling_percent": 25}),
        STAGE_MODEL,
    )
    assert plan.shadow is not None
    assert (plan.shadow.name, plan.shadow.weight, plan.shadow.instance_type) == ("Candidate", 1.0, "ml.c6i.xlarge")
    assert plan.all == (plan.main, plan.shadow)  # the shadow last, after every production variant
    assert plan.production == (plan.main,)


def test_serverless_has_no_instances_and_no_worker_layout() -> None:
    plan = plan_variants(EndpointSettings.model_validate({"compute": "serverless"}), STAGE_MODEL)
    assert (plan.main.instance_type, plan.main.server_workers) == (None, None)
