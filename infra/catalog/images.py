"""The Hugging Face inference container (DLC) images sagebert can deploy, per commercial region.

The data lives in dlc_images.json beside this file. It is generated from the sagemaker SDK's own
image config by `python -m sagebert catalog` and checked against the installed SDK by the tests,
so synth never needs the SDK (and never calls AWS) to resolve an image URI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

CATALOG_FILE = Path(__file__).with_name("dlc_images.json")

# cpu and gpu share one repository per version; neuronx (Inferentia2) images have their own repository,
# PyTorch and Python versions, and fewer regions.
Flavour = Literal["cpu", "gpu", "neuronx"]


@dataclass(frozen=True)
class DlcImage:
    """One Hugging Face inference image version: same tag everywhere, a registry per region."""

    transformers_version: str
    pytorch_version: str
    py_version: str
    repository: str
    tags: dict[str, str]
    registries: dict[str, str]

    def tag(self, flavour: Flavour) -> str:
        return self.tags[flavour]

    def uri(self, region: str, flavour: Flavour) -> str:
        """Full image URI for a known region (commercial partition: amazonaws.com)."""
        account = self.registries[region]
        return f"{account}.dkr.ecr.{region}.amazonaws.com/{self.repository}:{self.tags[flavour]}"


@cache
def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    return data


def images() -> list[DlcImage]:
    """Every image version in the catalog."""
    return [DlcImage(**entry) for entry in _load()["images"]]


def _cpu_gpu_images() -> list[DlcImage]:
    return [image for image in images() if "cpu" in image.tags]


def find(transformers_version: str, pytorch_version: str) -> DlcImage:
    """The CPU/GPU image for these versions; ValueError listing the known pairs when there is none."""
    for image in _cpu_gpu_images():
        if (image.transformers_version, image.pytorch_version) == (transformers_version, pytorch_version):
            return image
    known = ", ".join(f"transformers {i.transformers_version} + pytorch {i.pytorch_version}" for i in _cpu_gpu_images())
    raise ValueError(
        f"no Hugging Face inference image for transformers {transformers_version!r} with pytorch "
        f"{pytorch_version!r}; the catalog has: {known}. Use full versions (4.51.3, not 4.51), or "
        "regenerate the catalog with `python -m sagebert catalog`."
    )


def find_neuron(transformers_version: str) -> DlcImage:
    """The Inferentia2 (neuronx) image for this transformers version; ValueError naming the known ones."""
    found = [
        image for image in images() if "neuronx" in image.tags and image.transformers_version == transformers_version
    ]
    if found:
        return found[-1]  # the newest PyTorch for this version (the catalog is sorted)
    known = sorted({i.transformers_version for i in images() if "neuronx" in i.tags})
    raise ValueError(
        f"no Hugging Face Neuron (Inferentia2) inference image for transformers {transformers_version!r}; the catalog "
        f"has: {', '.join(known)}. Set model.container.transformers_version to one of them."
    )


class Versions(Protocol):
    """What picks an image: a model's container settings (`model.container` in a stage config)."""

    @property
    def transformers_version(self) -> str: ...

    @property
    def pytorch_version(self) -> str: ...


def image_for(container: Versions, flavour: Flavour) -> DlcImage:
    """The image a model with these container versions runs on in `flavour`: the Neuron image for neuronx
    (its PyTorch is the catalog's), else the CPU/GPU image."""
    if flavour == "neuronx":
        return find_neuron(container.transformers_version)
    return find(container.transformers_version, container.pytorch_version)


def regions() -> frozenset[str]:
    """Regions where every catalogued CPU/GPU image has a registry."""
    sets = [frozenset(image.registries) for image in _cpu_gpu_images()]
    return frozenset.intersection(*sets) if sets else frozenset()
