"""The front door's request logic and Lambda handler: botocore Stubber on a real client, real sockets."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.stub import Stubber
from front_door import contract, proxy
from front_door.settings import Settings, SettingsError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model_code"))
import contextlib

from tests.unit.front_door_support import ENDPOINT, HANDLER_ENV, Context, event, model_answer, runtime_client

JSON = "application/json"
GOOD = b'{"inputs": "I loved it"}'


@pytest.fixture
def settings() -> Settings:
    return Settings(endpoint_name=ENDPOINT)


@pytest.fixture
def client() -> Any:
    return runtime_client()


def answer(evt: dict[str, Any], client: Any, settings: Settings) -> tuple[int, dict[str, Any], dict[str, str]]:
    outcome = proxy.handle(APIGatewayProxyEvent(evt), client, settings).response()
    return outcome["statusCode"], json.loads(outcome["body"]), outcome["headers"]


def test_a_valid_request_reaches_the_endpoint_unchanged_and_the_answer_comes_back(
    client: Any, settings: Settings
) -> None:
    with Stubber(client) as stub:
        expected = {"EndpointName": ENDPOINT, "Body": GOOD, "ContentType": JSON, "Accept": JSON}
        stub.add_response("invoke_endpoint", model_answer(), expected_params=expected)
        status, body, headers = answer(event(GOOD), client, settings)
        stub.assert_no_pending_responses()
    assert status == 200 and body == [{"label": "positive", "score": 0.98}]
    assert headers["X-Invoked-Variant"] == "AllTraffic"
    assert headers["X-Request-Id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_the_target_variant_and_charset_parameter(client: Any) -> None:
    settings = Settings(endpoint_name=ENDPOINT, target_variant="Candidate")
    with Stubber(client) as stub:
        expected = {"EndpointName": ENDPOINT, "Body": GOOD, "ContentType": JSON, "Accept": JSON}
        stub.add_response("invoke_endpoint", model_answer(), expected_params={**expected, "TargetVariant": "Candidate"})
        status, _, _ = answer(event(GOOD, "Application/JSON; charset=UTF-8"), client, settings)
    assert status == 200


def test_an_inference_component_is_named_in_every_call(client: Any) -> None:
    # An endpoint that serves its model as an inference component answers only calls that name the component.
    settings = Settings.from_env({"SAGEBERT_ENDPOINT_NAME": ENDPOINT, "SAGEBERT_INFERENCE_COMPONENT": "sagebert-dev"})
    assert settings.inference_component == "sagebert-dev"
    with Stubber(client) as stub:
        expected = {"EndpointName": ENDPOINT, "Body": GOOD, "ContentType": JSON, "Accept": JSON}
        stub.add_response(
            "invoke_endpoint", model_answer(), expected_params={**expected, "InferenceComponentName": "sagebert-dev"}
        )
        status, _, _ = answer(event(GOOD, JSON), client, settings)
    assert status == 200
    assert Settings.from_env({"SAGEBERT_ENDPOINT_NAME": ENDPOINT}).inference_component is None


TOO_DEEP = b"[" * 100_000 + b"]" * 100_000
BAD_REQUESTS = [
    # (body, content type, base64, status, code, what the message says)
    (GOOD, "text/plain", False, 415, "UnsupportedMediaType", "'text/plain' is not supported; send application/json"),
    (GOOD, None, False, 415, "UnsupportedMediaType", "'none' is not supported"),
    (GOOD, "application/json; charset=latin-1", False, 415, "UnsupportedMediaType", "charset=latin-1"),
    (b"", JSON, False, 400, "InvalidBody", "the body is empty"),
    (b"{not json", JSON, False, 400, "InvalidBody", "not valid JSON: Expecting property name"),
    (b'{"inputs": "\xff\xfe"}', JSON, True, 400, "InvalidBody", "not valid UTF-8 (invalid start byte at byte 12)"),
    ("%%%", JSON, True, 400, "InvalidBody", "not valid base64"),
    (TOO_DEEP, JSON, False, 400, "InvalidBody", "nested too deeply"),
    (b"[1]", JSON, False, 400, "InvalidBody", "must be a JSON object"),
    (b'{"text": "x"}', JSON, False, 400, "InvalidBody", "unknown keys ['text']; allowed: ['inputs', 'parameters']"),
    (b'{"parameters": {}}', JSON, False, 400, "InvalidBody", 'needs "inputs"'),
    (b'{"inputs": 5}', JSON, False, 400, "InvalidBody", "inputs must be a string or a list of strings"),
    (b'{"inputs": ""}', JSON, False, 400, "InvalidBody", "inputs has 0 characters; send 1 to 10000"),
    (b'{"inputs": " \\n\\t"}', JSON, False, 400, "InvalidBody", "inputs is only whitespace"),
    (b'{"inputs": []}', JSON, False, 400, "InvalidBody", "inputs has 0 texts; send 1 to 64"),
    (json.dumps({"inputs": ["a"] * 65}).encode(), JSON, False, 400, "InvalidBody", "65 texts; send 1 to 64"),
    (json.dumps({"inputs": "a" * 10_001}).encode(), JSON, False, 400, "InvalidBody", "10001 characters"),
    (b'{"inputs": ["ok", null]}', JSON, False, 400, "InvalidBody", "inputs[1] must be a string"),
    (b'{"inputs": "bad \\ud800 text"}', JSON, False, 400, "InvalidBody", "unpaired surrogate at character 4"),
    (b'{"inputs": "x", "parameters": {"temperature": 1}}', JSON, False, 400, "InvalidBody", "['temperature']"),
    (b'{"inputs": "x", "parameters": [1]}', JSON, False, 400, "InvalidBody", "parameters must be a JSON object"),
    (b'{"inputs": "x", "parameters": {"top_k": 0}}', JSON, False, 400, "InvalidBody", "from 1 to 100, got 0"),
    (b'{"inputs": "x", "parameters": {"top_k": 101}}', JSON, False, 400, "InvalidBody", "got 101"),
    (b'{"inputs": "x", "parameters": {"top_k": 2.0}}', JSON, False, 400, "InvalidBody", "got 2.0"),
    (b'{"inputs": "x", "parameters": {"top_k": true}}', JSON, False, 400, "InvalidBody", "got True"),
    (b'{"inputs": "' + b"a" * 2_000_000 + b'"}', JSON, False, 413, "PayloadTooLarge", "at most 1048576 are allowed"),
]


@pytest.mark.parametrize(("body", "content_type", "b64", "status", "code", "message"), BAD_REQUESTS)
def test_every_bad_request_is_a_clear_client_error_and_never_reaches_the_model(
    client: Any,
    settings: Settings,
    body: bytes | str,
    content_type: str | None,
    b64: bool,
    status: int,
    code: str,
    message: str,
) -> None:
    # Given a Stubber with no responses: any call to the endpoint would fail the test.
    with Stubber(client):
        got_status, got, headers = answer(event(body, content_type, base64_encoded=b64), client, settings)
    assert (got_status, got["code"]) == (status, code)
    assert message in got["message"]
    assert got["requestId"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" == headers["X-Request-Id"]
    assert "Retry-After" not in headers


SAGEMAKER_ERRORS = [
    # (SageMaker error code, its HTTP status, our status, our code)
    ("ModelError", 424, 502, "ModelError"),
    ("InternalFailure", 500, 502, "ModelError"),
    ("AccessDeniedException", 400, 502, "ModelError"),
    ("ThrottlingException", 400, 503, "ModelUnavailable"),
    ("ModelNotReadyException", 429, 503, "ModelUnavailable"),
    ("ServiceUnavailable", 503, 503, "ModelUnavailable"),
    ("ValidationError", 400, 503, "ModelUnavailable"),  # e.g. the endpoint is not (yet) there
]


@pytest.mark.parametrize(("error", "http", "status", "code"), SAGEMAKER_ERRORS)
def test_every_sagemaker_error_maps_to_its_documented_status(
    client: Any, settings: Settings, error: str, http: int, status: int, code: str
) -> None:
    with Stubber(client) as stub:
        # Throttling is tried again (settings.max_attempts = 2 in all); nothing else is.
        for _ in range(settings.max_attempts if error == "ThrottlingException" else 1):
            stub.add_client_error("invoke_endpoint", service_error_code=error, http_status_code=http)
        got_status, got, headers = answer(event(), client, settings)
        stub.assert_no_pending_responses()
    assert (got_status, got["code"]) == (status, code)
    assert error in got["message"] and got["requestId"]
    assert headers.get("Retry-After") == ("2" if status == 503 else None)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_model_that_does_not_answer_in_time_is_a_504(silent_server: int) -> None:
    settings = Settings(endpoint_name=ENDPOINT, read_timeout_s=0.3, max_attempts=1)
    client = runtime_client(f"http://127.0.0.1:{silent_server}", **settings.client_config())
    status, body, _ = answer(event(), client, settings)
    assert (status, body["code"]) == (504, "Timeout") and "within 0.3 s" in body["message"]


@pytest.fixture
def counting_silent_server() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 that reads each request and never answers; it records every request it got."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    requests: list[bytes] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except TimeoutError:
                continue
            held.append(conn)
            conn.settimeout(1)
            with contextlib.suppress(TimeoutError):
                requests.append(conn.recv(65536))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], requests
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_read_timeout_is_never_retried(counting_silent_server: tuple[int, list[bytes]]) -> None:
    # Given three attempts allowed and an endpoint that takes each request and never answers (a real socket and a
    # real read timeout), when the front door calls it, then the request was sent once: a timed-out request may
    # still be running on the endpoint, and a copy would double its load.
    port, requests = counting_silent_server
    settings = Settings(endpoint_name=ENDPOINT, read_timeout_s=0.3, connect_timeout_s=0.5, max_attempts=3)
    client = runtime_client(f"http://127.0.0.1:{port}", **settings.client_config())
    status, body, _ = answer(event(), client, settings)
    assert (status, body["code"]) == (504, "Timeout")
    assert len([r for r in requests if r.startswith(b"POST /endpoints/")]) == 1


def test_throttling_is_retried_then_answered(client: Any) -> None:
    settings = Settings(endpoint_name=ENDPOINT, max_attempts=3)
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
        stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
        stub.add_response("invoke_endpoint", model_answer())
        status, body, _ = answer(event(GOOD), client, settings)
        stub.assert_no_pending_responses()
    assert status == 200 and body == [{"label": "positive", "score": 0.98}]


@pytest.mark.parametrize("error", ["ModelError", "InternalFailure", "ServiceUnavailable", "ModelNotReadyException"])
def test_errors_from_a_request_the_endpoint_may_have_run_are_not_retried(client: Any, error: str) -> None:
    settings = Settings(endpoint_name=ENDPOINT, max_attempts=3)
    with Stubber(client) as stub:
        stub.add_client_error("invoke_endpoint", service_error_code=error, http_status_code=500)
        stub.add_response("invoke_endpoint", model_answer())  # would answer a second attempt
        status, _, _ = answer(event(GOOD), client, settings)
        with pytest.raises(AssertionError):  # the second response was never asked for
            stub.assert_no_pending_responses()
    assert status in (502, 503)


def test_a_refused_connection_is_retried_up_to_max_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real refused connection (nobody listens), counted at the client's send: every attempt is made.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(endpoint_name=ENDPOINT, connect_timeout_s=0.5, max_attempts=3)
    client = runtime_client(f"http://127.0.0.1:{port}", **settings.client_config())
    sent: list[str] = []
    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", lambda request, **_: sent.append("x"))
    status, body, _ = answer(event(), client, settings)
    assert (status, body["code"], len(sent)) == (503, "ModelUnavailable", 3)
    assert all(0 <= proxy.backoff_s(n) <= proxy.BACKOFF_CAP_S for n in range(1, 10))


def test_an_unreachable_endpoint_is_a_503_with_retry_after() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(endpoint_name=ENDPOINT, connect_timeout_s=0.5, max_attempts=2)
    client = runtime_client(f"http://127.0.0.1:{port}", **settings.client_config())
    status, body, headers = answer(event(), client, settings)
    assert (status, body["code"], headers["Retry-After"]) == (503, "ModelUnavailable", "2")


def test_cors_headers_only_for_allowed_origins(client: Any) -> None:
    settings = Settings(endpoint_name=ENDPOINT, cors_allow_origins=("https://app.example.com",))
    with Stubber(client) as stub:
        stub.add_response("invoke_endpoint", model_answer())
        _, _, allowed = answer(event(headers={"origin": "https://app.example.com"}), client, settings)
    _, _, other = answer(event(b"{", headers={"Origin": "https://evil.example"}), client, settings)
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in other and other["Vary"] == "Origin"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "SAGEBERT_ENDPOINT_NAME is not set"),
        ({"SAGEBERT_ENDPOINT_NAME": "e", "SAGEBERT_READ_TIMEOUT_S": "soon"}, "SAGEBERT_READ_TIMEOUT_S='soon'"),
        (
            {"SAGEBERT_ENDPOINT_NAME": "e", "SAGEBERT_READ_TIMEOUT_S": "12", "SAGEBERT_MAX_ATTEMPTS": "3"},
            "3 attempts x (2.0 s connect + 12.0 s read) + 1 s = 43 s overruns API Gateway's budget",
        ),
    ],
)
def test_bad_settings_stop_init_with_the_variable_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(environ)


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {"SAGEBERT_ENDPOINT_NAME": "e", "SAGEBERT_CORS_ALLOW_ORIGINS": "https://a.example, https://b.example"}
    )
    assert settings.cors_allow_origins == ("https://a.example", "https://b.example")
    # One attempt per client call: proxy decides what is tried again.
    assert settings.client_config()["retries"] == {"mode": "standard", "total_max_attempts": 1}
    assert settings.worst_case_s == 21.0


def test_the_model_and_the_front_door_share_the_schemas_limits() -> None:
    import inference

    assert contract.LIMITS.max_texts == inference.MAX_TEXTS
    assert contract.LIMITS.max_chars == inference.MAX_CHARS
    assert set(contract.LIMITS.parameters) == inference.ALLOWED_PARAMETERS


def test_the_schemas_whitespace_rule_is_the_models() -> None:
    # The schema's pattern \S and the model's str.strip() must agree on every code point.
    pattern = re.compile(contract.LIMITS.text_pattern)
    disagree = [hex(c) for c in range(sys.maxunicode + 1) if bool(pattern.search(chr(c))) == chr(c).isspace()]
    assert disagree == []


@pytest.fixture
def handler_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in HANDLER_ENV.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("front_door.handler", None)
    module = importlib.import_module("front_door.handler")
    yield module
    sys.modules.pop("front_door.handler", None)


def test_the_handler_logs_facts_but_never_a_body(handler_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Powertools handler writes to the stream it found at init; read what it writes.
    stream = io.StringIO()
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", stream)
    secret = "my card number is 4111 1111 1111 1111"
    answer_text = b'[{"label": "negative", "score": 0.91}]'
    with Stubber(handler_module.client) as stub:
        stub.add_response("invoke_endpoint", model_answer(answer_text))
        response = handler_module.lambda_handler(event(json.dumps({"inputs": secret})), Context())
    bad = handler_module.lambda_handler(event(json.dumps({"inputs": secret, "x": 1})), Context())
    logs = stream.getvalue()
    assert response["statusCode"] == 200 and response["body"] == answer_text.decode()
    assert bad["statusCode"] == 400
    records = [json.loads(line) for line in logs.splitlines() if line.startswith('{"level"')]
    answered = [r for r in records if r["message"] == "answered"]
    assert [r["status"] for r in answered] == [200, 400]
    assert answered[0]["texts"] == 1 and answered[0]["function_request_id"] == Context.aws_request_id
    assert secret not in logs and "4111" not in logs and "negative" not in logs


def test_an_unexpected_fault_is_a_500_with_the_request_id(handler_module: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(handler_module, "handle", broken)
    response = handler_module.lambda_handler(event(), Context())
    body = json.loads(response["body"])
    assert response["statusCode"] == 500 and body["code"] == "InternalError"
    assert body["requestId"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_module_init_needs_no_network_and_reads_the_settings(handler_module: Any) -> None:
    assert handler_module.settings.endpoint_name == os.environ["SAGEBERT_ENDPOINT_NAME"] == ENDPOINT
    config = handler_module.client.meta.config
    assert (config.read_timeout, config.connect_timeout, config.retries["total_max_attempts"]) == (8.0, 2.0, 1)


def test_every_gateway_response_is_in_the_documented_error_table() -> None:
    from infra.online.inference_api import GATEWAY_RESPONSES

    documented = {(kind.status, kind.code) for kind in contract.ERRORS}
    codes = {kind.code for kind in contract.ERRORS}
    for response_type, status, code in GATEWAY_RESPONSES:
        assert (status, code) in documented if status else code in codes, response_type


def test_the_front_doors_budget_and_defaults_are_the_configs() -> None:
    # infra/ and lambdas/ may not import each other: the numbers live in both, this keeps them equal.
    from front_door.settings import API_GATEWAY_BUDGET_S

    from infra.config.api import LAMBDA_BUDGET_S, ApiSettings

    config, lambda_side = ApiSettings(), Settings(endpoint_name=ENDPOINT)
    assert API_GATEWAY_BUDGET_S == LAMBDA_BUDGET_S
    for name in ("read_timeout_s", "connect_timeout_s", "max_attempts", "max_body_bytes"):
        assert getattr(config, name) == getattr(lambda_side, name), name
