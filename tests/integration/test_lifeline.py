"""A killed run leaves nothing behind, and a busy port is one line that names who holds it.

The parents here are the real CLI commands (`sagebert batch-local`, `sagebert serve`), killed
with SIGKILL: no cleanup of theirs runs. What must happen anyway: within a few seconds no process
of theirs is left and nothing listens on their ports, and the next run works.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagebert.local.front_door import LocalApi
from sagebert.local.lifeline import PortInUse, end_stale_group, group_alive, port_free, port_holder
from sagebert.local.serve import LocalEndpoint
from tests.integration.conftest import free_block

REPO_ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 10.0  # measured: everything is gone about 1 s after the parent's SIGKILL


def _leftovers(marker: str) -> list[str]:
    """Command lines of this user's processes that mention `marker` (a state folder or a port)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in command:
                found.append(f"{entry.name}: {command[:150]}")
    return found


def _wait_gone(ports: list[int], marker: str) -> float:
    """Seconds until every port is free and no process mentions `marker`; fails after GONE_WITHIN_S."""
    started = time.monotonic()
    while time.monotonic() - started < GONE_WITHIN_S:
        if all(port_free(port) for port in ports) and not _leftovers(marker):
            return time.monotonic() - started
        time.sleep(0.1)
    busy = {port: port_holder(port) for port in ports if not port_free(port)}
    raise AssertionError(f"left behind: ports {busy}, processes {_leftovers(marker)}")


