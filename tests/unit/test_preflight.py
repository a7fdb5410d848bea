"""`python -m sagebert preflight`: every check against a real botocore client driven by Stubber (expected
parameters asserted), and the no-credentials answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from infra.catalog import images as image_catalog
from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER
from infra.config.stage import StageConfig, load_stage_config
from sagebert import paths
from sagebert.checks import preflight

REGION = "eu-west-1"
IMAGE = image_catalog.find("4.51.3", "2.6.0")


@pytest.fixture
def prod(repo_root: Path) -> StageConfig:
    return load_stage_config(repo_root / "config" / "prod.yaml")


def client(service: str) -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def stubbed() -> Iterator[dict[str, tuple[Any, Stubber]]]:
    made: dict[str, tuple[Any, Stubber]] = {}
    for service in ("sts", "ssm", "ecr", "service-quotas", "lambda", "cloudformation"):
        made[service] = (c := client(service), Stubber(c))
        made[service][1].activate()
    yield made
    for _, stubber in made.values():
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def parameter(name: str, value: str) -> dict[str, Any]:
    return {"Parameter": {"Name": name, "Type": "String", "Value": value}}


def quotas(values: dict[str, float]) -> dict[str, Any]:
    return {
        "Quotas": [
            {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": f"L-{i:08d}", "Value": value}
            for i, (name, value) in enumerate(values.items())
        ]
    }


def test_account(stubbed: dict[str, tuple[Any, Stubber]], prod: StageConfig) -> None:
    sts, stub = stubbed["sts"]
    identity = {"Account": "111122223333", "Arn": "arn:aws:iam::111122223333:user/dev", "UserId": "AIDA"}
    for _ in range(3):
        stub.add_response("get_caller_identity", identity, {})
    assert preflight.check_account(sts, prod).detail == "111122223333 (environment-agnostic stage)"
    pinned = prod.model_copy(update={"account": "444455556666"})
    wrong = preflight.check_account(sts, pinned)
    assert wrong.verdict == "FAIL" and "444455556666" in wrong.detail
    assert preflight.check_account(sts, prod.model_copy(update={"account": "111122223333"})).verdict == "PASS"


def test_powertools_parameter(stubbed: dict[str, tuple[Any, Stubber]]) -> None:
    ssm, stub = stubbed["ssm"]
    arn = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27"
    stub.add_response("get_parameter", parameter(POWERTOOLS_LAYER_PARAMETER, arn), {"Name": POWERTOOLS_LAYER_PARAMETER})
    stub.add_client_error("get_parameter", service_error_code="ParameterNotFound", http_status_code=400)
    assert preflight.check_powertools(ssm) == preflight.Check(
        "Powertools layer parameter", "PASS", f"{POWERTOOLS_LAYER_PARAMETER} -> {arn}"
    )
    missing = preflight.check_powertools(ssm)
    assert missing.verdict == "FAIL" and "does not exist" in missing.detail


def test_image_tag(stubbed: dict[str, tuple[Any, Stubber]]) -> None:
    ecr, stub = stubbed["ecr"]
    expected = {
        "registryId": IMAGE.registries[REGION],
        "repositoryName": IMAGE.repository,
        "imageIds": [{"imageTag": IMAGE.tag("cpu")}],
        "acceptedMediaTypes": preflight.IMAGE_MEDIA_TYPES,
    }
    found = {
        "images": [
            {
                "registryId": IMAGE.registries[REGION],
                "repositoryName": IMAGE.repository,
                "imageId": {"imageTag": IMAGE.tag("cpu")},
            }
        ],
        "failures": [],
    }
    stub.add_response("batch_get_image", found, expected)
    not_found = {
        "images": [],
        "failures": [
            {
                "imageId": {"imageTag": IMAGE.tag("cpu")},
                "failureCode": "ImageNotFound",
                "failureReason": "Requested image not found",
            }
        ],
    }
    stub.add_response("batch_get_image", not_found, expected)
    assert preflight.check_image(ecr, IMAGE, "cpu", REGION).verdict == "PASS"
    failed = preflight.check_image(ecr, IMAGE, "cpu", REGION)
    assert failed.verdict == "FAIL" and "ImageNotFound" in failed.detail
    # A region the catalog has no registry for fails without a call.
    assert preflight.check_image(ecr, IMAGE, "cpu", "xx-nowhere-1").verdict == "FAIL"


def test_quotas_cover_blue_green_at_the_maximum_fleet(
    stubbed: dict[str, tuple[Any, Stubber]], prod: StageConfig
) -> None:
    service_quotas, stub = stubbed["service-quotas"]
    # prod: ml.c6i.xlarge autoscaled up to 6 -> a blue/green update needs 12; batch runs 2 ml.c6i.xlarge.
    assert preflight.endpoint_instances(prod) == {"ml.c6i.xlarge": 6}
    enough = {"ml.c6i.xlarge for endpoint usage": 12.0, "ml.c6i.xlarge for transform job usage": 2.0}
    stub.add_response("list_service_quotas", quotas(enough), {"ServiceCode": "sagemaker"})
    short = {"ml.c6i.xlarge for endpoint usage": 11.0}
    stub.add_response("list_service_quotas", quotas(short), {"ServiceCode": "sagemaker"})
    assert [c.verdict for c in preflight.check_quotas(service_quotas, prod)] == ["PASS", "PASS"]
    endpoint, transform = preflight.check_quotas(service_quotas, prod)
    assert endpoint.verdict == "FAIL" and "11 < 2 x 6" in endpoint.detail
    assert transform.verdict == "WARN" and "not listed" in transform.detail


def test_lambda_keeps_100_unreserved(stubbed: dict[str, tuple[Any, Stubber]], prod: StageConfig) -> None:
    lambda_, stub = stubbed["lambda"]
    assert prod.api is not None and prod.api.reserved_concurrency == 50
    for unreserved in (1000, 140):
        settings = {"AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": unreserved}}
        stub.add_response("get_account_settings", settings, {})
    assert preflight.check_lambda_concurrency(lambda_, prod).verdict == "PASS"
    failed = preflight.check_lambda_concurrency(lambda_, prod)
    assert failed.verdict == "FAIL" and "90 after reserving 50" in failed.detail


def test_bootstrap_version(stubbed: dict[str, tuple[Any, Stubber]], tmp_path: Path) -> None:
    ssm, stub = stubbed["ssm"]
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "artifacts": {
                    "S": {"type": "aws:cloudformation:stack", "properties": {"requiresBootstrapStackVersion": 6}}
                }
            }
        ),
        encoding="utf-8",
    )
    required = preflight.required_bootstrap_version(tmp_path)
    assert required == 6
    for value in ("30", "5"):
        stub.add_response(
            "get_parameter", parameter(preflight.BOOTSTRAP_PARAMETER, value), {"Name": preflight.BOOTSTRAP_PARAMETER}
        )
    stub.add_client_error("get_parameter", service_error_code="ParameterNotFound", http_status_code=400)
    assert preflight.check_bootstrap(ssm, required).verdict == "PASS"
    assert preflight.check_bootstrap(ssm, required) == preflight.Check(
        "CDK bootstrap version", "FAIL", "5 < 6: run `npx cdk bootstrap` to upgrade it"
    )
    assert "not bootstrapped" in preflight.check_bootstrap(ssm, required).detail


def test_update_path_without_a_synth_is_skipped(stubbed: dict[str, tuple[Any, Stubber]], tmp_path: Path) -> None:
    cloudformation, _ = stubbed["cloudformation"]
    assert preflight.check_update_path(cloudformation, "prod", tmp_path / "cdk.out").verdict == "SKIP"


def test_run_checks_everything_the_stage_needs(
    stubbed: dict[str, tuple[Any, Stubber]], prod: StageConfig, tmp_path: Path
) -> None:
    stubbed["sts"][1].add_response("get_caller_identity", {"Account": "111122223333"})
    stubbed["ssm"][1].add_response(
        "get_parameter", parameter(POWERTOOLS_LAYER_PARAMETER, "arn"), {"Name": POWERTOOLS_LAYER_PARAMETER}
    )
    found = {"images": [{"imageId": {"imageTag": IMAGE.tag("cpu")}}], "failures": []}
    stubbed["ecr"][1].add_response("batch_get_image", found)  # one image: endpoint and batch share the CPU image
    stubbed["service-quotas"][1].add_response(
        "list_service_quotas",
        quotas({"ml.c6i.xlarge for endpoint usage": 20, "ml.c6i.xlarge for transform job usage": 4}),
    )
    stubbed["lambda"][1].add_response(
        "get_account_settings", {"AccountLimit": {"UnreservedConcurrentExecutions": 1000}}
    )
    stubbed["ssm"][1].add_response("get_parameter", parameter(preflight.BOOTSTRAP_PARAMETER, "30"))
    checks = preflight.run(prod, "prod", REGION, lambda service: stubbed[service][0], tmp_path)
    assert [c.verdict for c in checks] == ["PASS"] * 7 + ["SKIP"]
    table = preflight.render(checks)
    assert table.splitlines()[0].split() == ["check", "verdict", "detail"] and "quota ml.c6i.xlarge" in table


def test_without_credentials_it_lists_the_checks_and_exits_0(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert preflight.main("prod", repo_root / "config", "eu-west-1", tmp_path) == 0
    out = capsys.readouterr().out
    assert "no AWS credentials, so nothing was checked" in out
    assert "quota 'ml.c6i.xlarge for endpoint usage' >= 12 (blue/green)" in out
    assert POWERTOOLS_LAYER_PARAMETER in out


def test_the_cli_runs_preflight(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagebert.__main__ import main

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(preflight, "main", lambda *args: calls.append(args) or 0)
    assert main(["preflight", "--stage", "dev", "--region", "eu-west-1"]) == 0
    assert calls == [("dev", paths.CONFIG_DIR, "eu-west-1", paths.CDK_OUT)]
