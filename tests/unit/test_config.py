"""Stage config: the committed files load; every kind of bad file fails with a useful message."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import BundledModel, ConfigError, HubModel, S3Model, load_all, load_stage_config


def write(tmp_path: Path, text: str, name: str = "dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_stage_config(path)
    message = str(raised.value)
    assert str(path) in message, "the message names the file"
    return message


def test_committed_stages_load(repo_root: Path) -> None:
    stages = load_all(repo_root / "config")
    assert list(stages) == ["dev", "prod", "staging"]
    assert stages["prod"].production and stages["prod"].endpoint.instance_count >= 2
    assert not stages["dev"].production and not stages["dev"].retain_data
    assert all(isinstance(s.model, BundledModel) for s in stages.values())


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    config = load_stage_config(write(tmp_path, ""))
    assert config.account is None and config.region is None  # environment-agnostic
    assert config.endpoint.instance_type == "ml.c6i.large"
    assert config.model.source == "bundled" and config.model.network_isolation


def test_sources_parse(tmp_path: Path) -> None:
    s3 = load_stage_config(write(tmp_path, "model: {source: s3, uri: s3://my-bucket/models/v1/model.tar.gz}"))
    assert isinstance(s3.model, S3Model)
    hub = load_stage_config(
        write(
            tmp_path,
            (
                "model: {source: hub, model_id: distilbert-base-uncased-finetuned-sst-2-english, "
                "task: text-classification}"
            ),
        )
    )
    assert isinstance(hub.model, HubModel) and not hub.model.network_isolation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys: the key and the keys allowed at that level
        ("endpiont: {}", ["endpiont", "unknown key", "allowed keys here: account, region"]),
        (
            "endpoint: {instance_typ: ml.c6i.large}",
            ["endpoint.instance_typ", "allowed keys here: compute, instance_type"],
        ),
        ("model: {source: bundled, uri: s3://b/k.tar.gz}", ["model.uri", "allowed keys here: source, artifact"]),
        # wrong types and values: key, value, what is allowed
        ("endpoint: {instance_count: many}", ["endpoint.instance_count", "'many'", "valid integer"]),
        ("endpoint: {instance_count: 0}", ["endpoint.instance_count", "0", "greater than or equal to 1"]),
        ("endpoint: {instance_type: ml.g4dn.xlarge}", ["endpoint.instance_type", "ml.g4dn.xlarge", "c6i"]),
        ("endpoint: {compute: elastic-inference}", ["endpoint.compute", "elastic-inference", "'cpu'"]),
        ("model: {source: ftp}", ["model", "ftp", "'bundled', 's3', 'hub'"]),
        (
            "model: {source: s3, uri: https://example.com/m.tar.gz}",
            ["model.uri", "https://example.com/m.tar.gz", "s3://"],
        ),
        ("account: '1234'", ["account", "'1234'", "12 digits"]),
        ("region: mars-north-1", ["region = 'mars-north-1'", "eu-west-1"]),
        ("model: {source: bundled, container: {transformers_version: '4.51'}}", ["'4.51'", "4.51.3"]),
        # impossible combinations
        ("production: true\nendpoint: {instance_count: 1}", ["endpoint.instance_count = 1", "at least 2"]),
        ("production: true\nretain_data: false\nendpoint: {instance_count: 2}", ["retain_data = false", "production"]),
        (
            "production: true\nendpoint: {instance_count: 2}\n"
            "model: {source: hub, model_id: org/m, task: text-classification}",
            ["model.source = hub", "allow_download_in_production"],
        ),
        (
            "model: {source: hub, model_id: org/m, task: text-classification, network_isolation: true}",
            ["model.network_isolation = true", "source = hub"],
        ),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_for(tmp_path, text)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    message = error_for(tmp_path, "endpoint: {instance_count: 0, variant_name: 'bad name!'}\nfoo: 1")
    assert "endpoint.instance_count" in message
    assert "endpoint.variant_name" in message
    assert "foo" in message


def test_hub_in_production_is_allowed_only_explicitly(tmp_path: Path) -> None:
    config = load_stage_config(
        write(
            tmp_path,
            (
                "production: true\nendpoint: {instance_count: 2}\n"
                "model: {source: hub, model_id: org/m, task: text-classification, allow_download_in_production: true}"
            ),
        )
    )
    assert isinstance(config.model, HubModel)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in error_for(tmp_path, "endpoint: [unclosed")
    assert "must be a mapping" in error_for(tmp_path, "- a\n- b")


def test_stage_file_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no stage files"):
        load_all(tmp_path)
    write(tmp_path, "", name="Prod_EU.yaml")
    with pytest.raises(ConfigError, match=r"Prod_EU\.yaml: the file name is the stage name"):
        load_all(tmp_path)
