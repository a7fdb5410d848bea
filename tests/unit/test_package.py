"""`make package`: the archive the container needs, verified int8, deterministic, refused when broken."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.markers import Marker

from sagebert import package

WHEELS = Path(__file__).resolve().parents[2] / "build" / "wheels"


def members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return set(tar.getnames())


def test_default_archive_layout(default_artifact: Path, tmp_path: Path) -> None:
    names = members(default_artifact)
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "model.int8.onnx",
        "model.fp32.onnx",
        "code/inference.py",
        "code/requirements.txt",
    } <= names
    wheels = sorted(n for n in names if n.startswith("code/wheels/"))
    assert [w.split("/")[-1].split("-")[0] for w in wheels] == ["flatbuffers", "onnxruntime"]
    assert "cp312" in next(w for w in wheels if "onnxruntime" in w)
    with tarfile.open(default_artifact) as tar:
        tar.extractall(tmp_path, filter="data")
    requirements = (tmp_path / "code" / "requirements.txt").read_text()
    assert "--no-index" in requirements and "--find-links wheels" in requirements


@pytest.mark.parametrize(
    ("python", "expected"),
    [("3.12", ["flatbuffers", "onnxruntime"]), ("3.10", [])],
    ids=["cpu-gpu-image-py312", "neuron-image-py310"],
)
def test_requirements_install_offline_from_the_archive(
    default_artifact: Path, tmp_path: Path, python: str, expected: list[str]
) -> None:
    # Given the unpacked archive, when pip resolves code/requirements.txt for the container's Python
    # from another working directory, then it finds everything in code/wheels without an index; the
    # Neuron image's Python 3.10 installs nothing (a cp312 wheel there would fail the container's start).
    with tarfile.open(default_artifact) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    # pip evaluates requirement markers against the Python running it, not --python-version: evaluate them
    # for the container's Python here, then let pip resolve what is left from the archive's wheels alone.
    lines = (tmp_path / "model" / "code" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    wanted = []
    for line in lines:
        if line.startswith(("#", "--")):  # comments, --no-index and --find-links stay as they are
            wanted.append(line)
            continue
        requirement, _, marker = line.partition(";")
        if marker and not Marker(marker.strip()).evaluate({"python_version": python}):
            continue
        wanted.append(requirement.strip())
    (tmp_path / "model" / "code" / "for-this-python.txt").write_text("\n".join(wanted) + "\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--platform",
            "manylinux_2_28_x86_64",
            "--dest",
            str(tmp_path / "got"),
            "-r",
            str(tmp_path / "model" / "code" / "for-this-python.txt"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = tmp_path / "got"
    assert (sorted(p.name.split("-")[0] for p in got.iterdir()) if got.exists() else []) == expected


@pytest.fixture
def check_set(tmp_path: Path) -> Path:
    path = tmp_path / "check.jsonl"
    texts = ["good film", "bad app", "the app is good", "not good", "good good", "bad film", "the film"]
    path.write_text("".join(json.dumps({"text": t, "label": "positive"}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_same_inputs_same_bytes(tiny_classifier: Path, check_set: Path, tmp_path: Path) -> None:
    first = tmp_path / "a" / "model.tar.gz"
    second = tmp_path / "b" / "model.tar.gz"
    package.package(tiny_classifier, first, check_set, 0.0, WHEELS)
    package.package(tiny_classifier, second, check_set, 0.0, WHEELS)
    assert first.read_bytes() == second.read_bytes()


def test_a_broken_quantization_is_refused(
    tiny_classifier: Path, check_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx
    from onnx import numpy_helper

    def sabotaged(optimized: Path, output: Path) -> None:
        # A "quantization" that flips the classifier: every label changes.
        model = onnx.load(str(optimized))
        gemm = next(n for n in model.graph.node if "classifier" in n.name)
        for initializer in model.graph.initializer:
            if initializer.name in gemm.input[1:]:
                initializer.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(initializer), initializer.name))
        onnx.save(model, str(output))

    monkeypatch.setattr(package, "quantize", sabotaged)
    output = tmp_path / "model.tar.gz"
    with pytest.raises(package.PackageError, match=r"int8 model refused: 0\.00% of 7 labels agree"):
        package.package(tiny_classifier, output, check_set, 0.99, WHEELS)
    assert not output.exists(), "nothing written"
