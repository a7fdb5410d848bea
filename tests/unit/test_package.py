"""`make package`: the archive the container needs, verified int8, deterministic, refused when broken."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.markers import Marker

from sagebert.release import package

WHEELS = Path(__file__).resolve().parents[2] / "build" / "wheels"


def members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return set(tar.getnames())


def test_default_archive_layout(default_artifact: Path, tmp_path: Path) -> None:
    names = members(default_artifact)
    assert {
        "config.json",
        "tokenizer.json",
        "model.fp32.onnx",
        "sagebert.json",
        "code/inference.py",
        "code/requirements.txt",
    } <= names
    # Lean: the shipped stages all serve on CPUs, so no safetensors copy (the ONNX graphs carry the weights).
    assert "model.safetensors" not in names
    wheels = sorted(n for n in names if n.startswith("code/wheels/"))
    assert [w.split("/")[-1].split("-")[0] for w in wheels] == ["flatbuffers", "onnxruntime"]
    assert "cp312" in next(w for w in wheels if "onnxruntime" in w)
    with tarfile.open(default_artifact) as tar:
        tar.extractall(tmp_path, filter="data")
    requirements = (tmp_path / "code" / "requirements.txt").read_text()
    assert "--no-index" in requirements and "--find-links wheels" in requirements
    manifest = json.loads((tmp_path / "sagebert.json").read_text())
    sidecar = json.loads(default_artifact.with_name(default_artifact.name + ".json").read_text())
    assert sidecar == {"served_runtime": manifest["served_runtime"], "runtimes": ["onnx"]}


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
        line, _, hashes = line.partition(" --hash=")
        requirement, _, marker = line.partition(";")
        if marker and not Marker(marker.strip()).evaluate({"python_version": python}):
            continue
        # Keep the wheel's hash: pip then checks the downloaded bytes against it (hash-checking mode).
        assert hashes.startswith("sha256:"), line
        wanted.append(f"{requirement.strip()} --hash={hashes}")
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


LOOSE = package.Tolerance(min_agreement=0.0, max_p99_gap=1.0, check_max_gap=1.0)


def test_same_inputs_same_bytes(tiny_classifier: Path, check_set: Path, tmp_path: Path) -> None:
    first = tmp_path / "a" / "model.tar.gz"
    second = tmp_path / "b" / "model.tar.gz"
    package.package(tiny_classifier, first, check_set, LOOSE, WHEELS)
    package.package(tiny_classifier, second, check_set, LOOSE, WHEELS)
    assert first.read_bytes() == second.read_bytes()


def flip_classifier(graph: Path, output: Path, *_: object) -> dict[str, object]:
    """A "quantization" that flips the classifier: every label changes."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    gemm = next(n for n in model.graph.node if "classifier" in n.name)
    for initializer in model.graph.initializer:
        if initializer.name in gemm.input[1:]:
            initializer.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(initializer), initializer.name))
    onnx.save(model, str(output))
    return {"recipe": "sabotaged", "batch_independent": False}


