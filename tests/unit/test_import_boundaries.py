"""The import boundaries ([tool.importlinter] in pyproject.toml) hold, and each contract catches its breach.

`make lint` and `make test` run `lint-imports` on the tree. Here it runs on a copy of the Python sources
with the project's own configuration: the copy passes as it is, and one import added where a boundary
forbids it breaks exactly the contract that guards that boundary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CODE = ("infra", "sagebert", "lambdas", "model_code")
CONTRACTS = {
    "infra-no-runtime-code": "infra imports neither the Lambda code, nor model_code, nor sagebert",
    "runtime-code-ships-alone": "the Lambda code and model_code import no CDK, no infra, no sagebert",
    "runtime-code-independent": "front_door, batch_manifest and model_code do not import one another",
    "no-cycles": "no import cycles between the sibling packages and modules of infra and sagebert",
}


def _python_only(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or (not n.endswith(".py") and not (Path(folder) / n).is_dir())}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The project's Python sources and pyproject.toml, nothing else (no data, no weights, no build/)."""
    for name in CODE:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=_python_only)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(root: Path) -> tuple[int, dict[str, str]]:
    """Exit code and each contract's verdict (KEPT or BROKEN), run as `make lint` runs it."""
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "lambdas")},
        capture_output=True,
        text=True,
        check=False,
    )
    verdicts = {}
    for contract_id, name in CONTRACTS.items():
        line = next((line for line in done.stdout.splitlines() if line.startswith(f"{name} ")), "")
        verdicts[contract_id] = "BROKEN" if "BROKEN" in line else "KEPT" if "KEPT" in line else line
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a broken contract, not a config error
    return done.returncode, verdicts


def _add_import(path: Path, statement: str) -> None:
    """Put `statement` after the module's docstring and `from __future__` line (where an import would go)."""
    text = path.read_text(encoding="utf-8")
    anchor = "from __future__ import annotations\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, f"{anchor}{statement}\n", 1), encoding="utf-8")


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    assert lint_imports(tree) == (0, dict.fromkeys(CONTRACTS, "KEPT"))


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # synth would run the front door's code: infra reaches Lambda only as an asset, by path
        ("infra/catalog/prices.py", "import front_door.proxy", "infra-no-runtime-code"),
        ("infra/stacks.py", "from sagebert.report import cost", "infra-no-runtime-code"),
        # the model archive's inference.py would need the CDK inside the container
        ("model_code/inference.py", "import aws_cdk", "runtime-code-ships-alone"),
        ("lambdas/front_door/settings.py", "from infra.config.stage import StageConfig", "runtime-code-ships-alone"),
        # the batch manifest's asset holds no front_door
        ("lambdas/batch_manifest/manifest.py", "from front_door import contract", "runtime-code-independent"),
        # the watchdog would import the server it watches, which imports the watchdog
        ("sagebert/local/lifeline.py", "from sagebert.local import serve", "no-cycles"),
        ("infra/config/base.py", "from infra.online import realtime_endpoint", "no-cycles"),
    ],
)
def test_each_contract_catches_its_breach(tree: Path, module: str, statement: str, broken: str) -> None:
    _add_import(tree / module, statement)
    code, verdicts = lint_imports(tree)
    assert code == 1
    assert verdicts == {contract: "BROKEN" if contract == broken else "KEPT" for contract in CONTRACTS}
