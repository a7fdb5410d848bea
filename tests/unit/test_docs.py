"""The README's config reference is the schema's, word for word."""

from __future__ import annotations

from pathlib import Path

from sagebert.report.config_reference import BEGIN, END, render


def test_readme_config_reference_matches_the_schema(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme, "README lost its config-reference markers"
    block = readme[readme.index(BEGIN) : readme.index(END) + len(END)] + "\n"
    assert block == render(), "README config reference is stale: paste `python -m sagebert config-reference`"


def test_every_schema_key_is_documented() -> None:
    table = render()
    for key in (
        "account",
        "region",
        "production",
        "retain_data",
        "model.source",
        "model.uri",
        "model.model_id",
        "endpoint.instance_type",
        "endpoint.instance_count",
        "tags",
    ):
        assert f"| `{key}` |" in table
    assert "|  |" not in table.replace("| |", ""), "a key without a description"


def test_the_openapi_document_is_generated_from_the_front_doors_contract() -> None:
    from sagebert.paths import OPENAPI_DOCUMENT
    from sagebert.report.openapi import render as render_openapi

    assert OPENAPI_DOCUMENT.read_text(encoding="utf-8") == render_openapi(), "run `python -m sagebert openapi`"


def test_readme_error_table_is_the_front_doors(repo_root: Path) -> None:
    from sagebert.report.openapi import ERRORS_BEGIN, ERRORS_END, error_table

    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert ERRORS_BEGIN in readme and ERRORS_END in readme, "README lost its api-errors markers"
    block = readme[readme.index(ERRORS_BEGIN) : readme.index(ERRORS_END) + len(ERRORS_END)] + "\n"
    assert block == error_table(), "README error table is stale: paste `python -m sagebert openapi`'s table"
