"""`make serve`: a model archive on the real serving stack of the Hugging Face DLC, on 127.0.0.1.

The archive is unpacked the way SageMaker does (a fresh model directory), then
sagemaker-huggingface-inference-toolkit + multi-model-server (Java) start from .venv-serve
(sagebert.local.launcher) on an internal port, and a small front on PORT answers:

- `GET /ping` and `POST /invocations`, like the container;
- `POST /endpoints/{name}/invocations`, the sagemaker-runtime route, so a real boto3
  `sagemaker-runtime` client with `endpoint_url=http://127.0.0.1:PORT` calls it as it would call
  SageMaker. A model error comes back as SageMaker's runtime reports it: HTTP 424 ModelError with
  the container's status and message.

Standard library only (it also runs inside the tests' process). Stopping ends the server's whole
process group: no Java or Python worker is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sagebert.local.front_door import PREDICT, LocalApi
from sagebert.local.lifeline import (
    PortInUse,
    end_group,
    end_stale_group,
    ensure_free,
    guard,
    stop_guard,
    wait_healthy,
)
from sagebert.paths import ROOT, SERVE_PYTHON, SERVE_STATE_DIR

ROUTE = re.compile(r"^/endpoints/(?P<name>[A-Za-z0-9-]{1,63})/invocations$")
MAX_BODY = 6 * 1024 * 1024  # InvokeEndpoint's payload limit


class KeepAliveClient:
    """One persistent HTTP/1.1 connection with TCP_NODELAY, as SDK clients keep theirs. A fresh
    connection per request without it costs ~40 ms on loopback (Nagle's algorithm holds the body
    until the server acknowledges the headers, and the server delays that acknowledgement)."""

    def __init__(self, port: int, timeout_s: float = 120.0) -> None:
        self.port, self.timeout_s = port, timeout_s
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        connection.connect()
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def send(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        """POST; reconnects once if the server closed the idle connection."""
        headers = headers or {"Content-Type": "application/json"}
        for attempt in (1, 2):
            try:
                self.connection.request("POST", path, body, headers)
                response = self.connection.getresponse()
                return response.status, response.read(), response.headers
            except (http.client.RemoteDisconnected, ConnectionError):
                self.connection.close()
                if attempt == 2:
                    raise
                self.connection = self._connect()
        raise AssertionError("unreachable")

    def post(self, body: bytes) -> bytes:
        status, data, _ = self.send("/invocations", body)
        if status != 200:
            raise RuntimeError(f"model server answered {status}: {data[:300]!r}")
        return data

    def get(self, path: str) -> bytes:
        self.connection.request("GET", path)
        return self.connection.getresponse().read()


class ServeError(Exception):
    """The local endpoint could not start; the message says why and where the log is."""


class LocalEndpoint:
    """Context manager: unpack, start, wait for /ping, serve; stop on exit."""

    def __init__(
        self,
        archive: Path,
        *,
        port: int = 8080,
        name: str = "sagebert-local",
        state_dir: Path | None = None,
        environment: dict[str, str] | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.archive, self.port, self.name = archive, port, name
        self.state_dir = state_dir or SERVE_STATE_DIR / str(port)
        self.environment = environment or {}
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None  # ends the server if this process dies
        self.front: ThreadingHTTPServer | None = None
        self.log_path = self.state_dir / "server.log"
        self._backend_clients = threading.local()  # one keep-alive connection per front thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend(self) -> str:
        # The model server's inference port; its management API is on a unix socket (serve_launcher).
        return f"http://127.0.0.1:{self.port + 1}"

    def __enter__(self) -> LocalEndpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not 0 < self.port < 32766:
            raise ServeError(
                f"port {self.port}: use 1-32765 (multi-model-server 1.1.11 refuses ports above 32767, "
                "and uses the next port too)."
            )
        if not SERVE_PYTHON.is_file():
            raise ServeError(f"{SERVE_PYTHON} not found; `make serve` creates it (requirements/serve.txt).")
        if not self.archive.is_file():
            raise ServeError(f"{self.archive} not found; build it with `make package`.")
        pid_file = self.state_dir / "server.pgid"
        end_stale_group(pid_file)  # a server left by a run whose watchdog was killed too
        ensure_free(
            {
                self.port: "the local endpoint",
                self.port + 1: "the model server's inference port",
            }
        )
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        model_dir = self.state_dir / "model"
        model_dir.mkdir(parents=True)
        with tarfile.open(self.archive) as tar:  # as SageMaker does: the archive into the model dir
            tar.extractall(model_dir, filter="data")
        tmp = self.state_dir / "tmp"  # multi-model-server keeps a pid file in TMPDIR: one per server
        tmp.mkdir()
        env = {
            **os.environ,
            **self.environment,
            "TMPDIR": str(tmp),
            "TEMP": str(tmp),
            # The server's own logs (access, model, metrics) stay in the state folder, not in ./logs.
            "LOG_LOCATION": str(self.state_dir / "logs"),
            "METRICS_LOCATION": str(self.state_dir / "logs"),
            "PATH": f"{SERVE_PYTHON.parent}:{os.environ.get('PATH', '')}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.pop("PYTHONPATH", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(SERVE_PYTHON),
                    "-m",
                    "sagebert.local.launcher",
                    str(model_dir),
                    str(self.state_dir),
                    str(self.port + 1),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid_file.write_text(f"{self.process.pid}\n", encoding="utf-8")
        self.watchdog = guard(self.process.pid)
        self._wait_ready()
        self.front = ThreadingHTTPServer(("127.0.0.1", self.port), _front_handler(self))
        threading.Thread(target=self.front.serve_forever, daemon=True).start()

    def _wait_ready(self) -> None:
        assert self.process is not None
        problem = wait_healthy(f"{self.backend}/ping", self.process, self.startup_timeout_s)
        if problem:
            self.stop()
            raise ServeError(f"the model server {problem}; see {self.log_path}")

    def stop(self) -> None:
        """End the front, then the server's whole process group (Java and its Python workers)."""
        if self.front is not None:
            self.front.shutdown()
            self.front.server_close()
            self.front = None
        if self.process is None:
            return
        group = self.process.pid
        _end_group(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        end_group(group, timeout_s=15, child=self.process)  # workers that outlive the Java frontend
        self.process.poll()
        self.process = None
        stop_guard(self.watchdog)
        self.watchdog = None
        (self.state_dir / "server.pgid").unlink(missing_ok=True)

    def forward(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """POST to the model server over this thread's keep-alive connection."""
        client = getattr(self._backend_clients, "client", None)
        if client is None:
            client = self._backend_clients.client = KeepAliveClient(self.port + 1, timeout_s=65)
        status, data, reply_headers = client.send(path, body, headers)
        return status, data, {"Content-Type": reply_headers.get("Content-Type", "")}


def _end_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _front_handler(endpoint: LocalEndpoint) -> type[BaseHTTPRequestHandler]:
    class Front(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out in two writes: do not hold the second
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # no request lines (and no bodies) in logs
            return

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                for key, value in headers.items():
                    if value:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the caller gave up (its read timeout): no one to tell
                self.close_connection = True

        def do_GET(self) -> None:
            if self.path == "/ping":
                with urllib.request.urlopen(f"{endpoint.backend}/ping", timeout=5) as response:
                    self._reply(response.status, response.read(), {"Content-Type": "application/json"})
                return
            self._reply(404, b'{"message": "GET /ping only"}', {"Content-Type": "application/json"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(
                    413,
                    json.dumps({"message": f"body over {MAX_BODY} bytes"}).encode(),
                    {"Content-Type": "application/json"},
                )
                return
            body = self.rfile.read(length)
            headers = {
                k: v
                for k, v in (("Content-Type", self.headers.get("Content-Type")), ("Accept", self.headers.get("Accept")))
                if v
            }
            route = ROUTE.match(self.path)
            if self.path == "/invocations":
                self._reply(*endpoint.forward("/invocations", body, headers))
                return
            if route is None:
                self._reply(
                    404,
                    b'{"message": "POST /invocations or /endpoints/{name}/invocations"}',
                    {"Content-Type": "application/json"},
                )
                return
            if route["name"] != endpoint.name:
                message = f"Endpoint {route['name']} of account 000000000000 not found."
                self._reply(
                    400,
                    json.dumps({"__type": "ValidationError", "message": message}).encode(),
                    {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ValidationError"},
                )
                return
            status, answer, answer_headers = endpoint.forward("/invocations", body, headers)
            if status == 200:
                self._reply(200, answer, {**answer_headers, "x-Amzn-Invoked-Production-Variant": "AllTraffic"})
                return
            # What SageMaker's runtime does with a container error: 424 ModelError, original status kept.
            original = answer.decode("utf-8", "replace")
            message = f'Received client error ({status}) from primary with message "{original}".'
            if status >= 500:
                message = f'Received server error ({status}) from primary with message "{original}".'
            error = {
                "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500 else "SERVER_ERROR_FROM_MODEL",
                "Message": message,
                "OriginalMessage": original,
                "OriginalStatusCode": status,
                "LogStreamArn": f"local:{endpoint.log_path}",
            }
            self._reply(
                424,
                json.dumps(error).encode(),
                {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ModelError"},
            )

    return Front


def main(archive: Path, port: int, name: str, api_port: int = 3000) -> int:
    endpoint = LocalEndpoint(archive, port=port, name=name)
    print(f"starting {archive} on the Hugging Face inference toolkit + multi-model-server ...", flush=True)
    try:
        endpoint.start()
    except (ServeError, PortInUse) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"ready: {endpoint.url}/ping, POST {endpoint.url}/invocations, "
        f"POST {endpoint.url}/endpoints/{name}/invocations (boto3: endpoint_url={endpoint.url}); "
        f"log {endpoint.log_path}.",
        flush=True,
    )
    api = None
    if api_port:
        api_log = endpoint.state_dir / "api.log"
        api = LocalApi(port=api_port, endpoint_url=endpoint.url, endpoint_name=name, log_path=api_log)
        try:
            api.start()
        except (RuntimeError, PortInUse) as err:
            endpoint.stop()
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(
            f"front door: POST {api.url}{PREDICT} (the Lambda handler behind an API Gateway emulation; "
            f"its JSON logs in {api.log_path}), e.g.\n  curl -s {api.url}{PREDICT} "
            """-H 'Content-Type: application/json' -d '{"inputs": "I loved it"}'""",
            flush=True,
        )
    print("Ctrl-C stops everything.", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if api is not None:
            api.stop()
        endpoint.stop()
        print("stopped; no server process left.")
    return 0
