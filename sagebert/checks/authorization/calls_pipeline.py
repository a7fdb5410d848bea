"""The promotion pipeline's own run-time calls (infra/pipeline.py), from its CodeBuild projects: each smoke test's
runner assuming the stage account's smoke-test role and that role's request, and the synth step's resolve-models
reading another account's registry group.
"""

from __future__ import annotations

import json
import re

from sagebert.checks.authorization.app import StageInput
from sagebert.checks.authorization.calls_builder import Builder
from sagebert.checks.authorization.policy import Principal

# The promotion pipeline's own run-time calls (infra/pipeline.py), from its CodeBuild projects: a smoke test runs
# `python -m sagebert smoke --role-arn "$SMOKE_ROLE_ARN"` as its runner role, which assumes the stage account's
# smoke-test role (sts:AssumeRole: the runner's policy and the role's trust policy) and, as that role, POSTs a signed
# request to the stage's ApiUrl (execute-api:Invoke) or reads its API key (apigateway:GET on /apikeys/<id>); the
# synth step runs `resolve-models --stage S`, reading S's registry group and versions (ListModelPackages,
# DescribeModelPackage), across accounts through the group's resource policy.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-invoke-api.html
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram.html
SMOKE_ROLE_VARIABLE = "SMOKE_ROLE_ARN"
RESOLVE_COMMAND = re.compile(r"resolve-models --stage (\S+)")
API_URL = re.compile(r"^https://(.+?)\.execute-api\.([^./]+)\.[^/]+/([^/]+)(/.*)$")


def _stage_named(b: Builder, stage: str) -> StageInput | None:
    """The pipeline's copy of stage `stage` (SageBert-Pipeline/Promotion/SageBert-<stage>: the stacks the pipeline
    deploys), else the app's own stage."""
    copies = [s for s in b.app.stages if s.name.endswith(f"/SageBert-{stage}")]
    own = [s for s in b.app.stages if s.name == f"SageBert-{stage}"]
    return (copies + own)[0] if copies + own else None


def pipeline(b: Builder) -> None:
    for stack, logical_id, props in b.each("AWS::CodeBuild::Project"):
        where = f"{stack.name}/{logical_id}"
        spec = props.get("Source", {}).get("BuildSpec")
        commands: list[str] = []
        if isinstance(spec, str) and spec.lstrip().startswith("{"):
            phases = json.loads(spec).get("phases", {})
            commands = [str(c) for phase in phases.values() for c in phase.get("commands", [])]
        variables = {
            v["Name"]: b.resolver.resolve(stack, v["Value"])
            for v in props.get("Environment", {}).get("EnvironmentVariables", [])
        }
        resolving = [m[1] for c in commands for m in RESOLVE_COMMAND.finditer(c)]
        if SMOKE_ROLE_VARIABLE not in variables and not resolving:
            continue
        runner = b.principal(stack, props.get("ServiceRole"))
        if runner is None:
            continue
        if SMOKE_ROLE_VARIABLE in variables:
            _smoke_test(b, runner, variables[SMOKE_ROLE_VARIABLE], where)
        for stage in resolving:
            _resolve_models(b, runner, stage, where)


def _smoke_test(b: Builder, runner: Principal, role_arn: str, where: str) -> None:
    b.add(
        runner,
        "sts:AssumeRole",
        role_arn,
        f"{where} {SMOKE_ROLE_VARIABLE}",
        context={"aws:PrincipalArn": (runner.arn,)},
    )
    role = b.app.roles.get(role_arn)
    stage = _stage_named(b, role_arn.rsplit("/", 1)[-1].removeprefix("sagebert-smoke-test-"))
    if role is None or stage is None:
        b.problems.append(f"{b.stage.name}: {where} assumes {role_arn}, which is not in the synthesized app")
        return
    for stack in stage.stacks:
        outputs = stack.template.get("Outputs", {})
        if "ApiUrl" not in outputs:
            continue
        resolver = b.app.resolvers[stage.name]
        source = f"{where} smoke test of {stage.name}/{stack.name}"
        if "ApiKeyId" in outputs:
            key_id = resolver.resolve(stack, outputs["ApiKeyId"]["Value"])
            key = f"arn:{stack.partition}:apigateway:{stack.region}::/apikeys/{key_id}"
            b.add(role, "apigateway:GET", key, f"{source} (GetApiKey)", resource_type="apikey")
            continue
        url = API_URL.match(resolver.resolve(stack, outputs["ApiUrl"]["Value"]))
        if url is None:
            b.problems.append(f"{b.stage.name}: {source}: ApiUrl is not an execute-api URL")
            continue
        api, region, api_stage, path = url.groups()
        invoke = f"arn:{stack.partition}:execute-api:{region}:{stack.account}:{api}/{api_stage}/POST{path}"
        b.add(role, "execute-api:Invoke", invoke, f"{source} (POST ApiUrl)")


def _resolve_models(b: Builder, runner: Principal, stage_name: str, where: str) -> None:
    stage = _stage_named(b, stage_name)
    if stage is None:
        b.problems.append(f"{b.stage.name}: {where} resolves stage {stage_name}, which is not in the synthesized app")
        return
    resolver = b.app.resolvers[stage.name]
    for stack in stage.stacks:
        for resource in stack.resources.values():
            if resource["Type"] != "AWS::SageMaker::Model":
                continue
            package = resource.get("Properties", {}).get("PrimaryContainer", {}).get("ModelPackageName")
            if package is None:
                continue
            arn = resolver.resolve(stack, package)
            group = re.sub(r":model-package/([^/]+)/[^/]+$", r":model-package-group/\1", arn)
            source = f"{where} resolve-models --stage {stage_name}"
            b.add(runner, "sagemaker:ListModelPackages", group, source, resource_type="model-package-group")
            b.add(runner, "sagemaker:DescribeModelPackage", arn, source)
