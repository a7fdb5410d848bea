"""Runs inside .venv-serve: start multi-model-server the way the Hugging Face DLC does, on 127.0.0.1.

This is sagemaker-huggingface-inference-toolkit's `start_model_server` with the four things a
laptop needs changed: the config file goes to our folder instead of /etc/sagemaker-mms.properties,
the inference API binds 127.0.0.1 instead of 0.0.0.0, the management API listens on a unix socket
instead of a TCP port, and the model directory is the unpacked archive instead of /opt/ml/model.

The management API registers models from URLs and scales workers. On a TCP port, even on
127.0.0.1, any web page the developer opens can send it requests (the class of TorchServe's
CVE-2023-43654); a browser cannot reach a unix socket, and the socket's folder is the developer's
own (mode 0700). multi-model-server serves `unix:` addresses with netty's native transport
(use_native_io=true), which its jar carries for Linux and macOS.

The config itself comes from sagemaker_inference's own generator (the same environment variables:
SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT, ...), and code/requirements.txt is
pip-installed first, as the toolkit does at container start.

    python -m sagebert.local.launcher MODEL_DIR STATE_DIR PORT
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# A unix socket's path must fit in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS).
SOCKET_PATH_MAX = 100


def management_socket(state_dir: Path) -> Path:
    """Where the management API listens: in the state folder, or a private temporary folder when that path
    would be too long for a unix socket."""
    path = state_dir / "management.sock"
    if len(str(path)) > SOCKET_PATH_MAX:
        path = Path(tempfile.mkdtemp(prefix="sagebert-mms-")) / "management.sock"
    path.parent.chmod(0o700)
    return path


def config_properties(generated: str, port: int, management: Path) -> str:
    """The toolkit's generated properties with our addresses: inference on 127.0.0.1:`port` only, management on
    the unix socket `management` only."""
    addresses = {
        "inference_address": f"http://127.0.0.1:{port}",
        "management_address": f"unix:{management}",
        "use_native_io": "true",
    }
    lines = [line for line in generated.splitlines() if line.split("=", 1)[0].strip() not in addresses]
    return "\n".join([*lines, *(f"{key}={value}" for key, value in addresses.items())]) + "\n"


def main(model_dir: Path, state_dir: Path, port: int) -> int:
    os.environ["SAGEMAKER_BIND_TO_PORT"] = str(port)
    from sagemaker_huggingface_inference_toolkit import handler_service
    from sagemaker_inference import environment, model_server

    env = environment.Environment()
    generated = model_server._generate_mms_config_properties(env, handler_service.__name__)
    properties = config_properties(generated, port, management_socket(state_dir))
    config = state_dir / "mms.properties"
    config.write_text(properties, encoding="utf-8")

    requirements = model_dir / "code" / "requirements.txt"
    if requirements.is_file():
        print(f"installing {requirements} (as the toolkit does at start-up)", flush=True)
        subprocess.check_call(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]
        )
    command = [
        str(Path(sys.executable).with_name("multi-model-server")),
        "--start",
        "--foreground",
        "--model-store",
        "/",
        "--mms-config",
        str(config),  # as the toolkit: store "/", absolute model path
        "--log-config",
        model_server.DEFAULT_MMS_LOG_FILE,
        "--models",
        f"{model_server.DEFAULT_MMS_MODEL_NAME}={model_dir}",
    ]
    print(" ".join(command), flush=True)
    os.execv(command[0], command)  # the server replaces this process: one process group to stop


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
