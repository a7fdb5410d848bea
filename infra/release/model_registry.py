"""ModelRegistry: the project's SageMaker Model Registry group (AWS::SageMaker::ModelPackageGroup), and the ARNs of
a group and its model package versions.

`python -m sagebert register` adds a model package version to the group (PendingManualApproval); someone approves
it; stages with `model.source: registry` deploy a version of it. CDK has only the L1 resource for the group.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
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
# What another account's CreateModel with ModelPackageName needs of the owner: the shared account creates the model in
# its own account from a version of this group, and SageMaker authorizes that against the version's ARN too. Granted on
# the versions only (model-package/<group>/*), as in the SageMaker guide's cross-account deployment policy
# (https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-deploy-xaccount.html).
DEPLOY_ACTIONS = ("sagemaker:CreateModel",)


GROUP_DESCRIPTION = "sagebert: registered model versions; the Approved ones are deployed"


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
    `settings.share_with_accounts` describe and list its model packages and create models from its versions (no
    policy when that list is empty: same account stages need none). Kept on stack deletion when `retain` (a group
    holding versions cannot be deleted anyway: CloudFormation's delete then fails until they are).

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
                    },
                    {
                        "Sid": "DeployModelPackages",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": [
                                f"arn:{Aws.PARTITION}:iam::{account}:root" for account in settings.share_with_accounts
                            ]
                        },
                        "Action": list(DEPLOY_ACTIONS),
                        "Resource": [model_package_arn(self, settings.group, "*")],
                    },
                ],
            }
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=settings.group,
            # A constant: the description is create-only (the resource schema's createOnlyProperties), and replacing
            # a group with a fixed name fails (the new one's name is taken), so nothing in a stage file may change it.
            model_package_group_description=GROUP_DESCRIPTION,
            model_package_group_policy=policy,
        )
        # RetainExceptOnCreate: a group from a failed first create is deleted by the rollback, so the retry does not
        # meet its fixed name (AlreadyExists); once created it outlives the stack when `retain`.
        self.group.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain else RemovalPolicy.DESTROY)
        self.group_name: str = settings.group


def share_model_data(
    *, bucket: s3.IBucket, key: kms.IKey, prefix: str, accounts: list[str], role_path_patterns: list[str]
) -> None:
    """Let the model execution roles of `accounts` (roles whose path matches one of `role_path_patterns`, e.g.
    /sagebert/*/serving/) read the registered archives under `prefix` and decrypt them with `key`: a model package
    names its data in the owner's bucket, and SageMaker reads it as the deploying stage's execution role. Nothing
    else in the bucket, no other principal of those accounts."""
    if not accounts:
        return
    principals = [iam.AccountPrincipal(account) for account in accounts]
    roles = [f"arn:{Aws.PARTITION}:iam::{account}:role{path}*" for account in accounts for path in role_path_patterns]
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="SharedRegistryModelData",
            principals=principals,
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{prefix}*")],
            conditions={"ArnLike": {"aws:PrincipalArn": roles}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="SharedRegistryModelDataKey",
            principals=principals,
            actions=["kms:Decrypt"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={
                "ArnLike": {"aws:PrincipalArn": roles},
                "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"},
            },
        )
    )
