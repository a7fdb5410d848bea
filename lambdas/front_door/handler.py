"""Lambda entry point of the front door: Powertools logger and metrics (and tracer) around `proxy.handle`.

Init (once per container, or once per published version with SnapStart) reads the settings and
builds one sagemaker-runtime client with timeouts that fit API Gateway's 29 s and no retries of its
own (proxy retries throttling and failed connections, never a read timeout).
The client is the one boto3.client() returns, created through botocore's session: importing boto3
would also import its S3 transfer manager, which this function never uses. The X-Ray SDK is
imported only when the function is traced (SAGEBERT_TRACING=true): it is the largest part of the
init otherwise (about 190 ms measured by `make bench-api`). Logs carry the request ID, status,
sizes and latencies; never a request or response body (the tracer does not capture responses).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import botocore.session
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from .contract import ApiError
from .proxy import handle
from .settings import Settings

settings = Settings.from_env()
logger = Logger()
metrics = Metrics()
client = botocore.session.get_session().create_client("sagemaker-runtime", config=Config(**settings.client_config()))
traced: Callable[[Any], Any] = lambda function: function  # noqa: E731
if settings.tracing:
    from aws_lambda_powertools import Tracer

    tracer = Tracer(patch_modules=("botocore",))  # traces each InvokeEndpoint call; boto3 is never imported
    traced = tracer.capture_lambda_handler(capture_response=False)

try:  # only in Lambda's Python runtime with SnapStart: runs in each environment resumed from the snapshot
    from snapshot_restore_py import register_after_restore
except ImportError:
    pass
else:
    # Every environment resumed from one snapshot would otherwise share its random state (botocore's
    # retry jitter). https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html
    register_after_restore(random.seed)


@logger.inject_lambda_context(log_event=False)
@traced
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEvent)
def lambda_handler(event: APIGatewayProxyEvent, context: LambdaContext) -> dict[str, Any]:
    try:
        outcome = handle(event, client, settings)
    except Exception:  # a fault of ours: answer 500 with the request ID, log the traceback, no body
        logger.exception("front door fault")
        error = ApiError("InternalError", "the front door failed; quote the request ID when reporting it.")
        request_id = event.request_context.request_id or "-"
        body = {"code": error.kind.code, "message": error.message, "requestId": request_id}
        metrics.add_metric(name="Status5xx", unit=MetricUnit.Count, value=1)
        return {"statusCode": 500, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
    facts = outcome.facts
    metrics.add_metric(name=f"Status{outcome.status // 100}xx", unit=MetricUnit.Count, value=1)
    if outcome.status == 200:
        metrics.add_metric(name="Texts", unit=MetricUnit.Count, value=facts.get("texts", 0))
        metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=facts.get("model_ms", 0.0))
    logger.info("answered", extra=facts)
    return outcome.response()