def test_int8_that_misses_the_tolerance_ships_fp32_with_a_warning(
    tiny_classifier: Path,
    check_set: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an int8 graph that disagrees with fp32, when packaging without --require-int8, then the archive
    # serves fp32 ONNX, leaves the failed int8 graph out, records why, and the warning gives the figures.
    monkeypatch.setattr(package.quantize, "build", flip_classifier)
    output = tmp_path / "model.tar.gz"
    manifest = package.package(tiny_classifier, output, check_set, package.Tolerance(), WHEELS)
    assert manifest["served_runtime"] == "onnx-fp32" and not manifest["int8"]["meets_tolerance"]
    assert manifest["int8"]["fidelity"]["label_agreement"] == 0.0
    names = members(output)
    assert "model.fp32.onnx" in names and "model.int8.onnx" not in names
    warning = capsys.readouterr().err
    assert "warning: int8 misses the tolerance on this CPU" in warning and "0.00% of 7 labels agree" in warning
    assert "--require-int8" in warning and "make int8-study" in warning


def test_require_int8_stops_and_writes_nothing(
    tiny_classifier: Path, check_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package.quantize, "build", flip_classifier)
    output = tmp_path / "model.tar.gz"
    with pytest.raises(package.PackageError, match=r"int8 refused on this CPU .*: 0\.00% of 7 labels agree"):
        package.package(tiny_classifier, output, check_set, package.Tolerance(), WHEELS, require_int8=True)
    assert not output.exists() and not output.with_name("model.tar.gz.json").exists(), "nothing written"


def test_runtimes_decide_whether_the_weights_travel(tiny_classifier: Path, check_set: Path, tmp_path: Path) -> None:
    lean = package.package(tiny_classifier, tmp_path / "lean.tar.gz", check_set, LOOSE, WHEELS)
    full = package.package(
        tiny_classifier, tmp_path / "full.tar.gz", check_set, LOOSE, WHEELS, runtimes=("onnx", "torch")
    )
    assert "model.safetensors" not in members(tmp_path / "lean.tar.gz") and lean["runtimes"] == ["onnx"]
    assert "model.safetensors" in members(tmp_path / "full.tar.gz") and full["runtimes"] == ["onnx", "torch"]
    with pytest.raises(package.PackageError, match="--runtimes torch: allowed are onnx"):
        package.package(tiny_classifier, tmp_path / "x.tar.gz", check_set, LOOSE, WHEELS, runtimes=("torch",))


def test_auto_runtimes_follow_the_stage_configs(tmp_path: Path) -> None:
    (tmp_path / "dev.yaml").write_text("endpoint:\n  compute: cpu\n", encoding="utf-8")
    assert package.resolve_runtimes("auto", tmp_path) == ("onnx",)
    (tmp_path / "gpu.yaml").write_text("endpoint:\n  compute: gpu\n", encoding="utf-8")
    assert package.resolve_runtimes("auto", tmp_path) == ("onnx", "torch")
    assert package.resolve_runtimes("onnx,torch", tmp_path) == ("onnx", "torch")


def test_check_set_is_chosen_to_notice_a_different_cpu() -> None:
    import numpy as np

    # Given eight texts: fp32 probabilities, and how far int8 moved each on the build's CPU
    reference = np.array(
        [[0.99, 0.01], [0.02, 0.98], [0.55, 0.45], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.96, 0.04], [0.1, 0.9]]
    )
    moved = np.array([0.001, 0.04, 0.02, 0.3, 0.03, 0.01, 0.0, 0.049])
    int8 = reference + np.stack([-moved, moved], axis=1)
    tolerance = package.Tolerance(check_max_gap=0.1, check_size=3)
    chosen = package.check_set([f"t{i}" for i in range(8)], reference, int8, tolerance)
    # Then: not t2 (its label leads by 0.1 < 2 x tolerance) nor t3 (moved beyond half the tolerance here);
    # of the rest, the three int8 moved furthest, in file order, with their fp32 probabilities.
    assert chosen["texts"] == ["t1", "t4", "t7"]
    assert chosen["probabilities"][0] == [0.02, 0.98]


def test_the_archives_requirements_pin_each_wheels_sha256(tmp_path: Path, repo_root: Path) -> None:
    # Given the container wheels and a copy of one with a byte changed, when pip downloads from the requirements
    # file offline and hash-checked, then the real wheels pass and the changed one is refused.
    import hashlib
    import shutil

    wheels = sorted((repo_root / "build" / "wheels").glob("*.whl"))
    if not wheels:
        pytest.skip("build/wheels is empty: `make package` fills it")
    text = package.requirements_txt(wheels).decode()
    for wheel in wheels:
        assert f"--hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}" in text
    shop = tmp_path / "wheels"
    shop.mkdir()
    for wheel in wheels:
        shutil.copy(wheel, shop / wheel.name)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text.replace('; python_version == "3.12"', ""), encoding="utf-8")

    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
             "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--dest", str(tmp_path / "got"),
             "-r", str(requirements)],
            capture_output=True, text=True, cwd=tmp_path, check=False,
        )  # fmt: skip

    ok = download()
    assert ok.returncode == 0, ok.stderr[-2000:]
    shutil.rmtree(tmp_path / "got")
    tampered = shop / wheels[0].name
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    refused = download()
    assert refused.returncode != 0 and "DO NOT MATCH THE HASHES" in refused.stderr
