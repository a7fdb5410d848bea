"""The docs: the README is a front page over docs/, the generated blocks are what the code generates, and every
relative link leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sagebert.report.config_reference import BEGIN, END, render

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The page that carries each generated block (a test per block below keeps it current).
CONFIGURATION_PAGE = DOCS / "configuration.md"
API_PAGE = DOCS / "api.md"
README_MAX_BYTES = 20 * 1024
# One page per capability, each with these sections in this order (others may sit between them).
CAPABILITY_PAGES = (
    "configuration.md",
    "release-and-packaging.md",
    "endpoint.md",
    "api.md",
    "batch.md",
    "cost.md",
    "promotion.md",
    "monitoring.md",
    "compliance.md",
    "benchmarks.md",
    "faults.md",
)
SECTIONS = ("What it creates", "Config keys", "Defaults", "Security", "Cost", "Limits")

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`]*`")


def pages() -> list[Path]:
    """The README, docs/ and the notes beside the code (lambdas/README.md, model_code/README.md, the data card)."""
    beside = [ROOT / "lambdas" / "README.md", ROOT / "model_code" / "README.md", *(ROOT / "data").rglob("*.md")]
    return [README, *sorted(DOCS.glob("*.md")), *beside]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every Markdown heading outside code blocks."""
    found = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            found.append((len(match[1]), match[2]))
    return found


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces to hyphens, repeats
    numbered."""
    seen: dict[str, int] = {}
    found = set()
    for _, text in headings(path):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    links = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ... are not files here
                links.append(target)
    return links


def block(text: str, begin: str, end: str) -> str:
    return text[text.index(begin) : text.index(end) + len(end)] + "\n"


# --- generated blocks -----------------------------------------------------------------------------------------


def test_the_config_reference_matches_the_schema() -> None:
    text = CONFIGURATION_PAGE.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{CONFIGURATION_PAGE.name} lost its config-reference markers"
    assert block(text, BEGIN, END) == render(), (
        f"the config reference in docs/{CONFIGURATION_PAGE.name} is stale: paste `python -m sagebert config-reference`"
    )


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


def test_the_error_table_is_the_front_doors() -> None:
    from sagebert.report.openapi import ERRORS_BEGIN, ERRORS_END, error_table

    text = API_PAGE.read_text(encoding="utf-8")
    assert ERRORS_BEGIN in text and ERRORS_END in text, f"{API_PAGE.name} lost its api-errors markers"
    assert block(text, ERRORS_BEGIN, ERRORS_END) == error_table(), (
        f"the error table in docs/{API_PAGE.name} is stale: paste `python -m sagebert openapi`'s table"
    )


def test_each_generated_block_lives_on_one_page_only() -> None:
    # A copy left behind on another page would go stale unnoticed: only the pages above are checked.
    for marker, home in ((BEGIN, CONFIGURATION_PAGE), ("<!-- api-errors:begin", API_PAGE)):
        holders = [page.name for page in pages() if marker in page.read_text(encoding="utf-8")]
        assert holders == [home.name], f"{marker!r} is on {holders}, expected only {home.name}"


# --- the front page ---------------------------------------------------------------------------------------------


def test_the_readme_is_a_front_page() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (limit {README_MAX_BYTES}): move detail to docs/"


def test_the_readme_links_every_page_and_every_page_links_back() -> None:
    readme_links = {target.split("#")[0] for target in relative_links(README)}
    for page in sorted(DOCS.glob("*.md")):
        assert f"docs/{page.name}" in readme_links, f"README.md does not link docs/{page.name}"
        if page.name != "int8.md":  # kept as it was written, linked from README and the release page
            assert any(t.split("#")[0] == "../README.md" for t in relative_links(page)), f"{page.name} has no link back"


@pytest.mark.parametrize("name", CAPABILITY_PAGES)
def test_each_capability_page_has_the_same_sections_in_the_same_order(name: str) -> None:
    found = [text for level, text in headings(DOCS / name) if level == 2]
    positions = [found.index(section) if section in found else -1 for section in SECTIONS]
    assert -1 not in positions, f"{name} lacks {[s for s, p in zip(SECTIONS, positions, strict=True) if p < 0]}"
    assert positions == sorted(positions), f"{name}: sections out of order: {found}"


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in pages():
        for target in relative_links(page):
            file_part, _, anchor = target.partition("#")
            destination = (page.parent / file_part).resolve() if file_part else page
            if not destination.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_config_example_is_a_valid_stage(tmp_path: Path) -> None:
    from infra.config.stage import load_stage_config

    text = README.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", text[text.index("## Configuration") :], re.S)
    assert example, "README's Configuration section lost its example"
    path = tmp_path / "example.yaml"
    path.write_text(example[1], encoding="utf-8")
    assert isinstance(yaml.safe_load(example[1]), dict)
    config = load_stage_config(path)
    assert config.production and config.api is not None and config.batch is not None


def test_the_architecture_page_matches_the_tree() -> None:
    # Every module of infra/ and sagebert/ is named on the architecture page, in a row that names its
    # folder, and every infra/ or sagebert/ path the page names exists: a newcomer can trust the map.
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    mentioned = {path for row in rows for path in re.findall(r"`((?:infra|sagebert)/[\w/.]*)`", row)}
    for path in mentioned:
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"
    for module in sorted([*ROOT.joinpath("infra").rglob("*.py"), *ROOT.joinpath("sagebert").rglob("*.py")]):
        if module.name == "__init__.py":
            continue
        folder = module.parent.relative_to(ROOT).as_posix() + "/"
        named = any(
            any(
                path.startswith(folder) and "/" not in path[len(folder) :].rstrip("/")
                for path in re.findall(r"`((?:infra|sagebert)/[\w/.]*)`", row)
            )
            and re.search(rf"`({re.escape(folder)})?{module.stem}(\.py)?`", row)
            for row in rows
        )
        assert named, f"{module.relative_to(ROOT)} is not on docs/architecture.md's module table"
