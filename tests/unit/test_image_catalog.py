"""The committed DLC image catalog agrees with the installed sagemaker SDK, region by region."""

from __future__ import annotations

import json

import pytest

from infra.catalog import images as image_catalog
from sagebert.report import catalog


def test_catalog_matches_installed_sdk() -> None:
    # Given the committed catalog, when the SDK is asked again for every region/version/flavour,
    # then the images are identical (bump the SDK -> regenerate with `make catalog`).
    committed = json.loads(image_catalog.CATALOG_FILE.read_text(encoding="utf-8"))
    assert committed["images"] == catalog.generate()["images"]


def test_catalog_covers_commercial_regions_in_both_flavours() -> None:
    image = image_catalog.find("4.51.3", "2.6.0")
    assert {"us-east-1", "eu-west-1", "af-south-1", "ap-southeast-3"} <= set(image.registries)
    assert not [r for r in image.registries if r.startswith(("cn-", "us-gov-", "us-iso"))]
    assert image.uri("us-east-1", "cpu") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
        "2.6.0-transformers4.51.3-cpu-py312-ubuntu22.04"
    )
    assert image.tag("gpu") == "2.6.0-transformers4.51.3-gpu-py312-cu124-ubuntu22.04"
    # Regions outside 763104351884 use their own registry account.
    assert image.registries["af-south-1"] != "763104351884"


def test_unknown_versions_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"4\.51\.3.*full versions"):
        image_catalog.find("4.51", "2.6.0")
