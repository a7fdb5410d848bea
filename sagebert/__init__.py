"""sagebert developer tools: build the model archive, generate the image catalog, report on synth."""

import sys
from pathlib import Path

# Lambda's code root: functions import `front_door`, not `lambdas.front_door`.
LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambdas"


def use_lambda_code_root() -> None:
    """Make lambdas/ importable the way Lambda does (its packages at the top level)."""
    if str(LAMBDA_ROOT) not in sys.path:
        sys.path.insert(0, str(LAMBDA_ROOT))
