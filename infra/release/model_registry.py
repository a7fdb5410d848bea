"""ModelRegistry: the project's SageMaker Model Registry group (AWS::SageMaker::ModelPackageGroup), and the ARNs of
a group and its model package versions.

`python -m sagebert register` adds a model package version to the group (PendingManualApproval); someone approves
it; stages with `model.source: registry` deploy a version of it. CDK has only the L1 resource for the group.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.config.registry import RegistrySettings

# What another account's stages need of the group: find its versions and read one's inference specification (to
# deploy it, and for `resolve-models`). Nothing that changes the group or a version (approval stays with the owner).
# The policy shape is SageMaker's cross-account model registry example
# (https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram-discover.html): one statement on the group's
# ARN and its versions' ARNs.
SHARED_ACTIONS = (
    "sagemaker:DescribeModelPackage",
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:ListModelPackages",
)


def group_arn(scope: Construct, group: str, account: str | None = None, region: str | None = None) -> str:
    """arn:<partition>:sagemaker:<region>:<account>:model-package-group/<group> (account and region: the stack's
    by default)."""
    return Stack.of(scope).format_arn(
        service="sagemaker", resource="model-package-group", resource_name=group, account=account, region=region
    )


def model_package_arn(
    scope: Construct, group: str, version: int | str, account: str | None = None, region: str | None = None
) -> str:
    """arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/<version>; version "*" is every one."""
    return Stack.of(scope).format_arn(
        service="sagemaker",
        resource="model-package",
        resource_name=f"{group}/{version}",
        account=account,
        region=region,
    )


class ModelRegistry(Construct):
    """Creates the model package group named `settings.group`, with a resource policy letting the accounts of
    `settings.share_with_accounts` describe and list its model packages (no policy when that list is empty: same
    account stages need none). Kept on stack deletion when `retain` (a group holding versions cannot be deleted
    anyway: CloudFormation's delete then fails until they are).

    Exposes `group` (the L1 resource), `group_name` and `group_arn`.
    """

    def __init__(self, scope: Construct, id_: str, *, settings: RegistrySettings, retain: bool) -> None:
        super().__init__(scope, id_)
        self.group_arn = group_arn(self, settings.group)
        policy: dict[str, Any] | None = None
        if settings.share_with_accounts:
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ShareModelPackages",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": [
                                f"arn:{Aws.PARTITION}:iam::{account}:root" for account in settings.share_with_accounts
                            ]
                        },
                        "Action": list(SHARED_ACTIONS),
                        "Resource": [self.group_arn, model_package_arn(self, settings.group, "*")],
                    }
                ],
            }
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=settings.group,
            model_package_group_description="sagebert: registered model versions; the Approved ones are deployed",
            model_package_group_policy=policy,
        )
        self.group.apply_removal_policy(RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY)
        self.group_name: str = settings.group
