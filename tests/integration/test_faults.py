"""Fault injection under load: the model server's workers are killed while clients call the front door.

Four keep-alive clients send requests through the local front door (the real Lambda handler, boto3,
the local SageMaker runtime route) to multi-model-server with two workers. A second in, every
worker is killed with SIGKILL (the service is down until multi-model-server has started new ones).
Every answer must be a 200 or a documented JSON error the front door gives for a model that is
failing or away (502 ModelError, 503 ModelUnavailable, 504 Timeout), and the service must answer
200 again within RECOVERY_BOUND_S of the kill, and from then on only 200.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagebert.local.front_door import LocalApi
from sagebert.local.lifeline import cmdline, group_members
from sagebert.local.serve import LocalEndpoint
from tests.integration.conftest import free_block

pytestmark = pytest.mark.server
CLIENTS = 4
KILL_AT_S = 1.0
# Measured on a shared 2-core VM (AMD EPYC): 200 again 10.8-13.3 s after the kill, 4 of ~265
# answers a 504 (requests queued while no worker ran; a new worker starts Python, the toolkit and
# the ONNX model, pip-free). The bound leaves room for a
# slower machine; the figure itself is printed (pytest -s) and quoted in docs/faults.md.
RECOVERY_BOUND_S = 30.0
DOCUMENTED = {502: "ModelError", 503: "ModelUnavailable", 504: "Timeout"}


@pytest.fixture(scope="module")
def stack(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalEndpoint, LocalApi]]:
    state = tmp_path_factory.mktemp("faults")
    port = free_block(4)
    environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with LocalEndpoint(
        default_artifact, port=port, name="faults", state_dir=state / "serve", environment=environment
    ) as endpoint:
        api = LocalApi(
            port=port + 3,
            endpoint_url=endpoint.url,
            endpoint_name=endpoint.name,
            log_path=state / "api.log",
            environment={"SAGEBERT_READ_TIMEOUT_S": "4"},  # the deployed default is 8 s; shorter keeps the test short
        )
        with api:
            yield endpoint, api


def workers(endpoint: LocalEndpoint) -> list[int]:
    """The model server's worker processes: forked by its preloading worker parent."""
    assert endpoint.process is not None
    found = []
    for pid in group_members(endpoint.process.pid):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if "model_service_worker" in cmdline(pid) and "model_service_worker" in cmdline(parent):
            found.append(pid)
    return found


def test_killed_workers_give_documented_errors_then_200_again(stack: tuple[LocalEndpoint, LocalApi]) -> None:
    endpoint, api = stack
    victims = workers(endpoint)
    assert len(victims) == 2, victims
    body = json.dumps({"inputs": "The battery lasts two days and the screen is sharp."}).encode()
    answers: list[tuple[float, float, int, bytes]] = []  # (sent, answered, status, body), seconds from start
    lock = threading.Lock()
    stop = threading.Event()
    start = time.monotonic()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
        while not stop.is_set():
            sent = time.monotonic() - start
            try:
                connection.request("POST", "/api/v1/predict", body, {"Content-Type": "application/json"})
                reply = connection.getresponse()
                status, data = reply.status, reply.read()
            except (OSError, http.client.HTTPException) as err:  # the front door itself must never drop us
                status, data = -1, repr(err).encode()
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
            with lock:
                answers.append((sent, time.monotonic() - start, status, data))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    # When every worker is killed a second into the load
    time.sleep(KILL_AT_S)
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic() - start
    # ... and the load goes on until 200s come back (and 2 s more), or the bound runs out
    deadline = killed + RECOVERY_BOUND_S + 5
    while time.monotonic() - start < deadline:
        with lock:
            recovered_at = [a for a in answers if a[0] > killed and a[2] == 200]
        if recovered_at and time.monotonic() - start > recovered_at[0][1] + 2:
            break
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=70)

    # Then every answer is a 200 or a documented JSON error
    statuses = [status for _, _, status, _ in answers]
    for _, _, status, data in answers:
        assert status == 200 or status in DOCUMENTED, (status, data[:200])
        if status != 200:
            error = json.loads(data)
            assert error["code"] == DOCUMENTED[status] and error["message"] and error["requestId"], error
    # And 200 again within the bound, and nothing but 200 from a second after that
    first_ok = min(answered for sent, answered, status, _ in answers if sent > killed and status == 200)
    recovery_s = first_ok - killed
    later = [status for sent, _, status, _ in answers if sent > first_ok + 1.0]
    assert recovery_s < RECOVERY_BOUND_S and later and set(later) == {200}, (recovery_s, later)
    assert len(workers(endpoint)) == 2  # multi-model-server replaced both
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}
    print(f"\n{len(answers)} answers {counts}; 200 again {recovery_s:.2f} s after the kill")


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": "x", "parameters": {"top_k": ' + b"7" * 5000 + b"}}",
        b'{"inputs": NaN}',
        b'{"inputs": "a", "inputs": "b"}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"inputs": "\xc0\xaf"}',
    ],
    ids=["huge integer", "NaN", "duplicate key", "deep nesting", "overlong UTF-8"],
)
def test_the_model_server_answers_hostile_json_with_400(stack: tuple[LocalEndpoint, LocalApi], body: bytes) -> None:
    endpoint, _ = stack
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=30)
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    reply = connection.getresponse()
    assert reply.status == 400, reply.read()[:300]
