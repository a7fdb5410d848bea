"""The pipeline's smoke-test client against a real local HTTP server: signing, API keys, answers good and bad.

The server plays the stage's API (it refuses a request without the credentials the API's auth needs) and,
through botocore's service endpoint variables, STS and API Gateway's control plane. Nothing in the client
is replaced.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sagebert.__main__ import main as cli
from sagebert.local import smoke

GOOD = [{"label": "positive", "score": 0.97}]
API_KEY_ID = "k3y1d"
API_KEY_VALUE = "the-key-value-0123456789"
ASSUME_ROLE_XML = """<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIATEMPORARY</AccessKeyId>
      <SecretAccessKey>temporary-secret</SecretAccessKey>
      <SessionToken>temporary-session-token</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:sagebert-smoke-test</AssumedRoleId>
      <Arn>arn:aws:sts::111122223333:assumed-role/sagebert-smoke-test-dev/sagebert-smoke-test</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>0f0f0f0f-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""


@dataclass
class FakeStage:
    """What the server answers to /v1/predict (one entry per request, the last one repeats) and what it saw."""

    auth: str = "iam"  # iam: a SigV4 Authorization header is required; api_key: the x-api-key header
    answers: list[tuple[int, bytes]] = field(default_factory=lambda: [(200, json.dumps(GOOD).encode())])
    delay_s: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    stage: FakeStage

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # API Gateway's GetApiKey: GET /apikeys/{id}?includeValue=true
        self.stage.seen.append(
            {"method": "GET", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        if self.path == f"/apikeys/{API_KEY_ID}?includeValue=true" and "Authorization" in self.headers:
            self._reply(200, json.dumps({"id": API_KEY_ID, "value": API_KEY_VALUE, "enabled": True}).encode())
        else:
            self._reply(404, b'{"message": "Invalid API Key identifier specified"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.stage.seen.append(
            {
                "method": "POST",
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        if self.path == "/":  # STS AssumeRole (query protocol)
            self._reply(200, ASSUME_ROLE_XML.encode(), "text/xml")
            return
        time.sleep(self.stage.delay_s)
        authorization = self.headers.get("Authorization", "")
        if self.stage.auth == "iam" and not authorization.startswith("AWS4-HMAC-SHA256 Credential="):
            self._reply(403, b'{"message": "Missing Authentication Token"}')
            return
        if self.stage.auth == "api_key" and self.headers.get("x-api-key") != API_KEY_VALUE:
            self._reply(403, b'{"message": "Forbidden"}')
            return
        index = min(sum(1 for s in self.stage.seen if s["path"] == "/api/v1/predict") - 1, len(self.stage.answers) - 1)
        status, answer = self.stage.answers[index]
        self._reply(status, answer)


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[FakeStage, str]]:
    fake = FakeStage()
    handler = type("StageHandler", (Handler,), {"stage": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    # Static test credentials, and nothing from this machine's AWS configuration.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", base)
    monkeypatch.setenv("AWS_ENDPOINT_URL_API_GATEWAY", base)
    try:
        yield fake, f"{base}/api/v1/predict"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def predicts(fake: FakeStage) -> list[dict[str, Any]]:
    return [s for s in fake.seen if s["path"] == "/api/v1/predict"]


def test_a_signed_request_with_a_good_answer_passes(stage: tuple[FakeStage, str]) -> None:
    fake, url = stage
    assert smoke.smoke(url, region="eu-west-1") == GOOD
    (request,) = predicts(fake)
    authorization = request["headers"]["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "x-amz-date" in request["headers"]
    assert json.loads(request["body"])["inputs"]


def test_the_command_line_exits_0_on_a_good_answer_and_1_on_a_bad_one(
    stage: tuple[FakeStage, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = stage
    assert cli(["smoke", "--url", url, "--region", "eu-west-1"]) == 0
    assert "smoke test passed" in capsys.readouterr().out
    fake.answers = [(200, b'[{"label": "positive", "score": 1.5}]')]
    assert cli(["smoke", "--url", url, "--region", "eu-west-1"]) == 1
    error = capsys.readouterr().err
    assert "smoke test FAILED" in error and "score 1.5 is not a number in [0, 1]" in error


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>not json</html>", "the body is not JSON"),
        (200, b'{"label": "positive", "score": 0.9}', "expected a non-empty JSON list"),
        (200, b"[]", "expected a non-empty JSON list"),
        (200, b'[{"label": "positive"}]', "is not a {label, score} object"),
        (200, b'[{"label": "", "score": 0.5}]', "is not a non-empty string"),
        (200, b'[{"label": "positive", "score": -0.1}]', "is not a number in [0, 1]"),
        (200, b'[{"label": "positive", "score": true}]', "is not a number in [0, 1]"),
        (404, b'{"code": "NotFound"}', "HTTP 404 (expected 200)"),
        (424, b'{"code": "ModelError"}', "HTTP 424 (expected 200)"),
    ],
)
def test_bad_answers_fail_with_what_came_back(
    stage: tuple[FakeStage, str], status: int, body: bytes, message: str
) -> None:
    fake, url = stage
    fake.answers = [(status, body)]
    with pytest.raises(smoke.SmokeError) as caught:
        smoke.smoke(url, region="eu-west-1", retry_wait_s=0)
    assert message in str(caught.value)
    assert len(predicts(fake)) == 1  # a client error is not retried


def test_a_5xx_is_retried_and_the_last_one_reported(stage: tuple[FakeStage, str]) -> None:
    fake, url = stage
    fake.answers = [(503, b'{"code": "ServiceUnavailable"}'), (200, json.dumps(GOOD).encode())]
    assert smoke.smoke(url, region="eu-west-1", attempts=3, retry_wait_s=0) == GOOD
    assert len(predicts(fake)) == 2
    fake.seen.clear()
    fake.answers = [(502, b'{"code": "BadGateway"}')]
    with pytest.raises(smoke.SmokeError, match="HTTP 502"):
        smoke.smoke(url, region="eu-west-1", attempts=2, retry_wait_s=0)
    assert len(predicts(fake)) == 2
    # Each attempt carries its own signature.
    assert all("authorization" in r["headers"] for r in predicts(fake))


def test_no_answer_within_the_timeout_fails(stage: tuple[FakeStage, str]) -> None:
    fake, url = stage
    fake.delay_s = 1.0
    with pytest.raises(smoke.SmokeError, match=r"no answer from .* within 0.2 s"):
        smoke.smoke(url, region="eu-west-1", timeout_s=0.2, attempts=1)


def test_an_unsigned_request_is_refused_by_the_iam_stage(
    stage: tuple[FakeStage, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without credentials the client refuses to send an unsigned request, rather than reporting a 403.
    _, url = stage
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(smoke.SmokeError, match="no AWS credentials to sign the request"):
        smoke.smoke(url, region="eu-west-1")


def test_an_api_key_stage_gets_the_key_value_and_no_signature(stage: tuple[FakeStage, str]) -> None:
    fake, url = stage
    fake.auth = "api_key"
    assert smoke.smoke(url, region="eu-west-1", api_key_id=API_KEY_ID) == GOOD
    (get_key,) = [s for s in fake.seen if s["method"] == "GET"]
    assert get_key["path"] == f"/apikeys/{API_KEY_ID}?includeValue=true"
    assert "/eu-west-1/apigateway/aws4_request" in get_key["headers"]["authorization"]
    (request,) = predicts(fake)
    assert request["headers"]["x-api-key"] == API_KEY_VALUE
    assert "authorization" not in request["headers"]
    with pytest.raises(smoke.SmokeError, match="could not read API key missing"):
        smoke.smoke(url, region="eu-west-1", api_key_id="missing")


def test_the_role_is_assumed_and_its_credentials_sign(stage: tuple[FakeStage, str]) -> None:
    fake, url = stage
    role = "arn:aws:iam::111122223333:role/sagebert-smoke-test-dev"
    assert smoke.smoke(url, region="eu-west-1", role_arn=role) == GOOD
    (assume,) = [s for s in fake.seen if s["path"] == "/"]
    assert b"Action=AssumeRole" in assume["body"] and b"sagebert-smoke-test-dev" in assume["body"]
    (request,) = predicts(fake)
    assert request["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIATEMPORARY/")
    assert request["headers"]["x-amz-security-token"] == "temporary-session-token"


def test_a_plain_http_url_elsewhere_is_refused() -> None:
    with pytest.raises(smoke.SmokeError, match="must be an https:// URL"):
        smoke.smoke("http://example.com/api/v1/predict", region="eu-west-1")


def test_the_cli_waits_as_long_as_it_is_told_between_tries(stage: tuple[FakeStage, str]) -> None:
    # A stage that scales to zero answers 503 until an instance is back: the pipeline passes more tries, further
    # apart (here 0.2 s), and the command keeps trying through them.
    fake, url = stage
    fake.answers = [(503, b'{"code": "ServiceUnavailable"}')] * 3 + [(200, json.dumps(GOOD).encode())]
    started = time.monotonic()
    assert cli(["smoke", "--url", url, "--region", "eu-west-1", "--attempts", "4", "--retry-wait", "0.2"]) == 0
    assert len(predicts(fake)) == 4
    assert time.monotonic() - started >= 3 * 0.2
