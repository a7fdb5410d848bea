"""Where things are in the checkout: every location the developer tools read or write, defined once.

Absolute, so a command works from any working directory. The AWS facts' JSON files are not here: each
belongs to its typed module in infra/catalog (e.g. `infra.catalog.prices.PRICES_FILE`), and the tools
import it from there. Constructs never read this module: app.py hands them what they need.

Standard library only: the process watchdog (sagebert.local.lifeline) imports it too.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Inputs in the repository.
CONFIG_DIR = ROOT / "config"  # one <stage>.yaml per stage
DATA_DIR = ROOT / "data" / "sentiment"  # the shipped splits, raw/ beside them
LAMBDAS_DIR = ROOT / "lambdas"  # Lambda's code root: its packages (front_door, ...) sit at the top level
MODEL_CODE_DIR = ROOT / "model_code"  # the containers' code: inference.py and train.py, top-level modules
OPENAPI_DOCUMENT = ROOT / "docs" / "openapi.json"
CFN_LINT_CONFIG = ROOT / ".cfnlintrc.yaml"
SERVE_PYTHON = ROOT / ".venv-serve" / "bin" / "python"  # the serving stack's interpreter (make serve)
CDK_OUT = ROOT / "cdk.out"  # cdk.json's output folder: the synthesized cloud assembly

# What the Makefile's verbs build (build/ is never committed).
BUILD_DIR = ROOT / "build"
ARTIFACT = BUILD_DIR / "model.tar.gz"  # the default model archive (make package)
DEMO_MODEL_DIR = BUILD_DIR / "demo-classifier"  # the fine-tuned demo classifier (make train)
DEMO_METRICS = DEMO_MODEL_DIR / "metrics.json"  # its validation and test figures (`register` records them)
RESOLVED_MODELS = BUILD_DIR / "resolved-models.json"  # resolve-models writes, synth reads (a test keeps it infra's)
WHEEL_CACHE = BUILD_DIR / "wheels"  # the container wheels `make package` puts in the archive
SERVE_STATE_DIR = BUILD_DIR / "serve"  # a local endpoint's unpacked archive and logs, one folder per port
BATCH_LOCAL_STATE_DIR = BUILD_DIR / "batch-local" / "serve"
# Each benchmark's folder and the results.json in it (the cost report reads them where present).
BENCH_DIR = BUILD_DIR / "bench"  # make bench
BENCH_RESULTS = BENCH_DIR / "results.json"
BENCH_API_DIR = BUILD_DIR / "bench-api"  # make bench-api
BENCH_API_RESULTS = BENCH_API_DIR / "results.json"
BENCH_BATCH_DIR = BUILD_DIR / "bench-batch"  # make bench-batch
BENCH_BATCH_RESULTS = BENCH_BATCH_DIR / "results.json"
INT8_STUDY_DIR = BUILD_DIR / "int8-study"  # make int8-study
