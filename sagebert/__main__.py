"""`python -m sagebert <command>`: the developer tools behind the Makefile's verbs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sagebert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    archive = commands.add_parser("archive", help="build model.tar.gz from a Hugging Face model folder")
    archive.add_argument(
        "--model-dir", type=Path, default=None, help="model folder (default: the bundled all-MiniLM-L6-v2 weights)"
    )
    archive.add_argument("--output", type=Path, default=Path("build/model.tar.gz"))

    catalog = commands.add_parser("catalog", help="regenerate infra/dlc_images.json from the sagemaker SDK")
    catalog.add_argument("--check", action="store_true", help="only compare; exit 1 when they differ")

    commands.add_parser("config-reference", help="print the config reference (Markdown) from the schema")

    report = commands.add_parser("report", help="cfn-lint every synthesized template, print a per-stage summary")
    report.add_argument("--outdir", type=Path, default=Path("cdk.out"))

    args = parser.parse_args(argv)
    try:
        if args.command == "archive":
            from sagebert import archive as archive_module

            return archive_module.main(args.model_dir, args.output)
        if args.command == "catalog":
            from sagebert import catalog as catalog_module

            return catalog_module.main(check=args.check)
        if args.command == "config-reference":
            from sagebert.config_reference import render

            print(render(), end="")
            return 0
        from sagebert import synth_report

        return synth_report.main(args.outdir)
    except Exception as err:  # a clear one-line error for the known failure kinds
        from sagebert.archive import ArchiveError

        if isinstance(err, ArchiveError):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
