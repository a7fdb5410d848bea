"""Run inside .venv-serve: drive the toolkit's HuggingFaceHandlerService in-process (no Java).

    python handler_service_driver.py MODEL_DIR CASES_JSON   (cases: [[body, content_type, accept], ...])

Prints one JSON list: {"ok": response} or {"error": message, "code": status} per case.
"""

import json
import sys

from mms.context import Context, RequestProcessor
from mms.metrics.metrics_store import MetricsStore
from sagemaker_huggingface_inference_toolkit.handler_service import HuggingFaceHandlerService


def main(model_dir: str, cases: list) -> list:
    context = Context("model", model_dir, {}, 1, None, "1.1.11")
    context.metrics = MetricsStore({0: "request"}, "model")
    service = HuggingFaceHandlerService()
    service.initialize(context)
    results = []
    for body, content_type, accept in cases:
        context.request_processor = [RequestProcessor({"Content-Type": content_type, "Accept": accept})]
        try:
            response = service.handle([{"body": body.encode("utf-8")}], context)[0]
            results.append({"ok": response if isinstance(response, str) else response.decode()})
        except Exception as err:  # the toolkit turns every handler error into PredictionException(..., 400)
            results.append({"error": getattr(err, "message", str(err)), "code": getattr(err, "error_code", None)})
    return results


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
