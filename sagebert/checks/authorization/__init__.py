"""The authorization gate: every AWS call the deployed code makes at run time is allowed by the synthesized policies.

A stage can synthesize, pass cdk-nag and cfn-lint, deploy, and still fail at its first request: the front door's
role may call InvokeEndpoint on the endpoint but not on the inference component the call names, the model role may
write the endpoint's log group but not the component's, a consumer account may not read the registry's archive key.
Nothing fails until the call is made. This package makes those calls on paper:

- The calls (`calls.stage_calls`): a declared table of what each principal does at run time, read from the
  templates it runs with (a function's handler and environment, a model's data URL and image, the state machine's
  tasks, a schedule's target, an alarm's actions) and, where a template cannot say, the stage config (a registry
  model's archive location and key). `RUNTIME_OPERATIONS` lists the botocore operations the deployed Lambda code
  makes; tests/call_recorder.py records the operations the tests really make and fails on one this table lacks.
- The resource types each action is authorized against come from the Service Authorization Reference as cfn-lint
  ships it (cfnlint/data/AdditionalSpecs/Policies.json, offline): a call naming a type the action does not have is
  a table error, and a call that omits a type the action has only where a request parameter brings it in
  (`PARAMETER_RESOURCE_TYPES`) is checked with it.
- The evaluation (`evaluate`): the principal's identity policies and the resource's policy (bucket, key, topic,
  queue, model package group) from the templates, intrinsic functions resolved to comparable ARNs; explicit Deny
  wins, wildcards, NotAction and NotResource as IAM has them; same account: identity or resource policy; another
  account: both; a KMS key: its key policy always (naming the account delegates to IAM). Conditions are evaluated on
  the keys a call supplies; a condition on any other key makes the answer "cannot tell", which fails too.
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html

What it cannot see: service control policies, permission boundaries, session policies, KMS grants made at run time,
policies of resources outside the synthesized app (their assumed behaviour is listed in `app.EXTERNAL_RESOURCES`).

The modules, each importing only those above it:
- `service_data`: the Service Authorization data (resource types of an action, ARN formats of a type).
- `policy`: policy statements, their matching and conditions; `Principal`.
- `evaluation`: `Call`, `ResourcePolicy`, `Verdict` and `evaluate`, IAM's decision for one call.
- `templates`: `Stack` and the `Resolver` of intrinsic functions to ARNs and names.
- `app`: every stage's roles, trust policies and resource policies by ARN (`App`), the stage input.
- `operations`: the botocore operations sagebert's code makes, classified (deployed code's and the developer's).
- `calls_builder`: `Builder`, what the per-principal tables share; then one module per kind of principal:
  `calls_functions` (Lambda), `calls_models` (model roles, registry deploys), `calls_batch` (state machines,
  transform jobs, schedules), `calls_alarms` (CloudWatch), `calls_pipeline` (the promotion pipeline's CodeBuild).
- `calls`: one stage's declared calls, each checked against the Service Authorization data.
- `gate`: `check` (every call evaluated), `Report`, the unused grants, the summary line.
- `cloud_assembly`: reading cdk.out and the stage configs into the stage inputs (`read_stages`).

What other code uses is re-exported here, so `from sagebert.checks import authorization` and `authorization.check`
read as before the package was split.
"""

from __future__ import annotations

from sagebert.checks.authorization.app import RegistrySource, StageInput
from sagebert.checks.authorization.cloud_assembly import TOP_LEVEL, read_stages
from sagebert.checks.authorization.evaluation import Call, ResourcePolicy, evaluate
from sagebert.checks.authorization.gate import Report, check, summary
from sagebert.checks.authorization.operations import (
    DEVELOPER_OPERATIONS,
    MODELED_PARAMETERS,
    PARAMETER_RESOURCE_TYPES,
    RUNTIME_OPERATIONS,
)
from sagebert.checks.authorization.policy import Principal, Statement, wildcard_match
from sagebert.checks.authorization.service_data import arn_fits, resource_types
from sagebert.checks.authorization.templates import Stack

__all__ = [
    "DEVELOPER_OPERATIONS",
    "MODELED_PARAMETERS",
    "PARAMETER_RESOURCE_TYPES",
    "RUNTIME_OPERATIONS",
    "TOP_LEVEL",
    "Call",
    "Principal",
    "RegistrySource",
    "Report",
    "ResourcePolicy",
    "Stack",
    "StageInput",
    "Statement",
    "arn_fits",
    "check",
    "evaluate",
    "read_stages",
    "resource_types",
    "summary",
    "wildcard_match",
]
