"""The request logic: an API Gateway proxy event in, a proxy response out, every error mapped.

Plain functions with the boto3 client injected, so tests drive them with botocore's Stubber or a
real client pointed at the local model server. Nothing here logs; `handler` logs the facts
returned (never a body).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

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

# The only failures worth another attempt inside the request: the endpoint refused it before running it (throttled)
# or it never reached the endpoint (no connection: refused, DNS, connect timeout, TLS or proxy failure). A read
# timeout or a connection closed mid-answer is never retried: the request may still be running on the endpoint, and
# a second copy would double the load exactly when the endpoint is slowest. botocore's standard mode retries those
# too (and 5xx), so the client makes one attempt and this loop makes the rest.
THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})
# Full-jitter backoff before attempt n + 1: up to BACKOFF_BASE_S * 2 ** n seconds, at most BACKOFF_CAP_S (with
# api.max_attempts <= 3 every wait together stays under the second Settings.worst_case_s allows for it).
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 0.4


def retryable(error: Exception) -> bool:
    """Throttled, or never connected: the endpoint has not run this request."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "") in THROTTLED
    return isinstance(error, BotocoreConnectionError)


def backoff_s(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), full jitter."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


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
    if settings.inference_component:
        request["InferenceComponentName"] = settings.inference_component
    started = time.perf_counter()
    try:
        response = _invoke_with_retries(client, settings, request)
        answer = response["Body"].read().decode("utf-8")
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in UNAVAILABLE:
            message = f"the model endpoint cannot take requests now ({code}); retry later."
            raise ApiError("ModelUnavailable", message) from None
        raise ApiError("ModelError", f"the model failed on this request ({code or 'unknown error'}).") from None
    except ReadTimeoutError:
        raise ApiError("Timeout", f"the model did not answer within {settings.read_timeout_s:g} s.") from None
    except (BotocoreConnectionError, ConnectionClosedError):
        raise ApiError("ModelUnavailable", "the model endpoint could not be reached; retry later.") from None
    model_ms = round(1000 * (time.perf_counter() - started), 2)
    return answer, model_ms, str(response.get("InvokedProductionVariant") or "")


def _invoke_with_retries(client: Any, settings: Settings, request: dict[str, Any]) -> Any:
    """InvokeEndpoint, again after throttling or a failed connection, up to settings.max_attempts in all."""
    for attempt in range(1, settings.max_attempts + 1):
        try:
            return client.invoke_endpoint(**request)
        except (ClientError, BotocoreConnectionError) as err:
            if attempt == settings.max_attempts or not retryable(err):
                raise
        time.sleep(backoff_s(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
