"""The calls of the stage's Lambda functions that run sagebert's code (lambdas/<package>): the operations
`RUNTIME_OPERATIONS` lists for their code root, their log group and X-Ray.
"""

from __future__ import annotations

from collections.abc import Mapping

from sagebert.checks.authorization.calls_builder import TRACING_ACTIONS, Builder, log_stream
from sagebert.checks.authorization.operations import RUNTIME_OPERATIONS
from sagebert.checks.authorization.policy import Principal
from sagebert.checks.authorization.templates import Stack


def functions(b: Builder) -> None:
    """The stage's Lambda functions running sagebert code (lambdas/<package>): their RUNTIME_OPERATIONS, their
    log group and X-Ray."""
    for stack, logical_id, props in b.each("AWS::Lambda::Function"):
        handler = str(props.get("Handler", ""))
        code = f"lambdas/{handler.split('.')[0]}"
        operations = [(op, actions) for (root, _, op), actions in RUNTIME_OPERATIONS.items() if root == code]
        if not operations:
            continue  # not sagebert's code (CDK's custom resource providers)
        principal = b.principal(stack, props.get("Role"))
        if principal is None:
            continue
        where = f"{stack.name}/{logical_id}"
        environment = {
            k: b.resolver.resolve(stack, v) for k, v in props.get("Environment", {}).get("Variables", {}).items()
        }
        logs = props.get("LoggingConfig", {}).get("LogGroup")
        if logs is not None:
            group = b.resolver.resolve(stack, logs)
            for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                b.add(principal, action, log_stream(stack, group, "2026/01/01/[$LATEST]0123"), f"{where} logs")
        if props.get("TracingConfig", {}).get("Mode") == "Active":
            for action in TRACING_ACTIONS:
                b.add(principal, action, "*", f"{where} tracing")
        if code == "lambdas/front_door":
            _front_door(b, stack, principal, environment, where)
        elif code == "lambdas/batch_manifest":
            _batch_manifest(b, principal, where)


def _front_door(b: Builder, stack: Stack, principal: Principal, environment: Mapping[str, str], where: str) -> None:
    """InvokeEndpoint on SAGEBERT_ENDPOINT_NAME, naming SAGEBERT_INFERENCE_COMPONENT when set
    (lambdas/front_door/proxy.py sends InferenceComponentName then)."""
    endpoint = environment.get("SAGEBERT_ENDPOINT_NAME", "")
    component = environment.get("SAGEBERT_INFERENCE_COMPONENT", "")
    base = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
    parameters = ("EndpointName", "Body", "ContentType", "Accept") + (("InferenceComponentName",) if component else ())
    source = f"{where} SAGEBERT_ENDPOINT_NAME={endpoint}"
    b.add(
        principal,
        "sagemaker:InvokeEndpoint",
        f"{base}:endpoint/{endpoint.lower()}",
        source,
        resource_type="endpoint",
        parameters=parameters,
    )
    if component:
        b.add(
            principal,
            "sagemaker:InvokeEndpoint",
            f"{base}:inference-component/{component.lower()}",
            f"{where} SAGEBERT_INFERENCE_COMPONENT={component} (InvokeEndpoint with InferenceComponentName)",
            resource_type="inference-component",
            parameters=parameters,
        )


def _batch_manifest(b: Builder, principal: Principal, where: str) -> None:
    """lambdas/batch_manifest: lists and reads a run's input and output, writes _manifest.json beside the output."""
    prefixes = b.batch_prefixes()
    if prefixes is None:
        b.problems.append(f"{b.stage.name}: {where} runs but the stage has no BatchInputPrefix/BatchOutputPrefix")
        return
    bucket, input_prefix, output_prefix = prefixes
    for prefix in (input_prefix, output_prefix):
        b.add(
            principal,
            "s3:ListBucket",
            bucket,
            f"{where} ListObjectsV2 {prefix}",
            context={"s3:prefix": (f"{prefix}2026-01-01/",)},
        )
    b.s3_read(principal, f"{bucket}/{input_prefix}2026-01-01/part-0.jsonl", f"{where} GetObject (input)")
    b.s3_read(principal, f"{bucket}/{output_prefix}2026-01-01/run/part-0.jsonl.out", f"{where} GetObject (output)")
    b.s3_write(principal, f"{bucket}/{output_prefix}2026-01-01/run/_manifest.json", f"{where} PutObject")
