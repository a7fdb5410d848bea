"""Generate infra/catalog/dlc_images.json from the sagemaker SDK's image config (SDK v2, image_uris), and
infra/catalog/sagemaker_api.json (instance-type enums and numeric ranges) from botocore's SageMaker service model.

Run `python -m sagebert catalog` after bumping the sagemaker SDK or botocore; `--check` only compares and
fails when the committed files and the installed packages disagree (the tests do the same).
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from infra.catalog import sagemaker_api
from infra.catalog.images import CATALOG_FILE

# The transformers versions whose inference images sagebert offers (full versions, as the SDK
# resolves them). Add one here, regenerate, and the config accepts it.
CATALOGUED_TRANSFORMERS = ("4.49.0", "4.51.3")
# Only the commercial partition (amazonaws.com): China, GovCloud and ISO regions use other
# domains and accounts that sagebert does not test.
NON_COMMERCIAL = re.compile(r"^(cn-|us-gov-|us-iso)")
_INSTANCE_FOR = {"cpu": "ml.c5.xlarge", "gpu": "ml.g4dn.xlarge"}
_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[^:]+):(?P<tag>.+)$"
)


def _quiet_sdk() -> None:
    """No instance-metadata probing, no v2 deprecation banner, no config INFO lines."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # v2 on purpose: docs/release-and-packaging.md
    for name in ("sagemaker", "sagemaker.config", "sagemaker.image_uris"):
        logging.getLogger(name).setLevel(logging.WARNING)


def import_sdk() -> Any:
    """The sagemaker SDK (v2), imported quietly and without instance-metadata probing."""
    _quiet_sdk()
    import sagemaker
    import sagemaker.image_uris

    return sagemaker


def image_uris_module() -> tuple[Any, str]:
    """The installed SDK's image_uris module and the SDK version: v3's `sagemaker.core.image_uris` when v3 is
    installed (same functions, same image config: it generates the identical catalog), else v2's
    `sagemaker.image_uris`."""
    from importlib.metadata import version

    _quiet_sdk()
    try:
        from sagemaker.core import image_uris  # v3
    except ImportError:
        import sagemaker.image_uris as image_uris  # v2
    return image_uris, version("sagemaker")


def generate() -> dict[str, Any]:
    """Build the catalog by asking the installed SDK for every region, version and flavour."""
    image_uris, sdk_version = image_uris_module()
    config = image_uris.config_for_framework("huggingface")["inference"]
    entries = []
    for transformers_version in CATALOGUED_TRANSFORMERS:
        version_config = config["versions"][transformers_version]
        for base, spec in sorted(version_config.items()):
            if not base.startswith("pytorch"):
                continue
            pytorch_version = base.removeprefix("pytorch")
            regions = sorted(r for r in spec["registries"] if not NON_COMMERCIAL.match(r))
            tags: dict[str, str] = {}
            registries: dict[str, str] = {}
            repository = spec["repository"]
            for flavour, instance_type in _INSTANCE_FOR.items():
                for region in regions:
                    uri = image_uris.retrieve(
                        "huggingface",
                        region=region,
                        version=transformers_version,
                        base_framework_version=base,
                        image_scope="inference",
                        instance_type=instance_type,
                    )
                    match = _URI.match(uri)
                    if not match or match["repo"] != repository or match["region"] != region:
                        raise RuntimeError(f"unexpected image URI from the SDK: {uri}")
                    if tags.setdefault(flavour, match["tag"]) != match["tag"]:
                        raise RuntimeError(f"{flavour} tag differs by region: {uri} vs {tags[flavour]}")
                    registries[region] = match["account"]
            entries.append(
                {
                    "transformers_version": transformers_version,
                    "pytorch_version": pytorch_version,
                    "py_version": spec["py_versions"][-1],
                    "repository": repository,
                    "tags": tags,
                    "registries": registries,
                }
            )
    entries += _neuron_entries(image_uris)
    return {
        "generated_from": f"sagemaker {sdk_version} image_uri_config/huggingface.json and huggingface-neuronx.json",
        "images": entries,
    }


