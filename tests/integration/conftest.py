"""The local model server, started once for every integration test that needs it."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagebert.local.lifeline import port_free
from sagebert.local.serve import LocalEndpoint

NAME = "sagebert-test"


def free_port() -> int:
    # Three consecutive free ports: the front, the model server's inference and management ports.
    # Below 32768: multi-model-server 1.1.11 calls higher ports "Invalid port number".
    for port in random.Random(os.getpid()).sample(range(20000, 32000, 3), 200):
        if all(_free(port + i) for i in (0, 1, 2)):
            return port
    raise RuntimeError("no three consecutive free ports on 127.0.0.1")


def free_block(size: int) -> int:
    """A first port with `size` free ports from it (the model server takes three), under 32766."""
    for port in random.sample(range(20000, 32000), 200):
        if all(port_free(port + i) for i in range(size)):
            return port
    raise AssertionError("no block of free ports")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def endpoint(default_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    server = LocalEndpoint(
        default_artifact,
        port=free_port(),
        name=NAME,
        state_dir=tmp_path_factory.mktemp("serve"),
        environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
    )
    with server:
        assert server.process is not None
        group = server.process.pid
        yield server
    # Stopping leaves nothing behind: the whole process group is gone.
    assert server.process is None
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
