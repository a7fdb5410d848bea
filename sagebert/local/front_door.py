"""The front door on 127.0.0.1: HTTP requests become API Gateway proxy events for the real handler.

`make serve` starts it beside the local model server. It runs `lambdas/front_door/handler.py`
unchanged in its own process (as Lambda runs it), with the environment a deployed function gets
from infra/online/front_door_function.py, plus AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME pointing the handler's real
boto3 client at the local model server. What API Gateway itself does is mirrored where a client
would notice: the 10 MB payload limit, GET /v1/health (a mock integration), and 403 for unknown
routes, all with the gateway responses' JSON body. There is no auth and no throttling locally;
it binds 127.0.0.1 only. Each request is one invocation; many run at once on threads, like many
Lambda containers would (Powertools metrics are off locally: their flush is per container).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from infra.config.base import API_INTEGRATION_TIMEOUT_S
from sagebert.local.lifeline import ensure_free, guard, stop_guard, wait_healthy
from sagebert.paths import LAMBDAS_DIR, ROOT

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # REST API payload limit
STAGE = "api"
PREDICT, HEALTH = "/v1/predict", "/v1/health"


class LocalContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    def __init__(self, request_id: str, timeout_s: float = API_INTEGRATION_TIMEOUT_S) -> None:
        self.function_name = "sagebert-front-door-local"
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:sagebert-front-door-local"
        self.memory_limit_in_mb = 512
        self.aws_request_id = request_id
        self.log_group_name = "/aws/lambda/sagebert-front-door-local"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(1000 * (self._deadline - time.monotonic())))


def proxy_event(method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    """An API Gateway REST (v1) Lambda proxy event, as API Gateway builds it for this request."""
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:  # not text: API Gateway hands such bodies over base64-encoded
        text, encoded = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "stage": STAGE,
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent")},
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "domainName": "127.0.0.1",
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


def _gateway_error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "requestId": str(uuid.uuid4())}).encode()


def _handler_class(invoke: Any) -> type[BaseHTTPRequestHandler]:
    class FrontDoor(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like API Gateway
        disable_nagle_algorithm = True  # headers and body go out in two writes: do not hold the second

        def log_message(self, format: str, *args: Any) -> None:  # the handler logs; no bodies here
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up first: no one to answer
                self.close_connection = True

        def _route(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            path = self.path.split("?")[0].removeprefix(f"/{STAGE}")
            if length > API_GATEWAY_MAX_BODY:
                for _ in range(0, length, 1 << 20):  # drain it, so the client reads the answer
                    self.rfile.read(min(1 << 20, length))
                    length -= 1 << 20
                self.close_connection = True
                self._send(413, _gateway_error("PayloadTooLarge", "Request Too Long"), {})
                return
            body = self.rfile.read(length) if length else b""
            if method == "GET" and path == HEALTH:
                self._send(200, b'{"status": "ok"}', {})
            elif method == "POST" and path == PREDICT:
                headers = {name: value for name, value in self.headers.items()}
                event = proxy_event(method, path, headers, body, self.client_address[0])
                response = invoke(event, LocalContext(event["requestContext"]["requestId"]))
                self._send(response["statusCode"], response["body"].encode("utf-8"), response.get("headers") or {})
            else:
                self._send(403, _gateway_error("Forbidden", "Missing Authentication Token"), {})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return FrontDoor


def handler_environment(endpoint_url: str, endpoint_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the deployed function's environment holds, pointed at the local model server."""
    return {
        "SAGEBERT_ENDPOINT_NAME": endpoint_name,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url,  # boto3's own per-service endpoint override
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",  # the local model server ignores signatures, boto3 still signs
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "sagebert-front-door",
        "POWERTOOLS_METRICS_NAMESPACE": "SageBert",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **(extra or {}),
    }


class LocalApi:
    """Context manager: the local front door in its own process, ready when /v1/health answers."""

    def __init__(
        self,
        *,
        port: int,
        endpoint_url: str,
        endpoint_name: str,
        log_path: Path,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.port, self.log_path = port, log_path
        self.environment = handler_environment(endpoint_url, endpoint_name, environment)
        self.process: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None  # ends the front door if this process dies

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{STAGE}"

    def __enter__(self) -> LocalApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The repository for sagebert, lambdas/ for the handler's packages (Lambda's code root).
        env = {**os.environ, **self.environment, "PYTHONPATH": os.pathsep.join([str(ROOT), str(LAMBDAS_DIR)])}
        command = [sys.executable, "-m", "sagebert.local.front_door", "--port", str(self.port)]
        ensure_free({self.port: "the local front door"}, option="--api-port")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        self.watchdog = guard(self.process.pid)
        problem = wait_healthy(f"{self.url}{HEALTH}", self.process, timeout_s)
        if problem:
            self.stop()
            raise RuntimeError(f"the local front door {problem}; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        stop_guard(self.watchdog)
        self.watchdog = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve lambdas/front_door on 127.0.0.1 (see module docstring)")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    from front_door.handler import lambda_handler  # init: settings and the boto3 client, as in Lambda

    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler_class(lambda_handler))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
