"""The packaged archive on the real serving stack (toolkit + multi-model-server), called by boto3."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sagebert.local.serve import LocalEndpoint
from tests.integration.conftest import NAME

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def runtime(endpoint: LocalEndpoint) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, read_timeout=60),
    )


def invoke(runtime: Any, body: bytes, content_type: str = "application/json", accept: str = "application/json") -> Any:
    response = runtime.invoke_endpoint(EndpointName=NAME, Body=body, ContentType=content_type, Accept=accept)
    return response["Body"].read().decode()


def test_ping(endpoint: LocalEndpoint) -> None:
    with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=5) as response:
        assert response.status == 200


def test_boto3_gets_the_demo_classifiers_predictions(runtime: Any) -> None:
    answers = json.loads(
        invoke(
            runtime,
            json.dumps(
                {
                    "inputs": [
                        "Absolutely love it, works perfectly and arrived early.",
                        "Broke after two days and support never answered. Avoid.",
                    ]
                }
            ).encode(),
        )
    )
    assert [a["label"] for a in answers] == ["positive", "negative"]
    ranked = json.loads(invoke(runtime, b'{"inputs": "Great film.", "parameters": {"top_k": 2}}'))
    assert [x["label"] for x in ranked[0]] == ["positive", "negative"]


def test_container_route_answers_too(endpoint: LocalEndpoint) -> None:
    request = urllib.request.Request(
        f"{endpoint.url}/invocations",
        data=b'{"inputs": "Lovely hotel."}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())[0]["label"] == "positive"


def test_json_lines_one_answer_per_line(runtime: Any) -> None:
    lines = ['"Superb service, we will be back."', "{oops", '{"inputs": "Cold food, rude staff."}', '""']
    out = invoke(runtime, "\n".join(lines).encode(), "application/jsonlines", "application/jsonlines").splitlines()
    records = [json.loads(line) for line in out]
    assert len(records) == 4
    assert records[0]["label"] == "positive" and records[2]["label"] == "negative"
    assert "line 2" in records[1]["error"] and "line 4" in records[3]["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"inputs": "x"}', "text/csv", "content type 'text/csv' is not supported"),
        (b'{"inputs": ""}', "application/json", "a text must be a non-empty string"),
        (b'{"inputs": [1]}', "application/json", "inputs[0]: a text must be a non-empty string"),
        (json.dumps({"inputs": ["a"] * 65}).encode(), "application/json", "at most 64"),
        (json.dumps({"inputs": "a" * 10_001}).encode(), "application/json", "at most 10000"),
        (b'{"inputs": "x", "parameters": {"max_length": 3}}', "application/json", "unknown parameters"),
        # The toolkit decodes JSON bodies itself before input_fn sees them: its own 400.
        (b'{"inputs": "\xff"}', "application/json", "'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_bad_input_is_a_client_error_and_the_worker_keeps_serving(
    runtime: Any, body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(runtime.exceptions.ModelError) as raised:
        invoke(runtime, body, content_type)
    error = raised.value.response
    assert error["OriginalStatusCode"] == 400
    assert message in json.loads(error["OriginalMessage"])["message"]
    assert json.loads(invoke(runtime, b'{"inputs": "Great value."}'))[0]["label"] == "positive"


def test_unknown_endpoint_name(runtime: Any) -> None:
    with pytest.raises(runtime.exceptions.ClientError, match="not found"):
        runtime.invoke_endpoint(EndpointName="other", Body=b'{"inputs": "x"}', ContentType="application/json")


def _status(url: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


def test_only_inference_routes_answer_on_the_local_ports(endpoint: LocalEndpoint) -> None:
    # Given the running server, a web page the developer opens can reach any TCP port on 127.0.0.1. On the
    # model server's port only inference answers: listing or registering models (the management API, which can
    # load a model from any URL) is not there, nor on the port after it, where multi-model-server puts it by default.
    inference = endpoint.backend
    assert _status(f"{inference}/ping") == 200
    for method, path in (("GET", "/models"), ("POST", "/models?url=http://169.254.169.254/m.mar"), ("GET", "/")):
        assert _status(f"{inference}{path}", method) in (400, 404, 405), (method, path)
        assert _status(f"{endpoint.url}{path}", method) in (400, 404, 405), (method, path)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", endpoint.port + 2), timeout=2):
        pass
    # The management API still works for the developer, on a unix socket in a folder only they can open.
    sock = endpoint.state_dir / "management.sock"
    assert sock.is_socket() and (sock.parent.stat().st_mode & 0o077) == 0
    connection = _UnixConnection(str(sock))
    connection.request("GET", "/models")
    response = connection.getresponse()
    assert response.status == 200 and "models" in json.loads(response.read())
    connection.close()