class _Cli:
    """`python -m sagebert ...` in its own process group, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sagebert", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # as a shell runs a job: its own group, which a kill -9 -PGID ends
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the output: {self.lines[-20:]}")
            time.sleep(0.1)


@pytest.fixture()
def records(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    text = "review {}: it works, mostly, though the battery could last longer"
    path.write_text("".join(json.dumps(text.format(i)) + "\n" for i in range(20_000)))
    return path


@pytest.mark.server
def test_a_batch_run_killed_with_its_process_group_leaves_nothing_and_the_next_run_works(
    records: Path, tmp_path: Path, default_artifact: Path
) -> None:
    port, state = free_block(3), tmp_path / "serve"
    args = ["batch-local", "--archive", str(default_artifact), "--port", str(port), "--state-dir", str(state)]
    # Given a run part-way through 20,000 records (small requests, so progress shows early)
    run = _Cli(*args, "--input", str(records), "--output", str(tmp_path / "out.jsonl"), "--max-payload-mb", "0.05")
    run.wait_for("records (")  # the first progress line: the server is up and answering
    # When its whole process group is killed (as `kill -9 -PGID`, or a CI runner timing out)
    os.killpg(run.process.pid, signal.SIGKILL)
    run.process.wait()
    # Then no output file, no server process and no listening port is left
    took = _wait_gone([port, port + 1, port + 2], str(state))
    assert not (tmp_path / "out.jsonl").exists()
    print(f"gone {took:.2f} s after SIGKILL")
    # And the next run on the same ports and folder works
    small = tmp_path / "small.jsonl"
    small.write_text('"fine"\n"awful"\n')
    again = subprocess.run(
        [sys.executable, "-m", "sagebert", *args, "--input", str(small), "--output", str(tmp_path / "small.out")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len((tmp_path / "small.out").read_text().splitlines()) == 2
    _wait_gone([port, port + 1, port + 2], str(state))


@pytest.mark.server
def test_a_killed_serve_leaves_no_server_and_no_front_door(default_artifact: Path) -> None:
    port, api_port = free_block(3), free_block(1)
    ports = [port, port + 1, port + 2, api_port]
    state = str(REPO_ROOT / "build" / "serve" / str(port))
    args = ["serve", "--archive", str(default_artifact), "--port", str(port), "--api-port", str(api_port)]
    serve = _Cli(*args)
    serve.wait_for("Ctrl-C stops everything")
    assert not port_free(api_port) and not port_free(port + 1)
    # When only the parent is killed (kill -9 PID): its children are in groups of their own
    serve.process.kill()
    serve.process.wait()
    _wait_gone(ports, state)
    assert not _leftovers("sagebert.local.front_door --port " + str(api_port))
    # And the next `serve` on the same ports starts, and stops cleanly on SIGTERM
    again = _Cli(*args)
    again.wait_for("Ctrl-C stops everything")
    again.process.terminate()
    assert again.process.wait(timeout=60) == 0
    assert any("no server process left" in line for line in again.lines)
    _wait_gone(ports, state)


@pytest.mark.server
def test_a_killed_bench_api_leaves_no_server_and_no_front_door(default_artifact: Path) -> None:
    # Given `make bench-api` in its load run: the model server and the local front door both up
    port = free_block(4)
    bench = _Cli("bench-api", "--init-runs", "1", "--iterations", "5", "--duration", "5", "--port", str(port))
    bench.wait_for("==> load: front door")
    # When its process group is killed
    os.killpg(bench.process.pid, signal.SIGKILL)
    bench.process.wait()
    # Then the server (state in build/bench-api/serve) and the front door on port + 3 are gone
    _wait_gone([port, port + 1, port + 2, port + 3], str(REPO_ROOT / "build" / "bench-api" / "serve"))
    assert not _leftovers(f"sagebert.local.front_door --port {port + 3}")


@pytest.fixture()
def held_port() -> Iterator[int]:
    """A port this test process listens on (over IPv6, as Java's server binds 127.0.0.1)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as holder:
        holder.bind(("::ffff:127.0.0.1", free_block(3) + 1))  # under 32766: multi-model-server's limit
        holder.listen()
        yield holder.getsockname()[1]


def test_a_busy_port_names_the_port_and_the_process_holding_it(held_port: int, default_artifact: Path) -> None:
    endpoint = LocalEndpoint(default_artifact, port=held_port - 1, state_dir=Path("/nonexistent/never-made"))
    with pytest.raises(PortInUse) as raised:
        endpoint.start()
    message = str(raised.value)
    assert message.startswith(f"port {held_port} (the model server's inference port) is in use by pid {os.getpid()} (")
    assert "\n" not in message and message.endswith("choose another --port.")
    assert endpoint.process is None  # nothing was started
    api = LocalApi(port=held_port, endpoint_url="http://127.0.0.1:9", endpoint_name="x", log_path=Path(os.devnull))
    with pytest.raises(PortInUse, match=rf"^port {held_port} \(the local front door\) is in use by pid {os.getpid()}"):
        api.start()


def test_the_cli_says_so_in_one_line_without_a_traceback(held_port: int, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sagebert",
            "batch-local",
            "--input",
            os.devnull,
            "--output",
            str(tmp_path / "o"),
            "--port",
            str(held_port),
            "--state-dir",
            str(tmp_path / "serve"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: port {held_port} (the local endpoint) is in use by pid {os.getpid()}")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def _parent_with_a_guarded_group(paused: bool) -> tuple[subprocess.Popen[str], int]:
    """A parent process that starts a `sleep` in its own process group under a watchdog, as
    LocalEndpoint does, and prints the group's id."""
    script = (
        "import os, signal, subprocess, sys, time\n"
        "from sagebert.local.lifeline import guard\n"
        "child = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "guard(child.pid)\n"
        f"if {paused}: os.killpg(child.pid, signal.SIGSTOP)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused with SIGSTOP (make bench)"])
def test_the_watchdog_ends_the_group_when_its_parent_is_killed(paused: bool) -> None:
    parent, group = _parent_with_a_guarded_group(paused)
    assert group_alive(group)
    time.sleep(0.3)  # the watchdog has opened its pidfd of the parent
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 3
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(group)


def _orphan(*command: str) -> int:
    """Start `command` in a group of its own whose parent has already exited, as a server whose
    run was killed is: its pid (= its group id)."""
    script = (
        "import subprocess, sys; "
        "quiet = subprocess.DEVNULL; "
        "print(subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=quiet, stderr=quiet).pid)"
    )
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_stale_pid_file_ends_only_a_group_from_the_same_folder(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    mine = _orphan(*sleeper, str(tmp_path))  # its command line names the state folder
    other = _orphan(*sleeper)
    try:
        pid_file = tmp_path / "server.pgid"
        pid_file.write_text(f"{other}\n")
        assert end_stale_group(pid_file) is None and group_alive(other)  # not ours: left alone
        pid_file.write_text(f"{mine}\n")
        assert end_stale_group(pid_file) == mine
        assert not group_alive(mine) and not pid_file.exists()
    finally:
        for group in (mine, other):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
