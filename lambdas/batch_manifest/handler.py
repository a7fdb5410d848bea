"""Lambda entry point of the batch manifest: Powertools logger and tracer around `manifest.write_manifest`.

The state machine invokes it after a transform job succeeded. It logs the counts and the manifest's
location, never an object's contents; a RecordCountMismatch propagates, so the execution fails.
"""

from __future__ import annotations

from typing import Any

import botocore.session
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from .manifest import Run, write_manifest

logger = Logger()
tracer = Tracer(patch_modules=("botocore",))
client = botocore.session.get_session().create_client(
    "s3", config=Config(retries={"mode": "standard", "max_attempts": 5})
)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = Run.from_event(event)
    logger.append_keys(job=run.job, execution=run.execution)
    try:
        manifest = write_manifest(client, run)
    except Exception:
        logger.exception("manifest failed", extra={"output": run.output_uri})
        raise
    logger.info(
        "manifest written",
        extra={key: manifest[key] for key in ("status", "input_records", "output_records", "duration_s", "output")},
    )
    return manifest
