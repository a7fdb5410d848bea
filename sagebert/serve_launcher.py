"""Runs inside .venv-serve: start multi-model-server the way the Hugging Face DLC does, on 127.0.0.1.

This is sagemaker-huggingface-inference-toolkit's `start_model_server` with the three things a
laptop needs changed: the config file goes to our folder instead of /etc/sagemaker-mms.properties,
the server binds 127.0.0.1 instead of 0.0.0.0, and the model directory is the unpacked archive
instead of /opt/ml/model. The config itself comes from sagemaker_inference's own generator (the
same environment variables: SAGEMAKER_MODEL_SERVER_WORKERS, SAGEMAKER_MODEL_SERVER_TIMEOUT, ...),
and code/requirements.txt is pip-installed first, as the toolkit does at container start.

    python -m sagebert.serve_launcher MODEL_DIR STATE_DIR PORT
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main(model_dir: Path, state_dir: Path, port: int) -> int:
    os.environ["SAGEMAKER_BIND_TO_PORT"] = str(port)
    from sagemaker_huggingface_inference_toolkit import handler_service
    from sagemaker_inference import environment, model_server

    env = environment.Environment()
    generated = model_server._generate_mms_config_properties(env, handler_service.__name__)
    # Bind to loopback only: inference on `port`, management on the next one.
    addresses = {"inference_address": f"http://127.0.0.1:{port}", "management_address": f"http://127.0.0.1:{port + 1}"}
    lines = [line for line in generated.splitlines() if line.split("=", 1)[0] not in addresses]
    properties = "\n".join([*lines, *(f"{key}={value}" for key, value in addresses.items())]) + "\n"
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
