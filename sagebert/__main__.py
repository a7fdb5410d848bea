"""`python -m sagebert <command>`: the developer tools behind the Makefile's verbs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sagebert import paths

# Stdlib only, like this module: the pipeline's smoke step runs `python -m sagebert smoke` with botocore alone.
from sagebert.local.smoke import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT_S, RETRY_WAIT_S


def _code_root(folder: Path) -> None:
    """Import from `folder` the way its runtime does: lambdas/ is Lambda's code root (its packages at the top
    level: `front_door`, not `lambdas.front_door`), model_code/ the containers' (`inference`, `train`)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _env_flag(name: str) -> bool:
    """SAGEBERT_<NAME>=1/true/yes (what `make package REQUIRE_INT8=1` passes on)."""
    return os.environ.get(f"SAGEBERT_{name}", "").strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sagebert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    archive = commands.add_parser("archive", help="build model.tar.gz from a Hugging Face model folder")
    archive.add_argument(
        "--model-dir", type=Path, default=None, help="model folder (default: the bundled all-MiniLM-L6-v2 weights)"
    )
    archive.add_argument("--output", type=Path, default=paths.ARTIFACT)

    package = commands.add_parser(
        "package", help="ONNX export, fusions, int8, agreement check and model.tar.gz with wheels (make package)"
    )
    package.add_argument("--model-dir", type=Path, default=paths.DEMO_MODEL_DIR)
    package.add_argument("--output", type=Path, default=paths.ARTIFACT)
    package.add_argument(
        "--check-set",
        type=Path,
        action="append",
        default=None,
        help="held-out JSON Lines with `text`, repeatable (default: data/sentiment/validation.jsonl and test.jsonl)",
    )
    from sagebert.release.package import Tolerance  # light: numpy only; the heavy imports are lazy

    tolerance = Tolerance()
    package.add_argument(
        "--min-agreement",
        type=float,
        default=tolerance.min_agreement,
        help=f"share of held-out labels int8 must keep from PyTorch fp32 (default {tolerance.min_agreement})",
    )
    package.add_argument(
        "--max-p99-gap",
        type=float,
        default=tolerance.max_p99_gap,
        help=f"largest p99 probability gap int8 may have on the held-out texts (default {tolerance.max_p99_gap})",
    )
    package.add_argument(
        "--check-max-gap",
        type=float,
        default=tolerance.check_max_gap,
        help="largest probability gap int8 may have on the archive's check set when a worker starts, else the "
        f"worker serves fp32 ONNX (default {tolerance.check_max_gap})",
    )
    package.add_argument(
        "--require-int8",
        action="store_true",
        help="stop (write nothing) when int8 misses the tolerance, instead of shipping fp32 ONNX with a warning",
    )
    package.add_argument(
        "--recipe",
        default="faithful",
        choices=["faithful", "fast"],
        help="int8 recipe: faithful (per-token int8 FFN, attention fp32: keeps fp32's answers, batch-independent) "
        "or fast (dynamic int8 everywhere: quicker, answers move more; see `make int8-study`). Default faithful",
    )
    package.add_argument(
        "--runtimes",
        default="onnx",
        help="what the archive must serve: onnx (the ONNX graphs only, the default) or onnx,torch (adds the "
        "safetensors weights for the torch and GPU paths); `auto`: onnx,torch when a stage in config/ uses gpu",
    )

    study = commands.add_parser(
        "int8-study", help="int8 recipes (and bf16) against PyTorch fp32 on this CPU: table and JSON (make int8-study)"
    )
    study.add_argument("--model-dir", type=Path, default=paths.DEMO_MODEL_DIR)
    study.add_argument("--threads", type=int, default=2, help="threads for every recipe (default 2)")
    study.add_argument("--iterations", type=int, default=30, help="timed calls per text length (default 30)")
    study.add_argument(
        "--calibration", type=int, default=64, help="training texts for SmoothQuant and sensitivity (default 64)"
    )

    serve = commands.add_parser("serve", help="serve an archive on the real toolkit + model server at 127.0.0.1")
    serve.add_argument("--archive", type=Path, default=paths.ARTIFACT)
    serve.add_argument("--port", type=int, default=8080, help="the front's port; the model server uses the next")
    serve.add_argument("--name", default="sagebert-local", help="endpoint name for /endpoints/{name}/invocations")
    serve.add_argument("--api-port", type=int, default=3000, help="the local front door's port (0: none)")

    bench = commands.add_parser("bench", help="stock handler vs sagebert runtimes, side by side (make bench)")
    bench.add_argument("--threads", type=int, default=2, help="threads for every contender (default 2)")
    bench.add_argument("--iterations", type=int, default=200, help="requests per text length (default 200)")
    bench.add_argument("--budget", type=float, default=30.0, help="seconds at most per text length")
    bench.add_argument(
        "--port", type=int, default=23000, help="first local port: the contenders' servers take three each, 10 apart"
    )

    bench_api_parser = commands.add_parser(
        "bench-api", help="the front door's cold init, overhead and a load run (make bench-api)"
    )
    bench_api_parser.add_argument(
        "--clients", type=int, default=8, help="concurrent clients in the load run (default 8)"
    )
    bench_api_parser.add_argument("--duration", type=float, default=60.0, help="seconds per load run (default 60)")
    bench_api_parser.add_argument("--iterations", type=int, default=300, help="requests for the overhead measure")
    bench_api_parser.add_argument(
        "--init-runs", type=int, default=15, help="fresh processes for cold init (default 15)"
    )
    bench_api_parser.add_argument("--port", type=int, default=23100, help="first of four local ports")

    batch = commands.add_parser(
        "batch-local", help="a batch transform run on the local model server (make batch-local)"
    )
    batch.add_argument(
        "--input", type=Path, required=True, help='JSON Lines: one text per line (a JSON string or {"inputs": str})'
    )
    batch.add_argument("--output", type=Path, required=True, help="one answer per input line, in order")
    batch.add_argument("--archive", type=Path, default=paths.ARTIFACT)
    batch.add_argument(
        "--max-payload-mb",
        type=float,
        # A transform job's default (infra/config/batch.py); tests/unit/test_batch_facts.py keeps them equal.
        default=2.0,
        help="MaxPayloadInMB of a MultiRecord request (default 2, as a transform job)",
    )
    batch.add_argument(
        "--concurrency", type=int, default=2, help="requests at a time, MaxConcurrentTransforms (default 2)"
    )
    batch.add_argument(
        "--bad-lines",
        choices=["mark", "fail"],
        default="mark",
        help="a bad line: an error record (mark) or a failed run",
    )
    batch.add_argument(
        "--port", type=int, default=23200, help="first local port: the contenders' servers take three each, 10 apart"
    )
    batch.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)  # the server's folder

    bench_batch_parser = commands.add_parser(
        "bench-batch", help="batch throughput: sagebert vs the stock handler (make bench-batch)"
    )
    bench_batch_parser.add_argument("--records", type=int, default=6000, help="records per contender (default 6000)")
    bench_batch_parser.add_argument("--port", type=int, default=23300, help="first of three local ports")

    catalog = commands.add_parser(
        "catalog",
        help="regenerate infra/catalog/dlc_images.json from the sagemaker SDK and "
        "infra/catalog/sagemaker_api.json from botocore",
    )
    catalog.add_argument("--check", action="store_true", help="only compare; exit 1 when they differ")

    train = commands.add_parser(
        "train",
        help="fine-tune locally (arguments go to model_code/train.py) or launch a SageMaker training job",
        description="Local: `python -m sagebert train [train.py arguments]`. Remote: `python -m sagebert train "
        "--remote --stage dev [--dry-run]` builds the job from config/<stage>.yaml's training section.",
    )
    train.add_argument("--remote", action="store_true", help="launch a SageMaker training job")
    train.add_argument("--stage", help="with --remote: the stage whose config/<stage>.yaml has `training:`")
    train.add_argument("--dry-run", action="store_true", help="with --remote: print the request, call nothing")
    train.add_argument("--region", help="with --remote: overrides the stage's region")
    train.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR, help=argparse.SUPPRESS)

    commands.add_parser("dataset", help="rebuild data/sentiment/{train,validation,test}.jsonl from raw/")

    commands.add_parser("config-reference", help="print the config reference (Markdown) from the schema")

    openapi = commands.add_parser("openapi", help="write docs/openapi.json from the front door's contract")
    openapi.add_argument("--check", action="store_true", help="only compare; exit 1 when it is stale")

    smoke = commands.add_parser(
        "smoke", help="one predict request to a deployed stage's API, answer checked (the pipeline's smoke test)"
    )
    smoke.add_argument("--url", required=True, help="the stage's ApiUrl output (POST /v1/predict)")
    smoke.add_argument("--api-key-id", help="the stage's ApiKeyId output (auth: api_key); absent: SigV4 (auth: iam)")
    smoke.add_argument("--region", help="the stage's region (default: the configured AWS region)")
    smoke.add_argument("--role-arn", help="assume this role first (the stage account's smoke-test role)")
    smoke.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    smoke.add_argument(
        "--attempts",
        type=int,
        default=DEFAULT_ATTEMPTS,
        help=f"tries on 5xx, 429 or no answer (default {DEFAULT_ATTEMPTS})",
    )
    smoke.add_argument(
        "--retry-wait",
        type=float,
        default=RETRY_WAIT_S,
        help=f"seconds between tries (default {RETRY_WAIT_S:g}; longer for a stage that scales to zero)",
    )

    cost = commands.add_parser(
        "cost", help="monthly cost per stage, cost per million predictions, a recommendation (make cost)"
    )
    cost.add_argument("--stage", help="only this stage (default: every config/*.yaml)")
    cost.add_argument("--json", type=Path, default=None, help="also write the report as JSON to this path")
    cost.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR, help=argparse.SUPPRESS)

    preflight = commands.add_parser(
        "preflight",
        help="before a deploy: Powertools parameter, image tag, SageMaker quotas, Lambda concurrency, CDK bootstrap, "
        "update path, in the target account (read-only; without credentials it lists the checks)",
    )
    preflight.add_argument("--stage", required=True, help="the stage whose config/<stage>.yaml is checked")
    preflight.add_argument("--region", help="the target region (default: the stage's, else the configured one)")
    preflight.add_argument("--outdir", type=Path, default=paths.CDK_OUT, help="the synthesized app to compare")
    preflight.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR, help=argparse.SUPPRESS)

    register = commands.add_parser(
        "register",
        help="upload the packaged archive and create a model package version in the registry group, pending "
        "approval (the stage with registry.owner: true)",
    )
    register.add_argument("--stage", required=True, help="the stage that owns the model package group")
    register.add_argument("--archive", type=Path, default=paths.ARTIFACT, help="the archive (make package)")
    register.add_argument(
        "--metrics", type=Path, default=paths.DEMO_METRICS, help="train.py's metrics.json for that model"
    )
    register.add_argument("--dry-run", action="store_true", help="print every request, call nothing")
    register.add_argument("--region", help="overrides the stage's region")
    register.add_argument(
        "--bucket", help="the artifact bucket (default: the stage storage stack's ArtifactBucketName output)"
    )
    register.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR, help=argparse.SUPPRESS)

    resolve = commands.add_parser(
        "resolve-models",
        help="write the latest Approved model package version of each registry group a stage deploys (for synth)",
    )
    resolve.add_argument("--stage", required=True, help="the stage whose `model.source: registry` groups to resolve")
    resolve.add_argument("--output", type=Path, default=paths.RESOLVED_MODELS)
    resolve.add_argument("--region", help="overrides the stage's region")
    resolve.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR, help=argparse.SUPPRESS)

    report = commands.add_parser("report", help="cfn-lint every synthesized template, print a per-stage summary")
    report.add_argument("--outdir", type=Path, default=paths.CDK_OUT)
    report.add_argument("--config-dir", type=Path, default=paths.CONFIG_DIR, help="stage files to match")

    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _code_root(paths.LAMBDAS_DIR)  # the local front door, bench-api and openapi run lambdas/front_door
    try:
        if args.command == "archive":
            from sagebert.release import archive as archive_module

            return archive_module.main(args.model_dir, args.output)
        if args.command == "package":
            from sagebert.release import package as package_module

            check_texts = args.check_set or list(package_module.DEFAULT_CHECK_TEXTS)
            tolerance = package_module.Tolerance(
                min_agreement=args.min_agreement, max_p99_gap=args.max_p99_gap, check_max_gap=args.check_max_gap
            )
            runtimes = package_module.resolve_runtimes(args.runtimes, paths.CONFIG_DIR)
            return package_module.main(
                args.model_dir,
                args.output,
                check_texts,
                tolerance,
                args.require_int8 or _env_flag("REQUIRE_INT8"),
                runtimes,
            )
        if args.command == "int8-study":
            from sagebert.bench import int8_study

            return int8_study.main(args.model_dir, args.threads, args.iterations, args.calibration)
        if args.command == "serve":
            from sagebert.local import serve as serve_module

            return serve_module.main(args.archive, args.port, args.name, args.api_port)
        if args.command == "bench":
            from sagebert.bench import model_server as bench_module

            return bench_module.main(args.threads, args.iterations, args.budget, args.port)
        if args.command == "catalog":
            from sagebert.report import catalog as catalog_module

            return catalog_module.main(check=args.check)
        if args.command == "dataset":
            from sagebert.release import dataset

            return dataset.main()
        if args.command == "train":
            return _train(args, extra)
        if args.command == "config-reference":
            from sagebert.report.config_reference import render

            print(render(), end="")
            return 0
        if args.command == "batch-local":
            from sagebert.local import batch as batch_local

            return batch_local.main(
                args.archive,
                args.input,
                args.output,
                max_payload_mb=args.max_payload_mb,
                concurrency=args.concurrency,
                bad_lines=args.bad_lines,
                port=args.port,
                state_dir=args.state_dir,
            )
        if args.command == "bench-batch":
            from sagebert.bench import batch as bench_batch

            return bench_batch.main(args.records, args.port)
        if args.command == "bench-api":
            from sagebert.bench import front_door as bench_api

            return bench_api.main(args.clients, args.duration, args.iterations, args.init_runs, args.port)
        if args.command == "openapi":
            from sagebert.report import openapi as openapi_module

            return openapi_module.main(args.check)
        if args.command == "smoke":
            from sagebert.local import smoke as smoke_module

            return smoke_module.main(
                args.url,
                args.region,
                args.api_key_id,
                args.role_arn,
                timeout_s=args.timeout,
                attempts=args.attempts,
                retry_wait_s=args.retry_wait,
            )
        if args.command == "cost":
            from sagebert.report import cost as cost_module

            return cost_module.main(args.config_dir, args.stage, args.json)
        if args.command == "preflight":
            from sagebert.checks import preflight as preflight_module

            return preflight_module.main(args.stage, args.config_dir, args.region, args.outdir)
        if args.command == "register":
            from sagebert.release import registry

            return registry.main_register(
                args.stage,
                args.config_dir,
                args.archive,
                args.metrics,
                dry_run=args.dry_run,
                region=args.region,
                bucket=args.bucket,
            )
        if args.command == "resolve-models":
            from sagebert.release import registry

            return registry.main_resolve(args.stage, args.config_dir, args.output, region=args.region)
        from sagebert.report import synth as synth_report

        return synth_report.main(args.outdir, args.config_dir)
    except Exception as err:  # a clear one-line error for the known failure kinds
        from infra.config.errors import ConfigError
        from sagebert.local.lifeline import PortInUse
        from sagebert.local.serve import ServeError
        from sagebert.release.archive import ArchiveError
        from sagebert.release.dataset import DatasetError
        from sagebert.release.registry import RegistryError
        from sagebert.release.remote_training import RemoteTrainingError
        from sagebert.report.cost import CostError

        known = (
            ArchiveError
            | ConfigError
            | CostError
            | DatasetError
            | PortInUse
            | RegistryError
            | RemoteTrainingError
            | ServeError
        )
        if isinstance(err, known):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise


def _train(args: argparse.Namespace, extra: list[str]) -> int:
    if not args.remote:
        if args.stage or args.dry_run:
            print("error: --stage and --dry-run go with --remote.", file=sys.stderr)
            return 2
        _code_root(paths.MODEL_CODE_DIR)
        import train as train_script  # model_code/train.py: the same script SageMaker runs

        result: int = train_script.main(extra)
        return result
    if extra:
        print(
            f"error: with --remote, train.py arguments go in config training.hyperparameters, not {extra}.",
            file=sys.stderr,
        )
        return 2
    if not args.stage:
        print("error: --remote needs --stage (e.g. --stage dev).", file=sys.stderr)
        return 2
    from infra.config.stage import load_stage_config
    from sagebert.release import remote_training

    config_file = args.config_dir / f"{args.stage}.yaml"
    if not config_file.is_file():
        print(
            f"error: {config_file} not found; stages: {sorted(p.stem for p in args.config_dir.glob('*.yaml'))}.",
            file=sys.stderr,
        )
        return 2
    return remote_training.main(args.stage, load_stage_config(config_file), dry_run=args.dry_run, region=args.region)


if __name__ == "__main__":
    sys.exit(main())
