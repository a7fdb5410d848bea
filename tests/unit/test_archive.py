"""Model archive: the layout the Hugging Face toolkit expects, same bytes for the same inputs,
safetensors only, and nothing half-written on failure."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from sagebert.release.archive import ArchiveError, archive_members, build_archive, bundled_model_dir


def names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return sorted(tar.getnames())


def test_default_archive_layout(default_artifact: Path) -> None:
    members = names(default_artifact)
    # Model files at the archive root beside config.json; handler under code/. (The weights travel as
    # ONNX graphs; the safetensors copy only with --runtimes onnx,torch: tests/unit/test_package.py.)
    assert {"config.json", "model.fp32.onnx", "tokenizer.json", "vocab.txt"} <= set(members)
    assert {"code/inference.py", "code/requirements.txt"} <= set(members)
    assert not [m for m in members if m.endswith((".bin", ".h5", ".msgpack"))]
    assert not [m for m in members if "/" in m and not m.startswith("code/")]
    with tarfile.open(default_artifact) as tar:
        handler = tar.extractfile("code/inference.py")
        assert handler is not None
        assert b"def model_fn(" in handler.read()
        assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 for m in tar.getmembers())


def test_same_inputs_same_bytes(tiny_classifier: Path, tmp_path: Path) -> None:
    first = build_archive(archive_members(tiny_classifier), tmp_path / "a" / "model.tar.gz")
    second = build_archive(archive_members(tiny_classifier), tmp_path / "b" / "model.tar.gz")
    assert first.read_bytes() == second.read_bytes()


def test_pickled_weights_are_refused(tiny_classifier: Path, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_classifier, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ArchiveError, match="safetensors only"):
        build_archive(archive_members(folder), tmp_path / "model.tar.gz")


def test_failure_keeps_the_previous_archive(tiny_classifier: Path, tmp_path: Path) -> None:
    output = build_archive(archive_members(tiny_classifier), tmp_path / "model.tar.gz")
    before = output.read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ArchiveError, match=r"missing model\.safetensors"):
        build_archive(archive_members(broken), output)
    assert output.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model-")] == []


def test_bundled_weights_are_found() -> None:
    folder = bundled_model_dir()
    assert (folder / "model.safetensors").stat().st_size > 80_000_000
