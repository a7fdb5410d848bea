"""One stage's declared run-time calls: every per-principal table (calls_functions, calls_batch, calls_models,
calls_alarms, calls_pipeline) over the stage's templates, and each call checked against the Service Authorization
data (a call naming a resource type its action does not have is an error in the table, not a pass).
"""

from __future__ import annotations

from sagebert.checks.authorization.app import App, StageInput
from sagebert.checks.authorization.calls_alarms import alarms
from sagebert.checks.authorization.calls_batch import schedules, state_machines
from sagebert.checks.authorization.calls_builder import Builder
from sagebert.checks.authorization.calls_functions import functions
from sagebert.checks.authorization.calls_models import models
from sagebert.checks.authorization.calls_pipeline import pipeline
from sagebert.checks.authorization.evaluation import Call
from sagebert.checks.authorization.service_data import resource_types


def stage_calls(app: App, stage: StageInput) -> tuple[list[Call], list[str]]:
    """The declared run-time calls of one stage, and what the table could not model."""
    b = Builder(app, stage)
    functions(b)
    transform_models = state_machines(b)
    models(b, transform_models)
    schedules(b)
    alarms(b)
    pipeline(b)
    for call in b.calls:
        b.problems += _table_errors(stage.name, call)
    return b.calls, b.problems


# Resource types the SageMaker guide authorizes an action against beyond the Service Authorization data's: CreateModel
# from a package checks the package (https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-deploy-xaccount.html),
# ListModelPackages of another account's group checks the group (its resource policy's example,
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram.html).
EXTRA_RESOURCE_TYPES = {
    ("sagemaker:CreateModel", "model-package"),
    ("sagemaker:ListModelPackages", "model-package-group"),
}


def _table_errors(stage: str, call: Call) -> list[str]:
    """A call must name a resource type the Service Authorization data lists for its action (or none for "*"
    actions), and every type it lists unless a request parameter brings that type in."""
    types = resource_types(call.action) or []
    if (call.action, call.resource_type) in EXTRA_RESOURCE_TYPES:
        return []
    if call.resource == "*" or not types:
        return []
    if call.resource_type not in types:
        return [
            f"{stage}: {call.action} on {call.resource} ({call.source}): resource type {call.resource_type} is "
            f"not one the Service Authorization data lists for it ({', '.join(types)})"
        ]
    return []
