"""Local servers die with the process that started them, and a busy port says who holds it.

The model server (multi-model-server: a Python script, Java, Python workers) and the local front
door each run in their own process group, so they can be stopped as a whole. A process group
outlives its parent, though: a parent that is killed with SIGKILL (or crashes) runs no cleanup.
So each group gets a watchdog: a tiny process in a session of its own (a SIGKILL sent to the
parent's process group, as a terminal or CI sends it, does not reach it) that waits on a pidfd of
the parent and, when the parent ends, ends the group. It needs no thread in the parent and no
PR_SET_PDEATHSIG (which fires when the *thread* that started the child exits, not the process,
and which a process group paused with SIGSTOP could not act on). The watchdog exits when the group
is gone. A model server's group is also written to a pid file in its state folder; the next start
in that folder ends whatever that group left (if even the watchdog was killed). A server counts as
started once its health URL answers (`wait_healthy`), or as failed once its process has ended.

    python -m sagebert.local.lifeline PARENT_PID GROUP_ID

Standard library only; Linux (/proc, pidfd_open). Elsewhere the watchdog polls the parent.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sagebert.paths import ROOT

POLL_S = 0.5  # how often the watchdog checks whether the group is still there


class PortInUse(Exception):
    """A port a local server needs is taken; the message names the port and the process holding it."""


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a group of this id exists, but it is not ours
        return True
    return True


def end_group(group: int, timeout_s: float = 10.0, child: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGKILL every process in `group` and wait until none is left; False if some outlived timeout_s.

    No SIGTERM first: the parent is gone, nobody waits for a graceful stop, and the server keeps
    no state worth saving. SIGCONT first, in case the group was paused (`make bench` pauses the
    servers it is not measuring): a stopped process is killed by SIGKILL, but only once resumed
    does it leave the process table promptly. `child`: a member that is this process's own child,
    reaped here (until then it stays in the process table, and so in the group)."""
    deadline = time.monotonic() + timeout_s
    while (child is not None and child.poll() is None) or group_alive(group):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _parent_ended(parent: int) -> bool:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # the id now belongs to another user's process: ours is gone
        return True
    return False


def watch(parent: int, group: int) -> int:
    """The watchdog's loop: end `group` when `parent` ends; return when the group is gone."""
    pidfd = None
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:  # the parent already ended before the watchdog started
        end_group(group)
        return 0
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll the parent instead
        pidfd = None
    poller = None
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)  # readable once the process has ended
    while group_alive(group):
        if poller is not None:
            ended = bool(poller.poll(POLL_S * 1000))
        else:
            time.sleep(POLL_S)
            ended = _parent_ended(parent) or os.getppid() == 1
        if ended:
            end_group(group)
            return 0
    return 0


def guard(group: int, parent: int | None = None) -> subprocess.Popen[bytes]:
    """Start a watchdog that ends `group` when `parent` (default: this process) ends."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sagebert.local.lifeline", str(parent or os.getpid()), str(group)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # out of reach of a signal sent to the parent's process group
    )


def stop_guard(watchdog: subprocess.Popen[bytes] | None) -> None:
    if watchdog is not None and watchdog.poll() is None:
        watchdog.kill()
        watchdog.wait()


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> str | None:
    """Poll `url` until it answers 200: None then, else why not (the process ended, or time ran out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited (code {process.returncode})"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    return f"did not answer {url} within {timeout_s:g} s"


# --- pid files --------------------------------------------------------------------------------------


def cmdline(pid: int) -> str:
    """The command line of process `pid` on one line; empty when it is gone or not ours to read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(raw.replace("\0", " ").split())  # one line, whatever the arguments held


def group_members(group: int) -> list[int]:
    """The ids of the processes in process group `group` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # after "(comm)": state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(group):
            members.append(int(entry.name))
    return members


def end_stale_group(pid_file: Path) -> int | None:
    """If `pid_file` names a process group that is still running from the same state folder, end
    it; return the group's id if one was ended. A group id reused by an unrelated process is left alone."""
    try:
        group = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    marker = str(pid_file.parent)
    if any(marker in cmdline(pid) for pid in group_members(group)):
        end_group(group)
        pid_file.unlink(missing_ok=True)
        return group
    pid_file.unlink(missing_ok=True)
    return None


# --- ports ------------------------------------------------------------------------------------------


def _socket_inodes(port: int) -> set[str]:
    """Inodes of the sockets bound to `port` on any local address (IPv4 and IPv6, /proc/net/tcp*)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            # 0A is LISTEN; a bound socket not yet listening (07, CLOSE) also holds the port
            if int(local.rsplit(":", 1)[1], 16) == port and state in ("0A", "07") and inode != "0":
                inodes.add(inode)
    return inodes


def port_holder(port: int) -> tuple[int, str] | None:
    """(pid, command line) of a process holding `port`, when this user may see it; else None."""
    wanted = {f"socket:[{inode}]" for inode in _socket_inodes(port)}
    if not wanted:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(entry.name), cmdline(int(entry.name))
    return None


def port_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (as the local servers bind, SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure_free(ports: dict[int, str], option: str = "--port") -> None:
    """Raise PortInUse, one line naming the port and its holder, unless every port is free."""
    for port, role in ports.items():
        if port_free(port):
            continue
        holder = port_holder(port)
        who = "a process this user cannot see"
        if holder is not None:
            command = holder[1] if len(holder[1]) <= 80 else holder[1][:77] + "..."
            who = f"pid {holder[0]} ({command})"
        raise PortInUse(f"port {port} ({role}) is in use by {who}: stop it, or choose another {option}.")


def main(argv: list[str]) -> int:
    return watch(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