def _neuron_entries(image_uris: Any) -> list[dict[str, Any]]:
    """The Inferentia2 (neuronx) inference images for the catalogued transformers versions. They have their
    own repository, PyTorch and Python versions, and fewer regions than the CPU/GPU images."""
    config = image_uris.config_for_framework("huggingface-neuronx")["inference"]
    entries = []
    for transformers_version in CATALOGUED_TRANSFORMERS:
        version_config = config["versions"].get(transformers_version)
        if version_config is None:
            continue
        for base, spec in sorted(version_config.items()):
            if not base.startswith("pytorch"):
                continue
            registries: dict[str, str] = {}
            tag = ""
            for region in sorted(r for r in spec["registries"] if not NON_COMMERCIAL.match(r)):
                uri = image_uris.retrieve(
                    "huggingface",
                    region=region,
                    version=transformers_version,
                    base_framework_version=base,
                    image_scope="inference",
                    instance_type="ml.inf2.xlarge",
                    inference_tool="neuronx",
                )
                match = _URI.match(uri)
                if not match or match["repo"] != spec["repository"] or match["region"] != region:
                    raise RuntimeError(f"unexpected image URI from the SDK: {uri}")
                if tag and tag != match["tag"]:
                    raise RuntimeError(f"neuronx tag differs by region: {uri} vs {tag}")
                tag = match["tag"]
                registries[region] = match["account"]
            entries.append(
                {
                    "transformers_version": transformers_version,
                    "pytorch_version": base.removeprefix("pytorch"),
                    "py_version": spec["py_versions"][-1],
                    "repository": spec["repository"],
                    "tags": {"neuronx": tag},
                    "registries": registries,
                }
            )
    return entries


def generate_api() -> dict[str, Any]:
    """The SageMaker API's instance-type enums and the min/max of the members sagebert's config binds to, read
    from the installed botocore's service model (botocore/data/sagemaker/<version>/service-2.json)."""
    import botocore
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("sagemaker", "service-2")
    shapes = model["shapes"]
    ranges: dict[str, dict[str, int | None]] = {}
    for name in sagemaker_api.RANGES:
        structure, member = name.split(".")
        shape = shapes[shapes[structure]["members"][member]["shape"]]
        ranges[name] = {"min": shape.get("min"), "max": shape.get("max")}
    return {
        "generated_from": f"botocore {botocore.__version__} sagemaker {model['metadata']['apiVersion']} service-2.json",
        "enums": {kind: shapes[kind]["enum"] for kind in sagemaker_api.INSTANCE_ENUMS},
        "ranges": ranges,
    }


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=2, sort_keys=True) + "\n"


def main(check: bool = False) -> int:
    api = generate_api()
    if check:
        committed_api = json.loads(sagemaker_api.API_FILE.read_text(encoding="utf-8"))
        name = sagemaker_api.API_FILE.name
        # What matters is the enums and ranges; the botocore version in "generated_from" may move without them.
        if (committed_api["enums"], committed_api["ranges"]) != (api["enums"], api["ranges"]):
            print(f"{name} differs from the installed botocore; run `python -m sagebert catalog`.")
            return 1
        print(f"{name} matches the installed botocore.")
    else:
        sagemaker_api.API_FILE.write_text(render(api), encoding="utf-8")
        print(f"wrote {sagemaker_api.API_FILE} ({sum(len(v) for v in api['enums'].values())} instance types)")
    catalog = generate()
    fresh = render(catalog)
    if check:
        # The images are what matter; the SDK version in "generated_from" may move without them.
        committed = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
        if committed["images"] != catalog["images"]:
            print(f"{CATALOG_FILE.name} differs from the installed sagemaker SDK; run `python -m sagebert catalog`.")
            return 1
        print(f"{CATALOG_FILE.name} matches the installed sagemaker SDK.")
        return 0
    CATALOG_FILE.write_text(fresh, encoding="utf-8")
    print(f"wrote {CATALOG_FILE} ({len(json.loads(fresh)['images'])} image versions)")
    return 0
