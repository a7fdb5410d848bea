"""End to end: HTTP -> API Gateway proxy event -> the real Lambda handler -> boto3 -> the real model server.

The local front door runs the handler in its own process (as Lambda does) in front of the
packaged demo classifier on the toolkit + multi-model-server. schemathesis checks the OpenAPI
document against it: generated valid requests must be answered as documented, invalid ones
refused with a documented 4xx.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import schemathesis
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import ignored_auth

from sagebert.local.front_door import LocalApi
from sagebert.local.serve import LocalEndpoint
from sagebert.paths import OPENAPI_DOCUMENT
from tests.integration.conftest import free_port

pytestmark = pytest.mark.server
OPENAPI = schemathesis.openapi.from_path(OPENAPI_DOCUMENT)
PREDICT = OPENAPI["/v1/predict"]["POST"]
# The local front door has no auth (it binds 127.0.0.1); the deployed API's auth is asserted on the
# synthesized template (tests/infra). Every other schemathesis check runs.
LOCAL_ONLY = [ignored_auth]
TEXTS = [
    "Absolutely love it, works perfectly and arrived early.",
    "Broke after two days and support never answered. Avoid.",
    "Not bad at all, I would buy it again.",
]


@pytest.fixture(scope="module")
def api(endpoint: LocalEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    front = LocalApi(
        port=free_port(),
        endpoint_url=endpoint.url,
        endpoint_name=endpoint.name,
        log_path=tmp_path_factory.mktemp("api") / "api.log",
    )
    with front:
        assert front.process is not None
        process = front.process
        yield front
    assert process.poll() is not None, "the local front door is still running"


def post(api: LocalApi, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        connection.request("POST", f"/api{path}", body=body, headers={"Content-Type": content_type})
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read()), reply.headers
    finally:
        connection.close()


def test_the_front_door_answers_what_the_endpoint_answers(api: LocalApi, endpoint: LocalEndpoint) -> None:
    body = json.dumps({"inputs": TEXTS, "parameters": {"top_k": 2}}).encode()
    status, through_api, headers = post(api, "/v1/predict", body)
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    direct = json.loads(
        runtime.invoke_endpoint(EndpointName=endpoint.name, Body=body, ContentType="application/json")["Body"].read()
    )
    assert status == 200 and through_api == direct
    assert [ranked[0]["label"] for ranked in through_api] == ["positive", "negative", "positive"]
    assert headers["X-Request-Id"] and headers["X-Invoked-Variant"] == "AllTraffic"


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "code"),
    [
        ("/v1/predict", b"{not json", "application/json", 400, "InvalidBody"),
        ("/v1/predict", b'{"inputs": "x"}', "text/csv", 415, "UnsupportedMediaType"),
        ("/v1/predict", b'{"inputs": "bad \\ud800 text"}', "application/json", 400, "InvalidBody"),
        ("/v1/predict", b'{"inputs": "x", "parameters": {"max_length": 3}}', "application/json", 400, "InvalidBody"),
        ("/v1/predict", b'{"inputs": "\xff"}', "application/json", 400, "InvalidBody"),
        ("/v1/predict", json.dumps({"inputs": "a" * 2_000_000}).encode(), "application/json", 413, "PayloadTooLarge"),
        ("/v1/predict", b"x" * (10 * 1024 * 1024 + 1), "application/json", 413, "PayloadTooLarge"),  # API Gateway's
        ("/v1/other", b"{}", "application/json", 403, "Forbidden"),
    ],
)
def test_every_client_fault_is_answered_then_a_good_request_works(
    api: LocalApi, path: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    got_status, answer, _ = post(api, path, body, content_type)
    assert (got_status, answer["code"]) == (status, code) and answer["requestId"]
    ok, predictions, _ = post(api, "/v1/predict", b'{"inputs": "Great value."}')
    assert ok == 200 and predictions[0]["label"] == "positive"


def test_health_is_answered_without_the_model(api: LocalApi) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    connection.request("GET", "/api/v1/health")
    reply = connection.getresponse()
    assert reply.status == 200 and json.loads(reply.read()) == {"status": "ok"}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=PREDICT.as_strategy())
def test_openapi_valid_requests_get_documented_answers(api: LocalApi, case: Any) -> None:
    case.call_and_validate(base_url=api.url, excluded_checks=LOCAL_ONLY)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=PREDICT.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))
def test_openapi_invalid_requests_are_refused_as_documented(api: LocalApi, case: Any) -> None:
    case.call_and_validate(base_url=api.url, excluded_checks=LOCAL_ONLY)


def test_the_handler_logs_in_json_without_bodies(api: LocalApi) -> None:
    post(api, "/v1/predict", b'{"inputs": "a very particular sentence about otters"}')
    logs = Path(api.log_path).read_text(encoding="utf-8")
    assert "otters" not in logs and '"message":"answered"' in logs
