"""What is pinned: every Python lock file by hash and installed hash-checked, CI's actions by commit, nothing of
this machine in project files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.pipeline import SMOKE_INSTALL, SMOKE_PACKAGES

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements/lock.txt", "requirements/serve.txt", "requirements/weights.txt")
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)")


def entries(path: Path) -> dict[str, list[str]]:
    """name -> its --hash values, for every requirement of a lock file (continuation lines joined)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            found[match[1].lower()] = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_sha256_hashes_and_no_machine_path(lock: str) -> None:
    path = ROOT / lock
    pins = entries(path)
    assert pins, f"{lock}: no pins"
    assert {name for name, hashes in pins.items() if not hashes} == set(), f"{lock}: pins without --hash"
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*--(extra-index-url|index-url|find-links|trusted-host)", text, re.MULTILINE)
    assert "file://" not in text and "/opt/" not in text


def test_every_install_is_hash_checked() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -r requirements/" in line]
    assert len(installs) == 3  # lock, weights, serve
    assert all("--require-hashes" in line for line in installs), installs
    assert "--generate-hashes" in makefile and "--no-emit-find-links" in makefile


def test_the_smoke_tests_install_cuts_hashed_entries_from_the_lock(tmp_path: Path) -> None:
    # The pipeline's smoke test installs botocore and its dependencies from the lock's entries, hashes included.
    command = SMOKE_INSTALL.split(" && ")[0].replace("/tmp/smoke-requirements.txt", str(tmp_path / "smoke.txt"))
    subprocess.run(["bash", "-c", command], cwd=ROOT, check=True)
    cut = entries(tmp_path / "smoke.txt")
    assert set(cut) == set(SMOKE_PACKAGES) and all(cut.values())
    lock = entries(ROOT / "requirements" / "lock.txt")
    assert {name: lock[name] for name in SMOKE_PACKAGES} == cut


def test_ci_reads_only_pins_actions_by_commit_and_keeps_no_token() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    assert workflow["permissions"] == {"contents": "read"}
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step for step in steps if "uses" in step]
    assert uses
    for step in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    (checkout,) = [step for step in uses if step["uses"].startswith("actions/checkout@")]
    assert checkout["with"]["persist-credentials"] is False
