"""The request logic: an API Gateway proxy event in, a proxy response out, every error mapped.

Plain functions with the boto3 client injected, so tests drive them with botocore's Stubber or a
real client pointed at the local model server. Nothing here logs; `handler` logs the facts
returned (never a body).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from .contract import ApiError, check_request, parse_json
from .settings import Settings

JSON = "application/json"
# SageMaker runtime error codes -> our answer. ModelError is the container's own failure (the
# front door has already refused every request the model would refuse); the rest mean the
# endpoint cannot take the request now and a retry later may work.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html#API_runtime_InvokeEndpoint_Errors
UNAVAILABLE = frozenset(
    {"ThrottlingException", "ModelNotReadyException", "ServiceUnavailable", "ValidationError", "ValidationException"}
)


@dataclass
class Outcome:
    """What the front door answers, and the facts worth logging (no bodies)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        return {"statusCode": self.status, "headers": self.headers, "body": self.body, "isBase64Encoded": False}


def handle(event: APIGatewayProxyEvent, client: Any, settings: Settings) -> Outcome:
    request_id = event.request_context.request_id or "-"
    headers = {"Content-Type": JSON, "X-Request-Id": request_id, **_cors(event, settings)}
    facts: dict[str, Any] = {}
    try:
        body = _body(event, settings, facts)
        facts["texts"] = check_request(_parse(body))
        answer, facts["model_ms"], variant = _invoke(client, settings, body)
    except ApiError as err:
        facts.update(status=err.kind.status, code=err.kind.code)
        if err.kind.retry_after:
            headers["Retry-After"] = str(err.kind.retry_after)
        payload = {"code": err.kind.code, "message": err.message, "requestId": request_id}
        return Outcome(err.kind.status, json.dumps(payload), headers, facts)
    headers["X-Invoked-Variant"] = variant
    facts.update(status=200, variant=variant)
    return Outcome(200, answer, headers, facts)


def _cors(event: APIGatewayProxyEvent, settings: Settings) -> dict[str, str]:
    if not settings.cors_allow_origins:
        return {}
    origin = event.headers.get("origin") or ""  # Powertools v3: headers are case-insensitive
    if "*" in settings.cors_allow_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in settings.cors_allow_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}


def _body(event: APIGatewayProxyEvent, settings: Settings, facts: dict[str, Any]) -> bytes:
    """The body's bytes once content type and size are acceptable (415 / 413 / 400 otherwise)."""
    content_type = event.headers.get("content-type") or ""
    media, _, params = content_type.partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"') if params.strip() else "utf-8"
    if media.strip().lower() != JSON or charset not in ("utf-8", "utf8"):
        shown = content_type[:100] or "none"
        raise ApiError("UnsupportedMediaType", f"Content-Type {shown!r} is not supported; send {JSON}.")
    raw = event.get("body") or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode("utf-8")
    except (binascii.Error, ValueError):
        raise ApiError("InvalidBody", "the body is not valid base64 or not valid UTF-8.") from None
    facts["body_bytes"] = len(data)
    if len(data) > settings.max_body_bytes:
        limit = settings.max_body_bytes
        raise ApiError("PayloadTooLarge", f"the body is {len(data)} bytes; at most {limit} are allowed.")
    return data


def _parse(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError("InvalidBody", f"the body is not valid UTF-8 ({err.reason} at byte {err.start}).") from None
    if not text.strip():
        raise ApiError("InvalidBody", 'the body is empty; send {"inputs": "some text"}.')
    return parse_json(text)


def _invoke(client: Any, settings: Settings, body: bytes) -> tuple[str, float, str]:
    request: dict[str, Any] = {"EndpointName": settings.endpoint_name, "Body": body}
    request.update(ContentType=JSON, Accept=JSON)
    if settings.target_variant:
        request["TargetVariant"] = settings.target_variant
    started = time.perf_counter()
    try:
        response = client.invoke_endpoint(**request)
        answer = response["Body"].read().decode("utf-8")
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in UNAVAILABLE:
            message = f"the model endpoint cannot take requests now ({code}); retry later."
            raise ApiError("ModelUnavailable", message) from None
        raise ApiError("ModelError", f"the model failed on this request ({code or 'unknown error'}).") from None
    except ReadTimeoutError:
        raise ApiError("Timeout", f"the model did not answer within {settings.read_timeout_s:g} s.") from None
    except (ConnectTimeoutError, EndpointConnectionError, ConnectionClosedError):
        raise ApiError("ModelUnavailable", "the model endpoint could not be reached; retry later.") from None
    model_ms = round(1000 * (time.perf_counter() - started), 2)
    return answer, model_ms, str(response.get("InvokedProductionVariant") or "")
