"""Helpers shared by the front door's tests: events from tests/events, a Lambda context, clients."""

from __future__ import annotations

import base64
import copy
import io
import json
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.response import StreamingBody

EVENTS = Path(__file__).resolve().parent.parent / "events"
PREDICT_EVENT: dict[str, Any] = json.loads((EVENTS / "predict.json").read_text(encoding="utf-8"))
ENDPOINT = "sagebert-test"
HANDLER_ENV = {
    "SAGEBERT_ENDPOINT_NAME": ENDPOINT,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "POWERTOOLS_SERVICE_NAME": "sagebert-front-door",
    "POWERTOOLS_METRICS_NAMESPACE": "SageBert",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


class Context:
    """The Lambda context attributes Powertools reads."""

    function_name = "sagebert-front-door"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:111122223333:function:sagebert-front-door"
    memory_limit_in_mb = 512
    aws_request_id = "5e1f2a3b-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/sagebert-front-door"
    log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 28_000


def event(
    body: bytes | str | None = b'{"inputs": "I loved it"}',
    content_type: str | None = "application/json",
    *,
    base64_encoded: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The recorded API Gateway event with another body and headers."""
    result = copy.deepcopy(PREDICT_EVENT)
    all_headers = {k: v for k, v in result["headers"].items() if k != "Content-Type"}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers.update(headers or {})
    result["headers"] = all_headers
    result["multiValueHeaders"] = {k: [v] for k, v in all_headers.items()}
    if isinstance(body, bytes) and (base64_encoded or not _utf8(body)):
        result["body"], result["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        result["body"] = body.decode() if isinstance(body, bytes) else body
        result["isBase64Encoded"] = base64_encoded
    return result


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def runtime_client(endpoint_url: str | None = None, **config: Any) -> Any:
    """A real sagemaker-runtime client (fake credentials: nothing here reaches AWS)."""
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(**config) if config else None,
    )


def model_answer(body: bytes = b'[{"label": "positive", "score": 0.98}]') -> dict[str, Any]:
    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentType": "application/json",
        "InvokedProductionVariant": "AllTraffic",
    }
