"""The key-lifetime gate: nothing kept after its stack is deleted may be encrypted with a key deleted with its stack."""

from __future__ import annotations

from typing import Any

from sagebert.checks.deploy_gates import outlived_keys


def storage(key_policy: str) -> dict[str, Any]:
    return {
        "Resources": {"Key": {"Type": "AWS::KMS::Key", "DeletionPolicy": key_policy, "Properties": {}}},
        "Outputs": {"KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}, "Export": {"Name": "Storage:KeyArn"}}},
    }


def logs(policy: str, key: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Logs": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": policy, "Properties": {"KmsKeyId": key}}
        }
    }


def test_a_kept_log_group_on_an_imported_key_that_is_deleted_is_found() -> None:
    # Given dev's shape before the fix: the API's log groups kept (CDK's default), the storage key deleted.
    for kept in ("Retain", "RetainExceptOnCreate"):
        templates = {"Storage": storage("Delete"), "Api": logs(kept, {"Fn::ImportValue": "Storage:KeyArn"})}
        (problem,) = outlived_keys(templates)
        assert problem.startswith(f"Api: Logs (AWS::Logs::LogGroup) is kept after deletion ({kept})")
        assert "Storage/Key is deleted with its stack" in problem


def test_a_key_in_the_same_stack_is_followed_too() -> None:
    template = storage("Delete")
    template["Resources"].update(logs("Retain", {"Fn::GetAtt": ["Key", "Arn"]})["Resources"])
    assert len(outlived_keys({"Serving": template})) == 1


def test_deleted_with_the_key_or_kept_with_it_passes() -> None:
    assert (
        outlived_keys({"Storage": storage("Delete"), "Api": logs("Delete", {"Fn::ImportValue": "Storage:KeyArn"})})
        == []
    )
    assert (
        outlived_keys({"Storage": storage("Retain"), "Api": logs("Retain", {"Fn::ImportValue": "Storage:KeyArn"})})
        == []
    )
    # A key ARN given as a literal (another stack's, another account's) is not this stage's to judge.
    assert outlived_keys({"Api": logs("Retain", "arn:aws:kms:eu-west-1:111122223333:key/abc")}) == []
