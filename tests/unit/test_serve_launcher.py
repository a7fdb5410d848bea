"""The local model server's config: inference on loopback TCP, management on a private unix socket only."""

from __future__ import annotations

from pathlib import Path

from sagebert.local.launcher import SOCKET_PATH_MAX, config_properties, management_socket

# What sagemaker_inference generates (its template binds both APIs to every interface).
GENERATED = """enable_envvars_config=true
decode_input_request=false
load_models=ALL
inference_address=http://0.0.0.0:8080
management_address=http://0.0.0.0:8080
default_workers_per_model=1
"""


def test_inference_binds_loopback_and_management_leaves_tcp(tmp_path: Path) -> None:
    properties = config_properties(GENERATED, 8081, tmp_path / "management.sock")
    values = dict(line.split("=", 1) for line in properties.splitlines())
    assert values["inference_address"] == "http://127.0.0.1:8081"
    assert values["management_address"] == f"unix:{tmp_path / 'management.sock'}"
    assert values["use_native_io"] == "true"  # multi-model-server serves unix: addresses only with it
    assert "0.0.0.0" not in properties
    assert values["default_workers_per_model"] == "1"  # the toolkit's own settings stay
    assert properties.count("management_address=") == 1


def test_the_socket_folder_is_private_and_short_enough(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    path = management_socket(state)
    assert path == state / "management.sock" and (state.stat().st_mode & 0o777) == 0o700
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    elsewhere = management_socket(deep)
    assert len(str(elsewhere)) <= SOCKET_PATH_MAX and (elsewhere.parent.stat().st_mode & 0o777) == 0o700
    elsewhere.parent.rmdir()
